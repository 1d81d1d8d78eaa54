"""The state store: one suite run against both backends (SQLite on a tmp file, Redis on a real
redis-server), then what is particular to each, then real processes racing on one store."""

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import voxwire
from voxwire.errors import InvalidInputError, StoreUnavailableError
from voxwire.store import (
    ApiKeyRecord,
    ConversationRecord,
    SQLiteStore,
    Store,
    UserRecord,
    default_sqlite_path,
    open_store,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BACKENDS = ["sqlite", "redis"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh store: a new SQLite file, or a new key prefix on the shared Redis."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state' / 'voxwire.db'}"
    redis_url = request.getfixturevalue("redis_url")
    return f"{redis_url}?prefix=t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened store of each backend."""
    async with open_store(store_url) as s:
        yield s


# -- lifecycle -------------------------------------------------------------------------------


@pytest.mark.network
async def test_ping_and_closed_store(store_url: str) -> None:
    s = open_store(store_url)
    with pytest.raises(StoreUnavailableError):
        await s.get_user("nobody")
    assert await s.ping() is False
    await s.open()
    assert await s.ping() is True
    await s.close()
    assert await s.ping() is False
    with pytest.raises(StoreUnavailableError):
        await s.get_user("nobody")
    await s.close()  # twice is fine


# -- users -----------------------------------------------------------------------------------


@pytest.mark.network
async def test_users(store: Store) -> None:
    bob = UserRecord(
        name="bob",
        password_hash="scrypt$n=16384$salt$digest",
        org="acme",
        scopes=("realtime", "admin"),
        profile={"display": "Bob Ünicode", "n": 3},
    )
    assert await store.add_user(bob) is True
    assert await store.add_user(UserRecord(name="bob", password_hash="other")) is False
    got = await store.get_user("bob")
    assert got is not None
    assert got.password_hash == bob.password_hash  # the failed add changed nothing
    assert (got.org, got.scopes, got.profile) == ("acme", ("realtime", "admin"), bob.profile)
    assert got.created_at > 0  # stamped by the store
    assert await store.get_user("alice") is None

    await store.set_user(UserRecord(name="alice", password_hash="h1", created_at=123.5))
    await store.set_user(UserRecord(name="bob", password_hash="new", created_at=got.created_at))
    bob2 = await store.get_user("bob")
    assert bob2 is not None and bob2.password_hash == "new" and bob2.org == ""
    assert [u.name for u in await store.list_users()] == ["alice", "bob"]
    alice = await store.get_user("alice")
    assert alice is not None and alice.created_at == 123.5  # kept as given

    assert await store.remove_user("alice") is True
    assert await store.remove_user("alice") is False
    assert [u.name for u in await store.list_users()] == ["bob"]


# -- API keys --------------------------------------------------------------------------------


@pytest.mark.network
async def test_api_keys(store: Store) -> None:
    k1 = ApiKeyRecord(key_hash="a" * 64, key_id="key_1", org="acme", scopes=("x",), user="bob")
    k2 = ApiKeyRecord(key_hash="b" * 64, key_id="key_0")
    await store.add_api_key(k1)
    await store.add_api_key(k2)
    got = await store.get_api_key("a" * 64)
    assert got is not None
    assert (got.key_id, got.org, got.scopes, got.user) == ("key_1", "acme", ("x",), "bob")
    assert got.created_at > 0
    assert await store.get_api_key("c" * 64) is None
    assert [k.key_id for k in await store.list_api_keys()] == ["key_0", "key_1"]

    # Same hash: replaced.
    await store.add_api_key(ApiKeyRecord(key_hash="a" * 64, key_id="key_1", org="other"))
    again = await store.get_api_key("a" * 64)
    assert again is not None and again.org == "other" and again.user is None
    assert len(await store.list_api_keys()) == 2

    assert await store.remove_api_key("key_1") is True
    assert await store.remove_api_key("key_1") is False
    assert await store.get_api_key("a" * 64) is None
    assert [k.key_id for k in await store.list_api_keys()] == ["key_0"]


# -- single-use tokens -----------------------------------------------------------------------


@pytest.mark.network
async def test_tokens_are_consumed_once(store: Store) -> None:
    payload = {"sub": "user:bob", "agent": "echo", "vars": {"a": [1, 2]}}
    await store.put_token("t1", payload, 30.0)
    assert await store.consume_token("t1") == payload
    assert await store.consume_token("t1") is None
    assert await store.consume_token("never-put") is None


@pytest.mark.network
async def test_tokens_expire(store: Store) -> None:
    await store.put_token("short", {"n": 1}, 0.2)
    await store.put_token("long", {"n": 2}, 30.0)
    await asyncio.sleep(0.4)
    assert await store.consume_token("short") is None
    assert await store.consume_token("long") == {"n": 2}


# -- refresh-token families ------------------------------------------------------------------


@pytest.mark.network
async def test_family_rotation(store: Store) -> None:
    await store.start_family("fam1", "r1", "user:bob", 30.0)
    assert await store.rotate_family("fam1", "r1", "r2", 30.0) == "ok"
    assert await store.rotate_family("fam1", "r2", "r3", 30.0) == "ok"
    # r1 presented again: reuse, and the whole family is revoked...
    assert await store.rotate_family("fam1", "r1", "r9", 30.0) == "reused"
    # ...so even the current token no longer rotates.
    assert await store.rotate_family("fam1", "r3", "r4", 30.0) == "revoked"
    assert await store.rotate_family("unknown", "x", "y", 30.0) == "revoked"


@pytest.mark.network
async def test_family_revoke_and_expiry(store: Store) -> None:
    await store.start_family("f2", "a", "key:k1", 30.0)
    await store.revoke_family("f2")
    assert await store.rotate_family("f2", "a", "b", 30.0) == "revoked"
    await store.revoke_family("no-such-family")  # a no-op

    await store.start_family("f3", "a", "user:bob", 0.2)
    await asyncio.sleep(0.4)
    assert await store.rotate_family("f3", "a", "b", 30.0) == "revoked"
    # An expired family does not come back as revoked-forever: starting it again works.
    await store.start_family("f3", "c", "user:bob", 30.0)
    assert await store.rotate_family("f3", "c", "d", 30.0) == "ok"


@pytest.mark.slow
@pytest.mark.network
async def test_rotation_restarts_the_ttl(store: Store) -> None:
    await store.start_family("f4", "a", "user:bob", 1.0)
    assert await store.rotate_family("f4", "a", "b", 60.0) == "ok"
    await asyncio.sleep(1.3)
    assert await store.rotate_family("f4", "b", "c", 60.0) == "ok"


# -- conversations ---------------------------------------------------------------------------


def conv(
    cid: str, owner: str = "user:bob", dialect: str = "amigo", **kw: Any
) -> ConversationRecord:
    return ConversationRecord(id=cid, owner=owner, dialect=dialect, **kw)


@pytest.mark.network
async def test_conversation_crud(store: Store) -> None:
    meta = {"service_id": "svc", "nested": {"ü": [1, None, True]}}
    assert await store.create_conversation(conv("c1", agent_id="echo", name="first", metadata=meta))
    assert not await store.create_conversation(conv("c1", owner="user:eve", name="dup"))
    got = await store.get_conversation("c1")
    assert got is not None
    assert (got.owner, got.dialect, got.agent_id, got.name) == (
        "user:bob",
        "amigo",
        "echo",
        "first",
    )
    assert got.metadata == meta and got.finished is False and got.item_count == 0
    assert got.created_at > 0 and got.updated_at == got.created_at
    assert await store.get_conversation("nope") is None

    assert await store.update_conversation("c1", name="renamed", finished=True) is True
    got2 = await store.get_conversation("c1")
    assert got2 is not None
    assert (got2.name, got2.finished, got2.agent_id, got2.metadata) == (
        "renamed",
        True,
        "echo",
        meta,
    )
    assert got2.updated_at >= got.updated_at and got2.created_at == got.created_at
    assert await store.update_conversation("c1", metadata={"only": 1}, agent_id="other")
    got3 = await store.get_conversation("c1")
    assert got3 is not None and got3.metadata == {"only": 1} and got3.agent_id == "other"
    assert got3.name == "renamed"  # untouched fields stay
    assert await store.update_conversation("nope", name="x") is False

    assert await store.delete_conversation("c1") is True
    assert await store.delete_conversation("c1") is False
    assert await store.get_conversation("c1") is None
    assert await store.list_conversations("user:bob") == ([], 0)


@pytest.mark.network
async def test_conversation_items(store: Store) -> None:
    assert await store.create_conversation(conv("c2", created_at=100.0))
    items = [{"role": "user", "text": f"hé {i}", "n": i} for i in range(5)]
    assert await store.append_items("c2", items[:3]) is True
    assert await store.append_items("c2", items[3:]) is True
    assert await store.append_items("c2", []) is True
    assert await store.get_items("c2") == items
    assert await store.get_items("c2", last=2) == items[3:]
    assert await store.get_items("c2", last=10) == items
    assert await store.get_items("c2", last=0) == []
    got = await store.get_conversation("c2")
    assert got is not None and got.item_count == 5 and got.updated_at > 100.0

    assert await store.set_items("c2", [{"x": 1}]) is True
    assert await store.get_items("c2") == [{"x": 1}]
    got = await store.get_conversation("c2")
    assert got is not None and got.item_count == 1

    assert await store.append_items("nope", items) is False
    assert await store.set_items("nope", items) is False
    assert await store.get_items("nope") == []

    many = [{"i": i} for i in range(2500)]  # more than one Lua unpack / one statement
    assert await store.set_items("c2", many) is True
    assert await store.get_items("c2") == many
    assert await store.get_items("c2", last=3) == many[-3:]

    assert await store.delete_conversation("c2")
    assert await store.get_items("c2") == []
    # A new conversation under a used id starts empty.
    assert await store.create_conversation(conv("c2"))
    assert await store.get_items("c2") == []


@pytest.mark.network
async def test_conversation_listing(store: Store) -> None:
    for i in range(7):
        dialect = "rtguide" if i % 2 else "amigo"
        c = conv(f"c{i}", dialect=dialect, created_at=1000.0 + i, updated_at=1000.0 + i)
        assert await store.create_conversation(c)
    assert await store.create_conversation(conv("other", owner="user:eve", created_at=5000.0))

    page, total = await store.list_conversations("user:bob")
    assert total == 7 and [c.id for c in page] == [f"c{i}" for i in range(6, -1, -1)]
    page, total = await store.list_conversations("user:bob", offset=2, limit=3)
    assert total == 7 and [c.id for c in page] == ["c4", "c3", "c2"]
    page, total = await store.list_conversations("user:bob", offset=6, limit=3)
    assert total == 7 and [c.id for c in page] == ["c0"]
    page, total = await store.list_conversations("user:bob", offset=10)
    assert (page, total) == ([], 7)
    page, total = await store.list_conversations("user:bob", limit=0)
    assert (page, total) == ([], 7)
    page, total = await store.list_conversations("user:bob", dialect="rtguide")
    assert total == 3 and [c.id for c in page] == ["c5", "c3", "c1"]
    page, total = await store.list_conversations("user:bob", dialect="openai")
    assert (page, total) == ([], 0)

    # Activity moves a conversation to the front, under both indexes.
    assert await store.append_items("c1", [{"t": "hi"}])
    page, _ = await store.list_conversations("user:bob", limit=2)
    assert [c.id for c in page] == ["c1", "c6"] and page[0].item_count == 1
    assert await store.update_conversation("c2", name="x")
    page, _ = await store.list_conversations("user:bob", dialect="amigo", limit=2)
    assert [c.id for c in page] == ["c2", "c6"]

    # Ties in updated_at: by id, descending.
    assert await store.create_conversation(conv("t-a", owner="key:k", updated_at=7.0))
    assert await store.create_conversation(conv("t-b", owner="key:k", updated_at=7.0))
    page, _ = await store.list_conversations("key:k")
    assert [c.id for c in page] == ["t-b", "t-a"]

    assert await store.delete_conversation("c6")
    page, total = await store.list_conversations("user:bob", dialect="amigo")
    assert total == 3 and [c.id for c in page] == ["c2", "c4", "c0"]
    page, total = await store.list_conversations("user:eve")
    assert total == 1 and page[0].id == "other"


# -- leases ----------------------------------------------------------------------------------


@pytest.mark.network
async def test_leases(store: Store) -> None:
    key = "conn:user:bob:svc"
    assert await store.acquire_lease(key, "A", 30.0) is True
    assert await store.acquire_lease(key, "B", 30.0) is False
    assert await store.acquire_lease(key, "A", 30.0) is True  # one's own: renewed
    assert await store.renew_lease(key, "A", 30.0) is True
    assert await store.renew_lease(key, "B", 30.0) is False
    await store.release_lease(key, "B")  # not B's: nothing happens
    assert await store.acquire_lease(key, "B", 30.0) is False
    await store.release_lease(key, "A")
    assert await store.renew_lease(key, "A", 30.0) is False  # released: lost
    assert await store.acquire_lease(key, "B", 30.0) is True
    assert await store.acquire_lease("conn:user:eve:svc", "A", 30.0) is True  # keys independent


@pytest.mark.slow
@pytest.mark.network
async def test_leases_expire(store: Store) -> None:
    assert await store.acquire_lease("k", "A", 0.2) is True
    assert await store.acquire_lease("k", "B", 30.0) is False
    await asyncio.sleep(0.4)
    assert await store.renew_lease("k", "A", 30.0) is False  # expired: lost
    assert await store.acquire_lease("k", "B", 30.0) is True
    assert await store.acquire_lease("k", "A", 30.0) is False

    # Renewal keeps a lease past its first ttl.
    assert await store.acquire_lease("k2", "A", 1.0) is True
    assert await store.renew_lease("k2", "A", 60.0) is True
    await asyncio.sleep(1.3)
    assert await store.acquire_lease("k2", "B", 30.0) is False


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
async def test_rate_window(store: Store) -> None:
    d = [await store.hit("hs:bob", limit=3, window_s=0.5) for _ in range(4)]
    assert [x.allowed for x in d] == [True, True, True, False]
    assert [x.remaining for x in d] == [2, 1, 0, 0]
    assert d[0].reset_s == pytest.approx(0.5)
    assert 0 < d[3].reset_s <= 0.5
    # Another key has its own window.
    assert (await store.hit("hs:eve", limit=3, window_s=0.5)).allowed
    await asyncio.sleep(0.7)
    again = await store.hit("hs:bob", limit=3, window_s=0.5)
    assert again.allowed and again.remaining == 2  # the refused hit was not counted


@pytest.mark.slow
@pytest.mark.network
async def test_rate_window_slides(store: Store) -> None:
    assert (await store.hit("s", limit=2, window_s=1.2)).allowed
    await asyncio.sleep(0.8)
    assert (await store.hit("s", limit=2, window_s=1.2)).allowed
    assert not (await store.hit("s", limit=2, window_s=1.2)).allowed
    await asyncio.sleep(0.6)  # the first hit has left the window, the second has not
    assert (await store.hit("s", limit=2, window_s=1.2)).allowed
    assert not (await store.hit("s", limit=2, window_s=1.2)).allowed


@pytest.mark.network
async def test_rate_limit_zero_refuses(store: Store) -> None:
    d = await store.hit("z", limit=0, window_s=1.0)
    assert (d.allowed, d.remaining) == (False, 0)


# -- many concurrent callers in one process (batched / pipelined) ------------------------------


@pytest.mark.network
async def test_concurrent_callers(store: Store) -> None:
    hits = await asyncio.gather(*(store.hit("burst", limit=150, window_s=60.0) for _ in range(200)))
    assert sum(d.allowed for d in hits) == 150
    assert sorted(d.remaining for d in hits if d.allowed) == list(range(150))

    leases = await asyncio.gather(*(store.acquire_lease("one", f"h{i}", 60.0) for i in range(100)))
    assert sum(leases) == 1

    await asyncio.gather(*(store.put_token(f"c{i}", {"i": i}, 60.0) for i in range(100)))
    got = await asyncio.gather(*(store.consume_token(f"c{i % 100}") for i in range(200)))
    assert sorted(g["i"] for g in got if g is not None) == list(range(100))

    created = await asyncio.gather(
        *(store.create_conversation(conv(f"k{i % 30}")) for i in range(90)),
        *(store.get_user("nobody") for _ in range(10)),
    )
    assert sum(1 for c in created[:90] if c) == 30 and created[90:] == [None] * 10
    assert (await store.list_conversations("user:bob"))[1] == 30


# -- bad arguments ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
async def test_bad_arguments(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        await store.put_token("t", {}, 0)
    with pytest.raises(InvalidInputError):
        await store.acquire_lease("k", "A", -1.0)
    with pytest.raises(InvalidInputError):
        await store.hit("k", limit=-1, window_s=1.0)
    with pytest.raises(InvalidInputError):
        await store.hit("k", limit=1, window_s=0.0)
    with pytest.raises(InvalidInputError):
        await store.list_conversations("o", offset=-1)
    with pytest.raises(InvalidInputError):
        await store.get_items("c", last=-1)


# -- open_store ------------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    s = open_store(None)
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "xdg" / "voxwire" / "voxwire.db"
    s = open_store("sqlite://")
    assert isinstance(s, SQLiteStore) and s.path == default_sqlite_path()
    s = open_store(f"sqlite://{tmp_path}/x.db", timeout=0.5)
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "x.db" and s.timeout == 0.5

    from voxwire.store.redis import RedisStore

    r = open_store("redis://127.0.0.1:6399/2?prefix=app:")
    assert isinstance(r, RedisStore) and r.prefix == "app:" and "prefix" not in r.url
    r = open_store("redis://:sekret@localhost:6399/0")
    assert isinstance(r, RedisStore) and r.prefix == "voxwire:" and "sekret" not in repr(r)

    for bad in [
        "http://localhost/",
        "sqlite:relative.db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///tmp/x.db?mode=ro",
        "redis://",
        "redis://localhost:99999/0",
        "redis://localhost:6379/zero",
        "postgres://u:sekret@h/db",
        "",
    ]:
        with pytest.raises(InvalidInputError) as e:
            open_store(bad)
        msg = str(e.value)
        assert "\n" not in msg and "sekret" not in msg, bad


def test_default_path_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_sqlite_path() == tmp_path / ".local" / "state" / "voxwire" / "voxwire.db"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_sqlite_path() == tmp_path / ".local" / "state" / "voxwire" / "voxwire.db"


# -- SQLite only -----------------------------------------------------------------------------


async def test_sqlite_file_is_private_wal_and_survives_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    async with open_store(None) as s:
        assert await s.add_user(UserRecord(name="bob", password_hash="h"))
        await s.add_api_key(ApiKeyRecord(key_hash="f" * 64, key_id="k1"))
        await s.put_token("tok", {"a": 1}, 60.0)
        await s.start_family("fam", "r1", "user:bob", 60.0)
        assert await s.create_conversation(conv("c1"))
        assert await s.append_items("c1", [{"n": 1}, {"n": 2}])
        assert await s.acquire_lease("L", "A", 60.0)
        assert (await s.hit("R", limit=2, window_s=60.0)).allowed
    path = tmp_path / "state" / "voxwire" / "voxwire.db"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    async with SQLiteStore(path) as s:
        assert (await s.get_user("bob")) is not None
        assert (await s.get_api_key("f" * 64)) is not None
        assert await s.consume_token("tok") == {"a": 1}
        assert await s.rotate_family("fam", "r1", "r2", 60.0) == "ok"
        assert await s.get_items("c1") == [{"n": 1}, {"n": 2}]
        c = await s.get_conversation("c1")
        assert c is not None and c.item_count == 2
        assert await s.acquire_lease("L", "B", 60.0) is False
        assert (await s.hit("R", limit=2, window_s=60.0)).remaining == 0


@pytest.mark.slow
async def test_sqlite_lock_times_out_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with SQLiteStore(path, timeout=0.5) as s:
        await s.put_token("before", {"n": 0}, 60.0)
        raw = sqlite3.connect(path, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(StoreUnavailableError):
                await s.put_token("during", {"n": 1}, 60.0)
            assert ticks > 0  # the loop ran meanwhile
            # Reads are not blocked by a writer in WAL mode.
            assert await s.get_user("nobody") is None
        finally:
            task.cancel()
            raw.execute("ROLLBACK")
            raw.close()
        await s.put_token("after", {"n": 2}, 60.0)
        assert await s.consume_token("after") == {"n": 2}
        assert await s.consume_token("before") == {"n": 0}


async def test_sqlite_open_failures(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreUnavailableError):
        await SQLiteStore(tmp_path / "afile" / "x.db").open()
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    s = SQLiteStore(tmp_path / "garbage.db")
    with pytest.raises(StoreUnavailableError):
        await s.open()
    assert await s.ping() is False


async def test_sqlite_purges_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "purge.db"
    async with SQLiteStore(path, purge_interval_s=0.0) as s:
        await s.put_token("old", {}, 0.2)
        assert await s.acquire_lease("L", "A", 0.2)
        assert (await s.hit("R", limit=5, window_s=0.2)).allowed
        await s.start_family("F", "a", "user:bob", 0.2)
        await asyncio.sleep(0.4)
        await s.put_token("new", {}, 60.0)  # a write: purges on the way
    with sqlite3.connect(path) as raw:
        counts = {
            t: raw.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("tokens", "leases", "rate_hits", "families")
        }
    assert counts == {"tokens": 1, "leases": 0, "rate_hits": 0, "families": 0}


# -- Redis only ------------------------------------------------------------------------------


@pytest.mark.network
async def test_redis_keys_stay_under_the_prefix(redis_url: str) -> None:
    import redis.asyncio as aioredis

    prefix = f"p{uuid.uuid4().hex[:8]}:"
    async with open_store(f"{redis_url}?prefix={prefix}") as s:
        await s.add_user(UserRecord(name="bob", password_hash="h"))
        await s.add_api_key(ApiKeyRecord(key_hash="e" * 64, key_id="k"))
        await s.put_token("t", {}, 60.0)
        await s.start_family("f", "a", "user:bob", 60.0)
        await s.create_conversation(conv("c"))
        await s.append_items("c", [{}])
        await s.acquire_lease("l", "A", 60.0)
        await s.hit("r", limit=5, window_s=60.0)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
        assert len(keys) >= 9
        ttl_keys = [k for k in keys if k.split(":", 1)[1].startswith(("tok:", "fam:", "lease:"))]
        for k in ttl_keys:
            assert 0 < await raw.pttl(k) <= 60_000  # everything short-lived has an expiry
    finally:
        await raw.aclose()


@pytest.mark.network
async def test_redis_restart(redis_server_factory: Any) -> None:
    server = redis_server_factory()
    server.start()
    async with open_store(server.url, timeout=1.0) as s:
        await s.put_token("t1", {"n": 1}, 60.0)
        assert await s.ping() is True

        server.kill()
        with pytest.raises(StoreUnavailableError) as e:
            await s.consume_token("t1")
        assert "t1" not in str(e.value)
        assert await s.ping() is False

        server.start()  # same port, empty (no persistence)
        for _ in range(100):
            if await s.ping():
                break
            await asyncio.sleep(0.05)
        assert await s.ping() is True
        await s.put_token("t2", {"n": 2}, 60.0)
        assert await s.consume_token("t2") == {"n": 2}  # scripts are loaded again
        assert await s.acquire_lease("L", "A", 60.0) is True
        assert (await s.hit("R", limit=1, window_s=60.0)).allowed


@pytest.mark.slow
@pytest.mark.network
async def test_redis_hung_server_times_out(redis_server_factory: Any) -> None:
    server = redis_server_factory()
    server.start()
    async with open_store(server.url, timeout=0.5) as s:
        assert await s.acquire_lease("L", "A", 60.0)
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailableError):
                await s.acquire_lease("L", "A", 60.0)
            assert await s.ping() is False
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        for _ in range(100):
            if await s.ping():
                break
            await asyncio.sleep(0.05)
        assert await s.acquire_lease("L", "B", 60.0) is False


@pytest.mark.network
async def test_redis_unreachable_open_and_secret_free_messages() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = open_store(f"redis://:sekret@127.0.0.1:{port}/0", timeout=0.5)
    with pytest.raises(StoreUnavailableError) as e:
        await s.open()
    assert "sekret" not in str(e.value) and "\n" not in str(e.value)
    assert await s.ping() is False


# -- real processes racing on one store --------------------------------------------------------

WORKER = Path(__file__).with_name("store_worker.py")


@contextmanager
def workers(url: str, *argvs: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start one worker process per argv, wait until each is ready; kill them at the end."""
    env = dict(os.environ, PYTHONPATH=str(Path(voxwire.__file__).parent.parent))
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()


def go(procs: list[subprocess.Popen[str]]) -> None:
    """The barrier: let every worker run its op now."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def result(p: subprocess.Popen[str]) -> Any:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line, f"worker exited with {p.wait(timeout=10)}"
    return json.loads(line)


@pytest.mark.slow
@pytest.mark.network
async def test_processes_race_for_tokens(store: Store, store_url: str) -> None:
    n = 40
    for i in range(n):
        await store.put_token(f"tok-{i}", {"i": i}, 60.0)
    with workers(store_url, ["consume", str(n)], ["consume", str(n)]) as procs:
        go(procs)
        got = [set(result(p)) for p in procs]
    assert got[0].isdisjoint(got[1])  # no token was taken twice
    assert got[0] | got[1] == set(range(n))  # and none was lost


@pytest.mark.slow
@pytest.mark.network
async def test_processes_race_to_rotate(store: Store, store_url: str) -> None:
    await store.start_family("fam", "r0", "user:bob", 60.0)
    with workers(store_url, ["rotate", "fam", "r0", "p1"], ["rotate", "fam", "r0", "p2"]) as procs:
        go(procs)
        outcomes = sorted(result(p) for p in procs)
    assert outcomes == ["ok", "reused"]
    assert await store.rotate_family("fam", "p1", "x", 60.0) == "revoked"
    assert await store.rotate_family("fam", "p2", "x", 60.0) == "revoked"


@pytest.mark.slow
@pytest.mark.network
async def test_processes_share_a_rate_limit(store: Store, store_url: str) -> None:
    with workers(store_url, ["hit", "rk", "25", "30"], ["hit", "rk", "25", "30"]) as procs:
        go(procs)
        allowed = [result(p) for p in procs]
    assert sum(allowed) == 30
    assert not (await store.hit("rk", limit=30, window_s=60.0)).allowed


@pytest.mark.slow
@pytest.mark.network
async def test_processes_share_leases_and_a_dead_holder_loses_it(
    store: Store, store_url: str
) -> None:
    # Both processes are started before A takes its lease, so B's start-up time (long on a
    # loaded machine) does not count against A's short lease.
    with workers(
        store_url, ["lease", "conn:bob", "A", "2.0"], ["lease", "conn:bob", "B", "30"]
    ) as (a, b):
        go([a])
        assert result(a) is True
        go([b])
        assert result(b) is False  # refused in another process
        assert await store.acquire_lease("conn:bob", "C", 30.0) is False
        a.send_signal(signal.SIGKILL)  # the holder dies without releasing
        a.wait(timeout=10)
        for _ in range(200):  # its lease expires (ttl 2 s)
            if await store.acquire_lease("conn:bob", "C", 30.0):
                break
            await asyncio.sleep(0.05)
        assert await store.renew_lease("conn:bob", "C", 30.0) is True
        assert await store.renew_lease("conn:bob", "A", 30.0) is False
