"""Agents: what answers a user turn.

An agent is any object with ``respond(turn) -> AsyncIterator[AgentOutput]``: it receives a
:class:`voxwire.session.events.UserTurn` (text, or audio with its transcript when an ASR is
plugged in) and yields :class:`TextDelta`, :class:`AudioChunk`, :class:`ToolCall` and
:class:`Notice` values. The driver cancels its task on barge-in (``asyncio.CancelledError``
reaches the generator).

Built in: :class:`EchoAgent` (``echo``, the default), which needs no model: it answers text
with the same text and audio with the user's own utterance audio; when an audio answer is
asked for a text turn it speaks the text through a TTS plugin (:class:`EspeakTTS` when the
``espeak-ng`` binary is present) or says in the session that audio is unavailable.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.session.events import UserTurn


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text (its transcript, in audio answers)."""

    text: str


@dataclass(frozen=True)
class AudioChunk:
    """A piece of the answer's audio: int16 mono at ``sample_rate``."""

    pcm: npt.NDArray[np.int16]
    sample_rate: int


@dataclass(frozen=True)
class ToolCall:
    """The agent calls a tool (a ``function_call`` item)."""

    name: str
    arguments: str
    call_id: str


@dataclass(frozen=True)
class Notice:
    """Something the client should be told (a non-fatal ``error`` event with ``code``)."""

    code: str
    message: str


AgentOutput = TextDelta | AudioChunk | ToolCall | Notice


class Agent(Protocol):
    """What the server runs for each response."""

    def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        """Answer ``turn``, as a stream of outputs."""
        ...


class TTS(Protocol):
    """A text-to-speech plugin."""

    async def synthesize(self, text: str) -> tuple[npt.NDArray[np.int16], int]:
        """Speech for ``text``: int16 mono samples and their sample rate."""
        ...


class EspeakTTS:
    """Text-to-speech with the ``espeak-ng`` binary (``--stdout`` WAV, 22050 Hz)."""

    def __init__(self, binary: str = "espeak-ng", voice: str = "en-us", wpm: int = 175) -> None:
        self.binary, self.voice, self.wpm = binary, voice, wpm

    @staticmethod
    def available(binary: str = "espeak-ng") -> bool:
        """Whether the binary is on PATH."""
        return shutil.which(binary) is not None

    async def synthesize(self, text: str) -> tuple[npt.NDArray[np.int16], int]:
        """Runs espeak-ng and reads its WAV output."""
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "-v",
            self.voice,
            "-s",
            str(self.wpm),
            "--stdout",
            "--",
            text,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {err.decode()[:200]}")
        return read_wav_bytes(out)


def read_wav_bytes(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """PCM16 samples (mono, or stereo downmixed) and rate of a WAV file in memory.

    Tolerates the wrong chunk sizes of streamed output (espeak-ng ``--stdout`` writes
    0xFFFFFFFF): a data chunk that claims more than there is runs to the end.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(data[pos + 22 : pos + 24], "little")
        elif cid == b"data":
            if bits != 16 or channels not in (1, 2):
                raise ValueError(f"expected 16-bit mono or stereo, got {bits}-bit x {channels}")
            end = pos + 8 + size if pos + 8 + size <= len(data) else len(data)
            body = data[pos + 8 : end]
            x = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)
            return (voxwire.downmix_stereo(x[: len(x) // 2 * 2]) if channels == 2 else x), rate
        pos += 8 + size + (size & 1)
    raise ValueError("WAV file without a data chunk")


def default_tts() -> TTS | None:
    """espeak-ng when it is installed, else None."""
    return EspeakTTS() if EspeakTTS.available() else None


class EchoAgent:
    """Answers text with the same text, and audio with the user's own utterance audio.

    ``pace`` is how many times faster than real time audio is produced (0: all at once), so
    that an answer is "in progress" for a while, as a real model's is; ``chunk_ms`` is the
    size of each audio piece. ``tts`` speaks text answers when audio is asked for.
    """

    def __init__(self, tts: TTS | None = None, pace: float = 2.0, chunk_ms: int = 100) -> None:
        self.tts, self.pace, self.chunk_ms = tts, pace, chunk_ms

    async def _stream(self, pcm: npt.NDArray[np.int16], rate: int) -> AsyncIterator[AgentOutput]:
        step = max(1, rate * self.chunk_ms // 1000)
        for k in range(0, len(pcm), step):
            yield AudioChunk(pcm[k : k + step], rate)
            if self.pace > 0:
                await asyncio.sleep(self.chunk_ms / 1000 / self.pace)

    async def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        """The echo."""
        want_audio = "audio" in turn.modalities
        text = turn.text if turn.text is not None else turn.transcript
        if turn.audio is not None and turn.text is None:
            if text:
                yield TextDelta(text)
            if want_audio:
                async for out in self._stream(turn.audio, turn.sample_rate):
                    yield out
            elif not text:
                yield Notice(
                    "transcript_unavailable",
                    "No transcript of the audio: install voxwire[asr] for one.",
                )
            return
        text = text or ""
        for k, word in enumerate(text.split(" ")):
            # One delta per word, as a streaming model would send them.
            yield TextDelta(word if k == 0 else " " + word)
        if want_audio and text.strip():
            if self.tts is None:
                yield Notice(
                    "audio_unavailable",
                    "Audio output is unavailable: no text-to-speech is configured (install "
                    "espeak-ng); the answer comes as its transcript only.",
                )
                return
            pcm, rate = await self.tts.synthesize(text)
            async for out in self._stream(pcm, rate):
                yield out


def load_agent(spec: str) -> Agent:
    """An agent by name: ``echo``, or ``module:attribute`` for a factory or object."""
    if spec == "echo":
        return EchoAgent(tts=default_tts())
    mod, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"unknown agent {spec!r}: use 'echo' or 'module:attribute'")
    obj = getattr(importlib.import_module(mod), attr)
    agent = (
        obj() if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "respond")) else obj
    )
    if not hasattr(agent, "respond"):
        raise ValueError(f"{spec!r} is not an agent (it has no respond method)")
    return agent  # type: ignore[no-any-return]


__all__ = [
    "TTS",
    "Agent",
    "AgentOutput",
    "AudioChunk",
    "EchoAgent",
    "EspeakTTS",
    "Notice",
    "TextDelta",
    "ToolCall",
    "UserTurn",
    "default_tts",
    "load_agent",
    "read_wav_bytes",
]
