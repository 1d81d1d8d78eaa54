"""Fixtures of the credential tests: a real SQLite store in a temporary folder."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from voxwire.auth import Authenticator, JwtKeys
from voxwire.store import SQLiteStore, Store, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each test on a real SQLite file, then on the session's redis-server (own prefix)."""
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "voxwire.db")
    else:
        url = request.getfixturevalue("redis_url")
        s = open_store(f"{url}?prefix=auth-{os.urandom(6).hex()}:")
    async with s:
        yield s


def dump_store(store: Store) -> str:
    """Every value the store holds, as text: what someone reading its file or server sees."""
    out: list[str] = []
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for t in tables:
                out += [repr(row) for row in conn.execute(f'SELECT * FROM "{t}"')]
        finally:
            conn.close()
        return "\n".join(out)
    import redis

    prefix: str = store.prefix  # type: ignore[attr-defined]
    client = redis.Redis.from_url(store.url.split("?")[0])  # type: ignore[attr-defined]
    try:
        for key in client.scan_iter(match=prefix + "*"):
            kind = client.type(key).decode()
            value: object = {
                "string": client.get,
                "hash": client.hgetall,
                "list": lambda k: client.lrange(k, 0, -1),
                "set": client.smembers,
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            }.get(kind, lambda k: None)(key)
            out.append(f"{key!r} {value!r}")
    finally:
        client.close()
    assert out, "nothing found under the store's prefix: the dump reads the wrong place"
    return "\n".join(out)


@pytest.fixture
def jwt_keys() -> JwtKeys:
    return JwtKeys.hs256(os.urandom(32))


@pytest.fixture
def auth(store: Store, jwt_keys: JwtKeys) -> Authenticator:
    return Authenticator(store, jwt=jwt_keys)


@pytest.fixture
def dump() -> Callable[[Store], str]:
    """:func:`dump_store`, for tests."""
    return dump_store
