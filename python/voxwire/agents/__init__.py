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
import contextlib
import copy
import importlib
import json
import re
import secrets
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from voxwire.errors import (
    InputTooLargeError,
    InvalidInputError,
    OutputLimitError,
    VoxwireError,
    WorkerError,
    WorkerTimeoutError,
)
from voxwire.session.events import UserTurn
from voxwire.wav import WavStream, read_wav_bytes
from voxwire.workers import Slots


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text (its transcript, in audio answers)."""

    text: str


@dataclass(frozen=True)
class Thought:
    """A piece of the agent's reasoning, shown apart from the answer where the API can."""

    text: str


@dataclass(frozen=True)
class AudioChunk:
    """A piece of the answer's audio: int16 mono at ``sample_rate``.

    ``marks``: when the TTS says which characters of the answer's text, ``(ms from the start
    of this chunk, character)`` (they may reach into later chunks); empty when unknown.
    """

    pcm: npt.NDArray[np.int16]
    sample_rate: int
    marks: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class ToolCall:
    """The agent calls a tool (a ``function_call`` item)."""

    name: str
    arguments: str
    call_id: str


@dataclass(frozen=True)
class ToolResult:
    """The result of a tool the agent ran itself (a server-side tool) for call ``call_id``.

    ``output`` is the result as text (JSON text by convention).
    """

    call_id: str
    output: str


@dataclass(frozen=True)
class Notice:
    """Something the client should be told (a non-fatal ``error`` event with ``code``)."""

    code: str
    message: str


@dataclass(frozen=True)
class EndConversation:
    """The agent ends the conversation (after this response); ``reason`` says why."""

    reason: str = "ended"


AgentOutput = TextDelta | Thought | AudioChunk | ToolCall | ToolResult | Notice | EndConversation


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


@runtime_checkable
class StreamingTTS(Protocol):
    """A text-to-speech plugin that gives its audio piece by piece (the first piece early)."""

    def stream(self, text: str) -> AsyncGenerator[tuple[npt.NDArray[np.int16], int], None]:
        """Speech for ``text`` as it is made: int16 mono pieces and their sample rate.

        An async generator (``async def`` with ``yield``): the caller closes it when it stops
        early, and the plugin then stops its work.
        """
        ...


#: Where a sentence ends: after . ! ? ; or : and white space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*")


def speech_pieces(text: str, max_chars: int) -> Iterator[str]:
    """``text`` cut for speech: whole sentences, packed up to ``max_chars`` per piece.

    The first piece is the first sentence alone (so the first audio comes early); a
    sentence longer than ``max_chars`` is cut at its last space within the limit (or at the
    limit when it has none). Pieces of white space only are left out.
    """
    if max_chars < 1:
        raise InvalidInputError(f"max_chars must be at least 1, not {max_chars}")
    buf, first, pos = "", True, 0
    while pos < len(text):
        m = _SENTENCE_END.search(text, pos)
        end, nxt = (m.start(), m.end()) if m else (len(text), len(text))
        sentence, pos = text[pos:end].strip(), nxt
        while sentence:
            if len(sentence) > max_chars:
                cut = sentence.rfind(" ", 1, max_chars + 1)
                cut = cut if cut > 0 else max_chars
                part, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            else:
                part, sentence = sentence, ""
            if buf and len(buf) + 1 + len(part) > max_chars:
                yield buf
                buf = ""
            buf = f"{buf} {part}" if buf else part
            if first:
                yield buf
                buf, first = "", False
    if buf:
        yield buf


