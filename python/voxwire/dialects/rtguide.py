"""The rtguide dialect: the Agent C realtime API (seed 000) over the session engine.

REST: ``POST /api/rt/login`` (``{username, password}`` -> ``{agent_c_token, heygen_token,
ui_session_id}``), ``GET /api/rt/refresh_token`` (Bearer JWT -> a fresh one) and
``POST /api/rt/cancel`` (Bearer JWT, form field ``ui_session_id``), each also under
``/rt/...``. WebSocket: ``/api/rt/ws?token=JWT[&ui_session_id][&chat_session_id][&agent_key]``
(also ``/rt/ws``). Every JSON frame is an object with a ``type``; binary frames carry audio:
raw PCM16 mono in (16 kHz, or 24 kHz with ``&input_sample_rate=24000``), PCM16 mono 24 kHz
out (the selected voice's answer; voice ``none`` is text only).

A *UI session* outlives its socket: the engine session runs in one
:class:`~voxwire.server.SessionRunner` over a :class:`Relay` transport owned by this plugin,
and a client reconnecting with a live ``ui_session_id`` re-attaches to it (the old socket is
closed; a turn in progress goes on and its later events reach the new socket). A detached UI
session lives ``linger_s`` seconds (and at most the engine's idle timeout) waiting for one.

Chat sessions are conversations of the platform's store (dialect ``rtguide``) owned by the
user's principal; their messages are the store's items (OpenAI chat format). docs/dialects/
rtguide.md is the wire contract as implemented and every choice where the guide is silent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from voxwire.auth import Principal
from voxwire.dialects._slugwords import WORDS
from voxwire.dialects.base import (
    Accept,
    Handshake,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    Refuse,
    SessionIO,
)
from voxwire.errors import AuthError, StoreUnavailableError, VoxwireError
from voxwire.session import events as ev
from voxwire.store import ConversationRecord

if TYPE_CHECKING:
    from voxwire.config import AgentEntry, VoiceEntry
    from voxwire.platform import Platform
    from voxwire.registry import Registry
    from voxwire.server import Transport
    from voxwire.session import Session

log = logging.getLogger("voxwire.dialects.rtguide")

DIALECT = "rtguide"
#: Input audio rates a client may pick (``input_sample_rate``); the first is the default.
INPUT_RATES = (16000, 24000)
#: The rate of answer audio frames.
OUTPUT_RATE = 24000
#: Commands that never cancel a running turn.
NON_CANCELLING = frozenset({"ping", "pong", "client_wants_cancel"})
#: The most chat sessions one ``get_user_sessions`` returns.
MAX_PAGE = 200
#: The longest text a client may send in one ``text_input``.
MAX_TEXT_CHARS = 256 * 1024

_UI_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+){0,7}$")

WELCOME = (
    "# Welcome to voxwire\n\n"
    "- Type a message, or talk: send raw PCM16 audio frames.\n"
    "- Pick a voice with `set_agent_voice` to hear the answers.\n"
)
WELCOME_BACK = "# Welcome back\n\nYour previous session has been restored."


# -- ids ------------------------------------------------------------------------------------


def slug(words: int = 3) -> str:
    """A MnemonicSlug: ``words`` random lowercase words from :data:`WORDS` joined by ``-``."""
    return "-".join(secrets.choice(WORDS) for _ in range(words))


def is_slug(value: object) -> bool:
    """Whether ``value`` looks like a MnemonicSlug (lowercase words joined by ``-`` or ``:``)."""
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        return False
    return all(_UI_ID.match(part) for part in value.split(":"))


def unique_slug(taken: Callable[[str], bool], *, words: int = 3) -> str:
    """A slug for which ``taken`` is False (a fourth word is added after many collisions)."""
    for attempt in range(64):
        s = slug(words + attempt // 16)
        if not taken(s):
            return s
    raise VoxwireError("could not make a free id")  # pragma: no cover - 64 collisions in 1e8


def iso(t: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC timestamp (None stays None)."""
    if not t:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat()


def _j(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, ensure_ascii=False)


def _words(text: str) -> int:
    return len(text.split())


# -- the relay: a transport that outlives its sockets ---------------------------------------


class _Socket:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.done = asyncio.Event()
        self.pending: asyncio.Task[str | bytes | None] | None = None


