"""The SQLite store: the embedded default, one file shared by the processes of one machine.

Every call runs on one worker thread that owns the store's connection, so the event loop never
waits on the disk or on a lock; the coroutine waits for it at most ``timeout`` seconds (queueing
included) and raises :class:`~voxwire.errors.StoreUnavailableError` past that. The file is in
WAL mode (readers never wait for the writer) with a ``busy_timeout`` of the same ``timeout``.
Operations that must be atomic across processes (consuming a token, rotating a refresh family,
taking a lease, counting a rate-limit hit) run in ``BEGIN IMMEDIATE`` transactions: the write
lock is taken before the first read, so two processes cannot both read the old state.

Stored times and expiry use this machine's wall clock (``time.time()``); expired rows are
ignored on read and purged lazily, at most once per ``purge_interval_s`` from a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from voxwire.errors import InvalidInputError, StoreUnavailableError
from voxwire.store.base import (
    ApiKeyRecord,
    ConversationRecord,
    RateDecision,
    Store,
    UserRecord,
)

__all__ = ["SQLiteStore", "default_sqlite_path"]

_T = TypeVar("_T")

#: The schema version kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    org TEXT NOT NULL,
    scopes TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    org TEXT NOT NULL,
    scopes TEXT NOT NULL,
    user TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_id ON api_keys (key_id);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS families (
    family TEXT PRIMARY KEY,
    current TEXT NOT NULL,
    subject TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    dialect TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished INTEGER NOT NULL,
    item_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner
    ON conversations (owner, updated_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS items (
    conv_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_hits (
    key TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_hits_by_key ON rate_hits (key, at);
CREATE INDEX IF NOT EXISTS rate_hits_by_expiry ON rate_hits (expires_at);
"""

_PURGE = (
    "DELETE FROM tokens WHERE expires_at <= ?",
    "DELETE FROM families WHERE expires_at <= ?",
    "DELETE FROM leases WHERE expires_at <= ?",
    "DELETE FROM rate_hits WHERE expires_at <= ?",
)

_CONV_COLUMNS = (
    "id, owner, dialect, agent_id, name, metadata, created_at, updated_at, finished, item_count"
)


def default_sqlite_path() -> Path:
    """Where the store lives by default: ``$XDG_STATE_HOME/voxwire/voxwire.db``.

    Without ``XDG_STATE_HOME`` (or with a relative one, which the XDG spec says to ignore) it
    is ``~/.local/state/voxwire/voxwire.db``.
    """
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "voxwire" / "voxwire.db"


