"""The semantic end-of-turn rule (OpenAI semantic_vad): judged from the end's prosody,
waits ordered by eagerness, the text hint, streaming equal to one-shot, defaults unchanged.

The utterances here are synthetic voiced tones with a pitch contour: the spectral engine hears
them as speech (Silero, the default engine, is trained on real speech and does not), so every
detector here names it. The rule itself does not depend on the engine (docs/design/turns.md).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voxwire
from voxwire import SpeechStarted, SpeechStopped
from voxwire.dialects import OpenAIDialect
from voxwire.errors import InvalidInputError
from voxwire.session import Session
from voxwire.session import events as ev

RATE = 16000
EAGERNESS = ["high", "medium", "low"]
# The documented waits: (complete_ms, max_ms) per eagerness.
WAITS = {"high": (300, 1000), "medium": (400, 1000), "low": (450, 2000)}


def voiced(f0: np.ndarray, rate: int = RATE) -> np.ndarray:
    """A harmonic voice following the pitch contour `f0` (Hz per sample)."""
    ph = 2 * np.pi * np.cumsum(f0) / rate
    return sum(np.sin(k * ph) / k for k in range(1, 10)) * 5000


def utterance(end: str, seconds: float = 1.5, rate: int = RATE) -> np.ndarray:
    """A 140 Hz voice whose last 400 ms fall 7 semitones, stay level or rise 4."""
    f = np.full(int(rate * seconds), 140.0)
    m = int(rate * 0.4)
    glide = {"fall": -7.0, "level": 0.0, "rise": 4.0}[end]
    f[-m:] = 140 * 2 ** (np.linspace(0, glide, m) / 12)
    return voiced(f, rate)


def signal(parts: list[np.ndarray | float], rate: int = RATE) -> np.ndarray:
    """Voice parts and gaps (seconds) over a quiet noise floor, as int16."""
    rng = np.random.default_rng(5)
    x = np.concatenate([p if isinstance(p, np.ndarray) else np.zeros(int(rate * p)) for p in parts])
    x = x + rng.standard_normal(len(x)) * 30
    return np.clip(x, -32768, 32767).astype(np.int16)


def stops(events: list[object]) -> list[SpeechStopped]:
    return [e for e in events if isinstance(e, SpeechStopped)]


def end_of(end: str, eagerness: str) -> SpeechStopped:
    """The one SpeechStopped of a 1.5 s utterance with `end`, followed by 9 s of silence."""
    x = signal([1.0, utterance(end), 9.0])
    s = stops(
        voxwire.TurnDetector(
            engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness)
        ).push(x)
    )
    assert len(s) == 1
    return s[0]


@pytest.mark.parametrize("eagerness", EAGERNESS)
def test_a_falling_end_ends_sooner_than_a_level_or_rising_one(eagerness: str) -> None:
    """A statement's falling pitch is judged complete: the turn ends after the eagerness's
    short wait; a level or rising end (the speaker may go on) waits longer, a rising one
    longest, never past the eagerness's maximum."""
    complete, most = WAITS[eagerness]
    wait = {
        e: (s := end_of(e, eagerness)).emitted_at_ms - s.audio_end_ms
        for e in ("fall", "level", "rise")
    }
    assert abs(wait["fall"] - complete) <= 10, wait
    assert wait["fall"] + 200 <= wait["level"] < wait["rise"] <= most, wait


@pytest.mark.parametrize("end", ["fall", "level", "rise"])
def test_eagerness_orders_the_waits(end: str) -> None:
    """high ends soonest, low waits longest; auto is medium."""
    t = [end_of(end, e).emitted_at_ms for e in EAGERNESS]
    assert t[0] <= t[1] <= t[2], t
    x = signal([1.0, utterance(end), 9.0])
    auto = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness="auto")
    ).push(x)
    assert auto == voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness="medium")
    ).push(x)


def test_a_pause_after_a_level_phrase_is_not_cut_where_server_vad_cuts_it() -> None:
    """A 650 ms pause after a phrase with level pitch, then a phrase that falls: server_vad
    (500 ms) ends the turn in the pause, semantic_vad at medium waits through it and ends
    once, after the falling phrase."""
    x = signal([1.0, utterance("level", 1.2), 0.65, utterance("fall", 1.0), 6.0])
    ev = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(silence_duration_ms=500)
    ).push(x)
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped] * 2
    ev = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness="medium")
    ).push(x)
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped]
    assert abs(stops(ev)[0].audio_end_ms - 3850) <= 40, ev


def run_hinted(hint: bool | None) -> SpeechStopped:
    """A level end (an unsure judgement) with a text hint given once the speech paused."""
    x = signal([1.0, utterance("level"), 9.0])
    td = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness="medium")
    )
    ev: list[object] = []
    hinted = False
    for i in range(0, len(x), 320):
        ev += td.push(x[i : i + 320])
        est = td.end_estimate
        if est is not None and est[0] >= 2400 and not hinted:
            td.set_text_hint(hint)
            hinted = True
            new = td.end_estimate
            assert new is not None and new[0] == est[0]
            if hint is not None:
                assert (new[1] > est[1]) == hint and (new[2] < est[2]) == hint, (est, new)
    assert hinted
    s = stops(ev)
    assert len(s) == 1
    return s[0]


