import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # stdlib up to 3.12
    except ImportError:  # 3.13+: the audioop-lts backport (test extra)
        import audioop  # type: ignore[no-redef]
from hypothesis import given
from hypothesis import strategies as st

import voxwire
from voxwire import g711
from voxwire.errors import DTypeError, OddLengthError

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    ("ours", "theirs"), [(g711.ulaw_encode, audioop.lin2ulaw), (g711.alaw_encode, audioop.lin2alaw)]
)
def test_encode_bit_exact_on_every_sample(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    want = theirs(ALL_SAMPLES.tobytes(), 2)
    assert ours(ALL_SAMPLES) == want
    assert ours(ALL_SAMPLES.tobytes()) == want


@pytest.mark.parametrize(
    ("ours", "theirs"), [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)]
)
def test_decode_bit_exact_on_every_code(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    got = ours(ALL_CODES)
    assert got.dtype == np.int16
    assert got.tobytes() == theirs(ALL_CODES, 2)
    np.testing.assert_array_equal(ours(np.frombuffer(ALL_CODES, np.uint8)), got)


@given(st.binary(max_size=5000))
def test_decode_any_length_matches(codes: bytes) -> None:
    assert g711.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)


def test_code_roundtrip_is_identity() -> None:
    # decode then encode returns every code (mu-law's negative zero 0x7F becomes 0xFF).
    back = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    assert back == bytes(c if c != 0x7F else 0xFF for c in ALL_CODES)
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_bad_input() -> None:
    with pytest.raises(OddLengthError):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(DTypeError):
        g711.alaw_encode(np.zeros(3, np.float32))
    with pytest.raises(DTypeError):
        g711.ulaw_decode(np.zeros(3, np.int16))
    assert voxwire.g711.ulaw_encode(b"") == b""
    assert g711.alaw_decode(b"").shape == (0,)
