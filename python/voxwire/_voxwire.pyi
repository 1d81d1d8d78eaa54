"""Type stubs of the compiled core, voxwire._voxwire (checked with mypy.stubtest)."""

from typing import Any, Self, TypedDict, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

from voxwire.types import AudioFormat, Eagerness, Encoding, EndMode, Quality, VadEngine

__all__ = [
    "END_FEATURE_NAMES",
    "END_GATE_NAMES",
    "END_NOISY_TRUST",
    "Framer",
    "InputPipeline",
    "JitterBuffer",
    "OutputPipeline",
    "Resampler",
    "SpeechStarted",
    "SpeechStopped",
    "TurnConfig",
    "TurnDetector",
    "Vad",
    "WebRtcVad",
    "__version__",
    "alaw_decode",
    "alaw_encode",
    "apply_gain",
    "b64decode_pcm16",
    "b64encode_pcm16",
    "downmix_stereo",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
]
__version__: str
#: Names of the semantic end rule's features (``TurnDetector.end_features``), in order.
END_FEATURE_NAMES: list[str]
#: Names of the semantic rule's reliability gate measures (``TurnDetector.end_gate``).
END_GATE_NAMES: list[str]
#: How far a pause the gate distrusts for its SNR alone (not tonal noise) moves from
#: ``silence_duration_ms`` towards the semantic judgement's wait (0: not at all, 1: all the way).
END_NOISY_TRUST: float

# What the functions read: any buffer (bytes, bytearray, memoryview, mmap, array.array) or a
# numpy array (numpy's own stubs do not declare ndarray a Buffer). Unaligned int16/float32
# arrays are copied (results as for aligned input); buffers other than bytes are read with the
# GIL held, or copied first where the work releases it, so another thread cannot change them
# mid-call. A panic in the core would raise voxwire.errors.InternalError (an Exception).
_In = Buffer | np.ndarray[Any, Any]
# What comes back as int16 from the resamplers: int16 arrays and PCM16 bytes.
_I16In = Buffer | npt.NDArray[np.int16]

def b64decode_pcm16(data: str | Buffer) -> npt.NDArray[np.int16]:
    """Decode strict padded base64 (str or bytes-like) straight into int16 samples.

    Any non-ASCII character (a lone surrogate included) is a Base64DecodeError at its index.
    """

def b64encode_pcm16(x: _In) -> bytes:
    """Encode PCM16 (int16 array or little-endian bytes) as padded base64."""

def pcm16_to_float32(x: _In) -> npt.NDArray[np.float32]:
    """Convert PCM16 to float32 in [-1, 1): x / 32768."""

def float32_to_pcm16(x: _In) -> npt.NDArray[np.int16]:
    """Convert float32 to PCM16, saturating; NaN becomes 0."""

def downmix_stereo(x: _In) -> npt.NDArray[np.int16]:
    """Downmix interleaved stereo PCM16 to mono."""

def apply_gain(x: _In, db: float) -> npt.NDArray[np.int16]:
    """Apply a gain in dB to PCM16, saturating."""

def ulaw_encode(x: _In) -> bytes:
    """Encode PCM16 to G.711 mu-law codes."""

def ulaw_decode(codes: _In) -> npt.NDArray[np.int16]:
    """Decode G.711 mu-law codes to int16."""

def alaw_encode(x: _In) -> bytes:
    """Encode PCM16 to G.711 A-law codes."""

def alaw_decode(codes: _In) -> npt.NDArray[np.int16]:
    """Decode G.711 A-law codes to int16."""

@final
class Framer:
    """Cut a PCM16 stream into frames of exactly ``frame_samples`` (1 to 2**22) samples."""

    def __new__(cls, frame_samples: int) -> Framer: ...
    def push(self, x: _In) -> npt.NDArray[np.int16]:
        """Append a chunk; return the frames it completes, shape (n, frame_samples)."""

    def flush(self, *, pad: bool = True) -> npt.NDArray[np.int16]:
        """Return what is pending and empty the framer."""

    def reset(self) -> None:
        """Drop everything pending."""

    @property
    def pending(self) -> int:
        """Whole samples waiting for the next frame."""

    @property
    def pending_byte(self) -> bool:
        """Whether one byte (half a sample) waits for the next chunk."""

    @property
    def frame_samples(self) -> int:
        """Samples per frame."""

