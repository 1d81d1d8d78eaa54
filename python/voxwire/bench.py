"""Benchmarks of voxwire against the libraries users would pick instead, in one process.

Each case times voxwire and its peer on the same input, interleaved batch by batch so that
machine drift hits both alike, and reports the median time per call and the ratio
``peer / voxwire`` (above 1: voxwire is faster). Run with ``voxwire bench`` or
``python -m voxwire bench``; the peers come with ``pip install "voxwire[bench]"``.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
import voxwire.webrtcvad
from voxwire import g711

#: 20 ms of 24 kHz mono PCM16: one chunk of an OpenAI-style realtime stream (960 bytes).
CHUNK_SAMPLES = 480
#: Two minutes of 24 kHz mono PCM16 (5.76 MB).
BULK_SAMPLES = 24_000 * 120


@dataclass(frozen=True)
class Row:
    """One measured comparison."""

    operation: str
    size: str
    peer: str
    voxwire_us: float
    #: None when the peer is not installed (``peer`` then says what to install).
    peer_us: float | None
    #: The ratio the project aims for (development reports only, never shown to users).
    target: float | None

    @property
    def ratio(self) -> float | None:
        """How many times faster voxwire is than the peer (peer time / voxwire time)."""
        return None if self.peer_us is None else self.peer_us / self.voxwire_us

    @property
    def meets_target(self) -> bool | None:
        """Whether the ratio reaches the target, if there is one (and a peer was measured)."""
        r = self.ratio
        return None if self.target is None or r is None else r >= self.target


def _time_per_call(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - t0) / number / 1000.0


def _calls_per_batch(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (from a short calibration)."""
    n = 1
    while True:
        total_s = _time_per_call(fn, n) * n * 1e-6
        if total_s >= 0.002 or n >= 1 << 20:
            break
        n *= 4
    return max(1, int(seconds / (total_s / n)))


def compare(
    ours: Callable[[], object], peer: Callable[[], object], budget_s: float
) -> tuple[float, float]:
    """Median microseconds per call of ``ours`` and ``peer``, measured interleaved.

    The two alternate in batches of equal duration (not of equal call counts): each batch
    first pays for caches and predictors the other side's batch left cold, and batches of
    equal counts would make the faster side's batches shorter, so it would pay that toll
    more often per call (with the pipelines, 13 times as often).
    """
    ours()
    peer()  # warm up (first-touch page faults, lazy imports)
    repeats = 15
    batch_s = budget_s / repeats / 2
    n_ours = _calls_per_batch(ours, batch_s)
    n_peer = _calls_per_batch(peer, batch_s)
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        a.append(_time_per_call(ours, n_ours))
        b.append(_time_per_call(peer, n_peer))
    return statistics.median(a), statistics.median(b)


def _import_audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


Case = tuple[str, str, str, Callable[[], object], Callable[[], object] | None, float | None]

#: What the peer column says when the peer is not installed (voxwire is measured alone).
INSTALL_BENCH = "install voxwire[bench] to compare"
INSTALL_SILERO = "pip install onnxruntime && pip install --no-deps silero-vad to compare"


