"""Binary audio: real speech (vad-dev) in raw PCM16 frames, the answer as binary PCM16 at
24 kHz; voice ``none`` is text only; speech during an answer cancels it (barge-in)."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtguide_helpers import Client, ready, running_server, types

import voxwire
from voxwire.asr import default_asr

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]

VAD_DEV = Path(__file__).resolve().parents[4] / "shared" / "data" / "vad-dev"
needs_data = pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is absent")


def utterance(rate: int = 16000) -> bytes:
    """clean.wav 11.3-17.0 s: one utterance (speech 12.94-15.19 s) and the pause after it."""
    with wave.open(str(VAD_DEV / "clean.wav")) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)[11300 * 16 : 17000 * 16]
    if rate != 16000:
        x = voxwire.resample(x, 16000, rate)
    return x.astype("<i2").tobytes()


async def stream(c: Client, pcm: bytes, rate: int) -> None:
    step = rate // 50 * 2  # 20 ms frames, no header
    for k in range(0, len(pcm), step):
        await c.ws.send(pcm[k : k + step])


async def set_voice(c: Client, voice: str) -> dict[str, Any]:
    await c.send("set_agent_voice", voice_id=voice)
    return (await c.until("agent_voice_changed"))[-1]


@needs_data
@pytest.mark.parametrize("rate", [16000, 24000])
def test_audio_turn(tmp_path: Path, rate: int) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            query = {"input_sample_rate": str(rate)} if rate != 16000 else {}
            c, _ = await ready(srv, **query)
            v = await set_voice(c, "en-us")
            assert v["voice"]["output_format"] == "pcm16"
            await stream(c, utterance(rate), rate)
            evs = await c.until("user_turn_start", timeout=30)
            t = types(evs)
            assert t[0] == "user_turn_end"
            assert t.index("interaction") < t.index("completion")
            done = [e for e in evs if e["type"] == "completion" and not e["running"]]
            assert len(done) == 1 and done[0]["stop_reason"] == "stop"
            audio = b"".join(c.audio)
            assert len(audio) % 2 == 0
            seconds = len(audio) / 2 / 24000  # the echo of the utterance, at 24 kHz
            assert 2.0 < seconds < 5.0, seconds
            answer = np.frombuffer(audio, "<i2")
            assert np.abs(answer).max() > 1000  # speech, not silence
            await c.close()

    asyncio.run(main())


@needs_data
def test_audio_turn_with_transcript_and_voice_none(tmp_path: Path) -> None:
    asr = default_asr()
    if asr is None:
        pytest.skip("no ASR installed")

    async def main() -> None:
        async with running_server(tmp_path / "s.db", asr=asr) as srv:
            c, _ = await ready(srv)
            await set_voice(c, "none")
            await stream(c, utterance(), 16000)
            evs = await c.until("user_turn_start", timeout=60)
            assert types(evs)[0] == "user_turn_end"
            text = "".join(e["content"] for e in evs if e["type"] == "text_delta")
            assert text.strip()  # the transcript, echoed as text
            hist = next(e for e in evs if e["type"] == "history_delta")
            assert hist["messages"][0] == {"role": "user", "content": text}
            assert c.audio == []  # voice none: text only
            await c.close()

    asyncio.run(main())


@needs_data
def test_barge_in_by_speech(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            srv.agent.hold_audio = True  # the answer stays in progress after its first audio
            c, _ = await ready(srv)
            await set_voice(c, "en-us")
            pcm = utterance()
            await stream(c, pcm, 16000)
            evs = await c.until("completion", timeout=30)
            assert types(evs)[0] == "user_turn_end" and evs[-1]["running"] is True
            if not c.audio:
                await c.audio_frame()
            await stream(c, pcm, 16000)  # the user speaks again
            evs = await c.until("user_turn_start", timeout=30)
            done = next(e for e in evs if e["type"] == "completion")
            assert done["running"] is False and done["stop_reason"] == "cancelled"
            evs = await c.until("completion", timeout=30)  # the new turn
            t = [x for x in types(evs) if x != "chat_session_added"]  # (the stored turn's)
            assert t[0] == "user_turn_end" and evs[-1]["running"] is True
            srv.agent.release.set()
            evs = await c.until("user_turn_start", timeout=30)
            done = next(e for e in evs if e["type"] == "completion")
            assert done["stop_reason"] == "stop"
            await c.close()

    asyncio.run(main())