def _check_ttl(ttl_s: float, what: str = "ttl_s") -> None:
    if not ttl_s > 0:
        raise InvalidInputError(f"{what} must be a positive number of seconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SQLiteStore(Store):
    """The :class:`~voxwire.store.base.Store` on a SQLite file (see the module docstring).

    ``path`` is the database file (``None``: :func:`default_sqlite_path`); its folder is
    created with mode 0700 and the file with 0600 when missing. ``timeout`` bounds every call,
    in seconds. ``purge_interval_s`` is how often, at most, a write also deletes expired rows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 2.0,
        purge_interval_s: float = 60.0,
    ) -> None:
        if not timeout > 0:
            raise InvalidInputError("timeout must be a positive number of seconds")
        self.path = Path(path) if path is not None else default_sqlite_path()
        self.timeout = float(timeout)
        self.purge_interval_s = float(purge_interval_s)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_purge = 0.0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, timeout={self.timeout})"

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn(conn)`` on the worker thread, bounded by ``timeout``."""
        executor = self._executor
        if executor is None:
            raise StoreUnavailableError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, self._call, fn)
        except RuntimeError as e:  # the executor was shut down meanwhile
            raise StoreUnavailableError("the SQLite store is closed") from e
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError as e:
            raise StoreUnavailableError(
                f"the SQLite store did not answer within {self.timeout:g} s"
            ) from e

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailableError("the SQLite store is closed")
        try:
            return fn(conn)
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as e:
            # "database is locked" past busy_timeout, disk full, a damaged file: the message
            # is SQLite's own and names no value.
            raise StoreUnavailableError(f"SQLite store: {e}") from e

    @contextlib.contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[float]:
        """A ``BEGIN IMMEDIATE`` transaction; yields the time it started (``time.time()``)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            if now - self._last_purge >= self.purge_interval_s:
                for sql in _PURGE:
                    conn.execute(sql, (now,))
                self._last_purge = now
            yield now
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _connect(self) -> None:
        path = self.path
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            # mkdir's mode is filtered by the umask: make the last level private for sure.
            path.parent.chmod(0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailableError(f"SQLite store: WAL mode refused ({mode})")
            # In WAL mode NORMAL survives process crashes (a power cut may lose the last
            # commits, never corrupt the file).
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailableError(
                    f"SQLite store: schema version {version} is newer than this voxwire's"
                    f" ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _open_on_worker(self) -> None:
        try:
            self._connect()
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as e:
            raise StoreUnavailableError(f"SQLite store: cannot open {self.path}: {e}") from e

    def _close_on_worker(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the folder, the file and the schema; start the worker thread."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxwire-sqlite")
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(executor, self._open_on_worker), self.timeout
            )
        except TimeoutError as e:
            executor.shutdown(wait=False)
            raise StoreUnavailableError(
                f"the SQLite store did not open within {self.timeout:g} s"
            ) from e
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        """Close the connection and stop the worker thread (waits for a running call)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_on_worker)
        executor.shutdown(wait=True)

    async def ping(self) -> bool:
        """Whether a trivial query answers within the timeout; never raises."""
        try:
            await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return True

    # -- users ----------------------------------------------------------------------------

    @staticmethod
    def _user_row(user: UserRecord) -> tuple[Any, ...]:
        created = user.created_at or time.time()
        return (
            user.name,
            user.password_hash,
            user.org,
            _dumps(list(user.scopes)),
            _dumps(user.profile),
            created,
        )

    @staticmethod
    def _user_from(row: tuple[Any, ...]) -> UserRecord:
        return UserRecord(
            name=row[0],
            password_hash=row[1],
            org=row[2],
            scopes=tuple(json.loads(row[3])),
            profile=json.loads(row[4]),
            created_at=row[5],
        )

    async def add_user(self, user: UserRecord) -> bool:
        """Create a user; False when the name is taken (nothing changes)."""
        row = self._user_row(user)

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)", row)
            return cur.rowcount == 1

        return await self._run(op)

    async def set_user(self, user: UserRecord) -> None:
        """Create or replace a user (password change)."""
        row = self._user_row(user)
        await self._run(
            lambda conn: conn.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?, ?)", row)
        )

    async def get_user(self, name: str) -> UserRecord | None:
        """A user by name."""

        def op(conn: sqlite3.Connection) -> UserRecord | None:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            return None if row is None else self._user_from(row)

        return await self._run(op)

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""

        def op(conn: sqlite3.Connection) -> list[UserRecord]:
            rows = conn.execute("SELECT * FROM users ORDER BY name").fetchall()
            return [self._user_from(r) for r in rows]

        return await self._run(op)

    async def remove_user(self, name: str) -> bool:
        """Delete a user (their API keys stay unless removed too); False if unknown."""
        return await self._run(
            lambda conn: conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0
        )

    # -- API keys -------------------------------------------------------------------------

    @staticmethod
    def _key_from(row: tuple[Any, ...]) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_hash=row[0],
            key_id=row[1],
            org=row[2],
            scopes=tuple(json.loads(row[3])),
            user=row[4],
            created_at=row[5],
        )

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """Store a key (by hash); replaces a record with the same hash."""
        row = (
            key.key_hash,
            key.key_id,
            key.org,
            _dumps(list(key.scopes)),
            key.user,
            key.created_at or time.time(),
        )
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?, ?, ?, ?)", row
            )
        )

    async def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """A key by the sha256 hex of the key."""

        def op(conn: sqlite3.Connection) -> ApiKeyRecord | None:
            row = conn.execute("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
            return None if row is None else self._key_from(row)

        return await self._run(op)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key record, by key id."""

        def op(conn: sqlite3.Connection) -> list[ApiKeyRecord]:
            rows = conn.execute("SELECT * FROM api_keys ORDER BY key_id, key_hash").fetchall()
            return [self._key_from(r) for r in rows]

        return await self._run(op)

    async def remove_api_key(self, key_id: str) -> bool:
        """Delete a key by its public id; False if unknown."""
        return await self._run(
            lambda conn: (
                conn.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,)).rowcount > 0
            )
        )

    # -- single-use tokens ----------------------------------------------------------------

    async def put_token(self, token_hash: str, payload: dict[str, Any], ttl_s: float) -> None:
        """Keep a single-use token's payload for ``ttl_s`` seconds."""
        _check_ttl(ttl_s)
        data = _dumps(payload)

        def op(conn: sqlite3.Connection) -> None:
            with self._write(conn) as now:
                conn.execute(
                    "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?)",
                    (token_hash, data, now + ttl_s),
                )

        await self._run(op)

    async def consume_token(self, token_hash: str) -> dict[str, Any] | None:
        """Take a token's payload and delete it, atomically across processes."""

        def op(conn: sqlite3.Connection) -> dict[str, Any] | None:
            with self._write(conn) as now:
                rows = conn.execute(
                    "DELETE FROM tokens WHERE token_hash = ? RETURNING payload, expires_at",
                    (token_hash,),
                ).fetchall()
            if not rows or rows[0][1] <= now:
                return None
            payload: dict[str, Any] = json.loads(rows[0][0])
            return payload

        return await self._run(op)

    # -- refresh-token families -----------------------------------------------------------

    async def start_family(self, family: str, current: str, subject: str, ttl_s: float) -> None:
        """A new refresh-token family whose valid token is ``current`` (a token id)."""
        _check_ttl(ttl_s)

        def op(conn: sqlite3.Connection) -> None:
            with self._write(conn) as now:
                conn.execute(
                    "INSERT OR REPLACE INTO families VALUES (?, ?, ?, 0, ?)",
                    (family, current, subject, now + ttl_s),
                )

        await self._run(op)

    async def rotate_family(self, family: str, presented: str, new: str, ttl_s: float) -> str:
        """Rotate atomically: ``"ok"``, ``"reused"`` (and revoke) or ``"revoked"``."""
        _check_ttl(ttl_s)

        def op(conn: sqlite3.Connection) -> str:
            with self._write(conn) as now:
                row = conn.execute(
                    "SELECT current, revoked, expires_at FROM families WHERE family = ?",
                    (family,),
                ).fetchone()
                if row is None or row[1] or row[2] <= now:
                    return "revoked"
                if row[0] != presented:
                    conn.execute("UPDATE families SET revoked = 1 WHERE family = ?", (family,))
                    return "reused"
                conn.execute(
                    "UPDATE families SET current = ?, expires_at = ? WHERE family = ?",
                    (new, now + ttl_s, family),
                )
                return "ok"

        return await self._run(op)

    async def revoke_family(self, family: str) -> None:
        """Revoke a family (logout)."""

        def op(conn: sqlite3.Connection) -> None:
            with self._write(conn):
                conn.execute("UPDATE families SET revoked = 1 WHERE family = ?", (family,))

        await self._run(op)

    # -- conversations --------------------------------------------------------------------

    @staticmethod
    def _conv_from(row: tuple[Any, ...]) -> ConversationRecord:
        return ConversationRecord(
            id=row[0],
            owner=row[1],
            dialect=row[2],
            agent_id=row[3],
            name=row[4],
            metadata=json.loads(row[5]),
            created_at=row[6],
            updated_at=row[7],
            finished=bool(row[8]),
            item_count=row[9],
        )

    async def create_conversation(self, conv: ConversationRecord) -> bool:
        """Create a conversation, empty; False when the id is taken."""
        created = conv.created_at or time.time()
        conv = replace(conv, created_at=created, updated_at=conv.updated_at or created)
        row = (
            conv.id,
            conv.owner,
            conv.dialect,
            conv.agent_id,
            conv.name,
            _dumps(conv.metadata),
            conv.created_at,
            conv.updated_at,
            int(conv.finished),
            0,
        )

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn):
                cur = conn.execute(
                    "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                if cur.rowcount != 1:
                    return False
                # Items left by a conversation deleted while a writer still appended.
                conn.execute("DELETE FROM items WHERE conv_id = ?", (conv.id,))
                return True

        return await self._run(op)

    async def get_conversation(self, conv_id: str) -> ConversationRecord | None:
        """A conversation's metadata."""

        def op(conn: sqlite3.Connection) -> ConversationRecord | None:
            row = conn.execute(
                f"SELECT {_CONV_COLUMNS} FROM conversations WHERE id = ?", (conv_id,)
            ).fetchone()
            return None if row is None else self._conv_from(row)

        return await self._run(op)

    async def list_conversations(
        self, owner: str, *, dialect: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[ConversationRecord], int]:
        """An owner's conversations, newest (``updated_at``) first, and their total count."""
        if offset < 0 or limit < 0:
            raise InvalidInputError("offset and limit must not be negative")
        where = "owner = ?" if dialect is None else "owner = ? AND dialect = ?"
        args: tuple[Any, ...] = (owner,) if dialect is None else (owner, dialect)

        def op(conn: sqlite3.Connection) -> tuple[list[ConversationRecord], int]:
            # One read transaction, so the page and the count agree.
            conn.execute("BEGIN")
            try:
                total = conn.execute(
                    f"SELECT COUNT(*) FROM conversations WHERE {where}", args
                ).fetchone()[0]
                rows = conn.execute(
                    f"SELECT {_CONV_COLUMNS} FROM conversations WHERE {where}"
                    " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                    (*args, limit, offset),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return [self._conv_from(r) for r in rows], total

        return await self._run(op)

    async def update_conversation(
        self,
        conv_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        finished: bool | None = None,
        agent_id: str | None = None,
    ) -> bool:
        """Change the given fields (and ``updated_at``); False if unknown."""
        sets = ["updated_at = ?"]
        args: list[Any] = [time.time()]
        for column, value in (
            ("name", name),
            ("metadata", None if metadata is None else _dumps(metadata)),
            ("finished", None if finished is None else int(finished)),
            ("agent_id", agent_id),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        sql = f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?"
        args.append(conv_id)

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn):
                return conn.execute(sql, args).rowcount > 0

        return await self._run(op)

    async def append_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Append JSON-ready items (and set ``updated_at``); False if unknown."""
        data = [_dumps(item) for item in items]

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn) as now:
                rows = conn.execute(
                    "UPDATE conversations SET item_count = item_count + ?, updated_at = ?"
                    " WHERE id = ? RETURNING item_count",
                    (len(data), now, conv_id),
                ).fetchall()
                if not rows:
                    return False
                start = rows[0][0] - len(data)
                conn.executemany(
                    "INSERT INTO items VALUES (?, ?, ?)",
                    [(conv_id, start + i, d) for i, d in enumerate(data)],
                )
                return True

        return await self._run(op)

    async def set_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Replace all items (and set ``updated_at``); False if unknown."""
        data = [_dumps(item) for item in items]

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn) as now:
                cur = conn.execute(
                    "UPDATE conversations SET item_count = ?, updated_at = ? WHERE id = ?",
                    (len(data), now, conv_id),
                )
                if cur.rowcount == 0:
                    return False
                conn.execute("DELETE FROM items WHERE conv_id = ?", (conv_id,))
                conn.executemany(
                    "INSERT INTO items VALUES (?, ?, ?)",
                    [(conv_id, i, d) for i, d in enumerate(data)],
                )
                return True

        return await self._run(op)

    async def get_items(self, conv_id: str, *, last: int | None = None) -> list[dict[str, Any]]:
        """The items in order (only the ``last`` N when given)."""
        if last is not None and last < 0:
            raise InvalidInputError("last must not be negative")

        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            if last is None:
                rows = conn.execute(
                    "SELECT data FROM items WHERE conv_id = ? ORDER BY seq", (conv_id,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT data FROM (SELECT seq, data FROM items WHERE conv_id = ?"
                    " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                    (conv_id, last),
                ).fetchall()
            return [json.loads(r[0]) for r in rows]

        return await self._run(op)

    async def delete_conversation(self, conv_id: str) -> bool:
        """Delete a conversation and its items; False if unknown."""

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn):
                n = conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)).rowcount
                conn.execute("DELETE FROM items WHERE conv_id = ?", (conv_id,))
                return n > 0

        return await self._run(op)

    # -- leases ---------------------------------------------------------------------------

    async def acquire_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Take ``key`` for ``holder`` unless another holder has an unexpired lease on it."""
        _check_ttl(ttl_s)

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn) as now:
                row = conn.execute(
                    "SELECT holder, expires_at FROM leases WHERE key = ?", (key,)
                ).fetchone()
                if row is not None and row[0] != holder and row[1] > now:
                    return False
                conn.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (key, holder, now + ttl_s)
                )
                return True

        return await self._run(op)

    async def renew_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Extend one's own unexpired lease; False when it was lost."""
        _check_ttl(ttl_s)

        def op(conn: sqlite3.Connection) -> bool:
            with self._write(conn) as now:
                cur = conn.execute(
                    "UPDATE leases SET expires_at = ? WHERE key = ? AND holder = ?"
                    " AND expires_at > ?",
                    (now + ttl_s, key, holder, now),
                )
                return cur.rowcount > 0

        return await self._run(op)

    async def release_lease(self, key: str, holder: str) -> None:
        """Give up one's own lease (a no-op for another holder's)."""

        def op(conn: sqlite3.Connection) -> None:
            with self._write(conn):
                conn.execute("DELETE FROM leases WHERE key = ? AND holder = ?", (key, holder))

        await self._run(op)

    # -- rate limits ----------------------------------------------------------------------

    async def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        """Count one event against a sliding window of at most ``limit`` events."""
        _check_ttl(window_s, "window_s")
        if limit < 0:
            raise InvalidInputError("limit must not be negative")

        def op(conn: sqlite3.Connection) -> RateDecision:
            with self._write(conn) as now:
                conn.execute(
                    "DELETE FROM rate_hits WHERE key = ? AND at <= ?", (key, now - window_s)
                )
                count, oldest = conn.execute(
                    "SELECT COUNT(*), MIN(at) FROM rate_hits WHERE key = ?", (key,)
                ).fetchone()
                if count >= limit:
                    reset = window_s if oldest is None else max(0.0, oldest + window_s - now)
                    return RateDecision(allowed=False, remaining=0, reset_s=reset)
                conn.execute("INSERT INTO rate_hits VALUES (?, ?, ?)", (key, now, now + window_s))
                reset = window_s if oldest is None else max(0.0, oldest + window_s - now)
                return RateDecision(allowed=True, remaining=limit - count - 1, reset_s=reset)

        return await self._run(op)
