"""voxwire.webrtcvad against py-webrtcvad (webrtcvad-wheels): same decisions, same API."""

import wave
from pathlib import Path

import _webrtcvad  # py-webrtcvad's extension: its Error class is not re-exported
import numpy as np
import pytest
import webrtcvad

import voxwire
import voxwire.webrtcvad as vw

VAD_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "vad-dev"


def frames_agree(x: np.ndarray, rate: int, mode: int, ms: int) -> tuple[int, int]:
    n = rate // 1000 * ms
    ours, theirs = vw.Vad(mode), webrtcvad.Vad(mode)
    total = len(x) // n
    same = 0
    for i in range(total):
        buf = x[i * n : (i + 1) * n].tobytes()
        same += ours.is_speech(buf, rate) == theirs.is_speech(buf, rate)
    return same, total


def synthetic(rate: int, seconds: float = 6.0) -> np.ndarray:
    """Bursts of harmonic tones and noise at changing levels, over a noise floor."""
    rng = np.random.default_rng(rate)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = rng.standard_normal(n) * 30
    for start in np.arange(0.2, seconds - 0.6, 0.9):
        s, e = int(start * rate), int((start + 0.5) * rate)
        f0 = rng.uniform(90, 250)
        burst = sum(np.sin(2 * np.pi * f0 * k * t[s:e]) / k for k in range(1, 12))
        x[s:e] += burst * rng.uniform(300, 8000) + rng.standard_normal(e - s) * rng.uniform(0, 2000)
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 32000])
def test_agrees_on_synthetic_signals(rate: int) -> None:
    x = synthetic(rate)
    for mode in range(4):
        for ms in (10, 20, 30):
            same, total = frames_agree(x, rate, mode, ms)
            assert same == total, (rate, mode, ms, same, total)


@pytest.mark.slow
@pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is not beside this clone")
def test_agrees_on_vad_dev_at_8_16_32_khz() -> None:
    conditions = sorted(p.stem for p in VAD_DEV.glob("*.wav"))
    assert len(conditions) == 17
    same = total = 0
    for c in conditions:
        with wave.open(str(VAD_DEV / f"{c}.wav")) as w:
            x16 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        for rate in (8000, 16000, 32000):
            x = x16 if rate == 16000 else voxwire.resample(x16, 16000, rate)
            for mode in range(4):
                for ms in (10, 20, 30):
                    s, t = frames_agree(x, rate, mode, ms)
                    same += s
                    total += t
    assert same / total >= 0.999, (same, total)


def test_api_and_errors_match() -> None:
    v = vw.Vad()
    assert v.mode == 0
    v.set_mode(3)
    with pytest.raises(ValueError):
        vw.Vad(4)
    with pytest.raises(ValueError):
        webrtcvad.Vad(4)
    with pytest.raises(ValueError):  # py-webrtcvad raises SystemError here
        v.set_mode(-1)
    frame = bytes(320)
    for rate, buf, length in [
        (16000, frame[:300], None),
        (44100, bytes(882), None),
        (16000, frame, 100),
    ]:
        with pytest.raises(vw.Error):
            v.is_speech(buf, rate, length)
        with pytest.raises(_webrtcvad.Error):
            webrtcvad.Vad(0).is_speech(buf, rate, length)
    with pytest.raises(IndexError):
        v.is_speech(frame, 16000, 200)
    with pytest.raises(IndexError):
        webrtcvad.Vad(0).is_speech(frame, 16000, 200)
    assert isinstance(vw.Error("x"), voxwire.errors.VoxwireError)
    for rate in (8000, 11025, 16000, 32000, 44100, 48000):
        for n in (0, 80, 160, 240, 320, 441, 480, 960, 1440):
            assert vw.valid_rate_and_frame_length(rate, n) == webrtcvad.valid_rate_and_frame_length(
                rate, n
            )
    # A longer buffer with `length` classifies its first `length` samples, like py-webrtcvad.
    x = synthetic(16000, 1.0)
    a, b = vw.Vad(1), webrtcvad.Vad(1)
    for i in range(0, 15000, 160):
        buf = x[i : i + 480].tobytes()
        assert a.is_speech(buf, 16000, 160) == b.is_speech(buf, 16000, 160)
    # int16 arrays are accepted too.
    assert vw.Vad(1).is_speech(x[:160], 16000) == webrtcvad.Vad(1).is_speech(
        x[:160].tobytes(), 16000
    )


def test_48khz_classifies_the_whole_frame() -> None:
    # Silence for the first 10 ms, a loud tone for the other 20: py-webrtcvad looks only at
    # the first 10 ms (repeated) and says no speech; voxwire classifies the whole frame.
    rate = 48000
    t = np.arange(960) / rate
    tone = (np.sin(2 * np.pi * 200 * t) * 12000).astype(np.int16)
    ours, theirs = vw.Vad(0), webrtcvad.Vad(0)
    said_ours = said_theirs = False
    for _ in range(30):
        frame = np.concatenate([np.zeros(480, np.int16), tone]).tobytes()
        said_ours |= ours.is_speech(frame, rate)
        said_theirs |= theirs.is_speech(frame, rate)
    assert said_ours and not said_theirs
