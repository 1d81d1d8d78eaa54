"""The store's interface: what the platform keeps beyond one connection and one process.

One :class:`Store`, two implementations run against the same test suite: SQLite (the embedded
default, one machine) and Redis (several processes and hosts). The audio hot path never calls
it: handshakes, turn boundaries and commands do. Every method is a coroutine bounded by the
store's ``timeout``: past it, or when the backend cannot be reached, it raises
:class:`voxwire.errors.StoreUnavailableError`.

Secrets are never stored in clear: API keys, single-use tokens and refresh tokens are kept
under a hash the caller computes (``sha256`` hex of the secret), passwords as a KDF hash.

Times and durations:

- Stored times (``created_at``, ``updated_at``) are wall-clock seconds (``time.time()``) of
  the calling process. A record passed in with ``created_at == 0.0`` (the default) is stamped
  by the store; a non-zero value is kept as given (imports, tests).
- Every duration (``ttl_s``, ``window_s``) is in seconds, a float, and must be positive.
  Expiry is judged by the backend's clock: the calling machine's wall clock for SQLite, the
  Redis server's for Redis (``PX`` expiry, ``TIME`` in rate windows), so several hosts agree.
- Expired rows are never returned; they are purged lazily.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class UserRecord:
    """A user who logs in with a password."""

    #: The login name, unique.
    name: str
    #: The KDF hash string (self-describing: algorithm, parameters, salt, digest).
    password_hash: str
    #: The organisation the user belongs to ("" for none).
    org: str = ""
    scopes: tuple[str, ...] = ()
    #: Public profile fields (for example rtguide's user object); never secrets.
    profile: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key, kept as the sha256 hex of the key."""

    key_hash: str
    #: A short public id of the key (for logs and ``voxwire keys list``), never the key.
    key_id: str
    org: str = ""
    scopes: tuple[str, ...] = ()
    #: The user the key acts for, if any.
    user: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class ConversationRecord:
    """A stored conversation's metadata; items are read and written separately.

    It is an amigo conversation, an rtguide chat session, a chatstream conversation or an
    atoms call transcript.
    """

    id: str
    #: The principal who owns it (``user:NAME`` or ``key:KEY_ID``); only they may use it.
    owner: str
    #: The dialect that created it (``openai``, ``amigo``, ``atoms``, ``chatstream``,
    #: ``rtguide``).
    dialect: str
    agent_id: str = ""
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished: bool = False
    #: How many items it holds.
    item_count: int = 0


@dataclass(frozen=True)
class RateDecision:
    """The answer of a sliding-window rate limit."""

    allowed: bool
    #: Hits left in the window after this one (0 when refused).
    remaining: int
    #: Seconds until the oldest hit in the window leaves it.
    reset_s: float


