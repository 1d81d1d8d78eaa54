"""An async realtime client for the OpenAI dialect, with jitter-buffered playback.

    async with RealtimeClient("ws://127.0.0.1:8000/v1/realtime", api_key="k") as c:
        player = c.play(wav_path="answer.wav")            # response audio -> JitterBuffer
        asyncio.create_task(c.stream_audio(pcm, 24000))   # real time (speed=1)
        async for e in c.events():
            if isinstance(e, ResponseDone):
                break
        await c.wait_played()                             # the answer's audio played out

It streams audio in real time (or faster, on request) as 20 ms ``input_audio_buffer.append``
messages, yields typed events, plays response audio through :class:`voxwire.JitterBuffer`
into a WAV file or a callback, and on barge-in (the server's ``speech_started`` while an
answer plays) clears the buffer and sends ``conversation.item.truncate`` with the
milliseconds actually played.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.wav import read_wav

RATE = 24000


# --------------------------------------------------------------------------------------
# Typed events


@dataclass(frozen=True)
class ServerEvent:
    """Any server event.

    Its ``type``, the raw JSON object, and when it arrived (client clock, seconds).
    """

    type: str
    data: dict[str, Any] = field(repr=False)
    at: float


@dataclass(frozen=True)
class SessionCreated(ServerEvent):
    """``session.created``."""


@dataclass(frozen=True)
class SpeechStarted(ServerEvent):
    """``input_audio_buffer.speech_started``."""

    audio_start_ms: int = 0
    item_id: str = ""


@dataclass(frozen=True)
class SpeechStopped(ServerEvent):
    """``input_audio_buffer.speech_stopped``."""

    audio_end_ms: int = 0
    item_id: str = ""


@dataclass(frozen=True)
class ResponseCreated(ServerEvent):
    """``response.created``."""

    response_id: str = ""


@dataclass(frozen=True)
class AudioDelta(ServerEvent):
    """Response audio (decoded to int16 at 24 kHz for pcm16 sessions)."""

    response_id: str = ""
    item_id: str = ""
    pcm: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)


@dataclass(frozen=True)
class TextDelta(ServerEvent):
    """Response text, or the transcript of response audio (``transcript`` True)."""

    response_id: str = ""
    text: str = ""
    transcript: bool = False


@dataclass(frozen=True)
class ResponseDone(ServerEvent):
    """``response.done``."""

    response_id: str = ""
    status: str = ""
    reason: str | None = None


@dataclass(frozen=True)
class ErrorEvent(ServerEvent):
    """``error``."""

    code: str | None = None
    message: str = ""
    param: str | None = None


@dataclass(frozen=True)
class Closed(ServerEvent):
    """The connection closed (the last event of :meth:`RealtimeClient.events`)."""

    code: int | None = None
    reason: str = ""


def parse_event(d: dict[str, Any], at: float) -> ServerEvent:
    """A typed event from a server JSON object (GA or beta names)."""
    t = str(d.get("type", ""))
    if t == "session.created":
        return SessionCreated(t, d, at)
    if t == "input_audio_buffer.speech_started":
        return SpeechStarted(t, d, at, int(d.get("audio_start_ms", 0)), str(d.get("item_id", "")))
    if t == "input_audio_buffer.speech_stopped":
        return SpeechStopped(t, d, at, int(d.get("audio_end_ms", 0)), str(d.get("item_id", "")))
    if t == "response.created":
        return ResponseCreated(t, d, at, str(d.get("response", {}).get("id", "")))
    if t in ("response.output_audio.delta", "response.audio.delta"):
        pcm = voxwire.b64decode_pcm16(d.get("delta", ""))
        return AudioDelta(t, d, at, str(d.get("response_id", "")), str(d.get("item_id", "")), pcm)
    if t in ("response.output_text.delta", "response.text.delta"):
        return TextDelta(t, d, at, str(d.get("response_id", "")), str(d.get("delta", "")))
    if t in ("response.output_audio_transcript.delta", "response.audio_transcript.delta"):
        return TextDelta(t, d, at, str(d.get("response_id", "")), str(d.get("delta", "")), True)
    if t == "response.done":
        r = d.get("response", {})
        details = r.get("status_details") or {}
        return ResponseDone(
            t, d, at, str(r.get("id", "")), str(r.get("status", "")), details.get("reason")
        )
    if t == "error":
        e = d.get("error", {})
        return ErrorEvent(t, d, at, e.get("code"), str(e.get("message", "")), e.get("param"))
    return ServerEvent(t, d, at)


# --------------------------------------------------------------------------------------
# Playback


class Player:
    """Plays response audio through a :class:`voxwire.JitterBuffer`.

    One frame every ``frame_ms`` of the client's clock, into a WAV file and/or a callback.

    ``adaptive=False`` is the plain fixed pre-buffer (``prebuffer_ms``).
    """

    def __init__(
        self,
        sample_rate: int = RATE,
        frame_ms: int = 10,
        *,
        wav_path: str | None = None,
        sink: Callable[[npt.NDArray[np.int16]], None] | None = None,
        adaptive: bool = True,
        prebuffer_ms: int = 250,
    ) -> None:
        self.jb = voxwire.JitterBuffer(
            sample_rate, frame_ms=frame_ms, prebuffer_ms=prebuffer_ms, adaptive=adaptive
        )
        self.frame_ms = frame_ms
        self.sink = sink
        self._wav: wave.Wave_write | None = None
        if wav_path is not None:
            w = wave.open(wav_path, "wb")  # noqa: SIM115 - closed by close()
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            self._wav = w
        #: The item whose audio is playing (for truncate) and whether its stream is open.
        self.item_id: str | None = None
        self.pending = False
        self.first_audio_at: float | None = None

    def push(self, item_id: str, pcm: npt.NDArray[np.int16], now_ms: float) -> None:
        """Queue audio of ``item_id`` that arrived at ``now_ms``."""
        if item_id != self.item_id:
            if self.item_id is not None:
                self.jb.mark_end()
            self.item_id = item_id
        self.pending = True
        self.jb.push(pcm, now_ms)

    def end(self) -> None:
        """The current answer is complete."""
        self.jb.mark_end()
        self.pending = False

    def barge_in(self) -> int:
        """Drop what is queued; the ms of the current answer that were played."""
        self.pending = False
        return int(self.jb.clear())

    def tick(self, now_ms: float) -> npt.NDArray[np.int16]:
        """Play one frame (written out from the first answer's audio on)."""
        frame: npt.NDArray[np.int16] = self.jb.pop(now_ms)
        if self.item_id is None:
            return frame
        if self._wav is not None:
            self._wav.writeframes(frame.astype("<i2").tobytes())
        if self.sink is not None:
            self.sink(frame)
        return frame

    def stats(self) -> dict[str, Any]:
        """The jitter buffer's figures."""
        return dict(self.jb.stats())

    def close(self) -> None:
        """Finish the WAV file."""
        if self._wav is not None:
            self._wav.close()
            self._wav = None


# --------------------------------------------------------------------------------------
# The client


class RealtimeClient:
    """An asyncio client of ``/v1/realtime``.

    GA names; ``beta=True`` sends ``OpenAI-Beta: realtime=v1``.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        beta: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.api_key, self.beta, self.clock = url, api_key, beta, clock
        self._ws: Any = None
        self._queue: asyncio.Queue[ServerEvent] = asyncio.Queue(maxsize=10_000)
        self._reader: asyncio.Task[None] | None = None
        self._player_task: asyncio.Task[None] | None = None
        self.player: Player | None = None
        #: The truncate messages sent on barge-in: (item_id, audio_end_ms).
        self.truncations: list[tuple[str, int]] = []
        self.closed: Closed | None = None

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, retries: int = 5, backoff_s: float = 0.2) -> None:
        """Open the connection (again, after a close), with bounded retries."""
        from websockets.asyncio.client import connect

        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.beta:
            headers["OpenAI-Beta"] = "realtime=v1"
        for attempt in range(retries + 1):
            try:
                self._ws = await connect(self.url, additional_headers=headers, max_size=None)
                break
            except OSError:
                if attempt == retries:
                    raise
                await asyncio.sleep(backoff_s * 2**attempt)
        self.closed = None
        self._reader = asyncio.create_task(self._read())

    async def reconnect(self) -> None:
        """A new session after the server closed the last one."""
        await self.close()
        await self.connect()

    async def close(self) -> None:
        """Close the connection and stop playback."""
        if self._player_task is not None:
            self._player_task.cancel()
            with contextlib.suppress(BaseException):
                await self._player_task
            self._player_task = None
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event."""
        await self._ws.send(json.dumps(event))

    async def update_session(self, **session: Any) -> None:
        """``session.update`` (GA shape unless ``beta``)."""
        if not self.beta:
            session.setdefault("type", "realtime")
        await self.send({"type": "session.update", "session": session})

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        sample_rate: int = RATE,
        *,
        speed: float = 1.0,
        chunk_ms: int = 20,
    ) -> float:
        """Send ``pcm`` as ``chunk_ms`` appends, paced at ``speed`` times real time.

        The schedule is absolute (no drift); ``speed=0`` sends as fast as possible. Returns
        when the last chunk went out, on the client clock.
        """
        x = pcm if sample_rate == RATE else voxwire.resample(pcm, sample_rate, RATE)
        step = RATE * chunk_ms // 1000
        t0 = self.clock()
        for k, i in enumerate(range(0, len(x), step)):
            if speed > 0:
                due = t0 + k * chunk_ms / 1000 / speed
                delay = due - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            audio = voxwire.b64encode_pcm16(x[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})
        return self.clock()

    async def wait_played(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the answer audio received so far has been played; the player's figures.

        Call it after :class:`ResponseDone`: it returns once the jitter buffer is empty and no
        answer is still streaming (at once without :meth:`play`). Raises ``TimeoutError``
        after ``timeout`` seconds.
        """
        p = self.player
        if p is None:
            return {}
        async with asyncio.timeout(timeout):
            while p.pending or p.stats()["buffered_ms"] > 0:
                if self._player_task is None or self._player_task.done():
                    break  # nothing plays any more
                await asyncio.sleep(p.frame_ms / 1000)
        return p.stats()

    def play(self, **player_kw: Any) -> Player:
        """Start playing response audio (see :class:`Player`) on the client clock."""
        self.player = Player(**player_kw)
        self._player_task = asyncio.create_task(self._play(self.player))
        return self.player

    async def _play(self, p: Player) -> None:
        t0 = self.clock()
        k = 0
        try:
            while True:
                due = t0 + k * p.frame_ms / 1000
                delay = due - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                # The jitter buffer needs one monotonic clock for pushes and pops: the
                # clock's reading now (a push may have come after this frame's due time).
                p.tick(self.clock() * 1000)
                k += 1
        finally:
            p.close()

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        try:
            async for msg in ws:
                e = parse_event(json.loads(msg), self.clock())
                await self._on_event(e)
                await self._queue.put(e)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        self.closed = Closed(
            "closed",
            {},
            self.clock(),
            rcvd.code if rcvd else None,
            rcvd.reason if rcvd else "",
        )
        await self._queue.put(self.closed)

    async def _on_event(self, e: ServerEvent) -> None:
        p = self.player
        if p is None:
            return
        now_ms = self.clock() * 1000
        if isinstance(e, AudioDelta):
            if p.first_audio_at is None:
                p.first_audio_at = e.at
            p.push(e.item_id, e.pcm, now_ms)
        elif isinstance(e, ResponseDone):
            p.end()
        elif isinstance(e, SpeechStarted) and p.pending and p.item_id is not None:
            # Barge-in: stop playing and tell the server how much was heard.
            played = p.barge_in()
            self.truncations.append((p.item_id, played))
            await self.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": p.item_id,
                    "content_index": 0,
                    "audio_end_ms": played,
                }
            )

    async def events(self) -> AsyncIterator[ServerEvent]:
        """Server events as they come; ends with :class:`Closed`."""
        while True:
            e = await self._queue.get()
            yield e
            if isinstance(e, Closed):
                return

    async def until(
        self, kind: type[ServerEvent] | str, timeout: float = 30.0
    ) -> list[ServerEvent]:
        """Events up to and including the first of ``kind`` (a class or a wire type)."""
        out: list[ServerEvent] = []

        async def collect() -> list[ServerEvent]:
            async for e in self.events():
                out.append(e)
                if (isinstance(kind, str) and e.type == kind) or (
                    isinstance(kind, type) and isinstance(e, kind)
                ):
                    return out
            raise ConnectionError(f"connection closed before {kind}: {self.closed}")

        return await asyncio.wait_for(collect(), timeout)


__all__ = [
    "AudioDelta",
    "Closed",
    "ErrorEvent",
    "Player",
    "RealtimeClient",
    "ResponseCreated",
    "ResponseDone",
    "ServerEvent",
    "SessionCreated",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "parse_event",
    "read_wav",
]
