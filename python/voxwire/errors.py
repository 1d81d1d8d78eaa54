"""The exceptions voxwire raises.

Every one derives from :class:`VoxwireError`; each is also the builtin that fits
(``ValueError`` for bad values, ``TypeError`` for wrong types), so code that already catches
those keeps working.
"""

from __future__ import annotations

__all__ = [
    "AudioFileError",
    "AuthError",
    "Base64DecodeError",
    "BufferFullError",
    "CommandError",
    "ConfigError",
    "DTypeError",
    "InputTooLargeError",
    "InternalError",
    "InvalidInputError",
    "OddLengthError",
    "OutputLimitError",
    "RateLimitedError",
    "StoreUnavailableError",
    "VoxwireError",
    "WebRtcVadError",
    "WorkerBusyError",
    "WorkerError",
    "WorkerTimeoutError",
]


class VoxwireError(Exception):
    """Base class of every voxwire error."""


class InvalidInputError(VoxwireError, ValueError):
    """An argument or input value outside what the function documents."""


class AudioFileError(InvalidInputError):
    """An audio file that cannot be read: missing, not audio, or in a form not supported.

    The message is one line and names the file.
    """


class CommandError(VoxwireError, RuntimeError):
    """A ``voxwire`` command failed: one line for the user, and the exit code to end with.

    ``code`` is one of :class:`voxwire.cli.ExitCode` (docs/cli.md lists them).
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[CommandError], tuple[str, int]]:
        return (type(self), (str(self), self.code))


class InputTooLargeError(InvalidInputError):
    """Input over a documented size limit; nothing was done with it.

    For example audio too long to transcribe or text too long to speak.
    """


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


class BufferFullError(InvalidInputError):
    """The input pipeline's buffer is full (``max_ms`` of audio): commit or clear it first."""

    def __init__(self, message: str, max_ms: int) -> None:
        super().__init__(message)
        self.max_ms = max_ms

    def __reduce__(self) -> tuple[type[BufferFullError], tuple[str, int]]:
        return (type(self), (str(self), self.max_ms))


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


class ConfigError(VoxwireError, ValueError):
    """A configuration file (``voxwire.toml``) or a file it points to that cannot be used.

    The message is one line: the file, the table or key, and what was expected there. It never
    holds the value of a secret (API keys, store URLs). ``path`` is the file (None for text
    parsed without one), ``where`` the table/key (``""`` for the whole file).
    """

    def __init__(self, path: str | None, where: str, problem: str) -> None:
        label = path if path is not None else "<config>"
        text = f"{label}: {where}: {problem}" if where else f"{label}: {problem}"
        super().__init__(" ".join(text.split()))
        self.path, self.where, self.problem = path, where, problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str | None, str, str]]:
        return (type(self), (self.path, self.where, self.problem))


class AuthError(VoxwireError, PermissionError):
    """A credential was refused (see :mod:`voxwire.auth`).

    ``reason`` is machine-readable, one of :data:`AUTH_REASONS`: ``"invalid"`` (malformed,
    bad signature, wrong password, unknown user: these are not told apart), ``"expired"``,
    ``"revoked"`` (a refresh family logged out or revoked, a removed user), ``"reused"`` (a
    refresh token presented a second time: its whole family is now revoked) or ``"unknown"``
    (no credential offered, or an API key nobody issued). The message never holds the secret.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        if reason not in AUTH_REASONS:
            raise ValueError(f"unknown AuthError reason {reason!r}")
        super().__init__(message or f"authentication failed ({reason})")
        self.reason = reason

    def __reduce__(self) -> tuple[type[AuthError], tuple[str, str]]:
        return (type(self), (self.reason, str(self)))


#: The values of :attr:`AuthError.reason`.
AUTH_REASONS = frozenset({"invalid", "expired", "revoked", "reused", "unknown"})


class WorkerError(VoxwireError, RuntimeError):
    """Work done in a worker process or subprocess (ASR, TTS) failed.

    The worker could not start, died, or the work itself raised (see :mod:`voxwire.workers`).
    """


class WorkerTimeoutError(WorkerError, TimeoutError):
    """A worker took longer than its time limit; it was killed (and is replaced on demand)."""


class WorkerBusyError(WorkerError):
    """Every worker is busy and the queue of waiting calls is full: refused at once."""


class OutputLimitError(WorkerError):
    """A worker produced more output than its limit allows; it was killed."""


class RateLimitedError(VoxwireError):
    """Too many requests in a window (a rate limit held in the store, across processes).

    ``retry_after_s`` is when the window has room again.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[RateLimitedError], tuple[str, float]]:
        return (type(self), (str(self), self.retry_after_s))
