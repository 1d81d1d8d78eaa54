"""A client of the Atoms realtime agent API (seed 004), as the vendor's Python guide does it.

Two steps: ``POST /atoms/v1/conversation/register-call`` with the API key gives a single-use
``wct_`` token; the WebSocket ``/atoms/v1/agent/connect?token=wct_...`` follows. Agent audio
goes through a :class:`voxwire.JitterBuffer` with the guide's 250 ms pre-buffer, played out on
the wall clock in 10 ms frames; ``interruption`` drops what is buffered. ``voxwire talk
--dialect atoms`` uses it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.errors import AuthError, InvalidInputError, VoxwireError

#: The guide's microphone block and playback pre-buffer.
BLOCK_MS = 40
PREBUFFER_MS = 250
FRAME_MS = 10


class AtomsError(VoxwireError, RuntimeError):
    """The server refused a request (``register-call``'s ``errors``, or a refused handshake)."""


def base_url(url: str) -> str:
    """``http://host:port`` of a server URL (``ws://``, ``wss://``, ``http(s)://``, any path)."""
    u = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    if scheme not in ("http", "https") or not u.netloc:
        raise InvalidInputError(f"not a server URL: {url!r}")
    return f"{scheme}://{u.netloc}"


@dataclass
class CallLog:
    """What a call brought: events, final transcripts, the audio played."""

    session: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: ``(role, text)`` of every ``transcript`` event.
    transcripts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    interruptions: int = 0
    #: Of each interrupted turn, the milliseconds played before the buffer was dropped.
    played_before_interruption_ms: list[int] = field(default_factory=list)
    closed_reason: str | None = None
    played: list[npt.NDArray[np.int16]] = field(default_factory=list)

    def played_audio(self) -> npt.NDArray[np.int16]:
        """Everything played out (silence included)."""
        return np.concatenate(self.played) if self.played else np.zeros(0, np.int16)


class AtomsClient:
    """One call to an Atoms-dialect server (see the module docstring).

    ``url``: the server (``http://host:port`` or a ``ws://`` URL: only host and port count);
    ``api_key`` and ``agent_id`` for ``register-call``; ``mode`` ``webcall`` or ``chat``;
    ``variables`` for the agent's templates. Use as ``async with``.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        agent_id: str,
        mode: str = "webcall",
        variables: dict[str, Any] | None = None,
        prebuffer_ms: int = PREBUFFER_MS,
    ) -> None:
        self.base = base_url(url)
        self.api_key = api_key
        self.agent_id = agent_id
        self.mode = mode
        self.variables = variables
        self.prebuffer_ms = prebuffer_ms
        self.log = CallLog()
        self.sample_rate = 24000
        self._ws: Any = None
        self._jb: voxwire.JitterBuffer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> AtomsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def register_call(self) -> dict[str, Any]:
        """``POST /register-call``: the ``data`` object (``access_token``...); blocking."""
        body: dict[str, Any] = {"agent_id": self.agent_id, "mode": self.mode}
        if self.variables:
            body["variables"] = self.variables
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            f"{self.base}/atoms/v1/conversation/register-call",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                data: dict[str, Any] = json.load(r)["data"]
                return data
        except urllib.error.HTTPError as e:
            try:
                errors = json.load(e).get("errors", [])
            except ValueError:
                errors = []
            if e.code == 401:
                raise AuthError("invalid", "register-call: API key refused") from None
            raise AtomsError(f"register-call failed ({e.code}): {'; '.join(errors)}") from None

    async def connect(self) -> dict[str, Any]:
        """Register the call, connect with the token; ``session.created``."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        data = await asyncio.to_thread(self.register_call)
        ws_base = self.base.replace("http", "ws", 1)
        q = urlencode({"token": data["access_token"]})
        try:
            self._ws = await connect(f"{ws_base}/atoms/v1/agent/connect?{q}", max_size=None)
        except InvalidStatus as e:
            raise AtomsError(f"connect refused: HTTP {e.response.status_code}") from None
        first: dict[str, Any] = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
        if first.get("type") != "session.created":
            await self._ws.close()
            raise AtomsError(f"the call did not start: {first}")
        self.log.session = first
        self.sample_rate = int(first["sample_rate"])
        self._jb = voxwire.JitterBuffer(
            self.sample_rate, frame_ms=FRAME_MS, prebuffer_ms=self.prebuffer_ms, adaptive=False
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._play())]
        return first

    def _now_ms(self) -> float:
        return time.monotonic() * 1000

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        log, jb = self.log, self._jb
        assert jb is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                e = json.loads(raw)
                kind = e.get("type")
                if kind == "output_audio.delta":
                    jb.push(base64.b64decode(e["audio"]), self._now_ms())
                    e = {"type": kind, "bytes": len(e["audio"]) * 3 // 4}
                elif kind == "interruption":
                    log.interruptions += 1
                    log.played_before_interruption_ms.append(jb.clear())
                elif kind == "agent_stop_talking":
                    jb.mark_end()
                elif kind == "transcript":
                    log.transcripts.append((e.get("role", "?"), e.get("text", "")))
                elif kind == "error":
                    log.errors.append(e)
                elif kind == "session.closed":
                    log.closed_reason = e.get("reason")
                log.events.append(e)
                self._arrived.set()

    async def _play(self) -> None:
        """Pop one frame every 10 ms on the wall clock (the speaker's pull)."""
        jb = self._jb
        assert jb is not None
        start = time.monotonic()
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * FRAME_MS / 1000 - time.monotonic()))
            self.log.played.append(jb.pop(self._now_ms()))

    async def wait_for(self, kind: str, *, after: int = 0, timeout: float = 60.0) -> dict[str, Any]:
        """The first event of type ``kind`` at index ``after`` or later in the log."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.log.events[after:]:
                if e.get("type") == kind:
                    return e
            left = deadline - time.monotonic()
            if left <= 0 or self._tasks[0].done():
                raise AtomsError(f"no {kind} event")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def send_audio(self, pcm: npt.NDArray[np.int16], rate: int, speed: float = 1.0) -> None:
        """Stream ``pcm`` in 40 ms blocks at the session rate.

        ``speed`` x real time (0: as fast as possible).
        """
        x = voxwire.resample(pcm, rate, self.sample_rate) if rate != self.sample_rate else pcm
        step = self.sample_rate * BLOCK_MS // 1000
        start = time.monotonic()
        for n, k in enumerate(range(0, len(x), step)):
            b64 = base64.b64encode(np.asarray(x[k : k + step], "<i2").tobytes()).decode()
            await self._ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))
            if speed > 0:
                due = start + (n + 1) * BLOCK_MS / 1000 / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def send_text(self, text: str) -> None:
        """An ``input_text.send`` turn."""
        await self._ws.send(json.dumps({"type": "input_text.send", "text": text}))

    async def close(self) -> None:
        """``session.close``, wait for the server to close, stop playback."""
        if self._ws is None:
            return
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(json.dumps({"type": "session.close"}))
        if self._tasks:
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                await asyncio.wait_for(asyncio.shield(self._tasks[0]), 5)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._ws.close()
        self._ws = None


async def talk(
    url: str,
    pcm: npt.NDArray[np.int16],
    rate: int,
    *,
    api_key: str | None,
    agent_id: str,
    speed: float = 1.0,
    greeting_wait_s: float = 2.0,
) -> CallLog:
    """One webcall, then ``session.close``.

    The greeting (when the agent starts talking within ``greeting_wait_s``), ``pcm`` as the
    user's turn, the agent's answer.
    """
    async with AtomsClient(url, api_key=api_key, agent_id=agent_id) as c:
        try:
            await c.wait_for("agent_start_talking", timeout=greeting_wait_s)
        except AtomsError:
            pass  # an agent without a greeting waits for the user
        else:
            await c.wait_for("agent_stop_talking")
        n = len(c.log.events)
        pad = np.zeros(rate * 3 // 2, np.int16)  # trailing silence: server VAD ends the turn
        await c.send_audio(np.concatenate([pcm, pad]), rate, speed)
        await c.wait_for("agent_stop_talking", after=n)
        await asyncio.sleep(PREBUFFER_MS / 1000 + 0.1)  # let the tail play out
        return c.log


__all__ = ["AtomsClient", "AtomsError", "CallLog", "base_url", "talk"]
