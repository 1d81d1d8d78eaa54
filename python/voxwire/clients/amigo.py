"""A client of the amigo dialect (Amigo's ``converse_realtime``), with jitter-buffered playback.

    async with AmigoClient(url, token) as c:          # subprotocol auth, keep-alive every 15 s
        await c.start(service_id)                     # -> conversation id; the greeting plays
        await c.switch_vad(True)
        await c.stream_audio(pcm, 16000)              # 20 ms chunks in real time
        turn = await c.turn()                         # pieces up to interaction-complete

Voice answers (``response_format=voice&audio_format=pcm``: PCM16 at 24 kHz) play through a
:class:`voxwire.client.Player` (a :class:`voxwire.JitterBuffer` into a WAV file or a
callback); ``server.vad-speech-started`` stops playback at once (barge-in). A keep-alive
(``client.extend-timeout``) goes out every 15 s, as the API asks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from voxwire.client import Player
from voxwire.errors import AuthError, VoxwireError

__all__ = ["OUTPUT_RATE", "PREFIX", "AmigoClient", "AmigoClosedError", "AmigoTurn", "sign_in"]

#: The subprotocol prefix the token rides in.
PREFIX = "bearer.authorization.amigo.ai."
#: The sample rate of voxwire's PCM16 voice answers.
OUTPUT_RATE = 24000


class AmigoClosedError(VoxwireError, ConnectionError):
    """The server closed the connection (``code`` and ``reason`` as it sent them)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed by the server: {code} {reason}")
        self.code, self.reason = code, reason


