from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from voxwire.auth import Authenticator, JwtKeys, Principal, StaticKey
from voxwire.errors import AuthError, InvalidInputError
from voxwire.store import Store

pytestmark = pytest.mark.anyio


async def refused(coro: object) -> AuthError:
    with pytest.raises(AuthError) as e:
        await coro  # type: ignore[misc]
    return e.value


# -- principals -----------------------------------------------------------------------------


def test_principal_owner_and_round_trip() -> None:
    p = Principal(kind="user", id="alice", org="acme", scopes=("a", "b"), key_id="k_1")
    assert p.owner == "user:alice"
    assert Principal(kind="key", id="k_1").owner == "key:k_1"
    assert Principal.from_dict(p.to_dict()) == p
    for bad in (
        {},
        {"kind": "admin", "id": "x"},
        {"kind": "user", "id": ""},
        {"kind": "user", "id": "x", "scopes": [1]},
    ):
        with pytest.raises(InvalidInputError):
            Principal.from_dict(bad)


# -- users and login --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
async def test_login(auth: Authenticator) -> None:
    await auth.add_user("alice", "s3cret-pw", org="acme", scopes=["chat"])
    p = await auth.login("alice", "s3cret-pw")
    assert p == Principal(kind="user", id="alice", org="acme", scopes=("chat",))


@pytest.mark.slow
@pytest.mark.network
async def test_wrong_password_and_unknown_user_look_the_same(auth: Authenticator) -> None:
    await auth.add_user("alice", "s3cret-pw")
    wrong = await refused(auth.login("alice", "nope"))
    unknown = await refused(auth.login("bob", "s3cret-pw"))
    assert wrong.reason == unknown.reason == "invalid"
    assert str(wrong) == str(unknown)
    assert "nope" not in str(wrong) and "s3cret" not in str(unknown)
    for name, pw in (
        ("", "x"),
        ("a\x00b", "x"),
        ("alice", ""),
        ("alice", "é\ud800"),
        ("x" * 5000, "pw"),
        ("alice", "p" * 5000),
    ):
        assert (await refused(auth.login(name, pw))).reason == "invalid"


