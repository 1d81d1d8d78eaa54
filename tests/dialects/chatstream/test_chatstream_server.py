"""The chatstream dialect on a real server: the seed's usage flow and the turn stream.

Written from seed 001 (docs/websocket/WEBSOCKET_API_GUIDE.md) and its wire notes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cs_helpers import API_KEY, HistoryAgent, chat, client, running
from websockets.asyncio.client import connect

from voxwire.agents import EchoAgent
from voxwire.auth import Principal

pytestmark = [pytest.mark.timeout(60), pytest.mark.network]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def seed_flow(url: str, token: str) -> list[dict[str, Any]]:
    """The seed's JavaScript example, step by step, from Python."""

    async def main() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with connect(url) as socket:
            # socket.onopen
            await socket.send(json.dumps({"type": "authorize", "token": token}))
            # socket.onmessage
            async for data in socket:
                msg = json.loads(data)
                got.append(msg)
                if msg["type"] == "ping":  # "Respond 'pong' to 'ping' (heartbeat)"
                    await socket.send(json.dumps({"type": "pong"}))
                if msg["type"] == "authorize_success":
                    await socket.send(
                        json.dumps(
                            {
                                "type": "chat_message",
                                "content": "Hello!",
                                "user_id": "user_001",
                                "agent_id": "agent_001",
                            }
                        )
                    )
                if msg["type"] == "stream_end":
                    break
        return got

    return asyncio.run(asyncio.wait_for(main(), 30))


def check_seed_turn(got: list[dict[str, Any]]) -> None:
    types = [m["type"] for m in got]
    assert types[0] == "ping"  # the server pings at once
    assert "authorize_success" in types
    auth = got[types.index("authorize_success")]
    uuid.UUID(auth["connection_id"])
    turn = got[types.index("stream_start") :]
    assert [m["type"] for m in turn if m["type"] != "ping"] == [
        "stream_start",
        "stream_token",
        "tts_ready_chunk",
        "stream_end",
    ]
    start, token, tts, end = (m for m in turn if m["type"] != "ping")
    assert token["chunk"] == "Hello!" and token["node"] == "agent"
    assert tts["chunk"] == "Hello!" and tts["emotion"] is None
    assert end["content"] == "Hello!"
    # One turn id for every event of the turn; one conversation id from start to end.
    assert len({m["turn_id"] for m in (start, token, tts, end)}) == 1
    assert start["conversation_id"] == end["conversation_id"]
    uuid.UUID(start["conversation_id"])
    # The envelope's optional fields are on every message.
    assert all("id" in m and isinstance(m["timestamp"], float) for m in got)


def test_seed_usage_flow_with_an_api_key(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv:
            return await asyncio.to_thread(seed_flow, srv.ws_url, API_KEY)

    check_seed_turn(run(main()))


def test_seed_usage_flow_without_keys_takes_any_token(tmp_path: Path) -> None:
    # A server with no credential configured (loopback development) accepts any token,
    # as the seed's 'your-token' placeholder suggests.
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path, keys=False) as srv:
            return await asyncio.to_thread(seed_flow, srv.ws_url, "your-token")

    check_seed_turn(run(main()))