def test_a_text_hint_moves_the_end() -> None:
    """Words that end a sentence shorten the wait, words that do not lengthen it."""
    none, done, more = (run_hinted(h).emitted_at_ms for h in (None, True, False))
    assert done < none < more, (done, none, more)


def test_the_hint_does_nothing_in_silence_mode_and_estimates_are_semantic_only() -> None:
    x = signal([1.0, utterance("level"), 2.0])
    td = voxwire.TurnDetector(engine="spectral")
    td.set_text_hint(True)
    assert td.push(x) == voxwire.TurnDetector(engine="spectral").push(x)
    assert td.end_estimate is None and td.end_features is None
    sem = voxwire.TurnDetector(engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic"))
    sem.push(x[: 2600 * 16])
    est = sem.end_estimate
    assert est is not None and abs(est[0] - 2500) <= 40 and 0 <= est[1] <= 1
    names = [n for n, _ in sem.end_features or []]
    assert names == list(voxwire._voxwire.END_FEATURE_NAMES)


def test_defaults_are_unchanged_and_bad_options_refused() -> None:
    x = signal([1.0, utterance("level"), 0.3, utterance("fall"), 2.0])
    assert voxwire.TurnDetector(engine="spectral").push(x) == voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="silence")
    ).push(x)
    msgs = [x[i : i + 480] for i in range(0, len(x), 480)]
    a, b = (
        voxwire.InputPipeline(engine="spectral", in_rate=RATE),
        voxwire.InputPipeline(
            engine="spectral", in_rate=RATE, turn=voxwire.TurnConfig(end_mode="silence")
        ),
    )
    assert [a.push(m) for m in msgs] == [b.push(m) for m in msgs]
    for kw in (
        {"end_mode": "smart"},
        {"eagerness": "eager"},
        {"end_mode": "semantic", "eagerness": "HIGH"},
    ):
        with pytest.raises(InvalidInputError):
            voxwire.TurnConfig(**kw)  # type: ignore[arg-type]
    # Keyword-only: the turn parameters are TurnConfig's, not the detector's or pipeline's.
    with pytest.raises(TypeError):
        voxwire.TurnDetector(engine="spectral", end_mode="semantic")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        voxwire.InputPipeline(engine="spectral", end_mode="semantic")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        voxwire.TurnConfig(0.5)  # type: ignore[misc]


IN = 24000
X = signal(
    [
        1.0,
        utterance("level", 1.2, IN),
        0.65,
        utterance("fall", 1.0, IN),
        3.0,
        utterance("rise", 0.8, IN),
        8.5,
    ],
    IN,
)


def push_all(p: voxwire.InputPipeline, msgs: list[object]) -> list[object]:
    ev: list[object] = []
    for m in msgs:
        ev += p.push(m)
    return ev


@pytest.mark.parametrize("eagerness", EAGERNESS)
def test_pipeline_gives_what_its_parts_give(eagerness: str) -> None:
    """InputPipeline in semantic mode = resampler then TurnDetector in semantic mode."""
    p = voxwire.InputPipeline(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness)
    )
    got = push_all(
        p,
        [
            base64.b64encode(X[i : i + 480].astype("<i2").tobytes()).decode()
            for i in range(0, len(X), 480)
        ],
    )
    r = voxwire.Resampler(IN, 16000, quality="vad")
    td = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness)
    )
    want: list[object] = []
    for i in range(0, len(X), 480):
        want += td.push(r.process(X[i : i + 480]))
    assert got == want
    # The 650 ms pause after the level phrase: high's wait there (about 570 ms) cuts it.
    assert len(stops(got)) == (3 if eagerness == "high" else 2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4000), min_size=1, max_size=60), st.sampled_from(EAGERNESS))
def test_streaming_equals_one_shot(sizes: list[int], eagerness: str) -> None:
    """The events do not depend on how the audio is cut into messages."""
    cuts = np.cumsum(sizes)
    chunks = np.split(X, cuts[cuts < len(X)])

    def mk() -> voxwire.InputPipeline:
        return voxwire.InputPipeline(
            engine="spectral",
            encoding="raw",
            turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness),
        )

    one = push_all(mk(), [X.tobytes()])
    assert push_all(mk(), [c.tobytes() for c in chunks]) == one
    x16 = voxwire.resample(X, IN, 16000).astype(np.int16)
    td1 = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness)
    )
    td2 = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(end_mode="semantic", eagerness=eagerness)
    )
    many: list[object] = []
    for c in np.split(x16, np.cumsum(sizes)[np.cumsum(sizes) < len(x16)]):
        many += td2.push(c)
    assert many == td1.push(x16)


