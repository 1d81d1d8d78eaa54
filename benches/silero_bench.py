"""voxwire's native Silero engine against the reference, the silero-vad package's ONNX model on
onnxruntime, per window, in one process.

Both run the same model on the same windows of a real clip (vad-dev ``clean.wav`` when
../shared/data/vad-dev is beside the repo, else a synthetic talk-and-pause stream), one
window per call, state carried from call to call, interleaved batch by batch
(``voxwire.bench.compare``) so that machine drift hits both alike:

- voxwire: ``Vad("silero", rate, frame_ms=32).probability(frame)``, int16 in;
- onnxruntime, as silero-vad's ``OnnxWrapper`` drives it: int16 to float, the context
  concatenated, ``session.run`` (one thread, as the wrapper sets);
- onnxruntime, ``session.run`` alone on a prepared float input (its floor per window).

Needs ``onnxruntime`` and ``pip install --no-deps silero-vad``.

Usage: python benches/silero_bench.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.bench import Row, _talk, compare, format_table, summarize

VAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "vad-dev"


def clip(rate: int) -> tuple[str, npt.NDArray[np.int16]]:
    """A minute of speech and pauses at ``rate``, and where it comes from."""
    path = VAD_DEV / "clean.wav"
    if path.is_file():
        with wave.open(str(path), "rb") as w:
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        src = "vad-dev clean.wav"
    else:
        x, src = _talk(60.0, 16000), "synthetic talk"
    return src, (x if rate == 16000 else voxwire.resample(x, 16000, rate))


def session(path: Path) -> object:
    """An onnxruntime session as silero-vad's OnnxWrapper opens it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def cases(
    rate: int, path: Path
) -> list[tuple[str, str, Callable[[], object], Callable[[], object]]]:
    """(operation, peer, ours, peer) per case at ``rate``."""
    src, x = clip(rate)
    win, ctx = (512, 64) if rate == 16000 else (256, 32)
    frames = [x[i : i + win] for i in range(0, len(x) - win + 1, win)]
    sess = session(path)
    sr = np.array(rate, np.int64)

    vad = voxwire.Vad("silero", sample_rate=rate, frame_ms=32)
    ours_next = itertools.cycle(frames).__next__

    def ours() -> object:
        return vad.probability(ours_next())

    state = {"s": np.zeros((2, 1, 128), np.float32), "ctx": np.zeros((1, ctx), np.float32)}
    peer_next = itertools.cycle(frames).__next__

    def wrapper() -> object:
        f = peer_next().astype(np.float32)[None] / 32768.0
        inp = np.concatenate([state["ctx"], f], axis=1)
        out, state["s"] = sess.run(None, {"input": inp, "state": state["s"], "sr": sr})  # type: ignore[attr-defined]
        state["ctx"] = inp[:, -ctx:]
        return out

    # Each window with its context (the previous window's last samples; zeros at first).
    padded = np.concatenate([np.zeros(ctx, np.int16), x])
    windows = [
        (padded[i : i + ctx + win].astype(np.float32) / 32768.0)[None]
        for i in range(0, len(frames) * win, win)
    ]
    prepared = itertools.cycle(windows).__next__
    bare_state = {"s": np.zeros((2, 1, 128), np.float32)}

    def bare() -> object:
        out, bare_state["s"] = sess.run(  # type: ignore[attr-defined]
            None, {"input": prepared(), "state": bare_state["s"], "sr": sr}
        )
        return out

    op = f"Silero VAD, one {win}-sample window at {rate // 1000} kHz ({src})"
    return [
        (op, "onnxruntime as OnnxWrapper (int16 -> float, context, run)", ours, wrapper),
        (op, "onnxruntime session.run alone (prepared input)", ours, bare),
    ]


def main() -> None:
    """Runs the comparison and prints the table (median run, ratio range over runs)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter batches, one run")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    args = ap.parse_args()
    dist = importlib.metadata.distribution("silero-vad")
    path = Path(str(dist.locate_file("silero_vad/data/silero_vad.onnx")))
    budget = 1.0 if args.quick else 4.0
    runs = 1 if args.quick else args.runs
    all_runs: list[list[Row]] = []
    for _ in range(runs):
        rows = []
        for rate in (16000, 8000):
            for op, peer, ours, theirs in cases(rate, path):
                o, p = compare(ours, theirs, budget)
                rows.append(Row(op, "window", peer, o, p, 10.0))
        all_runs.append(rows)
    summary = summarize(all_runs)
    print(
        format_table([r for r, _, _ in summary], [(lo, hi) for _, lo, hi in summary], targets=True)
    )


if __name__ == "__main__":
    main()