@dataclass
class AmigoTurn:
    """One agent message: its pieces and the ``server.interaction-complete`` that ended it."""

    interaction_id: str = ""
    pieces: list[dict[str, Any]] = field(default_factory=list)
    complete: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The full message (text, or the transcript of voice)."""
        return str(self.complete.get("full_message", ""))

    @property
    def alignment(self) -> list[tuple[int, str]]:
        """Every ``[ms, character]`` of the pieces, in order."""
        return [
            (int(a[0]), str(a[1])) for p in self.pieces for a in p.get("transcript_alignment") or []
        ]


def sign_in(base_url: str, org: str, *, api_key: str, api_key_id: str, user_id: str) -> str:
    """``POST /v1/{org}/user/signin_with_api_key``: the ``id_token`` (blocking; AuthError)."""
    req = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1/{urllib.parse.quote(org)}/user/signin_with_api_key",
        method="POST",
        data=b"",
        headers={"x-api-key": api_key, "x-api-key-id": api_key_id, "x-user-id": user_id},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return str(json.load(r)["id_token"])
    except urllib.error.HTTPError as e:
        raise AuthError("invalid", f"sign-in refused (HTTP {e.code})") from None


class AmigoClient:
    """An asyncio client of ``/v1/{org}/conversation/converse_realtime`` (module docstring).

    ``url`` includes the query (``response_format``, ``audio_format``); ``token`` is a JWT
    from :func:`sign_in` or an API key. ``player`` plays voice answers (PCM only).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        player: Player | None = None,
        keepalive_s: float = 15.0,
    ) -> None:
        self.url, self.token = url, token
        self.player = player
        self.keepalive_s = keepalive_s
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        #: Whether answers are PCM16 audio (what the player plays).
        self._pcm_voice = q.get("response_format") == ["voice"] and q.get(
            "audio_format", ["pcm"]
        ) == ["pcm"]
        self.ws: Any = None
        self.conversation_id: str | None = None
        #: Every server message so far, in order.
        self.log: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._t0 = time.monotonic()
        #: Times (client clock, ms) playback was stopped by ``server.vad-speech-started``.
        self.barge_ins: list[float] = []

    async def __aenter__(self) -> AmigoClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ms(self) -> float:
        return (time.monotonic() - self._t0) * 1000

    async def connect(self) -> None:
        """Open the WebSocket (the token in the subprotocol) and start the keep-alive."""
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        self.ws = await connect(
            self.url, subprotocols=[Subprotocol(PREFIX + self.token)], max_size=None
        )
        self._tasks.append(asyncio.create_task(self._read()))
        self._tasks.append(asyncio.create_task(self._keepalive()))
        if self.player is not None:
            self._tasks.append(asyncio.create_task(self._play(self.player)))

    async def close(self) -> None:
        """``client.close-connection``, then the socket closes."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.send(type="client.close-connection")
                await asyncio.wait_for(self.ws.wait_closed(), 5)
            await self.ws.close()
            rcvd = self.ws.protocol.close_rcvd
            if rcvd is not None and self.close_code is None:
                self.close_code, self.close_reason = rcvd.code, rcvd.reason
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        if self.player is not None:
            self.player.close()

    async def send(self, **msg: Any) -> None:
        """Send one JSON message."""
        await self.ws.send(json.dumps(msg))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            await self.send(type="client.extend-timeout")

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self.ws:
                m = json.loads(raw)
                self.log.append(m)
                self._on_message(m)
                self._queue.put_nowait(m)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd if self.ws is not None else None
            if rcvd is not None:
                self.close_code, self.close_reason = rcvd.code, rcvd.reason
            self._queue.put_nowait(None)

    def _on_message(self, m: dict[str, Any]) -> None:
        p = self.player
        if p is None:
            return
        kind = m.get("type")
        if kind == "server.vad-speech-started":
            p.barge_in()  # stop playback at once
            self.barge_ins.append(self._ms())
        elif kind == "server.new-message" and m.get("message") and self._pcm_voice:
            pcm = np.frombuffer(base64.b64decode(m["message"]), dtype="<i2").astype(np.int16)
            p.push(str(m.get("message_id")), pcm, self._ms())
        elif kind == "server.interaction-complete":
            p.end()

    async def _play(self, p: Player) -> None:
        step = p.frame_ms / 1000
        nxt = time.monotonic()
        while True:
            p.tick(self._ms())
            nxt += step
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Server messages as they come; ends when the connection closes."""
        while True:
            m = await self._queue.get()
            if m is None:
                self._queue.put_nowait(None)
                return
            yield m

    async def until(self, kind: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for a message of type ``kind``; AmigoClosedError if the connection ends first."""

        async def wait() -> dict[str, Any]:
            async for m in self.messages():
                if m.get("type") == kind:
                    return m
            raise AmigoClosedError(self.close_code, self.close_reason)

        return await asyncio.wait_for(wait(), timeout)

    async def turn(self, timeout: float = 60.0) -> AmigoTurn:
        """The next agent message, up to its ``server.interaction-complete``."""
        t = AmigoTurn()

        async def wait() -> AmigoTurn:
            async for m in self.messages():
                if m.get("type") == "server.new-message":
                    t.interaction_id = str(m.get("interaction_id"))
                    t.pieces.append(m)
                elif m.get("type") == "server.interaction-complete":
                    if t.interaction_id and m.get("interaction_id") != t.interaction_id:
                        t.pieces.clear()  # an interrupted answer; take the next
                    t.complete = m
                    return t
            raise AmigoClosedError(self.close_code, self.close_reason)

        return await asyncio.wait_for(wait(), timeout)

    async def start(self, service_id: str, version_set: str = "release") -> str:
        """``client.start-conversation``: the new conversation's id."""
        await self.send(
            type="client.start-conversation",
            service_id=service_id,
            service_version_set_name=version_set,
        )
        m = await self.until("server.conversation-created")
        self.conversation_id = str(m["conversation_id"])
        return self.conversation_id

    async def continue_conversation(self, conversation_id: str) -> None:
        """``client.continue-conversation``."""
        await self.send(type="client.continue-conversation", conversation_id=conversation_id)
        await self.until("server.conversation-retrieved")
        self.conversation_id = conversation_id

    async def send_text(
        self, text: str, *, message_type: str = "user-message", start_interaction: bool = False
    ) -> None:
        """``client.new-text-message``."""
        msg: dict[str, Any] = {"text": text, "message_type": message_type}
        if message_type == "external-event":
            msg["start_interaction"] = start_interaction
        await self.send(type="client.new-text-message", **msg)

    async def switch_vad(self, on: bool) -> None:
        """``client.switch-vad-mode``; returns once the server confirms."""
        await self.send(type="client.switch-vad-mode", vad_mode_on=on)
        await self.until("server.vad-mode-switched")

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        rate: int,
        *,
        speed: float = 1.0,
        chunk_ms: int = 20,
        end: bool = False,
    ) -> None:
        """Send PCM16 mono in ``chunk_ms`` chunks, ``audio_config`` on the first.

        At ``speed`` x real time (0: as fast as possible); ``end`` then sends
        ``audio: null`` (the end of a push-to-talk utterance).
        """
        step = max(1, rate * chunk_ms // 1000)
        t0 = time.monotonic()
        for k in range(0, len(pcm), step):
            msg: dict[str, Any] = {"audio": base64.b64encode(pcm[k : k + step].tobytes()).decode()}
            if k == 0:
                msg["audio_config"] = {
                    "format": "pcm",
                    "sample_rate": rate,
                    "sample_width": 2,
                    "n_channels": 1,
                    "frame_rate": rate,
                }
            await self.send(type="client.new-audio-message", **msg)
            if speed > 0:
                due = t0 + (k + step) / rate / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        if end:
            await self.send(type="client.new-audio-message", audio=None)

    async def finish(self) -> None:
        """Finish the conversation (VAD off first, as the API asks)."""
        if any(m.get("type") == "server.vad-mode-switched" for m in self.log):
            last = [m for m in self.log if m.get("type") == "server.vad-mode-switched"][-1]
            if last.get("current_vad_mode_on"):
                await self.switch_vad(False)
        await self.send(type="client.finish-conversation")
        await self.until("server.conversation-completed")
