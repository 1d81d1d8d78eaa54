"""InputPipeline against the compositions a user would otherwise run, by process CPU time.

`voxwire bench` times both sides by wall clock, interleaved; on a machine shared with other
jobs those medians swing widely. This script runs the same cases (`voxwire.bench`'s
`_pipeline_cases`: defaults with Silero against pybase64 + soxr HQ stream + Silero on
onnxruntime; the spectral and webrtc engines against pybase64 + soxr + webrtcvad) and counts
process CPU time instead: `--calls` calls per side, `--reps` alternations, median and range.

Usage: python benches/pipeline_cpu.py [--reps 5] [--calls 2000]
Needs: pip install "voxwire[bench]" onnxruntime && pip install --no-deps silero-vad
"""

from __future__ import annotations

import argparse
import statistics
import time

from voxwire import bench


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args()
    res: dict[tuple[str, str], list[float]] = {}
    ops: list[str] = []
    for _ in range(a.reps):
        for op, _size, peer, ours, theirs, _target in bench._pipeline_cases():
            if not op.startswith("InputPipeline"):
                continue
            if op not in ops:
                ops.append(op)
                print(f"{op}  vs  {peer}")
            for who, fn in (("ours", ours), ("peer", theirs)):
                fn()
                c0 = time.process_time()
                for _ in range(a.calls):
                    fn()
                res.setdefault((op, who), []).append((time.process_time() - c0) / a.calls * 1e6)
    print()
    for op in ops:
        o, p = statistics.median(res[(op, "ours")]), statistics.median(res[(op, "peer")])
        r = sorted(x / y for x, y in zip(res[(op, "peer")], res[(op, "ours")], strict=True))
        print(
            f"{op}: {o:.1f} us vs {p:.1f} us CPU per 20 ms chunk, {p / o:.2f}x "
            f"({r[0]:.2f}-{r[-1]:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
