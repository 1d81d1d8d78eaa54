"""Audio files in and out of int16 samples: WAV read here, MP3/FLAC/OGG through miniaudio.

- :func:`read_wav_bytes` / :func:`read_wav`: a WAV file as mono int16 samples and their
  rate. 8-bit (unsigned), 16-, 24- and 32-bit integer PCM, 32- and 64-bit float, any number
  of channels (stereo is downmixed with :func:`voxwire.downmix_stereo`, more channels by
  their mean), ``WAVE_FORMAT_EXTENSIBLE`` headers; wider samples keep their top 16 bits,
  float is scaled by 32768 and saturated.
- :class:`WavStream`: the incremental reader of a WAV file arriving in pieces (16-bit).
- :func:`load_audio`: any of those files by path, MP3, FLAC and OGG/Vorbis decoded with
  miniaudio (``pip install 'voxwire[audio]'``); the error of a file that is missing, not
  audio or in a form nobody here reads is :class:`~voxwire.errors.AudioFileError`, one line.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.errors import AudioFileError

__all__ = ["WavStream", "load_audio", "read_wav", "read_wav_bytes", "write_wav"]

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


def _to_int16(body: bytes, fmt: int, bits: int) -> npt.NDArray[np.int16]:
    """Interleaved samples of the data chunk as int16 (top 16 bits, or scaled float)."""
    if fmt == _PCM and bits == 16:
        return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)
    if fmt == _PCM and bits == 8:  # unsigned, 128 is silence
        u8 = np.frombuffer(body, dtype=np.uint8).astype(np.int16)
        return ((u8 - 128) << 8).astype(np.int16)
    if fmt == _PCM and bits == 24:
        b = np.frombuffer(body[: len(body) // 3 * 3], dtype=np.uint8).reshape(-1, 3)
        # The top two bytes are the int16 sample (little-endian: bytes 1 and 2).
        top: npt.NDArray[np.int16] = (
            b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)
        ).view(np.int16)
        return top
    if fmt == _PCM and bits == 32:
        i32 = np.frombuffer(body[: len(body) // 4 * 4], dtype="<i4")
        return (i32 >> 16).astype(np.int16)
    if fmt in (_ALAW, _ULAW) and bits == 8:
        from voxwire import g711

        decode = g711.alaw_decode if fmt == _ALAW else g711.ulaw_decode
        return np.asarray(decode(body), dtype=np.int16)
    if fmt == _FLOAT and bits in (32, 64):
        dt = "<f4" if bits == 32 else "<f8"
        width = bits // 8
        f = np.frombuffer(body[: len(body) // width * width], dtype=dt).astype(np.float32)
        f = np.nan_to_num(f, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.asarray(voxwire.float32_to_pcm16(np.ascontiguousarray(f)), dtype=np.int16)
    kind = "float" if fmt == _FLOAT else ("integer" if fmt == _PCM else f"format {fmt}")
    raise AudioFileError(
        f"{bits}-bit {kind} WAV samples are not supported "
        "(8/16/24/32-bit integer or 32/64-bit float are)"
    )


def _mono(x: npt.NDArray[np.int16], channels: int) -> npt.NDArray[np.int16]:
    if channels == 1:
        return x
    if channels == 2:
        return np.asarray(voxwire.downmix_stereo(x[: len(x) // 2 * 2]), dtype=np.int16)
    frames = x[: len(x) // channels * channels].reshape(-1, channels).astype(np.int32)
    mean: npt.NDArray[np.int16] = (frames.sum(axis=1) // channels).astype(np.int16)
    return mean


def read_wav_bytes(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Samples (mono int16) and rate of a WAV file in memory (formats: the module docstring).

    Tolerates the wrong chunk sizes of streamed output (espeak-ng ``--stdout`` writes
    0xFFFFFFFF): a data chunk that claims more than there is runs to the end. Raises
    :class:`~voxwire.errors.AudioFileError` (a ``ValueError``).
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError("not a WAV file")
    pos, rate, channels, bits, fmt = 12, 0, 0, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            fmt = int.from_bytes(data[pos + 8 : pos + 10], "little")
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(data[pos + 22 : pos + 24], "little")
            if fmt == _EXTENSIBLE:  # the sub-format GUID starts with the format code
                fmt = int.from_bytes(data[pos + 32 : pos + 34], "little") if size >= 40 else _PCM
        elif cid == b"data":
            if not 1 <= channels <= 64 or rate <= 0:
                raise AudioFileError(f"WAV header with {channels} channels at {rate} Hz")
            end = pos + 8 + size if pos + 8 + size <= len(data) else len(data)
            return _mono(_to_int16(data[pos + 8 : end], fmt, bits), channels), rate
        pos += 8 + size + (size & 1)
    raise AudioFileError("WAV file without a data chunk")


def read_wav(path: str) -> tuple[npt.NDArray[np.int16], int]:
    """A WAV file as mono int16 samples and their rate (see :func:`read_wav_bytes`)."""
    with open(path, "rb") as fh:
        return read_wav_bytes(fh.read())


def write_wav(path: str, pcm: npt.NDArray[np.int16], rate: int) -> None:
    """Write mono int16 samples as a 16-bit WAV file."""
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def load_audio(path: str) -> tuple[npt.NDArray[np.int16], int]:
    """Any audio file voxwire reads, as mono int16 samples and their rate.

    WAV (every form :func:`read_wav_bytes` reads) here; MP3, FLAC and OGG/Vorbis with
    miniaudio. Raises :class:`~voxwire.errors.AudioFileError` with one line naming the file.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioFileError(f"{path}: is a folder, not an audio file") from None
    except OSError as e:
        raise AudioFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            x, rate = read_wav_bytes(data)
        except AudioFileError as e:
            raise AudioFileError(f"{path}: {e}") from None
    else:
        x, rate = _decode(path, data)
    if len(x) == 0:
        raise AudioFileError(f"{path}: holds no audio samples")
    return x, rate