class Relay:
    """The transport of a UI session: moves from socket to socket.

    ``recv`` reads the current socket; when it goes away the relay waits up to ``linger_s``
    for another one (then answers None: the session ends). ``send`` writes to the current
    socket, or drops the message when none is attached (a detached session's events are
    lost, as in the guide's server). :meth:`attach` makes a new socket current and closes
    the old one.
    """

    def __init__(self, *, linger_s: float) -> None:
        self.linger_s = linger_s
        self._cur: _Socket | None = None
        self._changed = asyncio.Event()
        self.ended = False

    @property
    def attached(self) -> bool:
        """Whether a socket is attached."""
        return self._cur is not None

    def attach(self, transport: Transport) -> _Socket:
        """Make ``transport`` the current socket; the old one is closed (code 1000)."""
        sock = _Socket(transport)
        old, self._cur = self._cur, sock
        self._changed.set()
        if old is not None:
            self._drop(old, close=True)
        return sock

    def _drop(self, sock: _Socket, *, close: bool) -> None:
        if sock.pending is not None:
            sock.pending.cancel()
            sock.pending = None
        if close and not sock.done.is_set():
            task = asyncio.get_running_loop().create_task(
                _close_quietly(sock.transport, 1000, "ui session re-attached")
            )
            task.add_done_callback(lambda _: sock.done.set())
        else:
            sock.done.set()
        if self._cur is sock:
            self._cur = None
            self._changed.set()

    async def recv(self) -> str | bytes | None:
        """The next client message of whichever socket is attached; None: the session ends."""
        loop = asyncio.get_running_loop()
        detached_since: float | None = None
        while not self.ended:
            sock = self._cur
            if sock is None:
                if detached_since is None:
                    detached_since = loop.time()
                left = detached_since + self.linger_s - loop.time()
                if left <= 0:
                    return None
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
                continue
            detached_since = None
            if sock.pending is None:
                sock.pending = loop.create_task(sock.transport.recv())
            self._changed.clear()
            changed = loop.create_task(self._changed.wait())
            try:
                await asyncio.wait({sock.pending, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            if self._cur is not sock or sock.pending is None or not sock.pending.done():
                continue
            task, sock.pending = sock.pending, None
            try:
                msg = task.result()
            except Exception:
                msg = None
            if msg is None:
                self._drop(sock, close=False)  # the client went away
                continue
            return msg
        return None

    async def send(self, message: str | bytes) -> None:
        """Send to the attached socket; dropped when none is (or it fails)."""
        sock = self._cur
        if sock is None:
            return
        try:
            await sock.transport.send(message)
        except Exception:
            if self._cur is sock:
                self._drop(sock, close=False)

    async def close(self, code: int, reason: str) -> None:
        """End the UI session: close the attached socket with ``code``."""
        self.ended = True
        sock, self._cur = self._cur, None
        self._changed.set()
        if sock is not None:
            if sock.pending is not None:
                sock.pending.cancel()
            await _close_quietly(sock.transport, code, reason)
            sock.done.set()

    def abort(self) -> None:
        """Drop the attached socket's connection at once (the runner's write timeout)."""
        sock = self._cur
        abort = getattr(sock.transport, "abort", None) if sock is not None else None
        if abort is not None:
            abort()

    def end(self) -> None:
        """The session has ended: release every socket."""
        self.ended = True
        sock, self._cur = self._cur, None
        self._changed.set()
        if sock is not None:
            self._drop(sock, close=True)


async def _close_quietly(t: Transport, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await t.close(code, reason)


# -- chat sessions -------------------------------------------------------------------------


@dataclass
class ChatState:
    """The UI session's current chat session (stored once it has something to keep)."""

    id: str
    agent_key: str
    tools: list[str]
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    stored: bool = False


@dataclass
class _Turn:
    """What the codec gathers about the response in progress."""

    response_id: str
    interaction_id: str
    chat_id: str
    user_text: str | None
    audio: bool
    answer: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def message_text(message: dict[str, Any]) -> str:
    """The text of a stored chat message (string content, or its text parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str) and p)
    return ""


# -- the codec -------------------------------------------------------------------------------


class RtguideDialect:
    """The codec of one UI session: JSON events and binary audio <-> intents and facts."""

    name = DIALECT
    audio_encoding = "raw"

    def __init__(self, ui: UISession) -> None:
        self.ui = ui

    # client -> engine

    def decode(self, message: str | bytes) -> ev.Intent:
        """Binary frames are audio; JSON events are commands (``audio_input_delta`` is audio)."""
        if isinstance(message, bytes | bytearray | memoryview):
            return ev.AppendAudio(None, bytes(message))
        try:
            o = json.loads(message)
        except ValueError:
            return ev.BadMessage(None, "invalid_json", "Invalid JSON received")
        if not isinstance(o, dict) or not isinstance(o.get("type"), str) or not o["type"]:
            return ev.BadMessage(None, "no_type", "Event must have a 'type' field")
        kind = o["type"]
        if kind == "audio_input_delta":
            content = o.get("content")
            try:
                if not isinstance(content, str):
                    raise ValueError
                return ev.AppendAudio(None, base64.b64decode(content, validate=True))
            except (ValueError, binascii.Error):
                return ev.BadMessage(None, "bad_audio", "audio_input_delta.content is not base64")
        return ev.Command(None, kind, o)

    # engine -> client

    def encode(self, fact: ev.Fact) -> str | bytes | list[str | bytes] | None:
        """The rtguide events of ``fact`` (None when it has none)."""
        ui = self.ui
        match fact:
            case ev.AudioDelta(delta=d):
                return d if isinstance(d, bytes) else None
            case ev.ResponseTextDelta(delta=d) | ev.TranscriptDelta(delta=d):
                t = ui.turn
                if t is not None:
                    t.answer.append(d)
                return ui.sev("text_delta", "assistant", content=d, format="markdown")
            case ev.ThoughtDelta(delta=d):
                return ui.sev("thought_delta", "assistant (thought)", content=d, format="markdown")
            case ev.InputSpeechStopped():
                ui.audio_turn_pending = True
                return _j("user_turn_end")
            case ev.ResponseCreated(response=r):
                return ui.turn_started(r)
            case ev.InputTranscriptionCompleted(transcript=text):
                if ui.turn is not None and ui.turn.audio:
                    ui.turn.user_text = text
                return None
            case ev.FunctionCallArgumentsDone():
                return ui.tool_called(fact)
            case ev.ResponseDone(response=r):
                return ui.turn_ended(r)
            case ev.ItemAdded(item=it):
                ui.item_ids.append(it.id)
                return None
            case ev.ItemDeleted(item_id=i):
                with contextlib.suppress(ValueError):
                    ui.item_ids.remove(i)
                return None
            case ev.ConversationEnded(reason=reason):
                return ui.sev(
                    "system_message",
                    "system",
                    content=f"The agent ended the conversation: {reason}",
                    format="markdown",
                    severity="info",
                )
            case ev.Error():
                return self.render_error(fact)
        return None

    def render_error(self, e: ev.Error) -> str | None:
        """An engine error as an ``error`` event (agent notices as warning system messages)."""
        p = e.params
        match e.kind:
            case "bad_message":
                return _j("error", message=p.get("message", "Bad event"), source=None)
            case "agent_notice":
                return self.ui.sev(
                    "system_message",
                    "system",
                    content=str(p.get("message", "")),
                    format="markdown",
                    severity="warning",
                )
            case "item_missing":
                return None  # history reloads delete items the engine already trimmed
            case "idle_timeout":
                msg = f"No activity for {p.get('seconds', 0):g} s; the session ends"
            case "rate_limited":
                msg = f"Too many {p.get('what', 'messages')}: at most {p.get('limit')} a minute"
            case "audio_invalid":
                msg = f"Invalid audio frame: {p.get('detail', '')}"
            case "buffer_full":
                msg = f"Too much audio without a pause (over {p.get('max_ms')} ms)"
            case "audio_empty":
                msg = "Empty audio frame"
            case "response_busy":
                msg = "A turn is already running"
            case _:
                msg = "Internal server error"
        return _j("error", message=msg, source="audio" if e.kind.startswith("audio") else None)


# -- the UI session ------------------------------------------------------------------------


class UISession:
    """One UI session: its engine session, relay, chat session, voice and pending writes."""

    def __init__(
        self,
        plugin: RtguidePlugin,
        ui_id: str,
        principal: Principal,
        user: dict[str, Any],
        platform: Platform,
        chat: ChatState,
        voice: VoiceEntry,
        input_rate: int,
    ) -> None:
        self.plugin = plugin
        self.id = ui_id
        self.principal = principal
        self.user = user
        self.platform = platform
        self.chat = chat
        self.voice = voice
        self.relay = Relay(linger_s=plugin.linger_s)
        self.dialect = RtguideDialect(self)
        self.lock = asyncio.Lock()
        self.jobs: deque[tuple[str, list[dict[str, Any]]]] = deque()
        self.jobs_event = asyncio.Event()
        self.io: SessionIO | None = None
        self.turn: _Turn | None = None
        self.pending_text: str | None = None
        self.audio_turn_pending = False
        self.item_ids: list[str] = []
        self.runner: asyncio.Task[None] | None = None
        self.resumed = bool(chat.messages)
        state = ev.SessionState(
            id="",
            model=platform.config.model,
            input_format="pcm16",
            output_format="pcm16",
            input_rate=input_rate,
            output_rate=OUTPUT_RATE,
            turn_detection=ev.TurnDetection(),
            modalities=self._modalities(voice),
            voice=voice.id,
            transcription=True,
        )
        self.session: Session = platform.new_session(self.dialect, state=state)
        self.session.context = self._context()
        self._tools_to_state()

    @property
    def registry(self) -> Registry:
        """The platform's registry."""
        reg = self.platform.registry
        assert reg is not None  # the platform has started before any handshake
        return reg

    @property
    def owner(self) -> str:
        """Who owns this UI session and its chat sessions."""
        return self.principal.owner

    # -- helpers --

    @staticmethod
    def _modalities(voice: VoiceEntry) -> tuple[ev.Modality, ...]:
        return ("audio",) if voice.output_format == "pcm16" else ("text",)

    def _context(self) -> ev.SessionContext:
        return ev.SessionContext(
            principal=self.principal, agent_id=self.chat.agent_key, conversation_id=self.chat.id
        )

    def _tools_to_state(self) -> None:
        specs = []
        for name in self.chat.tools:
            t = self.registry.tool(name)
            if t is not None:
                specs.append(ev.ToolSpec(t.name, t.description, t.schema()["parameters"]))
        self.session.state = replace(self.session.state, tools=tuple(specs))

    def agent(self) -> AgentEntry:
        """The chat session's agent (the default one if it has gone from the registry)."""
        return self.registry.agent(self.chat.agent_key) or self.registry.default_agent()

    def sev(self, kind: str, role: str, **fields: Any) -> str:
        """A session event of the current chat session."""
        cid = self.chat.id
        return _j(
            kind,
            session_id=cid,
            role=role,
            parent_session_id=None,
            user_session_id=cid,
            **fields,
        )

    def system_message(self, content: str, severity: str = "info") -> str:
        """A ``system_message`` session event."""
        return self.sev(
            "system_message", "system", content=content, format="markdown", severity=severity
        )

    def vendor(self) -> str:
        """``anthropic`` for claude/bedrock models, else ``openai``."""
        model = self.agent().model or self.platform.config.model
        return "anthropic" if model.startswith(("claude", "bedrock")) else "openai"

    def agent_config(self) -> dict[str, Any]:
        """The chat's agent as a ``CurrentAgentConfiguration`` (version 2)."""
        a = self.agent()
        return {
            "version": 2,
            "key": a.id,
            "name": a.name,
            "agent_description": a.description or None,
            "model_id": a.model or self.platform.config.model,
            "persona": a.instructions,
            "uid": None,
            "agent_params": {},
            "prompt_metadata": {},
            "tools": list(self.chat.tools),
            "blocked_tool_patterns": [],
            "allowed_tool_patterns": [],
            "category": list(a.category),
        }

    def chat_session_object(self) -> dict[str, Any]:
        """The current chat session as a ``ChatSession`` (version 1)."""
        c = self.chat
        return {
            "version": 1,
            "session_id": c.id,
            "token_count": sum(_words(message_text(m)) for m in c.messages),
            "context_window_size": 0,
            "session_name": c.name,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
            "deleted_at": None,
            "user_id": self.principal.id,
            "metadata": c.metadata,
            "messages": c.messages,
            "agent_config": self.agent_config(),
            "vendor": self.vendor(),
            "display_name": c.name or f"New chat with {self.agent().name}",
        }

    def index_entry(self, rec: ConversationRecord) -> dict[str, Any]:
        """A stored chat session as a ``ChatSessionIndexEntry``."""
        a = self.registry.agent(rec.agent_id)
        return {
            "session_id": rec.id,
            "session_name": rec.name or None,
            "created_at": iso(rec.created_at),
            "updated_at": iso(rec.updated_at),
            "user_id": self.principal.id,
            "agent_key": rec.agent_id or None,
            "agent_name": a.name if a is not None else None,
        }

    def current_index_entry(self) -> dict[str, Any]:
        """The current chat session's index entry."""
        c = self.chat
        return {
            "session_id": c.id,
            "session_name": c.name,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
            "user_id": self.principal.id,
            "agent_key": c.agent_key,
            "agent_name": self.agent().name,
        }

    def voice_object(self, v: VoiceEntry) -> dict[str, Any]:
        """A voice as ``AvailableVoiceModel``."""
        return {
            "voice_id": v.id,
            "vendor": v.vendor,
            "description": v.description,
            "output_format": v.output_format,
        }

    # -- the initial sequences --

    def init_sequence(self) -> list[str]:
        """What a new UI session's first socket gets, in order."""
        reg = self.registry
        agents = [
            {
                "name": a.name,
                "key": a.id,
                "agent_description": a.description or None,
                "category": list(a.category),
                "toolsets": [t.name for t in a.tools],
            }
            for a in reg.agents()
        ]
        avatars = [
            {
                "avatar_id": av.id,
                "created_at": av.created_at,
                "default_voice": av.default_voice,
                "is_public": av.is_public,
                "normal_preview": av.preview,
                "pose_name": av.name or av.id,
                "status": av.status,
            }
            for av in reg.avatars()
        ]
        return [
            _j("ui_session_id_changed", ui_session_id=self.id),
            _j("chat_user_data", user=self.user),
            _j("avatar_list", avatars=avatars),
            _j("voice_list", voices=[self.voice_object(v) for v in reg.voices()]),
            _j("agent_list", agents=agents),
            _j("tool_catalog", tools=self.tool_catalog()),
            _j("chat_session_changed", chat_session=self.chat_session_object()),
            self.sev(
                "render_media",
                "assistant",
                content_type="text/markdown",
                url=None,
                name=None,
                content=WELCOME_BACK if self.chat.messages else WELCOME,
                content_bytes=None,
                sent_by_class="voxwire",
                sent_by_function=None,
                foreign_content=False,
            ),
            _j("user_turn_start"),
        ]

    def tool_catalog(self) -> list[dict[str, Any]]:
        """The registry's tools, each a toolset of one function (``schemas`` is a list)."""
        out = []
        for t in self.registry.tools():
            s = t.schema()
            fn = {"name": t.name, "description": t.description, "parameters": s["parameters"]}
            out.append(
                {
                    "name": t.name,
                    "description": t.description,
                    "schemas": [{"type": "function", "function": fn}],
                }
            )
        return out

    # -- turns (called by the codec, synchronously, in the engine's order) --

    def turn_started(self, r: ev.Response) -> list[str | bytes]:
        """A response started: ``interaction{started}`` and ``completion{running}``."""
        audio = self.pending_text is None and self.audio_turn_pending
        self.audio_turn_pending = False
        iid = f"{self.chat.id}:{slug(2)}"
        self.turn = _Turn(r.id, iid, self.chat.id, self.pending_text, audio)
        self.pending_text = None
        return [
            self.sev("interaction", "assistant", started=True, id=iid),
            self.sev(
                "completion",
                "assistant",
                running=True,
                completion_options={},
                stop_reason=None,
                input_tokens=0,
                output_tokens=0,
            ),
        ]

    def tool_called(self, f: ev.FunctionCallArgumentsDone) -> list[str | bytes]:
        """The agent called a tool: ``tool_select_delta`` and ``tool_call{active}``."""
        call = {
            "id": f.call_id,
            "type": "function",
            "function": {"name": f.name, "arguments": f.arguments},
        }
        if self.turn is not None:
            self.turn.tool_calls.append(call)
        return [
            self.sev("tool_select_delta", "assistant", tool_calls=[call]),
            self.sev(
                "tool_call",
                "assistant",
                active=True,
                vendor=self.vendor(),
                tool_calls=[call],
                tool_results=None,
            ),
        ]

    def turn_ended(self, r: ev.Response) -> list[str | bytes]:
        """A response ended: its history, ``completion{running: false}``, the user's turn.

        The new messages are queued for the store (written by the session's task).
        """
        t, self.turn = self.turn, None
        out: list[str | bytes] = []
        stop = {"completed": "stop", "cancelled": "cancelled", "incomplete": "length"}.get(
            r.status, "error"
        )
        if r.status == "failed":
            out.append(_j("error", message="The agent failed to answer", source="agent"))
        user_text = t.user_text if t is not None else None
        answer = "".join(t.answer) if t is not None else ""
        messages: list[dict[str, Any]] = []
        if t is not None:
            if t.tool_calls:
                out.append(
                    self.sev(
                        "tool_call",
                        "assistant",
                        active=False,
                        vendor=self.vendor(),
                        tool_calls=t.tool_calls,
                        tool_results=None,
                    )
                )
            messages.append(
                {"role": "user", "content": user_text if user_text is not None else "[audio]"}
            )
            if answer or t.tool_calls:
                m: dict[str, Any] = {"role": "assistant", "content": answer}
                if t.tool_calls:
                    m["tool_calls"] = t.tool_calls
                messages.append(m)
            if t.chat_id == self.chat.id:
                self.chat.messages.extend(messages)
                self.chat.updated_at = time.time()
            self.jobs.append((t.chat_id, messages))
            self.jobs_event.set()
            out.append(
                self.sev("history_delta", "assistant", vendor=self.vendor(), messages=messages)
            )
        out.append(
            self.sev(
                "completion",
                "assistant",
                running=False,
                completion_options={},
                stop_reason=stop,
                input_tokens=_words(user_text or ""),
                output_tokens=r.output_tokens,
            )
        )
        if t is not None:
            out.append(self.sev("interaction", "assistant", started=False, id=t.interaction_id))
        out.append(_j("user_turn_start"))
        return out

    # -- the store --

    async def ensure_stored(self) -> None:
        """Create the current chat session in the store if it is not there yet."""
        c = self.chat
        if c.stored:
            return
        rec = ConversationRecord(
            id=c.id,
            owner=self.owner,
            dialect=DIALECT,
            agent_id=c.agent_key,
            name=c.name or "",
            metadata=c.metadata,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
        if not await self.platform.store.create_conversation(rec):
            raise VoxwireError("chat session id taken")  # ids are checked when made
        if c.messages:
            await self.platform.store.set_items(c.id, c.messages)
        c.stored = True

    async def flush_jobs(self) -> None:
        """Write finished turns' messages to the store; announce the sessions (in order)."""
        store = self.platform.store
        while self.jobs:
            chat_id, messages = self.jobs[0]
            if chat_id == self.chat.id:
                await self.ensure_stored()
            ok = await store.append_items(chat_id, messages)
            self.jobs.popleft()
            if ok and chat_id == self.chat.id:
                self.broadcast(_j("chat_session_added", chat_session=self.current_index_entry()))

    def broadcast(self, message: str) -> None:
        """Send ``message`` to every live UI session of this user (this one included)."""
        for other in list(self.plugin.ui_sessions.values()):
            if other.owner == self.owner and other.io is not None and not other.relay.ended:
                other.io.send(message)

    async def owned(self, chat_id: object) -> ConversationRecord | None:
        """The stored chat session ``chat_id`` if this user owns it, else None."""
        return await _owned(self.platform, self.owner, chat_id)

    async def new_chat_id(self) -> str:
        """A chat session id free in the store and among live UI sessions."""
        return await _new_chat_id(self.plugin, self.platform)

    def switch_chat(self, chat: ChatState, io: SessionIO) -> None:
        """Make ``chat`` current: the engine's history becomes its messages."""
        self.chat = chat
        now = time.monotonic()
        s = io.session
        for item_id in list(self.item_ids):
            s.apply(ev.DeleteItem(None, item_id), now)
        self.item_ids.clear()
        self._load_history(s, now)
        s.context = self._context()
        self._tools_to_state()
        io.flush()

    def _load_history(self, s: Session, now: float) -> None:
        for m in self.chat.messages[-s.limits.max_items :]:
            role = m.get("role")
            if role not in ("user", "assistant"):
                continue
            text = message_text(m)
            part = ev.Content("input_text" if role == "user" else "text", text=text)
            item = ev.Item(f"item_{secrets.token_hex(10)}", "message", "completed", role, (part,))
            s.apply(ev.CreateItem(None, item), now)


# -- commands --------------------------------------------------------------------------------


Handler = Callable[["UISession", dict[str, Any], SessionIO], Awaitable[None]]


async def _ping(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(_j("pong"))


async def _pong(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    return


async def _get_agents(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(ui.init_sequence()[4])
    io.send(_j("agent_configuration_changed", agent_config=ui.agent_config()))


async def _set_agent(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    key = p.get("agent_key")
    a = ui.registry.agent(key) if isinstance(key, str) else None
    if a is None:
        io.send(_j("error", message=f"Agent '{key}' not found", source="set_agent"))
        return
    if a.id != ui.chat.agent_key:
        ui.chat.agent_key = a.id
        ui.chat.tools = [t.name for t in a.tools]
        io.session.context = ui._context()
        ui._tools_to_state()
        if ui.chat.stored:
            await ui.platform.store.update_conversation(ui.chat.id, agent_id=a.id)
    io.send(_j("agent_configuration_changed", agent_config=ui.agent_config()))


async def _get_avatars(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(ui.init_sequence()[2])


async def _set_avatar(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(
        _j(
            "error",
            message="Avatar sessions are not available on this server",
            source="set_avatar",
        )
    )


async def _set_avatar_session(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    if not isinstance(p.get("avatar_session_id"), str) or not isinstance(
        p.get("access_token"), str
    ):
        io.send(
            _j(
                "error",
                message="set_avatar_session needs access_token and avatar_session_id",
                source="set_avatar_session",
            )
        )
        return
    await _use_voice(ui, "avatar", io)
    io.send(ui.sev("text_delta", "system", content="Avatar session connected", format="markdown"))


async def _get_voices(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(ui.init_sequence()[3])


async def _use_voice(ui: UISession, voice_id: str, io: SessionIO) -> bool:
    v = ui.registry.voice(voice_id)
    if v is None:
        io.send(ui.system_message(f"Voice '{voice_id}' not found", "error"))
        return False
    ui.voice = v
    mods = ui._modalities(v)
    io.session.apply(ev.UpdateSession(None, modalities=mods, voice=v.id), time.monotonic())
    io.send(_j("agent_voice_changed", voice=ui.voice_object(v)))
    return True


async def _set_agent_voice(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    vid = p.get("voice_id")
    if not isinstance(vid, str):
        io.send(ui.system_message("set_agent_voice needs a voice_id", "error"))
        return
    await _use_voice(ui, vid, io)


async def _get_tool_catalog(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(_j("tool_catalog", tools=ui.tool_catalog()))


async def _set_agent_tools(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    tools = p.get("tools")
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        io.send(ui.system_message("set_agent_tools needs a list of tool names", "error"))
        return
    known = [t for t in dict.fromkeys(tools) if ui.registry.tool(t) is not None]
    if len(known) != len(dict.fromkeys(tools)):
        io.send(ui.system_message("Some tools are unknown and were left out", "error"))
    ui.chat.tools = known
    ui._tools_to_state()
    io.send(_j("agent_configuration_changed", agent_config=ui.agent_config()))
    io.send(ui.system_message("Agent tools updated"))


async def _get_user_sessions(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    offset, limit = p.get("offset", 0), p.get("limit", 50)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        offset = 0
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        limit = 50
    limit = min(limit, MAX_PAGE)
    recs, total = await ui.platform.store.list_conversations(
        ui.owner, dialect=DIALECT, offset=offset, limit=limit
    )
    sessions = {
        "chat_sessions": [ui.index_entry(r) for r in recs],
        "total_sessions": total,
        "offset": offset,
    }
    io.send(_j("get_user_sessions_response", sessions=sessions))


async def _text_input(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    text = p.get("text")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        io.send(_j("error", message="text_input needs a text of at most 256 KiB", source=None))
        return
    io.send(_j("user_turn_end"))
    await ui.ensure_stored()
    ui.chat.updated_at = time.time()
    ui.broadcast(_j("chat_session_added", chat_session=ui.current_index_entry()))
    now = time.monotonic()
    item = ev.Item(
        f"item_{secrets.token_hex(10)}",
        "message",
        "completed",
        "user",
        (ev.Content("input_text", text=text),),
    )
    s = io.session
    s.apply(ev.CreateItem(None, item), now)
    ui.pending_text = text
    s.apply(ev.CreateResponse(None), now)
    io.flush()
    if s.response_id is None:  # refused (a rate limit): the user's turn again
        ui.pending_text = None
        io.send(_j("user_turn_start"))


async def _new_chat_session(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    key = p.get("agent_key") or ui.chat.agent_key
    a = ui.registry.agent(key) if isinstance(key, str) else None
    if a is None:
        io.send(_j("error", message=f"Agent '{key}' not found", source="new_chat_session"))
        return
    chat = ChatState(await ui.new_chat_id(), a.id, [t.name for t in a.tools])
    ui.switch_chat(chat, io)
    io.send(_j("chat_session_changed", chat_session=ui.chat_session_object()))


async def _owned(platform: Platform, owner: str, chat_id: object) -> ConversationRecord | None:
    """The stored chat session ``chat_id`` if ``owner`` owns it, else None."""
    if not isinstance(chat_id, str) or not chat_id or len(chat_id) > 200:
        return None
    rec = await platform.store.get_conversation(chat_id)
    if rec is None or rec.owner != owner or rec.dialect != DIALECT:
        return None
    return rec


async def _load_chat(platform: Platform, rec: ConversationRecord) -> ChatState:
    """A stored chat session, messages and all."""
    reg = platform.registry
    assert reg is not None
    items = await platform.store.get_items(rec.id)
    a = reg.agent(rec.agent_id) or reg.default_agent()
    return ChatState(
        id=rec.id,
        agent_key=a.id,
        tools=[t.name for t in a.tools],
        name=rec.name or None,
        metadata=dict(rec.metadata),
        messages=items,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        stored=True,
    )


async def _resume_chat_session(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    sid = p.get("session_id")
    if sid == ui.chat.id:
        io.send(_j("chat_session_changed", chat_session=ui.chat_session_object()))
        return
    rec = await ui.owned(sid)
    if rec is None:
        io.send(_j("error", message=f"Session '{sid}' not found", source="resume_chat_session"))
        return
    ui.switch_chat(await _load_chat(ui.platform, rec), io)
    io.send(_j("chat_session_changed", chat_session=ui.chat_session_object()))
    io.send(ui.system_message(f"Welcome back! **Session ID:** {rec.id}"))


async def _set_chat_session_name(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    name, sid = p.get("session_name"), p.get("session_id")
    if not isinstance(name, str) or len(name) > 1000:
        io.send(
            _j("error", message="session_name must be a string", source="set_chat_session_name")
        )
        return
    if sid is None or sid == ui.chat.id:
        sid = ui.chat.id
        ui.chat.name = name
        if ui.chat.stored:
            await ui.platform.store.update_conversation(sid, name=name)
        else:
            await ui.ensure_stored()
    else:
        if await ui.owned(sid) is None:
            io.send(
                _j("error", message=f"Session '{sid}' not found", source="set_chat_session_name")
            )
            return
        await ui.platform.store.update_conversation(sid, name=name)
    ui.broadcast(_j("chat_session_name_changed", session_name=name, session_id=sid))


async def _set_session_metadata(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    meta = p.get("meta")
    if not isinstance(meta, dict):
        io.send(_j("error", message="meta must be an object", source="set_session_metadata"))
        return
    ui.chat.metadata = meta
    if ui.chat.stored:
        await ui.platform.store.update_conversation(ui.chat.id, metadata=meta)
    else:
        await ui.ensure_stored()
    io.send(_j("session_metadata_changed", meta=meta))


async def _set_session_messages(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    msgs = p.get("messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        io.send(
            _j("error", message="messages must be a list of objects", source="set_session_messages")
        )
        return
    ui.chat.messages = list(msgs)
    if ui.chat.stored:
        await ui.platform.store.set_items(ui.chat.id, ui.chat.messages)
    else:
        await ui.ensure_stored()
    ui.switch_chat(ui.chat, io)
    io.send(ui.sev("history", "system", vendor=ui.vendor(), messages=ui.chat.messages))


async def _delete_chat_session(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    sid = p.get("session_id") or ui.chat.id
    current = sid == ui.chat.id
    rec = await ui.owned(sid)
    if rec is None and not current:
        io.send(_j("error", message=f"Session '{sid}' not found", source="delete_chat_session"))
        return
    if rec is not None:
        await ui.platform.store.delete_conversation(rec.id)
    ui.broadcast(_j("chat_session_deleted", session_id=sid))
    if current:
        a = ui.agent()
        ui.switch_chat(ChatState(await ui.new_chat_id(), a.id, [t.name for t in a.tools]), io)
        io.send(_j("chat_session_changed", chat_session=ui.chat_session_object()))
    io.send(ui.system_message(f"Chat Session {sid} deleted"))


async def _client_wants_cancel(ui: UISession, p: dict[str, Any], io: SessionIO) -> None:
    io.send(_j("cancelled"))
    io.send(ui.system_message("Interaction cancelled by user"))
    if io.session.response_id is not None:
        io.session.apply(ev.CancelResponse(None), time.monotonic())
        io.flush()


COMMANDS: dict[str, Handler] = {
    "ping": _ping,
    "pong": _pong,
    "get_agents": _get_agents,
    "set_agent": _set_agent,
    "get_avatars": _get_avatars,
    "set_avatar": _set_avatar,
    "set_avatar_session": _set_avatar_session,
    "get_voices": _get_voices,
    "set_agent_voice": _set_agent_voice,
    "get_tool_catalog": _get_tool_catalog,
    "set_agent_tools": _set_agent_tools,
    "get_user_sessions": _get_user_sessions,
    "text_input": _text_input,
    "new_chat_session": _new_chat_session,
    "resume_chat_session": _resume_chat_session,
    "set_chat_session_name": _set_chat_session_name,
    "set_session_metadata": _set_session_metadata,
    "set_session_messages": _set_session_messages,
    "delete_chat_session": _delete_chat_session,
    "client_wants_cancel": _client_wants_cancel,
}


# -- the plugin ------------------------------------------------------------------------------


def public_user(principal: Principal, rec: Any) -> dict[str, Any]:
    """The public user object (``ChatUser`` without its password hash)."""
    prof: dict[str, Any] = dict(rec.profile) if rec is not None else {}

    def s(k: str) -> str | None:
        v = prof.get(k)
        return v if isinstance(v, str) else None

    def lst(k: str, default: Sequence[str]) -> list[str]:
        v = prof.get(k)
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else list(default)

    created = iso(rec.created_at) if rec is not None else None
    meta = prof.get("meta")
    return {
        "version": 1,
        "user_id": principal.id,
        "user_name": principal.id,
        "email": s("email"),
        "first_name": s("first_name"),
        "last_name": s("last_name"),
        "created_at": created,
        "updated_at": created,
        "deleted_at": None,
        "roles": lst("roles", principal.scopes),
        "groups": lst("groups", [principal.org] if principal.org else []),
        "meta": meta if isinstance(meta, dict) else {},
        "is_active": True,
        "last_login": None,
    }


def _bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _detail(status: int, detail: str) -> HttpResponse:
    return HttpResponse(status, {"detail": detail})


class RtguidePlugin:
    """The rtguide API's routes, handshake and live UI sessions (one per server process).

    ``token_ttl_s``: how long a login or refresh token lives (8 hours; the guide's server
    uses 8 days, but a JWT cannot be revoked). ``linger_s``: how long a UI session whose
    socket went away waits for the client to re-attach.
    """

    name = DIALECT
    ws_paths: tuple[str, ...] = ("/api/rt/ws", "/rt/ws")

    def __init__(self, *, token_ttl_s: float = 8 * 3600.0, linger_s: float = 120.0) -> None:
        self.token_ttl_s = token_ttl_s
        self.linger_s = linger_s
        #: The live UI sessions of this process, by id.
        self.ui_sessions: dict[str, UISession] = {}
        routes = []
        for prefix in ("/api/rt", "/rt"):
            routes += [
                HttpRoute("POST", f"{prefix}/login", self.login),
                HttpRoute("GET", f"{prefix}/refresh_token", self.refresh_token),
                HttpRoute("POST", f"{prefix}/cancel", self.cancel),
            ]
        self.http_routes: tuple[HttpRoute, ...] = tuple(routes)

    # -- tokens --

    async def _token(self, platform: Platform, principal: Principal) -> str:
        rec = await platform.store.get_user(principal.id) if principal.kind == "user" else None
        token, _ = platform.auth.issue_access(
            principal, ttl_s=self.token_ttl_s, extra={"user": public_user(principal, rec)}
        )
        return token

    async def _principal(self, platform: Platform, token: str | None) -> Principal | None:
        """The user of an rtguide token, when it verifies and the user still exists."""
        if token is None:
            return None
        try:
            p = platform.auth.principal_from_access_token(token)
        except AuthError:
            return None
        if p.kind == "user" and await platform.store.get_user(p.id) is None:
            return None
        return p

    # -- REST --

    async def login(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``POST /api/rt/login``."""
        await platform.start()
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _detail(422, "The body must be a JSON object {username, password}")
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return _detail(422, "username and password must be strings")
        try:
            principal = await platform.auth.login(username, password)
            token = await self._token(platform, principal)
        except AuthError:
            platform.gate.auth_failed(req.peer)
            return _detail(401, "Invalid credentials")
        except StoreUnavailableError:
            return HttpResponse(503, {"detail": "Service unavailable"}, {"Retry-After": "2"})
        ui_id = unique_slug(lambda s: s in self.ui_sessions)
        return HttpResponse(
            200, {"agent_c_token": token, "heygen_token": "None", "ui_session_id": ui_id}
        )

    async def refresh_token(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``GET /api/rt/refresh_token``."""
        await platform.start()
        try:
            p = await self._principal(platform, _bearer(req.headers))
            if p is None:
                platform.gate.auth_failed(req.peer)
                return _detail(401, "Invalid token")
            token = await self._token(platform, p)
        except StoreUnavailableError:
            return HttpResponse(503, {"detail": "Service unavailable"}, {"Retry-After": "2"})
        return HttpResponse(200, {"agent_c_token": token, "heygen_token": "None"})

    async def cancel(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``POST /api/rt/cancel`` (form field, JSON field or query parameter ``ui_session_id``)."""
        await platform.start()
        try:
            p = await self._principal(platform, _bearer(req.headers))
        except StoreUnavailableError:
            return HttpResponse(503, {"detail": "Service unavailable"}, {"Retry-After": "2"})
        if p is None:
            platform.gate.auth_failed(req.peer)
            return _detail(401, "Invalid token")
        ui_id = req.query.get("ui_session_id")
        ctype = req.headers.get("content-type", "")
        if ui_id is None and req.body:
            if "json" in ctype:
                with contextlib.suppress(ValueError):
                    o = json.loads(req.body)
                    ui_id = o.get("ui_session_id") if isinstance(o, dict) else None
            else:
                form = dict(parse_qsl(req.body.decode("utf-8", "replace")))
                ui_id = form.get("ui_session_id")
        if not isinstance(ui_id, str) or not ui_id:
            return _detail(422, "ui_session_id is required")
        ui = self.ui_sessions.get(ui_id)
        if ui is None or ui.owner != p.owner or ui.io is None:
            return _detail(404, "Session not found")
        ui.session.receive(_j("client_wants_cancel"), time.monotonic())
        ui.io.flush()
        return HttpResponse(
            200,
            {"status": "success", "message": f"Cancellation signal sent for session: {ui_id}"},
        )

    # -- WebSocket --

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Check the token; re-attach to a live UI session or make a new one."""
        principal = await self._principal(platform, hs.query.get("token"))
        if principal is None:
            return Refuse(401, {"detail": "Invalid token"})
        ui_id = hs.query.get("ui_session_id")
        live = self.ui_sessions.get(ui_id) if ui_id else None
        if live is not None and live.owner == principal.owner and not live.relay.ended:
            return Accept(live.session, principal=principal, attach=live_attach(live))
        rate = INPUT_RATES[0]
        raw_rate = hs.query.get("input_sample_rate")
        if raw_rate is not None:
            if not raw_rate.isdigit() or int(raw_rate) not in INPUT_RATES:
                return Refuse(400, {"detail": "input_sample_rate must be 16000 or 24000"})
            rate = int(raw_rate)
        reg = platform.registry
        assert reg is not None
        rec = await platform.store.get_user(principal.id) if principal.kind == "user" else None
        user = public_user(principal, rec)
        # A new UI session keeps the id the client brings (login gave it) unless it is in use.
        if ui_id is None or live is not None or not _UI_ID.match(ui_id) or len(ui_id) > 100:
            ui_id = unique_slug(lambda s: s in self.ui_sessions)
        chat: ChatState | None = None
        want = hs.query.get("chat_session_id")
        if want:
            found = await _owned(platform, principal.owner, want)
            if found is not None:
                chat = await _load_chat(platform, found)
        if chat is None:
            a = reg.agent(hs.query.get("agent_key") or "") or reg.default_agent()
            chat = ChatState(await _new_chat_id(self, platform), a.id, [t.name for t in a.tools])
        a = reg.agent(chat.agent_key) or reg.default_agent()
        voice = (reg.voice(a.voice) if a.voice else None) or reg.voice("none") or _none()
        ui = UISession(self, ui_id, principal, user, platform, chat, voice, rate)
        if chat.messages:
            ui._load_history(ui.session, time.monotonic())
        self.ui_sessions[ui_id] = ui
        return Accept(ui.session, principal=principal, attach=first_attach(ui))


def _none() -> VoiceEntry:
    from voxwire.registry import NONE_VOICE

    return NONE_VOICE


async def _new_chat_id(plugin: RtguidePlugin, platform: Platform) -> str:
    for _ in range(16):
        cid = slug(3)
        live = any(u.chat.id == cid for u in plugin.ui_sessions.values())
        if not live and await platform.store.get_conversation(cid) is None:
            return cid
    return unique_slug(lambda s: False, words=4)


def first_attach(ui: UISession) -> Callable[[Transport], Awaitable[None]]:
    """The first socket of a new UI session: start its runner over the relay."""

    async def attach(transport: Transport) -> None:
        from voxwire.server import run_accepted

        sock = ui.relay.attach(transport)
        inner = Accept(
            ui.session,
            principal=ui.principal,
            commands=_commands(ui),
            background=(_main(ui),),
            on_close=_on_close(ui),
        )
        ui.runner = asyncio.get_running_loop().create_task(
            run_accepted(ui.relay, inner, ui.platform)
        )
        await sock.done.wait()

    return attach


def live_attach(ui: UISession) -> Callable[[Transport], Awaitable[None]]:
    """A socket re-attaching to a live UI session: the short sequence, then its events."""

    async def attach(transport: Transport) -> None:
        if ui.relay.ended:
            await _close_quietly(transport, 1000, "ui session ended")
            return
        sock = ui.relay.attach(transport)
        io = ui.io
        if io is not None:
            io.send(_j("chat_session_changed", chat_session=ui.chat_session_object()))
            if io.session.response_id is None:
                io.send(_j("user_turn_start"))
        await sock.done.wait()

    return attach


def _commands(ui: UISession) -> Callable[[ev.Command, SessionIO], Awaitable[None]]:
    async def commands(cmd: ev.Command, io: SessionIO) -> None:
        payload = cmd.payload if isinstance(cmd.payload, dict) else {}
        async with ui.lock:
            try:
                await ui.flush_jobs()
                if io.session.response_id is not None and cmd.name not in NON_CANCELLING:
                    io.session.apply(ev.CancelResponse(None), time.monotonic())
                    io.flush()
                handler = COMMANDS.get(cmd.name)
                if handler is None:
                    io.send(
                        ui.system_message(
                            f"The server did not handle event type: {cmd.name}.", "warning"
                        )
                    )
                    return
                await handler(ui, payload, io)
            except StoreUnavailableError:
                io.send(_j("error", message="The store is unavailable; retry", source=cmd.name))
            except VoxwireError as e:
                log.warning("rtguide %s: %s failed: %s", ui.id, cmd.name, e)
                io.send(_j("error", message=f"Error processing event: {cmd.name}", source=cmd.name))

    return commands


def _main(ui: UISession) -> Callable[[SessionIO], Awaitable[None]]:
    async def main(io: SessionIO) -> None:
        async with ui.lock:
            ui.io = io
            for m in ui.init_sequence():
                io.send(m)
        while True:
            await ui.jobs_event.wait()
            ui.jobs_event.clear()
            async with ui.lock:
                try:
                    await ui.flush_jobs()
                except (StoreUnavailableError, VoxwireError) as e:
                    log.warning("rtguide %s: could not store a turn: %s", ui.id, e)
                    io.send(_j("error", message="Could not store the chat session", source=None))

    return main


def _on_close(ui: UISession) -> Callable[[SessionIO], Awaitable[None]]:
    async def on_close(io: SessionIO) -> None:
        ui.relay.end()
        if ui.plugin.ui_sessions.get(ui.id) is ui:
            del ui.plugin.ui_sessions[ui.id]
        with contextlib.suppress(Exception):
            await ui.flush_jobs()
        ui.io = None

    return on_close


PLUGIN = RtguidePlugin()

__all__ = [
    "DIALECT",
    "INPUT_RATES",
    "OUTPUT_RATE",
    "PLUGIN",
    "ChatState",
    "Relay",
    "RtguideDialect",
    "RtguidePlugin",
    "UISession",
    "is_slug",
    "public_user",
    "slug",
]
