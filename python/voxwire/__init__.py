"""voxwire: the audio engine of realtime voice agents.

A Rust core, driven from Python, for what sits between a WebSocket and a voice agent:
PCM16 views and conversions, fixed-size framing, strict base64 straight to and from int16,
G.711, and streaming sample-rate conversion between the common voice rates. Every function
reads any bytes-like object or numpy array without copying and writes its result straight
into the array or bytes it returns.

Errors are in :mod:`voxwire.errors`; G.711 is in :mod:`voxwire.g711`; a drop-in for
py-webrtcvad is :mod:`voxwire.webrtcvad`; the ``Literal`` types of the string options
(``VadEngine``, ``Quality``, ...) are in :mod:`voxwire.types`, re-exported here.
"""

from __future__ import annotations

from voxwire import errors, g711, types, webrtcvad
from voxwire._pcm import as_pcm16
from voxwire._voxwire import (
    Framer,
    InputPipeline,
    JitterBuffer,
    OutputPipeline,
    Resampler,
    SpeechStarted,
    SpeechStopped,
    TurnConfig,
    TurnDetector,
    Vad,
    apply_gain,
    b64decode_pcm16,
    b64encode_pcm16,
    downmix_stereo,
    float32_to_pcm16,
    pcm16_to_float32,
    resample,
)
from voxwire.types import AudioFormat, Eagerness, Encoding, EndMode, Quality, VadEngine


def _version() -> str:
    """The installed distribution's version (Cargo's, through maturin); the build's otherwise."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voxwire")
    except PackageNotFoundError:  # a source tree on sys.path
        from voxwire._voxwire import __version__ as built

        return built


__version__ = _version()

__all__ = [
    "AudioFormat",
    "Eagerness",
    "Encoding",
    "EndMode",
    "Framer",
    "InputPipeline",
    "JitterBuffer",
    "OutputPipeline",
    "Quality",
    "Resampler",
    "SpeechStarted",
    "SpeechStopped",
    "TurnConfig",
    "TurnDetector",
    "Vad",
    "VadEngine",
    "__version__",
    "apply_gain",
    "as_pcm16",
    "b64decode_pcm16",
    "b64encode_pcm16",
    "downmix_stereo",
    "errors",
    "float32_to_pcm16",
    "g711",
    "pcm16_to_float32",
    "resample",
    "types",
    "webrtcvad",
]
