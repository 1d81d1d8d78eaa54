"""A drop-in for py-webrtcvad: ``import voxwire.webrtcvad as webrtcvad``.

``Vad(mode=0)``, ``Vad.set_mode``, ``Vad.is_speech(buf, sample_rate, length=None)``,
``valid_rate_and_frame_length(rate, frame_length)`` and ``Error`` behave as py-webrtcvad's,
and the decisions agree with it frame for frame at 8, 16 and 32 kHz. The detector runs in
Rust. Differences, on purpose: at 48 kHz the whole frame is classified (py-webrtcvad looks at
only its first 10 ms), and a negative mode raises ValueError (py-webrtcvad: SystemError).
"""

from __future__ import annotations

from voxwire._voxwire import WebRtcVad as Vad
from voxwire.errors import WebRtcVadError as Error

__all__ = ["Error", "Vad", "valid_rate_and_frame_length"]


def valid_rate_and_frame_length(rate: int, frame_length: int) -> bool:
    """Whether a frame of ``frame_length`` samples at ``rate`` Hz can be classified."""
    return Vad.valid_rate_and_frame_length(rate, frame_length)