class _JitterStats(TypedDict):
    played_ms: float
    output_ms: float
    buffered_ms: float
    max_buffered_ms: float
    target_ms: float
    delay_ms: float
    underruns: int
    concealed_ms: float
    stretched_ms: float
    expanded_ms: float
    accelerated_ms: float
    streams: int
    late_pushes: int
    dropped_ms: float
    cleared_ms: float

@final
class JitterBuffer:
    """Adaptive playout jitter buffer on the caller's clock (sans-I/O, times in ms).

    ``push`` audio as it arrives, ``pop`` exactly one frame per call (audio, concealment or
    silence), ``mark_end`` when a stream is complete, ``clear`` on barge-in.
    ``adaptive=False`` is the plain pre-buffer client. ``min_start_ms`` (adaptive mode): the
    least audio a new stream needs queued to start before ``prebuffer_ms`` is (default:
    ``prebuffer_ms``), waived once the session's last 128+ arrival gaps hold no stall.

    Bounds (else InvalidInputError): ``sample_rate`` one of the resampler's rates,
    ``frame_ms`` 1-1000 (whole samples), ``max_ms`` ``2 * max(frame_ms, 50)`` to 600000,
    ``prebuffer_ms`` 0 to ``max_ms``. ``now_ms`` is finite, within ``1e13`` of 0 and never
    goes backwards; a refused time changes nothing (the buffer stays usable).
    """

    def __new__(
        cls,
        sample_rate: int,
        *,
        frame_ms: int = 10,
        prebuffer_ms: int = 250,
        adaptive: bool = True,
        max_ms: int = 60000,
        min_start_ms: int | None = None,
    ) -> JitterBuffer: ...
    def push(self, pcm: _In, now_ms: float) -> None:
        """Append audio (int16 array or PCM16 bytes) that arrived at ``now_ms``."""

    def mark_end(self) -> None:
        """The current stream is complete: its tail plays without waiting for more."""

    def pop(self, now_ms: float) -> npt.NDArray[np.int16]:
        """Exactly one frame for playout at ``now_ms``."""

    def clear(self) -> int:
        """Barge-in: drop what is queued; return the ms of the current stream played."""

    def stats(self) -> _JitterStats:
        """Counters and levels (ms unless a count)."""

    @property
    def sample_rate(self) -> int:
        """Sample rate in Hz."""

    @property
    def frame_ms(self) -> int:
        """Frame length in ms."""

    @property
    def frame_samples(self) -> int:
        """Samples per frame."""

    @property
    def adaptive(self) -> bool:
        """Whether the buffer adapts."""

    @property
    def target_ms(self) -> float:
        """The current target delay in ms (``prebuffer_ms`` in fixed mode)."""