def test_the_session_ends_semantic_vad_turns_by_prosody() -> None:
    """A session whose turn detection is semantic_vad runs the semantic rule: the pause
    after a level phrase does not end the turn (server_vad's 500 ms does)."""
    x = signal([1.0, utterance("level", 1.2, IN), 0.65, utterance("fall", 1.0, IN), 5.0], IN)
    counts = {}
    for kind in ("server_vad", "semantic_vad"):
        td = ev.TurnDetection(type=kind, eagerness="medium")
        s = Session(
            OpenAIDialect(),
            vad_engine="spectral",
            state=ev.SessionState(id="", model="m", turn_detection=td),
        )
        s.messages_to_send()
        out = []
        for i in range(0, len(x), 480):
            msg = {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(x[i : i + 480].astype("<i2").tobytes()).decode(),
            }
            s.receive(json.dumps(msg), 0.0)
            out += [json.loads(m)["type"] for m in s.messages_to_send()]
        counts[kind] = out.count("input_audio_buffer.speech_stopped")
    assert counts == {"server_vad": 2, "semantic_vad": 1}


def in_noise(
    kind: str, snr_db: float, silence_ms: int = 500, hum_hz: float = 60.0
) -> tuple[int, voxwire.TurnDetector]:
    """A 1.5 s falling utterance (judged complete in quiet; its end at about 93 Hz) after 1 s
    of `kind` noise ("hum": `hum_hz` and 5 harmonics; "white") at `snr_db` under the voice's
    RMS, 4 s of it after; the wait of its one SpeechStopped at high, and the detector."""
    rng = np.random.default_rng(7)
    v = np.concatenate([np.zeros(RATE), utterance("fall"), np.zeros(4 * RATE)])
    t = np.arange(len(v)) / RATE
    if kind == "hum":
        n = sum(np.sin(2 * np.pi * hum_hz * k * t + k) / k for k in range(1, 7))
    else:
        n = rng.standard_normal(len(v))
    rms_v = np.sqrt(np.mean(utterance("fall") ** 2))
    x = v + n / np.sqrt(np.mean(n**2)) * rms_v * 10 ** (-snr_db / 20)
    td = voxwire.TurnDetector(
        engine="spectral",
        turn=voxwire.TurnConfig(
            end_mode="semantic", eagerness="high", silence_duration_ms=silence_ms
        ),
    )
    s = stops(td.push(np.clip(x, -32768, 32767).astype(np.int16)))
    assert len(s) == 1
    return s[0].emitted_at_ms - s[0].audio_end_ms, td


def test_the_gate_falls_back_to_server_vads_wait_in_tonal_or_loud_noise() -> None:
    """The falling end passes the reliability gate in quiet and under a 60 Hz hum 35 dB
    down (the end's pitch, about 93 Hz, is the voice's) and ends after high's shortest
    wait. Under a tone at the end's own pitch or its octave (the tracker cannot tell them
    apart) the judgement is not used: the turn ends after silence_duration_ms, as with
    server_vad. In hum or white noise 10-15 dB under the voice (too near the noise floor:
    the gate wants 32 dB) but not at the end's pitch, the judgement moves the wait only
    END_NOISY_TRUST (0.3) of the way from silence_duration_ms: the falling end, judged
    complete, waits 500 + 0.3 * (300 - 500) = 440 ms in white noise."""
    names = list(voxwire._voxwire.END_GATE_NAMES)
    assert names == ["snr_db", "noise_pitched_share", "pitch_to_noise_st"]
    trust = voxwire._voxwire.END_NOISY_TRUST
    assert abs(trust - 0.3) < 1e-6
    for kind, snr in (("white", 40), ("hum", 35)):
        wait, td = in_noise(kind, snr)
        gate = td.end_gate
        assert gate is not None and gate[0] and dict(gate[1])["snr_db"] >= 32, gate
        assert abs(wait - WAITS["high"][0]) <= 10, (kind, wait)
    for kind, snr, silence, hz in (("hum", 35, 500, 93.0), ("hum", 35, 700, 186.0)):
        wait, td = in_noise(kind, snr, silence, hz)
        gate = td.end_gate
        assert gate is not None and not gate[0], (kind, snr, hz, gate)
        m = dict(gate[1])
        assert m["noise_pitched_share"] >= 0.5 and m["pitch_to_noise_st"] <= 1, m
        assert abs(wait - silence) <= 10, (kind, snr, wait)
    shortest, longest = WAITS["high"]
    for kind, snr, silence, hz in (("hum", 10, 700, 60.0), ("white", 15, 500, 0.0)):
        wait, td = in_noise(kind, snr, silence, hz)
        gate = td.end_gate
        assert gate is not None and not gate[0], (kind, snr, hz, gate)
        m = dict(gate[1])
        assert m["snr_db"] < 32 and m["pitch_to_noise_st"] > 2, m
        low = silence + trust * (shortest - silence)
        high = silence + trust * (longest - silence)
        assert low - 10 <= wait <= high + 10 and wait != silence, (kind, snr, wait)
    white, _ = in_noise("white", 15)
    assert abs(white - (500 + trust * (shortest - 500))) <= 10, white
    assert voxwire.TurnDetector(engine="spectral").end_gate is None