def _cases(x: npt.NDArray[np.int16], size: str) -> list[Case]:
    """The comparisons for one input size.

    A peer that is not installed leaves its row with voxwire's time alone and the peer column
    saying what to install.
    """
    raw = x.tobytes()
    text = base64.b64encode(raw).decode()
    f32 = x.astype(np.float32) / np.float32(32768)
    cases: list[Case] = []
    pybase64: ModuleType | None
    try:
        import pybase64
    except ImportError:
        pybase64 = None
    b64 = pybase64
    cases += [
        (
            "base64 decode -> int16",
            size,
            'np.frombuffer(pybase64.b64decode(s), "<i2")' if b64 else INSTALL_BENCH,
            lambda: voxwire.b64decode_pcm16(text),
            (lambda: np.frombuffer(b64.b64decode(text), "<i2")) if b64 else None,
            1.5,
        ),
        (
            "base64 encode int16",
            size,
            "pybase64.b64encode(x)" if b64 else INSTALL_BENCH,
            lambda: voxwire.b64encode_pcm16(x),
            (lambda: b64.b64encode(x)) if b64 else None,
            1.5,
        ),
    ]
    cases.append(
        (
            "base64 decode -> int16",
            size,
            'np.frombuffer(base64.b64decode(s), "<i2")',
            lambda: voxwire.b64decode_pcm16(text),
            lambda: np.frombuffer(base64.b64decode(text), "<i2"),
            None,
        )
    )
    audioop = _import_audioop()
    ulaw = g711.ulaw_encode(x)
    alaw = g711.alaw_encode(x)
    for op, peer_name, ours, peer_op, arg in (
        ("G.711 mu-law encode", "audioop.lin2ulaw(b, 2)", g711.ulaw_encode, "lin2ulaw", raw),
        ("G.711 mu-law decode", "audioop.ulaw2lin(c, 2)", g711.ulaw_decode, "ulaw2lin", ulaw),
        ("G.711 A-law encode", "audioop.lin2alaw(b, 2)", g711.alaw_encode, "lin2alaw", raw),
        ("G.711 A-law decode", "audioop.alaw2lin(c, 2)", g711.alaw_decode, "alaw2lin", alaw),
    ):
        ours_arg = x if op.endswith("encode") else arg
        cases.append(
            (
                op,
                size,
                peer_name if audioop is not None else INSTALL_BENCH,
                _bind(ours, ours_arg),
                _bind(getattr(audioop, peer_op), arg, 2) if audioop is not None else None,
                3.0,
            )
        )
    cases += [
        (
            "int16 -> float32",
            size,
            "x.astype(np.float32) / 32768",
            lambda: voxwire.pcm16_to_float32(x),
            lambda: x.astype(np.float32) / np.float32(32768),
            None,
        ),
        (
            "float32 -> int16 (saturating)",
            size,
            "np.clip(np.rint(f * 32768), ...).astype(int16)",
            lambda: voxwire.float32_to_pcm16(f32),
            lambda: np.clip(np.rint(f32 * np.float32(32768)), -32768, 32767).astype(np.int16),
            None,
        ),
    ]
    cases += _resampler_cases(x, size)
    if size == "20 ms":
        cases += _vad_cases(x)
        cases += _silero_cases()
        cases += _pipeline_cases()
    if size == "20 ms":
        framer = voxwire.Framer(320)
        buf = bytearray()

        def py_framer() -> object:
            buf.extend(raw)
            n = len(buf) // 640
            frames = np.frombuffer(bytes(buf[: n * 640]), "<i2").reshape(n, 320)
            del buf[: n * 640]
            return frames

        cases.append(
            (
                "frame 960 B into 320-sample frames",
                size,
                "bytearray + np.frombuffer",
                lambda: framer.push(raw),
                py_framer,
                None,
            )
        )
    return cases


def _bind(fn: Callable[..., object], *args: object) -> Callable[[], object]:
    """``fn`` with its arguments fixed now (a lambda in a loop would see the last ones)."""
    return lambda: fn(*args)


