"""Hostile input to the Rust API (issue 19): each failure found by probing, provoked again.

Nothing here may panic into Python (pyo3's PanicException, a BaseException) or end the
process: unaligned arrays give the results of aligned ones, out-of-range sizes and times are
InvalidInputError, and buffers another thread writes give valid results or typed errors.
Constructors that used to abort the process or hang run in a subprocess, so an abort fails
the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import voxwire
import voxwire.g711
import voxwire.webrtcvad
from voxwire.errors import Base64DecodeError, InvalidInputError, VoxwireError

RNG = np.random.default_rng(19)


def unaligned(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A copy of ``x`` whose items start one byte past an aligned address."""
    buf = bytearray(x.nbytes + 1)
    y = np.frombuffer(buf, dtype=x.dtype, count=x.size, offset=1)
    y[:] = x
    assert not y.flags.aligned
    return y


def speech_like(n: int) -> npt.NDArray[np.int16]:
    t = np.arange(n) / 16000
    x = 8000 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (x + RNG.normal(0, 300, n)).astype(np.int16)


def same(a: object, b: object) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, list):
        assert isinstance(b, list)
        assert len(a) == len(b)
        for p, q in zip(a, b, strict=True):
            same(p, q)
    else:
        assert a == b


# Every public function and method that takes int16 audio, as f(x) -> result; each call
# builds its own objects, so the aligned and the unaligned call see the same state.
I16_CALLS: dict[str, Callable[[npt.NDArray[np.int16]], object]] = {
    "b64encode_pcm16": voxwire.b64encode_pcm16,
    "pcm16_to_float32": voxwire.pcm16_to_float32,
    "downmix_stereo": voxwire.downmix_stereo,
    "apply_gain": lambda x: voxwire.apply_gain(x, -6.0),
    "ulaw_encode": voxwire.g711.ulaw_encode,
    "alaw_encode": voxwire.g711.alaw_encode,
    "resample": lambda x: voxwire.resample(x, 16000, 24000),
    "resample_stereo": lambda x: voxwire.resample(x, 16000, 8000, channels=2),
    "Resampler.process": lambda x: voxwire.Resampler(16000, 48000).process(x),
    "Framer.push": lambda x: voxwire.Framer(160).push(x),
    "JitterBuffer.push": lambda x: _jitter_push(x),
    "Vad.is_speech": lambda x: voxwire.Vad("spectral", sample_rate=16000, frame_ms=10).is_speech(
        x[:160]
    ),
    "Vad.probability": lambda x: voxwire.Vad("energy", sample_rate=16000, frame_ms=10).probability(
        x[:160]
    ),
    "Vad.classify": lambda x: voxwire.Vad("webrtc", sample_rate=16000, frame_ms=10).classify(x),
    "WebRtcVad.is_speech": lambda x: voxwire.webrtcvad.Vad(2).is_speech(x[:320], 16000),
    "TurnDetector.push": lambda x: _turn_push(x),
    "InputPipeline.push": lambda x: _input_push(x),
    "OutputPipeline.push": lambda x: voxwire.OutputPipeline(in_rate=16000, out_rate=24000).push(x),
}


