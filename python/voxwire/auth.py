"""Credentials: one authenticator for every dialect.

Every handshake and every REST call resolves to a :class:`Principal` (a user or an API key,
its organisation and scopes) through one :class:`Authenticator`:

- **API keys**: static ones from the configuration (``--api-key``, ``VOXWIRE_API_KEYS``),
  compared in constant time against all of them; persisted ones (``voxwire keys add``) kept
  in the :class:`~voxwire.store.Store` as the sha256 hex of the key, never the key.
- **Users with passwords** (``voxwire users add``), hashed with scrypt (:func:`hash_password`);
  a login for an unknown user costs the same as one with a wrong password.
- **JWTs** (PyJWT): access tokens (15 minutes by default) and refresh tokens (30 days) that
  rotate on every use; a refresh token presented twice revokes its whole family. HS256 with
  a secret, or EdDSA / ES256 with PEM keys; several verification keys selected by ``kid``, one
  signing key (:class:`JwtKeys`).
- **Single-use tokens** (atoms' ``wct_`` call tokens, 30 s), kept hashed with their payload
  and consumed atomically through the store.

Failures and ``None``: the lookups :meth:`Authenticator.principal_from_key` and
:meth:`Authenticator.consume_single_use` return ``None`` when the credential is not
accepted (whatever the cause: the caller answers 401 either way). Everything that verifies a
credential to produce a principal or tokens (:meth:`~Authenticator.principal_from_bearer`,
:meth:`~Authenticator.authenticate`, :meth:`~Authenticator.login`,
:meth:`~Authenticator.refresh`, :meth:`~Authenticator.sign_in_with_api_key`) raises
:class:`voxwire.errors.AuthError` with a machine-readable ``reason``. Store outages raise
:class:`voxwire.errors.StoreUnavailableError` (answer 503, not 401).

Nothing secret is logged: failures are logged (logger ``voxwire.auth``, level INFO) with
their reason and the public id involved (a key id, a user name that exists), never with a
key, token or password; the name of an unknown user is not logged either (it is often a
password typed in the wrong field).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from voxwire.errors import AuthError, InvalidInputError
from voxwire.store.base import ApiKeyRecord, Store, UserRecord

__all__ = [
    "AMIGO_SUBPROTOCOL_PREFIX",
    "MAX_TOKEN_BYTES",
    "OPENAI_KEY_SUBPROTOCOL",
    "Authenticator",
    "JwtKey",
    "JwtKeys",
    "Principal",
    "StaticKey",
    "default_jwt_keys",
    "default_state_dir",
    "hash_password",
    "jwt_keys_from_config",
    "offered_credentials",
    "password_needs_rehash",
    "sha256_hex",
    "verify_password",
]

log = logging.getLogger("voxwire.auth")

#: Longest credential (key, token, password) looked at, in bytes; longer ones are refused.
MAX_TOKEN_BYTES = 4096
#: Subprotocol prefix carrying an OpenAI API key (browsers cannot set headers).
OPENAI_KEY_SUBPROTOCOL = "openai-insecure-api-key."
#: Subprotocol prefix carrying an amigo JWT.
AMIGO_SUBPROTOCOL_PREFIX = "bearer.authorization.amigo.ai."

# -- principals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who a credential speaks for: a user, or an API key acting for no user.

    An API key made for a user (``voxwire keys add --user NAME``) resolves to that *user*,
    with :attr:`key_id` telling which key was used.
    """

    kind: Literal["user", "key"]
    #: The user name, or the key id.
    id: str
    org: str = ""
    scopes: tuple[str, ...] = ()
    #: The API key that authenticated this principal, when one did.
    key_id: str | None = None

    @property
    def owner(self) -> str:
        """``user:NAME`` or ``key:KEY_ID``: what conversations and leases are owned by."""
        return f"{self.kind}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the inverse of :meth:`from_dict`)."""
        d: dict[str, Any] = {"kind": self.kind, "id": self.id, "org": self.org}
        d["scopes"] = list(self.scopes)
        if self.key_id is not None:
            d["key_id"] = self.key_id
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Principal:
        """Read :meth:`to_dict`'s form; raises InvalidInputError when it is not one."""
        kind, pid, org = d.get("kind"), d.get("id"), d.get("org", "")
        scopes, key_id = d.get("scopes", []), d.get("key_id")
        if kind not in ("user", "key") or not isinstance(pid, str) or not pid:
            raise InvalidInputError("not a principal")
        if not isinstance(org, str) or not isinstance(scopes, list | tuple):
            raise InvalidInputError("not a principal")
        if not all(isinstance(s, str) for s in scopes):
            raise InvalidInputError("not a principal")
        if key_id is not None and not isinstance(key_id, str):
            raise InvalidInputError("not a principal")
        return cls(kind=kind, id=pid, org=org, scopes=tuple(scopes), key_id=key_id)


