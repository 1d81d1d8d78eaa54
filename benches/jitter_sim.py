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
from dataclasses import dataclass, field

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
            # Generation time of the chunk, with +-20% jitter around its real-time share / r.
            t_gen += len(piece) * 1000 / RATE / r * rng.uniform(0.8, 1.2)
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
    underruns: int = 0
    minutes: float = 0.0
    trace_t: list[float] = field(default_factory=list)
    trace_buf: list[float] = field(default_factory=list)
    trace_target: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def run(turns: list[Turn], end: float, adaptive: bool, record: bool = False) -> Result:
    jb = voxwire.JitterBuffer(RATE, FRAME_MS, prebuffer_ms=250, adaptive=adaptive)
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
    args = ap.parse_args()
    if args.seeds:
        many(args.seeds, args.turns)
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


def many(seeds: list[int], turns: int) -> None:
    """The bar over several seeds: the misses per seed, then the pass count per scenario."""
    count = [0] * len(SCENARIOS)
    every = 0
    for seed in seeds:
        misses = []
        for j, (sc, ra, rf) in enumerate(evaluate(seed, turns)):
            if passes(ra, rf):
                count[j] += 1
                continue
            ma, pa, ua = summary(ra)
            mf, pf, uf = summary(rf)
            misses.append(
                f"{sc.name} ({ma:.0f}/{pa:.0f} vs {mf:.0f}/{pf:.0f} ms, {ua:.2f} vs {uf:.2f}/min)"
            )
        every += not misses
        print(f"seed {seed:3}: " + ("ok" if not misses else "MISSED " + "; ".join(misses)))
    print(f"\npasses per scenario over {len(seeds)} seeds:")
    for sc, c in zip(SCENARIOS, count, strict=True):
        print(f"  {sc.name:32} {c:3} / {len(seeds)}")
    print(f"seeds with the bar held in every scenario: {every} / {len(seeds)}")


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
