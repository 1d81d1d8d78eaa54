"""VAD F1 outside vad-dev's conditions: its clean speech under other noises and channels.

vad-dev mixes its speech with white, pink, ALSA and hum noise. This script keeps the same
speech and labels and builds other conditions, seeded, so the default engine is also seen
where it was not tuned: brown (car-like) noise, a stationary chord, a strongly modulated
chord (music-like), babble (six time-shifted copies of the same recording), a 0.5 s
reverberation tail, speech 30 dB quieter, and 8 kHz G.711 telephony. Speech-class F1 per
10 ms frame, for voxwire's engines and py-webrtcvad (30 ms frames), beside "always speech"
(what a detector that never says silence scores).

Usage: python benches/vad_generality.py [--data ../shared/data/vad-dev]
Needs: pip install "voxwire[bench]"
"""

from __future__ import annotations

import argparse
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import webrtcvad

import voxwire
from voxwire import g711

Signal = npt.NDArray[np.float64]


def f1(pred: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_]) -> float:
    n = min(len(pred), len(labels))
    p, lab = pred[:n], labels[:n]
    tp = int(np.sum(p & lab))
    return 2 * tp / (2 * tp + int(np.sum(p & ~lab)) + int(np.sum(~p & lab)))


def conditions(x: Signal, speech: npt.NDArray[np.bool_]) -> dict[str, tuple[Signal, int]]:
    """Each condition's signal and sample rate, from the clean 16 kHz speech `x`."""
    rng = np.random.default_rng(7)
    n = len(x)
    t = np.arange(n) / 16000
    power = float(np.mean(x[speech] ** 2))

    def mix(noise: Signal, snr_db: float) -> Signal:
        gain = np.sqrt(power / np.mean(noise**2) / 10 ** (snr_db / 10))
        return x + gain * noise

    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(800) / 800, "same")  # no drift below 20 Hz
    notes = [220, 277, 330, 440, 554, 660, 880]
    chord = sum(np.sin(2 * np.pi * f * t) for f in notes)
    music = sum(np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 0.5 * t + f)) for f in notes)
    babble = sum(np.roll(x, int(rng.integers(n // 8, n - n // 8))) for _ in range(6))
    ir = rng.standard_normal(8000) * np.exp(-np.arange(8000) / 16000 * 13.8 / 0.5)
    ir[0] = 1.0
    reverb = np.convolve(x, ir)[:n]
    reverb *= np.max(np.abs(x)) / np.max(np.abs(reverb))
    tel = voxwire.resample(np.clip(x, -32768, 32767).astype(np.int16), 16000, 8000)
    tel = g711.ulaw_decode(g711.ulaw_encode(tel)).astype(np.float64)
    return {
        "brown noise 5 dB": (mix(brown, 5), 16000),
        "stationary chord 10 dB": (mix(chord, 10), 16000),
        "modulated chord (music) 10 dB": (mix(music, 10), 16000),
        "babble 10 dB": (mix(babble, 10), 16000),
        "reverberation 0.5 s": (reverb, 16000),
        "speech 30 dB quieter": (x * 10 ** (-30 / 20), 16000),
        "8 kHz G.711 mu-law": (tel, 8000),
    }


def engines() -> dict[str, Callable[[npt.NDArray[np.int16], int], npt.NDArray[np.bool_]]]:
    def ours(engine: str, mode: int = 0) -> Callable[..., npt.NDArray[np.bool_]]:
        return lambda y, rate: voxwire.Vad(
            engine, sample_rate=rate, frame_ms=10, mode=mode
        ).classify(y)

    def theirs(mode: int) -> Callable[..., npt.NDArray[np.bool_]]:
        def run(y: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.bool_]:
            vad, k = webrtcvad.Vad(mode), rate * 30 // 1000
            d = [vad.is_speech(y[i : i + k].tobytes(), rate) for i in range(0, len(y) - k + 1, k)]
            return np.repeat(np.array(d, bool), 3)

        return run

    return {
        "voxwire spectral": ours("spectral"),
        "voxwire silero (default)": ours("silero"),
        "voxwire webrtc mode 2": ours("webrtc", 2),
        "voxwire energy": ours("energy"),
        "py-webrtcvad mode 2": theirs(2),
        "py-webrtcvad mode 3": theirs(3),
        "always speech": lambda y, rate: np.ones(len(y) * 100 // rate, bool),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data/vad-dev")
    a = ap.parse_args()
    labels = np.load(a.data / "labels.npy").astype(bool)
    with wave.open(str(a.data / "clean.wav")) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    speech = np.repeat(labels, 160)[: len(x)]
    x = x[: len(speech)]
    conds = conditions(x, speech)
    eng = engines()
    print(f"{'condition':32s}" + "".join(f"{k[:22]:>24s}" for k in eng))
    for name, (y, rate) in conds.items():
        y16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        cells = [f1(run(y16, rate), labels) for run in eng.values()]
        print(f"{name:32s}" + "".join(f"{c:24.3f}" for c in cells))


if __name__ == "__main__":
    main()
