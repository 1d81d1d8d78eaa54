"""Speech-class F1 of each VAD engine on ../shared/data/vad-dev, per condition and mean.

Engines: py-webrtcvad modes 0, 2 and 3 (30 ms frames, as in the data set's reference
table), voxwire's "spectral", "silero" (default), "webrtc" and "energy" engines (10 ms frames) and a
fixed -45 dBFS energy gate. Decisions on longer frames are spread over their 10 ms label frames.

Usage: python benches/vad_f1.py [--data ../shared/data/vad-dev] [--out docs/vad_f1.png]
Needs: pip install "voxwire[bench,plot]"
"""

from __future__ import annotations

import argparse
import json
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import webrtcvad

import voxwire

Decide = Callable[[np.ndarray], np.ndarray]  # 16 kHz int16 -> one bool per 10 ms frame


def py_webrtcvad(mode: int, ms: int = 30) -> Decide:
    def run(x: np.ndarray) -> np.ndarray:
        n = 16 * ms
        vad = webrtcvad.Vad(mode)
        d = [vad.is_speech(x[i : i + n].tobytes(), 16000) for i in range(0, len(x) - n + 1, n)]
        return np.repeat(np.array(d, bool), ms // 10)

    return run


def voxwire_engine(engine: str, mode: int = 0) -> Decide:
    def run(x: np.ndarray) -> np.ndarray:
        return voxwire.Vad(engine, sample_rate=16000, frame_ms=10, mode=mode).classify(x)

    return run


def fixed_gate(dbfs: float = -45.0) -> Decide:
    def run(x: np.ndarray) -> np.ndarray:
        f = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
        level = 10 * np.log10(np.mean(f**2, axis=1) / 32768**2 + 1e-12)
        return np.asarray(level > dbfs)

    return run


ENGINES: dict[str, Decide] = {
    "py-webrtcvad mode 0": py_webrtcvad(0),
    "py-webrtcvad mode 3": py_webrtcvad(3),
    "py-webrtcvad mode 2": py_webrtcvad(2),
    "voxwire webrtc mode 2 (10 ms)": voxwire_engine("webrtc", 2),
    "voxwire spectral": voxwire_engine("spectral"),
    "voxwire silero (default, 10 ms frames)": voxwire_engine("silero"),
    "voxwire energy": voxwire_engine("energy"),
    "fixed -45 dBFS gate": fixed_gate(),
}


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    n = min(len(pred), len(truth))
    p, t = pred[:n], truth[:n]
    tp = float(np.sum(p & t))
    denom = float(np.sum(p) + np.sum(t))
    return 2 * tp / denom if denom else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    here = Path(__file__).resolve().parent
    ap.add_argument("--data", default=str(here.parents[1] / "shared" / "data" / "vad-dev"))
    ap.add_argument("--out", default=str(here.parent / "docs" / "vad_f1.png"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data = Path(args.data)
    meta = json.loads((data / "meta.json").read_text())
    labels = np.load(data / "labels.npy").astype(bool)
    conditions = meta["conditions"]
    scores: dict[str, list[float]] = {name: [] for name in ENGINES}
    for c in conditions:
        with wave.open(str(data / f"{c}.wav")) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        for name, decide in ENGINES.items():
            scores[name].append(f1(decide(x), labels))
    width = max(len(n) for n in ENGINES)
    print(f"{'engine':<{width}}  mean F1  " + "  ".join(f"{c[:9]:>9}" for c in conditions))
    for name, s in scores.items():
        print(f"{name:<{width}}  {np.mean(s):7.3f}  " + "  ".join(f"{v:9.3f}" for v in s))
    if args.json:
        Path(args.json).write_text(
            json.dumps({k: dict(zip(conditions, v, strict=True)) for k, v in scores.items()})
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    idx = np.arange(len(conditions))
    w = 0.8 / len(ENGINES)
    for i, (name, s) in enumerate(scores.items()):
        ax.bar(idx + i * w, s, w, label=f"{name} (mean {np.mean(s):.3f})")
    ax.set_xticks(idx + 0.4 - w / 2)
    ax.set_xticklabels(conditions, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("speech-class F1 (10 ms frames)")
    ax.set_ylim(0, 1)
    ax.axhline(0.88, color="red", lw=0.7, ls="--")
    ax.set_title("VAD F1 per condition on vad-dev (dashed: the 0.88 mean target)")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
