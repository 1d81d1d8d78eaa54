"""The exceptions voxwire raises.

Every one derives from :class:`VoxwireError`; each is also the builtin that fits
(``ValueError`` for bad values, ``TypeError`` for wrong types), so code that already catches
those keeps working.
"""

from __future__ import annotations

__all__ = [
    "Base64DecodeError",
    "DTypeError",
    "InternalError",
    "InvalidInputError",
    "OddLengthError",
    "StoreUnavailableError",
    "VoxwireError",
    "WebRtcVadError",
]


class VoxwireError(Exception):
    """Base class of every voxwire error."""


class InvalidInputError(VoxwireError, ValueError):
    """An argument or input value outside what the function documents."""


class OddLengthError(InvalidInputError):
    """PCM16 bytes whose count is odd, so they do not hold whole samples."""


class Base64DecodeError(InvalidInputError):
    """Base64 text that is not strict standard-alphabet base64 with padding.

    ``offset`` is the index of the first offending character in the input (the input's length
    for a problem at its end, such as missing padding or an odd decoded byte count).
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset

    def __reduce__(self) -> tuple[type[Base64DecodeError], tuple[str, int]]:
        return (type(self), (str(self), self.offset))


class DTypeError(VoxwireError, TypeError):
    """An input of the wrong type or dtype (for example float64 where int16 is expected)."""


class InternalError(VoxwireError, RuntimeError):
    """A bug in voxwire: its Rust core panicked (no input should make it do so).

    The compiled module turns any panic into this exception at the boundary, so ``except
    Exception`` (and ``except VoxwireError``) catch it, unlike pyo3's ``PanicException``. The
    object whose method raised it may be left in any state: reset or drop it. Please report it.
    """


class WebRtcVadError(VoxwireError):
    """A frame the WebRTC VAD cannot classify (wrong rate or length).

    This is ``voxwire.webrtcvad.Error``, the counterpart of py-webrtcvad's error class.
    """


class StoreUnavailableError(VoxwireError):
    """The state store did not answer in time or cannot be reached (see ``voxwire.store``)."""
