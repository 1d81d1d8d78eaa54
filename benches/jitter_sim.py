"""Jitter buffer simulation: adaptive voxwire.JitterBuffer against a fixed 250 ms pre-buffer.

A virtual clock drives both buffers with the same traces: TTS responses generated at
1.05-4x real time in chunks of 40-200 ms, with generation stalls, sent over a two-state
Gilbert-Elliott network (in-order delivery, so a late chunk holds back the ones behind it),
short turns and barge-in. The playout side pops one 10 ms frame every 10 ms.

Per scenario it reports, for each buffer, the mean and p95 of the added latency of each
completed turn, ((last sample played - first arrival) - audio duration), and underruns per
minute of session. Barged-in turns count for underruns but not for latency. For information
(not part of the bar) it also prints the mean time from a turn's first arrival to its first
sample played: the added latency is measured at the last sample, so time-stretching (which
can speed up a response's tail) moves it, while the wait for the first audio it does not.

Usage: python benches/jitter_sim.py [--seed 1] [--turns 60] [--plot [docs/jitter_buffer.png]]
       python benches/jitter_sim.py --seeds 1-10   (the bar per seed, passes per scenario)
Needs: pip install "voxwire[plot]" for --plot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import voxwire

RATE = 24000
FRAME_MS = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    tts_rate: tuple[float, float]  # generation speed, x real time (uniform per turn)
    chunk_ms: tuple[int, int]  # chunk sizes (uniform per chunk)
    turn_s: tuple[float, float]  # response durations (uniform per turn)
    stall_p: float = 0.0  # probability that a chunk is preceded by a generation stall
    stall_ms: tuple[int, int] = (150, 600)
    # Gilbert-Elliott network: one-way delay = base + exponential jitter of the state's mean;
    # transitions are per second of time spent in a state.
    base_ms: float = 40.0
    good_jitter_ms: float = 5.0
    bad_jitter_ms: float = 0.0
    to_bad_per_s: float = 0.0
    to_good_per_s: float = 2.0
    barge_in_p: float = 0.0
    # Start-up of a response (drawn per turn only when enabled, so the other scenarios'
    # traces do not change): TTS warm-up, the first `warmup_ms` of audio generated at
    # `warmup_rate` x real time, in `warmup_p` of the turns; a generation stall of
    # `first_stall_ms` between the first and the second chunk, in `first_stall_p` of them.
    warmup_p: float = 0.0
    warmup_ms: tuple[int, int] = (100, 400)
    warmup_rate: tuple[float, float] = (0.6, 1.0)
    first_stall_p: float = 0.0
    first_stall_ms: tuple[int, int] = (100, 500)


SCENARIOS = [
    Scenario("cloud TTS 1.05-1.5x, good net", (1.05, 1.5), (40, 200), (1.0, 8.0)),
    Scenario("fast TTS 2-4x, good net", (2.0, 4.0), (40, 200), (1.0, 8.0)),
    Scenario(
        "slow TTS 1.05-1.2x + stalls",
        (1.05, 1.2),
        (40, 120),
        (2.0, 10.0),
        stall_p=0.03,
    ),
    Scenario(
        "mobile net (Gilbert-Elliott)",
        (1.05, 2.0),
        (40, 200),
        (1.0, 8.0),
        good_jitter_ms=15.0,
        bad_jitter_ms=120.0,
        to_bad_per_s=0.1,
        to_good_per_s=1.0,
    ),
    Scenario(
        "harsh net + stalls",
        (1.05, 1.5),
        (40, 200),
        (1.0, 8.0),
        stall_p=0.03,
        good_jitter_ms=30.0,
        bad_jitter_ms=300.0,
        to_bad_per_s=0.3,
        to_good_per_s=0.7,
    ),
    Scenario(
        "short turns + barge-in",
        (1.05, 3.0),
        (40, 200),
        (0.3, 1.5),
        good_jitter_ms=10.0,
        bad_jitter_ms=80.0,
        to_bad_per_s=0.1,
        to_good_per_s=1.5,
        barge_in_p=0.3,
    ),
    # Issue 28: the failure mode of short answers, and the two start-up hazards.
    Scenario(
        "very short answers + GE 80 ms",
        (1.5, 3.0),
        (40, 200),
        (0.3, 1.2),
        good_jitter_ms=10.0,
        bad_jitter_ms=80.0,
        to_bad_per_s=0.2,
        to_good_per_s=1.5,
    ),
    Scenario(
        "slow first chunk (TTS warm-up)",
        (1.2, 3.0),
        (40, 200),
        (0.5, 4.0),
        good_jitter_ms=10.0,
        bad_jitter_ms=80.0,
        to_bad_per_s=0.1,
        to_good_per_s=1.5,
        warmup_p=0.5,
    ),
    Scenario(
        "stall after the first chunk",
        (1.5, 3.0),
        (40, 200),
        (0.5, 3.0),
        good_jitter_ms=10.0,
        first_stall_p=0.2,
    ),
]


@dataclass
class Turn:
    first_arrival: float
    chunks: list[tuple[float, np.ndarray]]  # (arrival ms, samples), in order
    duration_ms: float
    barge_in_at: float | None  # ms after first arrival, or None


def voiced(rng: np.random.Generator, n: int) -> np.ndarray:
    """Speech-like test audio: a harmonic source with a gliding f0, syllable envelope, pauses."""
    t = np.arange(n) / RATE
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6.28)), 0, 1) ** 0.5
    x = x * env * 6000 + rng.normal(0, 30, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


def make_trace(sc: Scenario, seed: int, turns: int) -> tuple[list[Turn], float]:
    rng = np.random.default_rng(seed)
    out: list[Turn] = []
    start = 500.0
    bad = False
    net_t = 0.0
    for _ in range(turns):
        dur_ms = round(rng.uniform(*sc.turn_s) * 1000 / 10) * 10
        audio = voiced(rng, int(dur_ms * RATE / 1000))
        r = rng.uniform(*sc.tts_rate)
        warm_ms, warm_r = 0.0, r
        if sc.warmup_p > 0 and rng.random() < sc.warmup_p:
            warm_ms, warm_r = rng.uniform(*sc.warmup_ms), rng.uniform(*sc.warmup_rate)
        first_stall = 0.0
        if sc.first_stall_p > 0 and rng.random() < sc.first_stall_p:
            first_stall = rng.uniform(*sc.first_stall_ms)
        t_gen = start
        last_arrival = 0.0
        chunks: list[tuple[float, np.ndarray]] = []
        pos = 0
        stalls = 0.0
        while pos < len(audio):
            c = int(rng.uniform(*sc.chunk_ms) * RATE / 1000)
            piece = audio[pos : pos + c]
            if pos > 0 and rng.random() < sc.stall_p:
                s = rng.uniform(*sc.stall_ms)
                t_gen += s
                stalls += s
            if len(chunks) == 1 and first_stall > 0:
                t_gen += first_stall
                stalls += first_stall
            # Generation time of the chunk, with +-20% jitter around its real-time share / r.
            rate = warm_r if pos * 1000 / RATE < warm_ms else r
            t_gen += len(piece) * 1000 / RATE / rate * rng.uniform(0.8, 1.2)
            # Network state evolves over the time since the last chunk.
            dt = max(t_gen - net_t, 0.0) / 1000
            net_t = t_gen
            p_flip = 1 - np.exp(-(sc.to_good_per_s if bad else sc.to_bad_per_s) * dt)
            if rng.random() < p_flip:
                bad = not bad
            jit = sc.bad_jitter_ms if bad else sc.good_jitter_ms
            arrival = t_gen + sc.base_ms + (rng.exponential(jit) if jit > 0 else 0.0)
            arrival = max(arrival, last_arrival)  # in order (one WebSocket)
            last_arrival = arrival
            chunks.append((arrival, piece))
            pos += c
        first = chunks[0][0]
        barge = None
        if rng.random() < sc.barge_in_p:
            barge = rng.uniform(0.3, 0.9) * dur_ms
        out.append(Turn(first, chunks, float(dur_ms), barge))
        # Next response after the user's turn; far enough that playback has finished.
        start = last_arrival + dur_ms + stalls + rng.uniform(1500, 4000)
    end = start
    return out, end


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    first_audio: list[float] = field(default_factory=list)  # first sample played - first arrival
    first_audio_turn: list[int] = field(default_factory=list)  # the turn of each first_audio
    underruns: int = 0
    minutes: float = 0.0
    trace_t: list[float] = field(default_factory=list)
    trace_buf: list[float] = field(default_factory=list)
    trace_target: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def run(
    turns: list[Turn],
    end: float,
    adaptive: bool,
    record: bool = False,
    options: dict[str, int] | None = None,
) -> Result:
    """Plays a trace through one buffer (`options`: extra JitterBuffer keyword arguments)."""
    jb = voxwire.JitterBuffer(
        RATE, frame_ms=FRAME_MS, prebuffer_ms=250, adaptive=adaptive, **(options or {})
    )
    res = Result()
    events: list[tuple[float, int, int, int]] = []  # (time, kind, turn, chunk)
    for i, tr in enumerate(turns):
        for k, (a, _) in enumerate(tr.chunks):
            events.append((a, 0, i, k))
        if tr.barge_in_at is not None:
            events.append((tr.first_arrival + tr.barge_in_at, 1, i, 0))
    events.sort()
    ev = 0
    barged: set[int] = set()
    played_target: list[float] = []  # cumulative source ms at the end of each turn
    total = 0.0
    for tr in turns:
        total += tr.duration_ms
        played_target.append(total)
    # Source ms dropped by barge-in shifts the played_ms timeline of later turns.
    offset = 0.0
    cur = 0
    nxt = 0  # the next turn whose first audio has not played yet
    now = 0.0
    while now < end:
        while ev < len(events) and events[ev][0] <= now:
            t, kind, i, k = events[ev]
            ev += 1
            tr = turns[i]
            if kind == 0:
                if i in barged:
                    continue  # the client drops the audio of an interrupted response
                jb.push(tr.chunks[k][1], t)
                if k == len(tr.chunks) - 1:
                    jb.mark_end()
            elif i == cur:
                barged.add(i)
                jb.clear()
                # The rest of this turn will never play: realign the played_ms timeline.
                offset = played_target[i] - jb.stats()["played_ms"]
                cur += 1
                nxt = max(nxt, cur)
        jb.pop(now)
        s = jb.stats()
        while (
            nxt <= cur < len(turns)
            and s["played_ms"] + offset > (played_target[nxt - 1] if nxt else 0.0) + 1e-6
        ):
            res.first_audio.append(now - turns[nxt].first_arrival)
            res.first_audio_turn.append(nxt)
            nxt += 1
        while cur < len(turns) and s["played_ms"] + offset >= played_target[cur] - 1e-6:
            tr = turns[cur]
            if tr.barge_in_at is None:
                last_played = now + FRAME_MS
                res.latencies.append(last_played - tr.first_arrival - tr.duration_ms)
            cur += 1
        if record:
            res.trace_t.append(now / 1000)
            res.trace_buf.append(s["buffered_ms"])
            res.trace_target.append(s["target_ms"])
        now += FRAME_MS
    st = jb.stats()
    res.stats = {k: float(v) for k, v in st.items()}
    res.underruns = int(st["underruns"])
    res.minutes = end / 60000
    return res


def first_audio(r: Result) -> float:
    """Mean time from a turn's first arrival to its first sample played (informational)."""
    return float(np.mean(r.first_audio))


