"""The Redis store: state shared by several processes and hosts.

It uses redis-py's asyncio client (the ``server`` extra). Every operation that must be atomic
(consuming a token, rotating a refresh family, the leases, the rate window, the conversation
writes that touch several keys) is one Lua script, so it is atomic on the server whatever the
number of clients. Single-use tokens and leases expire by Redis ``PX`` expiry; rate windows
are timed by the server's ``TIME``; so every host agrees on the clock that matters.

Every call is bounded by ``timeout`` (socket and connect timeouts too); a timeout or a
connection error raises :class:`~voxwire.errors.StoreUnavailableError`. The client reconnects
by itself: once Redis is back, calls work again on the same store object.

Keys live under ``prefix`` (default ``voxwire:``). It needs a standalone Redis (or the primary
of a Sentinel set) of version 5 or later; Redis Cluster is not supported (the scripts touch
keys they derive from a conversation's owner).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from voxwire.errors import InvalidInputError, StoreUnavailableError
from voxwire.store.base import (
    ApiKeyRecord,
    ConversationRecord,
    RateDecision,
    Store,
    UserRecord,
)

__all__ = ["RedisStore"]

_T = TypeVar("_T")

# KEYS[1] token. Returns the payload or nil.
_CONSUME = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
"""

# KEYS[1] family; ARGV presented, new, ttl_ms.
_ROTATE = """
local h = redis.call('HMGET', KEYS[1], 'current', 'revoked')
if not h[1] or h[2] == '1' then return 'revoked' end
if h[1] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return 'reused'
end
redis.call('HSET', KEYS[1], 'current', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'ok'
"""

# KEYS[1] family. HSET on a missing (expired) key would create it without expiry: guard.
_REVOKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', '1') end
return 0
"""

# KEYS[1] lease; ARGV holder, ttl_ms.
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] the window's sorted set; ARGV limit, window_us, a member suffix unique to the call.
# Scores are the server's TIME in microseconds. Returns {allowed, remaining, reset_us}.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
local reset = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
if reset < 0 then reset = 0 end
if count >= limit then return {0, 0, reset} end
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, limit - count - 1, reset}
"""

# KEYS[1] api-key hash; ARGV key_id. Deletes every record with that key id.
_REMOVE_KEY = """
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local ok, rec = pcall(cjson.decode, all[i + 1])
  if ok and rec['key_id'] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n
"""

# Conversations: conv:ID a hash; items:ID a list of JSON strings; cidx:OWNER and
# cidxd:DIALECT:OWNER sorted sets of ids scored by updated_at. Scores and times travel as the
# strings Python wrote (Lua's own number formatting would round them).
_CONV_LIB = """
local p = ARGV[1]
local function index(id, owner, dialect, score)
  redis.call('ZADD', p .. 'cidx:' .. owner, score, id)
  redis.call('ZADD', p .. 'cidxd:' .. dialect .. ':' .. owner, score, id)
end
local function push(key, first)
  for i = first, #ARGV, 1000 do
    redis.call('RPUSH', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
end
"""