class EspeakTTS:
    """Text-to-speech with the ``espeak-ng`` binary (``--stdout`` WAV, 22050 Hz).

    Bounded per call: text over ``max_chars`` characters (default 4096, the limit of
    OpenAI's speech endpoint) is refused with :class:`~voxwire.errors.InputTooLargeError`;
    the text is spoken a piece at a time (sentences packed up to ``piece_chars``, one
    espeak-ng process per piece, read as it writes), so memory holds one read of output, not
    the whole answer, and the first audio comes after the first sentence; past
    ``max_output_bytes`` of audio (default 32 MiB, about 12 minutes) the process is killed
    and :class:`~voxwire.errors.OutputLimitError` raised; a process that writes nothing for
    ``timeout_s`` is killed (:class:`~voxwire.errors.WorkerTimeoutError`). At most
    ``max_procs`` espeak-ng processes run at once per instance (others wait their turn).
    When the caller stops (cancellation, closing the stream, an error) the running process
    is killed and reaped.
    """

    def __init__(
        self,
        binary: str = "espeak-ng",
        voice: str = "en-us",
        wpm: int = 175,
        *,
        max_chars: int = 4096,
        piece_chars: int = 400,
        max_output_bytes: int = 32 << 20,
        timeout_s: float = 10.0,
        max_procs: int = 4,
    ) -> None:
        if max_chars < 1 or piece_chars < 1 or max_output_bytes < 1 or not timeout_s > 0:
            raise InvalidInputError("EspeakTTS limits must be positive")
        self.binary, self.voice, self.wpm = binary, voice, wpm
        self.max_chars = max_chars
        self.piece_chars = piece_chars
        self.max_output_bytes = max_output_bytes
        self.timeout_s = timeout_s
        self._procs = Slots(max_procs)

    @staticmethod
    def available(binary: str = "espeak-ng") -> bool:
        """Whether the binary is on PATH."""
        return shutil.which(binary) is not None

    async def synthesize(self, text: str) -> tuple[npt.NDArray[np.int16], int]:
        """All of :meth:`stream` in one array.

        Prefer ``stream``: its first audio comes sooner and memory holds one piece.
        """
        parts, rate = [], 22050
        async for pcm, piece_rate in self.stream(text):
            parts.append(pcm)
            rate = piece_rate
        return (np.concatenate(parts) if parts else np.zeros(0, np.int16)), rate

    async def stream(self, text: str) -> AsyncGenerator[tuple[npt.NDArray[np.int16], int], None]:
        """Speech for ``text`` as espeak-ng makes it: int16 mono pieces and their rate."""
        if len(text) > self.max_chars:
            raise InputTooLargeError(
                f"{len(text)} characters is more than the {self.max_chars} this TTS speaks"
            )
        left = self.max_output_bytes
        for piece in speech_pieces(text, self.piece_chars):
            if left <= 0:
                raise OutputLimitError(
                    f"more than {self.max_output_bytes} bytes of audio for one answer"
                )
            async with contextlib.aclosing(self._speak(piece, left)) as pieces:
                async for pcm, rate in pieces:
                    left -= 2 * len(pcm)
                    yield pcm, rate

    async def _speak(
        self, text: str, budget: int
    ) -> AsyncGenerator[tuple[npt.NDArray[np.int16], int], None]:
        """One espeak-ng process for one piece; killed and reaped however this ends."""
        await self._procs.acquire()
        proc: asyncio.subprocess.Process | None = None
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-v",
                self.voice,
                "-s",
                str(self.wpm),
                "--stdout",
                "--",
                text,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert proc.stdout is not None
            wav, got = WavStream(WorkerError), 0
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        data = await proc.stdout.read(1 << 16)
                except TimeoutError:
                    raise WorkerTimeoutError(
                        f"espeak-ng wrote nothing for {self.timeout_s:g} s; it was killed"
                    ) from None
                if not data:
                    break
                got += len(data)
                if got > budget + WavStream.MAX_HEADER:
                    raise OutputLimitError(
                        f"espeak-ng wrote more than {self.max_output_bytes} bytes of audio "
                        f"for one answer; it was killed"
                    )
                pcm = wav.feed(data)
                if len(pcm):
                    yield pcm, wav.rate
            code = await proc.wait()
            if code != 0:
                raise WorkerError(f"espeak-ng failed (exit code {code})")
        finally:
            if proc is not None:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()  # at once, before anything can be awaited
                # What is left in the pipe of a dead process (at most its capacity), so the
                # transport sees end of file and closes itself; then the exit status.
                assert proc.stdout is not None
                with contextlib.suppress(OSError):  # (TimeoutError: a child keeps it open)
                    async with asyncio.timeout(self.timeout_s):
                        while await proc.stdout.read(1 << 16):
                            pass
                await proc.wait()
            self._procs.release()


def default_tts() -> TTS | None:
    """espeak-ng when it is installed (with word timing when its library loads), else None."""
    if not EspeakTTS.available():
        return None
    from voxwire.tts_marks import EspeakMarksTTS, library_available

    return EspeakMarksTTS() if library_available() else EspeakTTS()


