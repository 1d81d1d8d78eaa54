from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import voxwire
from voxwire.auth import JwtKey, JwtKeys, default_jwt_keys, jwt_keys_from_config
from voxwire.errors import AuthError, InvalidInputError


def claims(typ: str = "access", *, exp_in: int = 600, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "alice",
        "typ": typ,
        "iat": now,
        "exp": now + exp_in,
        "jti": "j1",
        **extra,
    }


def ed_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def reason(keys: JwtKeys, token: str, typ: str = "access") -> str:
    with pytest.raises(AuthError) as e:
        keys.decode(token, typ=typ)
    assert token not in str(e.value)
    return e.value.reason


@pytest.mark.parametrize("make", ["hs256", "eddsa", "es256"])
def test_valid_token_round_trip(make: str) -> None:
    if make == "hs256":
        keys = JwtKeys.hs256(os.urandom(32))
    else:
        keys = JwtKeys([JwtKey.from_pem(ed_pem() if make == "eddsa" else ec_pem())])
    token = keys.encode(claims())
    header = pyjwt.get_unverified_header(token)
    assert header["kid"] == keys.signing_key.kid
    assert header["alg"] == {"hs256": "HS256", "eddsa": "EdDSA", "es256": "ES256"}[make]
    got = keys.decode(token, typ="access")
    assert got["sub"] == "alice" and got["iss"] == "voxwire"


def test_expired_and_leeway() -> None:
    keys = JwtKeys.hs256(os.urandom(32), leeway_s=30)
    assert reason(keys, keys.encode(claims(exp_in=-120))) == "expired"
    # 10 s past exp is within the 30 s leeway (clock skew between hosts)
    assert keys.decode(keys.encode(claims(exp_in=-10)), typ="access")["sub"] == "alice"
    strict = JwtKeys(list(keys.keys.values()), leeway_s=0)
    assert reason(strict, keys.encode(claims(exp_in=-10))) == "expired"


def test_tampered_signature_and_payload() -> None:
    keys = JwtKeys.hs256(os.urandom(32))
    token = keys.encode(claims())
    head, body, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert reason(keys, f"{head}.{body}.{flipped}") == "invalid"
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert reason(keys, f"{head}.{forged}.{sig}") == "invalid"
    assert reason(keys, "eyJhbGciOiJIUzI1NiJ9.garbage.sig") == "invalid"
    assert reason(keys, "not a token") == "invalid"


def test_wrong_key_with_the_same_kid() -> None:
    ours = JwtKeys([JwtKey.hs256(os.urandom(32), kid="main")])
    theirs = JwtKeys([JwtKey.hs256(os.urandom(32), kid="main")])
    assert reason(ours, theirs.encode(claims())) == "invalid"
    ed_ours = JwtKeys([JwtKey.from_pem(ed_pem(), kid="ed")])
    ed_theirs = JwtKeys([JwtKey.from_pem(ed_pem(), kid="ed")])
    assert reason(ed_ours, ed_theirs.encode(claims())) == "invalid"


def test_unknown_or_missing_kid() -> None:
    secret = os.urandom(32)
    ours = JwtKeys([JwtKey.hs256(secret, kid="a")])
    other_kid = JwtKeys([JwtKey.hs256(secret, kid="b")])  # same secret: only the kid differs
    assert reason(ours, other_kid.encode(claims())) == "invalid"
    no_kid = pyjwt.encode({**claims(), "iss": "voxwire"}, secret, algorithm="HS256")
    assert reason(ours, no_kid) == "invalid"


def test_kid_rotation() -> None:
    old = JwtKey.hs256(os.urandom(32), kid="2025")
    new = JwtKey.hs256(os.urandom(32), kid="2026")
    before = JwtKeys([old])
    old_token = before.encode(claims())
    after = JwtKeys([new, old])  # new signs, old still verifies
    assert after.signing_key.kid == "2026"
    new_token = after.encode(claims())
    assert pyjwt.get_unverified_header(new_token)["kid"] == "2026"
    assert after.decode(old_token, typ="access")["sub"] == "alice"
    assert after.decode(new_token, typ="access")["sub"] == "alice"
    assert reason(before, new_token) == "invalid"  # a host not yet given the new key
    retired = JwtKeys([new])
    assert reason(retired, old_token) == "invalid"
    named = JwtKeys([old, new], signing_kid="2026")
    assert named.signing_key.kid == "2026"


def test_asymmetric_rotation_with_a_public_only_key() -> None:
    old_pem, new_pem = ed_pem(), ec_pem()
    old_token = JwtKeys([JwtKey.from_pem(old_pem)]).encode(claims())
    verify_old = JwtKey.from_pem(public_pem(old_pem))
    assert verify_old.signing is None
    keys = JwtKeys([JwtKey.from_pem(new_pem), verify_old])
    assert keys.signing_key.algorithm == "ES256"
    assert keys.decode(old_token, typ="access")["sub"] == "alice"
    with pytest.raises(InvalidInputError):
        JwtKeys([verify_old])  # nothing can sign


