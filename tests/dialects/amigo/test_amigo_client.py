"""voxwire's amigo client and ``voxwire talk --dialect amigo`` against a real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from amigo_helpers import SERVICE, ServerThread, make_env, speech, token_of

from voxwire.client import Player
from voxwire.clients.amigo import OUTPUT_RATE, AmigoClient, sign_in
from voxwire.dialects.amigo import AmigoSettings

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]


def test_client_plays_answers_and_stops_on_speech(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config()) as srv:
        kid, key = env.keys["alice"]
        token = sign_in(
            f"http://127.0.0.1:{srv.port}", "acme", api_key=key, api_key_id=kid, user_id="alice"
        )
        url = srv.url(query="response_format=voice&audio_format=pcm")
        out = tmp_path / "answer.wav"

        async def main() -> tuple[AmigoClient, Player, list[str]]:
            player = Player(OUTPUT_RATE, wav_path=str(out))
            async with AmigoClient(url, token, player=player) as c:
                conv = await c.start(SERVICE)
                greeting = await c.turn()
                await c.switch_vad(True)
                await c.stream_audio(speech(end_s=4.4), 16000, speed=0)
                first = await c.until("server.new-message")
                # The user speaks again while the echo plays: playback stops at once.
                await c.stream_audio(speech(start_s=4.4, end_s=7.6), 16000, speed=0)
                await c.until("server.vad-speech-started")
                stats = player.stats()
                await c.finish()
            return (
                c,
                player,
                [conv, greeting.text, first["interaction_id"], str(stats["cleared_ms"])],
            )

        c, _, (conv, greeting, _, cleared) = asyncio.run(main())
    assert len(conv) == 24 and greeting == "Hello, I am Echo."
    assert c.barge_ins and float(cleared) > 0  # queued answer audio was dropped
    assert c.close_code == 1000
    with wave.open(str(out)) as w:
        assert w.getframerate() == OUTPUT_RATE and w.getnframes() > OUTPUT_RATE // 2


def test_keepalive_holds_an_idle_connection(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config(), AmigoSettings(idle_timeout_s=0.6)) as srv:
        token = token_of(srv.port, env)

        async def main() -> tuple[int | None, int | None]:
            c = AmigoClient(srv.url(), token, keepalive_s=0.2)
            await c.connect()
            await asyncio.sleep(1.5)
            alive = c.ws.close_code
            await c.close()
            quiet = AmigoClient(srv.url(), token, keepalive_s=60)
            await quiet.connect()
            for _ in range(100):
                if quiet.close_code is not None:
                    break
                await asyncio.sleep(0.05)
            await quiet.close()
            return alive, quiet.close_code

        alive, quiet = asyncio.run(main())
    assert alive is None and quiet == 3008


def test_voxwire_talk_dialect_amigo(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(speech(end_s=4.0).astype("<i2").tobytes())
    out = tmp_path / "answer.wav"
    with ServerThread(env.server_config()) as srv:
        key = env.keys["alice"][1]
        url = srv.url(query="response_format=voice&audio_format=pcm")
        cmd = [sys.executable, "-m", "voxwire", "talk", str(wav), "--dialect", "amigo",
               "--url", url, "--api-key", key, "--service", SERVICE, "--speed", "0",
               "--out", str(out)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "server.vad-speech-started" in done.stdout
    assert "server.vad-speech-ended" in done.stdout
    assert "agent: Hello, I am Echo." in done.stdout
    with wave.open(str(out)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.abs(x).max() > 1000  # the greeting and the echoed speech were played
