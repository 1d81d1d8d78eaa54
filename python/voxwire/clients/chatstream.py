"""A client of the chatstream dialect (``/v1/chat/stream``), with spoken answers.

    async with ChatstreamClient("ws://127.0.0.1:8000/v1/chat/stream", token="k") as c:
        speaker = c.speak(wav_path="answer.wav")      # each tts_ready_chunk -> TTS -> JitterBuffer
        turn = await c.chat("Hello! How are you?", user_id="me", agent_id="echo")
        await speaker.done()

It answers the server's ``ping`` with ``pong`` by itself, authorizes in-band, and collects a
turn's events (``stream_start`` ... ``stream_end``) into a :class:`ChatstreamTurn`. With a
:class:`Speaker`, the speech of every ``tts_ready_chunk`` is fetched from the server's
``POST /v1/tts/synthesize`` (several at once) and played in the chunks' order through a
:class:`voxwire.JitterBuffer` (:class:`voxwire.client.Player`), into a WAV file and/or a
callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.client import Player
from voxwire.errors import AuthError, VoxwireError
from voxwire.wav import read_wav_bytes

__all__ = [
    "ChatstreamClient",
    "ChatstreamError",
    "ChatstreamTurn",
    "Speaker",
    "tts_url_of",
]


class ChatstreamError(VoxwireError, RuntimeError):
    """The server answered ``error``, or the connection ended, where an answer was expected."""


@dataclass
class ChatstreamTurn:
    """One turn's events, as the client saw them."""

    turn_id: str = ""
    conversation_id: str = ""
    #: ``stream_token`` chunks, in order.
    tokens: list[str] = field(default_factory=list)
    #: ``tts_ready_chunk`` (chunk, emotion) pairs, in order.
    sentences: list[tuple[str, str | None]] = field(default_factory=list)
    #: ``tool_call`` and ``tool_result`` messages, in order.
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: ``stream_end``'s ``content`` (the whole answer).
    content: str = ""
    #: ``completed`` or ``interrupted`` (or ``failed``).
    status: str = ""
    #: ``error`` messages received during the turn.
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Every message of the turn, in order.
    messages: list[dict[str, Any]] = field(default_factory=list)


def tts_url_of(ws_url: str) -> str:
    """The TTS endpoint of the server at ``ws_url`` (same host, ``/v1/tts/synthesize``)."""
    u = urlsplit(ws_url)
    scheme = "https" if u.scheme == "wss" else "http"
    return urlunsplit((scheme, u.netloc, "/v1/tts/synthesize", "", ""))


