"""pytest-benchmark: voxwire's resampler beside soxr HQ, stream (20 ms chunks) and bulk.

Run: pytest benches/test_bench_resample.py --benchmark-only
"""

import numpy as np
import pytest
import soxr

import voxwire

PAIRS = [(24000, 16000), (16000, 24000)]


def signal(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(rate * seconds)) * 3000).astype(np.int16)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_stream_voxwire(benchmark, a, b) -> None:
    x = signal(a, 0.02)
    r = voxwire.Resampler(a, b)
    benchmark.group = f"stream-{a}-{b}"
    benchmark(r.process, x)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_stream_soxr(benchmark, a, b) -> None:
    x = signal(a, 0.02)
    s = soxr.ResampleStream(a, b, 1, dtype="int16", quality="HQ")
    benchmark.group = f"stream-{a}-{b}"
    benchmark(s.resample_chunk, x)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_bulk_voxwire(benchmark, a, b) -> None:
    x = signal(a, 120)
    benchmark.group = f"bulk-{a}-{b}"
    benchmark(voxwire.resample, x, a, b)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_bulk_soxr(benchmark, a, b) -> None:
    x = signal(a, 120)
    benchmark.group = f"bulk-{a}-{b}"
    benchmark(soxr.resample, x, a, b, "HQ")
