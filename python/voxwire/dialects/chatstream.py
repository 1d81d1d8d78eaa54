"""The chatstream dialect (seed 001): DesktopMate+'s streaming chat at ``/v1/chat/stream``.

JSON text messages with a ``type``; authentication in-band (the handshake takes anyone, the
codec refuses everything but ``authorize`` and ``pong`` until an ``authorize{token}`` with
an API key or a JWT the platform issued has succeeded); a server heartbeat (``ping`` at once
and every 30 s, close 4000 when no ``pong`` comes within 10 s); one text turn at a time:
``chat_message`` -> ``stream_start``, ``stream_token`` as the agent writes, ``tts_ready_chunk``
per finished sentence (cut and cleaned by :mod:`voxwire.dialects.chatstream_text`),
``tool_call``/``tool_result``, ``stream_end``, all with one ``turn_id``; ``interrupt_stream``;
the avatar and background lists of the registry; and ``POST /v1/tts/synthesize``, the speech
of each ``tts_ready_chunk`` as a WAV file (espeak-ng through :class:`voxwire.agents.EspeakTTS`).

Conversations are stored (:mod:`voxwire.store`): ``conversation_id`` continues one, and the
agent sees its last ``limit`` messages. docs/dialects/chatstream.md is the wire contract as
implemented, with every choice made where the seed is silent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from voxwire.dialects.base import (
    Accept,
    Handshake,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    Refuse,
    SessionIO,
)
from voxwire.dialects.chatstream_text import Sentence, SentenceSplitter
from voxwire.errors import InputTooLargeError, StoreUnavailableError, VoxwireError
from voxwire.session import events as ev

if TYPE_CHECKING:
    from voxwire.agents import TTS
    from voxwire.auth import Principal
    from voxwire.platform import Platform

__all__ = [
    "CLIENT_TYPES",
    "PLUGIN",
    "ChatstreamDialect",
    "ChatstreamPlugin",
    "wav_bytes",
]

log = logging.getLogger("voxwire.dialects.chatstream")

#: The client message types.
CLIENT_TYPES = (
    "authorize",
    "pong",
    "chat_message",
    "interrupt_stream",
    "fetch_backgrounds",
    "fetch_avatar_configs",
    "switch_avatar_config",
)
#: Close codes: no pong in time, authentication failed, too many bad messages in a row.
CLOSE_PING_TIMEOUT = 4000
CLOSE_AUTH_FAILED = 4001
CLOSE_TOO_MANY_ERRORS = 1008
#: ``error.code`` of an interrupted turn, and of an interrupt with nothing to interrupt.
CODE_INTERRUPTED = 4003
CODE_NOTHING_TO_INTERRUPT = 4004
#: The most stored messages a ``chat_message`` may ask the agent to see (``limit``).
MAX_LIMIT = 1000
#: ``node`` of the turn events: the agent writes text and calls tools, tools answer.
AGENT_NODE = "agent"
TOOLS_NODE = "tools"
#: The largest background image served.
MAX_BACKGROUND_BYTES = 32 << 20
_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}


# --------------------------------------------------------------------------------------
# Per-connection state shared by the codec and the plugin's handlers


@dataclass
class _ChatstreamTurn:
    """The turn in progress: its ids and where its text has got to."""

    turn_id: str
    conversation_id: str
    user_id: str
    #: The ``id`` of the chat_message that started it (echoed on ``stream_start``).
    reply_to: str | None
    response_id: str | None = None
    text: list[str] = field(default_factory=list)
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    #: The 4003 error text once an interrupt was asked for.
    interrupt_message: str = ""


@dataclass
class _ChatstreamConn:
    """One connection's state."""

    connection_id: str
    peer: str
    principal: Principal | None = None
    #: ``authorize`` messages decoded but not handled yet (messages meanwhile are queued as
    #: commands and checked when their turn comes).
    authorizing: int = 0
    #: Error replies in a row.
    errors: int = 0
    pongs: int = 0
    pong_event: asyncio.Event | None = None
    #: The persona of the last ``switch_avatar_config``.
    persona: str | None = None
    #: Store writes in flight (a finished turn's reply).
    writes: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def authorized(self) -> bool:
        return self.principal is not None

    def got_pong(self) -> None:
        self.pongs += 1
        if self.pong_event is not None:
            self.pong_event.set()