def text_deltas(text: str, max_chars: int = 64) -> Iterator[str]:
    """``text`` in pieces of at most ``max_chars``, cut before a space where there is one.

    Joined, the pieces are ``text`` exactly.
    """
    if max_chars < 1:
        raise InvalidInputError(f"max_chars must be at least 1, not {max_chars}")
    k, n = 0, len(text)
    while k < n:
        end = k + max_chars
        if end >= n:
            yield text[k:]
            return
        cut = text.rfind(" ", k + 1, end + 1)
        cut = cut if cut > k else end
        yield text[k:cut]
        k = cut


#: How a user's text asks the echo agent to call a tool: ``tool:NAME`` and, optionally,
#: the arguments as a JSON object.
_TOOL_REQUEST = re.compile(r"\Atool:([A-Za-z0-9_.+-]{1,128})(?:\s+(\{.*\}))?\s*\Z", re.DOTALL)


def echo_tool_request(text: str, tools: Iterable[str]) -> tuple[str, str] | None:
    """The tool call a user's text asks the echo agent for: ``(name, arguments JSON)``.

    ``tool:NAME`` or ``tool:NAME {"arg": ...}`` where NAME is one of ``tools`` (the turn's
    tools) and the arguments, when given, are a JSON object; None for any other text.
    """
    m = _TOOL_REQUEST.match(text.strip())
    if m is None or m.group(1) not in set(tools):
        return None
    raw = m.group(2) or "{}"
    try:
        args = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    return m.group(1), json.dumps(args, separators=(",", ":"))