class ChatstreamClient:
    """An asyncio client of ``/v1/chat/stream`` (see the module docstring).

    ``token`` is what ``authorize`` sends (an API key or a JWT; also the TTS endpoint's
    bearer token); ``tts_url`` defaults to the server's own endpoint.
    """

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        tts_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.token, self.clock = url, token, clock
        self.tts_url = tts_url or tts_url_of(url)
        self.connection_id: str | None = None
        #: Pings answered.
        self.pings = 0
        #: The close code and reason once the server closed (None while open).
        self.close_code: int | None = None
        self.close_reason = ""
        self._ws: Any = None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=100_000)
        self._reader: asyncio.Task[None] | None = None
        self.speaker: Speaker | None = None

    async def __aenter__(self) -> ChatstreamClient:
        await self.connect()
        await self.authorize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the WebSocket (no credentials: :meth:`authorize` sends them)."""
        from websockets.asyncio.client import connect

        self._ws = await connect(self.url, max_size=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Close the connection."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "ping":
                    self.pings += 1
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(json.dumps({"type": "pong"}))
                    continue
                await self._queue.put(msg)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        self.close_code = rcvd.code if rcvd is not None else None
        self.close_reason = rcvd.reason if rcvd is not None else ""
        await self._queue.put(None)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message."""
        await self._ws.send(json.dumps(message))

    async def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next message other than ``ping`` (raises once the connection has closed)."""
        msg = await asyncio.wait_for(self._queue.get(), timeout)
        if msg is None:
            self._queue.put_nowait(None)  # later calls see the end too
            raise ChatstreamError(f"connection closed ({self.close_code} {self.close_reason})")
        return msg

    async def _expect(self, *types: str, timeout: float = 30.0) -> dict[str, Any]:
        msg = await self.recv(timeout)
        if msg.get("type") == "error":
            raise ChatstreamError(str(msg.get("error")))
        if msg.get("type") not in types:
            raise ChatstreamError(f"expected {' or '.join(types)}, got {msg.get('type')}")
        return msg

    async def authorize(self, token: str | None = None) -> str:
        """Send ``authorize``; the ``connection_id`` (raises AuthError when refused)."""
        await self.send({"type": "authorize", "token": self.token if token is None else token})
        msg = await self.recv()
        if msg.get("type") == "authorize_error":
            raise AuthError("invalid", str(msg.get("error", "authorization failed")))
        if msg.get("type") != "authorize_success":
            raise ChatstreamError(f"expected authorize_success, got {msg.get('type')}")
        self.connection_id = str(msg["connection_id"])
        return self.connection_id

    async def chat(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str,
        conversation_id: str | None = None,
        timeout: float = 60.0,
        **fields: Any,
    ) -> ChatstreamTurn:
        """Send ``chat_message`` and collect the turn until ``stream_end``.

        Extra ``fields`` (``persona``, ``limit``, ``images``, ``metadata``) go in the message.
        With a speaker (:meth:`speak`), each ``tts_ready_chunk`` is spoken.
        """
        msg: dict[str, Any] = {
            "type": "chat_message",
            "content": content,
            "user_id": user_id,
            "agent_id": agent_id,
            **fields,
        }
        if conversation_id is not None:
            msg["conversation_id"] = conversation_id
        await self.send(msg)
        return await self.collect_turn(timeout=timeout)

    async def collect_turn(self, *, timeout: float = 60.0) -> ChatstreamTurn:
        """The events of the turn under way, up to its ``stream_end``."""
        turn = ChatstreamTurn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            m = await self.recv(max(0.0, deadline - loop.time()))
            t = m.get("type")
            turn.messages.append(m)
            if t == "error" and not turn.turn_id:
                raise ChatstreamError(str(m.get("error")))
            if t == "stream_start":
                turn.turn_id = str(m["turn_id"])
                turn.conversation_id = str(m.get("conversation_id", ""))
            elif t == "stream_token":
                turn.tokens.append(str(m["chunk"]))
            elif t == "tts_ready_chunk":
                turn.sentences.append((str(m["chunk"]), m.get("emotion")))
                if self.speaker is not None:
                    self.speaker.add(str(m["chunk"]))
            elif t in ("tool_call", "tool_result"):
                turn.tools.append(m)
            elif t == "error":
                turn.errors.append(m)
            elif t == "stream_end":
                turn.content = str(m.get("content", ""))
                turn.status = str(m.get("status", "completed"))
                if self.speaker is not None:
                    self.speaker.finish()
                return turn

    async def interrupt(self, turn_id: str | None = None) -> None:
        """Send ``interrupt_stream`` (the answer comes as ``stream_end`` and ``error`` 4003)."""
        await self.send({"type": "interrupt_stream", "turn_id": turn_id})

    async def fetch_backgrounds(self) -> list[str]:
        """The server's background images (URL paths)."""
        await self.send({"type": "fetch_backgrounds"})
        return list((await self._expect("background_files"))["files"])

    async def fetch_avatar_configs(self) -> list[dict[str, str]]:
        """The server's avatar configs: ``[{filename, name}]``."""
        await self.send({"type": "fetch_avatar_configs"})
        return list((await self._expect("avatar_config_files"))["configs"])

    async def switch_avatar_config(self, file: str) -> dict[str, Any]:
        """Switch to avatar config ``file``; the ``set_model_and_conf`` message."""
        await self.send({"type": "switch_avatar_config", "file": file})
        conf = await self._expect("set_model_and_conf")
        await self._expect("avatar_config_switched")
        return conf

    async def synthesize(
        self, text: str, *, reference_id: str | None = None
    ) -> tuple[npt.NDArray[np.int16], int]:
        """Speech for ``text`` from the server's TTS endpoint: int16 samples and rate."""
        body: dict[str, Any] = {"text": text, "output_format": "bytes"}
        if reference_id is not None:
            body["reference_id"] = reference_id
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(
            self.tts_url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )

        def post() -> bytes:
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    data: bytes = r.read()
                    return data
            except urllib.error.HTTPError as e:
                raise ChatstreamError(f"TTS endpoint answered HTTP {e.code}") from None

        data = await asyncio.to_thread(post)
        try:
            return read_wav_bytes(data)
        except ValueError as e:
            raise ChatstreamError(f"TTS endpoint sent no WAV file: {e}") from None

    def speak(self, **speaker_kw: Any) -> Speaker:
        """Speak every ``tts_ready_chunk`` from now on (see :class:`Speaker`)."""
        self.speaker = Speaker(self, **speaker_kw)
        return self.speaker


