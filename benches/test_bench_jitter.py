"""pytest-benchmark: JitterBuffer push and pop at 24 kHz, 10 ms frames (one FFI call each).

Run: pytest benches/test_bench_jitter.py --benchmark-only
"""

import numpy as np
import pytest

import voxwire

RATE = 24000


def voiced(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return (3000 * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))).astype(np.int16)


@pytest.mark.parametrize("adaptive", [True, False])
def test_push_pop_20ms(benchmark, adaptive: bool) -> None:
    """One 20 ms push and two 10 ms pops: the steady state of a real-time stream."""
    jb = voxwire.JitterBuffer(RATE, frame_ms=10, adaptive=adaptive)
    x = voiced(RATE // 50)
    clock = [0.0]

    def step() -> None:
        now = clock[0]
        jb.push(x, now)
        jb.pop(now)
        jb.pop(now + 10)
        clock[0] = now + 20

    benchmark.group = "jitter-push-pop-20ms"
    benchmark(step)


def test_pop_accelerating(benchmark) -> None:
    """Pops while far behind schedule: each may run a pitch search and a crossfade."""
    jb = voxwire.JitterBuffer(RATE, frame_ms=10, max_ms=600_000)
    jb.push(voiced(RATE * 500), 0.0)
    clock = [5000.0]

    def step() -> None:
        jb.pop(clock[0])
        clock[0] += 10

    benchmark.group = "jitter-pop"
    benchmark(step)