class Store(abc.ABC):
    """The platform's state (see the module docstring).

    Implementations are async-safe: one instance serves every session of a process.
    """

    #: Seconds any single call may take before it raises StoreUnavailableError.
    timeout: float = 2.0

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect / create the schema. Called once before use."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the backend answers now (for ``/readyz``); never raises."""

    # -- users ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_user(self, user: UserRecord) -> bool:
        """Create a user; False when the name is taken (nothing changes)."""

    @abc.abstractmethod
    async def set_user(self, user: UserRecord) -> None:
        """Create or replace a user (password change)."""

    @abc.abstractmethod
    async def get_user(self, name: str) -> UserRecord | None:
        """A user by name."""

    @abc.abstractmethod
    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""

    @abc.abstractmethod
    async def remove_user(self, name: str) -> bool:
        """Delete a user (their API keys stay unless removed too); False if unknown."""

    # -- API keys -------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """Store a key (by hash); replaces a record with the same hash."""

    @abc.abstractmethod
    async def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """A key by the sha256 hex of the key."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key record."""

    @abc.abstractmethod
    async def remove_api_key(self, key_id: str) -> bool:
        """Delete a key by its public id; False if unknown."""

    # -- single-use tokens ------------------------------------------------------------------

    @abc.abstractmethod
    async def put_token(self, token_hash: str, payload: dict[str, Any], ttl_s: float) -> None:
        """Keep a single-use token's payload for ``ttl_s`` seconds."""

    @abc.abstractmethod
    async def consume_token(self, token_hash: str) -> dict[str, Any] | None:
        """Take a token's payload and delete it, atomically across processes and hosts.

        Of two racing callers exactly one gets the payload. None when unknown, already
        consumed, or expired.
        """

    # -- refresh-token families -------------------------------------------------------------

    @abc.abstractmethod
    async def start_family(self, family: str, current: str, subject: str, ttl_s: float) -> None:
        """A new refresh-token family whose valid token is ``current`` (a token id)."""

    @abc.abstractmethod
    async def rotate_family(self, family: str, presented: str, new: str, ttl_s: float) -> str:
        """Rotate atomically.

        Returns ``"ok"`` when ``presented`` was the family's current token (``new`` now
        is); ``"reused"`` when it was an older one, in which case the family is revoked;
        ``"revoked"`` when the family is unknown, revoked or expired.

        Any ``presented`` id other than the current one counts as reused: token ids are
        signed into the tokens, so a wrong one is an old one. A revoked family stays known
        (answering ``"revoked"``) until its ttl runs out. ``ttl_s`` restarts the family's ttl.
        """

    @abc.abstractmethod
    async def revoke_family(self, family: str) -> None:
        """Revoke a family (logout)."""

    # -- conversations --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_conversation(self, conv: ConversationRecord) -> bool:
        """Create a conversation (its ``item_count`` is ignored: it starts empty).

        False when the id is taken (nothing changes). A zero ``created_at`` is stamped now;
        a zero ``updated_at`` becomes ``created_at``.
        """

    @abc.abstractmethod
    async def get_conversation(self, conv_id: str) -> ConversationRecord | None:
        """A conversation's metadata."""

    @abc.abstractmethod
    async def list_conversations(
        self, owner: str, *, dialect: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[ConversationRecord], int]:
        """An owner's conversations, newest (``updated_at``) first, and their total count.

        Ties in ``updated_at`` are ordered by id, descending. The count is of every match,
        not of the page.
        """

    @abc.abstractmethod
    async def update_conversation(
        self,
        conv_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        finished: bool | None = None,
        agent_id: str | None = None,
    ) -> bool:
        """Change the given fields (and ``updated_at``); False if unknown.

        ``metadata`` replaces the whole mapping (it is not merged).
        """

    @abc.abstractmethod
    async def append_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Append JSON-ready items (and set ``updated_at``); False if the conversation is unknown.

        Items are JSON-ready dicts: what comes back is ``json.loads(json.dumps(item))``.
        """

    @abc.abstractmethod
    async def set_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Replace all items (and set ``updated_at``); False if the conversation is unknown."""

    @abc.abstractmethod
    async def get_items(self, conv_id: str, *, last: int | None = None) -> list[dict[str, Any]]:
        """The items in order (only the ``last`` N when given)."""

    @abc.abstractmethod
    async def delete_conversation(self, conv_id: str) -> bool:
        """Delete a conversation and its items; False if unknown."""

    # -- leases (one active connection per principal and service) ---------------------------

    @abc.abstractmethod
    async def acquire_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Take ``key`` for ``holder`` unless another holder has an unexpired lease on it.

        Re-acquiring one's own lease renews it.
        """

    @abc.abstractmethod
    async def renew_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Extend one's own lease to ``ttl_s`` from now.

        False when it was lost: expired (taken by another or not), or released. A holder whose
        renewal fails calls :meth:`acquire_lease` to try to take it again.
        """

    @abc.abstractmethod
    async def release_lease(self, key: str, holder: str) -> None:
        """Give up one's own lease (a no-op for another holder's)."""

    # -- rate limits ----------------------------------------------------------------------

    @abc.abstractmethod
    async def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        """Count one event against a sliding window of at most ``limit`` events.

        The window is ``window_s`` seconds long. A refused hit is not counted. Every caller
        of one ``key`` should pass the same ``limit`` and ``window_s``.
        """