def _decode(path: str, data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """MP3 / FLAC / OGG through miniaudio (mono int16 at the file's own rate)."""
    looks = _sniff(data)
    if looks is None:
        raise AudioFileError(f"{path}: not an audio file voxwire reads (WAV, MP3, FLAC, OGG)")
    try:
        import miniaudio
    except ImportError:
        raise AudioFileError(
            f"{path}: {looks} needs the miniaudio decoder: pip install 'voxwire[audio]'"
        ) from None
    try:
        info = miniaudio.get_file_info(path)
        dec = miniaudio.decode(
            data,
            output_format=miniaudio.SampleFormat.SIGNED16,
            nchannels=1,
            sample_rate=info.sample_rate,
        )
    except miniaudio.DecodeError as e:
        raise AudioFileError(f"{path}: cannot decode it as {looks} ({e})") from None
    return np.frombuffer(dec.samples, dtype=np.int16).copy(), int(dec.sample_rate)


def _sniff(data: bytes) -> str | None:
    """The container a file's first bytes announce (None: nothing miniaudio decodes)."""
    if data[:4] == b"fLaC":
        return "FLAC"
    if data[:4] == b"OggS":
        return "OGG"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


class WavStream:
    """Incremental reader of a streamed WAV file (16-bit mono or stereo).

    ``error`` is the exception class raised for a stream that is not such a file (the TTS
    worker raises its own). Feed the bytes as they come; each call returns the samples
    they complete (stereo downmixed).
    """

    #: A header bigger than this is not a WAV file a TTS wrote.
    MAX_HEADER = 4096

    def __init__(self, error: type[Exception] = AudioFileError) -> None:
        self._error = error
        self._head = bytearray()
        self._carry = b""
        self.rate = 0
        self.channels = 0
        self._in_data = False

    def feed(self, data: bytes) -> npt.NDArray[np.int16]:
        """The samples in ``data`` (none until the header has been read)."""
        if not self._in_data:
            self._head += data
            data = self._parse()
        if not data:
            return np.zeros(0, np.int16)
        block = 2 * self.channels
        data = self._carry + data
        n = len(data) // block * block
        self._carry = data[n:]
        x = np.frombuffer(data[:n], dtype="<i2").astype(np.int16)
        return voxwire.downmix_stereo(x) if self.channels == 2 else x

    def _parse(self) -> bytes:
        h = self._head
        if len(h) >= 12 and (h[:4] != b"RIFF" or h[8:12] != b"WAVE"):
            raise self._error("the TTS did not write a WAV file")
        pos, bits = 12, 0
        while pos + 8 <= len(h):
            cid, size = bytes(h[pos : pos + 4]), int.from_bytes(h[pos + 4 : pos + 8], "little")
            if cid == b"data":
                if bits != 16 or self.channels not in (1, 2) or self.rate <= 0:
                    raise self._error(f"the TTS wrote {bits}-bit x {self.channels} audio")
                self._in_data = True
                rest = bytes(h[pos + 8 :])
                self._head = bytearray()
                return rest
            if cid == b"fmt ":
                if pos + 8 + 16 > len(h):
                    break
                self.channels = int.from_bytes(h[pos + 10 : pos + 12], "little")
                self.rate = int.from_bytes(h[pos + 12 : pos + 16], "little")
                bits = int.from_bytes(h[pos + 22 : pos + 24], "little")
            pos += 8 + size + (size & 1)
        if len(h) > self.MAX_HEADER:
            raise self._error("the TTS wrote a WAV header without a data chunk")
        return b""