# -- small helpers --------------------------------------------------------------------------


def sha256_hex(secret: str) -> str:
    """The sha256 hex of a secret's UTF-8 bytes: how the store keys keys and tokens."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def well_formed(token: object) -> bool:
    """Whether ``token`` may be a credential: printable ASCII without spaces, 1..4096 bytes."""
    return (
        isinstance(token, str)
        and 0 < len(token) <= MAX_TOKEN_BYTES
        and token.isascii()
        and token.isprintable()
        and " " not in token
    )


def _b64e(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii").rstrip("=")


def _b64d(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


# -- passwords ----------------------------------------------------------------------------------

#: scrypt's default cost: N = 2**15, r = 8, p = 1 (32 MiB, about 0.1 s on one core).
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
#: Bounds on parameters read from a stored hash (so a bad record cannot exhaust memory).
_MAX_N, _MAX_R, _MAX_P = 1 << 20, 32, 16


def _password_bytes(password: str) -> bytes:
    if not isinstance(password, str):
        raise InvalidInputError("a password is a str")
    try:
        b = password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("a password must be valid Unicode text") from None
    if not b or len(b) > MAX_TOKEN_BYTES:
        raise InvalidInputError(f"a password has 1 to {MAX_TOKEN_BYTES} bytes")
    return b


def _scrypt(pw: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Hash a password with scrypt into ``scrypt$N$r$p$<salt b64>$<hash b64>``.

    The string describes itself (parameters and salt), so :func:`verify_password` reads
    hashes made with other parameters. Raises InvalidInputError for an empty password, one
    over 4096 bytes, or one that is not valid Unicode (a lone surrogate).
    """
    pw = _password_bytes(password)
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        raise InvalidInputError("scrypt parameters out of range")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(pw, salt, n, r, p, _HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64e(salt)}${_b64e(digest)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        alg, n_s, r_s, p_s, salt_s, digest_s = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, digest = _b64d(salt_s), _b64d(digest_s)
    except (ValueError, binascii.Error):
        return None
    if alg != "scrypt" or n < 2 or n & (n - 1) or n > _MAX_N:
        return None
    if not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P or not salt or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare).

    False, never an exception, for a malformed password or hash.
    """
    parsed = _parse_hash(stored) if isinstance(stored, str) else None
    if parsed is None:
        log.warning("a stored password hash is malformed")
        return False
    n, r, p, salt, digest = parsed
    try:
        pw = _password_bytes(password)
    except InvalidInputError:
        pw = b"\0"  # still spend the time: a malformed password is told apart by nothing
        digest = b"\0" * len(digest) + b"\1"  # can never match
    return hmac.compare_digest(_scrypt(pw, salt, n, r, p, len(digest)), digest)


def password_needs_rehash(stored: str) -> bool:
    """Whether a hash was made with other parameters than today's defaults."""
    parsed = _parse_hash(stored)
    return parsed is None or parsed[:3] != (SCRYPT_N, SCRYPT_R, SCRYPT_P)


#: Verified against when the user does not exist, so the answer takes the same time.
#: Its digest is random: no password matches it.
_DUMMY_HASH = (
    f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
    f"{_b64e(secrets.token_bytes(_SALT_BYTES))}${_b64e(secrets.token_bytes(_HASH_BYTES))}"
)

# -- JWT keys -----------------------------------------------------------------------------------

_ALGORITHMS = ("HS256", "EdDSA", "ES256")


