"""Resampler: lengths, streaming = one-shot, alignment, quality against soxr, bad input."""

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

import voxwire
from voxwire.errors import DTypeError, InvalidInputError, OddLengthError

RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000]
PAIRS = [(a, b) for a in RATES for b in RATES]


def tone(n: int, rate: int, f: float, dbfs: float = -1.0, phase: float = 0.0) -> np.ndarray:
    amp = 32767 * 10 ** (dbfs / 20)
    return amp * np.sin(2 * np.pi * f * np.arange(n) / rate + phase)


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def level_db(y: np.ndarray, rate: int, f: float) -> float:
    """Level (dBFS) of the component of y at exactly f: least-squares fit of sin and cos,
    so no FFT-bin scalloping."""
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return 20 * np.log10(max(np.hypot(*coef), 1e-12) / 32767)


def snr_db(y: np.ndarray, rate: int, f: float, dbfs: float) -> float:
    """SNR of y against the exact tone (amplitude and phase known), over its middle."""
    want = tone(len(y), rate, f, dbfs)
    mid = slice(len(y) // 10, len(y) - len(y) // 10)
    err = y[mid].astype(np.float64) - want[mid]
    return float(10 * np.log10(np.sum(want[mid] ** 2) / np.sum(err**2)))


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_length_and_dtype_for_every_pair(a: int, b: int) -> None:
    for n in (0, 1, 3, 441, 1000):
        x = as_int16(tone(n, a, 440))
        y = voxwire.resample(x, a, b)
        assert y.dtype == np.int16
        assert len(y) == round(n * b / a)
        yf = voxwire.resample(x.astype(np.float32) / 32768, a, b)
        assert yf.dtype == np.float32 and len(yf) == len(y)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([(24000, 16000), (16000, 24000), (44100, 16000), (8000, 48000), (48000, 8000)]),
    st.lists(st.integers(1, 2000), min_size=1, max_size=12),
    st.sampled_from(["hq", "lowlat"]),
    st.sampled_from(["int16", "float32", "bytes"]),
)
def test_streaming_is_bit_identical_to_one_shot(pair, cuts, quality, kind) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    x = as_int16(tone(sum(cuts), a, 997) + tone(sum(cuts), a, 3100, -20))
    src = x.astype(np.float32) / 32768 if kind == "float32" else x
    once = voxwire.resample(src if kind != "bytes" else x.tobytes(), a, b, quality=quality)
    r = voxwire.Resampler(a, b, quality=quality)
    parts = []
    pos = 0
    for n in cuts:
        chunk = src[pos : pos + n]
        parts.append(r.process(chunk.tobytes() if kind == "bytes" else chunk))
        pos += n
    parts.append(r.flush())
    got = np.concatenate(parts)
    assert got.dtype == once.dtype
    np.testing.assert_array_equal(got, once)


def test_flush_resets_and_reset_forgets() -> None:
    x = as_int16(tone(4800, 48000, 1000))
    r = voxwire.Resampler(48000, 16000)
    first = np.concatenate([r.process(x), r.flush()])
    second = np.concatenate([r.process(x), r.flush()])
    np.testing.assert_array_equal(first, second)
    r.process(x[:100])
    r.reset()
    np.testing.assert_array_equal(np.concatenate([r.process(x), r.flush()]), first)


def test_properties() -> None:
    r = voxwire.Resampler(24000, 16000)
    assert r.ratio == pytest.approx(2 / 3)
    assert (r.in_rate, r.out_rate, r.quality) == (24000, 16000, "hq")
    assert r.delay > 0
    for a, b in PAIRS:
        ll = voxwire.Resampler(a, b, quality="lowlat")
        assert ll.delay / b <= 0.002 + 1e-9, (a, b, ll.delay)


HQ_PAIRS = [
    (24000, 16000),
    (16000, 24000),
    (48000, 16000),
    (16000, 48000),
    (8000, 16000),
    (44100, 16000),
]


@pytest.mark.parametrize(("a", "b"), HQ_PAIRS)
def test_hq_snr_matches_soxr_hq(a: int, b: int) -> None:
    x = as_int16(tone(a, a, 1000))  # one second, -1 dBFS, int16 in
    ours = snr_db(voxwire.resample(x, a, b), b, 1000, -1)
    theirs = snr_db(soxr.resample(x, a, b, "HQ"), b, 1000, -1)
    assert ours >= theirs - 0.5, (ours, theirs)