class _ChatstreamInvalid(Exception):
    """A message that fails validation: the ``error`` text to answer."""


# --------------------------------------------------------------------------------------
# The codec


class ChatstreamDialect:
    """The chatstream codec: client messages to intents, facts to messages.

    Every valid client message becomes an :class:`~voxwire.session.events.Command` handled
    in arrival order by :class:`ChatstreamPlugin` (authorization needs the store, and turns
    need the stored conversation); a message that is not valid JSON, has no type, fails
    validation, has an unknown type or comes before any ``authorize`` becomes a
    :class:`~voxwire.session.events.BadMessage` answered with ``error``, and the
    ``max_errors``-th error in a row a command that closes the connection. Facts become the
    turn's stream: ``stream_start``, ``stream_token`` (plus the ``tts_ready_chunk`` of each
    sentence it finishes), ``tool_call``, ``tool_result`` and ``stream_end``.
    ``clock`` stamps ``timestamp`` (seconds since the epoch).
    """

    name = "chatstream"
    audio_encoding = "base64"

    def __init__(
        self,
        conn: _ChatstreamConn | None = None,
        *,
        max_errors: int = 5,
        clock: Callable[[], float] = time.time,
        on_turn_end: Callable[[_ChatstreamTurn, str, str], None] | None = None,
    ) -> None:
        self.conn = conn or _ChatstreamConn(str(uuid.uuid4()), "?")
        self.max_errors = max_errors
        self.clock = clock
        self.on_turn_end = on_turn_end
        #: The turn in progress (set by the plugin before it starts the response).
        self.turn: _ChatstreamTurn | None = None

    # -- messages out -------------------------------------------------------------------

    def message(self, type_: str, reply_to: str | None = None, **fields: Any) -> str:
        """A server message: ``type``, the fields, ``id`` and ``timestamp``.

        ``id`` is the id of the client message it answers (None when there is none).
        """
        d: dict[str, Any] = {"type": type_, **fields, "id": reply_to, "timestamp": self.clock()}
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False)

    def error(self, text: str, code: int | None = None, reply_to: str | None = None) -> str:
        """An ``error`` message."""
        return self.message("error", reply_to, error=text, code=code)

    # -- decode -------------------------------------------------------------------------

    def decode(self, message: str | bytes) -> ev.Intent:
        """One client message as a command (or a bad message)."""
        try:
            o = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return self._bad("Invalid JSON format", None)
        if not isinstance(o, dict):
            return self._bad("Invalid message format", None)
        eid = o.get("id")
        eid = eid if isinstance(eid, str) else None
        t = o.get("type")
        if t is None:
            return self._bad("Missing message type", eid)
        if not isinstance(t, str) or not _base_ok(o):
            return self._bad("Invalid message format", eid)
        conn = self.conn
        if t == "pong":
            conn.got_pong()
            return ev.Command(eid, "pong")
        if t == "authorize":
            token = o.get("token")
            if not isinstance(token, str):
                return self._bad("Invalid message format", eid)
            conn.authorizing += 1
            return ev.Command(eid, "authorize", {"token": token})
        if not conn.authorized and conn.authorizing == 0:
            return self._bad("Authentication required", eid)
        if t not in CLIENT_TYPES:
            return self._bad(f"Unsupported message type: {_clip(t)}", eid)
        try:
            payload = _validate(t, o)
        except _ChatstreamInvalid as e:
            return self._bad(str(e), eid)
        return ev.Command(eid, t, payload)

    def _bad(self, text: str, eid: str | None) -> ev.Intent:
        """An error reply, counted; the ``max_errors``-th in a row closes the connection."""
        self.conn.errors += 1
        if self.conn.errors >= self.max_errors:
            return ev.Command(eid, "_fatal", {"error": text})
        return ev.BadMessage(eid, "invalid", text)

    # -- encode -------------------------------------------------------------------------

    def encode(self, fact: ev.Fact) -> str | list[str | bytes] | None:
        """The messages of a fact (None: it has none here)."""
        turn = self.turn
        match fact:
            case ev.ResponseCreated(response=r) if turn is not None:
                turn.response_id = r.id
                return self.message(
                    "stream_start",
                    turn.reply_to,
                    **self._stamp(turn),
                    conversation_id=turn.conversation_id,
                )
            case ev.ResponseTextDelta(delta=chunk) if self._mine(turn, fact.response_id):
                assert turn is not None
                turn.text.append(chunk)
                out: list[str | bytes] = [
                    self.message("stream_token", chunk=chunk, node=AGENT_NODE, **self._stamp(turn))
                ]
                out += self._speech(turn, turn.splitter.push(chunk))
                return out
            case ev.FunctionCallArgumentsDone() if self._mine(turn, fact.response_id):
                assert turn is not None
                return self.message(
                    "tool_call",
                    tool_name=fact.name,
                    args=fact.arguments,
                    call_id=fact.call_id,
                    node=AGENT_NODE,
                    **self._stamp(turn),
                )
            case ev.FunctionCallOutputDone() if self._mine(turn, fact.response_id):
                assert turn is not None
                return self.message(
                    "tool_result",
                    tool_name=fact.name,
                    result=fact.output,
                    call_id=fact.call_id,
                    node=TOOLS_NODE,
                    **self._stamp(turn),
                )
            case ev.ResponseDone(response=r) if self._mine(turn, r.id):
                assert turn is not None
                return self._end(turn, r)
            case ev.Error():
                return self._render_error(fact)
        return None

    @staticmethod
    def _mine(turn: _ChatstreamTurn | None, response_id: str) -> bool:
        return turn is not None and turn.response_id == response_id

    def _stamp(self, turn: _ChatstreamTurn) -> dict[str, Any]:
        return {
            "turn_id": turn.turn_id,
            "connection_id": self.conn.connection_id,
            "user_id": turn.user_id,
        }

    def _speech(self, turn: _ChatstreamTurn, sentences: list[Sentence]) -> list[str | bytes]:
        return [
            self.message("tts_ready_chunk", chunk=s.text, emotion=s.emotion, **self._stamp(turn))
            for s in sentences
        ]

    def _end(self, turn: _ChatstreamTurn, r: ev.Response) -> list[str | bytes]:
        self.turn = None
        content = "".join(turn.text)
        if r.status == "cancelled":
            turn.splitter.reset()
            if self.on_turn_end is not None:
                self.on_turn_end(turn, content, "interrupted")
            text = turn.interrupt_message or f"Turn {turn.turn_id} interrupted"
            return [
                self.message(
                    "stream_end",
                    **self._stamp(turn),
                    status="interrupted",
                    reason="Client requested interruption",
                ),
                self.error(text, CODE_INTERRUPTED),
            ]
        out = self._speech(turn, turn.splitter.flush())
        status = "completed" if r.status == "completed" else "failed"
        if r.status == "failed":
            out.append(self.error("Failed to process message: the agent failed", 500))
        if self.on_turn_end is not None:
            self.on_turn_end(turn, content, status)
        end = self.message(
            "stream_end",
            **self._stamp(turn),
            conversation_id=turn.conversation_id,
            content=content,
        )
        if status != "completed":
            d = json.loads(end)
            d["status"] = status
            end = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
        out.append(end)
        return out

    def _render_error(self, e: ev.Error) -> str | None:
        p = e.params
        match e.kind:
            case "bad_message":
                return self.error(str(p.get("message", "Invalid message format")), None, e.event_id)
            case "idle_timeout":
                return None  # the connection just closes, as the source project's does
            case "rate_limited":
                what, limit = p.get("what"), p.get("limit")
                return self.error(f"Rate limit exceeded: {limit} {what} per minute", 429)
            case "internal":
                return self.error("Internal server error", 500, e.event_id)
            case "agent_notice":
                return self.error(str(p.get("message", "")), None)
        return self.error(f"Failed to process message: {e.kind}", None, e.event_id)


