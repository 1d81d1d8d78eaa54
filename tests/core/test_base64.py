import base64
import binascii

import numpy as np
import pybase64
import pytest
from hypothesis import given
from hypothesis import strategies as st

import voxwire
from voxwire.errors import Base64DecodeError, DTypeError, InvalidInputError, VoxwireError

int16_arrays = st.lists(st.integers(-32768, 32767), max_size=2000).map(
    lambda v: np.array(v, dtype=np.int16)
)


@given(int16_arrays)
def test_roundtrip_is_identity(x: np.ndarray) -> None:
    text = voxwire.b64encode_pcm16(x)
    assert text == base64.b64encode(x.tobytes())
    back = voxwire.b64decode_pcm16(text.decode())
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(voxwire.b64decode_pcm16(text), x)


@given(st.binary(max_size=3000).filter(lambda b: len(b) % 2 == 0))
def test_decode_matches_stdlib(raw: bytes) -> None:
    s = base64.b64encode(raw)
    for data in (s, s.decode(), bytearray(s), memoryview(s), np.frombuffer(s, np.uint8)):
        np.testing.assert_array_equal(voxwire.b64decode_pcm16(data), np.frombuffer(raw, "<i2"))


def test_encode_accepts_bytes_like_and_matches_pybase64() -> None:
    x = np.arange(-1000, 1000, 7, dtype=np.int16)
    for src in (x, x.tobytes(), bytearray(x.tobytes()), memoryview(x.tobytes())):
        assert voxwire.b64encode_pcm16(src) == pybase64.b64encode(x.tobytes())


def test_large_input_releases_nothing_wrong() -> None:
    # Above the GIL-release threshold: same answer as below it.
    x = np.random.default_rng(1).integers(-32768, 32767, 2_880_000).astype(np.int16)
    s = voxwire.b64encode_pcm16(x)
    assert s == base64.b64encode(x.tobytes())
    np.testing.assert_array_equal(voxwire.b64decode_pcm16(s), x)


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ("AAAA!AAA", 4, "alphabet"),
        ("AAAA AAA", 4, "whitespace"),
        ("AAAAAAA", 7, "multiple of 4"),
        ("AA=AAAAA", 2, "padding"),
        ("AAAAA===", 5, "padding"),
        ("AAAAAB==", 5, "non-canonical"),
        ("AA==", 4, "odd number of bytes"),
        ("AAAAAé==", 5, "alphabet"),
    ],
)
def test_bad_input_names_problem_and_offset(text: str, offset: int, words: str) -> None:
    with pytest.raises(Base64DecodeError) as info:
        voxwire.b64decode_pcm16(text)
    assert info.value.offset == offset
    assert words in str(info.value)
    assert f"offset {offset}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, VoxwireError)


@given(st.binary(min_size=1, max_size=64))
def test_random_text_is_decoded_or_refused_like_stdlib(raw: bytes) -> None:
    try:
        want = base64.b64decode(raw, validate=True)
        ok = len(want) % 2 == 0 and base64.b64encode(want) == raw  # canonical only
    except (binascii.Error, ValueError):
        ok = False
    if ok:
        np.testing.assert_array_equal(voxwire.b64decode_pcm16(raw), np.frombuffer(want, "<i2"))
    else:
        with pytest.raises(Base64DecodeError) as info:
            voxwire.b64decode_pcm16(raw)
        assert 0 <= info.value.offset <= len(raw)


def test_wrong_types() -> None:
    with pytest.raises(DTypeError):
        voxwire.b64decode_pcm16(np.zeros(4, np.float32))
    with pytest.raises(DTypeError):
        voxwire.b64decode_pcm16(1234)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        voxwire.b64encode_pcm16(np.zeros(4, np.float64))
    with pytest.raises(DTypeError):
        voxwire.b64encode_pcm16(np.zeros((2, 2), np.int16))
    with pytest.raises(InvalidInputError):
        voxwire.b64encode_pcm16(b"\x00\x01\x02")


def test_error_pickles_with_offset() -> None:
    import pickle

    try:
        voxwire.b64decode_pcm16("AB!D")
    except Base64DecodeError as e:
        again = pickle.loads(pickle.dumps(e))
        assert again.offset == 2 and str(again) == str(e)
