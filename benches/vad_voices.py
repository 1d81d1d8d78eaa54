"""VAD F1 on voices that are not in vad-dev: espeak-ng speech in 13 voices and languages.

vad-dev is one corpus of human recordings; `vad_generality.py` keeps its speech and changes
the noise. This script changes the speech: seeded phrases from espeak-ng in thirteen voices
(English, German, French, Spanish, Italian, Portuguese, Polish, Russian, Dutch,
Swedish, Hindi and Turkish rules; male and female variants; pitch and speed varied), each phrase
at its own level (-8 to -30 dBFS peak) and separated by 0.3-1.5 s pauses, then mixed with
noises at a speech-frame SNR. The labels come from the clean synthesis, per 10 ms frame:
speech where the frame's RMS is within 40 dB of the loudest frame of its phrase (and above
-70 dBFS), with gaps under 150 ms bridged (as vad-dev's labels bridge them) and blips under
30 ms dropped. Speech-class F1 per 10 ms frame for voxwire's engines and py-webrtcvad (30 ms
frames), beside "always speech". Nothing in any engine was tuned on these signals.

Usage: python benches/vad_voices.py [--seed 1] [--minutes 2]
Needs: espeak-ng (apt) and pip install "voxwire[bench]"
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys

import numpy as np
import numpy.typing as npt
from vad_generality import engines, f1

import voxwire
from voxwire import g711
from voxwire.wav import read_wav_bytes

Signal = npt.NDArray[np.float64]

# (voice, text): the text in the voice's language, so its rules produce its phonetics.
VOICES = [
    ("en-us+m3", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("en-gb+f3", "Please call me back when you have a moment, it is rather urgent."),
    ("de+m5", "Guten Morgen, ich möchte gerne einen Tisch für zwei Personen reservieren."),
    ("fr+f2", "Bonjour, je voudrais savoir à quelle heure part le prochain train."),
    ("es+m2", "Hola, necesito ayuda con mi cuenta, no puedo iniciar sesión."),
    ("it+f4", "Buongiorno, vorrei prenotare una camera per tre notti, per favore."),
    ("pt+m6", "Olá, gostaria de saber o preço deste produto e o prazo de entrega."),
    ("pl+f1", "Dzień dobry, chciałbym zapytać o status mojego zamówienia."),
    ("ru+m1", "Здравствуйте, я хотел бы узнать расписание автобусов на завтра."),
    ("nl+f5", "Goedemiddag, kunt u mij vertellen waar het station is?"),
    ("sv+m4", "Hej, jag skulle vilja boka en tid hos tandläkaren nästa vecka."),
    ("hi+f2", "नमस्ते, मुझे अपने बिल के बारे में जानकारी चाहिए।"),
    ("tr+m7", "Merhaba, yar\u0131n sabah i\u00e7in bir taksi \u00e7a\u011f\u0131rmak istiyorum."),
]


def synth(voice: str, text: str, pitch: int, wpm: int) -> Signal:
    """espeak-ng's speech for `text`, at 16 kHz, float samples at its own level."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(wpm), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    x, rate = read_wav_bytes(out)
    return voxwire.resample(x, rate, 16000).astype(np.float64)


def labels_of(phrase: Signal) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame of a clean phrase: speech or not (see the module docstring)."""
    n = len(phrase) // 160
    rms = np.sqrt(np.mean(phrase[: n * 160].reshape(n, 160) ** 2, axis=1) + 1e-9)
    db = 20 * np.log10(rms / 32768)
    lab = (db > db.max() - 40) & (db > -70)
    return clean_runs(lab, bridge=15, blip=3)


def clean_runs(lab: npt.NDArray[np.bool_], bridge: int, blip: int) -> npt.NDArray[np.bool_]:
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


def stream(rng: np.random.Generator, minutes: float) -> tuple[Signal, npt.NDArray[np.bool_]]:
    """Phrases of all voices in turn, at random levels, with pauses; and their labels."""
    parts: list[Signal] = []
    labs: list[npt.NDArray[np.bool_]] = []
    total = 0
    i = 0
    while total < minutes * 60 * 16000:
        voice, text = VOICES[i % len(VOICES)]
        words = text.split()
        cut = int(rng.integers(max(3, len(words) // 2), len(words) + 1))
        phrase = synth(
            voice, " ".join(words[:cut]), int(rng.integers(20, 80)), int(rng.integers(140, 200))
        )
        phrase = phrase[: len(phrase) // 160 * 160]
        peak = float(np.max(np.abs(phrase))) or 1.0
        phrase *= 32768 * 10 ** (rng.uniform(-30, -8) / 20) / peak
        pause = np.zeros(int(rng.uniform(0.3, 1.5) * 100) * 160)
        parts += [phrase, pause]
        labs += [labels_of(phrase), np.zeros(len(pause) // 160, bool)]
        total += len(phrase) + len(pause)
        i += 1
    return np.concatenate(parts), np.concatenate(labs)


def conditions(
    x: Signal, lab: npt.NDArray[np.bool_], babble: Signal, rng: np.random.Generator
) -> dict[str, tuple[Signal, int]]:
    """Each condition's signal and sample rate."""
    n = len(x)
    speech = np.repeat(lab, 160)[:n]
    power = float(np.mean(x[speech] ** 2))

    def mix(noise: Signal, snr_db: float) -> Signal:
        return x + noise * np.sqrt(power / np.mean(noise**2) / 10 ** (snr_db / 10))

    white = rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(np.arange(len(spec)), 1)), n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(800) / 800, "same")
    floor = white * 32768 * 10 ** (-65 / 20)  # a microphone chain's floor, not digital zero
    noisy20 = mix(white, 20)
    tel = voxwire.resample(np.clip(noisy20, -32768, 32767).astype(np.int16), 16000, 8000)
    tel = g711.ulaw_decode(g711.ulaw_encode(tel)).astype(np.float64)
    return {
        "clean (-65 dBFS floor)": (x + floor, 16000),
        "white noise 10 dB": (mix(white, 10), 16000),
        "pink noise 5 dB": (mix(pink, 5), 16000),
        "brown noise 5 dB": (mix(brown, 5), 16000),
        "babble of other voices 10 dB": (mix(babble[:n], 10), 16000),
        "8 kHz G.711 + white 20 dB": (tel, 8000),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the test stream")
    a = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    x, lab = stream(rng, a.minutes)
    # Babble: six other streams of the same voices (other phrases, other order), summed.
    babble = np.zeros(len(x))
    for k in range(6):
        other = stream(np.random.default_rng(a.seed * 100 + k), a.minutes)[0]
        babble += np.resize(np.roll(other, 8000 * k), len(x))
    conds = conditions(x, lab, babble, rng)
    eng = engines()
    share = 100 * lab.mean()
    print(
        f"{len(lab) / 100:.0f} s, {share:.0f}% speech frames, {len(VOICES)} voices, seed {a.seed}"
    )
    print(f"{'condition':30s}" + "".join(f"{k[:22]:>24s}" for k in eng))
    means = np.zeros(len(eng))
    for name, (y, rate) in conds.items():
        y16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        cells = [f1(run(y16, rate), lab) for run in eng.values()]
        means += np.array(cells) / len(conds)
        print(f"{name:30s}" + "".join(f"{c:24.3f}" for c in cells))
    print(f"{'mean':30s}" + "".join(f"{c:24.3f}" for c in means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
