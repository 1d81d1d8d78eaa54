"""The seed's two-step flow on a real server: register-call, then ``?token=wct_...``; the
greeting, speech from vad-dev in 40 ms blocks, barge-in, chat mode, closing."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from atoms_harness import (
    AGENT,
    LONG_GREETING,
    audio_of,
    blocks,
    connect_url,
    cumulative,
    drain,
    http,
    recv,
    register_call,
    running,
    speech,
    types,
    until,
)
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.timeout(120), pytest.mark.network]


@pytest.mark.slow
def test_two_step_flow_greeting_close_and_stored_transcript(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        data = register_call(srv.port, variables={"user_name": "Ann"}, mode="webcall")
        assert data["access_token"].startswith("wct_")
        assert (data["expires_in"], data["sample_rate"]) == (30, 24000)

        async def call() -> tuple[list[dict[str, Any]], int | None]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"])) as ws:
                got.append(await recv(ws))
                await until(ws, "agent_stop_talking", got)
                await ws.send('{"type": "session.close"}')
                code = await drain(ws, got)
            return got, code

        got, code = asyncio.run(call())
    first = got[0]
    assert first["type"] == "session.created"
    assert str(uuid.UUID(first["session_id"])) == first["session_id"]
    assert re.fullmatch(r"CALL-\d{13}-[0-9a-f]{6}", first["call_id"])
    assert (first["sample_rate"], first["channels"]) == (24000, 1)
    kinds = types(got)
    start, stop = kinds.index("agent_start_talking"), kinds.index("agent_stop_talking")
    assert kinds.index("output_audio.delta") == start + 1
    audio = audio_of(got)
    assert len(audio) > 24000  # over a second of speech at 24 kHz
    assert np.abs(audio.astype(np.int32)).max() > 1000  # not silence
    deltas = [e["text"] for e in got if e["type"] == "transcript.delta"]
    assert all(e["role"] == "assistant" for e in got if e["type"] == "transcript.delta")
    assert len(deltas) >= 3 and cumulative(deltas)
    last_audio = max(k for k, t in enumerate(kinds) if t == "output_audio.delta")
    assert kinds.index("transcript.delta") < last_audio  # paced with the audio, not after it
    final = [e for e in got if e["type"] == "transcript"]
    text = "Hello Ann, this is Example Clinic. How can I help you today?"
    assert final == [{"type": "transcript", "role": "assistant", "text": text}]
    assert deltas[-1] == text and kinds.index("transcript") < stop
    assert got[-1] == {"type": "session.closed", "reason": "client_requested"}
    assert code == 1000

    with running(tmp_path) as srv:  # the same store file: the transcript outlives the call
        status, body = http(srv.port, "GET", f"/atoms/v1/conversation/{first['call_id']}")
        assert status == 200 and body["status"] is True
        conv = body["data"]
        assert (conv["call_id"], conv["agent_id"], conv["status"]) == (
            first["call_id"],
            AGENT,
            "completed",
        )
        assert conv["transcript"] == [{"role": "assistant", "text": text}]
        assert conv["end_reason"] == "client_requested"
        assert http(srv.port, "GET", "/atoms/v1/conversation/CALL-1-abcdef")[0] == 404
        assert (
            http(srv.port, "GET", f"/atoms/v1/conversation/{first['call_id']}", key="no")[0] == 401
        )


@pytest.mark.slow
def test_reserved_variables_are_stripped(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        data = register_call(
            srv.port, "zone", variables={"timezone": "Mars/Olympus", "user_name": "Bo"}
        )

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "zone")) as ws:
                await until(ws, "transcript", got)
            return got

        got = asyncio.run(call())
    assert got[-1]["text"] == "Your zone is {timezone} and you are Bo."


@pytest.mark.slow
def test_user_speech_in_40ms_blocks_gets_transcripts_and_an_answer(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    from voxwire.asr import PocketSphinxASR

    with running(tmp_path, asr=PocketSphinxASR()) as srv:
        data = register_call(srv.port, "silent")

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "silent")) as ws:
                got.append(await recv(ws))
                for m in blocks(speech(), 24000):
                    await ws.send(m)
                await ws.send('{"type": "input_audio_buffer.commit"}')  # a no-op
                for m in blocks(np.zeros(24000, np.int16), 24000):
                    await ws.send(m)
                await until(ws, "agent_stop_talking", got)
            return got

        got = asyncio.run(call())
    kinds = types(got)
    assert "error" not in kinds
    user = [e for e in got if e["type"].startswith("transcript") and e["role"] == "user"]
    assert [e["type"] for e in user] == ["transcript.delta", "transcript"]
    heard = user[-1]["text"]
    assert heard.strip()  # PocketSphinx heard words
    assert kinds.index("transcript") < kinds.index("agent_start_talking")
    # The echo agent answers with the user's words and audio.
    answer = [e for e in got if e["type"] == "transcript" and e["role"] == "assistant"]
    assert answer[-1]["text"] == heard
    assert len(audio_of(got)) > 24000


def test_barge_in_interrupts_and_truncates_the_transcript(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        data = register_call(srv.port, "long")

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "long")) as ws:
                await until(ws, "agent_start_talking", got)
                for m in blocks(speech(), 24000):
                    await ws.send(m)
                await until(ws, "interruption", got)
                await until(ws, "agent_stop_talking", got)
                await until(ws, "agent_start_talking", got)  # the answer to the user's turn
            return got

        got = asyncio.run(call())
    kinds = types(got)
    k = kinds.index("interruption")
    assert kinds[k + 1 : k + 3] == ["transcript", "agent_stop_talking"]
    heard = got[k + 1]["text"]
    assert got[k + 1]["role"] == "assistant"
    assert LONG_GREETING.startswith(heard) and len(heard) < len(LONG_GREETING)
    deltas = [e["text"] for e in got[:k] if e["type"] == "transcript.delta"]
    assert cumulative(deltas)


def test_chat_mode_text_turns_without_audio(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        data = register_call(srv.port, mode="chat")

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], mode="chat")) as ws:
                got.append(await recv(ws))
                await ws.send('{"type": "input_text.send", "text": "What time do you open?"}')
                await until(ws, "transcript", got)
                await ws.send('{"type": "input_audio_buffer.append", "audio": "AAAA"}')
                await until(ws, "error", got)
                await ws.send('{"type": "input_text.send", "text": "Thanks"}')
                await until(ws, "transcript", got)
                await ws.send('{"type": "session.close"}')
                await drain(ws, got)
            return got

        got = asyncio.run(call())
    kinds = types(got)
    assert kinds[0] == "session.created"
    assert "output_audio.delta" not in kinds and "agent_start_talking" not in kinds
    finals = [e["text"] for e in got if e["type"] == "transcript"]
    assert finals == ["What time do you open?", "Thanks"]
    deltas = [e["text"] for e in got if e["type"] == "transcript.delta"]
    assert deltas and cumulative(deltas[: deltas.index("What time do you open?") + 1])
    err = next(e for e in got if e["type"] == "error")
    assert err["code"] == "invalid_event"
    assert got[-1] == {"type": "session.closed", "reason": "client_requested"}


@pytest.mark.slow
def test_webcall_text_is_spoken_and_interrupts_the_agent(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        data = register_call(srv.port, "long")

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "long")) as ws:
                await until(ws, "output_audio.delta", got)
                await ws.send('{"type": "input_text.send", "text": "Book me for Monday."}')
                await until(ws, "interruption", got)
                await until(ws, "agent_stop_talking", got)
                n = len(got)
                await until(ws, "agent_stop_talking", got)
            return got[n:]

        reply = asyncio.run(call())
    assert types(reply)[0] == "agent_start_talking"
    assert [e["text"] for e in reply if e["type"] == "transcript"] == ["Book me for Monday."]
    assert len(audio_of(reply)) > 12000
