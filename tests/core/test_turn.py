"""TurnDetector: events on the audio timeline, no split on short pauses, utterance audio."""

import json
import wave
from pathlib import Path

import numpy as np
import pytest

import voxwire
from voxwire import SpeechStarted, SpeechStopped
from voxwire.errors import InvalidInputError

RATE = 16000
VAD_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "vad-dev"


def voiced(seconds: float, f0: float = 140.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 10)) * 5000


def signal(parts: list[tuple[str, float]]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenates ("speech"|"gap", seconds) parts over a quiet noise floor; returns the
    signal and the true (start, end) of each speech part, in ms."""
    rng = np.random.default_rng(5)
    out, spans, t = [], [], 0.0
    for kind, sec in parts:
        x = voiced(sec) if kind == "speech" else np.zeros(int(RATE * sec))
        if kind == "speech":
            spans.append((t * 1000, (t + sec) * 1000))
        out.append(x)
        t += sec
    x = np.concatenate(out) + rng.standard_normal(int(RATE * t)) * 30
    return np.clip(x, -32768, 32767).astype(np.int16), spans


def run(td: voxwire.TurnDetector, x: np.ndarray, chunk: int = 320) -> list[object]:
    events: list[object] = []
    for i in range(0, len(x), chunk):
        events += td.push(x[i : i + chunk])
    return events


def test_events_on_the_audio_timeline() -> None:
    x, spans = signal([("gap", 1.0), ("speech", 1.2), ("gap", 1.5), ("speech", 0.8), ("gap", 1.2)])
    td = voxwire.TurnDetector(engine="spectral", turn=voxwire.TurnConfig(silence_duration_ms=500))
    ev = run(td, x, chunk=333)  # chunks that do not align with frames
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped] * 2
    for (start, end), (a, b) in zip(spans, zip(ev[0::2], ev[1::2], strict=True), strict=True):
        assert isinstance(a, SpeechStarted) and isinstance(b, SpeechStopped)
        assert abs(a.audio_start_ms - start) <= 30, (a, start)
        assert abs(b.audio_end_ms - end) <= 30, (b, end)
        assert abs(b.emitted_at_ms - (end + 500)) <= 30, (b, end)


def test_no_split_on_short_pauses_and_split_on_long_ones() -> None:
    # The pause rule alone: Silero takes the synthetic tone for speech only for its first
    # 100-200 ms when it comes again 0.8 s later (under the default start_secs), and hears it
    # again once its state is cleared in the quiet that follows (vad_reset_ms).
    x, _ = signal([("gap", 1.0), ("speech", 0.7), ("gap", 0.3), ("speech", 0.7), ("gap", 1.0)])
    quiet_tone = voxwire.TurnConfig(silence_duration_ms=500, start_secs=0.0, vad_reset_ms=0)
    ev = run(voxwire.TurnDetector(turn=quiet_tone), x)
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped]
    x, _ = signal([("gap", 1.0), ("speech", 0.7), ("gap", 0.8), ("speech", 0.7), ("gap", 1.0)])
    ev = run(voxwire.TurnDetector(turn=quiet_tone), x)
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped] * 2


def assert_gate_ends_the_turn(y: np.ndarray, speech_end_ms: float) -> None:
    """With the 35 dB end gate the one turn in `y` ends within 30 ms of the speech's end;
    with the gate off it ends at least 100 ms later (held open by the faint tail)."""
    y16 = np.clip(y, -32768, 32767).astype(np.int16)
    stops = {}
    for gate in (35.0, 0.0):
        ev = run(
            voxwire.TurnDetector(
                engine="spectral",
                turn=voxwire.TurnConfig(silence_duration_ms=500, end_gate_db=gate),
            ),
            y16,
        )
        stop = [e for e in ev if isinstance(e, SpeechStopped)]
        assert len(stop) == 1
        stops[gate] = stop[0].audio_end_ms
    assert abs(stops[35.0] - speech_end_ms) <= 30, stops
    assert stops[0.0] - speech_end_ms >= 100, stops


def test_end_gate_ends_the_turn_at_the_speech_not_at_its_faint_echo() -> None:
    """A decaying tail 40-60 dB under the voice (room echo in a quiet room) keeps the VAD
    saying speech; the 35 dB end gate ends the turn where the voice ends, gate 0 does not."""
    x, spans = signal([("gap", 1.0), ("speech", 1.0), ("gap", 1.5)])
    end = int(spans[0][1] * RATE / 1000)
    tail = voiced(0.4)[: int(0.4 * RATE)] * np.geomspace(10**-2, 10**-3, int(0.4 * RATE))
    y = x.astype(np.float64)
    y[end : end + len(tail)] += tail
    assert_gate_ends_the_turn(y, spans[0][1])
    with pytest.raises(InvalidInputError):
        voxwire.TurnDetector(turn=voxwire.TurnConfig(end_gate_db=-1.0))


def test_end_gate_sees_through_hum_louder_than_the_gate() -> None:
    """Under steady mains hum (60 Hz and harmonics) 20 dB under the voice, every frame's
    energy is within 35 dB of the loudest, so a gate on frame energy could never act; the
    gate measures the energy above the noise heard before the turn, and still ends the turn
    where the voice ends rather than where its faint tail (36-56 dB under it) does."""
    x, spans = signal([("gap", 1.5), ("speech", 1.0), ("gap", 1.5)])
    end = int(spans[0][1] * RATE / 1000)
    t = np.arange(len(x)) / RATE
    hum = sum(np.sin(2 * np.pi * 60 * k * t) / k for k in range(1, 8))
    hum *= np.sqrt(np.mean(voiced(1.0) ** 2)) * 0.1 / np.sqrt(np.mean(hum**2))
    tail = voiced(0.4) * np.geomspace(10 ** (-36 / 20), 10 ** (-56 / 20), int(0.4 * RATE))
    y = x + hum
    y[end : end + len(tail)] += tail
    assert_gate_ends_the_turn(y, spans[0][1])


def test_utterance_holds_prefix_speech_and_silence() -> None:
    x, _ = signal([("gap", 1.0), ("speech", 1.0), ("gap", 1.0)])
    td = voxwire.TurnDetector(
        turn=voxwire.TurnConfig(prefix_padding_ms=300, silence_duration_ms=500)
    )
    ev = run(td, x)
    stop = ev[-1]
    assert isinstance(stop, SpeechStopped)
    u = td.last_utterance()
    start_ms = ev[0].audio_start_ms  # type: ignore[attr-defined]
    assert len(u) == (stop.emitted_at_ms - start_ms + 300) * RATE // 1000
    first = (start_ms - 300) * RATE // 1000
    np.testing.assert_array_equal(u, x[first : first + len(u)])


def test_start_secs_ignores_short_blips_and_reset() -> None:
    x, _ = signal([("gap", 1.0), ("speech", 0.1), ("gap", 1.0), ("speech", 0.6), ("gap", 1.0)])
    ev = run(
        voxwire.TurnDetector(
            engine="spectral", turn=voxwire.TurnConfig(start_secs=0.2, stop_secs=0.5)
        ),
        x,
    )
    assert [type(e) for e in ev] == [SpeechStarted, SpeechStopped]
    assert ev[0].audio_start_ms > 2000  # type: ignore[attr-defined]
    td = voxwire.TurnDetector(engine="spectral")
    run(td, x[:24000])
    assert td.position_ms == 1500
    td.reset()
    assert td.position_ms == 0 and not td.speaking
    assert run(td, x) == run(voxwire.TurnDetector(engine="spectral"), x)


def test_min_volume_and_bad_config() -> None:
    x, _ = signal([("gap", 1.0), ("speech", 0.6), ("gap", 1.0)])
    x = (x // 20).astype(np.int16)  # about -40 dBFS
    # start_secs=0: Silero hears this faint synthetic tone as speech for only about 100 ms.
    faint = voxwire.TurnConfig(min_volume=0.5, start_secs=0.0)
    assert run(voxwire.TurnDetector(turn=faint), x) == []
    assert len(run(voxwire.TurnDetector(turn=faint.replace(min_volume=0.1)), x)) == 2
    for kw in (
        {"threshold": 1.5},
        {"min_volume": -0.1},
        {"silence_duration_ms": -1},
        {"start_secs": float("nan")},
    ):
        with pytest.raises(InvalidInputError):
            voxwire.TurnConfig(**kw)  # type: ignore[arg-type]
    for kw in ({"engine": "nope"}, {"sample_rate": 12345, "engine": "webrtc"}):
        with pytest.raises(InvalidInputError):
            voxwire.TurnDetector(**kw)  # type: ignore[arg-type]


# Turns (of 15) whose SpeechStopped must come within 30 ms of silence_duration_ms after the
# labelled end: what is achieved now (clean 15, white, pink and ALSA 14, hum 14 at both
# levels; before the high-band fricative cue white 12, pink 13, ALSA 13), less one where
# there is room.
TIMING_MIN_HITS = {
    "clean": 15,
    "white_20dB": 13,
    "pink_20dB": 13,
    "alsa_noise_20dB": 13,
    "hum_20dB": 13,
    "hum_10dB": 13,
}


@pytest.mark.skipif(not VAD_DEV.is_dir(), reason="../shared/data/vad-dev is not beside this clone")
@pytest.mark.parametrize("condition", list(TIMING_MIN_HITS))
def test_speech_stopped_timing_on_vad_dev(condition: str) -> None:
    """SpeechStopped comes silence_duration_ms after the labelled end of speech, +-30 ms,
    for at least TIMING_MIN_HITS[condition] of the 15 turns. In the clean condition the end
    gate (35 dB under the turn's loudest frame) keeps utterance tails, which the labels count
    as silence, from holding turns open (without it: 8/15, up to 240 ms late). Under hum,
    which is louder than the gate, the gate measures only the energy above the noise heard
    before the turn (it used to be 8/15 at 20 dB, up to 90 ms late). In white, pink and ALSA
    noise, turns used to end 40-80 ms early (12, 13 and 13 of 15) where the labels count a
    faint final fricative (after a gap under 150 ms) at or under the noise in the VAD's
    100-4000 Hz band; the turn detector now also continues a turn, up to 250 ms after its
    last voiced frame, on a frame whose 4-8 kHz energy is twice that band's noise before the
    turn and within 28 dB of the turn's peak, which finds them (14 of 15 each; clean timing
    unchanged). The one miss left in every condition (40-50 ms early) is a faint voiced tail,
    33-43 dB under the utterance's peak, with little above 4 kHz: masked by the noise in
    the VAD's band, or by the hum."""
    labels = np.load(VAD_DEV / "labels.npy").astype(bool)
    assert json.loads((VAD_DEV / "meta.json").read_text())["frame_ms"] == 10
    with wave.open(str(VAD_DEV / f"{condition}.wav")) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    silence = 500
    td = voxwire.TurnDetector(
        engine="spectral", turn=voxwire.TurnConfig(silence_duration_ms=silence)
    )
    stops = [e.emitted_at_ms for e in run(td, x, 480) if isinstance(e, SpeechStopped)]
    # Labelled ends followed by more than the silence duration (+ 100 ms) of non-speech.
    ends = []
    for i in np.nonzero(labels[:-1] & ~labels[1:])[0]:
        nxt = np.nonzero(labels[i + 1 :])[0]
        gap = (nxt[0] if len(nxt) else len(labels) - i - 1) * 10
        if gap > silence + 100:
            ends.append((i + 1) * 10)
    assert len(ends) == 15
    hits = sum(any(abs(s - (e + silence)) <= 30 for s in stops) for e in ends)
    assert hits >= TIMING_MIN_HITS[condition], (hits, len(ends))


def test_vad_reset_clears_silero_state_only_while_quiet() -> None:
    """Silero gets used to a sustained tone and stops calling it speech within 200 ms;
    with vad_reset_ms its state is cleared in the quiet that follows (3 s after the stream
    began), and it hears the tone again. Without it, or with a period longer than the
    stream, it does not. The spectral engine has no such state: the setting changes nothing."""
    x, spans = signal([("gap", 1.0), ("speech", 0.7), ("gap", 0.8), ("speech", 0.7), ("gap", 1.0)])

    def starts(**kw: float) -> list[int]:
        td = voxwire.TurnDetector(turn=voxwire.TurnConfig(start_secs=0.0, **kw))  # type: ignore[arg-type]
        return [e.audio_start_ms for e in run(td, x) if isinstance(e, SpeechStarted)]

    plain = starts(vad_reset_ms=0)
    assert len(plain) == 2
    assert starts(vad_reset_ms=60000) == plain
    again = starts(vad_reset_ms=3000)
    assert again[:2] == plain and len(again) == 3
    assert 3000 <= again[2] < spans[1][1], again
    spectral = [
        run(voxwire.TurnDetector("spectral", turn=voxwire.TurnConfig(vad_reset_ms=ms)), x)
        for ms in (0, 3000, 100)
    ]
    assert spectral[0] == spectral[1] == spectral[2] and len(spectral[0]) == 4
    for bad in (-1, 60001):
        with pytest.raises(InvalidInputError):
            voxwire.TurnConfig(vad_reset_ms=bad)
