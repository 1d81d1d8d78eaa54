import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import voxwire
from voxwire.errors import DTypeError, InvalidInputError, OddLengthError


def run(frame: int, data: bytes, cuts: list[int], as_array: bool) -> np.ndarray:
    f = voxwire.Framer(frame)
    out = []
    pos = 0
    for n in [*cuts, len(data)]:
        chunk = data[pos : pos + n]
        pos += len(chunk)
        if as_array and len(chunk) % 2 == 0 and not f.pending_byte:
            frames = f.push(np.frombuffer(chunk, "<i2"))
        else:
            frames = f.push(chunk)
        assert frames.dtype == np.int16 and frames.shape[1:] == (frame,)
        out.extend(frames)
        if pos >= len(data):
            break
    tail = f.flush(pad=False)
    assert f.pending == 0
    return np.concatenate([*out, tail]) if out or len(tail) else np.zeros(0, np.int16)


@given(
    st.integers(1, 400),
    st.binary(max_size=4000).filter(lambda b: len(b) % 2 == 0),
    st.lists(st.integers(0, 700), max_size=30),
    st.booleans(),
)
def test_chunking_invariant(frame: int, data: bytes, cuts: list[int], as_array: bool) -> None:
    np.testing.assert_array_equal(run(frame, data, cuts, as_array), np.frombuffer(data, "<i2"))


def test_frames_shape_and_padding() -> None:
    f = voxwire.Framer(320)
    x = np.arange(1000, dtype=np.int16)
    frames = f.push(x)
    assert frames.shape == (3, 320)
    assert f.pending == 40
    tail = f.flush()
    assert tail.shape == (320,)
    np.testing.assert_array_equal(tail[:40], x[960:])
    assert not tail[40:].any()
    assert f.flush().shape == (0,)


def test_half_sample_waits_and_errors() -> None:
    f = voxwire.Framer(2)
    assert f.push(b"\x01\x00\x02").shape == (0, 2)
    assert f.pending_byte and f.pending == 1
    with pytest.raises(InvalidInputError):
        f.push(np.array([5], np.int16))
    with pytest.raises(OddLengthError):
        f.flush()
    assert f.pending_byte  # flush changed nothing
    assert f.push(b"\x00").tolist() == [[1, 2]]
    f.push(b"\x09")
    f.reset()
    assert not f.pending_byte and f.pending == 0


def test_bad_arguments() -> None:
    for n in (0, -5):
        with pytest.raises(InvalidInputError):
            voxwire.Framer(n)
    f = voxwire.Framer(4)
    with pytest.raises(DTypeError):
        f.push(np.zeros(4, np.float32))
    with pytest.raises(DTypeError):
        f.push([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(DTypeError):
        f.push(np.zeros(8, np.int16)[::2])  # not contiguous