def _jitter_push(x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    jb = voxwire.JitterBuffer(16000, adaptive=False, prebuffer_ms=0)
    jb.push(x, 0.0)
    jb.mark_end()
    return np.concatenate([jb.pop(10.0 * i) for i in range(5)])


def _turn_push(x: npt.NDArray[np.int16]) -> list[object]:
    td = voxwire.TurnDetector(turn=voxwire.TurnConfig(silence_duration_ms=200))
    events: list[object] = td.push(x)
    return [*events, td.last_utterance()]


def _input_push(x: npt.NDArray[np.int16]) -> list[object]:
    p = voxwire.InputPipeline(in_rate=16000, turn=voxwire.TurnConfig(silence_duration_ms=200))
    events: list[object] = p.push(x)
    return [*events, p.buffered()[1]]


@pytest.mark.parametrize("n", [3200, 40000])  # the small-array path, and >= 64 KiB
@pytest.mark.parametrize("name", sorted(I16_CALLS))
def test_unaligned_int16_gives_the_aligned_result(name: str, n: int) -> None:
    x = speech_like(n)
    f = I16_CALLS[name]
    same(f(unaligned(x)), f(x.copy()))


F32_CALLS: dict[str, Callable[[npt.NDArray[np.float32]], object]] = {
    "float32_to_pcm16": voxwire.float32_to_pcm16,
    "resample": lambda x: voxwire.resample(x, 48000, 16000, threads=2),
    "Resampler.process": lambda x: voxwire.Resampler(24000, 16000).process(x),
    "Resampler.process_stereo": lambda x: voxwire.Resampler(24000, 16000, channels=2).process(x),
}


@pytest.mark.parametrize("n", [1000, 40000])
@pytest.mark.parametrize("name", sorted(F32_CALLS))
def test_unaligned_float32_gives_the_aligned_result(name: str, n: int) -> None:
    x = (speech_like(n) / 32768).astype(np.float32)
    f = F32_CALLS[name]
    same(f(unaligned(x)), f(x.copy()))


@pytest.mark.parametrize("decode", [voxwire.g711.ulaw_decode, voxwire.g711.alaw_decode])
def test_g711_decode_of_an_offset_uint8_view(decode: Callable[[Any], object]) -> None:
    codes = RNG.integers(0, 256, 1001).astype(np.uint8)
    view = np.frombuffer(bytearray(b"\0" + codes.tobytes()), np.uint8)[1:]
    same(decode(view), decode(codes.copy()))


def test_b64decode_of_unaligned_text() -> None:
    x = speech_like(999)
    text = voxwire.b64encode_pcm16(x)
    buf = np.frombuffer(bytearray(b"\0" + text), np.uint8)[1:]
    same(voxwire.b64decode_pcm16(buf), x)


# Each case: the constructor call, run alone in a fresh interpreter. It must raise
# InvalidInputError (an abort, a hang or a PanicException fails the test).
CONSTRUCTORS = [
    "voxwire.Framer(2**34)",
    "voxwire.Framer(2**70)",
    "voxwire.Framer(-1)",
    "voxwire.Vad('spectral', sample_rate=16000, frame_ms=2**31)",
    "voxwire.Vad('energy', sample_rate=16000, frame_ms=2**70)",
    "voxwire.Vad('spectral', sample_rate=4_000_000_000, frame_ms=1000)",
    "voxwire.Vad('spectral', sample_rate=1000, frame_ms=1000)",
    "voxwire.Vad('energy', sample_rate=1, frame_ms=1000)",
    "voxwire.TurnConfig(prefix_padding_ms=2**31)",
    "voxwire.TurnConfig(silence_duration_ms=2**40)",
    "voxwire.TurnConfig(stop_secs=1e12)",
    "voxwire.TurnConfig(start_secs=1e300)",
    "voxwire.TurnConfig(prefix_padding_ms=-(2**70))",
    "voxwire.TurnDetector(sample_rate=4_000_000_000, frame_ms=1000)",
    "voxwire.InputPipeline(frame_ms=2**31)",
    "voxwire.InputPipeline(max_buffer_ms=2**40)",
    "voxwire.InputPipeline(max_buffer_ms=3_600_001)",
    "voxwire.InputPipeline(turn=voxwire.TurnConfig(prefix_padding_ms=10**6))",
    "voxwire.InputPipeline(vad_rate=2**33)",
    "voxwire.InputPipeline(in_rate=-1)",
    "voxwire.JitterBuffer(2**40)",
    "voxwire.JitterBuffer(16000, max_ms=2**40)",
    "voxwire.JitterBuffer(16000, frame_ms=2**31)",
    "voxwire.JitterBuffer(16000, prebuffer_ms=2**63)",
    "voxwire.Resampler(2**40, 16000)",
    "voxwire.Resampler(16000, 24000, channels=2**70)",
    "voxwire.resample(b'', 16000, 24000, threads=2**70)",
    "voxwire.OutputPipeline(in_rate=2**63)",
    "voxwire.webrtcvad.Vad(2**64)",
]

CHILD = """
import sys, voxwire, voxwire.webrtcvad
from voxwire.errors import InvalidInputError
try:
    {call}
except InvalidInputError as e:
    print("InvalidInputError:", e)
    sys.exit(0)
print("no error")
sys.exit(3)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("call", CONSTRUCTORS)
def test_constructor_bounds_refuse_without_abort_or_hang(call: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD.format(call=call)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    assert r.stdout.startswith("InvalidInputError:")


def test_bounds_at_their_maxima_are_accepted() -> None:
    assert voxwire.Framer(2**22).frame_samples == 2**22
    assert voxwire.Vad("energy", sample_rate=192000, frame_ms=1000).frame_samples == 192000
    assert voxwire.Vad("spectral", sample_rate=8000, frame_ms=1).frame_samples == 8
    td = voxwire.TurnDetector(
        turn=voxwire.TurnConfig(prefix_padding_ms=60000, silence_duration_ms=60000, start_secs=60)
    )
    assert not td.speaking
    voxwire.InputPipeline(max_buffer_ms=3_600_000)
    voxwire.JitterBuffer(48000, max_ms=600_000, prebuffer_ms=600_000)


def test_input_pipeline_audio_clamps_any_range() -> None:
    p = voxwire.InputPipeline(in_rate=16000, encoding="raw", turn_detection=False)
    x = speech_like(16000)  # 1 s
    p.push(x.tobytes())
    same(p.audio(0, 2**63 - 1), x)
    same(p.audio(-5, 10), x[:160])
    same(p.audio(250, 2**100), x[4000:])
    assert p.audio(10**6, 10**7).size == 0
    assert p.audio(2**64, 2**65).size == 0
    assert p.audio(500, 100).size == 0
    p.discard_until(2**80)
    assert p.buffered()[1].size == 0
    p.push(x[:160].tobytes())
    same(p.buffered()[1], x[:160])


N_DECODES = 300


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_b64decode_while_another_thread_flips_the_padding() -> None:
    # Long enough that a decode without the GIL (as it was) lasts long enough for the other
    # thread to run during it. 2**22 bytes: the text ends in "==", and the last quantum's
    # variants decode to n or n + 1 samples, or to an odd byte count, or are not base64.
    n = 2**21
    x = speech_like(n)
    text = bytearray(voxwire.b64encode_pcm16(x))
    assert text.endswith(b"==")
    variants = [b"AA==", b"AAA=", b"AAAA", b"A===", b"=AA="]
    stop = threading.Event()

    def flip() -> None:
        i = 0
        while not stop.is_set() and i < 10**7:
            text[-4:] = variants[i % len(variants)]
            i += 1

    t = threading.Thread(target=flip)
    t.start()
    ok = errors = 0
    try:
        for _ in range(N_DECODES):
            try:
                y = voxwire.b64decode_pcm16(text)
            except Base64DecodeError:
                errors += 1
            else:
                ok += 1
                assert y.size in (n, n + 1)
                np.testing.assert_array_equal(y[: n - 1], x[: n - 1])
    finally:
        stop.set()
        t.join(30)
    assert ok + errors == N_DECODES


@pytest.mark.timeout(120)
@pytest.mark.parametrize("streaming", [False, True])
def test_nan_written_by_another_thread_never_reaches_the_output(streaming: bool) -> None:
    x = (speech_like(48000) / 32768).astype(np.float32)  # 192 KiB
    stop = threading.Event()

    def poke() -> None:
        i = 0
        while not stop.is_set() and i < 10**7:
            x[(i * 7919) % x.size] = np.nan
            x[(i * 7919) % x.size] = 0.0
            i += 1

    t = threading.Thread(target=poke)
    t.start()
    ok = refused = 0
    try:
        for _ in range(60):
            try:
                if streaming:
                    r = voxwire.Resampler(48000, 16000)
                    y = np.concatenate([r.process(x), r.flush()])
                else:
                    y = voxwire.resample(x, 48000, 16000)
            except InvalidInputError:
                refused += 1
            else:
                ok += 1
                assert y.dtype == np.float32
                assert np.isfinite(y).all()
    finally:
        stop.set()
        t.join(30)
    assert ok + refused == 60


@pytest.mark.parametrize("bad", [1e18, -1e18, float("inf"), float("nan"), 1.0000001e13])
def test_jitter_buffer_refuses_a_wild_timestamp_and_stays_usable(bad: float) -> None:
    jb = voxwire.JitterBuffer(16000, adaptive=False, prebuffer_ms=0)
    x = speech_like(1600)
    jb.push(x[:800], 5.0)
    with pytest.raises(InvalidInputError):
        jb.push(x[800:], bad)
    with pytest.raises(InvalidInputError):
        jb.pop(bad)
    jb.push(x[800:], 6.0)
    jb.mark_end()
    out = np.concatenate([jb.pop(10.0 + 10 * i) for i in range(10)])
    same(out, x)
    assert jb.stats()["played_ms"] == pytest.approx(100.0)


def test_jitter_buffer_takes_unix_epoch_milliseconds() -> None:
    jb = voxwire.JitterBuffer(16000, adaptive=False, prebuffer_ms=0)
    t0 = 1.7e12
    x = speech_like(320)
    jb.push(x, t0)
    jb.mark_end()
    same(np.concatenate([jb.pop(t0 + 10), jb.pop(t0 + 20)]), x)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("AAAA\ud800", 4),
        ("AA\udfffAA", 2),
        ("\ud83d\ude00AAA", 0),  # a surrogate pair (no UTF-8 either)
        ("AAAé", 3),
        ("AA=\ud800", 2),
    ],
)
def test_b64decode_of_a_non_ascii_str_is_an_error_with_its_offset(text: str, offset: int) -> None:
    with pytest.raises(Base64DecodeError) as e:
        voxwire.b64decode_pcm16(text)
    assert e.value.offset == offset


def test_input_pipeline_refuses_a_surrogate_str_whole() -> None:
    p = voxwire.InputPipeline()
    p.push(voxwire.b64encode_pcm16(speech_like(480)).decode())
    before = (p.position_ms, p.buffered_ms)
    with pytest.raises(Base64DecodeError) as e:
        p.push("AAAA\ud800")
    assert e.value.offset == 4
    assert (p.position_ms, p.buffered_ms) == before


def test_oversized_ints_are_invalid_input_not_overflow() -> None:
    for make in (
        lambda: voxwire.Framer(2**100),
        lambda: voxwire.Vad("spectral", sample_rate=16000, frame_ms=-(2**100)),
        lambda: voxwire.Resampler(16000, 2**100),
        lambda: voxwire.webrtcvad.Vad(1).set_mode(2**100),
    ):
        with pytest.raises(InvalidInputError):
            make()


def test_internal_error_is_an_ordinary_exception() -> None:
    # What a panic at the binding boundary becomes: caught by `except Exception`.
    assert issubclass(voxwire.errors.InternalError, VoxwireError)
    assert issubclass(voxwire.errors.InternalError, Exception)
