"""Measure voxwire's resampler presets beside soxr HQ and plot their frequency responses.

For each rate pair and filter, float32 tones (so nothing hides under the int16 floor) are
resampled, and the output level is measured at the tone's frequency, or where it aliases to
when it lies above the output's Nyquist frequency, by a least-squares fit of a sine and a
cosine at exactly that frequency (no FFT-bin scalloping). Prints a table of passband ripple
(over each filter's promised passband), -0.1 dB edge, stopband rejection (aliases of every
tone above the output's Nyquist frequency; images of passband tones) and delay; writes
docs/resampler_response.png.

Usage: python benches/resampler_response.py [--out docs/resampler_response.png]
Needs: pip install "voxwire[bench,plot]"
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import soxr

import voxwire

PAIRS = [(24000, 16000), (16000, 24000), (48000, 16000), (44100, 16000), (8000, 16000)]
Resample = Callable[[np.ndarray, int, int], np.ndarray]
FILTERS: dict[str, Resample] = {
    "voxwire hq": lambda x, a, b: voxwire.resample(x, a, b, quality="hq"),
    "voxwire lowlat": lambda x, a, b: voxwire.resample(x, a, b, quality="lowlat"),
    "soxr HQ": lambda x, a, b: soxr.resample(x, a, b, "HQ"),
}


def levels_db(y: np.ndarray, rate: int, freqs: list[float]) -> list[float]:
    """Levels (dB) of the components of y at exactly `freqs`, fitted jointly by least
    squares: fitting them one at a time would let a strong tone leak into a weak one's fit
    when the window does not hold whole periods of both."""
    t = np.arange(len(y)) / rate
    cols = []
    for f in freqs:
        cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), y.astype(np.float64), rcond=None)
    amps = np.hypot(coef[0::2], coef[1::2])
    return [float(20 * np.log10(max(float(v), 1e-15))) for v in amps]


def level_db(y: np.ndarray, rate: int, f: float) -> float:
    return levels_db(y, rate, [f])[0]


def response(fn: Resample, a: int, b: int, freqs: np.ndarray) -> np.ndarray:
    """Output level (dB re input) of a tone at each input frequency, at its alias if it is
    above the output Nyquist frequency. For upsampling, the worst image instead, above the
    input's Nyquist frequency."""
    n = a // 2
    out = []
    for f in freqs:
        x = (0.5 * np.sin(2 * np.pi * f * np.arange(n) / a)).astype(np.float32)
        y = fn(x, a, b)[len(x) * b // a // 10 : -(len(x) * b // a) // 10]
        ref = 20 * np.log10(0.5)
        out.append(level_db(y, b, abs(f - round(f / b) * b)) - ref)
    return np.array(out)


def images(fn: Resample, a: int, b: int, freqs: np.ndarray) -> np.ndarray:
    """Worst image level (dB re input) for upsampling, per input tone frequency."""
    n = a // 2
    out = []
    for f in freqs:
        x = (0.5 * np.sin(2 * np.pi * f * np.arange(n) / a)).astype(np.float32)
        y = fn(x, a, b)[len(x) * b // a // 10 : -(len(x) * b // a) // 10]
        imgs = [
            img
            for k in range(1, b // a + 2)
            for img in (k * a - f, k * a + f)
            if a / 2 < img < b / 2
        ]
        lv = levels_db(y, b, [f, *imgs])[1:]  # the tone itself fitted alongside
        out.append(max(lv) - 20 * np.log10(0.5) if lv else -200.0)
    return np.array(out)


#: Passband each filter promises, as a fraction of the lower Nyquist frequency (soxr HQ's
#: is wider; it is measured over voxwire hq's for the comparison).
PASSBAND = {"voxwire hq": 0.875, "voxwire lowlat": 0.80, "soxr HQ": 0.875}


def figures(name: str, a: int, b: int) -> dict[str, float]:
    fn = FILTERS[name]
    nyq = min(a, b) / 2
    pb = np.linspace(20, PASSBAND[name] * nyq, 40)
    gains = response(fn, a, b, pb)
    # -0.1 dB edge: scan up from 0.7 of Nyquist.
    scan = np.linspace(0.7 * nyq, 0.999 * nyq, 120)
    g = response(fn, a, b, scan)
    below = np.nonzero(g < -0.1)[0]
    edge = float(scan[below[0]] / nyq) if len(below) else 1.0
    if a > b:
        stop = response(fn, a, b, np.linspace(b / 2 * 1.001, a / 2 * 0.999, 60))
    else:
        # Images of tones in the passband (tones nearer Nyquist image into the transition).
        stop = images(fn, a, b, np.linspace(20, PASSBAND[name] * a / 2, 40))
    delay = (
        voxwire.Resampler(a, b, quality=name.split()[-1]).delay / b * 1000
        if "voxwire" in name
        else np.nan
    )
    return {
        "ripple_db": float(np.max(np.abs(gains))),
        "edge": edge,
        "rejection_db": float(-np.max(stop)),
        "delay_ms": float(delay),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/resampler_response.png")
    args = ap.parse_args()
    print("pair          filter          passband ripple  -0.1 dB edge  rejection   delay")
    for a, b in PAIRS:
        for name in FILTERS:
            fg = figures(name, a, b)
            print(
                f"{a:>5}->{b:<6}  {name:<14}  +-{fg['ripple_db']:.5f} dB    "
                f"{fg['edge']:.3f} Nyq     {fg['rejection_db']:6.1f} dB  "
                + (f"{fg['delay_ms']:.2f} ms" if fg["delay_ms"] == fg["delay_ms"] else "-"),
                flush=True,
            )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PAIRS), 1, figsize=(9, 3.2 * len(PAIRS)))
    for ax, (a, b) in zip(axes, PAIRS, strict=True):
        top = max(a, b) / 2 if a > b else a / 2
        freqs = np.linspace(20, top * 0.999, 300)
        for name, style in zip(FILTERS, ("-", "--", ":"), strict=True):
            if a > b:
                ax.plot(freqs, response(FILTERS[name], a, b, freqs), style, label=name)
            else:
                ax.plot(
                    freqs, response(FILTERS[name], a, b, freqs), style, label=f"{name} passband"
                )
                ax.plot(
                    freqs,
                    images(FILTERS[name], a, b, freqs),
                    style,
                    alpha=0.6,
                    label=f"{name} worst image",
                )
        ax.axvline(min(a, b) / 2, color="grey", lw=0.5)
        ax.axhline(-96, color="red", lw=0.5, label="-96 dB (int16 floor)")
        ax.set_ylim(-160, 5)
        what = f"its alias above {b // 2} Hz" if a > b else "and its worst image"
        ax.set_title(f"{a} Hz -> {b} Hz: output level of a tone ({what})")
        ax.set_xlabel("input tone frequency (Hz)")
        ax.set_ylabel("dB re input")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