@overload
def resample(
    x: npt.NDArray[np.float32],
    in_rate: int,
    out_rate: int,
    *,
    quality: Quality = "hq",
    channels: int = 1,
    threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
@overload
def resample(
    x: _I16In,
    in_rate: int,
    out_rate: int,
    *,
    quality: Quality = "hq",
    channels: int = 1,
    threads: int | None = None,
) -> npt.NDArray[np.int16]: ...
@overload
def resample(
    x: _In,
    in_rate: int,
    out_rate: int,
    *,
    quality: Quality = "hq",
    channels: int = 1,
    threads: int | None = None,
) -> npt.NDArray[np.int16] | npt.NDArray[np.float32]:
    """Resample a whole signal: aligned with the input, round(n * out / in) samples.

    ``channels`` > 1: interleaved samples in and out (whole frames). ``threads``: long mono
    inputs are split over up to this many threads (default: the CPUs available); the
    output is bit-identical whatever the count.
    """

@final
class Resampler:
    """Streaming sample-rate converter: every pair of the common voice rates, and others."""

    def __new__(
        cls, in_rate: int, out_rate: int, *, quality: Quality = "hq", channels: int = 1
    ) -> Resampler: ...
    @overload
    def process(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    @overload
    def process(self, x: _I16In) -> npt.NDArray[np.int16]: ...
    @overload
    def process(self, x: _In) -> npt.NDArray[np.int16] | npt.NDArray[np.float32]:
        """Resample a chunk; return the output it completes, in the input's dtype."""

    def flush(self) -> npt.NDArray[np.int16] | npt.NDArray[np.float32]:
        """End the stream: return the remaining output (last input's dtype) and reset."""

    def reset(self) -> None:
        """Forget the stream without returning its tail."""

    @property
    def delay(self) -> float:
        """Latency in output samples."""

    @property
    def ratio(self) -> float:
        """out_rate / in_rate."""

    @property
    def in_rate(self) -> int:
        """Input sample rate in Hz."""

    @property
    def out_rate(self) -> int:
        """Output sample rate in Hz."""

    @property
    def quality(self) -> Quality:
        """The preset name."""

    @property
    def taps_per_output(self) -> int:
        """Filter taps per output sample."""

    @property
    def channels(self) -> int:
        """Interleaved channels."""

@final
class WebRtcVad:
    """WebRTC voice activity detector agreeing with py-webrtcvad frame for frame."""

    def __new__(cls, mode: int | None = None) -> WebRtcVad: ...
    def set_mode(self, mode: int) -> None:
        """Set the aggressiveness mode, 0 to 3."""

    def is_speech(self, buf: _In, sample_rate: int, length: int | None = None) -> bool:
        """Whether the frame (the first ``length`` samples of ``buf``) holds speech."""

    @staticmethod
    def valid_rate_and_frame_length(rate: int, frame_length: int) -> bool:
        """Whether ``frame_length`` samples at ``rate`` Hz is a frame the VAD takes."""

    @property
    def mode(self) -> int:
        """The current mode."""

@final
class Vad:
    """Frame-by-frame voice activity detection ("spectral", "silero", "webrtc" or "energy").

    Bounds (else InvalidInputError): ``sample_rate`` 8000-192000 Hz, ``frame_ms`` 1-1000
    (whole samples).
    """

    def __new__(
        cls,
        engine: VadEngine = "silero",
        *,
        sample_rate: int = 16000,
        frame_ms: int = 10,
        mode: int = 0,
    ) -> Vad: ...
    def is_speech(self, frame: _In) -> bool:
        """Whether the frame holds speech."""

    def probability(self, frame: _In) -> float:
        """Speech probability of the frame, in [0, 1]."""

    def classify(self, x: _In) -> npt.NDArray[np.bool_]:
        """One decision per whole frame of ``x``."""

    def probabilities(self, x: _In) -> npt.NDArray[np.float32]:
        """One speech probability per whole frame of ``x``."""

    def reset(self) -> None:
        """Forgets the stream: the next frame starts a new one."""

    @property
    def frame_samples(self) -> int:
        """Samples per frame."""

    @property
    def sample_rate(self) -> int:
        """Sample rate in Hz."""

    @property
    def engine(self) -> VadEngine:
        """The engine's name."""

@final
class SpeechStarted:
    """A turn started: speech began at ``audio_start_ms`` on the audio timeline."""

    @property
    def audio_start_ms(self) -> int: ...

@final
class SpeechStopped:
    """A turn ended at ``audio_end_ms``; emitted at ``emitted_at_ms``."""

    @property
    def audio_end_ms(self) -> int: ...
    @property
    def emitted_at_ms(self) -> int: ...

@final
class TurnConfig:
    """Turn parameters (keyword-only, frozen), shared by TurnDetector and InputPipeline.

    OpenAI server_vad's ``threshold``, ``prefix_padding_ms``, ``silence_duration_ms``;
    pipecat's ``start_secs``, ``stop_secs`` (= ``silence_duration_ms``, which wins when both
    are given), ``min_volume``; ``end_gate_db``; ``end_mode`` and ``eagerness`` (semantic_vad);
    ``vad_reset_ms`` (the silero engine's state is cleared after that much quiet between
    turns, as pipecat does; 0: never).
    Defaults: 0.5, 300 ms, 500 ms, 0.2 s, 0, 35 dB, "silence", "auto", 3000 ms.

    Bounds (else InvalidInputError): ``prefix_padding_ms``, ``silence_duration_ms``
    (``stop_secs``) and ``start_secs`` at most 60000 ms; ``threshold`` and ``min_volume``
    0-1; ``end_gate_db`` finite and >= 0; ``vad_reset_ms`` 0-60000.
    """

    def __new__(
        cls,
        *,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int | None = None,
        stop_secs: float | None = None,
        start_secs: float = 0.2,
        min_volume: float = 0.0,
        end_gate_db: float = 35.0,
        end_mode: EndMode = "silence",
        eagerness: Eagerness = "auto",
        vad_reset_ms: int = 3000,
    ) -> TurnConfig: ...
    def replace(
        self,
        *,
        threshold: float = ...,
        prefix_padding_ms: int = ...,
        silence_duration_ms: int | None = ...,
        stop_secs: float | None = ...,
        start_secs: float = ...,
        min_volume: float = ...,
        end_gate_db: float = ...,
        end_mode: EndMode = ...,
        eagerness: Eagerness = ...,
        vad_reset_ms: int = ...,
    ) -> Self:
        """A copy with the given fields changed."""

    def __replace__(
        self,
        *,
        threshold: float = ...,
        prefix_padding_ms: int = ...,
        silence_duration_ms: int | None = ...,
        stop_secs: float | None = ...,
        start_secs: float = ...,
        min_volume: float = ...,
        end_gate_db: float = ...,
        end_mode: EndMode = ...,
        eagerness: Eagerness = ...,
        vad_reset_ms: int = ...,
    ) -> Self:
        """``copy.replace`` (Python 3.13)."""

    def __getnewargs_ex__(self) -> tuple[tuple[()], dict[str, Any]]:
        """Pickling and ``copy``: rebuilt from the keyword arguments."""

    @property
    def threshold(self) -> float:
        """Speech probability at or above which a frame is voiced."""

    @property
    def prefix_padding_ms(self) -> int:
        """Audio kept before the start of speech, in ms."""

    @property
    def silence_duration_ms(self) -> int:
        """Silence that ends a turn, in ms (``stop_secs`` * 1000)."""

    @property
    def start_secs(self) -> float:
        """Voiced time needed before a turn starts, in seconds."""

    @property
    def min_volume(self) -> float:
        """Minimum frame level for voiced frames, 0-1 (0: off)."""

    @property
    def end_gate_db(self) -> float:
        """Frames this many dB below the turn's loudest count as silence for its end."""

    @property
    def end_mode(self) -> EndMode:
        """The rule that ends a turn."""

    @property
    def eagerness(self) -> Eagerness:
        """The semantic rule's eagerness."""

    @property
    def vad_reset_ms(self) -> int:
        """Quiet after which the silero engine's state is cleared between turns, ms."""

@final
class TurnDetector:
    """Server-side turn detection (OpenAI server_vad and semantic_vad, pipecat VADParams).

    ``engine``, ``sample_rate``, ``frame_ms`` and ``mode`` choose the VAD (bounds as for
    :class:`Vad`); ``turn`` the turn parameters (None: ``TurnConfig()``).
    """

    def __new__(
        cls,
        engine: VadEngine = "silero",
        *,
        sample_rate: int = 16000,
        frame_ms: int = 10,
        mode: int = 0,
        turn: TurnConfig | None = None,
    ) -> TurnDetector: ...
    def push(self, x: _In) -> list[SpeechStarted | SpeechStopped]:
        """Push audio of any length; return the events it causes."""

    def set_text_hint(self, complete: bool | None) -> None:
        """Semantic mode: whether the words so far end a sentence (None: no hint)."""

    @property
    def end_estimate(self) -> tuple[int, float, int] | None:
        """Semantic mode, in a pause: ``(audio_end_ms, p_complete, wait_ms)``."""

    @property
    def end_features(self) -> list[tuple[str, float]] | None:
        """Semantic mode: the features judged at the last pause, by name."""

    @property
    def end_gate(self) -> tuple[bool, list[tuple[str, float]]] | None:
        """Semantic mode: the reliability gate at the last pause, ``(passed, measures)``.

        Not passed: the turn waited ``silence_duration_ms``, as with server_vad.
        """

    def last_utterance(self) -> npt.NDArray[np.int16]:
        """The audio of the last finished turn."""

    def reset(self) -> None:
        """Start over."""

    @property
    def speaking(self) -> bool:
        """Whether a turn is in progress."""

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio processed."""

@final
class InputPipeline:
    """Inbound hot path in one call per message: decode, resample, frame, VAD, turns.

    Keyword-only. Bounds (else InvalidInputError): ``in_rate`` one of the resampler's rates,
    ``vad_rate`` and ``frame_ms`` as for :class:`Vad`, ``max_buffer_ms`` 0-3600000.
    ``turn``: the turn parameters (None: ``TurnConfig()``).
    """

    def __new__(
        cls,
        *,
        in_rate: int = 24000,
        encoding: Encoding = "base64",
        format: AudioFormat = "pcm16",
        vad_rate: int = 16000,
        engine: VadEngine = "silero",
        mode: int = 0,
        frame_ms: int = 10,
        quality: Quality = "vad",
        turn: TurnConfig | None = None,
        turn_detection: bool = True,
        max_buffer_ms: int = 900000,
    ) -> InputPipeline: ...
    def push(self, chunk: str | _In) -> list[SpeechStarted | SpeechStopped]:
        """Push one message's audio; return the turn events it causes."""

    def set_text_hint(self, complete: bool | None) -> None:
        """Semantic mode: whether the words so far end a sentence (None: no hint)."""

    @property
    def end_estimate(self) -> tuple[int, float, int] | None:
        """Semantic mode, in a pause: ``(audio_end_ms, p_complete, wait_ms)``."""

    def audio(self, start_ms: int, end_ms: int) -> npt.NDArray[np.int16]:
        """Buffered input from ``start_ms`` to ``end_ms`` on the timeline (a copy).

        Both ends are clamped to the buffered span (negative values count as 0), so any
        values are accepted; the result is empty when they do not overlap it or
        ``end_ms <= start_ms``.
        """

    def discard_until(self, ms: int) -> None:
        """Drop buffered input before ``ms`` (clamped like ``audio``)."""

    def buffered(self) -> tuple[int, npt.NDArray[np.int16]]:
        """Everything buffered: ``(start_ms, samples)``."""

    def clear_buffer(self) -> None:
        """Drop everything buffered."""

    def last_utterance(self) -> npt.NDArray[np.int16]:
        """The last finished turn's audio at ``vad_rate``.

        With ``quality="vad"`` only the lower half of its band is clean; ``audio()`` gives
        the input as sent.
        """

    def reset(self) -> None:
        """Start over."""

    @property
    def buffered_ms(self) -> int:
        """Milliseconds of input buffered."""

    @property
    def position_ms(self) -> int:
        """Milliseconds of input received."""

    @property
    def level_db(self) -> float:
        """RMS level of the last message in dBFS."""

    @property
    def speaking(self) -> bool:
        """Whether a turn is in progress."""

    @property
    def in_rate(self) -> int:
        """Input sample rate."""

    @property
    def vad_rate(self) -> int:
        """VAD sample rate."""

@final
class OutputPipeline:
    """Outbound path in one call per chunk: resample, then encode (keyword-only)."""

    def __new__(
        cls,
        *,
        in_rate: int = 24000,
        out_rate: int = 24000,
        encoding: Encoding = "base64",
        format: AudioFormat = "pcm16",
        quality: Quality = "hq",
    ) -> OutputPipeline: ...
    def push(self, x: _In) -> str | bytes:
        """Resample and encode; base64 ``str`` or raw ``bytes`` per ``encoding``."""

    def flush(self) -> str | bytes:
        """The resampler's tail, encoded; starts a new stream."""

    def reset(self) -> None:
        """Forget the stream."""

    @property
    def in_rate(self) -> int:
        """Input sample rate."""

    @property
    def out_rate(self) -> int:
        """Output sample rate."""

    @property
    def last_samples(self) -> int:
        """How many samples the last ``push`` or ``flush`` returned (encoded)."""