def _clip(s: str, n: int = 64) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _base_ok(o: dict[str, Any]) -> bool:
    """The envelope's optional ``id`` (text) and ``timestamp`` (seconds) are well typed."""
    i, ts = o.get("id"), o.get("timestamp")
    if i is not None and not isinstance(i, str):
        return False
    return ts is None or (isinstance(ts, int | float) and not isinstance(ts, bool))


def _nonempty(o: dict[str, Any], key: str) -> str:
    v = o.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _ChatstreamInvalid(f"{key} is required and must be a non-empty string")
    return v


def _validate(t: str, o: dict[str, Any]) -> dict[str, Any]:
    """The checked fields of a message of type ``t`` (raises :class:`_ChatstreamInvalid`)."""
    if t == "chat_message":
        bad = "Invalid chat message format: "
        content = o.get("content")
        if not isinstance(content, str):
            raise _ChatstreamInvalid(bad + "content is required and must be a string")
        agent_id = _nonempty(o, "agent_id")
        user_id = _nonempty(o, "user_id")
        persona = o.get("persona")
        if persona is not None and not isinstance(persona, str):
            raise _ChatstreamInvalid(bad + "persona must be a string")
        images = o.get("images")
        if images is not None and (
            not isinstance(images, list) or not all(isinstance(x, str) for x in images)
        ):
            raise _ChatstreamInvalid(bad + "images must be a list of strings")
        limit = o.get("limit", 10)
        if limit is None:
            limit = 10
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
            raise _ChatstreamInvalid(bad + f"limit must be an integer from 0 to {MAX_LIMIT}")
        conv = o.get("conversation_id")
        if conv is not None:
            try:
                conv = str(uuid.UUID(conv)) if isinstance(conv, str) else None
            except ValueError:
                conv = None
            if conv is None:
                raise _ChatstreamInvalid(bad + "conversation_id must be a UUID")
        metadata = o.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise _ChatstreamInvalid(bad + "metadata must be an object")
        return {
            "content": content,
            "agent_id": agent_id,
            "user_id": user_id,
            "persona": persona,
            "images": images or [],
            "limit": limit,
            "conversation_id": conv,
            "metadata": metadata,
        }
    if t == "interrupt_stream":
        turn_id = o.get("turn_id")
        if turn_id is not None and not isinstance(turn_id, str):
            raise _ChatstreamInvalid("Invalid message format")
        return {"turn_id": turn_id}
    if t == "switch_avatar_config":
        file = o.get("file")
        if not isinstance(file, str) or not file:
            raise _ChatstreamInvalid("Invalid message format")
        return {"file": file}
    return {}