def _resampler_cases(x24: npt.NDArray[np.int16], size: str) -> list[Case]:
    """Resampling against soxr HQ: a stream of 20 ms chunks, or one 2-minute call."""
    soxr: ModuleType | None
    try:
        import soxr as soxr_module

        soxr = soxr_module
    except ImportError:
        soxr = None
    cases: list[Case] = []
    # The same duration at each input rate: x24 is 24 kHz; take 16 kHz input of equal length
    # in time by resampling it once (setup, not measured).
    x16 = voxwire.resample(x24, 24000, 16000)
    for a, b, x in ((24000, 16000, x24), (16000, 24000, x16)):
        label = f"resample {a // 1000}k -> {b // 1000}k (hq, int16)"
        if size == "20 ms":
            ours = voxwire.Resampler(a, b, quality="hq")
            peer = "soxr.ResampleStream(HQ).resample_chunk(x)"
            theirs: Callable[[], object] | None = None
            if soxr is not None:
                stream = soxr.ResampleStream(a, b, 1, dtype="int16", quality="HQ")
                theirs = _bind(stream.resample_chunk, x)
            cases.append(
                (
                    label,
                    size,
                    peer if theirs else INSTALL_BENCH,
                    _bind(ours.process, x),
                    theirs,
                    3.0,
                )
            )
        else:
            # soxr.resample runs on one thread; voxwire.resample splits long inputs over the
            # CPUs by default. Both rows, so the per-core ratio is never hidden.
            peer = 'soxr.resample(x, a, b, "HQ")' if soxr is not None else INSTALL_BENCH
            theirs_fn = _bind(soxr.resample, x, a, b, "HQ") if soxr is not None else None
            one = _bind(functools.partial(voxwire.resample, threads=1), x, a, b)
            cases.append((f"{label}, 1 thread", size, peer, one, theirs_fn, 3.0))
            auto = _bind(voxwire.resample, x, a, b)
            cases.append((f"{label}, threads=auto", size, peer, auto, theirs_fn, None))
    return cases


def _vad_cases(x24: npt.NDArray[np.int16]) -> list[Case]:
    """voxwire.webrtcvad against py-webrtcvad on 10, 20 and 30 ms frames at 16 kHz."""
    webrtcvad: ModuleType | None
    try:
        import webrtcvad as webrtcvad_module

        webrtcvad = webrtcvad_module
    except ImportError:
        webrtcvad = None
    x16 = voxwire.resample(np.tile(x24, 3), 24000, 16000)
    cases: list[Case] = []
    for ms in (10, 20, 30):
        frame = x16[: 16 * ms].tobytes()
        ours = voxwire.webrtcvad.Vad(2)
        peer = "webrtcvad.Vad(2).is_speech(frame, 16000)"
        theirs = None
        if webrtcvad is not None:
            theirs = _bind(webrtcvad.Vad(2).is_speech, frame, 16000)
        op = f"VAD is_speech, {ms} ms at 16 kHz"
        target = 2.0 if ms == 10 else None
        cases.append(
            (
                op,
                "frame",
                peer if theirs else INSTALL_BENCH,
                _bind(ours.is_speech, frame, 16000),
                theirs,
                target,
            )
        )
    return cases


def _silero_model() -> str | None:
    """The silero-vad package's ONNX model file, if the package is installed.

    Found without importing the package (its ``__init__`` imports torch).
    """
    import importlib.metadata
    from pathlib import Path

    try:
        dist = importlib.metadata.distribution("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("silero_vad/data/silero_vad.onnx")))
    return str(path) if path.is_file() else None


def _silero_cases() -> list[Case]:
    """The native Silero engine against its model on onnxruntime, one window per call.

    onnxruntime is driven as silero-vad's ``OnnxWrapper`` drives it, at 16 and 8 kHz; the rows
    are there only when onnxruntime and ``pip install --no-deps silero-vad`` are.
    """
    path = _silero_model()
    sess: Any = None
    try:
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        if path is not None:
            opts = ort.SessionOptions()
            opts.inter_op_num_threads = 1
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    cases: list[Case] = []
    for rate, win, ctx in ((16000, 512, 64), (8000, 256, 32)):
        x = _talk(20.0, rate)
        frames = [x[i : i + win] for i in range(0, len(x) - win + 1, win)]
        vad = voxwire.Vad("silero", sample_rate=rate, frame_ms=32)
        ours_next = _cycle(frames)
        peer_next = _cycle(frames)
        st: dict[str, Any] = {
            "state": np.zeros((2, 1, 128), np.float32),
            "ctx": np.zeros((1, ctx), np.float32),
            "sr": np.array(rate, np.int64),
        }

        def ours(vad: voxwire.Vad = vad, nxt: Callable[[], Any] = ours_next) -> object:
            return vad.probability(nxt())

        def peer(st: dict[str, Any] = st, nxt: Callable[[], Any] = peer_next) -> object:
            f = nxt().astype(np.float32)[None] / 32768.0
            inp = np.concatenate([st["ctx"], f], axis=1)
            out, st["state"] = sess.run(None, {"input": inp, "state": st["state"], "sr": st["sr"]})
            st["ctx"] = inp[:, -st["ctx"].shape[1] :]
            return out

        op = f"Silero VAD, one {win}-sample window at {rate // 1000} kHz"
        if sess is None:
            cases.append((op, "window", INSTALL_SILERO, ours, None, 10.0))
            continue
        cases.append(
            (op, "window", "silero-vad ONNX on onnxruntime (OnnxWrapper)", ours, peer, 10.0)
        )
    return cases


def _talk(seconds: float, rate: int) -> npt.NDArray[np.int16]:
    """A stream of turns: 1 s of a voiced sound, then 1 s of a quiet noise floor, repeated.

    The voiced part is a pitch-gliding harmonic sound, so the VAD and turn detection work as
    they would on a call.
    """
    rng = np.random.default_rng(1)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12)) * 4000
    on = (t % 2.0) < 1.0
    x = np.where(on, voiced, 0.0) + rng.standard_normal(len(t)) * 40
    return np.clip(x, -32768, 32767).astype(np.int16)


