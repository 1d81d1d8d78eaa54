"""Speech-class F1, precision and recall per condition, for every VAD engine, on the sets of
benches/vad_sets.py (tune, eval) and on vad-dev.

Scored per 10 ms frame against the set's labels. Engines:
- voxwire "spectral", "silero", "energy" and "webrtc" (modes 0-3), 10 ms frames;
- py-webrtcvad, modes 0-3 at 10, 20 and 30 ms frames;
- Silero VAD on onnxruntime (the silero-vad package's ONNX model, driven as its OnnxWrapper
  drives it: 512-sample windows at 16 kHz, 256 at 8 kHz), with the same start/end hysteresis
  (0.5 / 0.35) as voxwire's "silero" engine and its VADIterator;
- TEN VAD (the ten-vad package, 16 kHz only: 8 kHz input is resampled to 16 kHz by
  voxwire.resample first), 10 ms hops, its own 0.5 threshold;
- "always speech", for scale.
Window-based engines give each 10 ms frame the decision of the last window completed by the
frame's end (what a streaming caller has then). For the engines with modes and frame lengths
(py-webrtcvad, voxwire webrtc) the table shows the one configuration with the best mean F1 on
the TUNING set (so the choice is not made on the set it is scored on); --all prints every one.

Usage:
  python benches/vad_eval.py [--set eval tune vad-dev] [--minutes 3] [--all] [--json PATH]
      [--markdown]
Needs: espeak-ng, pip install "voxwire[bench]"; optional peers: onnxruntime and
`pip install --no-deps silero-vad` (Silero), ten-vad (needs libc++1 from apt).
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import webrtcvad
from vad_sets import Condition, load

import voxwire
from voxwire.bench import _silero_model

Pcm = npt.NDArray[np.int16]
Decide = Callable[[Pcm, int], npt.NDArray[np.bool_]]


def score(pred: npt.NDArray[np.bool_], lab: npt.NDArray[np.bool_]) -> tuple[float, float, float]:
    """(F1, precision, recall) of the speech class."""
    n = min(len(pred), len(lab))
    p, t = pred[:n], lab[:n]
    if len(p) < len(t):
        p = np.concatenate([p, np.zeros(len(t) - len(p), bool)])
    tp = float(np.sum(p & t))
    fp = float(np.sum(p & ~t))
    fn = float(np.sum(~p & t))
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return f1, prec, rec


def voxwire_engine(engine: str, mode: int = 0) -> Decide:
    """voxwire.Vad on 10 ms frames."""

    def run(y: Pcm, rate: int) -> npt.NDArray[np.bool_]:
        return voxwire.Vad(engine, sample_rate=rate, frame_ms=10, mode=mode).classify(y)

    return run


def py_webrtcvad(mode: int, ms: int) -> Decide:
    """py-webrtcvad on `ms` frames, spread over 10 ms frames."""

    def run(y: Pcm, rate: int) -> npt.NDArray[np.bool_]:
        vad, k = webrtcvad.Vad(mode), rate * ms // 1000
        d = [vad.is_speech(y[i : i + k].tobytes(), rate) for i in range(0, len(y) - k + 1, k)]
        return np.repeat(np.array(d, bool), ms // 10)

    return run


def per_frame(
    window_ends: npt.NDArray[np.int64], dec: npt.NDArray[np.bool_], n: int, hop: int
) -> npt.NDArray[np.bool_]:
    """Each of `n` frames of `hop` samples gets the decision of the last window that ended
    by the frame's end (False before the first)."""
    ends = (np.arange(n) + 1) * hop
    j = np.searchsorted(window_ends, ends, side="right") - 1
    out = np.zeros(n, bool)
    ok = j >= 0
    out[ok] = dec[j[ok]]
    return out


def hysteresis(
    prob: npt.NDArray[np.float32], on: float = 0.5, off: float = 0.35
) -> npt.NDArray[np.bool_]:
    """Speech from a probability >= `on` until one < `off` (silero-vad's VADIterator)."""
    out = np.zeros(len(prob), bool)
    s = False
    for i, p in enumerate(prob):
        s = bool(p >= off) if s else bool(p >= on)
        out[i] = s
    return out


