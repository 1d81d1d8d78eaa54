"""Every close code of the seed's table, provoked on a real server, and the sign-in route."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from amigo_helpers import (
    SERVICE,
    SERVICE_B,
    Client,
    Env,
    ServerThread,
    make_env,
    sign_in,
    start,
    token_of,
)
from websockets.exceptions import ConnectionClosed

from voxwire.auth import Authenticator, Principal
from voxwire.dialects.amigo import AmigoSettings
from voxwire.store import open_store

pytestmark = [pytest.mark.timeout(90), pytest.mark.network]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return make_env(tmp_path_factory.mktemp("amigo"))


@pytest.fixture(scope="module")
def srv(env: Env) -> Any:
    with ServerThread(env.server_config()) as s:
        yield s


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.slow
def test_sign_in_with_api_key(srv: ServerThread, env: Env) -> None:
    kid, key = env.keys["alice"]
    status, body = sign_in(srv.port, "acme", kid, key, "alice")
    assert status == 200
    assert set(body) == {"id_token", "expires_at"}
    assert body["id_token"].startswith("eyJ") and body["expires_at"].endswith("Z")
    assert sign_in(srv.port, "acme", kid, key + "x", "alice")[0] == 401
    assert sign_in(srv.port, "acme", "k_000000000000", key, "alice")[0] == 401
    assert sign_in(srv.port, "acme", kid, key, "bob")[0] == 401  # the key is alice's
    assert sign_in(srv.port, "other", kid, key, "alice")[0] == 403  # not alice's org


async def _close_of(url: str, token: str | None, *msgs: dict[str, Any]) -> tuple[int | None, str]:
    c = await Client.open(url, token)
    for m in msgs:
        await c.send(**m)
    return await c.closed()


def _start_msg(service: str = SERVICE, vset: str = "release") -> dict[str, Any]:
    return {
        "type": "client.start-conversation",
        "service_id": service,
        "service_version_set_name": vset,
    }


def test_3000_bad_or_expired_token(srv: ServerThread, env: Env, tmp_path: Path) -> None:
    assert run(_close_of(srv.url(), "not-a-token"))[0] == 3000
    assert run(_close_of(srv.url(), None))[0] == 3000
    good = token_of(srv.port, env)
    assert run(_close_of(srv.url(), good[:-2] + "xx"))[0] == 3000

    async def expired() -> str:
        store = open_store(env.store_url)
        await store.open()
        try:  # issued two hours ago, valid for one
            auth = Authenticator(store, clock=lambda: time.time() - 7200)
            tok, _ = auth.issue_access(Principal("user", "alice", org="acme"), ttl_s=3600)
            return tok
        finally:
            await store.close()

    assert run(_close_of(srv.url(), run(expired())))[0] == 3000
    # An API key works as the token too.
    key = env.keys["alice"][1]

    async def with_key() -> str:
        c, _ = await start(srv.url(), key)
        await c.close()
        return "ok"

    assert run(with_key()) == "ok"


def test_3003_no_access(srv: ServerThread, env: Env) -> None:
    bob = token_of(srv.port, env, "bob", "other")
    assert run(_close_of(srv.url("acme"), bob))[0] == 3003  # not bob's org
    assert run(_close_of(srv.url("nowhere"), bob))[0] == 3003
    carol = token_of(srv.port, env, "carol")  # scoped to service B
    assert run(_close_of(srv.url(), carol, _start_msg(SERVICE)))[0] == 3003

    async def b_ok() -> None:
        c, _ = await start(srv.url(), carol, SERVICE_B)
        await c.close()

    run(b_ok())


@pytest.mark.slow
def test_3008_idle_and_extend_timeout(env: Env) -> None:
    settings = AmigoSettings(idle_timeout_s=0.6)
    with ServerThread(env.server_config(), settings) as s:
        token = token_of(s.port, env)

        async def main() -> tuple[Any, Any, list[str]]:
            c = await Client.open(s.url(), token)
            for _ in range(8):  # keep-alives every 0.2 s hold it open past the timeout
                await asyncio.sleep(0.2)
                await c.send(type="client.extend-timeout")
            alive = c.ws.close_code
            code = await c.closed()
            return alive, code, [m["type"] for m in c.got]

        alive, (code, reason), got = run(main())
    assert alive is None
    assert code == 3008 and "timeout" in reason
    assert got == []  # keep-alives have no answer


@pytest.mark.parametrize(
    "msgs,why",
    [
        (["{not json"], "not JSON"),
        ([json.dumps([1, 2])], "JSON object"),
        ([json.dumps({"type": "client.no-such-thing"})], "unknown message type"),
        ([json.dumps({"type": "client.new-text-message", "text": "hi"})], "no conversation"),
        ([json.dumps({"type": "client.start-conversation"})], "service_id"),
        (
            [json.dumps(_start_msg()), json.dumps({"type": "client.new-text-message", "text": 5})],
            "text must be a string",
        ),
        (
            [
                json.dumps(_start_msg()),
                json.dumps({"type": "client.new-audio-message", "audio": "***"}),
            ],
            "base64",
        ),
        (
            [json.dumps(_start_msg()), json.dumps(_start_msg())],
            "already started",
        ),
    ],
)
def test_4000_bad_message(srv: ServerThread, env: Env, msgs: list[str], why: str) -> None:
    token = token_of(srv.port, env)

    async def main() -> tuple[int | None, str]:
        c = await Client.open(srv.url(), token)
        for m in msgs:
            await c.ws.send(m)
        return await c.closed()

    code, reason = run(main())
    assert code == 4000 and why in reason

    async def again() -> str:  # the closed connection left no lease behind
        c, conv = await start(srv.url(), token)
        await c.close()
        return conv

    assert len(run(again())) == 24


def test_4000_bad_query(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)
    assert run(_close_of(srv.url(query="response_format=pdf"), token))[0] == 4000
    q = "response_format=voice&audio_format=ogg"
    assert run(_close_of(srv.url(query=q), token))[0] == 4000


def test_4004_not_found(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)
    assert run(_close_of(srv.url(), token, _start_msg("65f1c0ffee00000000000999")))[0] == 4004
    assert run(_close_of(srv.url(), token, _start_msg(SERVICE, "nightly")))[0] == 4004
    missing = {"type": "client.continue-conversation", "conversation_id": "0" * 24}
    assert run(_close_of(srv.url(), token, missing))[0] == 4004


def test_4009_second_connection_and_finished_conversation(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)

    async def main() -> tuple[Any, ...]:
        a, conv = await start(srv.url(), token)
        second = await _close_of(srv.url(), token, _start_msg())
        # Another service of the same user is fine meanwhile.
        b, _ = await start(srv.url(), token, SERVICE_B)
        await b.close()
        # Continuing a conversation whose service is in use: conflict too.
        cont = {"type": "client.continue-conversation", "conversation_id": conv}
        busy = await _close_of(srv.url(), token, cont)
        await a.send(type="client.finish-conversation")
        await a.until("server.conversation-completed")
        after_finish = await _close_of_after(a, {"type": "client.new-text-message", "text": "x"})
        # The lease went with the connection: the finished conversation is refused as such.
        finished = await _close_of(srv.url(), token, cont)
        again, _ = await start(srv.url(), token)
        await again.close()
        return second, busy, after_finish, finished

    second, busy, after_finish, finished = run(main())
    assert second[0] == 4009
    assert busy[0] == 4009
    assert after_finish[0] == 4009
    assert finished[0] == 4009 and "finished" in finished[1]


async def _close_of_after(c: Client, msg: dict[str, Any]) -> tuple[int | None, str]:
    await c.send(**msg)
    return await c.closed()


def test_4015_unsupported_media(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)
    vad = {"type": "client.switch-vad-mode", "vad_mode_on": True}
    mp3 = "response_format=voice&audio_format=mp3"
    assert run(_close_of(srv.url(query=mp3), token, _start_msg(), vad))[0] == 4015
    chunk = base64.b64encode(b"\0" * 640).decode()

    def audio(**cfg: Any) -> dict[str, Any]:
        return {"type": "client.new-audio-message", "audio": chunk, "audio_config": cfg}

    for cfg in (
        {"format": "pcm", "sample_rate": 16000, "sample_width": 2, "n_channels": 2},
        {"format": "pcm", "sample_rate": 16000, "sample_width": 4, "n_channels": 1},
        {"format": "pcm", "sample_rate": 96000, "sample_width": 2, "n_channels": 1},
        {"format": "opus"},
    ):
        assert run(_close_of(srv.url(), token, _start_msg(), audio(**cfg)))[0] == 4015, cfg
    # MP3 input, then VAD mode: unsupported too.
    assert run(_close_of(srv.url(), token, _start_msg(), audio(type="mp3"), vad))[0] == 4015


def test_4029_more_than_1200_messages_a_minute(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)

    async def main() -> tuple[int | None, str]:
        c = await Client.open(srv.url(), token)
        for _ in range(1200):
            await c.send(type="client.extend-timeout")
        await c.send(type="client.extend-timeout")  # the 1201st
        return await c.closed()

    code, reason = run(main())
    assert code == 4029 and "rate" in reason


def test_1009_message_over_1_mib(srv: ServerThread, env: Env) -> None:
    token = token_of(srv.port, env)

    async def main() -> tuple[int | None, str]:
        c, _ = await start(srv.url(), token)
        big = base64.b64encode(b"\0" * (800 * 1024)).decode()  # ~1.07 MB of JSON
        with contextlib.suppress(ConnectionClosed):  # the server may close mid-send
            await c.send(type="client.new-audio-message", audio=big)
        return await c.closed()

    assert run(main())[0] == 1009
