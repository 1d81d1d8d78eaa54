"""Errors (``invalid_event``, ``no_session``, ``internal_error``), the agent ending the call,
and client tools (``session.update{tools}``, ``function_call``, results, timeouts)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from atoms_harness import connect_url, drain, recv, register_call, running, types, until
from websockets.asyncio.client import connect

from voxwire.agents import AgentOutput, EchoAgent, EndConversation, TextDelta, ToolCall
from voxwire.dialects.atoms import AtomsDialect
from voxwire.session import events as ev

pytestmark = pytest.mark.timeout(120)


class ScriptedAgent:
    """A user's agent: calls a tool on ``weather <city>``, fails on ``boom``, hangs up on
    ``bye``, answers tool results with their output, echoes anything else."""

    async def respond(self, turn: ev.UserTurn) -> AsyncIterator[AgentOutput]:
        if turn.kind == "tool_results":
            yield TextDelta(f"The tool said {turn.history[-1].output}")
            return
        text = turn.text or ""
        if text.startswith("weather "):
            args = json.dumps({"city": text[8:]})
            yield ToolCall("get_weather", args, "call_" + secrets.token_hex(4))
        elif text == "boom":
            raise RuntimeError("the model is down")
        elif text == "bye":
            yield TextDelta("Goodbye.")
            yield EndConversation("done")
        else:
            async for out in EchoAgent().respond(turn):
                yield out


def chat(tmp_path: Path, script: list[dict[str, Any] | str], agent_id: str = "silent") -> list[Any]:
    """Run ``script`` in a chat-mode call: messages to send, and ``"<type>"`` to wait for."""
    with running(tmp_path, agent=ScriptedAgent()) as srv:
        token = register_call(srv.port, agent_id, mode="chat")["access_token"]

        async def main() -> list[Any]:
            got: list[Any] = []
            async with connect(connect_url(srv.port, token, agent_id, "chat")) as ws:
                got.append(await recv(ws))
                for step in script:
                    if isinstance(step, str):
                        if step == "closed":
                            got.append(("code", await drain(ws, got)))
                            break
                        await until(ws, step, got)
                    else:
                        if "call_id" in step and step["call_id"] == "<last>":
                            last = next(e for e in reversed(got) if e["type"] == "function_call")
                            step = {**step, "call_id": last["call_id"]}
                        await ws.send(json.dumps(step))
            return got

        return asyncio.run(main())


def errors(got: list[Any]) -> list[str]:
    return [e["code"] for e in got if isinstance(e, dict) and e["type"] == "error"]


@pytest.mark.network
def test_invalid_events_are_reported_and_the_session_goes_on(tmp_path: Path) -> None:
    got = chat(
        tmp_path,
        [
            {"type": "nope"},
            "error",
            {"text": "no type"},
            "error",
            {"type": "input_text.send", "text": ""},
            "error",
            {"type": "input_text.send"},
            "error",
            {"type": "input_audio_buffer.append"},
            "error",
            {"type": "function_call.result", "call_id": "c1"},
            "error",
            {"type": "input_audio_buffer.commit"},
            {"type": "session.update"},
            {"type": "input_text.send", "text": "still here"},
            "transcript",
        ],
    )
    assert errors(got) == ["invalid_event"] * 6
    assert all(e["message"] for e in got if e["type"] == "error")
    assert got[-1] == {"type": "transcript", "role": "assistant", "text": "still here"}


@pytest.mark.network
def test_non_json_and_binary_frames_are_invalid_events(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        token = register_call(srv.port, "silent")["access_token"]

        async def main() -> list[Any]:
            got: list[Any] = []
            async with connect(connect_url(srv.port, token, "silent")) as ws:
                got.append(await recv(ws))
                await ws.send("{not json")
                got.append(await recv(ws))
                await ws.send(b"\x00\x01")
                got.append(await recv(ws))
                await ws.send('{"type": "input_audio_buffer.append", "audio": "@@@="}')
                got.append(await recv(ws))
            return got

        got = asyncio.run(main())
    assert errors(got) == ["invalid_event"] * 3


def test_no_session_after_close() -> None:
    d = AtomsDialect(mode="chat")
    assert isinstance(d.decode('{"type": "session.close"}'), ev.Command)
    bad = d.decode('{"type": "input_text.send", "text": "late"}')
    assert isinstance(bad, ev.BadMessage) and bad.code == "no_session"


@pytest.mark.network
def test_an_agent_failure_is_an_internal_error_and_the_session_goes_on(tmp_path: Path) -> None:
    got = chat(
        tmp_path,
        [
            {"type": "input_text.send", "text": "boom"},
            "error",
            {"type": "input_text.send", "text": "again"},
            "transcript",
        ],
    )
    assert errors(got) == ["internal_error"]
    assert "model is down" not in json.dumps(got)  # no internals leak
    assert got[-1]["text"] == "again"


@pytest.mark.network
def test_the_agent_ending_the_call(tmp_path: Path) -> None:
    got = chat(tmp_path, [{"type": "input_text.send", "text": "bye"}, "closed"])
    assert [e for e in got if isinstance(e, dict)][-2:] == [
        {"type": "transcript", "role": "assistant", "text": "Goodbye."},
        {"type": "session.closed", "reason": "ended"},
    ]
    assert got[-1] == ("code", 1000)


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.network
def test_client_tools_call_result_and_errors(tmp_path: Path) -> None:
    got = chat(
        tmp_path,
        [
            {"type": "session.update", "tools": [WEATHER]},
            "session.updated",
            {"type": "input_text.send", "text": "weather Paris"},
            "function_call",
            {"type": "function_call.result", "call_id": "<last>", "output": "sunny, 21 C"},
            "transcript",
            {"type": "function_call.result", "call_id": "<last>", "output": "late"},
            "error",
            {"type": "function_call.result", "call_id": "call_x", "output": "x" * 70000},
            "error",
            {"type": "session.update", "tools": [WEATHER, WEATHER]},
            "error",
            {"type": "session.update", "tools": [{"name": "bad name!"}]},
            "error",
        ],
    )
    assert got[1] == {"type": "session.updated", "tools": ["get_weather"]}
    call = next(e for e in got if e["type"] == "function_call")
    assert (call["name"], call["arguments"]) == ("get_weather", {"city": "Paris"})
    finals = [e["text"] for e in got if e["type"] == "transcript"]
    assert finals == ["The tool said sunny, 21 C"]
    assert errors(got) == ["unknown_call_id", "result_too_large", "invalid_tools", "invalid_tools"]


@pytest.mark.slow
@pytest.mark.network
def test_a_tool_without_a_result_times_out(tmp_path: Path) -> None:
    got = chat(
        tmp_path,
        [
            {"type": "session.update", "tools": [{**WEATHER, "timeout_ms": 1000}]},
            "session.updated",
            {"type": "input_text.send", "text": "weather Oslo"},
            "function_call",
            "error",
            "transcript",
        ],
    )
    assert errors(got) == ["tool_timeout"]
    assert got[-1]["text"] == 'The tool said {"error": "tool_timeout"}'


@pytest.mark.network
def test_client_tools_may_not_reuse_the_agents_own_names(tmp_path: Path) -> None:
    own = {"type": "function", "name": "lookup_order"}
    got = chat(tmp_path, [{"type": "session.update", "tools": [own]}, "error"], "tooled")
    assert errors(got) == ["tool_name_conflict"]
    assert "session.updated" not in types([e for e in got if isinstance(e, dict)])