def summary(r: Result) -> tuple[float, float, float]:
    lat = np.array(r.latencies)
    return float(lat.mean()), float(np.percentile(lat, 95)), r.underruns / r.minutes


def evaluate(seed: int, turns: int, record: bool = False) -> list[tuple[Scenario, Result, Result]]:
    """Adaptive and fixed results per scenario for one seed."""
    out = []
    for j, sc in enumerate(SCENARIOS):
        trace, end = make_trace(sc, seed * 1000 + j, turns)
        ra = run(trace, end, adaptive=True, record=record)
        rf = run(trace, end, adaptive=False, record=record)
        out.append((sc, ra, rf))
    return out


def passes(ra: Result, rf: Result) -> bool:
    """The bar: adaptive has lower mean and p95 latency and no more underruns per minute."""
    ma, pa, ua = summary(ra)
    mf, pf, uf = summary(rf)
    return ma < mf and pa < pf and ua <= uf


def seed_range(text: str) -> list[int]:
    """'1-10' or '1,3,5' or '4'."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--seeds",
        type=seed_range,
        default=None,
        help="e.g. 1-10: the bar per seed and the pass count per scenario over these seeds",
    )
    ap.add_argument("--turns", type=int, default=60)
    ap.add_argument("--plot", nargs="?", const="docs/jitter_buffer.png", default=None)
    ap.add_argument(
        "--tune",
        type=seed_range,
        default=seed_range("1-50"),
        help="with --seeds: the seeds the rule was tuned on (the rest are reported apart)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="processes for --seeds and --sweep")
    ap.add_argument(
        "--cache",
        default=None,
        help="directory keeping generated traces and fixed-client results (delete it when "
        "the traces or the fixed client change)",
    )
    ap.add_argument(
        "--option",
        action="append",
        default=[],
        help="NAME=VALUE: an extra JitterBuffer keyword argument for the adaptive buffer",
    )
    ap.add_argument(
        "--sweep",
        default=None,
        help="NAME=V1,V2,...: the trade-off over an option on --seeds (with --plot: a PNG)",
    )
    args = ap.parse_args()
    options = {k: int(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.sweep:
        sweep(
            args.sweep,
            args.seeds or seed_range("1-50"),
            args.turns,
            jobs=args.jobs,
            cache=args.cache,
            plot_path=args.plot,
        )
        return
    if args.seeds:
        many(
            args.seeds,
            args.turns,
            tune=args.tune,
            jobs=args.jobs,
            cache=args.cache,
            options=options,
        )
        return

    head = (
        f"{'scenario':32} | {'adaptive mean/p95 ms':>21} | {'fixed mean/p95 ms':>18} "
        f"| {'underruns/min a/f':>17} | {'stretch a (s)':>13} | {'1st audio a/f':>13} | bar"
    )
    print(head)
    print("-" * len(head))
    all_ok = True
    plots = evaluate(args.seed, args.turns, record=args.plot is not None)
    for sc, ra, rf in plots:
        ma, pa, ua = summary(ra)
        mf, pf, uf = summary(rf)
        ok = passes(ra, rf)
        all_ok &= ok
        stretch = (ra.stats["expanded_ms"] + ra.stats["accelerated_ms"]) / 1000
        print(
            f"{sc.name:32} | {ma:9.0f} / {pa:9.0f} | {mf:7.0f} / {pf:8.0f} "
            f"| {ua:7.2f} / {uf:7.2f} | {stretch:13.1f} "
            f"| {first_audio(ra):5.0f} / {first_audio(rf):5.0f} | {'ok' if ok else 'MISSED'}"
        )
    print(
        f"\nbar (adaptive lower mean and p95, no more underruns/min) held in every scenario: "
        f"{all_ok}"
    )
    if args.plot:
        plot(plots, args.plot)


@dataclass
class RunSummary:
    """What the distribution report needs of one run (one buffer, one scenario, one seed)."""

    underruns: int
    minutes: float
    lat_mean: float
    lat_p95: float
    first_audio: dict[int, float]  # turn -> first sample played - first arrival, ms

    @staticmethod
    def of(r: Result) -> RunSummary:
        lat = np.array(r.latencies)
        return RunSummary(
            r.underruns,
            r.minutes,
            float(lat.mean()),
            float(np.percentile(lat, 95)),
            dict(zip(r.first_audio_turn, r.first_audio, strict=True)),
        )

    def fa_mean(self) -> float:
        return float(np.mean(list(self.first_audio.values())))

    def fa_p95(self) -> float:
        return float(np.percentile(list(self.first_audio.values()), 95))


def cached_trace(j: int, seed: int, turns: int, cache: str | None) -> tuple[list[Turn], float]:
    """Scenario j's trace for a seed, from `cache` (a directory) when it holds it."""
    sc = SCENARIOS[j]
    if cache is None:
        return make_trace(sc, seed * 1000 + j, turns)
    path = Path(cache) / f"{trace_key(j, seed, turns)}.npz"
    if path.exists():
        z = np.load(path)
        out: list[Turn] = []
        arr, lens, audio = z["arrivals"], z["lens"], z["audio"]
        c = p = 0
        for t in range(len(z["nchunks"])):
            chunks = []
            for _ in range(int(z["nchunks"][t])):
                chunks.append((float(arr[c]), audio[p : p + lens[c]]))
                p += int(lens[c])
                c += 1
            b = float(z["barge"][t])
            out.append(
                Turn(float(z["first"][t]), chunks, float(z["dur"][t]), None if np.isnan(b) else b)
            )
        return out, float(z["end"])
    trace, end = make_trace(sc, seed * 1000 + j, turns)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        arrivals=np.array([a for tr in trace for a, _ in tr.chunks]),
        lens=np.array([len(x) for tr in trace for _, x in tr.chunks]),
        audio=np.concatenate([x for tr in trace for _, x in tr.chunks]),
        nchunks=np.array([len(tr.chunks) for tr in trace]),
        first=np.array([tr.first_arrival for tr in trace]),
        dur=np.array([tr.duration_ms for tr in trace]),
        barge=np.array([np.nan if tr.barge_in_at is None else tr.barge_in_at for tr in trace]),
        end=np.array(end),
    )
    tmp.replace(path)
    return trace, end