def test_algorithm_confusion_refused() -> None:
    pem = ed_pem()
    key = JwtKey.from_pem(pem)
    keys = JwtKeys([key])

    # An HS256 token MACed with the public key's PEM (which an attacker knows), under the
    # EdDSA key's kid: the classic confusion when a verifier trusts the header's alg.
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = b64(json.dumps({**claims(), "iss": "voxwire"}).encode())
    mac = hmac.new(public_pem(pem), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert reason(keys, f"{head}.{body}.{b64(mac)}") == "invalid"
    unsigned = pyjwt.encode(
        {**claims(), "iss": "voxwire"}, None, algorithm="none", headers={"kid": key.kid}
    )
    assert reason(keys, unsigned) == "invalid"


def test_typ_confusion_and_required_claims() -> None:
    keys = JwtKeys.hs256(os.urandom(32))
    refresh = keys.encode(claims("refresh", fam="f"))
    assert reason(keys, refresh, "access") == "invalid"
    access = keys.encode(claims())
    assert reason(keys, access, "refresh") == "invalid"
    for missing in ("sub", "exp", "iat", "jti", "typ"):
        c = claims()
        del c[missing]
        assert reason(keys, keys.encode(c)) == "invalid", missing


def test_issuer_checked() -> None:
    secret = os.urandom(32)
    a = JwtKeys([JwtKey.hs256(secret, kid="k")], issuer="voxwire-a")
    b = JwtKeys([JwtKey.hs256(secret, kid="k")], issuer="voxwire-b")
    assert reason(b, a.encode(claims())) == "invalid"


def test_bad_key_material() -> None:
    with pytest.raises(InvalidInputError):
        JwtKey.hs256(b"short")
    with pytest.raises(InvalidInputError):
        JwtKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidInputError):
        JwtKey.from_pem(rsa_pem)
    k = JwtKey.hs256(os.urandom(32), kid="x")
    with pytest.raises(InvalidInputError):
        JwtKeys([k, k])


def test_secret_from_the_environment(tmp_path: Path) -> None:
    secret = "s" * 40
    a = default_jwt_keys(state_dir=tmp_path, environ={"VOXWIRE_JWT_SECRET": secret})
    b = JwtKeys.hs256(secret)
    assert b.decode(a.encode(claims()), typ="access")["sub"] == "alice"
    assert not (tmp_path / "jwt-secret").exists()
    with pytest.raises(InvalidInputError):
        default_jwt_keys(state_dir=tmp_path, environ={"VOXWIRE_JWT_SECRET": "short"})


def test_secret_persisted_in_the_state_dir(tmp_path: Path) -> None:
    d = tmp_path / "state" / "voxwire"
    a = default_jwt_keys(state_dir=d, environ={})
    f = d / "jwt-secret"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    b = default_jwt_keys(state_dir=d, environ={})  # a restart: the same secret
    assert b.decode(a.encode(claims()), typ="access")["sub"] == "alice"
    assert [p.name for p in d.iterdir()] == ["jwt-secret"]  # no temp files left
    other = default_jwt_keys(state_dir=tmp_path / "elsewhere", environ={})
    assert reason(other, a.encode(claims())) == "invalid"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_workers_starting_together_share_one_secret(tmp_path: Path) -> None:
    code = (
        "import sys; from voxwire.auth import default_jwt_keys; "
        "print(default_jwt_keys(state_dir=sys.argv[1], environ={}).signing_key.kid)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(voxwire.__file__).parent.parent)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "s")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    kids = {p.communicate(timeout=50)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(kids) == 1 and kids != {""}


def test_keys_from_a_config_table(tmp_path: Path) -> None:
    pem = ed_pem()
    (tmp_path / "new.pem").write_bytes(pem)
    old_pem = ec_pem()
    (tmp_path / "old.pub").write_bytes(public_pem(old_pem))
    (tmp_path / "hs").write_text("h" * 40 + "\n")
    table = {
        "issuer": "vx-test",
        "leeway_s": 5,
        "keys": [
            {"kid": "new", "pem_file": str(tmp_path / "new.pem")},
            {"kid": "old", "pem_file": str(tmp_path / "old.pub")},
            {"kid": "hs", "secret_file": str(tmp_path / "hs")},
            {"kid": "env", "secret_env": "JWT_ENV_SECRET"},
        ],
    }
    keys = jwt_keys_from_config(table, environ={"JWT_ENV_SECRET": "e" * 40})
    assert keys.signing_key.kid == "new" and keys.issuer == "vx-test" and keys.leeway_s == 5
    old = JwtKeys([JwtKey.from_pem(old_pem, kid="old")], issuer="vx-test")
    assert keys.decode(old.encode(claims()), typ="access")["sub"] == "alice"
    env_signed = JwtKeys([JwtKey.hs256("e" * 40, kid="env")], issuer="vx-test")
    assert keys.decode(env_signed.encode(claims()), typ="access")["sub"] == "alice"
    switched = jwt_keys_from_config(
        {**table, "signing_kid": "hs"}, environ={"JWT_ENV_SECRET": "e" * 40}
    )
    assert switched.signing_key.kid == "hs"
    # No keys: the default secret of the state directory.
    a = jwt_keys_from_config({}, state_dir=tmp_path / "st", environ={})
    b = default_jwt_keys(state_dir=tmp_path / "st", environ={})
    assert a.signing_key.kid == b.signing_key.kid


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"bogus": 1}, "bogus"),
        ({"leeway_s": -1}, "leeway_s"),
        ({"keys": [{"secret": "x" * 40}]}, "keys[0]: expected"),
        ({"keys": [{"secret_env": "NOPE"}]}, "NOPE"),
        ({"keys": [{"secret_env": "SHORT"}]}, "32 bytes"),
        ({"keys": [{"pem_file": "/nonexistent/k.pem"}]}, "cannot read"),
        ({"keys": [{"secret_env": "GOOD", "secret_file": "/x"}]}, "one of"),
        ({"keys": [{"secret_env": "GOOD"}], "signing_kid": "missing"}, "signing key"),
        ({"keys": [{"pem_file": 5}]}, "keys[0].pem_file: expected a string"),
    ],
)
def test_bad_config_tables(table: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        jwt_keys_from_config(table, environ={"SHORT": "s", "GOOD": "g" * 40})
    assert says in str(e.value) and "\n" not in str(e.value)
    assert "g" * 40 not in str(e.value)