def _cycle(items: list[Any]) -> Callable[[], Any]:
    """A function returning the next item of ``items`` on each call, round and round."""
    it = itertools.cycle(items)
    return lambda: next(it)


def _silero_pipeline_cases(
    msgs: list[str], ours_input: Callable[..., Callable[[], object]]
) -> list[Case]:
    """``InputPipeline`` with its default engine (Silero) against the user's composition.

    That composition: pybase64, a soxr HQ stream to 16 kHz, and Silero on onnxruntime
    (512-sample windows, driven as silero-vad's ``OnnxWrapper`` drives it) with numpy RMS.
    Only when onnxruntime and ``pip install --no-deps silero-vad`` are there.
    """
    op = "InputPipeline 24k b64 (defaults: silero VAD, turns)"
    path = _silero_model()
    try:
        import onnxruntime as ort
        import pybase64
        import soxr
    except ImportError:
        path = None
    if path is None:
        missing = "install voxwire[bench], onnxruntime and silero-vad (--no-deps) to compare"
        return [(op, "20 ms", missing, ours_input(), None, 10.0)]
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    def peer_input() -> Callable[[], object]:
        rs = soxr.ResampleStream(24000, 16000, 1, dtype="int16", quality="HQ")
        pending = np.zeros(0, dtype=np.int16)
        st: dict[str, Any] = {
            "state": np.zeros((2, 1, 128), np.float32),
            "ctx": np.zeros((1, 64), np.float32),
            "sr": np.array(16000, np.int64),
        }
        nxt = _cycle(msgs)

        def step() -> object:
            nonlocal pending
            pcm = np.frombuffer(pybase64.b64decode(nxt()), dtype="<i2")
            pending = np.concatenate((pending, rs.resample_chunk(pcm)))
            probs = []
            while len(pending) >= 512:
                f = pending[:512].astype(np.float32)[None] / 32768.0
                inp = np.concatenate([st["ctx"], f], axis=1)
                out, st["state"] = sess.run(
                    None, {"input": inp, "state": st["state"], "sr": st["sr"]}
                )
                st["ctx"] = inp[:, -64:]
                probs.append(float(out[0, 0]))
                pending = pending[512:]
            rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
            return probs, rms

        return step

    return [
        (
            op,
            "20 ms",
            "pybase64 + soxr HQ stream + Silero ONNX on onnxruntime + numpy RMS",
            ours_input(),
            peer_input(),
            10.0,
        )
    ]


