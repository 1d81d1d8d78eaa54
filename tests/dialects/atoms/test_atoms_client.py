"""The client side: ``voxwire.clients.atoms`` and ``voxwire talk --dialect atoms``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from atoms_harness import AGENT, CONFIG, KEY, running, speech

from voxwire.clients.atoms import AtomsClient, CallLog, base_url
from voxwire.demo import spawn_server

pytestmark = pytest.mark.timeout(120)


def test_base_url() -> None:
    assert base_url("ws://127.0.0.1:9/v1/realtime") == "http://127.0.0.1:9"
    assert base_url("wss://h.example/atoms") == "https://h.example"
    assert base_url("127.0.0.1:9") == "http://127.0.0.1:9"


@pytest.mark.slow
@pytest.mark.network
def test_client_plays_the_greeting_and_drops_it_on_interruption(tmp_path: Path) -> None:
    with running(tmp_path) as srv:

        async def main() -> CallLog:
            c = AtomsClient(f"http://127.0.0.1:{srv.port}", api_key=KEY, agent_id="long")
            async with c:
                await c.wait_for("agent_start_talking")
                await asyncio.sleep(0.6)  # past the 250 ms pre-buffer: audio is playing
                n = len(c.log.events)
                await c.send_audio(speech(16000), 16000, speed=0)
                await c.wait_for("interruption", after=n)
                await c.wait_for("agent_stop_talking", after=n)
                return c.log

        log = asyncio.run(main())
    assert log.interruptions == 1
    assert log.played_before_interruption_ms[0] > 0  # it was playing when it was dropped
    assert log.closed_reason == "client_requested"
    played = log.played_audio()
    assert np.abs(played.astype(np.int32)).max() > 1000


@pytest.mark.slow
@pytest.mark.network
def test_voxwire_talk_dialect_atoms(tmp_path: Path) -> None:
    cfg = tmp_path / "voxwire.toml"
    cfg.write_text(CONFIG)
    wav = tmp_path / "user.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(speech(16000).astype("<i2").tobytes())
    out = tmp_path / "played.wav"
    store = f"sqlite:///{tmp_path / 's.db'}"
    with spawn_server(
        "--config", str(cfg), "--store", store, "--api-key", KEY, "--asr", "none"
    ) as (
        port,
        _,
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxwire",
                "talk",
                str(wav),
                "--dialect",
                "atoms",
                "--url",
                f"ws://127.0.0.1:{port}",
                "--api-key",
                KEY,
                "--agent-id",
                AGENT,
                "--out",
                str(out),
                "--speed",
                "4",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert done.returncode == 0, done.stderr
    assert "assistant: Hello there, this is Example Clinic." in done.stdout
    with wave.open(str(out)) as w:
        assert w.getframerate() == 24000 and w.getnframes() > 24000