# --------------------------------------------------------------------------------------
# Audio for the TTS endpoint


def wav_bytes(pcm: npt.NDArray[np.int16], rate: int) -> bytes:
    """A mono 16-bit WAV file of ``pcm`` at ``rate``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# The plugin


class ChatstreamPlugin:
    """``/v1/chat/stream``, ``POST /v1/tts/synthesize`` and ``GET /bg/{name}`` on the server.

    ``ping_interval_s``: the heartbeat's period (a ping goes out at once, then at this
    interval); ``pong_timeout_s``: how long a ping waits for a pong before the connection
    is closed with 4000; ``idle_timeout_s``: close after this long without a client message
    (None: the server's ``idle_timeout``, 300 s by default); ``max_errors``: error replies in
    a row that close the connection (1008); ``tts``: the speech of the TTS endpoint (None:
    espeak-ng, with the voice ``reference_id`` names).
    """

    name = "chatstream"
    ws_paths: tuple[str, ...] = ("/v1/chat/stream",)

    def __init__(
        self,
        *,
        ping_interval_s: float = 30.0,
        pong_timeout_s: float = 10.0,
        idle_timeout_s: float | None = None,
        max_errors: int = 5,
        tts: TTS | None = None,
    ) -> None:
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_errors = max_errors
        self.tts = tts
        self._espeak: dict[str, TTS] = {}
        self.http_routes: tuple[HttpRoute, ...] = (
            HttpRoute("POST", "/v1/tts/synthesize", self._synthesize),
            HttpRoute("GET", "/bg/{name}", self._background),
        )

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Accept anyone: authorization is the first message (``authorize``)."""
        conn = _ChatstreamConn(str(uuid.uuid4()), hs.peer)
        conn.pong_event = asyncio.Event()
        handler = _Handler(self, conn)
        codec = ChatstreamDialect(conn, max_errors=self.max_errors, on_turn_end=handler.turn_ended)
        handler.codec = codec
        limits = platform.config.limits
        if self.idle_timeout_s is not None:
            limits = replace(limits, idle_timeout_s=self.idle_timeout_s)
        state = ev.SessionState(id="", model="", modalities=("text",), turn_detection=None)
        session = platform.new_session(codec, state=state, limits=limits)
        return Accept(
            session,
            commands=handler.command,
            background=(handler.heartbeat,),
            on_close=handler.closed,
        )

    # -- REST ---------------------------------------------------------------------------

    def _tts_for(self, voice: str) -> TTS | None:
        if self.tts is not None:
            return self.tts
        from voxwire.agents import EspeakTTS

        if not EspeakTTS.available():
            return None
        tts = self._espeak.get(voice)
        if tts is None:
            tts = self._espeak[voice] = EspeakTTS(voice=voice)
        return tts

    async def _synthesize(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``POST /v1/tts/synthesize``: ``{text, reference_id?, output_format?}`` -> WAV."""
        if platform.auth_required:
            auth = req.headers.get("authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            try:
                who = await platform.authenticate([token]) if token else None
            except StoreUnavailableError:
                return HttpResponse(503, {"detail": "Service unavailable"}, {"Retry-After": "2"})
            if who is None:
                platform.gate.auth_failed(req.peer)
                return HttpResponse(401, {"detail": "Unauthorized"})
        try:
            body = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            return HttpResponse(422, {"detail": "Invalid JSON body"})
        if not isinstance(body, dict):
            return HttpResponse(422, {"detail": "The body must be a JSON object"})
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return HttpResponse(422, {"detail": "text is required and must be a non-empty string"})
        fmt = body.get("output_format", "base64")
        if fmt not in ("base64", "bytes"):
            return HttpResponse(422, {"detail": "output_format must be 'base64' or 'bytes'"})
        audio_format = body.get("audio_format")
        if audio_format not in (None, "wav"):
            return HttpResponse(422, {"detail": "audio_format must be 'wav'"})
        voice = "en-us"
        ref = body.get("reference_id")
        if ref is not None:
            entry = (
                platform.registry.voice(ref) if isinstance(ref, str) and platform.registry else None
            )
            if entry is None or entry.tts != "espeak-ng" or not entry.tts_voice:
                return HttpResponse(422, {"detail": "Unknown reference_id"})
            voice = entry.tts_voice
        tts = self._tts_for(voice)
        if tts is None:
            return HttpResponse(503, {"detail": "No text-to-speech is available"})
        try:
            pcm, rate = await tts.synthesize(text)
        except InputTooLargeError:
            return HttpResponse(422, {"detail": "text is too long to speak"})
        except VoxwireError as e:
            log.warning("TTS failed: %s: %s", type(e).__name__, e)
            return HttpResponse(500, {"detail": "Speech synthesis failed"})
        data = wav_bytes(pcm, rate)
        if fmt == "bytes":
            return HttpResponse(200, raw=data, content_type="audio/wav")
        return HttpResponse(200, {"audio_data": base64.b64encode(data).decode(), "format": fmt})

    async def _background(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``GET /bg/{name}``: a background image the registry lists."""
        name = req.params.get("name", "")
        path = platform.registry.background_path(name) if platform.registry else None
        if path is None:
            return HttpResponse(404, {"detail": "Not found"})

        def read() -> bytes | None:
            with open(path, "rb") as f:
                data = f.read(MAX_BACKGROUND_BYTES + 1)
            return None if len(data) > MAX_BACKGROUND_BYTES else data

        try:
            data = await asyncio.to_thread(read)
        except OSError:
            return HttpResponse(404, {"detail": "Not found"})
        if data is None:
            return HttpResponse(413, {"detail": "Image too large"})
        suffix = path.suffix.lower()
        return HttpResponse(
            200, raw=data, content_type=_IMAGE_TYPES.get(suffix, "application/octet-stream")
        )


class _Handler:
    """One connection's commands, heartbeat and end."""

    def __init__(self, plugin: ChatstreamPlugin, conn: _ChatstreamConn) -> None:
        self.plugin = plugin
        self.conn = conn
        self.codec: ChatstreamDialect  # set right after construction
        self._io: SessionIO | None = None

    # -- helpers --------------------------------------------------------------------------

    def _ok(self) -> None:
        self.conn.errors = 0

    def _fail(
        self, io: SessionIO, text: str, reply_to: str | None, code: int | None = None
    ) -> None:
        """Answer ``error`` (counted: the ``max_errors``-th in a row closes)."""
        io.send(self.codec.error(text, code, reply_to))
        self.conn.errors += 1
        if self.conn.errors >= self.plugin.max_errors:
            io.close(CLOSE_TOO_MANY_ERRORS, "Too many consecutive errors")

    # -- commands -------------------------------------------------------------------------

    async def command(self, cmd: ev.Command, io: SessionIO) -> None:
        """Handle one client message (in arrival order)."""
        self._io = io
        conn, name, eid = self.conn, cmd.name, cmd.event_id
        p: dict[str, Any] = cmd.payload or {}
        if name == "pong":
            return
        if name == "_fatal":
            io.send(self.codec.error(str(p.get("error")), None, eid))
            io.close(CLOSE_TOO_MANY_ERRORS, "Too many consecutive errors")
            return
        if name == "authorize":
            conn.authorizing -= 1
            await self._authorize(io, p["token"], eid)
            return
        if not conn.authorized:
            self._fail(io, "Authentication required", eid)
            return
        try:
            if name == "chat_message":
                await self._chat(io, p, eid)
            elif name == "interrupt_stream":
                self._interrupt(io, p.get("turn_id"), eid)
            elif name == "fetch_backgrounds":
                reg = io.platform.registry
                files = [f"/bg/{n}" for n in reg.backgrounds()] if reg else []
                io.send(self.codec.message("background_files", eid, files=files))
                self._ok()
            elif name == "fetch_avatar_configs":
                reg = io.platform.registry
                found = reg.avatar_configs() if reg else ()
                configs = [{"filename": c.file, "name": c.name} for c in found]
                io.send(self.codec.message("avatar_config_files", eid, configs=configs))
                self._ok()
            elif name == "switch_avatar_config":
                self._switch(io, p["file"], eid)
        except StoreUnavailableError:
            log.warning("store unavailable during %s", name)
            self._fail(io, "Internal server error", eid, 500)

    async def _authorize(self, io: SessionIO, token: str, eid: str | None) -> None:
        conn, platform = self.conn, io.platform
        try:
            who = await platform.authenticate([token]) if token.strip() else None
        except StoreUnavailableError:
            io.send(self.codec.error("Internal server error", 500, eid))
            return
        if who is None:
            platform.gate.auth_failed(conn.peer)
            io.send(self.codec.message("authorize_error", eid, error="Authentication failed"))
            io.close(CLOSE_AUTH_FAILED, "Authentication failed")
            return
        conn.principal = who
        self._ok()
        io.send(self.codec.message("authorize_success", eid, connection_id=conn.connection_id))

    async def _chat(self, io: SessionIO, p: dict[str, Any], eid: str | None) -> None:
        session, codec, conn = io.session, self.codec, self.conn
        if session.response_id is not None or codec.turn is not None:
            self._fail(io, "Failed to process message: Another turn is already active", eid)
            return
        platform = io.platform
        store, reg = platform.store, platform.registry
        assert conn.principal is not None and reg is not None
        owner = conn.principal.owner
        if conn.writes:  # the last turn's reply must be stored before it is read back
            await asyncio.gather(*conn.writes, return_exceptions=True)
        conv_id: str = p["conversation_id"] or str(uuid.uuid4())
        history: list[dict[str, Any]] = []
        rec = await store.get_conversation(conv_id) if p["conversation_id"] else None
        if rec is not None and (rec.owner != owner or rec.dialect != "chatstream"):
            self._fail(io, "Failed to process message: Unknown conversation_id", eid)
            return
        if rec is None:
            from voxwire.store.base import ConversationRecord

            created = await store.create_conversation(
                ConversationRecord(
                    conv_id,
                    owner=owner,
                    dialect="chatstream",
                    agent_id=p["agent_id"],
                    metadata=p["metadata"] or {},
                )
            )
            if not created:
                self._fail(io, "Failed to process message: Unknown conversation_id", eid)
                return
        elif p["limit"] > 0:
            history = await store.get_items(conv_id, last=p["limit"])
        agent = reg.agent(p["agent_id"]) or reg.default_agent()
        persona = p["persona"]
        if persona is None:
            persona = conn.persona if conn.persona is not None else agent.render_instructions()
        now = time.time()
        user_item = {
            "role": "user",
            "content": p["content"],
            "user_id": p["user_id"],
            "created_at": now,
        }
        if p["images"]:
            user_item["images"] = len(p["images"])
        if p["metadata"]:
            user_item["metadata"] = p["metadata"]
        await store.append_items(conv_id, [user_item])
        if session.response_id is not None:  # cannot happen: commands run one at a time
            self._fail(io, "Failed to process message: Another turn is already active", eid)
            return
        # The engine's conversation is this turn's: the stored history, then the message.
        t = time.monotonic()
        for it in session.items:
            session.apply(ev.DeleteItem(None, it.id), t)
        for h in history:
            role = h.get("role")
            text = h.get("content")
            if role not in ("user", "assistant") or not isinstance(text, str):
                continue
            part = ev.Content("input_text" if role == "user" else "text", text=text)
            item = ev.Item(f"item_{uuid.uuid4().hex}", "message", "completed", role, (part,))
            session.apply(ev.CreateItem(None, item), t)
        user = ev.Item(
            f"item_{uuid.uuid4().hex}",
            "message",
            "completed",
            "user",
            (ev.Content("input_text", text=p["content"]),),
        )
        session.apply(ev.CreateItem(None, user), t)
        tools = agent.tools or reg.tools()
        specs = tuple(ev.ToolSpec(x.name, x.description, x.schema()["parameters"]) for x in tools)
        session.state = replace(session.state, tools=specs)
        session.context = ev.SessionContext(
            principal=conn.principal,
            agent_id=agent.id,
            variables={"user_id": p["user_id"], "connection_id": conn.connection_id},
            conversation_id=conv_id,
        )
        codec.turn = _ChatstreamTurn(str(uuid.uuid4()), conv_id, p["user_id"], eid)
        session.apply(ev.CreateResponse(eid, ("text",), persona), t)
        if session.response_id is None:  # refused (a rate limit): the engine said why
            codec.turn = None
        else:
            self._ok()
        io.flush()

    def _interrupt(self, io: SessionIO, turn_id: str | None, eid: str | None) -> None:
        session, turn = io.session, self.codec.turn
        rid = session.response_id
        if rid is None or turn is None:
            self._fail(io, "No active turns to interrupt", eid, CODE_NOTHING_TO_INTERRUPT)
            return
        if turn_id is not None and turn_id != turn.turn_id:
            self._fail(io, f"Turn {_clip(turn_id)} not found", eid, CODE_NOTHING_TO_INTERRUPT)
            return
        turn.interrupt_message = (
            f"Turn {turn.turn_id} interrupted" if turn_id else "Interrupted 1 active turns"
        )
        session.apply(ev.CancelResponse(eid, rid), time.monotonic())
        self._ok()
        io.flush()

    def _switch(self, io: SessionIO, file: str, eid: str | None) -> None:
        from voxwire.config import thaw
        from voxwire.registry import safe_file_name

        reg = io.platform.registry
        conf = reg.avatar_config(file) if reg else None
        if conf is None:
            shown = file if safe_file_name(file) else "(invalid file name)"
            self._fail(io, f"Config file not found: {_clip(shown)}", eid)
            return
        info = thaw(conf.model_info)
        if not isinstance(info, dict):
            info = {}
        name = info.get("name")
        if isinstance(name, str) and "url" not in info:
            info["url"] = f"/live2d/{name}/runtime/{name}.model3.json"
        self.conn.persona = conf.persona_prompt or None
        io.send(
            self.codec.message(
                "set_model_and_conf",
                eid,
                model_info=info,
                conf_name=conf.name,
                conf_uid=conf.uid,
                client_uid=self.conn.connection_id,
                persona_prompt=conf.persona_prompt,
            )
        )
        io.send(self.codec.message("avatar_config_switched", eid, file=conf.file))
        self._ok()

    # -- the turn's end -----------------------------------------------------------------

    def turn_ended(self, turn: _ChatstreamTurn, content: str, status: str) -> None:
        """Store the agent's reply (called by the codec when a turn ends)."""
        io = self._io
        if io is None:
            return
        item: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "turn_id": turn.turn_id,
            "created_at": time.time(),
        }
        if status != "completed":
            item["status"] = status
        store = io.platform.store

        async def write() -> None:
            try:
                await store.append_items(turn.conversation_id, [item])
            except StoreUnavailableError:
                log.warning("store unavailable: turn %s not stored", turn.turn_id)

        try:
            task = asyncio.get_running_loop().create_task(write())
        except RuntimeError:  # no loop: the codec used on its own
            return
        self.conn.writes.add(task)
        task.add_done_callback(self.conn.writes.discard)

    # -- background and end ---------------------------------------------------------------

    async def heartbeat(self, io: SessionIO) -> None:
        """``ping`` at once and every ``ping_interval_s``; close 4000 without a pong."""
        conn, plugin = self.conn, self.plugin
        event = conn.pong_event
        assert event is not None
        loop = asyncio.get_running_loop()
        while True:
            sent_at = loop.time()
            seen = conn.pongs
            io.send(self.codec.message("ping"))
            try:
                async with asyncio.timeout(plugin.pong_timeout_s):
                    while conn.pongs == seen:
                        event.clear()
                        await event.wait()
            except TimeoutError:
                io.close(CLOSE_PING_TIMEOUT, "Ping timeout")
                return
            await asyncio.sleep(max(0.0, sent_at + plugin.ping_interval_s - loop.time()))

    async def closed(self, io: SessionIO) -> None:
        """Let the last reply's store write finish."""
        writes = list(self.conn.writes)
        if writes:
            with contextlib.suppress(Exception):
                await asyncio.gather(*writes, return_exceptions=True)


PLUGIN = ChatstreamPlugin()