def _pipeline_cases() -> list[Case]:
    """The fused pipelines against the same steps composed from the peers, per 20 ms chunk."""
    try:
        import pybase64
        import soxr
        import webrtcvad

        have_peers = True
    except ImportError:
        have_peers = False
    x24 = _talk(20.0, 24000)
    msgs = [base64.b64encode(x24[i : i + 480].tobytes()).decode() for i in range(0, len(x24), 480)]

    def peer_input() -> Callable[[], object]:
        rs = soxr.ResampleStream(24000, 16000, 1, dtype="int16", quality="HQ")
        vad = webrtcvad.Vad(3)
        pending = np.zeros(0, dtype=np.int16)
        nxt = _cycle(msgs)

        def step() -> object:
            nonlocal pending
            pcm = np.frombuffer(pybase64.b64decode(nxt()), dtype="<i2")
            pending = np.concatenate((pending, rs.resample_chunk(pcm)))
            speech = []
            while len(pending) >= 320:  # 20 ms frames at 16 kHz
                speech.append(vad.is_speech(pending[:320].tobytes(), 16000))
                pending = pending[320:]
            rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
            return speech, rms

        return step

    def ours_input(**kw: Any) -> Callable[[], object]:
        p = voxwire.InputPipeline(**kw)
        nxt = _cycle(msgs)

        def step() -> object:
            return p.push(nxt()), p.level_db

        return step

    peer = "pybase64 + soxr HQ stream + webrtcvad (20 ms) + numpy RMS"
    if not have_peers:
        peer = INSTALL_BENCH

    def peer_in() -> Callable[[], object] | None:
        return peer_input() if have_peers else None

    cases: list[Case] = _silero_pipeline_cases(msgs, ours_input)
    cases += [
        (
            'InputPipeline 24k b64 (engine="spectral", turns)',
            "20 ms",
            peer,
            ours_input(engine="spectral"),
            peer_in(),
            10.0,
        ),
        (
            'InputPipeline 24k b64 (engine="webrtc", 10 ms frames, turns)',
            "20 ms",
            peer,
            ours_input(engine="webrtc", mode=3),  # mode 3 like the peer
            peer_in(),
            None,
        ),
        (
            'InputPipeline 24k b64 (engine="webrtc", 20 ms frames like the peer, turns)',
            "20 ms",
            peer,
            ours_input(engine="webrtc", mode=3, frame_ms=20),
            peer_in(),
            10.0,
        ),
    ]
    x16 = voxwire.resample(x24, 24000, 16000)
    chunks16 = [x16[i : i + 320] for i in range(0, len(x16), 320)]

    def peer_output() -> Callable[[], object]:
        rs = soxr.ResampleStream(16000, 24000, 1, dtype="int16", quality="HQ")
        nxt = _cycle(chunks16)
        return lambda: pybase64.b64encode_as_string(rs.resample_chunk(nxt()).tobytes())

    def ours_output() -> Callable[[], object]:
        p = voxwire.OutputPipeline(in_rate=16000, out_rate=24000)
        nxt = _cycle(chunks16)
        return lambda: p.push(nxt())

    cases.append(
        (
            "OutputPipeline 16k -> 24k b64 (hq)",
            "20 ms",
            "soxr HQ stream + pybase64.b64encode_as_string" if have_peers else INSTALL_BENCH,
            ours_output(),
            peer_output() if have_peers else None,
            5.0,
        )
    )
    return cases


def alone(ours: Callable[[], object], budget_s: float) -> float:
    """Median microseconds per call of ``ours`` (a row whose peer is not installed)."""
    ours()
    repeats = 15
    n = _calls_per_batch(ours, budget_s / repeats)
    return statistics.median(_time_per_call(ours, n) for _ in range(repeats))