class Speaker:
    """Fetches the speech of each ``tts_ready_chunk`` and plays it in order.

    At most ``max_fetches`` requests to the TTS endpoint run at once; the audio goes into a
    :class:`voxwire.client.Player` (a :class:`voxwire.JitterBuffer`) in the chunks' order, at
    the rate of the first chunk's audio (others are resampled), into ``wav_path`` and/or
    ``sink``. ``speed``: how many times faster than real time playback runs (0: no pacing,
    all of a turn's audio is played out at once after its last chunk has been fetched).
    ``frame_ms`` is the playout frame (20 ms instead at rates where it is no whole number of
    samples, as 10 ms at espeak-ng's 22050 Hz).
    """

    def __init__(
        self,
        client: ChatstreamClient,
        *,
        wav_path: str | None = None,
        sink: Callable[[npt.NDArray[np.int16]], None] | None = None,
        speed: float = 1.0,
        max_fetches: int = 4,
        frame_ms: int = 10,
    ) -> None:
        self.client = client
        self.wav_path, self.sink, self.speed, self.frame_ms = wav_path, sink, speed, frame_ms
        self.player: Player | None = None
        #: The chunks whose audio went into the jitter buffer, in order.
        self.played: list[str] = []
        #: Milliseconds of audio pushed, per chunk (same order).
        self.chunk_ms: list[float] = []
        #: TTS failures (chunk, message).
        self.failures: list[tuple[str, str]] = []
        self._slots = asyncio.Semaphore(max_fetches)
        self._fetches: list[tuple[str, asyncio.Task[tuple[npt.NDArray[np.int16], int]]]] = []
        self._finished = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._play())

    def add(self, chunk: str) -> None:
        """Speak ``chunk`` after the chunks added before it."""
        self._fetches.append((chunk, asyncio.create_task(self._fetch(chunk))))
        self._changed.set()

    def finish(self) -> None:
        """No more chunks come (the turn ended)."""
        self._finished = True
        self._changed.set()

    async def done(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until everything is played; the jitter buffer's figures."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.player.stats() if self.player is not None else {}

    async def _fetch(self, chunk: str) -> tuple[npt.NDArray[np.int16], int]:
        async with self._slots:
            return await self.client.synthesize(chunk)

    async def _next(self, k: int) -> tuple[npt.NDArray[np.int16], int] | None:
        """The audio of chunk ``k`` (None: it failed), waiting for it."""
        chunk, task = self._fetches[k]
        try:
            return await task
        except (VoxwireError, OSError) as e:
            self.failures.append((chunk, str(e)))
            return None

    def _push(self, chunk: str, pcm: npt.NDArray[np.int16], rate: int, now_ms: float) -> None:
        if self.player is None:
            # A frame of whole samples at this rate (22050 Hz has none of 10 ms: 20 ms then).
            ms = next((m for m in (self.frame_ms, 20, 40, 100) if rate * m % 1000 == 0), 1000)
            self.frame_ms = ms
            self.player = Player(rate, ms, wav_path=self.wav_path, sink=self.sink)
        p = self.player
        if rate != p.jb.sample_rate:
            pcm = np.asarray(voxwire.resample(pcm, rate, p.jb.sample_rate), dtype=np.int16)
        p.push("answer", pcm, now_ms)
        self.played.append(chunk)
        self.chunk_ms.append(len(pcm) * 1000 / p.jb.sample_rate)

    async def _play(self) -> None:
        k, now_ms, ended, tail = 0, 0.0, False, 0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            while True:
                if self.speed <= 0 or self.player is None:
                    # No pacing (or nothing to play yet): wait for the next chunk or the end.
                    while k >= len(self._fetches) and not self._finished:
                        self._changed.clear()
                        await self._changed.wait()
                while k < len(self._fetches) and (
                    self.speed <= 0 or self.player is None or self._fetches[k][1].done()
                ):
                    got = await self._next(k)
                    if got is not None:
                        self._push(self._fetches[k][0], got[0], got[1], now_ms)
                    k += 1
                if self._finished and k >= len(self._fetches) and not ended:
                    ended = True
                    if self.player is not None:
                        self.player.end()
                p = self.player
                if p is None:
                    if ended:
                        return
                    continue
                if ended:
                    tail += 1
                    # Played out (bounded: a buffer that never empties ends after 10 min).
                    if p.stats()["buffered_ms"] <= 0 or tail > 600_000 // self.frame_ms:
                        return
                p.tick(now_ms)
                now_ms += self.frame_ms
                if self.speed > 0:
                    delay = t0 + now_ms / 1000 / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        await asyncio.sleep(0)
        finally:
            for _, t in self._fetches:
                t.cancel()
            if self.player is not None:
                self.player.close()
