"""voxwire.wav: every WAV form `voxwire talk` reads, and MP3/FLAC/OGG through miniaudio."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import voxwire
from voxwire.errors import AudioFileError
from voxwire.wav import load_audio, read_wav_bytes


def riff(body: bytes, fmt: int, channels: int, rate: int, bits: int) -> bytes:
    block = channels * bits // 8
    f = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", 16) + f + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


X = (np.sin(np.arange(2400) * 0.05) * 20000).astype(np.int16)


def test_integer_and_float_forms_give_the_int16_samples() -> None:
    i32 = X.astype("<i4") << 16
    b24 = np.frombuffer(i32.tobytes(), np.uint8).reshape(-1, 4)[:, 1:].tobytes()
    f32 = (X.astype(np.float32) / 32768).astype("<f4").tobytes()
    f64 = (X.astype(np.float64) / 32768).astype("<f8").tobytes()
    for body, fmt, bits in (
        (X.astype("<i2").tobytes(), 1, 16),
        (b24, 1, 24),
        (i32.tobytes(), 1, 32),
        (f32, 3, 32),
        (f64, 3, 64),
    ):
        got, rate = read_wav_bytes(riff(body, fmt, 1, 22050, bits))
        assert rate == 22050
        np.testing.assert_array_equal(got, X, err_msg=f"{fmt}/{bits}")
    u8 = ((X >> 8) + 128).astype(np.uint8).tobytes()
    got, _ = read_wav_bytes(riff(u8, 1, 1, 8000, 8))
    np.testing.assert_array_equal(got, (X >> 8) << 8)


def test_channels_are_downmixed() -> None:
    stereo = np.column_stack([X, X // 2]).reshape(-1)
    got, _ = read_wav_bytes(riff(stereo.astype("<i2").tobytes(), 1, 2, 16000, 16))
    np.testing.assert_array_equal(got, voxwire.downmix_stereo(stereo))
    four = np.column_stack([X, X, X, X]).reshape(-1)
    got, _ = read_wav_bytes(riff(four.astype("<i2").tobytes(), 1, 4, 16000, 16))
    np.testing.assert_array_equal(got, X)


def test_refusals_are_typed_and_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="not a WAV file"):
        read_wav_bytes(b"ID3 not a wav")
    with pytest.raises(AudioFileError, match="12-bit"):
        read_wav_bytes(riff(b"\0" * 30, 1, 1, 8000, 12))
    with pytest.raises(AudioFileError, match="no such file"):
        load_audio(str(tmp_path / "x.wav"))
    junk = tmp_path / "x.bin"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioFileError, match=r"x\.bin: not an audio file"):
        load_audio(str(junk))
    assert issubclass(AudioFileError, ValueError)


def test_mp3_through_miniaudio(tmp_path: Path) -> None:
    lameenc = pytest.importorskip("lameenc")
    pytest.importorskip("miniaudio")
    tone = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 10000).astype(np.int16)
    enc = lameenc.Encoder()
    enc.set_bit_rate(64)
    enc.set_in_sample_rate(24000)
    enc.set_channels(1)
    enc.set_quality(2)
    path = tmp_path / "t.mp3"
    path.write_bytes(enc.encode(tone.tobytes()) + enc.flush())
    got, rate = load_audio(str(path))
    assert rate == 24000 and abs(len(got) - 24000) < 2400
    assert 5000 < np.abs(got).max() < 12000
