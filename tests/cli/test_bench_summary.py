import sys

import numpy as np
import pytest

from voxwire import bench


def row(op: str, ours: float, peer: float | None) -> bench.Row:
    return bench.Row(op, "20 ms", "peer" if peer else bench.INSTALL_BENCH, ours, peer, 2.0)


def test_summary_takes_the_median_run_and_the_range() -> None:
    runs = [
        [row("a", 1.0, 3.0), row("b", 1.0, 1.0)],
        [row("a", 1.0, 2.0), row("b", 2.0, 1.0)],
        [row("a", 1.0, 4.0), row("b", 4.0, 1.0)],
    ]
    (a, alo, ahi), (b, blo, bhi) = bench.summarize(runs)
    assert (a.ratio, alo, ahi) == (3.0, 2.0, 4.0)
    assert (b.ratio, blo, bhi) == (0.5, 0.25, 1.0)
    assert a.meets_target and not b.meets_target
    # An even number of runs: the lower of the two middle runs (the conservative one).
    (a2, lo, hi), _ = bench.summarize(runs[:2])
    assert (a2.ratio, lo, hi) == (2.0, 2.0, 3.0)
    # Users see ratios, never the project's targets or a verdict on them.
    table = bench.format_table([a, b], [(alo, ahi), (blo, bhi)])
    assert "2.00-4.00x" in table and "MISS" not in table and "target" not in table
    dev = bench.format_table([a, b], [(alo, ahi), (blo, bhi)], targets=True)
    assert "MISS" in dev and ">= 2x" in dev


def test_a_row_without_its_peer_is_shown_with_what_to_install() -> None:
    runs = [[row("a", 1.0, None)], [row("a", 3.0, None)], [row("a", 2.0, None)]]
    ((a, _, _),) = bench.summarize(runs)
    assert a.voxwire_us == 2.0 and a.ratio is None and a.meets_target is None
    table = bench.format_table([a])
    line = table.splitlines()[-1]
    assert line.startswith("a ") and "2.00" in line and bench.INSTALL_BENCH in line


@pytest.mark.slow
def test_every_case_is_there_without_the_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    x = (np.random.default_rng(0).standard_normal(480) * 4000).astype(np.int16)
    with_peers = bench._cases(x, "20 ms")
    for name in ("pybase64", "soxr", "webrtcvad", "audioop", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    without = bench._cases(x, "20 ms")
    assert [c[0] for c in without] == [c[0] for c in with_peers]
    for op, _, peer_name, ours, peer, _ in without:
        if op.startswith(("int16 ->", "float32 ->", "frame ", "base64 decode")) and peer:
            continue  # peers in numpy or the standard library
        assert peer is None and "to compare" in peer_name, op
        ours()


def test_runs_must_be_positive() -> None:
    assert bench.main(runs=0) == 2