def test_seed_usage_flow_with_a_jwt_the_platform_issued(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv:
            token, _ = srv.platform.auth.issue_access(Principal(kind="user", id="alice"))
            return await asyncio.to_thread(seed_flow, srv.ws_url, token)

    check_seed_turn(run(main()))


TEXT = (
    "(joyful) Hello there, Mr. Smith! Pi is about 3.14 today. "
    "Um, I met J. K. Rowling at 5 p.m. yesterday, e.g. at the cafe. "
    "(sad) It was No. 5 on the list... Really? (crying loudly) I miss it. "
    "And the last one has no end"
)
SENTENCES = [
    ("Hello there, Mr. Smith!", "joyful"),
    ("Pi is about 3.14 today.", None),
    ("I met J. K. Rowling at 5 p.m. yesterday, e.g. at the cafe.", None),
    ("It was No. 5 on the list...", "sad"),
    ("Really?", None),
    ("I miss it.", "crying loudly"),
    ("And the last one has no end", None),
]


def test_tokens_and_sentences_of_a_multi_sentence_answer(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.authorize()
            await c.send(chat(TEXT))
            return await c.until("stream_end")

    got = run(main())
    types = [m["type"] for m in got]
    assert types[0] == "stream_start" and types[-1] == "stream_end"
    tokens = [m["chunk"] for m in got if m["type"] == "stream_token"]
    assert len(tokens) > 1  # streamed in pieces
    assert "".join(tokens) == TEXT == got[-1]["content"]
    chunks = [(m["chunk"], m["emotion"]) for m in got if m["type"] == "tts_ready_chunk"]
    assert chunks == SENTENCES
    # Sentences go out as the text finishing them arrives, not all at the end: the first
    # tts_ready_chunk comes before the last stream_token.
    first_tts = types.index("tts_ready_chunk")
    last_token = len(types) - 1 - types[::-1].index("stream_token")
    assert first_tts < last_token
    assert len({m["turn_id"] for m in got}) == 1
    assert {m["user_id"] for m in got if m["type"] != "stream_end"} == {"user_001"}


def test_tool_call_and_result_in_the_turn(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.authorize()
            await c.send(chat('tool:lookup_order {"order_id": "A-1234"}'))
            return await c.until("stream_end")

    got = run(main())
    types = [m["type"] for m in got]
    assert types[:3] == ["stream_start", "tool_call", "tool_result"]
    call, result = got[1], got[2]
    assert call["tool_name"] == "lookup_order"
    assert json.loads(call["args"]) == {"order_id": "A-1234"}
    assert json.loads(result["result"]) == {
        "tool": "lookup_order",
        "arguments": {"order_id": "A-1234"},
    }
    assert call["call_id"] == result["call_id"]
    assert len({m["turn_id"] for m in got}) == 1
    assert types[-1] == "stream_end"


def test_a_tool_the_agent_does_not_have_is_just_text(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.authorize()
            await c.send(chat("tool:transfer_call {}"))
            return await c.until("stream_end")

    got = run(main())
    assert not [m for m in got if m["type"].startswith("tool_")]
    assert got[-1]["content"] == "tool:transfer_call {}"


LONG = " ".join(f"Sentence number {k} is here." for k in range(400))


def streaming_echo() -> EchoAgent:
    """The echo agent writing its text over a few seconds, as a model does."""
    return EchoAgent(text_delay_s=0.01)


def test_interrupt_mid_stream(tmp_path: Path) -> None:
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with running(tmp_path, agent=streaming_echo()) as srv, client(srv) as c:
            await c.authorize()
            await c.send(chat(LONG))
            start = await c.recv()
            assert start["type"] == "stream_start"
            await c.until("stream_token")
            await c.send({"type": "interrupt_stream", "turn_id": start["turn_id"]})
            got = [start]
            while not (
                any(m["type"] == "stream_end" for m in got)
                and any(m["type"] == "error" for m in got)
            ):
                got.append(await c.recv())
            # The connection goes on: a new turn works.
            await c.send(chat("Still there?"))
            after = await c.until("stream_end")
            return got, after

    got, after = run(main())
    end = next(m for m in got if m["type"] == "stream_end")
    err = next(m for m in got if m["type"] == "error")
    assert end["status"] == "interrupted"
    assert end["reason"] == "Client requested interruption"
    assert err["code"] == 4003
    assert end["turn_id"] == got[0]["turn_id"]
    assert got[0]["turn_id"] in err["error"]
    # Nothing of the turn after its end; it stopped well before the whole answer.
    k = got.index(end)
    assert not [m for m in got[k + 1 :] if m["type"] in ("stream_token", "tts_ready_chunk")]
    streamed = "".join(m["chunk"] for m in got if m["type"] == "stream_token")
    assert len(streamed) < len(LONG) / 2
    assert after[-1]["content"] == "Still there?"


def test_interrupt_without_turn_id_and_with_nothing_running(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], ...]:
        async with running(tmp_path, agent=streaming_echo()) as srv, client(srv) as c:
            await c.authorize()
            await c.send({"type": "interrupt_stream"})
            idle = await c.recv()
            await c.send(chat(LONG))
            await c.until("stream_token")
            await c.send({"type": "interrupt_stream", "turn_id": "not-this-turn"})
            wrong = next(m for m in await c.until("error") if m["type"] == "error")
            await c.send({"type": "interrupt_stream", "turn_id": None})
            got = []
            while len([m for m in got if m["type"] in ("stream_end", "error")]) < 2:
                got.append(await c.recv())
            end = next(m for m in got if m["type"] == "stream_end")
            err = next(m for m in got if m["type"] == "error")
            return idle, wrong, end, err

    idle, wrong, end, err = run(main())
    assert idle["type"] == "error" and idle["code"] == 4004
    assert wrong["code"] == 4004 and "not-this-turn" in wrong["error"]
    assert end["status"] == "interrupted"
    assert err["code"] == 4003


@pytest.mark.slow
def test_second_chat_message_during_a_turn(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path, agent=streaming_echo()) as srv, client(srv) as c:
            await c.authorize()
            await c.send(chat(LONG))
            await c.send(chat("me too"))
            return await c.until("stream_end", timeout=30)

    got = run(main())
    errors = [m for m in got if m["type"] == "error"]
    assert [e["error"] for e in errors] == [
        "Failed to process message: Another turn is already active"
    ]
    assert got[-1]["content"] == LONG  # the first turn went on undisturbed
    assert [m["type"] for m in got].count("stream_start") == 1


def test_conversation_id_continues_with_the_last_limit_messages(tmp_path: Path) -> None:
    async def main() -> list[list[dict[str, Any]]]:
        async with running(tmp_path, agent=HistoryAgent()) as srv:
            turns = []
            async with client(srv) as c:
                await c.authorize()
                await c.send(chat("one"))
                turns.append(await c.until("stream_end"))
                conv = turns[0][-1]["conversation_id"]
                await c.send(chat("two", conversation_id=conv))
                turns.append(await c.until("stream_end"))
            # Another connection continues it (the store holds it).
            async with client(srv) as c:
                await c.authorize()
                await c.send(chat("three", conversation_id=conv, limit=2))
                turns.append(await c.until("stream_end"))
                await c.send(chat("elsewhere"))  # no conversation_id: a new conversation
                turns.append(await c.until("stream_end"))
                await c.send(chat("four", conversation_id=conv, limit=0))
                turns.append(await c.until("stream_end"))
            return turns

    turns = run(main())
    seen = [json.loads(t[-1]["content"]) for t in turns]
    conv = turns[0][-1]["conversation_id"]
    assert turns[1][-1]["conversation_id"] == conv == turns[2][-1]["conversation_id"]
    assert seen[0]["history"] == [] and seen[0]["text"] == "one"
    assert seen[1]["history"] == [["user", "one"], ["assistant", turns[0][-1]["content"]]]
    # limit=2: only the last two stored messages.
    assert seen[2]["history"] == [["user", "two"], ["assistant", turns[1][-1]["content"]]]
    assert turns[3][-1]["conversation_id"] != conv and seen[3]["history"] == []
    assert seen[4]["history"] == []  # limit=0: nothing of the past
    # The agent's instructions are the registry agent's, its tools the agent's tools.
    assert seen[0]["instructions"] == "You are a helpful companion."
    assert seen[0]["tools"] == ["lookup_order"]
