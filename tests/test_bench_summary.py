from voxwire import bench


def row(op: str, ours: float, peer: float) -> bench.Row:
    return bench.Row(op, "20 ms", "peer", ours, peer, 2.0)


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
    table = bench.format_table([a, b], [(alo, ahi), (blo, bhi)])
    assert "2.00-4.00x" in table and "MISS" in table


def test_runs_must_be_positive() -> None:
    assert bench.main(runs=0) == 2
