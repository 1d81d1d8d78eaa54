"""The native Silero engine (``Vad("silero")``) against the reference: the silero-vad
package's ONNX model on onnxruntime, window by window, on every vad-dev clip at 16 and 8 kHz.

The reference needs ``onnxruntime`` (test extra) and the ``silero-vad`` package's model files.
silero-vad depends on torch, which the reference does not use, so it is installed without its
dependencies: ``pip install --no-deps silero-vad`` (.ci/run does). Without it these tests skip,
except under CI, where they fail.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import voxwire

VAD_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "vad-dev"
TOLERANCE = 1e-3


def _model_path() -> Path | None:
    try:
        dist = importlib.metadata.distribution("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None
    p = Path(str(dist.locate_file("silero_vad/data/silero_vad.onnx")))
    return p if p.is_file() else None


def _need_reference() -> tuple[Any, Path]:
    """onnxruntime and the model file, or a skip (a failure under CI)."""
    missing = []
    try:
        import onnxruntime
    except ImportError:
        missing.append("onnxruntime")
    path = _model_path()
    if path is None:
        missing.append("silero-vad (pip install --no-deps silero-vad)")
    if missing:
        msg = "the Silero reference needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg + ", and CI must run the Silero accuracy tests")
        pytest.skip(msg)
    return onnxruntime, path  # type: ignore[return-value]


class Reference:
    """The package's ONNX model on onnxruntime, driven like silero-vad's ``OnnxWrapper`` (the
    last 64 / 32 samples of each window are the next one's context; state carried), over a
    batch of equal-length streams at once (each stream has its own state and context)."""

    def __init__(self, rate: int) -> None:
        ort, path = _need_reference()
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.rate = rate
        self.window, self.context = (512, 64) if rate == 16000 else (256, 32)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``x``: int16, streams by samples; one probability per whole window, per stream."""
        batch = x.shape[0]
        f = x.astype(np.float32) / 32768.0
        state = np.zeros((2, batch, 128), np.float32)
        context = np.zeros((batch, self.context), np.float32)
        sr = np.array(self.rate, np.int64)
        n = x.shape[1] // self.window
        out = np.empty((batch, n), np.float32)
        for i in range(n):
            inp = np.concatenate([context, f[:, i * self.window : (i + 1) * self.window]], 1)
            p, state = self.session.run(None, {"input": inp, "state": state, "sr": sr})
            out[:, i] = p[:, 0]
            context = inp[:, -self.context :]
        return out


def _clips(rate: int) -> tuple[list[str], np.ndarray]:
    meta = json.loads((VAD_DEV / "meta.json").read_text())
    names: list[str] = meta["conditions"]
    xs = []
    for name in names:
        with wave.open(str(VAD_DEV / f"{name}.wav"), "rb") as w:
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        if rate != 16000:
            x = voxwire.resample(x, 16000, rate)
        xs.append(x)
    n = min(len(x) for x in xs)
    return names, np.stack([x[:n] for x in xs])


@pytest.mark.slow
@pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is not beside this clone")
@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.timeout(300)
def test_probabilities_match_the_reference_on_every_vad_dev_window(rate: int) -> None:
    ref = Reference(rate)
    names, x = _clips(rate)
    expected = ref.probabilities(x)
    worst = 0.0
    for name, clip, exp in zip(names, x, expected, strict=True):
        vad = voxwire.Vad("silero", sample_rate=rate, frame_ms=32)
        got = vad.probabilities(clip)
        assert got.shape == exp.shape
        diff = float(np.abs(got - exp).max())
        assert diff < TOLERANCE, f"{name} at {rate} Hz: max difference {diff}"
        worst = max(worst, diff)
    # The figures the README quotes: windows compared and the largest difference.
    print(f"\nsilero {rate} Hz: {expected.size} windows, max abs difference {worst:.2e}")


@pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is not beside this clone")
def test_streaming_in_any_chunks_and_reset() -> None:
    """Frames of any length see the same windows: with 10 ms frames, each frame reports the
    last window completed; after reset() a stream starts from zero state again."""
    _, x = _clips(16000)
    clip = x[0][: 16000 * 10]
    whole = voxwire.Vad("silero", frame_ms=32).probabilities(clip)
    vad = voxwire.Vad("silero", frame_ms=10)
    for _ in range(2):
        per10 = vad.probabilities(clip)
        # Frame k (10 ms) ends at sample 160 (k + 1); the last window completed by then.
        idx = (np.arange(len(per10)) + 1) * 160 // 512 - 1
        np.testing.assert_array_equal(per10[idx >= 0], whole[idx[idx >= 0]])
        assert np.all(per10[idx < 0] == 0)
        vad.reset()


def test_rates_and_frames() -> None:
    """8 and 16 kHz natively; other voxwire rates through the resampler; bad rates refused."""
    rng = np.random.default_rng(1)
    for rate in (8000, 16000, 24000, 44100, 48000):
        vad = voxwire.Vad("silero", sample_rate=rate, frame_ms=20)
        assert vad.engine == "silero"
        assert vad.frame_samples == rate // 50
        p = vad.probabilities((rng.standard_normal(rate) * 100).astype(np.int16))
        assert p.shape == (50,) and p.dtype == np.float32
        assert np.all((p >= 0) & (p <= 1))
    with pytest.raises(ValueError, match="silero"):
        voxwire.Vad("silero", sample_rate=12000, frame_ms=10)


def test_silero_drives_turn_detection_and_the_input_pipeline() -> None:
    """TurnDetector and InputPipeline take engine="silero": silence starts no turn."""
    silence = np.zeros(16000 * 2, np.int16)
    td = voxwire.TurnDetector(engine="silero")
    assert td.push(silence) == []
    pipe = voxwire.InputPipeline(engine="silero")
    assert pipe.push(np.zeros(24000 * 2, np.int16)) == []
