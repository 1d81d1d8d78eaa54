"""Errors, authorization, heartbeat and timeouts of the chatstream dialect on a real server.

The expected strings and close codes are those of the wire notes (seed 001).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cs_helpers import API_KEY, chat, client, running

pytestmark = [pytest.mark.timeout(60), pytest.mark.network]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_bad_token_gets_authorize_error_then_4001(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], int | None]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.send({"type": "authorize", "token": "not-a-key"})
            return await c.closed()

    got, code = run(main())
    assert [m["type"] for m in got] == ["authorize_error"]
    assert isinstance(got[0]["error"], str) and got[0]["error"]
    assert "not-a-key" not in json.dumps(got)  # the secret is not echoed
    assert code == 4001


def test_empty_token_is_refused_even_without_keys(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], int | None]:
        async with running(tmp_path, keys=False) as srv, client(srv) as c:
            await c.send({"type": "authorize", "token": ""})
            return await c.closed()

    got, code = run(main())
    assert [m["type"] for m in got] == ["authorize_error"] and code == 4001


def test_everything_but_pong_needs_authorization(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv, client(srv) as c:
            out = []
            for msg in (
                {"type": "pong"},  # accepted: no answer
                chat("hi"),
                {"type": "interrupt_stream"},
                {"type": "fetch_backgrounds"},
                {"type": "fetch_avatar_configs"},
            ):
                await c.send(msg)
            for _ in range(4):
                out.append(await c.recv())
            # After authorizing, the same messages work.
            await c.authorize()
            await c.send({"type": "fetch_backgrounds"})
            out.append(await c.recv())
            return out

    got = run(main())
    assert got[:4] == [
        {
            "type": "error",
            "error": "Authentication required",
            "code": None,
            "id": None,
            "timestamp": m["timestamp"],
        }
        for m in got[:4]
    ]
    assert got[4]["type"] == "background_files"


def test_unsupported_type_before_authorization_is_auth_required(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.send({"type": "dance"})
            before = await c.recv()
            await c.authorize()
            await c.send({"type": "dance", "id": "m-7"})
            return [before, await c.recv()]

    before, after = run(main())
    assert before["error"] == "Authentication required"
    assert after["error"] == "Unsupported message type: dance"
    assert after["id"] == "m-7"  # the reply names the message it answers


def test_each_documented_error(tmp_path: Path) -> None:
    cases: list[tuple[str | dict[str, Any], str]] = [
        ("{not json", "Invalid JSON format"),
        ("[1, 2]", "Invalid message format"),
        ({"content": "no type"}, "Missing message type"),
        ({"type": "pong", "id": 5}, "Invalid message format"),
        ({"type": "fetch_backgrounds", "timestamp": "yesterday"}, "Invalid message format"),
        ({"type": "switch_avatar_config"}, "Invalid message format"),
        ({"type": "interrupt_stream", "turn_id": 3}, "Invalid message format"),
        (
            {"type": "chat_message", "agent_id": "a", "user_id": "u"},
            "Invalid chat message format: content is required and must be a string",
        ),
        (
            {"type": "chat_message", "content": "x", "user_id": "u"},
            "agent_id is required and must be a non-empty string",
        ),
        (
            {"type": "chat_message", "content": "x", "agent_id": " ", "user_id": "u"},
            "agent_id is required and must be a non-empty string",
        ),
        (
            {"type": "chat_message", "content": "x", "agent_id": "a"},
            "user_id is required and must be a non-empty string",
        ),
        (
            chat("x", conversation_id="conv-1"),
            "Invalid chat message format: conversation_id must be a UUID",
        ),
        (
            chat("x", limit=-1),
            "Invalid chat message format: limit must be an integer from 0 to 1000",
        ),
        (
            chat("x", images="not a list"),
            "Invalid chat message format: images must be a list of strings",
        ),
        (chat("x", metadata=[1]), "Invalid chat message format: metadata must be an object"),
        ({"type": "dance"}, "Unsupported message type: dance"),
        (
            {"type": "switch_avatar_config", "file": "ghost.json"},
            "Config file not found: ghost.json",
        ),
    ]

    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path, max_errors=1000) as srv, client(srv) as c:
            await c.authorize()
            out = []
            for msg, _ in cases:
                await c.send(msg)
                out.append(await c.recv())
            return out

    got = run(main())
    for (msg, want), m in zip(cases, got, strict=True):
        assert m["type"] == "error", (msg, m)
        assert m["error"] == want, (msg, m)


def test_five_consecutive_bad_messages_close_the_connection(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]]]:
        async with running(tmp_path) as srv:
            async with client(srv) as c:
                await c.authorize()
                # Four bad, one good: the count starts again.
                for _ in range(4):
                    await c.send("{oops")
                await c.send({"type": "fetch_avatar_configs"})
                first = [await c.recv() for _ in range(5)]
                for k in range(5):
                    await c.send("{oops" if k % 2 else {"type": "dance"})
                got, code = await c.closed()
            return first, code, got

    first, code, got = run(main())
    assert [m["type"] for m in first] == ["error"] * 4 + ["avatar_config_files"]
    assert [m["type"] for m in got] == ["error"] * 5
    assert code == 1008


@pytest.mark.slow
def test_heartbeat_pings_at_once_and_periodically(tmp_path: Path) -> None:
    async def main() -> tuple[int, list[dict[str, Any]]]:
        srv_cm = running(tmp_path, ping_interval_s=0.2, pong_timeout_s=0.15)
        async with srv_cm as srv, client(srv) as c:
            await c.authorize()
            # Answering every ping keeps the connection up across many intervals.
            while c.pings < 5:
                await c.send({"type": "fetch_backgrounds"})
                assert (await c.recv())["type"] == "background_files"
                await asyncio.sleep(0.05)
            await c.send(chat("still here"))
            turn = await c.until("stream_end")
            return c.pings, turn

    pings, turn = run(main())
    assert pings >= 5 and turn[-1]["content"] == "still here"


def test_no_pong_closes_4000(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], int | None, int]:
        srv_cm = running(tmp_path, ping_interval_s=0.3, pong_timeout_s=0.2)
        async with srv_cm as srv, client(srv, pong=False) as c:
            await c.authorize()
            got, code = await c.closed()
            return got, code, c.pings

    got, code, pings = run(main())
    assert got == [] and code == 4000 and pings == 1


def test_late_pong_closes_4000_before_authorization_too(tmp_path: Path) -> None:
    # A client that never authorizes and never answers is also dropped by the heartbeat.
    async def main() -> int | None:
        srv_cm = running(tmp_path, ping_interval_s=0.3, pong_timeout_s=0.2)
        async with srv_cm as srv, client(srv, pong=False) as c:
            _, code = await c.closed()
            return code

    assert run(main()) == 4000


def test_idle_connection_is_closed(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], int | None]:
        async with running(tmp_path, idle_timeout_s=0.3) as srv, client(srv) as c:
            await c.authorize()
            return await c.closed()

    got, code = run(main())
    assert got == [] and code == 1000


def test_authorize_with_a_stored_api_key_and_store_backed_conversation(tmp_path: Path) -> None:
    async def main() -> tuple[str, list[dict[str, Any]]]:
        async with running(tmp_path) as srv:
            _, key = await srv.platform.auth.add_api_key()
            async with client(srv) as c:
                await c.authorize(key)
                await c.send(chat("hello store"))
                turn = await c.until("stream_end")
            conv = turn[-1]["conversation_id"]
            for _ in range(100):  # the reply is written as the turn ends
                items = await srv.platform.store.get_items(conv)
                if len(items) == 2:
                    break
                await asyncio.sleep(0.02)
            rec = await srv.platform.store.get_conversation(conv)
            assert rec is not None and rec.dialect == "chatstream"
            return rec.owner, items

    owner, items = run(main())
    assert owner.startswith("key:")
    assert [(i["role"], i["content"]) for i in items] == [
        ("user", "hello store"),
        ("assistant", "hello store"),
    ]


def test_someone_elses_conversation_is_refused(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with running(tmp_path) as srv:
            _, key = await srv.platform.auth.add_api_key()
            async with client(srv) as c:
                await c.authorize(API_KEY)
                await c.send(chat("mine"))
                conv = (await c.until("stream_end"))[-1]["conversation_id"]
            async with client(srv) as c:
                await c.authorize(key)
                await c.send(chat("yours?", conversation_id=conv))
                return await c.recv()

    m = run(main())
    assert m["type"] == "error"
    assert m["error"] == "Failed to process message: Unknown conversation_id"