@pytest.mark.parametrize(("a", "b"), HQ_PAIRS)
def test_hq_passband_is_flat(a: int, b: int) -> None:
    edge = 0.875 * min(a, b) / 2
    for f in np.linspace(50, edge, 12):
        x = as_int16(tone(a, a, f, -1))
        y = voxwire.resample(x, a, b)
        mid = y[len(y) // 10 : -len(y) // 10]
        # Fit on the middle, on the output timeline (phase free).
        gain = level_db(mid, b, f) - (-1.0)
        assert abs(gain) <= 0.1, (f, gain)


@pytest.mark.parametrize(("a", "b"), [p for p in HQ_PAIRS if p[0] > p[1]])
def test_hq_alias_rejection(a: int, b: int) -> None:
    out_nyq, in_nyq = b / 2, a / 2
    for f in np.linspace(out_nyq * 1.02, in_nyq * 0.98, 6):
        x = as_int16(tone(a, a, f, -1))
        y = voxwire.resample(x, a, b)[b // 10 : -b // 10]
        alias = abs(f - round(f / b) * b)  # folded into [0, b/2]
        rejection = -1.0 - level_db(y, b, alias)
        assert rejection >= 96, (f, alias, rejection)


@pytest.mark.parametrize(("a", "b"), [p for p in HQ_PAIRS if p[0] < p[1]])
def test_hq_image_rejection(a: int, b: int) -> None:
    for f in np.linspace(200, 0.875 * a / 2, 6):
        x = as_int16(tone(a, a, f, -1))
        y = voxwire.resample(x, a, b)[b // 10 : -b // 10]
        for k in range(1, b // a + 1):
            for img in (k * a - f, k * a + f):
                if a / 2 < img < b / 2:
                    rejection = -1.0 - level_db(y, b, img)
                    assert rejection >= 96, (f, img, rejection)


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        voxwire.Resampler(12345, 16000)
    with pytest.raises(InvalidInputError):
        voxwire.Resampler(16000, -1)
    with pytest.raises(InvalidInputError):
        voxwire.Resampler(16000, 24000, quality="best")
    r = voxwire.Resampler(16000, 24000)
    with pytest.raises(DTypeError):
        r.process(np.zeros(10, np.float64))
    with pytest.raises(DTypeError):
        r.process(np.zeros((2, 10), np.int16))
    with pytest.raises(OddLengthError):
        r.process(b"\x00\x01\x02")
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(10, np.float32)
        x[7] = bad
        with pytest.raises(InvalidInputError, match="index 7"):
            r.process(x)
    # The stream is unharmed by refused input.
    x = as_int16(tone(1600, 16000, 500))
    got = np.concatenate([r.process(x), r.flush()])
    np.testing.assert_array_equal(got, voxwire.resample(x, 16000, 24000))


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_interleaved_stereo_is_each_channel_resampled_as_mono(dtype: str) -> None:
    rng = np.random.default_rng(11)
    left = (rng.standard_normal(4801) * 5000).astype(np.int16)
    right = (np.sin(np.arange(4801) * 0.05) * 20000).astype(np.int16)
    inter = np.column_stack([left, right]).reshape(-1)
    if dtype == "float32":
        left, right, inter = (v.astype(np.float32) / 32768 for v in (left, right, inter))
    once = voxwire.resample(inter, 24000, 16000, channels=2)
    assert once.dtype == inter.dtype and len(once) == 2 * round(4801 * 16000 / 24000)
    np.testing.assert_array_equal(once[0::2], voxwire.resample(left, 24000, 16000))
    np.testing.assert_array_equal(once[1::2], voxwire.resample(right, 24000, 16000))
    r = voxwire.Resampler(24000, 16000, channels=2)
    assert r.channels == 2
    parts = [r.process(inter[i : i + 962]) for i in range(0, len(inter), 962)]
    np.testing.assert_array_equal(np.concatenate([*parts, r.flush()]), once)


def test_stereo_needs_whole_frames_and_a_sane_channel_count() -> None:
    r = voxwire.Resampler(16000, 8000, channels=2)
    with pytest.raises(InvalidInputError):
        r.process(np.zeros(3, np.int16))
    with pytest.raises(InvalidInputError):
        voxwire.resample(np.zeros(5, np.int16), 16000, 8000, channels=2)
    for bad in (0, 9, -1):
        with pytest.raises(InvalidInputError):
            voxwire.Resampler(16000, 8000, channels=bad)


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize(("a", "b"), [(24000, 16000), (16000, 24000), (44100, 48000)])
def test_threaded_one_shot_is_bit_identical_to_one_thread_and_to_streaming(
    a: int, b: int, dtype: str
) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(400_003) * 6000).astype(np.int16)
    if dtype == "float32":
        x = x.astype(np.float32) / 32768  # type: ignore[assignment]
    one = voxwire.resample(x, a, b, threads=1)
    for threads in (2, 3, None):
        np.testing.assert_array_equal(voxwire.resample(x, a, b, threads=threads), one)
    r = voxwire.Resampler(a, b)
    parts = [r.process(x[i : i + 9601]) for i in range(0, len(x), 9601)]
    np.testing.assert_array_equal(np.concatenate([*parts, r.flush()]), one)
    with pytest.raises(InvalidInputError, match="threads"):
        voxwire.resample(x, a, b, threads=0)
