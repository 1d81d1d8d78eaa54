"""voxwire's chatstream client and ``voxwire talk --dialect chatstream`` against real servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cs_helpers import API_KEY, running

from voxwire.agents import EspeakTTS
from voxwire.clients.chatstream import ChatstreamClient, ChatstreamError
from voxwire.demo import spawn_server
from voxwire.errors import AuthError

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not EspeakTTS.available(), reason="espeak-ng not installed"),
]

TEXT = "(joyful) Hello there! I am fine, thank you. How about you, Dr. Jones?"


def test_client_speaks_each_chunk_in_order(tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"

    async def main() -> tuple[Any, Any, dict[str, Any], list[Any], int]:
        srv_cm = running(tmp_path, ping_interval_s=0.2, pong_timeout_s=0.5)
        async with srv_cm as srv, ChatstreamClient(srv.ws_url, API_KEY) as c:
            speaker = c.speak(wav_path=str(out), speed=0)
            turn = await c.chat(TEXT, user_id="u1", agent_id="agent_001")
            stats = await speaker.done()
            # The speech of each chunk, asked for on its own, in the same order.
            alone = [await c.synthesize(chunk) for chunk, _ in turn.sentences]
            await asyncio.sleep(0.5)  # pings keep coming; the client answers them
            assert (await c.fetch_backgrounds()) == ["/bg/dusk.png", "/bg/room.jpg"]
            return turn, speaker, stats, alone, c.pings

    turn, speaker, stats, alone, pings = asyncio.run(main())
    assert turn.status == "completed" and turn.content == TEXT
    assert turn.sentences == [
        ("Hello there!", "joyful"),
        ("I am fine, thank you.", None),
        ("How about you, Dr. Jones?", None),
    ]
    assert speaker.played == [s for s, _ in turn.sentences]
    assert not speaker.failures
    assert pings >= 2
    # Everything fetched was played, in order, into the WAV file.
    with wave.open(str(out)) as w:
        rate = w.getframerate()
        played = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    expected = np.concatenate([pcm for pcm, _ in alone])
    assert rate == alone[0][1]
    assert stats["underruns"] == 0
    assert abs(len(played) - len(expected)) <= rate // 10
    # Same audio: the chunks follow one another as fetched (first and last 100 ms).
    n = rate // 10
    assert np.array_equal(played[:n], expected[:n])
    k = len(expected) - n
    assert np.array_equal(played[k : k + n], expected[k:])


def test_client_errors(tmp_path: Path) -> None:
    async def main() -> tuple[str, str]:
        async with running(tmp_path) as srv:
            c = ChatstreamClient(srv.ws_url, "wrong")
            await c.connect()
            with pytest.raises(AuthError):
                await c.authorize()
            await c.close()
            assert c.close_code == 4001
            async with ChatstreamClient(srv.ws_url, API_KEY) as c:
                with pytest.raises(ChatstreamError) as e1:
                    await c.switch_avatar_config("../secret.json")
                with pytest.raises(ChatstreamError) as e2:
                    await c.chat("x", user_id="", agent_id="a")
                return str(e1.value), str(e2.value)

    e1, e2 = asyncio.run(main())
    assert e1.startswith("Config file not found")
    assert e2 == "user_id is required and must be a non-empty string"


def test_voxwire_talk_dialect_chatstream(tmp_path: Path) -> None:
    out = tmp_path / "talk.wav"
    with spawn_server("--api-key", API_KEY) as (port, _):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxwire",
                "talk",
                "--dialect",
                "chatstream",
                "--url",
                f"ws://127.0.0.1:{port}/v1/chat/stream",
                "--api-key",
                API_KEY,
                "--text",
                TEXT,
                "--out",
                str(out),
                "--speed",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxwire",
                "talk",
                "--dialect",
                "chatstream",
                "--url",
                f"ws://127.0.0.1:{port}/v1/chat/stream",
                "--api-key",
                "wrong",
                "--speed",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tts_ready_chunk: Hello there! (joyful)" in r.stdout
    assert f"answer: {TEXT}" in r.stdout
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() > 1.0
    assert bad.returncode == 4 and "refused the credentials" in bad.stderr