def trace_key(j: int, seed: int, turns: int) -> str:
    digest = hashlib.sha1(repr(SCENARIOS[j]).encode()).hexdigest()[:10]
    return f"s{j}-{seed}-{turns}-{digest}"


def one_run(
    task: tuple[int, int, int, str | None, dict[str, int]],
) -> tuple[int, int, RunSummary, RunSummary]:
    """Adaptive and fixed summaries of scenario j for a seed (the fixed one cached too)."""
    seed, j, turns, cache, options = task
    trace, end = cached_trace(j, seed, turns, cache)
    ra = RunSummary.of(run(trace, end, adaptive=True, options=options))
    fpath = Path(cache) / f"{trace_key(j, seed, turns)}.fixed.json" if cache else None
    if fpath is not None and fpath.exists():
        d = json.loads(fpath.read_text())
        d["first_audio"] = {int(k): v for k, v in d["first_audio"].items()}
        rf = RunSummary(**d)
    else:
        rf = RunSummary.of(run(trace, end, adaptive=False))
        if fpath is not None:
            fpath.write_text(json.dumps(rf.__dict__))
    return seed, j, ra, rf


Results = dict[tuple[int, int], tuple[RunSummary, RunSummary]]


def collect(
    seeds: list[int], turns: int, *, jobs: int, cache: str | None, options: dict[str, int]
) -> Results:
    """Every scenario run for the seeds, on `jobs` processes."""
    tasks = [(seed, j, turns, cache, options) for seed in seeds for j in range(len(SCENARIOS))]
    out: Results = {}
    if jobs > 1:
        with multiprocessing.Pool(jobs) as pool:
            for seed, j, ra, rf in pool.imap_unordered(one_run, tasks):
                out[seed, j] = (ra, rf)
    else:
        for t in tasks:
            seed, j, ra, rf = one_run(t)
            out[seed, j] = (ra, rf)
    return out


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(v, q))