@pytest.mark.slow
@pytest.mark.network
async def test_add_user_errors(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw-one")
    with pytest.raises(InvalidInputError):
        await auth.add_user("alice", "pw-two")
    assert await auth.login("alice", "pw-one")  # the first stays
    for bad in ("", " alice", "bob\n", "x" * 257):
        with pytest.raises(InvalidInputError):
            await auth.add_user(bad, "pw")
    with pytest.raises(InvalidInputError):
        await auth.add_user("carol", "")


@pytest.mark.slow
@pytest.mark.network
async def test_password_stored_hashed_and_changed(
    auth: Authenticator, store: Store, dump: Callable[[Store], str]
) -> None:
    await auth.add_user("alice", "first-password")
    text = dump(store)
    assert "first-password" not in text and "scrypt$" in text
    assert await auth.set_password("alice", "second-password")
    assert (await refused(auth.login("alice", "first-password"))).reason == "invalid"
    assert (await auth.login("alice", "second-password")).id == "alice"
    assert not await auth.set_password("nobody", "x")


# -- access and refresh tokens ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
async def test_access_token_resolves(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw", org="acme", scopes=["s"])
    p = await auth.login("alice", "pw")
    access, refresh = await auth.issue_tokens(p)
    assert await auth.principal_from_bearer(access) == p
    assert await auth.authenticate(["junk", access]) == p
    # a refresh token is no access token
    e = await refused(auth.principal_from_bearer(refresh))
    assert e.reason == "invalid"


@pytest.mark.network
async def test_expired_access_token(store: Store, jwt_keys: JwtKeys) -> None:
    past = Authenticator(store, jwt=jwt_keys, clock=lambda: time.time() - 3600)
    now = Authenticator(store, jwt=jwt_keys)
    token, exp = past.issue_access(Principal(kind="key", id="k"))
    assert exp < time.time() - 2000
    assert (await refused(now.principal_from_bearer(token))).reason == "expired"


@pytest.mark.network
async def test_token_from_another_deployment_refused(store: Store) -> None:
    a = Authenticator(store, jwt=JwtKeys.hs256(b"a" * 32))
    b = Authenticator(store, jwt=JwtKeys.hs256(b"b" * 32))
    token, _ = a.issue_access(Principal(kind="key", id="k"))
    assert (await refused(b.principal_from_bearer(token))).reason == "invalid"


@pytest.mark.slow
@pytest.mark.network
async def test_refresh_rotates(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw", org="acme")
    p = await auth.login("alice", "pw")
    _, r1 = await auth.issue_tokens(p)
    a2, r2 = await auth.refresh(r1)
    assert r2 != r1
    assert await auth.principal_from_bearer(a2) == p
    a3, r3 = await auth.refresh(r2)
    assert r3 not in (r1, r2)
    assert await auth.principal_from_bearer(a3) == p
    assert (await refused(auth.refresh(a3))).reason == "invalid"  # access as refresh


@pytest.mark.slow
@pytest.mark.network
async def test_reused_refresh_token_revokes_the_family(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw")
    p = await auth.login("alice", "pw")
    _, r1 = await auth.issue_tokens(p)
    _, other = await auth.issue_tokens(p)  # another device: another family
    _, r2 = await auth.refresh(r1)
    e = await refused(auth.refresh(r1))  # r1 stolen and replayed
    assert e.reason == "reused"
    assert r1 not in str(e)
    assert (await refused(auth.refresh(r2))).reason == "revoked"  # the thief's too
    _, other2 = await auth.refresh(other)  # the other family is untouched
    assert other2


@pytest.mark.slow
@pytest.mark.network
async def test_refresh_refused_after_logout_or_user_removal(
    auth: Authenticator, store: Store
) -> None:
    await auth.add_user("alice", "pw", org="old-org")
    p = await auth.login("alice", "pw")
    _, r = await auth.issue_tokens(p)
    await auth.revoke_refresh(r)
    assert (await refused(auth.refresh(r))).reason == "revoked"

    _, r = await auth.issue_tokens(p)
    await store.remove_user("alice")
    assert (await refused(auth.refresh(r))).reason == "revoked"
    # Made again under the same name: the old family is not theirs.
    await auth.add_user("alice", "pw2", org="new-org")
    assert (await refused(auth.refresh(r))).reason == "revoked"
    p2 = await auth.login("alice", "pw2")
    _, r2 = await auth.issue_tokens(p2)
    a, _ = await auth.refresh(r2)
    assert (await auth.principal_from_bearer(a)).org == "new-org"


@pytest.mark.network
async def test_expired_refresh_token(store: Store, jwt_keys: JwtKeys) -> None:
    past = Authenticator(store, jwt=jwt_keys, clock=lambda: time.time() - 7200, refresh_ttl_s=60)
    now = Authenticator(store, jwt=jwt_keys)
    _, r = await past.issue_tokens(Principal(kind="key", id="k"))
    assert (await refused(now.refresh(r))).reason == "expired"


@pytest.mark.network
async def test_refresh_of_a_removed_key_refused(auth: Authenticator, store: Store) -> None:
    key_id, key = await auth.add_api_key(org="acme")
    p = await auth.principal_from_key(key)
    assert p is not None
    _, r = await auth.issue_tokens(p)
    _, r = await auth.refresh(r)
    await store.remove_api_key(key_id)
    assert (await refused(auth.refresh(r))).reason == "revoked"


@pytest.mark.network
async def test_concurrent_refreshes_one_wins(auth: Authenticator) -> None:
    p = Principal(kind="key", id="cfg")
    auth2 = Authenticator(auth.store, jwt=auth.jwt, api_keys=[StaticKey("x" * 20, key_id="cfg")])
    _, r = await auth2.issue_tokens(p)
    results = await asyncio.gather(*(auth2.refresh(r) for _ in range(4)), return_exceptions=True)
    wins = [x for x in results if isinstance(x, tuple)]
    assert len(wins) == 1
    assert all(isinstance(x, AuthError) for x in results if not isinstance(x, tuple))


# -- API keys -------------------------------------------------------------------------------


@pytest.mark.network
async def test_static_keys(store: Store, jwt_keys: JwtKeys) -> None:
    auth = Authenticator(
        store,
        jwt=jwt_keys,
        api_keys=["sk-one-1234567890", StaticKey("sk-two-1234567890", key_id="ops", org="acme")],
    )
    one = await auth.principal_from_key("sk-one-1234567890")
    assert one is not None and one.kind == "key" and one.id.startswith("cfg-")
    assert "sk-one" not in one.id
    again = Authenticator(store, jwt=jwt_keys, api_keys=["sk-one-1234567890"])
    assert await again.principal_from_key("sk-one-1234567890") == one  # stable id
    two = await auth.principal_from_key("sk-two-1234567890")
    assert two == Principal(kind="key", id="ops", org="acme", key_id="ops")
    assert await auth.principal_from_key("sk-one-123456789") is None
    assert await auth.principal_from_key("sk-one-1234567890 ") is None
    e = await refused(auth.principal_from_bearer("sk-three"))
    assert e.reason == "unknown" and "sk-three" not in str(e)
    with pytest.raises(InvalidInputError):
        Authenticator(store, jwt=jwt_keys, api_keys=["has space"])


@pytest.mark.network
async def test_stored_keys_are_hashed(
    auth: Authenticator, store: Store, dump: Callable[[Store], str]
) -> None:
    key_id, key = await auth.add_api_key(org="acme", scopes=["realtime"])
    assert key.startswith("vxk_") and key_id.startswith("k_")
    p = await auth.principal_from_key(key)
    assert p == Principal(kind="key", id=key_id, org="acme", scopes=("realtime",), key_id=key_id)
    assert await auth.principal_from_bearer(key) == p
    text = dump(store)
    assert key not in text and key[4:] not in text and key[4:20] not in text
    assert key_id in text
    assert all(k.key_hash != key for k in await store.list_api_keys())
    assert await store.remove_api_key(key_id)
    assert await auth.principal_from_key(key) is None


@pytest.mark.slow
@pytest.mark.network
async def test_key_for_a_user(auth: Authenticator, store: Store) -> None:
    await auth.add_user("alice", "pw", org="acme", scopes=["u"])
    key_id, key = await auth.add_api_key(user="alice")
    p = await auth.principal_from_key(key)
    assert p == Principal(kind="user", id="alice", org="acme", scopes=("u",), key_id=key_id)
    assert p.owner == "user:alice"
    with pytest.raises(InvalidInputError):
        await auth.add_api_key(user="nobody")
    await store.remove_user("alice")
    assert await auth.principal_from_key(key) is None


@pytest.mark.slow
@pytest.mark.network
async def test_sign_in_with_api_key(auth: Authenticator) -> None:
    await auth.add_user("alice", "pw", org="acme")
    await auth.add_user("eve", "pw", org="evil")
    org_id, org_key = await auth.add_api_key(org="acme")
    p = await auth.sign_in_with_api_key(org_key, key_id=org_id, user="alice")
    assert p == Principal(kind="user", id="alice", org="acme", key_id=org_id)
    assert (await auth.sign_in_with_api_key(org_key)).kind == "key"
    for kwargs in ({"key_id": "k_wrong"}, {"user": "eve"}, {"user": "nobody"}):
        assert (await refused(auth.sign_in_with_api_key(org_key, **kwargs))).reason == "invalid"
    assert (await refused(auth.sign_in_with_api_key("vxk_nope"))).reason == "invalid"
    uid, ukey = await auth.add_api_key(user="alice")
    assert (await auth.sign_in_with_api_key(ukey, user="alice")).key_id == uid
    assert (await refused(auth.sign_in_with_api_key(ukey, user="eve"))).reason == "invalid"


@pytest.mark.network
@pytest.mark.parametrize(
    "bad", ["", "é" * 10, "key\x00", "key\n", "k" * 4097, "sk\ud800", "two words"]
)
async def test_malformed_credentials_refused_quietly(auth: Authenticator, bad: str) -> None:
    assert await auth.principal_from_key(bad) is None
    assert await auth.consume_single_use(bad) is None
    assert (await refused(auth.principal_from_bearer(bad))).reason == "invalid"


@pytest.mark.network
async def test_authenticate_reports_the_last_failure(auth: Authenticator) -> None:
    assert (await refused(auth.authenticate([]))).reason == "unknown"
    token, _ = auth.issue_access(Principal(kind="key", id="k"))
    assert (await refused(auth.authenticate(["nope", token[:-3] + "abc"]))).reason == "invalid"


# -- single-use tokens ------------------------------------------------------------------------


@pytest.mark.network
async def test_single_use_token_consumed_once(
    auth: Authenticator, store: Store, dump: Callable[[Store], str]
) -> None:
    p = Principal(kind="key", id="k_1", org="acme", key_id="k_1")
    payload = {"agent_id": "echo", "mode": "webcall", "variables": {"name": "Ada"}}
    token = await auth.issue_single_use(p, payload)
    assert token.startswith("wct_") and len(token) == 40
    assert token not in dump(store)
    assert await auth.consume_single_use(token) == (p, payload)
    assert await auth.consume_single_use(token) is None
    other = await auth.issue_single_use(p, {}, prefix="tok-")
    assert other.startswith("tok-")
    assert await auth.consume_single_use("wct_" + other[4:]) is None  # wrong prefix
    assert await auth.consume_single_use(other) == (p, {})


@pytest.mark.network
async def test_single_use_token_expires(auth: Authenticator) -> None:
    token = await auth.issue_single_use(Principal(kind="key", id="k"), {}, ttl_s=0.05)
    await asyncio.sleep(0.3)
    assert await auth.consume_single_use(token) is None


@pytest.mark.network
async def test_single_use_token_racing_in_one_process(auth: Authenticator) -> None:
    token = await auth.issue_single_use(Principal(kind="key", id="k"), {"n": 1})
    got = await asyncio.gather(*(auth.consume_single_use(token) for _ in range(8)))
    assert sum(g is not None for g in got) == 1


@pytest.mark.slow
@pytest.mark.network
async def test_nothing_secret_logged(auth: Authenticator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await auth.add_user("alice", "alice-password")
    key_id, key = await auth.add_api_key(org="acme")
    p = await auth.login("alice", "alice-password")
    _, r1 = await auth.issue_tokens(p)
    await auth.refresh(r1)
    token = await auth.issue_single_use(p, {})
    await auth.consume_single_use(token)
    for attempt in (
        auth.login("alice", "wrong-password"),
        auth.login("typed-my-password-here", "x"),
        auth.refresh(r1),
        auth.principal_from_bearer("vxk_not-a-key"),
    ):
        with pytest.raises(AuthError):
            await attempt
    assert await auth.consume_single_use(token) is None
    assert await auth.principal_from_key(key + "x") is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refresh token reused" in text and key_id in text  # it does log, by public id
    for secret in (
        "alice-password",
        "wrong-password",
        "typed-my-password-here",
        key,
        key[4:],
        r1,
        token,
        "vxk_not-a-key",
    ):
        assert secret not in text