# KEYS conv, items; ARGV prefix, id, owner, dialect, updated_at, field/value pairs...
_CREATE = (
    _CONV_LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('DEL', KEYS[2])
index(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
"""
)

# KEYS conv; ARGV prefix, id, now, field/value pairs...
_UPDATE = (
    _CONV_LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
local o = redis.call('HMGET', KEYS[1], 'owner', 'dialect')
index(ARGV[2], o[1], o[2], ARGV[3])
return 1
"""
)

# KEYS conv, items; ARGV prefix, id, now, replace ('1' or '0'), items...
_ITEMS = (
    _CONV_LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = #ARGV - 4
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'item_count', n)
else
  redis.call('HINCRBY', KEYS[1], 'item_count', n)
end
push(KEYS[2], 5)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
local o = redis.call('HMGET', KEYS[1], 'owner', 'dialect')
index(ARGV[2], o[1], o[2], ARGV[3])
return 1
"""
)

# KEYS conv, items; ARGV prefix, id.
_DELETE = (
    _CONV_LIB
    + """
local o = redis.call('HMGET', KEYS[1], 'owner', 'dialect')
redis.call('DEL', KEYS[2])
if not o[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', p .. 'cidx:' .. o[1], ARGV[2])
redis.call('ZREM', p .. 'cidxd:' .. o[2] .. ':' .. o[1], ARGV[2])
return 1
"""
)

# KEYS index; ARGV prefix, offset, limit. Returns {total, hgetall, hgetall, ...}.
_LIST = """
local total = redis.call('ZCARD', KEYS[1])
local out = {total}
local limit = tonumber(ARGV[3])
if limit == 0 then return out end
local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[2], tonumber(ARGV[2]) + limit - 1)
for _, id in ipairs(ids) do
  table.insert(out, redis.call('HGETALL', ARGV[1] .. 'conv:' .. id))
end
return out
"""


def _check_ttl(ttl_s: float, what: str = "ttl_s") -> None:
    if not ttl_s > 0:
        raise InvalidInputError(f"{what} must be a positive number of seconds")


def _ms(seconds: float) -> int:
    """Milliseconds for PX / PEXPIRE: rounded up, at least 1."""
    return max(1, int(-(-seconds * 1000 // 1)))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _safe_url(url: str) -> str:
    """The URL without its user and password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStore(Store):
    """The :class:`~voxwire.store.base.Store` on Redis (see the module docstring).

    ``url`` is a redis-py URL (``redis://[[user]:password@]host:port/db``, ``rediss://`` for
    TLS, ``unix:///path.sock?db=N``). ``timeout`` bounds every call, in seconds. ``prefix``
    is put before every key, so several deployments can share one database.
    """

    def __init__(self, url: str, *, timeout: float = 2.0, prefix: str = "voxwire:") -> None:
        if not timeout > 0:
            raise InvalidInputError("timeout must be a positive number of seconds")
        self.url = url
        self.timeout = float(timeout)
        self.prefix = prefix
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._seq = itertools.count()
        self._tag = os.urandom(6).hex()

    def __repr__(self) -> str:
        return f"RedisStore({_safe_url(self.url)!r}, prefix={self.prefix!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _new_client(self) -> aioredis.Redis:
        try:
            return aioredis.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                # One immediate retry: after a restart of Redis, the pool's old connections
                # fail once, and the retry reconnects.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as e:
            raise InvalidInputError(f"not a Redis URL: {_safe_url(self.url)}") from e

    async def _bounded(self, aw: Awaitable[_T]) -> _T:
        try:
            return await asyncio.wait_for(aw, self.timeout)
        except TimeoutError as e:
            raise StoreUnavailableError(
                f"the Redis store at {_safe_url(self.url)} did not answer within {self.timeout:g} s"
            ) from e
        except RedisError as e:
            raise StoreUnavailableError(
                f"the Redis store at {_safe_url(self.url)} is unavailable ({type(e).__name__})"
            ) from e

    @property
    def _r(self) -> aioredis.Redis:
        client = self._client
        if client is None:
            raise StoreUnavailableError("the Redis store is not open")
        return client

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self._client is None:
            raise StoreUnavailableError("the Redis store is not open")
        return await self._bounded(self._scripts[name](keys=keys, args=args))

    def _k(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the client and check that Redis answers (else StoreUnavailableError)."""
        if self._client is not None:
            return
        client = self._new_client()
        self._scripts = {
            name: client.register_script(src)
            for name, src in (
                ("consume", _CONSUME),
                ("rotate", _ROTATE),
                ("revoke", _REVOKE),
                ("acquire", _ACQUIRE),
                ("renew", _RENEW),
                ("release", _RELEASE),
                ("hit", _HIT),
                ("remove_key", _REMOVE_KEY),
                ("create", _CREATE),
                ("update", _UPDATE),
                ("items", _ITEMS),
                ("delete", _DELETE),
                ("list", _LIST),
            )
        }
        try:
            await self._bounded(client.ping())
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def close(self) -> None:
        """Close the client and its connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers PING within the timeout; never raises."""
        try:
            return bool(await self._bounded(self._r.ping()))
        except Exception:
            return False

    # -- users ----------------------------------------------------------------------------

    @staticmethod
    def _user_json(user: UserRecord) -> str:
        return _dumps(
            {
                "name": user.name,
                "password_hash": user.password_hash,
                "org": user.org,
                "scopes": list(user.scopes),
                "profile": user.profile,
                "created_at": user.created_at or time.time(),
            }
        )

    @staticmethod
    def _user_from(data: str | bytes) -> UserRecord:
        d = json.loads(data)
        return UserRecord(
            name=d["name"],
            password_hash=d["password_hash"],
            org=d["org"],
            scopes=tuple(d["scopes"]),
            profile=d["profile"],
            created_at=d["created_at"],
        )

    async def add_user(self, user: UserRecord) -> bool:
        """Create a user; False when the name is taken (nothing changes)."""
        data = self._user_json(user)
        return bool(await self._bounded(self._r.hsetnx(self._k("users"), user.name, data)))

    async def set_user(self, user: UserRecord) -> None:
        """Create or replace a user (password change)."""
        data = self._user_json(user)
        await self._bounded(self._r.hset(self._k("users"), user.name, data))

    async def get_user(self, name: str) -> UserRecord | None:
        """A user by name."""
        data = await self._bounded(self._r.hget(self._k("users"), name))
        return None if data is None else self._user_from(data)

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        data = await self._bounded(self._r.hgetall(self._k("users")))
        return [self._user_from(data[name]) for name in sorted(data)]

    async def remove_user(self, name: str) -> bool:
        """Delete a user (their API keys stay unless removed too); False if unknown."""
        return bool(await self._bounded(self._r.hdel(self._k("users"), name)))

    # -- API keys -------------------------------------------------------------------------

    @staticmethod
    def _key_from(data: str | bytes) -> ApiKeyRecord:
        d = json.loads(data)
        return ApiKeyRecord(
            key_hash=d["key_hash"],
            key_id=d["key_id"],
            org=d["org"],
            scopes=tuple(d["scopes"]),
            user=d["user"],
            created_at=d["created_at"],
        )

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """Store a key (by hash); replaces a record with the same hash."""
        data = _dumps(
            {
                "key_hash": key.key_hash,
                "key_id": key.key_id,
                "org": key.org,
                "scopes": list(key.scopes),
                "user": key.user,
                "created_at": key.created_at or time.time(),
            }
        )
        await self._bounded(self._r.hset(self._k("apikeys"), key.key_hash, data))

    async def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """A key by the sha256 hex of the key."""
        data = await self._bounded(self._r.hget(self._k("apikeys"), key_hash))
        return None if data is None else self._key_from(data)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key record, by key id."""
        data = await self._bounded(self._r.hgetall(self._k("apikeys")))
        keys = [self._key_from(v) for v in data.values()]
        return sorted(keys, key=lambda k: (k.key_id, k.key_hash))

    async def remove_api_key(self, key_id: str) -> bool:
        """Delete a key by its public id; False if unknown."""
        n = await self._script("remove_key", [self._k("apikeys")], [key_id])
        return int(n) > 0

    # -- single-use tokens ----------------------------------------------------------------

    async def put_token(self, token_hash: str, payload: dict[str, Any], ttl_s: float) -> None:
        """Keep a single-use token's payload for ``ttl_s`` seconds."""
        _check_ttl(ttl_s)
        await self._bounded(
            self._r.set(self._k("tok:", token_hash), _dumps(payload), px=_ms(ttl_s))
        )

    async def consume_token(self, token_hash: str) -> dict[str, Any] | None:
        """Take a token's payload and delete it, atomically (one script)."""
        data = await self._script("consume", [self._k("tok:", token_hash)], [])
        if data is None:
            return None
        payload: dict[str, Any] = json.loads(data)
        return payload

    # -- refresh-token families -----------------------------------------------------------

    async def start_family(self, family: str, current: str, subject: str, ttl_s: float) -> None:
        """A new refresh-token family whose valid token is ``current`` (a token id)."""
        _check_ttl(ttl_s)
        key = self._k("fam:", family)

        async def run() -> None:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping={"current": current, "subject": subject, "revoked": "0"})
                pipe.pexpire(key, _ms(ttl_s))
                await pipe.execute()

        await self._bounded(run())

    async def rotate_family(self, family: str, presented: str, new: str, ttl_s: float) -> str:
        """Rotate atomically: ``"ok"``, ``"reused"`` (and revoke) or ``"revoked"``."""
        _check_ttl(ttl_s)
        result = await self._script(
            "rotate", [self._k("fam:", family)], [presented, new, _ms(ttl_s)]
        )
        return str(result)

    async def revoke_family(self, family: str) -> None:
        """Revoke a family (logout)."""
        await self._script("revoke", [self._k("fam:", family)], [])

    # -- conversations --------------------------------------------------------------------

    @staticmethod
    def _conv_from(h: dict[Any, Any]) -> ConversationRecord:
        return ConversationRecord(
            id=h["id"],
            owner=h["owner"],
            dialect=h["dialect"],
            agent_id=h.get("agent_id", ""),
            name=h.get("name", ""),
            metadata=json.loads(h.get("metadata", "{}")),
            created_at=float(h.get("created_at", "0")),
            updated_at=float(h.get("updated_at", "0")),
            finished=h.get("finished") == "1",
            item_count=int(h.get("item_count", "0")),
        )

    async def create_conversation(self, conv: ConversationRecord) -> bool:
        """Create a conversation, empty; False when the id is taken."""
        created = conv.created_at or time.time()
        updated = conv.updated_at or created
        fields = {
            "id": conv.id,
            "owner": conv.owner,
            "dialect": conv.dialect,
            "agent_id": conv.agent_id,
            "name": conv.name,
            "metadata": _dumps(conv.metadata),
            "created_at": repr(created),
            "updated_at": repr(updated),
            "finished": "1" if conv.finished else "0",
            "item_count": "0",
        }
        args: list[Any] = [self.prefix, conv.id, conv.owner, conv.dialect, repr(updated)]
        for k, v in fields.items():
            args += [k, v]
        keys = [self._k("conv:", conv.id), self._k("items:", conv.id)]
        return int(await self._script("create", keys, args)) == 1

    async def get_conversation(self, conv_id: str) -> ConversationRecord | None:
        """A conversation's metadata."""
        h = await self._bounded(self._r.hgetall(self._k("conv:", conv_id)))
        return self._conv_from(h) if h else None

    async def list_conversations(
        self, owner: str, *, dialect: str | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[list[ConversationRecord], int]:
        """An owner's conversations, newest (``updated_at``) first, and their total count."""
        if offset < 0 or limit < 0:
            raise InvalidInputError("offset and limit must not be negative")
        index = (
            self._k("cidx:", owner) if dialect is None else self._k("cidxd:", dialect, ":", owner)
        )
        out = await self._script("list", [index], [self.prefix, offset, limit])
        convs = []
        for flat in out[1:]:
            if flat:  # a conversation deleted between the index and the hash: none
                convs.append(self._conv_from(dict(zip(flat[::2], flat[1::2], strict=True))))
        return convs, int(out[0])

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
        args: list[Any] = [self.prefix, conv_id, repr(time.time())]
        if name is not None:
            args += ["name", name]
        if metadata is not None:
            args += ["metadata", _dumps(metadata)]
        if finished is not None:
            args += ["finished", "1" if finished else "0"]
        if agent_id is not None:
            args += ["agent_id", agent_id]
        return int(await self._script("update", [self._k("conv:", conv_id)], args)) == 1

    async def _items(self, conv_id: str, items: list[dict[str, Any]], *, replace: bool) -> bool:
        args: list[Any] = [self.prefix, conv_id, repr(time.time()), "1" if replace else "0"]
        args += [_dumps(item) for item in items]
        keys = [self._k("conv:", conv_id), self._k("items:", conv_id)]
        return int(await self._script("items", keys, args)) == 1

    async def append_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Append JSON-ready items (and set ``updated_at``); False if unknown."""
        return await self._items(conv_id, items, replace=False)

    async def set_items(self, conv_id: str, items: list[dict[str, Any]]) -> bool:
        """Replace all items (and set ``updated_at``); False if unknown."""
        return await self._items(conv_id, items, replace=True)

    async def get_items(self, conv_id: str, *, last: int | None = None) -> list[dict[str, Any]]:
        """The items in order (only the ``last`` N when given)."""
        if last is not None and last < 0:
            raise InvalidInputError("last must not be negative")
        if last == 0:
            return []
        start = 0 if last is None else -last
        data = await self._bounded(self._r.lrange(self._k("items:", conv_id), start, -1))
        return [json.loads(d) for d in data]

    async def delete_conversation(self, conv_id: str) -> bool:
        """Delete a conversation and its items; False if unknown."""
        keys = [self._k("conv:", conv_id), self._k("items:", conv_id)]
        return int(await self._script("delete", keys, [self.prefix, conv_id])) == 1

    # -- leases ---------------------------------------------------------------------------

    async def acquire_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Take ``key`` for ``holder`` unless another holder has an unexpired lease on it."""
        _check_ttl(ttl_s)
        return (
            int(await self._script("acquire", [self._k("lease:", key)], [holder, _ms(ttl_s)])) == 1
        )

    async def renew_lease(self, key: str, holder: str, ttl_s: float) -> bool:
        """Extend one's own unexpired lease; False when it was lost."""
        _check_ttl(ttl_s)
        return int(await self._script("renew", [self._k("lease:", key)], [holder, _ms(ttl_s)])) == 1

    async def release_lease(self, key: str, holder: str) -> None:
        """Give up one's own lease (a no-op for another holder's)."""
        await self._script("release", [self._k("lease:", key)], [holder])

    # -- rate limits ----------------------------------------------------------------------

    async def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        """Count one event against a sliding window of at most ``limit`` events."""
        _check_ttl(window_s, "window_s")
        if limit < 0:
            raise InvalidInputError("limit must not be negative")
        window_us = max(1, round(window_s * 1_000_000))
        member = f"{self._tag}:{next(self._seq)}"
        allowed, remaining, reset_us = await self._script(
            "hit", [self._k("rate:", key)], [limit, window_us, member]
        )
        return RateDecision(
            allowed=bool(allowed), remaining=int(remaining), reset_s=int(reset_us) / 1_000_000
        )