def worse_underruns(ra: RunSummary, rf: RunSummary) -> bool:
    return ra.underruns > rf.underruns


def latency_miss(ra: RunSummary, rf: RunSummary) -> bool:
    return not (ra.lat_mean < rf.lat_mean and ra.lat_p95 < rf.lat_p95)


def report(res: Results, seeds: list[int], title: str) -> None:
    """Per scenario over the seeds: the runs that miss the bar, and the distributions (over
    runs) of mean and p95 added latency and of mean and p95 time to first audio, p50 / p95
    of the runs, adaptive against fixed."""
    n = len(seeds)
    print(f"\n### {title} ({n} seeds)\n")
    print(
        "| scenario | runs with more underruns than fixed | runs with fewer / equal underruns "
        "| runs missing the latency bar "
        "| underruns a / f (all runs) | mean added ms a / f (p50, p95 of runs) "
        "| p95 added ms a / f | first audio mean ms a / f | first audio p95 ms a / f "
        "| turns whose first audio came later than fixed's |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for j, sc in enumerate(SCENARIOS):
        rows = [res[s, j] for s in seeds if (s, j) in res]
        wu = [s for s in seeds if (s, j) in res and worse_underruns(*res[s, j])]
        wl = [s for s in seeds if (s, j) in res and latency_miss(*res[s, j])]
        later = sum(
            1
            for a, f in rows
            for t, v in a.first_audio.items()
            if t in f.first_audio and v > f.first_audio[t] + 1e-6
        )
        nturns = sum(len(a.first_audio) for a, _ in rows)
        fewer = sum(a.underruns < f.underruns for a, f in rows)
        equal = sum(a.underruns == f.underruns for a, f in rows)

        def two(get: Callable[[RunSummary], float], rows: list = rows) -> str:
            a = [get(r[0]) for r in rows]
            f = [get(r[1]) for r in rows]
            return f"{pct(a, 50):.0f}, {pct(a, 95):.0f} / {pct(f, 50):.0f}, {pct(f, 95):.0f}"

        def seeds_of(v: list[int]) -> str:
            if not v:
                return "0"
            more = "..." if len(v) > 8 else ""
            return f"{len(v)} (seeds {', '.join(map(str, v[:8]))}{more})"

        print(
            f"| {sc.name} | {seeds_of(wu)} | {fewer} / {equal} | {seeds_of(wl)} "
            f"| {sum(a.underruns for a, _ in rows)} / {sum(f.underruns for _, f in rows)} "
            f"| {two(lambda r: r.lat_mean)} | {two(lambda r: r.lat_p95)} "
            f"| {two(RunSummary.fa_mean)} | {two(RunSummary.fa_p95)} | {later} of {nturns} |"
        )


def many(
    seeds: list[int],
    turns: int,
    *,
    tune: list[int],
    jobs: int,
    cache: str | None,
    options: dict[str, int],
) -> Results:
    """The bar over several seeds: the misses per seed, then the distributions over the
    tuning seeds, the held-out seeds and all of them."""
    res = collect(seeds, turns, jobs=jobs, cache=cache, options=options)
    count = [0] * len(SCENARIOS)
    every = 0
    for seed in seeds:
        misses = []
        for j, sc in enumerate(SCENARIOS):
            ra, rf = res[seed, j]
            if not (worse_underruns(ra, rf) or latency_miss(ra, rf)):
                count[j] += 1
                continue
            misses.append(
                f"{sc.name} ({ra.lat_mean:.0f}/{ra.lat_p95:.0f} vs {rf.lat_mean:.0f}/"
                f"{rf.lat_p95:.0f} ms, {ra.underruns} vs {rf.underruns} underruns)"
            )
        every += not misses
        if misses:
            print(f"seed {seed:3}: MISSED " + "; ".join(misses))
    print(f"\npasses per scenario over {len(seeds)} seeds:")
    for sc, c in zip(SCENARIOS, count, strict=True):
        print(f"  {sc.name:32} {c:3} / {len(seeds)}")
    print(f"seeds with the bar held in every scenario: {every} / {len(seeds)}")
    held = [s for s in seeds if s not in tune]
    tuned = [s for s in seeds if s in tune]
    if tuned and held:
        report(res, tuned, "tuning seeds")
        report(res, held, "held-out seeds")
    report(res, seeds, "all seeds")
    return res


def sweep(
    spec: str,
    seeds: list[int],
    turns: int,
    *,
    jobs: int,
    cache: str | None,
    plot_path: str | None,
) -> None:
    """The trade-off over one JitterBuffer option (`name=v1,v2,...`): per value, the runs
    with more underruns than fixed, the runs missing the latency bar, and the mean time to
    first audio and added latency (means over runs), against the fixed client."""
    name, _, values = spec.partition("=")
    vals = [int(v) for v in values.split(",")]
    print(
        f"\n| {name} | runs with more underruns than fixed | runs missing the latency bar "
        "| first audio mean ms a / f | mean added ms a / f |"
    )
    print("|---|---|---|---|---|")
    rows = []
    for v in vals:
        res = collect(seeds, turns, jobs=jobs, cache=cache, options={name: v})
        wu = sum(worse_underruns(a, f) for a, f in res.values())
        wl = sum(latency_miss(a, f) for a, f in res.values())
        fa_a = float(np.mean([a.fa_mean() for a, _ in res.values()]))
        fa_f = float(np.mean([f.fa_mean() for _, f in res.values()]))
        la = float(np.mean([a.lat_mean for a, _ in res.values()]))
        lf = float(np.mean([f.lat_mean for _, f in res.values()]))
        per = [sum(worse_underruns(*res[s, j]) for s in seeds) for j in range(len(SCENARIOS))]
        rows.append((v, wu, wl, fa_a, fa_f, la, lf, per))
        print(
            f"| {v} | {wu} of {len(res)} ({', '.join(map(str, per))}) | {wl} "
            f"| {fa_a:.0f} / {fa_f:.0f} | {la:.0f} / {lf:.0f} |",
            flush=True,
        )
    if plot_path:
        plot_sweep(name, rows, len(seeds), plot_path)


def plot_sweep(name: str, rows: list, nseeds: int, path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(x, [r[1] for r in rows], "o-", color="C3", label="runs with more underruns than fixed")
    ax.plot(x, [r[2] for r in rows], "s--", color="C1", label="runs missing the latency bar")
    ax.set_xlabel(f"{name} (ms)")
    ax.set_ylabel(f"runs (of {nseeds} seeds x {len(SCENARIOS)} scenarios)")
    ax2 = ax.twinx()
    ax2.plot(x, [r[3] for r in rows], "^-", color="C0", label="adaptive: first audio, mean")
    ax2.plot(x, [r[4] for r in rows], ":", color="C0", label="fixed 250 ms: first audio, mean")
    ax2.plot(x, [r[5] for r in rows], "v-", color="C2", label="adaptive: added latency, mean")
    ax2.plot(x, [r[6] for r in rows], ":", color="C2", label="fixed 250 ms: added latency, mean")
    ax2.set_ylabel("ms (mean over runs)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center")
    ax.set_title("Start rule trade-off over the tuning seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def plot(plots: list[tuple[Scenario, Result, Result]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(plots), 1, figsize=(11, 2.2 * len(plots)), sharex=False)
    for ax, (sc, ra, rf) in zip(axes, plots, strict=True):
        span = min(len(ra.trace_t), 6000)  # the first minute
        t = ra.trace_t[:span]
        ax.plot(t, rf.trace_buf[:span], color="0.6", lw=0.8, label="fixed 250 ms: buffered")
        ax.plot(t, ra.trace_buf[:span], color="C0", lw=0.9, label="adaptive: buffered")
        ax.plot(t, ra.trace_target[:span], color="C3", lw=1.2, label="adaptive: target")
        ax.set_title(sc.name, fontsize=9)
        ax.set_ylabel("ms")
        ax.set_ylim(0, max(600.0, float(np.percentile(ra.trace_buf[:span], 99)) * 1.1))
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1].set_xlabel("session time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