@dataclass(frozen=True)
class JwtKey:
    """One JWT key: an HS256 secret, or an Ed25519 / P-256 key pair (or its public half).

    Make one with :meth:`hs256` or :meth:`from_pem`.
    """

    kid: str
    algorithm: str
    #: What signs: the secret bytes or the private key; None for a verification-only key.
    signing: Any = field(repr=False)
    #: What verifies: the secret bytes or the public key.
    verifying: Any = field(repr=False)

    @classmethod
    def hs256(cls, secret: str | bytes, *, kid: str | None = None) -> JwtKey:
        """An HS256 key (at least 32 bytes of secret; the kid defaults to a fingerprint)."""
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(raw) < 32:
            raise InvalidInputError("an HS256 secret has at least 32 bytes")
        kid = kid or "hs-" + hashlib.sha256(b"voxwire jwt kid\0" + raw).hexdigest()[:12]
        return cls(kid=kid, algorithm="HS256", signing=raw, verifying=raw)

    @classmethod
    def from_pem(
        cls, pem: str | bytes, *, kid: str | None = None, password: bytes | None = None
    ) -> JwtKey:
        """An EdDSA (Ed25519) or ES256 (P-256) key from PEM.

        A private key signs and verifies, a public one only verifies. The kid defaults to
        a fingerprint of the public key.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        data = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
        private: Any = None
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=password)
                public: Any = private.public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise InvalidInputError("not a PEM key (or a wrong password)") from None
        if isinstance(public, ed25519.Ed25519PublicKey):
            alg = "EdDSA"
        elif isinstance(public, ec.EllipticCurvePublicKey) and isinstance(
            public.curve, ec.SECP256R1
        ):
            alg = "ES256"
        else:
            raise InvalidInputError("JWT keys are Ed25519 (EdDSA) or P-256 (ES256)")
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = kid or alg.lower() + "-" + hashlib.sha256(spki).hexdigest()[:12]
        return cls(kid=kid, algorithm=alg, signing=private, verifying=public)

    def public_only(self) -> JwtKey:
        """The same key, verification only (HS256 keys stay secret either way)."""
        return JwtKey(
            kid=self.kid, algorithm=self.algorithm, signing=None, verifying=self.verifying
        )


class JwtKeys:
    """The keys JWTs are signed and verified with: one signing key, any number that verify.

    Rotation: list the new key first (or name it with ``signing_kid``) and keep the old one
    in ``keys`` until the longest-lived token it signed has expired (the refresh TTL). Tokens
    carry the ``kid`` of their key in the header; an unknown kid is refused. Each key is only
    ever verified with its own algorithm (no ``alg`` confusion).
    """

    def __init__(
        self,
        keys: Sequence[JwtKey],
        *,
        signing_kid: str | None = None,
        issuer: str = "voxwire",
        leeway_s: float = 30.0,
    ) -> None:
        keys = list(keys)
        by_kid: dict[str, JwtKey] = {}
        for k in keys:
            if k.algorithm not in _ALGORITHMS:
                raise InvalidInputError(f"unsupported JWT algorithm {k.algorithm!r}")
            if k.kid in by_kid:
                raise InvalidInputError(f"two JWT keys with kid {k.kid!r}")
            by_kid[k.kid] = k
        if signing_kid is None:
            signing = next((k for k in keys if k.signing is not None), None)
        else:
            signing = by_kid.get(signing_kid)
        if signing is None or signing.signing is None:
            raise InvalidInputError("no JWT signing key (a private key or a secret)")
        self.keys: Mapping[str, JwtKey] = by_kid
        self.signing_key = signing
        self.issuer = issuer
        self.leeway_s = leeway_s

    @classmethod
    def hs256(cls, secret: str | bytes, **kwargs: Any) -> JwtKeys:
        """One HS256 secret that signs and verifies."""
        return cls([JwtKey.hs256(secret)], **kwargs)

    def encode(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` (``iss`` added) with the signing key, its kid in the header."""
        import jwt

        k = self.signing_key
        return jwt.encode(
            {**claims, "iss": self.issuer},
            k.signing,
            algorithm=k.algorithm,
            headers={"kid": k.kid},
        )

    def decode(self, token: str, *, typ: str, now: float | None = None) -> dict[str, Any]:
        """Verify a token of type ``typ`` (``access`` or ``refresh``) and return its claims.

        Checked: the kid names one of our keys, the signature with that key's algorithm,
        ``iss``, ``exp`` and ``iat`` (with the leeway), ``sub``, ``jti`` and ``typ``. Raises
        AuthError: ``"expired"`` past ``exp`` plus the leeway, ``"invalid"`` otherwise.
        """
        import jwt

        if not well_formed(token):
            raise AuthError("invalid", "malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid", "malformed token") from None
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError("invalid", "token signed with an unknown key")
        if header.get("alg") != key.algorithm:
            raise AuthError("invalid", "token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "sub", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "token expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid", "token refused") from None
        if claims.get("typ") != typ:
            raise AuthError(
                "invalid", "not an access token" if typ == "access" else "wrong token type"
            )
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
            raise AuthError("invalid", "token refused")
        if now is not None and claims["exp"] + self.leeway_s < now:
            raise AuthError("expired", "token expired")
        return claims


def default_state_dir() -> Path:
    """Where voxwire keeps state on this machine: the folder of the default SQLite store.

    ``$XDG_STATE_HOME/voxwire`` (when that is an absolute path), else
    ``~/.local/state/voxwire``.
    """
    from voxwire.store.sqlite import default_sqlite_path

    return default_sqlite_path().parent


def default_jwt_keys(
    *,
    state_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> JwtKeys:
    """The HS256 keys used when none are configured.

    The secret is ``$VOXWIRE_JWT_SECRET`` when set (at least 32 bytes). Else it is read from
    ``<state dir>/jwt-secret``, which is created with 32 random bytes (hex, file mode 0600)
    the first time: a restart, and every worker process on this machine, share it. Several
    *hosts* must be given the same secret (or PEM keys) explicitly. Extra keyword arguments
    go to :class:`JwtKeys`.
    """
    env = os.environ if environ is None else environ
    secret = env.get("VOXWIRE_JWT_SECRET")
    if secret:
        return JwtKeys.hs256(secret, **kwargs)
    d = Path(state_dir) if state_dir is not None else default_state_dir()
    return JwtKeys.hs256(_state_secret(d / "jwt-secret"), **kwargs)


def jwt_keys_from_config(
    table: Mapping[str, Any],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> JwtKeys:
    """The JWT keys of a configuration table (``[auth.jwt]`` of ``voxwire.toml``).

    Keys: ``issuer`` (default ``"voxwire"``), ``leeway_s`` (30), ``signing_kid`` (default: the
    first key that can sign), and ``keys``, a list of tables each with an optional ``kid`` and
    exactly one of ``secret_env`` (the name of an environment variable holding an HS256
    secret), ``secret_file`` (a file holding one) or ``pem_file`` (an Ed25519 / P-256 PEM
    key: private signs and verifies, public only verifies). Without ``keys`` it is
    :func:`default_jwt_keys`. Secrets are never written in the table itself.

    Raises InvalidInputError with a one-line message that starts with the key at fault,
    relative to the table (``keys[1].pem_file: ...``), for the config loader to wrap in a
    ConfigError naming the file and table.
    """
    env = os.environ if environ is None else environ
    known = {"issuer", "leeway_s", "signing_kid", "keys"}
    if unknown := set(table) - known:
        raise InvalidInputError(f"{sorted(unknown)[0]}: unknown setting")
    issuer = table.get("issuer", "voxwire")
    leeway = table.get("leeway_s", 30.0)
    signing_kid = table.get("signing_kid")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidInputError("issuer: expected a non-empty string")
    if isinstance(leeway, bool) or not isinstance(leeway, int | float) or not 0 <= leeway <= 600:
        raise InvalidInputError("leeway_s: expected a number of seconds from 0 to 600")
    if signing_kid is not None and not isinstance(signing_kid, str):
        raise InvalidInputError("signing_kid: expected a string")
    opts: dict[str, Any] = {"issuer": issuer, "leeway_s": float(leeway)}
    entries = table.get("keys", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise InvalidInputError("keys: expected an array of tables")
    if not entries:
        return default_jwt_keys(state_dir=state_dir, environ=env, **opts)
    keys: list[JwtKey] = []
    for i, e in enumerate(entries):
        sources = [s for s in ("secret_env", "secret_file", "pem_file") if s in e]
        if len(sources) != 1 or set(e) - {"kid", *sources}:
            raise InvalidInputError(
                f"keys[{i}]: expected kid and one of secret_env, secret_file, pem_file"
            )
        source = sources[0]
        where = f"keys[{i}].{source}"
        kid, src = e.get("kid"), e[source]
        if kid is not None and not isinstance(kid, str):
            raise InvalidInputError(f"keys[{i}].kid: expected a string")
        if not isinstance(src, str):
            raise InvalidInputError(f"{where}: expected a string")
        if source == "secret_env" and not env.get(src):
            raise InvalidInputError(f"{where}: environment variable {src} is not set")
        try:
            if source == "secret_env":
                keys.append(JwtKey.hs256(env[src], kid=kid))
            elif source == "secret_file":
                keys.append(JwtKey.hs256(Path(src).read_text("utf-8").strip(), kid=kid))
            else:
                keys.append(JwtKey.from_pem(Path(src).read_bytes(), kid=kid))
        except OSError as err:
            raise InvalidInputError(f"{where}: cannot read {src}: {err.strerror}") from None
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}: {err}") from None
    try:
        return JwtKeys(keys, signing_kid=signing_kid, **opts)
    except InvalidInputError as err:
        raise InvalidInputError(f"keys: {err}") from None


def _state_secret(path: Path) -> str:
    """Read the secret file, creating it atomically (link a complete temp file) if absent."""
    for _ in range(3):
        try:
            text = path.read_text("ascii").strip()
        except FileNotFoundError:
            pass
        else:
            if len(text) >= 32:
                return text
            raise InvalidInputError(f"{path} holds no usable secret (remove it to make a new one)")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first: then read theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    raise InvalidInputError(f"cannot create {path}")


# -- offered credentials ------------------------------------------------------------------------


def _pairs(m: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(m, Mapping):
        get_all = getattr(m, "get_all", None) or getattr(m, "getlist", None)
        if get_all is not None:  # websockets Headers / Starlette multi-dicts: every value
            return [(k, v) for k in dict.fromkeys(m.keys()) for v in get_all(k)]
        return list(m.items())
    return list(m)


def offered_credentials(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    query: Mapping[str, str] | Iterable[tuple[str, str]],
    subprotocols: Iterable[str],
    *,
    max_keys: int = 8,
    query_names: Sequence[str] = ("api_key", "token"),
    subprotocol_prefixes: Sequence[str] = (OPENAI_KEY_SUBPROTOCOL, AMIGO_SUBPROTOCOL_PREFIX),
    header_names: Sequence[str] = (),
) -> list[str]:
    """The credentials a handshake offers, in order, without duplicates, at most ``max_keys``.

    Looked at: ``Authorization: Bearer <token>`` headers (every one, when ``headers`` can
    tell), the headers ``header_names`` whose whole value is a key (Azure-style
    ``api-key``), the query parameters ``query_names``, and subprotocols starting with one of
    ``subprotocol_prefixes`` (the rest of the subprotocol is the credential). Malformed
    candidates (empty, over 4096 bytes, non-ASCII, control characters or spaces) are
    dropped, never raised on; so are those past the first ``max_keys``. Both mappings may
    also be sequences of ``(name, value)`` pairs; header names are compared case-blind.
    """
    found: list[str] = []

    def offer(value: object) -> None:
        if len(found) < max_keys and well_formed(value) and value not in found:
            found.append(value)  # type: ignore[arg-type]

    key_headers = {h.lower() for h in header_names}
    header_pairs = _pairs(headers)
    for name, value in header_pairs:
        if not isinstance(name, str) or not isinstance(value, str) or len(found) >= max_keys:
            continue
        if name.lower() == "authorization" and value[:7].lower() == "bearer ":
            offer(value[7:].strip())
    for name, value in header_pairs:
        if isinstance(name, str) and isinstance(value, str) and name.lower() in key_headers:
            offer(value.strip())
    names = set(query_names)
    for name, value in _pairs(query):
        if name in names:
            offer(value)
    for proto in subprotocols:
        if not isinstance(proto, str):
            continue
        for prefix in subprotocol_prefixes:
            if proto.startswith(prefix):
                offer(proto[len(prefix) :])
    return found


# -- the authenticator --------------------------------------------------------------------------


@dataclass(frozen=True)
class StaticKey:
    """An API key from the configuration (not the store)."""

    key: str = field(repr=False)
    #: Its public id; by default ``cfg-`` and 12 hex digits of a hash of the key.
    key_id: str = ""
    org: str = ""
    scopes: tuple[str, ...] = ()
    #: The user the key acts for, if any (the user must exist in the store).
    user: str | None = None


@dataclass(frozen=True)
class _Static:
    digest: bytes
    key_id: str
    org: str
    scopes: tuple[str, ...]
    user: str | None


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Authenticator:
    """Resolves credentials to principals and issues tokens; one per process, every dialect.

    ``api_keys``: static keys (strings or :class:`StaticKey`); ``jwt``: the JWT keys (default
    :func:`default_jwt_keys`); ``access_ttl_s`` / ``refresh_ttl_s``: token lifetimes (a
    refresh token's family lives ``refresh_ttl_s`` past its last rotation); ``kdf_concurrency``:
    how many password hashes run at once (in threads, off the event loop); ``clock``: wall
    time in seconds (for tests).
    """

    def __init__(
        self,
        store: Store,
        *,
        api_keys: Iterable[str | StaticKey] = (),
        jwt: JwtKeys | None = None,
        access_ttl_s: float = 900.0,
        refresh_ttl_s: float = 30 * 86400.0,
        kdf_concurrency: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.jwt = jwt if jwt is not None else default_jwt_keys()
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.clock = clock
        self._kdf = asyncio.Semaphore(kdf_concurrency)
        statics: list[_Static] = []
        for k in api_keys:
            sk = StaticKey(k) if isinstance(k, str) else k
            if not well_formed(sk.key):
                raise InvalidInputError(
                    "an API key is 1 to 4096 printable ASCII characters without spaces"
                )
            digest = hashlib.sha256(sk.key.encode("ascii")).digest()
            kid = (
                sk.key_id or "cfg-" + hashlib.sha256(b"voxwire key id\0" + digest).hexdigest()[:12]
            )
            statics.append(_Static(digest, kid, sk.org, tuple(sk.scopes), sk.user))
        self._static = tuple(statics)

    # -- API keys ---------------------------------------------------------------------------

    async def principal_from_key(self, key: str) -> Principal | None:
        """The principal of an API key, or None when it is not one we know.

        Static keys are compared in constant time against every one of them (no early
        exit); then the store is asked for the sha256 hex of the key. A key made for a user
        resolves to that user, with ``key_id`` set (None when the user no longer exists).
        """
        if not well_formed(key):
            return None
        digest = hashlib.sha256(key.encode("ascii")).digest()
        match: _Static | None = None
        for s in self._static:
            if hmac.compare_digest(digest, s.digest) and match is None:
                match = s
        if match is not None:
            return await self._key_principal(match.key_id, match.org, match.scopes, match.user)
        rec = await self.store.get_api_key(digest.hex())
        if rec is None:
            log.info("API key refused: unknown")
            return None
        return await self._key_principal(rec.key_id, rec.org, rec.scopes, rec.user)

    async def _key_principal(
        self, key_id: str, org: str, scopes: tuple[str, ...], user: str | None
    ) -> Principal | None:
        if user is None:
            return Principal(kind="key", id=key_id, org=org, scopes=tuple(scopes), key_id=key_id)
        u = await self.store.get_user(user)
        if u is None:
            log.info("API key %s refused: its user no longer exists", key_id)
            return None
        return Principal(
            kind="user",
            id=u.name,
            org=org or u.org,
            scopes=tuple(scopes or u.scopes),
            key_id=key_id,
        )

    async def add_api_key(
        self, *, org: str = "", user: str | None = None, scopes: Sequence[str] = ()
    ) -> tuple[str, str]:
        """Make a key and store its hash; returns ``(key_id, key)``: show the key once.

        Keys are ``vxk_`` and 43 URL-safe characters (256 random bits); ids are ``k_`` and
        12 hex digits. Raises InvalidInputError when ``user`` is not a known user.
        """
        if user is not None and await self.store.get_user(user) is None:
            raise InvalidInputError(f"no user named {user!r}")
        key = "vxk_" + secrets.token_urlsafe(32)
        key_id = "k_" + secrets.token_hex(6)
        await self.store.add_api_key(
            ApiKeyRecord(
                key_hash=sha256_hex(key),
                key_id=key_id,
                org=org,
                scopes=tuple(scopes),
                user=user,
            )
        )
        log.info("API key %s added", key_id)
        return key_id, key

    async def sign_in_with_api_key(
        self, key: str, *, key_id: str | None = None, user: str | None = None
    ) -> Principal:
        """The amigo sign-in: an API key (and, when given, its id and the user to act as).

        ``key_id`` must be the key's id. ``user``: a key made for a user must name that
        user; a key made for no user may name any user of the key's organisation (an
        organisation's backend signing its users in). Raises AuthError ``"invalid"``.
        """
        p = await self.principal_from_key(key)
        if p is None:
            raise AuthError("invalid", "invalid API key")
        if key_id is not None and not hmac.compare_digest(
            key_id.encode("utf-8", "surrogatepass"), (p.key_id or "").encode()
        ):
            raise AuthError("invalid", "invalid API key")
        if user is None or (p.kind == "user" and p.id == user):
            return p
        if p.kind == "user" or not p.org:
            raise AuthError("invalid", "this key cannot act for that user")
        u = await self.store.get_user(user)
        if u is None or u.org != p.org:
            raise AuthError("invalid", "this key cannot act for that user")
        return Principal(kind="user", id=u.name, org=u.org, scopes=u.scopes, key_id=p.key_id)

    # -- users ------------------------------------------------------------------------------

    async def add_user(
        self,
        name: str,
        password: str,
        *,
        org: str = "",
        scopes: Sequence[str] = (),
        profile: Mapping[str, Any] | None = None,
    ) -> UserRecord:
        """Create a user with a hashed password.

        Raises InvalidInputError if the name is taken or malformed (1 to 256 printable
        characters, no spaces at either end) or the password is empty, over 4096 bytes or
        not valid Unicode.
        """
        if not isinstance(name, str) or not 0 < len(name) <= 256 or not name.isprintable():
            raise InvalidInputError("a user name is 1 to 256 printable characters")
        if name != name.strip():
            raise InvalidInputError("a user name does not start or end with a space")
        hashed = await self._hash(password)
        rec = UserRecord(
            name=name,
            password_hash=hashed,
            org=org,
            scopes=tuple(scopes),
            profile=dict(profile or {}),
        )
        if not await self.store.add_user(rec):
            raise InvalidInputError(f"user {name!r} exists")
        log.info("user %r added", name)
        return rec

    async def set_password(self, name: str, password: str) -> bool:
        """Change a user's password; False when there is no such user."""
        u = await self.store.get_user(name)
        if u is None:
            return False
        hashed = await self._hash(password)
        await self.store.set_user(
            UserRecord(
                name=u.name,
                password_hash=hashed,
                org=u.org,
                scopes=u.scopes,
                profile=u.profile,
                created_at=u.created_at,
            )
        )
        return True

    async def _hash(self, password: str) -> str:
        _password_bytes(password)  # raise on a bad password before taking a thread
        async with self._kdf:
            return await asyncio.to_thread(hash_password, password)

    async def login(self, username: str, password: str) -> Principal:
        """The user whose name and password these are; AuthError ``"invalid"`` otherwise.

        An unknown user, a wrong password and malformed input all take one scrypt
        verification and give the same error. A hash made with older parameters is
        replaced on success.
        """
        user = None
        if isinstance(username, str) and 0 < len(username) <= 256 and username.isprintable():
            user = await self.store.get_user(username)
        stored = user.password_hash if user is not None else _DUMMY_HASH
        async with self._kdf:
            ok = await asyncio.to_thread(verify_password, password, stored)
        if user is None or not ok:
            if user is None:
                log.info("login refused: unknown user")
            else:
                log.info("login refused for user %r: wrong password", user.name)
            raise AuthError("invalid", "invalid credentials")
        if password_needs_rehash(stored):
            try:
                await self.set_password(user.name, password)
            except Exception:  # an upgrade failing must not fail the login
                log.warning("could not rehash the password of user %r", user.name)
        return Principal(kind="user", id=user.name, org=user.org, scopes=tuple(user.scopes))

    # -- JWTs -------------------------------------------------------------------------------

    def _claims(self, p: Principal, typ: str, ttl_s: float) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "sub": p.id,
            "knd": p.kind,
            "org": p.org,
            "scp": list(p.scopes),
            "typ": typ,
            "iat": now,
            "exp": now + max(1, round(ttl_s)),
            "jti": uuid.uuid4().hex,
        }
        if p.key_id is not None:
            claims["akid"] = p.key_id
        return claims

    def issue_access(
        self,
        principal: Principal,
        *,
        ttl_s: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, int]:
        """An access token for ``principal`` and its expiry (Unix seconds).

        ``ttl_s`` defaults to ``access_ttl_s``. Access tokens are not stored: they are
        valid until they expire (keep them short). ``extra``: more claims an API puts in its
        tokens (rtguide's public ``user`` object); they cannot replace the claims above, and
        must never hold a secret (a JWT is signed, not encrypted).
        """
        claims = self._claims(principal, "access", ttl_s or self.access_ttl_s)
        for k, v in (extra or {}).items():
            claims.setdefault(k, v)
        return self.jwt.encode(claims), claims["exp"]

    async def issue_tokens(
        self,
        principal: Principal,
        *,
        access_ttl_s: float | None = None,
        refresh_ttl_s: float | None = None,
    ) -> tuple[str, str]:
        """A new ``(access, refresh)`` pair; the refresh token starts a new family."""
        access, _ = self.issue_access(principal, ttl_s=access_ttl_s)
        ttl = refresh_ttl_s or self.refresh_ttl_s
        claims = self._claims(principal, "refresh", ttl)
        claims["fam"] = uuid.uuid4().hex
        if principal.kind == "user":
            # Tie the family to this incarnation of the user: a user removed and made again
            # under the same name does not inherit it.
            u = await self.store.get_user(principal.id)
            if u is None:
                raise AuthError("revoked", "the account no longer exists")
            claims["ucr"] = u.created_at
        await self.store.start_family(claims["fam"], claims["jti"], principal.owner, ttl)
        return access, self.jwt.encode(claims)

    def _principal_from_claims(self, c: Mapping[str, Any]) -> Principal:
        kind, org, scp, kid = c.get("knd"), c.get("org", ""), c.get("scp", []), c.get("akid")
        if kind not in ("user", "key") or not isinstance(org, str) or not isinstance(scp, list):
            raise AuthError("invalid", "token refused")
        if not all(isinstance(s, str) for s in scp) or not (kid is None or isinstance(kid, str)):
            raise AuthError("invalid", "token refused")
        return Principal(kind=kind, id=c["sub"], org=org, scopes=tuple(scp), key_id=kid)

    def principal_from_access_token(self, token: str) -> Principal:
        """The principal of an access token we issued.

        Raises AuthError ``"expired"`` or ``"invalid"`` (a refresh token is refused here).
        """
        claims = self.jwt.decode(token, typ="access", now=self.clock())
        return self._principal_from_claims(claims)

    async def principal_from_bearer(self, token: str) -> Principal:
        """The principal of a bearer credential: an access token we issued, or an API key.

        Raises AuthError: ``"expired"`` / ``"invalid"`` for a token that looks like a JWT
        but does not verify (and is no API key either), ``"unknown"`` for an unknown key,
        ``"invalid"`` for a malformed credential.
        """
        if not well_formed(token):
            raise AuthError("invalid", "malformed credential")
        error: AuthError | None = None
        if _looks_like_jwt(token):
            try:
                return self.principal_from_access_token(token)
            except AuthError as e:
                error = e
        p = await self.principal_from_key(token)
        if p is not None:
            return p
        if error is not None:
            log.info("bearer token refused: %s", error.reason)
            raise error
        raise AuthError("unknown", "unknown API key")

    async def authenticate(self, credentials: Sequence[str]) -> Principal:
        """The principal of the first accepted credential (from :func:`offered_credentials`).

        Raises the last credential's AuthError when none is accepted, ``"unknown"`` when
        none was offered.
        """
        error = AuthError("unknown", "no credential offered")
        for c in credentials:
            try:
                return await self.principal_from_bearer(c)
            except AuthError as e:
                error = e
        raise error

    async def refresh(self, refresh_token: str) -> tuple[str, str]:
        """Rotate a refresh token: a new ``(access, refresh)`` pair in the same family.

        Raises AuthError: ``"invalid"`` / ``"expired"`` for a token that does not verify
        (an access token is refused), ``"reused"`` when this token was already rotated (the
        family is revoked: every token of it is refused from now on), ``"revoked"`` when the
        family was revoked or has expired, or its user or key no longer exists.
        """
        claims = self.jwt.decode(refresh_token, typ="refresh", now=self.clock())
        fam = claims.get("fam")
        if not isinstance(fam, str):
            raise AuthError("invalid", "token refused")
        p = await self._current(self._principal_from_claims(claims), claims.get("ucr"))
        if p is None:
            await self.store.revoke_family(fam)
            log.info("refresh refused: the principal no longer exists")
            raise AuthError("revoked", "the account no longer exists")
        ttl = self.refresh_ttl_s
        new = self._claims(p, "refresh", ttl)
        new["fam"] = fam
        if "ucr" in claims:
            new["ucr"] = claims["ucr"]
        outcome = await self.store.rotate_family(fam, claims["jti"], new["jti"], ttl)
        if outcome == "reused":
            log.warning("refresh token reused: family of %s revoked", p.owner)
            raise AuthError("reused", "refresh token reused: every token of its family revoked")
        if outcome != "ok":
            log.info("refresh refused: family revoked or expired")
            raise AuthError("revoked", "refresh token revoked")
        access, _ = self.issue_access(p)
        return access, self.jwt.encode(new)

    async def revoke_refresh(self, refresh_token: str) -> None:
        """Log out: revoke the family of a refresh token (an expired one too).

        Raises AuthError ``"invalid"`` when the token was not issued by us.
        """
        import jwt

        try:
            self.jwt.decode(refresh_token, typ="refresh")
        except AuthError as e:
            if e.reason != "expired":
                raise
        fam = jwt.decode(refresh_token, options={"verify_signature": False}).get("fam")
        if isinstance(fam, str):
            await self.store.revoke_family(fam)

    async def _current(self, p: Principal, created_at: object) -> Principal | None:
        """``p`` as the store has it now (org and scopes), None when it is gone."""
        if p.key_id is not None and not await self._key_exists(p.key_id):
            return None
        if p.kind == "user":
            u = await self.store.get_user(p.id)
            if u is None or u.created_at != created_at:
                return None
            if p.key_id is not None:
                return p  # a key acting for a user keeps the key's org and scopes
            return Principal(kind="user", id=u.name, org=u.org, scopes=tuple(u.scopes))
        return p

    async def _key_exists(self, key_id: str) -> bool:
        if any(s.key_id == key_id for s in self._static):
            return True
        return any(k.key_id == key_id for k in await self.store.list_api_keys())

    # -- single-use tokens ------------------------------------------------------------------

    async def issue_single_use(
        self,
        principal: Principal,
        payload: Mapping[str, Any],
        *,
        prefix: str = "wct_",
        ttl_s: float = 30.0,
    ) -> str:
        """A token good for one :meth:`consume_single_use` within ``ttl_s`` seconds.

        ``payload`` (JSON-ready) is kept with the principal under the sha256 of the token;
        the token is ``prefix`` and a random UUID (122 random bits), as atoms' ``wct_``.
        """
        token = prefix + str(uuid.uuid4())
        if not well_formed(token):
            raise InvalidInputError("a token prefix is printable ASCII without spaces")
        record = {"principal": principal.to_dict(), "payload": dict(payload)}
        json.dumps(record)  # raise here (TypeError), not inside the store
        await self.store.put_token(sha256_hex(token), record, ttl_s)
        return token

    async def consume_single_use(self, token: str) -> tuple[Principal, dict[str, Any]] | None:
        """The principal and payload of a single-use token, taken atomically.

        Of any number of racing callers, in any processes, one gets them. None when the
        token is unknown, already used, expired or malformed.
        """
        if not well_formed(token):
            return None
        record = await self.store.consume_token(sha256_hex(token))
        if record is None:
            log.info("single-use token refused: unknown, used or expired")
            return None
        try:
            p = Principal.from_dict(record["principal"])
            payload = record["payload"]
        except (KeyError, TypeError, InvalidInputError):
            log.warning("a stored single-use token record is malformed")
            return None
        if not isinstance(payload, dict):
            return None
        return p, payload
