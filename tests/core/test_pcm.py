import array
import mmap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import voxwire
from voxwire.errors import DTypeError, InvalidInputError, OddLengthError

ALL = np.arange(-32768, 32768, dtype=np.int16)


def test_as_pcm16_is_a_readonly_view_without_copy() -> None:
    buf = bytearray(b"\x01\x00\xff\xff")
    v = voxwire.as_pcm16(buf)
    assert v.dtype == np.int16 and list(v) == [1, -1]
    assert not v.flags.writeable
    buf[0] = 7  # the view sees the caller's memory: no copy was made
    assert v[0] == 7
    for src in (bytes(buf), memoryview(buf), array.array("h", [7, -1]), np.array([7, -1], "<i2")):
        assert list(voxwire.as_pcm16(src)) == [7, -1]
    with mmap.mmap(-1, 4) as m:
        m.write(b"\x02\x00\x03\x00")
        assert list(voxwire.as_pcm16(m)) == [2, 3]


def test_as_pcm16_errors() -> None:
    with pytest.raises(OddLengthError):
        voxwire.as_pcm16(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        voxwire.as_pcm16(b"\x00")
    with pytest.raises(DTypeError):
        voxwire.as_pcm16(np.zeros(2, np.float32))
    with pytest.raises(TypeError):
        voxwire.as_pcm16("abcd")  # type: ignore[arg-type]


def test_float_roundtrip_exact_for_every_sample() -> None:
    f = voxwire.pcm16_to_float32(ALL)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, ALL.astype(np.float32) / 32768)
    np.testing.assert_array_equal(voxwire.float32_to_pcm16(f), ALL)


@pytest.mark.slow
@given(arrays(np.float32, st.integers(0, 300), elements=st.floats(width=32, allow_nan=True)))
def test_float_to_pcm16_saturates_never_wraps(x: np.ndarray) -> None:
    got = voxwire.float32_to_pcm16(x)
    with np.errstate(invalid="ignore", over="ignore"):
        want = np.clip(np.round(x.astype(np.float64) * 32768), -32768, 32767)
    want = np.where(np.isnan(x), 0, want).astype(np.int16)
    np.testing.assert_array_equal(got, want)


def test_float_special_values() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0, 1e30], np.float32)
    assert list(voxwire.float32_to_pcm16(x)) == [0, 32767, -32768, 32767, -32768, 32767]
    with pytest.raises(DTypeError):
        voxwire.float32_to_pcm16(np.zeros(3, np.float64))


@given(st.lists(st.integers(-32768, 32767), max_size=400).filter(lambda v: len(v) % 2 == 0))
def test_downmix(v: list[int]) -> None:
    x = np.array(v, np.int16)
    want = (x[0::2].astype(np.int32) + x[1::2]) / 2
    np.testing.assert_array_equal(voxwire.downmix_stereo(x), np.trunc(want).astype(np.int16))


def test_downmix_odd_count() -> None:
    with pytest.raises(InvalidInputError):
        voxwire.downmix_stereo(np.zeros(3, np.int16))


@given(
    st.lists(st.integers(-32768, 32767), max_size=300),
    st.floats(-60, 40, allow_nan=False),
)
def test_gain_saturates(v: list[int], db: float) -> None:
    x = np.array(v, np.int16)
    got = voxwire.apply_gain(x, db)
    factor = np.float32(10 ** (db / 20))
    want = np.clip(np.round(x.astype(np.float32) * factor), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(got, want)


def test_gain_rejects_non_finite() -> None:
    with pytest.raises(InvalidInputError):
        voxwire.apply_gain(np.zeros(2, np.int16), float("nan"))


def test_fast_paths_and_buffer_protocol_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = np.array([1, -2, 300, -32768], np.int16)
    want = voxwire.b64encode_pcm16(x.tobytes())
    mm = np.memmap(tmp_path / "pcm", dtype=np.int16, mode="w+", shape=(4,))
    mm[:] = x
    for src in (x, x.copy(order="C"), x.view(np.uint8), mm, memoryview(x), bytearray(x.tobytes())):
        assert voxwire.b64encode_pcm16(src) == want
    # Non-native byte order is refused (never silently read as little-endian).
    with pytest.raises(DTypeError):
        voxwire.b64encode_pcm16(x.astype(">i2"))
    with pytest.raises(DTypeError):
        voxwire.pcm16_to_float32(np.zeros(3, np.int32))
    # A 0-d int16 array is one sample.
    assert voxwire.pcm16_to_float32(np.array(16384, np.int16)).tolist() == [0.5]
