"""The assistant's cumulative ``transcript.delta`` paced by the TTS's own timing (its marks).

The server's echo agent speaks through espeak-ng with word timing
(:class:`voxwire.tts_marks.EspeakMarksTTS`), produced at real time (``pace=1``). The test
computes the same marks for the same text itself, and checks what the client has been shown
at each ``output_audio.delta`` against the characters the audio received so far speaks: never
ahead of it, at most one word behind (the audio of the last chunk may not have been played
yet). The plugin's fallback speech rate is set absurdly high (1000 characters a second): a
transcript paced by it would run far ahead of the audio, so these tests fail unless the marks
pace it, on barge-in too.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
from pathlib import Path
from typing import Any

import pytest
from atoms_harness import (
    LONG_GREETING,
    blocks,
    connect_url,
    cumulative,
    recv,
    register_call,
    running,
    speech,
    until,
)
from websockets.asyncio.client import connect

from voxwire.agents import EchoAgent
from voxwire.dialects.atoms import AtomsPlugin

pytestmark = pytest.mark.timeout(120)

tts_marks = pytest.importorskip("voxwire.tts_marks")
if not tts_marks.library_available():  # pragma: no cover - espeak-ng is installed here
    pytest.skip("the espeak-ng library is not available", allow_module_level=True)

RATE = 24000
#: Slack for the resampler's delay (22050 -> 24000 Hz) and rounding, ms.
SLACK_MS = 10.0
#: How far the server's "played" may trail the audio sent: one agent chunk (100 ms) and slack.
TRAIL_MS = 150.0


def marks_of(text: str) -> list[float]:
    """The TTS's marks for ``text``: ms from the start of its audio, one per character."""

    async def go() -> list[float]:
        tts = tts_marks.EspeakMarksTTS()
        out: list[float] = []
        at = 0.0
        async with contextlib.aclosing(tts.stream_marked(text)) as pieces:
            async for pcm, rate, marks in pieces:
                out.extend(at + ms for ms, _ in marks)
                at += len(pcm) * 1000 / rate
        return out

    got = asyncio.run(go())
    assert len(got) == len(text)
    return got


def words_in(text: str, marks: list[float], ms: float) -> int:
    """The whole words of ``text`` that audio up to ``ms`` speaks (a word is spoken once the
    audio reaches the mark after its last character)."""
    k = bisect.bisect_right(marks, ms)
    if k < len(text) and not text[k].isspace():
        k = max(0, text.rfind(" ", 0, k))
    return len(text[:k].split())


def audio_ms(event: dict[str, Any]) -> float:
    return len(base64.b64decode(event["audio"])) / 2 * 1000 / RATE


def check_paced(events: list[dict[str, Any]], text: str, marks: list[float]) -> int:
    """At each output_audio.delta, the text shown (after the deltas that follow it) is within
    one word of what the audio received so far speaks, never ahead; the checks made."""
    sent = 0.0
    shown = ""
    checks = 0
    pending = False

    def check() -> None:
        nonlocal checks
        upper = bisect.bisect_right(marks, sent + SLACK_MS)
        assert len(shown) <= upper, (shown, sent)
        assert len(shown.split()) >= words_in(text, marks, sent - TRAIL_MS) - 1, (shown, sent)
        checks += 1

    for e in events:
        if e["type"] == "output_audio.delta":
            if pending:
                check()
            sent += audio_ms(e)
            pending = True
        elif e["type"] == "transcript.delta" and e["role"] == "assistant":
            shown = e["text"]
        elif e["type"] in ("transcript", "interruption"):
            break
    if pending:
        check()
    return checks


def test_greeting_transcript_follows_the_marks(tmp_path: Path) -> None:
    plugin = AtomsPlugin(chars_per_second=1000.0)
    agent = EchoAgent(tts=tts_marks.EspeakMarksTTS(), pace=1.0)
    with running(tmp_path, plugin=plugin, agent=agent) as srv:
        data = register_call(srv.port, variables={"user_name": "Ann"})

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"])) as ws:
                await until(ws, "agent_stop_talking", got)
            return got

        got = asyncio.run(call())
    text = "Hello Ann, this is Example Clinic. How can I help you today?"
    marks = marks_of(text)
    deltas = [e["text"] for e in got if e["type"] == "transcript.delta"]
    assert len(deltas) >= 4 and cumulative(deltas) and deltas[-1] == text
    kinds = [e["type"] for e in got]
    first_audio = kinds.index("output_audio.delta")
    # Nothing is shown before any audio, and words come one or two at a time.
    assert kinds.index("transcript.delta") > first_audio
    assert len(deltas[0].split()) <= 2
    assert check_paced(got, text, marks) >= 20


def test_barge_in_truncates_by_the_marks(tmp_path: Path) -> None:
    plugin = AtomsPlugin(chars_per_second=1000.0)
    agent = EchoAgent(tts=tts_marks.EspeakMarksTTS(), pace=1.0)
    with running(tmp_path, plugin=plugin, agent=agent) as srv:
        data = register_call(srv.port, "long")

        async def call() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "long")) as ws:
                await until(ws, "agent_start_talking", got)
                heard = 0.0
                while heard < 1500:  # let the agent speak for 1.5 s of audio
                    e = await recv(ws)
                    got.append(e)
                    if e["type"] == "output_audio.delta":
                        heard += audio_ms(e)
                for m in blocks(speech(), RATE):  # speak over it, in real time
                    await ws.send(m)
                    await asyncio.sleep(0.04)
                    if any(e["type"] == "interruption" for e in got):
                        break
                await until(ws, "interruption", got)
                await until(ws, "agent_stop_talking", got)
            return got

        got = asyncio.run(call())
    marks = marks_of(LONG_GREETING)
    kinds = [e["type"] for e in got]
    k = kinds.index("interruption")
    final = got[k + 1]
    assert (final["type"], final["role"]) == ("transcript", "assistant")
    heard = final["text"]
    sent = sum(audio_ms(e) for e in got[:k] if e["type"] == "output_audio.delta")
    assert LONG_GREETING.startswith(heard) and 0 < len(heard) < len(LONG_GREETING)
    assert len(heard) <= bisect.bisect_right(marks, sent + SLACK_MS)
    assert len(heard.split()) >= words_in(LONG_GREETING, marks, sent - TRAIL_MS) - 1
    # Truncated at a word the audio reached: the next character is a space.
    assert LONG_GREETING[len(heard)] in " ,."
    check_paced(got, LONG_GREETING, marks)
