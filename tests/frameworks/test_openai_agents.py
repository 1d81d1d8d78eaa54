"""The OpenAI Agents SDK (``openai-agents``: RealtimeAgent + RealtimeRunner), unmodified, with
its default session settings (``semantic_vad``, input transcription, audio out), against a
real `voxwire serve` on 127.0.0.1 running the echo agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fw_helpers import KEY, require, speech_24k

require("agents.realtime")

from agents import function_tool  # noqa: E402
from agents.realtime import RealtimeAgent, RealtimeRunner  # noqa: E402

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(90)]


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def runner() -> RealtimeRunner:
    agent = RealtimeAgent(name="Assistant", instructions="Be brief.", tools=[get_weather])
    return RealtimeRunner(starting_agent=agent)


def config(port: int) -> Any:
    return {"api_key": KEY, "url": f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"}


def raw(e: Any) -> dict[str, Any] | None:
    """The server event behind a raw model event (None for other events)."""
    if e.type == "raw_model_event" and e.data.type == "raw_server_event":
        d: dict[str, Any] = e.data.data
        return d
    return None


async def collect(session: Any, done: Callable[[Any, list[Any]], bool]) -> list[Any]:
    """The session's events until ``done(event, so_far)``; an error event fails at once (an
    event the SDK cannot validate is raised by the session itself)."""
    out: list[Any] = []
    async with asyncio.timeout(60):  # a hang guard, not a timing assertion
        async for e in session:
            out.append(e)
            if e.type == "error":
                raise AssertionError(f"error event: {e.error}")
            d = raw(e)
            if d is not None and d.get("type") == "error":
                raise AssertionError(f"server error: {d}")
            if done(e, out):
                return out
    raise AssertionError("the session ended")


def server_events(evs: list[Any], kind: str) -> list[dict[str, Any]]:
    return [d for e in evs if (d := raw(e)) is not None and d.get("type") == kind]


def assistant_texts(history: list[Any]) -> list[str]:
    """The transcripts or texts of the history's assistant messages."""
    out = []
    for item in history:
        if getattr(item, "role", None) == "assistant":
            parts = [
                getattr(c, "transcript", None) or getattr(c, "text", None) for c in item.content
            ]
            out.append(" ".join(p for p in parts if p))
    return out


def test_text_turn_with_the_default_session(port: int) -> None:
    async def main() -> None:
        session = await runner().run(model_config=config(port))
        async with session:
            await session.send_message("Hello from the agents SDK.")
            evs = await collect(
                session,
                lambda e, _: (
                    e.type == "history_updated"
                    and "Hello from the agents SDK." in assistant_texts(e.history)
                ),
            )
            # The SDK's defaults were applied, as the API echoes them.
            (upd, *_) = [d for d in server_events(evs, "session.updated")][-1:]
            s = upd["session"]
            td = s["audio"]["input"]["turn_detection"]
            assert td["type"] == "semantic_vad" and td["interrupt_response"] is True
            assert [t["name"] for t in s["tools"]] == ["get_weather"]
            assert s["audio"]["input"]["transcription"] is not None
            assert any(e.type == "audio" for e in evs)  # spoken (espeak-ng)

    asyncio.run(main())


def test_audio_turn_with_recorded_speech(port: int) -> None:
    pcm = speech_24k()

    async def main() -> None:
        session = await runner().run(model_config=config(port))
        async with session:
            await collect(
                session, lambda e, _: raw(e) is not None and raw(e)["type"] == "session.updated"
            )  # type: ignore[index]
            for k in range(0, len(pcm), 4800):  # 100 ms chunks
                await session.send_audio(pcm[k : k + 4800])
            evs = await collect(session, lambda e, _: e.type == "agent_end")
            assert len(server_events(evs, "input_audio_buffer.speech_started")) == 1
            assert len(server_events(evs, "input_audio_buffer.speech_stopped")) == 1
            assert any(e.type == "audio" for e in evs)  # the echo: the user's own audio
            done = server_events(evs, "conversation.item.input_audio_transcription.completed")
            if done:  # an ASR runs (voxwire[asr]): the transcript comes with its usage
                assert done[0]["usage"]["type"] == "duration"
                assert 2.0 < done[0]["usage"]["seconds"] < 6.0

    asyncio.run(main())


def test_tool_call_round_trip(port: int) -> None:
    async def main() -> None:
        session = await runner().run(model_config=config(port))
        async with session:
            await session.send_message('tool:get_weather {"city": "Paris"}')
            evs = await collect(
                session,
                lambda e, _: (
                    e.type == "history_updated"
                    and any("sunny in Paris" in t for t in assistant_texts(e.history))
                ),
            )
            (start,) = [e for e in evs if e.type == "tool_start"]
            (end,) = [e for e in evs if e.type == "tool_end"]
            assert start.tool.name == end.tool.name == "get_weather"
            assert end.output == "sunny in Paris"
            calls = server_events(evs, "response.function_call_arguments.done")
            assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Paris"}]
            # The call's response holds the call only: no empty message item beside it.
            dones = server_events(evs, "response.done")
            first = next(d for d in dones if d["response"]["output"])
            assert [o["type"] for o in first["response"]["output"]] == ["function_call"]

    asyncio.run(main())


def test_interrupt_stops_the_answer_at_once(port: int) -> None:
    text = " ".join(["This answer is long enough to be interrupted while it plays."] * 6)

    async def main() -> None:
        session = await runner().run(model_config=config(port))
        async with session:
            await session.send_message(text)
            evs = await collect(session, lambda e, _: e.type == "audio")
            await session.interrupt()
            evs += await collect(
                session,
                lambda e, _: (d := raw(e)) is not None and d["type"] == "response.done",
            )
            (trunc,) = server_events(evs, "conversation.item.truncated")
            (done,) = server_events(evs, "response.done")
            assert done["response"]["status"] == "cancelled"  # the SDK cancels it too
            (item,) = done["response"]["output"]
            assert item["id"] == trunc["item_id"] and item["status"] == "incomplete"
            # No audio of that answer after the truncation.
            k = next(k for k, e in enumerate(evs) if raw(e) is trunc)
            assert not server_events(evs[k:], "response.output_audio.delta")
            assert any(e.type == "audio_interrupted" for e in evs)

    asyncio.run(main())
