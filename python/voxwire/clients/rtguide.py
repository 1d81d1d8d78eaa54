"""A client of the rtguide API (``voxwire talk --dialect rtguide``).

It follows the guide's client flow: ``POST /api/rt/login``, connect
``/api/rt/ws?token=...&ui_session_id=...``, wait for ``user_turn_start``, pick a voice, stream
raw PCM16 mono frames (16 kHz, 20 ms each) and play the answer's binary PCM16 frames (24 kHz)
through a :class:`voxwire.JitterBuffer` (:class:`voxwire.client.Player`).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.client import Player
from voxwire.errors import AuthError

#: The rate of the audio frames this client sends, and of the answer audio it receives.
INPUT_RATE = 16000
OUTPUT_RATE = 24000
FRAME_MS = 20


@dataclass
class TalkReport:
    """What one spoken turn gave: the stop reason, the answer's text, audio and errors."""

    stop_reason: str | None = None
    text: str = ""
    answer_ms: float = 0.0
    audio_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def _post_login(base: str, username: str, password: str) -> dict[str, Any]:
    body = json.dumps({"username": username, "password": password}).encode()
    req = urllib.request.Request(
        f"{base}/api/rt/login",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            out: dict[str, Any] = json.load(r)
            return out
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise AuthError("invalid", "Invalid credentials") from None
        raise


class RtguideClient:
    """An asyncio client of one rtguide UI session.

    ``base_url`` is the server's HTTP address (``http://127.0.0.1:8000``); the WebSocket is
    ``ws://`` (or ``wss://``) on the same host. ``voice`` is set after ``user_turn_start``
    (None: the server's default, text only).
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        voice: str | None = None,
        input_rate: int = INPUT_RATE,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.voice = voice
        self.input_rate = input_rate
        self.ui_session_id: str | None = None
        self.token: str | None = None
        self.ws: Any = None
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Log in, open the WebSocket, wait for ``user_turn_start``, set the voice."""
        from websockets.asyncio.client import connect

        login = await asyncio.to_thread(_post_login, self.base, self.username, self._password)
        self.token = login["agent_c_token"]
        self.ui_session_id = login["ui_session_id"]
        u = urlsplit(self.base)
        scheme = "wss" if u.scheme == "https" else "ws"
        query = f"token={quote(str(self.token))}&ui_session_id={quote(str(self.ui_session_id))}"
        if self.input_rate != INPUT_RATE:
            query += f"&input_sample_rate={self.input_rate}"
        self.ws = await connect(f"{scheme}://{u.netloc}/api/rt/ws?{query}", max_size=None)
        await self.until("user_turn_start")
        if self.voice is not None:
            await self.send("set_agent_voice", voice_id=self.voice)
            await self.until("agent_voice_changed")

    async def close(self) -> None:
        """Close the WebSocket."""
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def send(self, kind: str, **fields: Any) -> None:
        """Send one event."""
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def recv(self, timeout: float = 60.0) -> dict[str, Any] | bytes:
        """The next event, or a binary frame of answer audio."""
        m = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(m, bytes):
            return m
        e: dict[str, Any] = json.loads(m)
        self.events.append(e)
        return e

    async def until(self, kind: str, timeout: float = 60.0) -> dict[str, Any]:
        """Read until an event of type ``kind`` (binary frames meanwhile are dropped)."""
        while True:
            m = await self.recv(timeout)
            if isinstance(m, dict) and m.get("type") == kind:
                return m

    async def stream_audio(
        self, pcm: npt.NDArray[np.int16], rate: int, *, speed: float = 1.0
    ) -> None:
        """Send ``pcm`` as raw PCM16 frames of 20 ms at the input rate (paced by ``speed``)."""
        x = pcm if rate == self.input_rate else voxwire.resample(pcm, rate, self.input_rate)
        step = self.input_rate * FRAME_MS // 1000
        t0 = time.monotonic()
        for k, start in enumerate(range(0, len(x), step)):
            await self.ws.send(x[start : start + step].astype("<i2").tobytes())
            if speed > 0:
                delay = t0 + (k + 1) * FRAME_MS / 1000 / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def talk(
        self,
        pcm: npt.NDArray[np.int16],
        rate: int,
        *,
        speed: float = 1.0,
        out_wav: str | None = None,
        timeout_s: float = 60.0,
        on_sent: Callable[[], None] | None = None,
    ) -> TalkReport:
        """Speak ``pcm``; play the answer (through a jitter buffer) until the user's turn.

        ``on_sent`` is called once the last audio frame went out.
        """
        rep = TalkReport()
        player = Player(OUTPUT_RATE, wav_path=out_wav)
        t0 = time.monotonic()
        stop = asyncio.Event()

        async def play() -> None:
            k = 0
            while not stop.is_set() or player.stats()["buffered_ms"] > 0:
                due = t0 + k * player.frame_ms / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                player.tick(time.monotonic() * 1000)
                k += 1
                if k > (timeout_s + 30) * 1000 / player.frame_ms:
                    break

        playing = asyncio.create_task(play())

        async def send() -> None:
            await self.stream_audio(pcm, rate, speed=speed)
            if on_sent is not None:
                on_sent()

        sender = asyncio.create_task(send())
        text: list[str] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                m = await self.recv(max(0.1, deadline - time.monotonic()))
                if isinstance(m, bytes):
                    rep.audio_bytes += len(m)
                    samples = np.frombuffer(m[: len(m) // 2 * 2], "<i2").astype(np.int16)
                    player.push("answer", samples, time.monotonic() * 1000)
                    continue
                kind = m.get("type")
                if kind == "text_delta" and m.get("role") == "assistant":
                    text.append(str(m.get("content", "")))
                elif kind == "error":
                    rep.errors.append(str(m.get("message")))
                elif kind == "completion" and m.get("running") is False:
                    rep.stop_reason = m.get("stop_reason")
                elif kind == "user_turn_start" and rep.stop_reason is not None:
                    break
            else:
                rep.errors.append("timed out waiting for the answer")
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            player.end()
            stop.set()
            await playing
            player.close()
        rep.text = "".join(text)
        rep.answer_ms = float(player.stats()["played_ms"])
        return rep


__all__ = ["INPUT_RATE", "OUTPUT_RATE", "RtguideClient", "TalkReport"]
