"""PCM16 helpers that need no Rust: numpy already does them without copying."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voxwire.errors import DTypeError, OddLengthError

_BytesLike = bytes | bytearray | memoryview


def as_pcm16(buf: _BytesLike | npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Return a read-only int16 view of little-endian PCM16 bytes, without copying.

    ``buf`` is any C-contiguous bytes-like object (bytes, bytearray, memoryview, mmap,
    array.array) or an int16 numpy array (returned as a read-only view). The view keeps
    ``buf`` alive. An odd byte count raises :class:`~voxwire.errors.OddLengthError`; a
    non-bytes-like object or a numpy array of another dtype raises
    :class:`~voxwire.errors.DTypeError`.
    """
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.int16:
            raise DTypeError(f"expected an int16 array or PCM16 bytes, got dtype {buf.dtype}")
        view = buf.view()
    else:
        try:
            mv = memoryview(buf)
        except TypeError as e:
            raise DTypeError(f"expected a bytes-like object, got {type(buf).__name__}") from e
        if mv.nbytes % 2:
            raise OddLengthError(f"PCM16 data must have an even number of bytes, got {mv.nbytes}")
        if not mv.c_contiguous:
            raise DTypeError("expected a C-contiguous buffer")
        view = np.frombuffer(mv.cast("B") if mv.format != "B" else mv, dtype="<i2")
    view.flags.writeable = False
    return view