def run(quick: bool = False) -> list[Row]:
    """Measure every case at 20 ms and at 2 minutes of 24 kHz PCM16."""
    rng = np.random.default_rng(0)
    rows = []
    for n, size in ((CHUNK_SAMPLES, "20 ms"), (BULK_SAMPLES, "2 min")):
        x = (rng.standard_normal(n) * 4000).clip(-32768, 32767).astype(np.int16)
        budget = (0.06 if quick else 0.4) if n == CHUNK_SAMPLES else (0.25 if quick else 1.5)
        for op, sz, peer_name, ours, peer, target in _cases(x, size):
            if peer is None:
                ours_us, peer_us = alone(ours, budget / 2), None
            else:
                ours_us, peer_us = compare(ours, peer, budget)
            rows.append(Row(op, sz, peer_name, ours_us, peer_us, target))
    return rows


def summarize(runs: list[list[Row]]) -> list[tuple[Row, float, float]]:
    """Per case over several runs: the run with the median ratio, and the least and greatest.

    (For an even number of runs, the lower of the two middle runs.)
    """
    out = []
    for rows in zip(*runs, strict=True):
        if any(r.ratio is None for r in rows):  # no peer: the median of voxwire's time
            mid = sorted(rows, key=lambda r: r.voxwire_us)[(len(rows) - 1) // 2]
            out.append((mid, float("nan"), float("nan")))
            continue
        ratios = sorted(r.ratio or 0.0 for r in rows)
        mid = sorted(rows, key=lambda r: r.ratio or 0.0)[(len(rows) - 1) // 2]
        out.append((mid, ratios[0], ratios[-1]))
    return out


def format_table(
    rows: list[Row],
    ranges: list[tuple[float, float]] | None = None,
    *,
    targets: bool = False,
) -> str:
    """A plain-text table of the rows (with each ratio's range over runs, if given).

    Every row is shown; a row without a peer shows voxwire's time and what to install.
    ``targets`` adds the project's own targets (for development reports, not for users).
    """
    head: tuple[str, ...] = ("operation", "size", "voxwire us", "peer us", "ratio", "peer")
    if targets:
        head = (*head[:5], "target", *head[5:])
    if ranges is not None:
        head = (*head[:5], "range", *head[5:])
    body = []
    for i, r in enumerate(rows):
        ratio = r.ratio
        cells = [
            r.operation,
            r.size,
            f"{r.voxwire_us:.2f}",
            "-" if r.peer_us is None else f"{r.peer_us:.2f}",
            "-" if ratio is None else f"{ratio:.2f}x",
            r.peer,
        ]
        if targets:
            mark = "" if r.meets_target is None else ("  ok" if r.meets_target else "  MISS")
            cells.insert(5, (f">= {r.target:g}x" + mark) if r.target else "")
        if ranges is not None:
            lo, hi = ranges[i]
            cells.insert(5, "-" if ratio is None else f"{lo:.2f}-{hi:.2f}x")
        body.append(tuple(cells))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def main(quick: bool = False, json_path: str | None = None, runs: int = 1) -> int:
    """Run the benchmarks ``runs`` times, print the table, optionally write JSON.

    With several runs each row shows the run with the median ratio, and the range of the
    ratios. Returns the exit code.
    """
    if runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    print(
        f"voxwire {voxwire.__version__} against its peers, same process "
        f"(ratio = peer time / voxwire time; higher is better for voxwire)"
        + (f"; median of {runs} runs" if runs > 1 else ""),
        flush=True,
    )
    all_runs = [run(quick=quick) for _ in range(runs)]
    summary = summarize(all_runs)
    rows = [row for row, _, _ in summary]
    ranges = [(lo, hi) for _, lo, hi in summary] if runs > 1 else None
    print(format_table(rows, ranges))
    if any(r.peer_us is None for r in rows):
        print(
            "\nRows without a peer time: the peer is not installed (pip install "
            "'voxwire[bench]'; the Silero rows also need onnxruntime and silero-vad)."
        )
    if json_path:
        out: list[dict[str, Any]] = []
        for row, lo, hi in summary:
            out.append({**asdict(row), "ratio": row.ratio, "ratio_min": lo, "ratio_max": hi})
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)
    return 0
