"""``voxwire talk --dialect rtguide`` against ``voxwire serve``: login, connect, speak
(binary frames), play the binary answer through the jitter buffer into a WAV file."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from voxwire.demo import spawn_server

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]

VAD_DEV = Path(__file__).resolve().parents[4] / "shared" / "data" / "vad-dev"


@pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is absent")
def test_voxwire_talk_rtguide(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    subprocess.run(
        [sys.executable, "-m", "voxwire", "users", "add", "alice", "--store", store],
        input="talk-password\n",
        text=True,
        check=True,
        timeout=60,
        capture_output=True,
    )
    with wave.open(str(VAD_DEV / "clean.wav")) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)[11300 * 16 : 17000 * 16]
    speech = tmp_path / "speech.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(x.tobytes())
    out = tmp_path / "answer.wav"
    env = {**os.environ, "VOXWIRE_PASSWORD": "talk-password"}
    with spawn_server("--store", store) as (port, _):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxwire",
                "talk",
                str(speech),
                "--dialect",
                "rtguide",
                "--url",
                f"http://127.0.0.1:{port}",
                "--username",
                "alice",
                "--out",
                str(out),
                "--speed",
                "0",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "stop reason: stop" in r.stdout
        env["VOXWIRE_PASSWORD"] = "wrong"
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxwire",
                "talk",
                str(speech),
                "--dialect",
                "rtguide",
                "--url",
                f"http://127.0.0.1:{port}",
                "--username",
                "alice",
                "--out",
                str(tmp_path / "no.wav"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode != 0 and "Invalid credentials" in bad.stderr
    with wave.open(str(out)) as w:
        assert w.getframerate() == 24000
        answer = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert len(answer) > 24000  # more than a second of the echoed utterance was played
    assert np.abs(answer).max() > 1000
