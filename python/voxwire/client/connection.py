"""The WebSocket I/O of the realtime client: :class:`RealtimeClient`.

It streams audio in real time (or faster, on request) as 20 ms ``input_audio_buffer.append``
messages, yields typed events (:mod:`voxwire.client.events`), and drives a
:class:`~voxwire.client.player.Player` on its clock: the player decides what a barge-in sends
(``conversation.item.truncate`` with the milliseconds actually played), this module sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.client.events import Closed, ServerEvent, parse_event
from voxwire.client.player import RATE, Player


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
        self.closed: Closed | None = None

    @property
    def truncations(self) -> list[tuple[str, int]]:
        """The truncate messages sent on barge-in: (item_id, audio_end_ms)."""
        return self.player.truncations if self.player is not None else []

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

        Call it after a :class:`~voxwire.client.events.ResponseDoneEvent`: it returns once the
        jitter buffer is empty and no answer is still streaming (at once without
        :meth:`play`). Raises ``TimeoutError`` after ``timeout`` seconds.
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
        if self.player is not None:
            for message in self.player.on_event(e, self.clock() * 1000):
                await self.send(message)

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


__all__ = ["RealtimeClient"]
