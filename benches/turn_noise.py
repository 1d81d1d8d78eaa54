"""Turn starts on noise: false SpeechStarted per minute on noise alone, missed utterance onsets
on speech with pauses of 1 s or more, and CPU per second of audio, for voxwire.TurnDetector with
each engine and for the composition a pipecat user runs (Silero on onnxruntime behind pipecat's
VADAnalyzer, VADParams(stop_secs=0.5) like server_vad's 500 ms silence).

Noise (generated here, seeded, cached under .simcache/, never committed; each a minute at
16 kHz, its RMS level drawn from -38 to -30 dBFS):
- typing: key press and release clicks in bursts (benches/vad_sets.py's generator);
- fan: broadband noise shaped like airflow with a motor's hum (100 Hz and harmonics, blade
  rate 40 Hz), switched on and off every 4-12 s with a 1 s spin-up and spin-down;
- music: vad_sets.py's chords and melody;
- hum: 50 Hz mains and its odd harmonics with a slowly wandering buzz;
- knocks: door knocks (2-4 knocks 0.15-0.3 s apart: a low resonant thump of 10-30 ms with a
  wood resonance), every 3-10 s;
- traffic: brown-noise rumble under 300 Hz with passing vehicles (5-15 s swells);
- babble: five other talkers (vad_sets.py's eval babble languages) summed.
Speech: 40 utterances in the split's languages and voices (vad_sets.py), peak -22 to -10
dBFS, each after 1-3 s of pause, over a -65 dBFS floor, then over each noise above at its level.
An onset counts as found when a turn starts (voxwire: SpeechStarted; pipecat: the analyzer's
state becomes SPEAKING) between the utterance's first labelled speech frame and 1 s after it;
if a turn is already in progress then (it ran on across the pause), the onset is missed.

Two splits: "eval" (the default: the set the tables report) and "tune" (other noise instances,
the tuning split's voices and babble languages), on which benches/turn_start_sweep.py chose
the default turn-start rule. The start delay is the mean time from the labelled onset to the
start event, over the onsets found.

Audio goes in 20 ms chunks, as a realtime client sends it. CPU is process time per second of
audio, whole streams, one thread. pipecat is driven through VADAnalyzer._run_analyzer, the
synchronous body analyze_audio runs on its executor (no event loop overhead is counted).
When pipecat is not importable (its pins conflict with voxwire's dev environment: run this
script with a venv of its own that has pipecat-ai, onnxruntime and voxwire's dependencies),
those rows are skipped.

Usage:
  PYTHONPATH=python .venv-pipecat/bin/python benches/turn_noise.py [--seconds 60]
      [--split eval|tune] [--markdown]
Needs: espeak-ng; pipecat-ai (its own venv) for the pipecat rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from vad_sets import CACHE, RATE, SPLITS, babble, brown, music, speech_stream, typing

import voxwire

Signal = npt.NDArray[np.float64]
Pcm = npt.NDArray[np.int16]
CHUNK = 320  # 20 ms at 16 kHz


def fan(rng: np.random.Generator, n: int) -> Signal:
    """A fan switched on and off (see the module docstring)."""
    t = np.arange(n) / RATE
    air = np.fft.irfft(
        np.fft.rfft(rng.standard_normal(n)) / np.sqrt(1 + np.fft.rfftfreq(n, 1 / RATE) / 300), n
    )
    motor = sum(np.sin(2 * np.pi * 100 * k * t + k) / k for k in range(1, 5))
    blade = 1 + 0.3 * np.sin(2 * np.pi * 40 * t)
    gate = np.zeros(n)
    at, on = 0, bool(rng.integers(2))
    while at < n:
        m = int(rng.uniform(4, 12) * RATE)
        gate[at : at + m] = 1.0 if on else 0.0
        at, on = at + m, not on
    ramp = np.ones(RATE) / RATE
    gate = np.convolve(gate, ramp, "same")
    return np.asarray(gate * (air * blade / np.std(air) + 0.3 * motor))


def hum(rng: np.random.Generator, n: int) -> Signal:
    """50 Hz mains and odd harmonics, with a slowly wandering buzz."""
    t = np.arange(n) / RATE
    wander = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)
    return np.asarray(
        sum(
            np.sin(2 * np.pi * 50 * k * t + k) / k * (wander if k > 3 else 1)
            for k in (1, 3, 5, 7, 9)
        )
    )


def knocks(rng: np.random.Generator, n: int) -> Signal:
    """Door knocks (see the module docstring)."""
    out = np.zeros(n)
    t = int(rng.uniform(1, 3) * RATE)
    while t < n:
        for _ in range(int(rng.integers(2, 5))):
            m = int(rng.uniform(0.01, 0.03) * RATE) + 800
            tt = np.arange(m) / RATE
            f = rng.uniform(80, 160)
            body = np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.015)
            wood = np.sin(2 * np.pi * rng.uniform(400, 900) * tt) * np.exp(-tt / 0.006)
            tap = rng.standard_normal(m) * np.exp(-tt / 0.002) * 0.5
            if t + m < n:
                out[t : t + m] += rng.uniform(0.6, 1.0) * (body + 0.6 * wood + tap)
            t += int(rng.uniform(0.15, 0.3) * RATE)
        t += int(rng.uniform(3, 10) * RATE)
    return out


def traffic(rng: np.random.Generator, n: int) -> Signal:
    """Rumble under 300 Hz with vehicles passing."""
    spec = np.fft.rfft(brown(rng, n))
    spec[np.fft.rfftfreq(n, 1 / RATE) > 300] = 0
    rumble = np.fft.irfft(spec, n)
    t = np.arange(n) / RATE
    swell = 0.3 + sum(
        np.exp(-(((t - c) / rng.uniform(2, 6)) ** 2))
        for c in rng.uniform(0, n / RATE, int(n / RATE / 8) + 1)
    )
    return np.asarray(rumble * swell)


#: Per split: the seeds of the noises, the speech and the floor. "eval" is the set the tables
#: report; "tune" (other noise instances, and the tuning split's voices and babble languages)
#: is the one turn-start parameters may be chosen on (benches/turn_start_sweep.py).
SEEDS = {"eval": (3000, 4000, 5), "tune": (3100, 4100, 6)}


def noises(
    seconds: float, split: str = "eval", *, seed: int | None = None, skip: tuple[str, ...] = ()
) -> dict[str, Signal]:
    """Each noise kind, `seconds` long, at its RMS level (-38 to -30 dBFS); `seed` (default:
    the split's) picks the instances; the kinds in `skip` are left out."""
    n = int(seconds * RATE)
    seed = SEEDS[split][0] if seed is None else seed
    makers: dict[str, Callable[[np.random.Generator, int], Signal]] = {
        "typing": typing,
        "fan on/off": fan,
        "music": music,
        "mains hum": hum,
        "door knocks": knocks,
        "traffic": traffic,
        "babble": lambda r, m: babble(r, SPLITS[split], m),
    }
    out = {}
    for i, (name, make) in enumerate(makers.items()):
        if name in skip:
            continue
        rng = np.random.default_rng(seed + i)
        x = make(rng, n)
        level = rng.uniform(-38, -30)
        # Level of the sound while it sounds (gated noises: over their active part).
        active = np.abs(x) > 1e-3 * np.max(np.abs(x))
        rms = (
            np.sqrt(np.mean(x[active] ** 2)) if name in ("fan on/off",) else np.sqrt(np.mean(x**2))
        )
        out[name] = x * 32768 * 10 ** (level / 20) / rms
    return out


def pcm(x: Signal) -> Pcm:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class Detector:
    """A turn detector driven in 20 ms chunks: start times (ms of audio pushed when the turn
    started) and CPU time."""

    def __init__(self, make: Callable[[], Callable[[Pcm], bool | None]]) -> None:
        self.make = make

    def run(self, x: Pcm) -> tuple[list[int], float]:
        step = self.make()
        starts: list[int] = []
        c0 = time.process_time()
        for i in range(0, len(x) - CHUNK + 1, CHUNK):
            if step(x[i : i + CHUNK]):
                starts.append((i + CHUNK) * 1000 // RATE)
        return starts, time.process_time() - c0


def voxwire_turns(engine: str, **kw: float) -> Detector:
    """voxwire.TurnDetector with its defaults (or `kw`) and the given engine."""

    def make() -> Callable[[Pcm], bool | None]:
        td = voxwire.TurnDetector(engine, turn=voxwire.TurnConfig(**kw))  # type: ignore[arg-type]

        def step(chunk: Pcm) -> bool:
            return any(isinstance(e, voxwire.SpeechStarted) for e in td.push(chunk))

        return step

    return Detector(make)


def pipecat_turns(min_volume: float | None) -> Detector | None:
    """pipecat's SileroVADAnalyzer with VADParams(stop_secs=0.5) (and min_volume if given)."""
    try:
        from pipecat.audio.vad.silero import SileroVADAnalyzer
        from pipecat.audio.vad.vad_analyzer import VADParams, VADState
    except ImportError:
        return None
    from loguru import logger

    logger.remove()

    def make() -> Callable[[Pcm], bool | None]:
        kw = {"stop_secs": 0.5} | ({} if min_volume is None else {"min_volume": min_volume})
        a = SileroVADAnalyzer(sample_rate=RATE, params=VADParams(**kw))
        a.set_sample_rate(RATE)
        state = [VADState.QUIET]

        def step(chunk: Pcm) -> bool:
            s = a._run_analyzer(chunk.tobytes())
            started = s == VADState.SPEAKING and state[0] in (VADState.QUIET, VADState.STARTING)
            state[0] = s
            return started

        return step

    return Detector(make)


def speech(split: str = "eval") -> tuple[Signal, list[int]]:
    """40 utterances after pauses of 1-3 s in the split's voices, and their onsets (ms)."""
    spec = SPLITS[split]
    rng = np.random.default_rng(SEEDS[split][1])
    langs, variants = spec["langs"], spec["variants"]
    assert isinstance(langs, list) and isinstance(variants, list)
    parts: list[Signal] = []
    onsets: list[int] = []
    at = 0
    for _ in range(40):
        pause = np.zeros(int(rng.uniform(1.0, 3.0) * 100) * 160)
        x, lab = speech_stream(rng, langs, variants, 0.1, (0.0, 0.0), (-22, -10))
        first = int(np.argmax(lab))
        parts += [pause, x]
        onsets.append((at + len(pause)) // 16 + first * 10)
        at += len(pause) + len(x)
    parts.append(np.zeros(2 * RATE))
    return np.concatenate(parts), onsets


def found(starts: list[int], onsets: list[int]) -> tuple[int, list[int]]:
    """Onsets with a turn start within [onset, onset + 1000 ms], and for each of them the
    delay (ms) from the onset to the first such start's emission."""
    s = np.array(starts, dtype=np.int64)
    delays = []
    for o in onsets:
        hit = s[(s >= o) & (s <= o + 1000)]
        if len(hit):
            delays.append(int(hit[0]) - o)
    return len(delays), delays


def load(split: str, seconds: float) -> tuple[dict[str, Signal], Signal, list[int], Signal]:
    """The split's noises, its speech with the onsets (ms), and the -65 dBFS floor under the
    speech (cached under .simcache/)."""
    tag = "" if split == "eval" else f"-{split}"
    cache = CACHE / f"turn_noise{tag}-{seconds:g}s-v1.npz"
    if cache.exists():
        z = np.load(cache)
        noise = {k[2:]: z[k] for k in z.files if k.startswith("n:")}
        x, onsets = z["speech"], [int(o) for o in z["onsets"]]
    else:
        noise = noises(seconds, split)
        x, onsets = speech(split)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache, speech=x, onsets=np.array(onsets), **{f"n:{k}": v for k, v in noise.items()}
        )
    rng = np.random.default_rng(SEEDS[split][2])
    floor = rng.standard_normal(len(x)) * 32768 * 10 ** (-65 / 20)
    return noise, x, onsets, floor


#: Rows of the table besides each engine with its defaults: label and TurnDetector keywords.
EXTRA: dict[str, dict[str, float]] = {
    # The default before the turn-start rule was tuned: any 10 ms frame at 0.5 starts a turn.
    "voxwire TurnDetector('silero', start_secs=0, vad_reset_ms=0) (old default)": {
        "start_secs": 0.0,
        "vad_reset_ms": 0,
    },
    # pipecat's start rule in voxwire: 0.7 confidence held for 0.2 s.
    "voxwire TurnDetector('silero', threshold=0.7, start_secs=0.2)": {
        "threshold": 0.7,
        "start_secs": 0.2,
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each noise")
    ap.add_argument("--split", choices=("eval", "tune"), default="eval")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    noise, x, onsets, floor = load(a.split, a.seconds)
    dets: dict[str, Detector] = {
        f"voxwire TurnDetector({e!r})": voxwire_turns(e)
        for e in ("spectral", "silero", "webrtc", "energy")
    }
    for label, kw in EXTRA.items():
        dets[label] = voxwire_turns("silero", **kw)
    for mv, label in ((None, "default min_volume 0.6"), (0.0, "min_volume 0")):
        if (p := pipecat_turns(mv)) is not None:
            dets[f"pipecat SileroVADAnalyzer stop_secs 0.5, {label}"] = p
    cols = list(noise)
    audio_s = 0.0
    rows = []
    for name, d in dets.items():
        cpu = 0.0
        audio_s = 0.0
        false = []
        for k in cols:
            st, c = d.run(pcm(noise[k]))
            false.append(len(st) * 60 / a.seconds)
            cpu += c
            audio_s += len(noise[k]) / RATE
        st, c = d.run(pcm(x + floor))
        cpu += c
        audio_s += len(x) / RATE
        clean_found, delays = found(st, onsets)
        noisy_found = []
        for k in cols:
            st, c = d.run(pcm(x + floor + np.resize(noise[k], len(x))))
            nf, dl = found(st, onsets)
            noisy_found.append(nf)
            delays += dl
            cpu += c
            audio_s += len(x) / RATE
        rows.append((name, false, clean_found, noisy_found, np.mean(delays), 1e6 * cpu / audio_s))
    n = len(onsets)
    head = [
        "detector",
        *[f"{k} /min" for k in cols],
        "false /min (all)",
        "onsets found (clean)",
        "onsets found (over noise: per noise, same order)",
        "start delay ms",
        "CPU µs per s",
    ]
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|---" * len(head) + "|")
    else:
        print("  ".join(head))
    for name, false, cf, nf, delay, cpu in rows:
        cells = [
            name,
            *[f"{v:.1f}" for v in false],
            f"{np.mean(false):.2f}",
            f"{cf}/{n}",
            f"{sum(nf)}/{n * len(nf)} ({' '.join(str(v) for v in nf)})",
            f"{delay:.0f}",
            f"{cpu:.0f}",
        ]
        print(("| " + " | ".join(cells) + " |") if a.markdown else "  ".join(cells))
    print(
        f"split {a.split}: {a.seconds:.0f} s of each noise; {n} utterance onsets, clean and over "
        f"each noise; {audio_s:.0f} s of audio per detector; start delay: mean from the "
        "labelled onset to the SpeechStarted emission (20 ms chunks), over the onsets found"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
