"""Tokens and keys: single use (also across two server processes sharing one SQLite file),
expiry, unknown tokens and agents, the API-key flow, and register-call's errors."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from atoms_harness import (
    AGENT,
    CONFIG,
    KEY,
    audio_of,
    connect_url,
    drain,
    http,
    recv,
    register_call,
    running,
    types,
    until,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voxwire.demo import spawn_server
from voxwire.dialects.atoms import AtomsPlugin

pytestmark = [pytest.mark.timeout(120), pytest.mark.network]

REGISTER = "/atoms/v1/conversation/register-call"


async def status_of(url: str, **kw: Any) -> int | dict[str, Any]:
    """The HTTP status of a refused handshake, or the first event of an accepted one."""
    try:
        async with connect(url, **kw) as ws:
            return await recv(ws)
    except InvalidStatus as e:
        return e.response.status_code


@pytest.mark.slow
def test_a_token_is_single_use_and_expires(tmp_path: Path) -> None:
    with running(tmp_path, plugin=AtomsPlugin(token_ttl_s=1.0)) as srv:
        used = register_call(srv.port)["access_token"]
        stale = register_call(srv.port)["access_token"]
        assert register_call(srv.port)["expires_in"] == 1

        async def main() -> list[Any]:
            first = await status_of(connect_url(srv.port, used))
            again = await status_of(connect_url(srv.port, used))
            await asyncio.sleep(1.5)
            expired = await status_of(connect_url(srv.port, stale))
            unknown = await status_of(connect_url(srv.port, "wct_" + "0" * 36))
            return [first, again, expired, unknown]

        first, again, expired, unknown = asyncio.run(main())
    assert isinstance(first, dict) and first["type"] == "session.created"
    assert (again, expired, unknown) == (401, 401, 401)


@pytest.mark.slow
def test_a_token_used_from_two_server_processes_wins_once(tmp_path: Path) -> None:
    cfg = tmp_path / "voxwire.toml"
    cfg.write_text(CONFIG)
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ("--config", str(cfg), "--store", store, "--api-key", KEY, "--asr", "none")
    with spawn_server(*args) as (a, _), spawn_server(*args) as (b, _):
        tokens = [register_call(a)["access_token"] for _ in range(5)]

        async def race(token: str) -> list[Any]:
            return list(
                await asyncio.gather(
                    status_of(connect_url(a, token)), status_of(connect_url(b, token))
                )
            )

        outcomes = [asyncio.run(race(t)) for t in tokens]
    for pair in outcomes:
        created = [o for o in pair if isinstance(o, dict) and o["type"] == "session.created"]
        assert len(created) == 1 and pair.count(401) == 1, pair


@pytest.mark.slow
def test_api_key_flow_query_and_header(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        base = f"ws://127.0.0.1:{srv.port}/atoms/v1/agent/connect"
        variables = quote(json.dumps({"user_name": "Cy"}))
        q = f"token={KEY}&agent_id={AGENT}&mode=webcall&sample_rate=16000&variables={variables}"

        async def main() -> list[Any]:
            got: list[dict[str, Any]] = []
            async with connect(f"{base}?{q}") as ws:
                got.append(await recv(ws))
                await until(ws, "transcript", got)
            header = await status_of(
                f"{base}?agent_id={AGENT}&mode=chat",
                additional_headers={"Authorization": f"Bearer {KEY}"},
            )
            both = await status_of(
                f"{base}?token={KEY}&agent_id={AGENT}",
                additional_headers={"Authorization": f"Bearer {KEY}"},
            )
            wrong = await status_of(f"{base}?token=sk_wrong&agent_id={AGENT}")
            missing = await status_of(f"{base}?agent_id={AGENT}")
            no_agent = await status_of(f"{base}?token={KEY}&agent_id=nobody")
            return [got, header, both, wrong, missing, no_agent]

        got, header, both, wrong, missing, no_agent = asyncio.run(main())
    assert got[0]["type"] == "session.created" and got[0]["sample_rate"] == 16000
    assert got[-1]["text"] == "Hello Cy, this is Example Clinic. How can I help you today?"
    assert len(audio_of(got)) > 16000  # 16 kHz audio
    assert isinstance(header, dict) and header["sample_rate"] == 24000
    assert (both, wrong, missing, no_agent) == (401, 401, 401, 401)


@pytest.mark.slow
@pytest.mark.parametrize(
    "query",
    ["mode=voice", "sample_rate=22050", "sample_rate=x", "variables=%7Bnot+json"],
)
def test_api_key_flow_setup_errors_close_with_4000(tmp_path: Path, query: str) -> None:
    with running(tmp_path) as srv:
        url = f"ws://127.0.0.1:{srv.port}/atoms/v1/agent/connect?token={KEY}&agent_id={AGENT}"

        async def main() -> tuple[list[dict[str, Any]], int | None]:
            got: list[dict[str, Any]] = []
            async with connect(f"{url}&{query}") as ws:
                code = await drain(ws, got)
            return got, code

        got, code = asyncio.run(main())
    assert types(got) == ["error"] and got[0]["code"] == "400"  # no session.created
    assert code == 4000


def test_wct_tokens_ignore_the_other_query_parameters(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        token = register_call(srv.port, mode="chat")["access_token"]
        q = urlencode({"token": token, "agent_id": "nobody", "mode": "x", "sample_rate": 8000})
        first = asyncio.run(status_of(f"ws://127.0.0.1:{srv.port}/atoms/v1/agent/connect?{q}"))
    assert isinstance(first, dict) and first["sample_rate"] == 24000


def test_register_call_errors(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        p = srv.port
        no_key = http(p, "POST", REGISTER, {"agent_id": AGENT}, key=None)
        bad_key = http(p, "POST", REGISTER, {"agent_id": AGENT}, key="sk_nope")
        no_agent_id = http(p, "POST", REGISTER, {"mode": "webcall"})
        bad_mode = http(p, "POST", REGISTER, {"agent_id": AGENT, "mode": "voice"})
        bad_vars = http(p, "POST", REGISTER, {"agent_id": AGENT, "variables": {"a": [1]}})
        not_json = http(p, "POST", REGISTER, raw=b"{agent_id")
        unknown = http(p, "POST", REGISTER, {"agent_id": "65f1c0de0000000000000bad"})
    for (status, body), want in (
        (no_key, 401),
        (bad_key, 401),
        (no_agent_id, 400),
        (bad_mode, 400),
        (bad_vars, 400),
        (not_json, 400),
        (unknown, 404),
    ):
        assert status == want
        assert body["status"] is False and body["errors"] and isinstance(body["errors"][0], str)


def test_register_call_body_in_a_later_tcp_segment(tmp_path: Path) -> None:
    body = json.dumps({"agent_id": AGENT}).encode()
    head = (
        f"POST {REGISTER} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with running(tmp_path) as srv, socket.create_connection(("127.0.0.1", srv.port), 10) as s:
        s.sendall(head)
        time.sleep(0.2)  # the body as a separate segment, as urllib often sends it
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 201")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["data"]["access_token"].startswith("wct_")