class EchoAgent:
    """Answers text with the same text, and audio with the user's own utterance audio.

    Tools (for testing tool events): when the turn offers tools and the user's text is
    ``tool:NAME`` or ``tool:NAME {json arguments}`` naming one of them, the agent first
    calls that tool (:class:`ToolCall`). A tool the client runs (``ToolSpec.client``, as
    OpenAI's function tools are) ends the answer there: the client sends the result and asks
    again, and that ``tool_results`` turn is answered with the results' outputs as text
    (and speech). A server-side tool the agent runs itself as an *echo tool* whose result is
    ``{"tool": NAME, "arguments": {...}}`` (:class:`ToolResult`), then echoes the text as
    always. Any other text, or a turn without tools, is answered as before.

    ``pace`` is how many times faster than real time audio is produced (0: all at once), so
    that an answer is "in progress" for a while, as a real model's is; ``chunk_ms`` is the
    size of each audio piece. ``tts`` speaks text answers when audio is asked for (piece by
    piece when it is a :class:`StreamingTTS`). Text goes out in deltas of up to
    ``delta_chars`` characters, cut at spaces (not one event per word: a megabyte of
    one-letter words would be half a million events); ``text_delay_s`` (default 0) waits
    between text deltas, so that a text answer streams for a while as a model's does.
    """

    def __init__(
        self,
        tts: TTS | None = None,
        pace: float = 2.0,
        chunk_ms: int = 100,
        *,
        delta_chars: int = 64,
        text_delay_s: float = 0.0,
    ) -> None:
        if delta_chars < 1:
            raise InvalidInputError(f"delta_chars must be at least 1, not {delta_chars}")
        if not text_delay_s >= 0:
            raise InvalidInputError(f"text_delay_s must be at least 0, not {text_delay_s}")
        self.text_delay_s = text_delay_s
        self.tts, self.pace, self.chunk_ms = tts, pace, chunk_ms
        self.delta_chars = delta_chars

    async def _stream(self, pcm: npt.NDArray[np.int16], rate: int) -> AsyncIterator[AgentOutput]:
        step = max(1, rate * self.chunk_ms // 1000)
        for k in range(0, len(pcm), step):
            yield AudioChunk(pcm[k : k + step], rate)
            if self.pace > 0:
                await asyncio.sleep(self.chunk_ms / 1000 / self.pace)

    async def _tts_for(self, voice: str) -> TTS | None:
        """The TTS speaking with ``voice``, when it is an espeak-ng voice of this machine.

        That is a copy of the configured TTS; any other voice gets the configured one.
        """
        tts = self.tts
        if not voice or tts is None or getattr(tts, "voice", voice) == voice:
            return tts
        if voice not in await _espeak_voice_ids():
            return tts  # e.g. OpenAI's "alloy": not an espeak-ng voice
        other = copy.copy(tts)
        other.voice = voice  # type: ignore[attr-defined]
        return other

    async def _speak(self, text: str, voice: str = "") -> AsyncGenerator[AgentOutput, None]:
        """The TTS's audio for ``text``, paced; a TTS failure ends it with a Notice."""
        tts = await self._tts_for(voice)
        assert tts is not None
        try:
            marked = getattr(tts, "stream_marked", None)
            if marked is not None:
                # A TTS with word timing: each piece's first chunk carries its marks.
                async with contextlib.aclosing(marked(text)) as pieces:
                    async for pcm, rate, marks in pieces:
                        first = True
                        async for out in self._stream(pcm, rate):
                            if first and isinstance(out, AudioChunk):
                                out = AudioChunk(out.pcm, out.sample_rate, marks)
                                first = False
                            yield out
            elif isinstance(tts, StreamingTTS):
                async with contextlib.aclosing(tts.stream(text)) as pieces:
                    async for pcm, rate in pieces:
                        async for out in self._stream(pcm, rate):
                            yield out
            else:
                pcm, rate = await tts.synthesize(text)
                async for out in self._stream(pcm, rate):
                    yield out
        except InputTooLargeError as e:
            yield Notice(
                "audio_unavailable",
                f"The answer is too long to speak ({e}); it comes as its transcript only.",
            )
        except VoxwireError as e:
            yield Notice("audio_truncated", f"Text-to-speech stopped: {e}")

    async def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        """The echo."""
        want_audio = "audio" in turn.modalities
        text = turn.text if turn.text is not None else turn.transcript
        if turn.kind == "tool_results" and text is None:
            # The results the client sent since the agent's last message: their outputs.
            outputs: list[str] = []
            for h in reversed(turn.history):
                if h.role == "tool":
                    outputs.append(h.output or "")
                elif h.role != "assistant" or h.name is None:
                    break
            text = " ".join(reversed(outputs)) or None
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
        request = echo_tool_request(text, (t.name for t in turn.tools)) if turn.tools else None
        if request is not None:
            name, arguments = request
            call_id = f"call_{secrets.token_hex(8)}"
            yield ToolCall(name, arguments, call_id)
            if any(t.client for t in turn.tools if t.name == name):
                return  # the client runs it and sends the result
            result = {"tool": name, "arguments": json.loads(arguments)}
            yield ToolResult(call_id, json.dumps(result, separators=(",", ":")))
        for k, piece in enumerate(text_deltas(text, self.delta_chars)):
            if k and self.text_delay_s > 0:
                await asyncio.sleep(self.text_delay_s)
            yield TextDelta(piece)
        if want_audio and text.strip():
            if self.tts is None:
                yield Notice(
                    "audio_unavailable",
                    "Audio output is unavailable: no text-to-speech is configured (install "
                    "espeak-ng); the answer comes as its transcript only.",
                )
                return
            async with contextlib.aclosing(self._speak(text, turn.voice)) as audio:
                async for out in audio:
                    yield out


_ESPEAK_VOICES: frozenset[str] | None = None


async def _espeak_voice_ids() -> frozenset[str]:
    """The ids of this machine's espeak-ng voices (listed once, off the event loop)."""
    global _ESPEAK_VOICES
    if _ESPEAK_VOICES is None:
        from voxwire.registry import espeak_voices

        found = await asyncio.to_thread(espeak_voices)
        _ESPEAK_VOICES = frozenset(v.id for v in found)
    return _ESPEAK_VOICES


def load_agent(spec: str) -> Agent:
    """An agent by name: ``echo``, or ``module:attribute`` for a factory or object."""
    if spec == "echo":
        return EchoAgent(tts=default_tts())
    mod, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"unknown agent {spec!r}: use 'echo' or 'module:attribute'")
    import os
    import sys

    # As `python -m` and uvicorn do: a module in the current folder is found.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise ValueError(f"cannot import {mod!r} for agent {spec!r}: {e}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {mod!r} has no attribute {attr!r}") from None
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
    "EndConversation",
    "EspeakTTS",
    "Notice",
    "StreamingTTS",
    "TextDelta",
    "Thought",
    "ToolCall",
    "ToolResult",
    "UserTurn",
    "default_tts",
    "echo_tool_request",
    "load_agent",
    "read_wav_bytes",
    "speech_pieces",
    "text_deltas",
]
