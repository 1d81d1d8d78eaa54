"""The echo agent speaks with the session's voice when it is an espeak-ng voice of the
machine (rtguide's `set_agent_voice`, say), and with its own for any other (OpenAI's
"alloy")."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from voxwire.agents import AudioChunk, EchoAgent, EspeakTTS
from voxwire.registry import espeak_voices
from voxwire.session.events import UserTurn

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]


def speak(voice: str) -> np.ndarray:
    agent = EchoAgent(tts=EspeakTTS(voice="en-us"), pace=0.0)
    turn = UserTurn(None, "hello there", None, 24000, None, ("audio",), "", voice=voice)

    async def run() -> np.ndarray:
        chunks = [o.pcm async for o in agent.respond(turn) if isinstance(o, AudioChunk)]
        return np.concatenate(chunks)

    return asyncio.run(run())


def test_the_session_voice_is_spoken_when_the_tts_knows_it() -> None:
    ids = [v.id for v in espeak_voices() if v.id != "en-us"]
    other = "de" if "de" in ids else ids[0]
    default = speak("")
    assert np.array_equal(speak("alloy"), default)  # not an espeak-ng voice: its own
    assert np.array_equal(speak("en-us"), default)
    assert not np.array_equal(speak(other), default)
