"""Sweep of the silero engine's turn-start rule on benches/turn_noise.py's TUNING split.

Each candidate is the real voxwire.TurnDetector(engine="silero") with one setting of
`threshold`, `start_secs` and `vad_reset_ms` (the recurrent-state clearing while quiet), scored
as turn_noise.py scores it: false starts per minute on each noise alone, onsets found (a start
within 1 s after the labelled onset) clean and over each noise, and the mean delay from the
onset to the SpeechStarted emission (audio in 20 ms chunks). The default is chosen here, on
the tuning split, and then confirmed on the evaluation split by turn_noise.py.

Usage:
  PYTHONPATH=python .venv/bin/python benches/turn_start_sweep.py [--split tune] [--seconds 300]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
from turn_noise import SEEDS, Pcm, found, load, noises, pcm, voxwire_turns
from vad_sets import CACHE


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("tune", "eval"), default="tune")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--thresholds", default="0.5,0.6,0.7")
    ap.add_argument("--starts", default="0,0.05,0.1,0.15,0.19,0.25")
    ap.add_argument("--resets", default="0,1000,2000,5000")
    ap.add_argument(
        "--extra-seconds", type=float, default=1200.0, help="more noise (not babble, fan)"
    )
    a = ap.parse_args()
    noise, x, onsets, floor = load(a.split, a.seconds)
    streams = {k: pcm(v) for k, v in noise.items()}
    # More noise alone for the false starts (false starts are rare: 300 s of each noise
    # tells 0 from 1 a minute, not 0.1 from 0.2): other instances of every noise but the two
    # slow ones to make, babble (espeak-ng) and the fan (a long convolution).
    extra: dict[str, Pcm] = {}
    if a.extra_seconds > 0:
        tag = "" if a.split == "eval" else f"-{a.split}"
        cache = CACHE / f"turn_noise{tag}-extra-{a.extra_seconds:g}s-v1.npz"
        if cache.exists():
            z = np.load(cache)
            extra = {k: z[k] for k in z.files}
        else:
            seed = SEEDS[a.split][0] + 100
            extra = {
                k: pcm(v)
                for k, v in noises(
                    a.extra_seconds, a.split, seed=seed, skip=("babble", "fan on/off")
                ).items()
            }
            np.savez(cache, **extra)
    noise_s = {k: a.seconds + (a.extra_seconds if k in extra else 0) for k in noise}
    clean = pcm(x + floor)
    noisy = {k: pcm(x + floor + np.resize(v, len(x))) for k, v in noise.items()}
    n = len(onsets)
    print(
        f"split {a.split}, {a.seconds:g} s of each noise ({', '.join(noise)}) and "
        f"{a.extra_seconds:g} s more of each but babble and the fan for the false starts; "
        f"{n} onsets"
    )
    print(
        "threshold | start_secs | vad_reset_ms | false /min (per noise) | onsets clean | "
        "over noise | delay ms"
    )
    grid = itertools.product(
        [float(v) for v in a.thresholds.split(",")],
        [float(v) for v in a.starts.split(",")],
        [int(v) for v in a.resets.split(",")],
    )
    for thr, start, reset in grid:
        d = voxwire_turns("silero", threshold=thr, start_secs=start, vad_reset_ms=reset)
        fpm = [
            (len(d.run(s)[0]) + (len(d.run(extra[k])[0]) if k in extra else 0)) * 60 / noise_s[k]
            for k, s in streams.items()
        ]
        cf, delays = found(d.run(clean)[0], onsets)
        nf = []
        for s in noisy.values():
            k, dl = found(d.run(s)[0], onsets)
            nf.append(k)
            delays += dl
        print(
            f"{thr:.2f} | {start:.2f} | {reset} | {np.mean(fpm):.2f} "
            f"({' '.join(f'{v:.1f}' for v in fpm)}) | {cf}/{n} | {sum(nf)}/{n * len(nf)} "
            f"({' '.join(str(v) for v in nf)}) | {np.mean(delays):.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
