"""VAD tuning and evaluation sets, generated from what the machine installs (espeak-ng, numpy).

Nothing here is stored in the repository: each set is synthesised, seeded, on demand, and cached
under `.simcache/vad_sets/` (gitignored). Two splits share no voice, language or noise seed:

- "tune": what the spectral engine's constants may be fitted on.
- "eval": what engines are compared and the default chosen on. Nothing was fitted on it.

Speech. espeak-ng phrases in languages and voice variants that neither vad-dev (human
recordings) nor benches/vad_voices.py (en, de, fr, es, it, pt, pl, ru, nl, sv, hi, tr with the
m1-m7/f1-f5 variants) use. Latin-script languages speak pseudo-sentences (random words built
from syllables, read by each language's own rules) followed by a number (read as that
language's number words); the others speak numbers only. Pitch and speed vary per phrase; each
phrase's peak is -22 to -10 dBFS (one talker on one microphone), phrases are separated by
0.5-4 s of pause.

Labels (per 10 ms frame) come from the clean synthesis of each phrase, by energy: speech where
the frame's RMS is within 40 dB of the phrase's loudest frame and above -70 dBFS, gaps under
150 ms bridged, runs under 30 ms dropped (as vad_voices.py labels). Pauses are non-speech. In
the reverberant conditions the labels are still the dry speech's: the tail after a word is not
speech.

Conditions (SNR is the speech frames' mean power over the noise's mean power):
clean (a -65 dBFS white floor, a microphone chain's), babble of other voices (five other
languages and voices summed, continuous) at 20/10/5/0 dB, keyboard typing (key clicks with
their release clicks, in bursts) at 20/10/0 dB, music-like (synthesised chords and a melody of
harmonic tones with envelopes and vibrato) at 20/10/0 dB, pink noise at 20/5 dB, brown noise at
10/0 dB, reverberation (a synthetic room impulse response: exponentially decaying noise after
a direct path and a few early reflections) with RT60 0.3 s and 0.8 s, and phone band
(300-3400 Hz, taken to 8 kHz, G.711 mu-law round trip through voxwire.g711; and A-law with
babble at 10 dB before the channel): the phone conditions are scored at 8 kHz.

Usage:
  python benches/vad_sets.py [--split tune|eval|both] [--minutes 3] [--wav-dir DIR]
prints each set's make-up (and writes its conditions as WAV files with --wav-dir). Other
benches import `load(split)`.
Needs: espeak-ng (apt) and numpy.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire import g711
from voxwire.agents import read_wav_bytes

Signal = npt.NDArray[np.float64]
Labels = npt.NDArray[np.bool_]

CACHE = Path(__file__).resolve().parents[1] / ".simcache" / "vad_sets"
RATE = 16000

#: Per split: speech languages (script), voice variants, babble languages (script), seed base.
#: "L" = Latin script (pseudo-words and numbers), "N" = numbers only.
SPLITS: dict[str, dict[str, object]] = {
    "tune": {
        "langs": [
            ("cs", "L"),
            ("fi", "L"),
            ("hu", "L"),
            ("ro", "L"),
            ("da", "L"),
            ("id", "L"),
            ("el", "N"),
            ("vi", "L"),
        ],
        "variants": [
            "Adam",
            "Annie",
            "belinda",
            "boris",
            "david",
            "linda",
            "max",
            "steph",
            "klatt2",
            "Andy",
        ],
        "babble": [("hr", "L"), ("ca", "L"), ("et", "L"), ("bg", "N"), ("sl", "L")],
        "seed": 1000,
    },
    "eval": {
        "langs": [
            ("sk", "L"),
            ("lv", "L"),
            ("lt", "L"),
            ("sw", "L"),
            ("ms", "L"),
            ("cy", "L"),
            ("uk", "N"),
            ("ka", "N"),
            ("is", "L"),
        ],
        "variants": [
            "Alex",
            "Andrea",
            "anika",
            "benjamin",
            "caleb",
            "edward",
            "grandma",
            "michel",
            "norbert",
            "shelby",
            "klatt4",
            "Lee",
        ],
        "babble": [("af", "L"), ("sq", "L"), ("eu", "L"), ("mk", "N"), ("ga", "L")],
        "seed": 2000,
    },
}

ONSETS = [
    "b",
    "d",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "st",
    "kr",
    "pl",
    "tr",
    "g",
    "h",
    "j",
]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o"]
CODAS = ["", "", "", "n", "s", "r", "l", "m", "t", "k"]


def _word(rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 4))
    return "".join(
        str(rng.choice(ONSETS)) + str(rng.choice(VOWELS)) + str(rng.choice(CODAS)) for _ in range(n)
    )


def _text(rng: np.random.Generator, script: str) -> str:
    number = str(int(rng.integers(2, 99999)))
    if script == "N":
        return " ".join([number, str(int(rng.integers(2, 999)))])
    words = [_word(rng) for _ in range(int(rng.integers(3, 9)))]
    return " ".join(words) + " " + number


def synth(voice: str, text: str, pitch: int, wpm: int) -> Signal:
    """espeak-ng's speech for `text` at 16 kHz, as float samples at the synthesiser's level."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(wpm), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    x, rate = read_wav_bytes(out)
    y = voxwire.resample(x, rate, RATE).astype(np.float64) if rate != RATE else x.astype(float)
    return y[: len(y) // 160 * 160]


def clean_runs(lab: Labels, bridge: int, blip: int) -> Labels:
    """Bridges gaps shorter than `bridge` frames between speech, then drops runs shorter
    than `blip` frames."""
    lab = lab.copy()
    idx = np.flatnonzero(lab)
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= bridge:
            lab[a:b] = True
    edges = np.flatnonzero(np.diff(np.concatenate(([0], lab.astype(np.int8), [0]))))
    for s, e in zip(edges[::2], edges[1::2], strict=True):
        if e - s < blip:
            lab[s:e] = False
    return lab


def labels_of(phrase: Signal) -> Labels:
    """Per 10 ms frame of a clean phrase: speech or not (see the module docstring)."""
    n = len(phrase) // 160
    rms = np.sqrt(np.mean(phrase[: n * 160].reshape(n, 160) ** 2, axis=1) + 1e-9)
    db = 20 * np.log10(rms / 32768)
    return clean_runs((db > db.max() - 40) & (db > -70), bridge=15, blip=3)


def speech_stream(
    rng: np.random.Generator,
    langs: list[tuple[str, str]],
    variants: list[str],
    seconds: float,
    pause: tuple[float, float],
    peak_db: tuple[float, float],
) -> tuple[Signal, Labels]:
    """Phrases in the given languages and variants, at random levels, with pauses."""
    parts: list[Signal] = []
    labs: list[Labels] = []
    total = 0
    while total < seconds * RATE:
        lang, script = langs[int(rng.integers(len(langs)))]
        variant = variants[int(rng.integers(len(variants)))]
        phrase = synth(
            f"{lang}+{variant}",
            _text(rng, script),
            int(rng.integers(25, 75)),
            int(rng.integers(140, 200)),
        )
        if len(phrase) < 1600:
            continue
        phrase *= 32768 * 10 ** (rng.uniform(*peak_db) / 20) / (np.max(np.abs(phrase)) or 1.0)
        gap = np.zeros(int(rng.uniform(*pause) * 100) * 160)
        parts += [phrase, gap]
        labs += [labels_of(phrase), np.zeros(len(gap) // 160, bool)]
        total += len(phrase) + len(gap)
    return np.concatenate(parts), np.concatenate(labs)


def fftconvolve(x: Signal, h: Signal) -> Signal:
    """Full linear convolution by FFT (numpy only)."""
    n = len(x) + len(h) - 1
    m = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[:n]


def babble(rng: np.random.Generator, spec: dict[str, object], n: int) -> Signal:
    """Five continuous talkers of the split's babble languages, summed."""
    langs = spec["babble"]
    assert isinstance(langs, list)
    variants = spec["variants"]
    assert isinstance(variants, list)
    out = np.zeros(n)
    for lang in langs:
        x, _ = speech_stream(rng, [lang], variants, n / RATE + 1, (0.05, 0.4), (-14, -10))
        out += np.roll(np.resize(x, n), int(rng.integers(n)))
    return out


def typing(rng: np.random.Generator, n: int) -> Signal:
    """Keyboard typing: bursts of 3-15 keys at 4-10 keys/s, each a press click (2-6 ms of
    band-passed noise, decaying in about 4 ms) and a softer release 50-120 ms later; the
    space bar thuds lower. Bursts are 0.3-3 s apart."""
    out = np.zeros(n)
    t = int(rng.integers(0, RATE))
    while t < n:
        for _ in range(int(rng.integers(3, 16))):
            for amp, delay in (
                (1.0, 0),
                (rng.uniform(0.2, 0.5), int(rng.uniform(0.05, 0.12) * RATE)),
            ):
                m = int(rng.uniform(0.002, 0.006) * RATE) + 64
                burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.004 * RATE))
                if rng.random() < 0.15:  # space bar: lower, longer
                    burst = np.convolve(burst, np.ones(6) / 6, "same") * 2.0
                else:
                    burst = np.diff(burst, prepend=0.0)  # brighter
                a = t + delay
                if a + m < n:
                    out[a : a + m] += amp * rng.uniform(0.5, 1.0) * burst
            t += int(RATE / rng.uniform(4, 10))
        t += int(rng.uniform(0.3, 3.0) * RATE)
    return out


def music(rng: np.random.Generator, n: int) -> Signal:
    """Music-like: a chord (three harmonic tones, 8 harmonics at 1/k) changing every 0.25-1 s
    with attack/decay envelopes, a melody line of shorter notes with vibrato, and a soft
    bass; notes from a major scale."""
    out = np.zeros(n)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = 2 ** (rng.integers(-5, 5) / 12) * 220.0

    def note(freq: float, m: int, vib: float) -> Signal:
        tt = np.arange(m) / RATE
        ph = 2 * np.pi * np.cumsum(freq * (1 + vib * np.sin(2 * np.pi * 5.5 * tt))) / RATE
        tone = sum(np.sin(k * ph) / k for k in range(1, 9) if k * freq < 7000)
        env = np.minimum(tt / 0.02, 1.0) * np.exp(-tt / rng.uniform(0.3, 1.5))
        return np.asarray(tone * env)

    def pitch(deg: int) -> float:
        octave, d = divmod(deg, 7)
        return float(root * 2 ** (octave + scale[d] / 12))

    t = 0
    while t < n:
        m = min(int(rng.uniform(0.25, 1.0) * RATE), n - t)
        deg = int(rng.integers(0, 7))
        for d in (deg, deg + 2, deg + 4):
            out[t : t + m] += 0.6 * note(pitch(d), m, 0.0)
        out[t : t + m] += 0.8 * note(pitch(deg - 7) / 2, m, 0.0)
        s = t
        while s < t + m:
            k = min(int(rng.uniform(0.1, 0.4) * RATE), t + m - s)
            out[s : s + k] += note(pitch(int(rng.integers(7, 15))), k, 0.006)
            s += k
        t += m
    return out


def pink(rng: np.random.Generator, n: int) -> Signal:
    spec = np.fft.rfft(rng.standard_normal(n))
    return np.fft.irfft(spec / np.sqrt(np.maximum(np.arange(len(spec)), 1)), n)


def brown(rng: np.random.Generator, n: int) -> Signal:
    b = np.cumsum(rng.standard_normal(n))
    return b - np.convolve(b, np.ones(800) / 800, "same")


def rir(rng: np.random.Generator, rt60: float) -> Signal:
    """A synthetic room impulse response: the direct path, five early reflections in the
    first 20 ms, and exponentially decaying noise (60 dB down after `rt60` s)."""
    m = int(rt60 * 1.2 * RATE)
    t = np.arange(m) / RATE
    h = rng.standard_normal(m) * np.exp(-t * 6.91 / rt60) * 0.25
    h[: int(0.005 * RATE)] *= np.linspace(0, 1, int(0.005 * RATE))
    h[0] = 1.0
    for _ in range(5):
        h[int(rng.uniform(0.002, 0.02) * RATE)] += rng.uniform(0.3, 0.7) * rng.choice([-1, 1])
    return h


def phone(x: Signal, law: str) -> Signal:
    """300-3400 Hz band, 8 kHz, a G.711 round trip; float samples at 8 kHz."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    spec[(f < 300) | (f > 3400)] = 0
    y = np.clip(np.round(np.fft.irfft(spec, len(x))), -32768, 32767).astype(np.int16)
    y8 = voxwire.resample(y, RATE, 8000)
    if law == "ulaw":
        return g711.ulaw_decode(g711.ulaw_encode(y8)).astype(np.float64)
    return g711.alaw_decode(g711.alaw_encode(y8)).astype(np.float64)


@dataclass
class Condition:
    """One condition of a set: its samples (int16) at `rate`, and the split's labels."""

    name: str
    kind: str
    samples: npt.NDArray[np.int16]
    rate: int


def build(split: str, minutes: float = 3.0) -> tuple[Labels, list[Condition]]:
    """The split's labels (per 10 ms frame) and conditions (see the module docstring)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (apt-get install espeak-ng)")
    spec = SPLITS[split]
    seed = int(str(spec["seed"]))
    rng = np.random.default_rng(seed)
    langs, variants = spec["langs"], spec["variants"]
    assert isinstance(langs, list) and isinstance(variants, list)
    x, lab = speech_stream(rng, langs, variants, minutes * 60, (0.5, 4.0), (-22, -10))
    n = len(x)
    speech = np.repeat(lab, 160)[:n]
    power = float(np.mean(x[speech] ** 2))
    nrng = np.random.default_rng(seed + 1)
    floor = nrng.standard_normal(n) * 32768 * 10 ** (-65 / 20)

    def mix(noise: Signal, snr_db: float) -> Signal:
        return x + floor + noise * np.sqrt(power / np.mean(noise**2) / 10 ** (snr_db / 10))

    bab = babble(np.random.default_rng(seed + 2), spec, n)
    keys = typing(np.random.default_rng(seed + 3), n)
    mus = music(np.random.default_rng(seed + 4), n)
    pk = pink(np.random.default_rng(seed + 5), n)
    br = brown(np.random.default_rng(seed + 6), n)
    conds: list[tuple[str, str, Signal, int]] = [("clean", "clean", x + floor, RATE)]
    conds += [(f"babble {s} dB", "babble", mix(bab, s), RATE) for s in (20, 10, 5, 0)]
    conds += [(f"typing {s} dB", "typing", mix(keys, s), RATE) for s in (20, 10, 0)]
    conds += [(f"music {s} dB", "music", mix(mus, s), RATE) for s in (20, 10, 0)]
    conds += [(f"pink {s} dB", "pink", mix(pk, s), RATE) for s in (20, 5)]
    conds += [(f"brown {s} dB", "brown", mix(br, s), RATE) for s in (10, 0)]
    for rt in (0.3, 0.8):
        h = rir(np.random.default_rng(seed + 7 + int(rt * 10)), rt)
        wet = fftconvolve(x, h)[:n]
        wet *= np.sqrt(power / np.mean(wet[speech] ** 2))
        conds.append((f"reverb RT60 {rt} s", "reverb", wet + floor, RATE))
    conds.append(("phone mu-law", "phone", phone(x + floor, "ulaw"), 8000))
    conds.append(("phone A-law + babble 10 dB", "phone", phone(mix(bab, 10), "alaw"), 8000))
    out = [
        Condition(name, kind, np.clip(np.round(y), -32768, 32767).astype(np.int16), rate)
        for name, kind, y, rate in conds
    ]
    return lab, out


def load(split: str, minutes: float = 3.0) -> tuple[Labels, list[Condition]]:
    """`build(split, minutes)`, cached under .simcache/vad_sets/."""
    path = CACHE / f"{split}-{minutes:g}min-v2.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        names = [str(s) for s in z["names"]]
        kinds = [str(s) for s in z["kinds"]]
        return z["labels"], [
            Condition(nm, kd, z[f"c{i}"], int(z["rates"][i]))
            for i, (nm, kd) in enumerate(zip(names, kinds, strict=True))
        ]
    lab, conds = build(split, minutes)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        labels=lab,
        names=np.array([c.name for c in conds]),
        kinds=np.array([c.kind for c in conds]),
        rates=np.array([c.rate for c in conds]),
        **{f"c{i}": c.samples for i, c in enumerate(conds)},
    )
    return lab, conds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tune", "eval", "both"], default="both")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--wav-dir", type=Path, default=None)
    a = ap.parse_args()
    for split in ("tune", "eval") if a.split == "both" else (a.split,):
        lab, conds = load(split, a.minutes)
        spec = SPLITS[split]
        print(
            f"{split}: {len(lab) / 100:.0f} s, {100 * lab.mean():.0f}% speech frames; "
            f"languages {[lng for lng, _ in spec['langs']]}, "  # type: ignore[attr-defined]
            f"babble {[lng for lng, _ in spec['babble']]}, "  # type: ignore[attr-defined]
            f"variants {spec['variants']}, seeds {spec['seed']}+"
        )
        for c in conds:
            print(f"  {c.name:28s} {c.rate} Hz")
            if a.wav_dir:
                a.wav_dir.mkdir(parents=True, exist_ok=True)
                with wave.open(
                    str(a.wav_dir / f"{split}-{c.name.replace(' ', '_')}.wav"), "wb"
                ) as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(c.rate)
                    w.writeframes(c.samples.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