def silero_onnx() -> Decide | None:
    """Silero VAD's ONNX model on onnxruntime, as OnnxWrapper drives it (None if absent)."""
    path = _silero_model()
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if path is None:
        return None
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    def probs(y: Pcm, rate: int) -> npt.NDArray[np.float32]:
        win, ctx_n = (512, 64) if rate == 16000 else (256, 32)
        state = np.zeros((2, 1, 128), np.float32)
        ctx = np.zeros((1, ctx_n), np.float32)
        sr = np.array(rate, np.int64)
        x = y.astype(np.float32) / 32768.0
        out = []
        for i in range(0, len(x) - win + 1, win):
            inp = np.concatenate([ctx, x[None, i : i + win]], axis=1)
            p, state = sess.run(None, {"input": inp, "state": state, "sr": sr})
            ctx = inp[:, -ctx_n:]
            out.append(float(p[0, 0]))
        return np.array(out, np.float32)

    def run(y: Pcm, rate: int) -> npt.NDArray[np.bool_]:
        win = 512 if rate == 16000 else 256
        p = probs(y, rate)
        ends = (np.arange(len(p)) + 1) * win
        return per_frame(ends, hysteresis(p), len(y) // (rate // 100), rate // 100)

    return run


def ten_vad() -> Decide | None:
    """TEN VAD on 10 ms hops at 16 kHz (None if the package or its library is missing)."""
    try:
        from ten_vad import TenVad

        TenVad(160, 0.5)
    except (ImportError, OSError):
        return None

    def run(y: Pcm, rate: int) -> npt.NDArray[np.bool_]:
        n = len(y) // (rate // 100)
        y16 = y if rate == 16000 else voxwire.resample(y, rate, 16000)
        vad = TenVad(160, 0.5)
        d = [vad.process(y16[i : i + 160])[1] == 1 for i in range(0, len(y16) - 159, 160)]
        out = np.zeros(n, bool)
        out[: min(n, len(d))] = d[:n]
        return out

    return run


def always(y: Pcm, rate: int) -> npt.NDArray[np.bool_]:
    """Speech everywhere."""
    return np.ones(len(y) // (rate // 100), bool)


def families() -> dict[str, dict[str, Decide]]:
    """Engine families; a family with several configurations is shown by its best one."""
    fam: dict[str, dict[str, Decide]] = {
        "voxwire spectral": {"spectral": voxwire_engine("spectral")},
        "voxwire silero": {"silero": voxwire_engine("silero")},
        "voxwire webrtc": {f"mode {m}": voxwire_engine("webrtc", m) for m in range(4)},
        "voxwire energy": {"energy": voxwire_engine("energy")},
        "py-webrtcvad": {
            f"mode {m} {ms} ms": py_webrtcvad(m, ms) for m in range(4) for ms in (10, 20, 30)
        },
    }
    if (s := silero_onnx()) is not None:
        fam["Silero on onnxruntime"] = {"0.5/0.35": s}
    if (t := ten_vad()) is not None:
        fam["TEN VAD"] = {"0.5": t}
    fam["always speech"] = {"": always}
    return fam


def vad_dev(data: Path) -> tuple[npt.NDArray[np.bool_], list[Condition]]:
    """vad-dev's labels and conditions."""
    meta = json.loads((data / "meta.json").read_text())
    labels = np.load(data / "labels.npy").astype(bool)
    conds = []
    for c in meta["conditions"]:
        with wave.open(str(data / f"{c}.wav")) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        conds.append(Condition(c, c.split("_")[0], x, 16000))
    return labels, conds


def evaluate(
    lab: npt.NDArray[np.bool_], conds: list[Condition], fam: dict[str, dict[str, Decide]]
) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """Per family, per configuration: (F1, P, R) per condition."""
    return {
        f: {cfg: [score(run(c.samples, c.rate), lab) for c in conds] for cfg, run in cfgs.items()}
        for f, cfgs in fam.items()
    }


def best_configs(res: dict[str, dict[str, list[tuple[float, float, float]]]]) -> dict[str, str]:
    """Per family, the configuration with the best mean F1."""
    return {
        f: max(cfgs, key=lambda k: float(np.mean([s[0] for s in cfgs[k]])))
        for f, cfgs in res.items()
    }


def report(
    name: str,
    lab: npt.NDArray[np.bool_],
    conds: list[Condition],
    rows: dict[str, list[tuple[float, float, float]]],
    markdown: bool,
) -> None:
    """Prints one set's table: F1 (precision/recall) per condition and engine, and means."""
    names = list(rows)
    print(
        f"set {name}: {len(lab) / 100:.0f} s, {100 * lab.mean():.0f}% speech frames; "
        f"cells F1 (precision/recall), speech class, 10 ms frames"
    )

    def cell(v: tuple[float, float, float]) -> str:
        return f"{v[0]:.3f} ({v[1]:.2f}/{v[2]:.2f})"

    means = [tuple(np.mean(np.array(rows[k]), axis=0)) for k in names]
    if markdown:
        print("| condition | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for i, c in enumerate(conds):
            print(f"| {c.name} | " + " | ".join(cell(rows[k][i]) for k in names) + " |")
        print("| **mean** | " + " | ".join(f"**{cell(m)}**" for m in means) + " |")
    else:
        w = max(len(c.name) for c in conds) + 2
        print(f"{'condition':{w}s}" + "".join(f"{k[:26]:>28s}" for k in names))
        for i, c in enumerate(conds):
            print(f"{c.name:{w}s}" + "".join(f"{cell(rows[k][i]):>28s}" for k in names))
        print(f"{'mean':{w}s}" + "".join(f"{cell(m):>28s}" for m in means))
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--set", nargs="+", choices=["eval", "tune", "vad-dev"], default=["eval"], dest="sets"
    )
    ap.add_argument("--minutes", type=float, default=3.0)
    here = Path(__file__).resolve().parent
    ap.add_argument("--data", type=Path, default=here.parents[1] / "shared/data/vad-dev")
    ap.add_argument("--all", action="store_true", help="print every configuration")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    fam = families()
    tune_lab, tune_conds = load("tune", a.minutes)
    tune_res = evaluate(tune_lab, tune_conds, fam)
    pick = best_configs(tune_res)
    dump: dict[str, object] = {"picked_on_tune": pick}
    for name in a.sets:
        if name == "tune":
            lab, conds, res = tune_lab, tune_conds, tune_res
        else:
            lab, conds = vad_dev(a.data) if name == "vad-dev" else load("eval", a.minutes)
            res = evaluate(lab, conds, fam)
        rows = {f"{f} {pick[f]}".strip(): res[f][pick[f]] for f in res}
        if a.all:
            rows = {f"{f} {cfg}".strip(): v for f, cfgs in res.items() for cfg, v in cfgs.items()}
        report(name, lab, conds, rows, a.markdown)
        dump[name] = {
            "conditions": [c.name for c in conds],
            "results": {
                f"{f} {cfg}".strip(): v for f, cfgs in res.items() for cfg, v in cfgs.items()
            },
        }
    print("configurations picked on the tuning set:", pick)
    if a.json:
        a.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
