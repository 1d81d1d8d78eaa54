"""The smallest.ai Atoms realtime agent dialect (seed 004).

Two steps, as the vendor's Python guide does it: a backend calls
``POST /atoms/v1/conversation/register-call`` with its API key and gets a single-use ``wct_``
token (30 s) with the agent, mode and variables bound to it; the client connects to
``/atoms/v1/agent/connect?token=wct_...``. The API-key flow connects directly
(``?token=<key>`` or ``Authorization: Bearer <key>``, with ``agent_id``, ``mode``,
``sample_rate`` and URL-encoded JSON ``variables``). After the call,
``GET /atoms/v1/conversation/{call_id}`` gives its transcript from the store.

On the wire (JSON text only, audio as base64 PCM16 LE mono at the session rate):
``session.created`` first; in ``webcall`` mode the agent opens with its greeting
(``agent_start_talking``, ``output_audio.delta``, cumulative ``transcript.delta`` paced with
the audio, ``transcript``, ``agent_stop_talking``); the client streams
``input_audio_buffer.append`` (server VAD), speaking over the agent gives ``interruption``;
``chat`` mode takes ``input_text.send`` and answers with text only. docs/dialects/atoms.md
has the whole contract and every choice where the vendor's documents are silent.

:class:`AtomsDialect` is the codec (one per session: it keeps the state of the agent's turn
to pace the transcript with the audio); :class:`AtomsPlugin` the routes and handshake.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from voxwire.session import events as ev

if TYPE_CHECKING:
    from voxwire.auth import Principal
    from voxwire.config import AgentEntry
    from voxwire.dialects.base import (
        Accept,
        Handshake,
        HttpRequest,
        HttpResponse,
        HttpRoute,
        Refuse,
        SessionIO,
    )
    from voxwire.platform import Platform

log = logging.getLogger("voxwire.dialects.atoms")

#: The API's path prefix (``https://api.smallest.ai/atoms/v1``).
PREFIX = "/atoms/v1"
#: The sample rates the API-key flow takes (input and output); tokens use 24000.
SAMPLE_RATES = (8000, 16000, 24000, 48000)
DEFAULT_SAMPLE_RATE = 24000
MODES = ("webcall", "chat")
#: How long a ``wct_`` token lives, in seconds.
TOKEN_TTL_S = 30.0
#: Variables the server fills itself: stripped from the client's.
RESERVED_VARIABLES = frozenset(
    {
        "call_id",
        "conversation_type",
        "agent_number",
        "user_number",
        "current_date",
        "current_time",
        "current_day",
        "agent_gender",
        "default_language",
        "supported_languages",
        "timezone",
    }
)
#: Most variables a call takes, and the longest key and string value.
MAX_VARIABLES = 64
MAX_VARIABLE_KEY = 128
MAX_VARIABLE_VALUE = 4096
#: Longest ``function_call.result`` output, in UTF-8 bytes.
MAX_RESULT_BYTES = 65536
#: Client tools: timeout bounds and default (ms), most tools, most ``session.update`` messages.
TOOL_TIMEOUT_MS = (1000, 60000)
DEFAULT_TOOL_TIMEOUT_MS = 15000
MAX_CLIENT_TOOLS = 64
MAX_TOOL_UPDATES = 32
#: Longest call, in seconds (the vendor's limit: 15 minutes).
MAX_CALL_S = 15 * 60.0
#: Speech rate used to pace the assistant transcript with its audio when the agent's TTS
#: gives no timing marks (espeak-ng's 175 words a minute is about 15 characters a second).
CHARS_PER_SECOND = 15.0

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_APPEND_HEADS = (
    '{"type":"input_audio_buffer.append","audio":"',
    '{"type": "input_audio_buffer.append", "audio": "',
)
_B64_ALPHABET = (string.ascii_letters + string.digits + "+/=").encode()


def new_call_id(now_s: float | None = None) -> str:
    """``CALL-<ms epoch>-<6 hex>``, as the vendor's examples show."""
    ms = int((time.time() if now_s is None else now_s) * 1000)
    return f"CALL-{ms}-{secrets.token_hex(3)}"


def _msg(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def error_message(code: str, message: str) -> str:
    """The wire form of an error: ``{"type": "error", "code", "message"}``."""
    return _msg("error", code=code, message=message)


def closed_message(reason: str) -> str:
    """``session.closed`` with ``reason``."""
    return _msg("session.closed", reason=reason)


class InvalidVariables(ValueError):
    """``variables`` is not an object of strings, numbers and booleans (within limits)."""


def clean_variables(raw: Any) -> dict[str, str | int | float | bool]:
    """The call's variables, checked, without the reserved keys.

    Raises :class:`InvalidVariables` when ``raw`` is not a JSON object of string, number or
    boolean values (at most :data:`MAX_VARIABLES`, keys and strings within limits).
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidVariables("variables must be an object")
    if len(raw) > MAX_VARIABLES:
        raise InvalidVariables(f"at most {MAX_VARIABLES} variables")
    out: dict[str, str | int | float | bool] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not 0 < len(k) <= MAX_VARIABLE_KEY:
            raise InvalidVariables("variable names are 1-128 characters")
        if isinstance(v, str):
            if len(v) > MAX_VARIABLE_VALUE:
                raise InvalidVariables(f"variable {k!r} is longer than {MAX_VARIABLE_VALUE}")
        elif not isinstance(v, bool | int | float) or v != v or v in (float("inf"), -float("inf")):
            raise InvalidVariables(f"variable {k!r} must be a string, number or boolean")
        if k not in RESERVED_VARIABLES:
            out[k] = v
    return out


def _as_text(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass(frozen=True)
class ClientTool:
    """A tool the client runs (``session.update{tools}``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_ms: int = DEFAULT_TOOL_TIMEOUT_MS
    expects_response: bool = True


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class _AgentTurn:
    """What the codec knows of the agent's turn in progress."""

    #: All the text the agent produced so far.
    text: str = ""
    #: How much of it the client has been shown (a word boundary).
    revealed: int = 0
    #: Audio sent, in ms, and when the first piece went out (the clock's time).
    sent_ms: float = 0.0
    first_audio: float | None = None
    talking: bool = False
    #: The TTS's timing (ev.SpeechMarks): when the audio speaks each character of ``text``,
    #: in ms from the start of the answer's audio, one per character, in order. Empty: the
    #: agent gave none, and the text is paced at ``chars_per_second``.
    marks: list[float] = field(default_factory=list)


class AtomsDialect:
    """The Atoms codec for one session (it paces the transcript, so it keeps state).

    ``mode`` is ``webcall`` or ``chat``; ``session_id`` and ``call_id`` are what
    ``session.created`` reports; ``sample_rate`` the wire rate both ways. ``setup_error`` (a
    code and message) makes the session a fatal setup failure: ``session.created`` becomes
    that error (the plugin then closes with 4000). ``clock`` (monotonic seconds) paces the
    transcript; ``wall`` (epoch seconds) stamps ``agent_start_talking``. ``agent_tools``
    are the registry agent's own tool names (client tools may not reuse them).
    """

    name = "atoms"
    #: Audio travels as base64 text inside JSON events.
    audio_encoding = "base64"

    def __init__(
        self,
        *,
        mode: str = "webcall",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        session_id: str | None = None,
        call_id: str | None = None,
        setup_error: tuple[str, str] | None = None,
        chars_per_second: float = CHARS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        agent_tools: frozenset[str] = frozenset(),
    ) -> None:
        self.mode = mode
        self.sample_rate = sample_rate
        self.session_id = session_id or str(uuid.uuid4())
        self.call_id = call_id or new_call_id()
        self.setup_error = setup_error
        self.chars_per_second = chars_per_second
        self.clock = clock
        self.wall = wall
        self.agent_tools = agent_tools
        #: Once True (the session is ending), the engine's facts are no longer sent.
        self.closing = False
        #: The reason the session ended, once it did (``ended``, ``client_requested``...).
        self.end_reason: str | None = None
        #: The finished turns, for the stored transcript: ``{"role", "text"}`` dicts.
        self.transcript: list[dict[str, Any]] = []
        #: The client's tools by name, and the tool calls awaiting a result
        #: (call id -> deadline on ``clock``).
        self.client_tools: dict[str, ClientTool] = {}
        self.pending_calls: dict[str, float] = {}
        #: Tool results have been added and the agent should answer them once idle.
        self.results_waiting = False
        self.tool_updates = 0
        #: Called when something the plugin's background task handles happened (a tool call
        #: to time, a turn ended, the agent ended the call).
        self.wake: Callable[[], None] = lambda: None
        self._turn = _AgentTurn()
        self._ended = False
        #: The last user transcript.delta sent: (item id, text).
        self._user_partial: tuple[str, str] | None = None

    # ----------------------------------------------------------------------------------
    # decode

    def decode(self, message: str | bytes) -> ev.Intent:
        """One client message as an intent (a :class:`BadMessage` when it is not valid)."""
        if isinstance(message, bytes):
            return ev.BadMessage(
                None, "invalid_event", "binary frames are not supported: send JSON text"
            )
        if message.endswith('"}') and message.startswith(_APPEND_HEADS) and not self.closing:
            # The common case, exactly {"type": ..., "audio": "<base64 alphabet>"}: no JSON
            # parse (see the OpenAI dialect's fast path).
            head = _APPEND_HEADS[0] if message[8] == '"' else _APPEND_HEADS[1]
            audio = message[len(head) : -2]
            if (
                self.mode == "webcall"
                and audio.isascii()
                and not audio.encode().translate(None, _B64_ALPHABET)
            ):
                return ev.AppendAudio(None, audio)
        try:
            obj = json.loads(message)
        except (ValueError, RecursionError):
            return ev.BadMessage(None, "invalid_event", "the message is not valid JSON")
        if not isinstance(obj, dict):
            return ev.BadMessage(None, "invalid_event", "the message must be a JSON object")
        try:
            return self._decode(obj)
        except _Invalid as e:
            return ev.BadMessage(None, e.code, e.message)

    def _decode(self, o: dict[str, Any]) -> ev.Intent:
        t = o.get("type")
        if not isinstance(t, str):
            raise _Invalid("invalid_event", "type is required")
        if self.closing:
            raise _Invalid("no_session", "the session has ended")
        if t == "input_audio_buffer.append":
            audio = o.get("audio")
            if not isinstance(audio, str) or not audio:
                raise _Invalid("invalid_event", "audio is required")
            if self.mode != "webcall":
                raise _Invalid("invalid_event", "audio input is not available in chat mode")
            return ev.AppendAudio(None, audio)
        if t == "input_audio_buffer.commit":
            return ev.Command(None, "noop")  # server VAD decides turns: a no-op
        if t == "input_text.send":
            text = o.get("text")
            if not isinstance(text, str) or not text:
                raise _Invalid("invalid_event", "text is required (a non-empty string)")
            return ev.Command(None, "input_text.send", text)
        if t == "session.update":
            if "tools" not in o:
                return ev.Command(None, "noop")
            return self._tools_update(o["tools"])
        if t == "session.close":
            self.closing = True
            return ev.Command(None, "session.close")
        if t == "function_call.result":
            call_id, output = o.get("call_id"), o.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise _Invalid("invalid_event", "call_id is required")
            if not isinstance(output, str):
                raise _Invalid("invalid_event", "output is required (a string)")
            if len(output.encode("utf-8", "surrogatepass")) > MAX_RESULT_BYTES:
                raise _Invalid(
                    "result_too_large", f"output is longer than {MAX_RESULT_BYTES} bytes"
                )
            if call_id not in self.pending_calls:
                raise _Invalid("unknown_call_id", "no function call awaits a result with this id")
            del self.pending_calls[call_id]
            return ev.Command(None, "function_call.result", (call_id, output))
        raise _Invalid("invalid_event", f"unknown event type {t[:64]!r}")

    def _tools_update(self, raw: Any) -> ev.Intent:
        self.tool_updates += 1
        if self.tool_updates > MAX_TOOL_UPDATES:
            raise _Invalid("too_many_updates", f"at most {MAX_TOOL_UPDATES} tool updates a call")
        if not isinstance(raw, list) or len(raw) > MAX_CLIENT_TOOLS:
            raise _Invalid("invalid_tools", f"tools must be a list of at most {MAX_CLIENT_TOOLS}")
        tools: dict[str, ClientTool] = {}
        for k, t in enumerate(raw):
            if not isinstance(t, dict) or t.get("type", "function") != "function":
                raise _Invalid("invalid_tools", f"tools[{k}] must be a function definition")
            name = t.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _Invalid("invalid_tools", f"tools[{k}].name must be 1-64 of [A-Za-z0-9_-]")
            if name in tools:
                raise _Invalid("invalid_tools", f"tool {name!r} is defined twice")
            if name in self.agent_tools:
                raise _Invalid("tool_name_conflict", f"the agent already has a tool {name!r}")
            desc = t.get("description", "")
            params = t.get("parameters", {"type": "object", "properties": {}})
            timeout = t.get("timeout_ms", DEFAULT_TOOL_TIMEOUT_MS)
            expects = t.get("expectsResponse", True)
            if not isinstance(desc, str) or not isinstance(params, dict):
                raise _Invalid("invalid_tools", f"tools[{k}]: bad description or parameters")
            if (
                not isinstance(timeout, int)
                or isinstance(timeout, bool)
                or not TOOL_TIMEOUT_MS[0] <= timeout <= TOOL_TIMEOUT_MS[1]
            ):
                raise _Invalid("invalid_tools", f"tools[{k}].timeout_ms must be 1000-60000")
            if not isinstance(expects, bool):
                raise _Invalid("invalid_tools", f"tools[{k}].expectsResponse must be a boolean")
            tools[name] = ClientTool(name, desc, params, timeout, expects)
        self.client_tools = tools
        return ev.UpdateSession(
            None,
            tools=tuple(ev.ToolSpec(t.name, t.description, t.parameters) for t in tools.values()),
        )

    # ----------------------------------------------------------------------------------
    # encode

    def encode(self, fact: ev.Fact) -> str | list[str | bytes] | None:
        """The wire messages of ``fact`` (several for some), or None."""
        if isinstance(fact, ev.SessionCreated):
            if self.setup_error is not None:
                self.closing = True
                return error_message(*self.setup_error)
            return _msg(
                "session.created",
                session_id=self.session_id,
                call_id=self.call_id,
                sample_rate=self.sample_rate,
                channels=1,
            )
        if isinstance(fact, ev.Error):
            out = self.render_error(fact)
            if out is None:
                return None
            if fact.kind == "idle_timeout":  # the engine closes next
                self.closing, self.end_reason = True, "idle_timeout"
                return [error_message(*out), closed_message("idle_timeout")]
            return error_message(*out)
        if self.closing:
            return None
        t = self._turn
        match fact:
            case ev.SessionUpdated():
                return _msg("session.updated", tools=list(self.client_tools))
            case ev.InputTranscriptionDelta(item_id=item, text=text):
                # The ASR's hypothesis of the whole turn so far: sent as it is when it
                # changed (cumulative, "replace, don't append"; it may revise words).
                text = text.strip()
                if not text or self._user_partial == (item, text):
                    return None
                self._user_partial = (item, text)
                return _msg("transcript.delta", role="user", text=text)
            case ev.InputTranscriptionCompleted(item_id=item, transcript=text):
                self.transcript.append({"role": "user", "text": text})
                shown, self._user_partial = self._user_partial, None
                final = _msg("transcript", role="user", text=text)
                if shown == (item, text):  # the last delta already carries it
                    return final
                return [_msg("transcript.delta", role="user", text=text), final]
            case ev.ResponseCreated():
                self._turn = _AgentTurn()
            case ev.ResponseTextDelta(delta=d):  # chat mode: text only, cumulative
                t.text += d
                t.revealed = len(t.text)
                return _msg("transcript.delta", role="assistant", text=t.text)
            case ev.TranscriptDelta(delta=d):  # webcall: shown as the audio plays
                t.text += d
            case ev.SpeechMarks(marks=marks):  # the TTS's own timing of the text
                last = t.marks[-1] if t.marks else 0.0
                for ms, _ in marks:  # kept non-decreasing (bisected)
                    last = max(last, ms)
                    t.marks.append(last)
            case ev.AudioDelta(delta=audio):
                return self._audio(t, audio if isinstance(audio, str) else audio.decode())
            case ev.FunctionCallArgumentsDone():
                return self._function_call(fact)
            case ev.ConversationEnded():
                self._ended = True
            case ev.ResponseDone(response=r):
                return self._turn_done(t, r) or None
        return None

    def _audio(self, t: _AgentTurn, audio: str) -> list[str | bytes]:
        out: list[str | bytes] = []
        if not t.talking:
            t.talking = True
            t.first_audio = self.clock()
            out.append(self._talking("agent_start_talking"))
        n = len(audio)
        pad = audio.count("=", max(0, n - 2))
        t.sent_ms += (n * 3 // 4 - pad) / 2 * 1000 / self.sample_rate
        out.append(_msg("output_audio.delta", audio=audio))
        shown = self._shown(t)
        if shown > t.revealed:
            t.revealed = shown
            out.append(_msg("transcript.delta", role="assistant", text=t.text[:shown].rstrip()))
        return out

    def _played_ms(self, t: _AgentTurn) -> float:
        """The audio the client has played, as far as the server can tell.

        What was sent, and no more than the time since the first piece went out.
        """
        if t.first_audio is None:
            return 0.0
        return min(t.sent_ms, (self.clock() - t.first_audio) * 1000)

    def _shown(self, t: _AgentTurn) -> int:
        """How much of the text goes with the audio played so far (a word boundary).

        With the TTS's marks, the characters whose mark the played audio has reached (a
        word shows once the audio reaches the mark after its last character, the next
        word's start: it has been spoken); without them, ``chars_per_second`` of played
        audio.
        """
        played = self._played_ms(t)
        if t.marks:
            k = bisect.bisect_right(t.marks, played)
        else:
            k = int(played * self.chars_per_second / 1000)
        text = t.text
        if k >= len(text):
            return len(text)
        if k <= 0:
            return 0
        if not text[k].isspace():
            cut = max(text.rfind(" ", 0, k + 1), text.rfind("\n", 0, k + 1))
            k = cut if cut > 0 else 0
        return k

    def _talking(self, kind: str) -> str:
        stamp = datetime.fromtimestamp(self.wall(), UTC).replace(tzinfo=None)
        return _msg(kind, timestamp=stamp.isoformat(timespec="milliseconds"))

    def _function_call(self, f: ev.FunctionCallArgumentsDone) -> str:
        try:
            args = json.loads(f.arguments) if f.arguments else {}
        except ValueError:
            args = {}
        tool = self.client_tools.get(f.name)
        if tool is None or tool.expects_response:
            timeout = (tool.timeout_ms if tool else DEFAULT_TOOL_TIMEOUT_MS) / 1000
            self.pending_calls[f.call_id] = self.clock() + timeout
            self.wake()
        return _msg(
            "function_call",
            call_id=f.call_id,
            name=f.name,
            arguments=args if isinstance(args, dict) else {"value": args},
        )

    def _turn_done(self, t: _AgentTurn, r: ev.Response) -> list[str | bytes]:
        out: list[str | bytes] = []
        interrupted = r.status == "cancelled" and r.reason in ("turn_detected", "client_cancelled")
        if self.mode == "chat":
            if t.text:
                out.append(_msg("transcript", role="assistant", text=t.text))
                self.transcript.append({"role": "assistant", "text": t.text})
        elif interrupted:
            if t.talking:
                heard = t.text[: self._shown(t)].rstrip()
                out.append(_msg("interruption"))
                out.append(_msg("transcript", role="assistant", text=heard))
                out.append(self._talking("agent_stop_talking"))
                self.transcript.append({"role": "assistant", "text": heard, "interrupted": True})
        elif t.text or t.talking:
            if not t.talking:
                out.append(self._talking("agent_start_talking"))
            if t.revealed < len(t.text):
                out.append(_msg("transcript.delta", role="assistant", text=t.text.rstrip()))
            if t.text:
                out.append(_msg("transcript", role="assistant", text=t.text.rstrip()))
                self.transcript.append({"role": "assistant", "text": t.text.rstrip()})
            out.append(self._talking("agent_stop_talking"))
        t.talking = False
        if r.status == "failed":
            out.append(error_message("internal_error", "The agent failed to answer."))
        if self._ended:
            out.append(closed_message("ended"))
            self.closing, self.end_reason = True, "ended"
        self.wake()
        return out

    def render_error(self, e: ev.Error) -> tuple[str, str] | None:
        """An engine error as ``(code, message)`` (None: not the client's business)."""
        p = e.params
        match e.kind:
            case "bad_message":
                return p["code"], p["message"]
            case "audio_empty":
                return "invalid_event", "audio is required"
            case "audio_invalid":
                return (
                    "invalid_event",
                    f"audio must be base64 PCM16 LE mono at {p['rate']} Hz: {p['detail']}",
                )
            case "buffer_full":
                return "invalid_event", f"more than {p['max_ms']} ms of audio in one turn"
            case "rate_limited":
                return "rate_limited", f"more than {p['limit']} {p['what']} a minute"
            case "idle_timeout":
                return "idle_timeout", f"no message for {p['seconds']:g} s"
            case "agent_notice":
                return str(p["code"]), str(p["message"])
            case "response_busy":
                return None  # a turn ended while the agent answered: nothing to tell
        return "internal_error", "internal error"


# --------------------------------------------------------------------------------------
# The plugin: routes, handshake, commands


def _errors(status: int, *messages: str) -> HttpResponse:
    from voxwire.dialects.base import HttpResponse

    return HttpResponse(status, {"status": False, "errors": list(messages)})


def _bearer(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


@dataclass
class _Call:
    """What a handshake settled: who, which agent, how."""

    principal: Principal
    agent: AgentEntry
    mode: str
    sample_rate: int
    variables: dict[str, str | int | float | bool]
    setup_error: tuple[str, str] | None = None


class AtomsPlugin:
    """The Atoms API on the server (see the module docstring).

    ``token_ttl_s``: how long ``wct_`` tokens live; ``max_call_s``: the longest call
    (``session.closed{reason: "ended"}`` then); ``chars_per_second``: the speech rate the
    transcript is paced at.
    """

    name = "atoms"
    ws_paths: tuple[str, ...] = (f"{PREFIX}/agent/connect",)

    def __init__(
        self,
        *,
        token_ttl_s: float = TOKEN_TTL_S,
        max_call_s: float = MAX_CALL_S,
        chars_per_second: float = CHARS_PER_SECOND,
    ) -> None:
        from voxwire.dialects.base import HttpRoute

        self.token_ttl_s = token_ttl_s
        self.max_call_s = max_call_s
        self.chars_per_second = chars_per_second
        self.http_routes: tuple[HttpRoute, ...] = (
            HttpRoute("POST", f"{PREFIX}/conversation/register-call", self._register_call),
            HttpRoute("GET", f"{PREFIX}/conversation/{{call_id}}", self._get_conversation),
        )

    # -- REST -------------------------------------------------------------------------

    async def _principal(self, req: HttpRequest, platform: Platform) -> Principal | None:
        key = _bearer(req.headers)
        p = await platform.authenticate([key] if key else [])
        if p is None:
            platform.gate.auth_failed(req.peer)
        return p

    async def _register_call(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        from voxwire.dialects.base import HttpResponse
        from voxwire.errors import StoreUnavailableError

        try:
            principal = await self._principal(req, platform)
            if principal is None:
                return _errors(401, "Invalid or missing API key")
            try:
                body = json.loads(req.body or b"null")
            except ValueError:
                return _errors(400, "The body must be JSON")
            if not isinstance(body, dict):
                return _errors(400, "The body must be a JSON object")
            agent_id = body.get("agent_id")
            if not isinstance(agent_id, str) or not agent_id:
                return _errors(400, "agent_id is required")
            mode = body.get("mode", "webcall")
            if mode not in MODES:
                return _errors(400, "mode must be 'webcall' or 'chat'")
            try:
                variables = clean_variables(body.get("variables"))
            except InvalidVariables as e:
                return _errors(400, str(e))
            assert platform.registry is not None
            if platform.registry.agent(agent_id) is None:
                return _errors(404, "Agent not found")
            token = await platform.auth.issue_single_use(
                principal,
                {"agent_id": agent_id, "mode": mode, "variables": variables},
                prefix="wct_",
                ttl_s=self.token_ttl_s,
            )
        except StoreUnavailableError:
            return _errors(503, "Service unavailable; retry")
        data = {
            "access_token": token,
            "expires_in": int(self.token_ttl_s),
            "sample_rate": DEFAULT_SAMPLE_RATE,
        }
        return HttpResponse(201, {"status": True, "data": data})

    async def _get_conversation(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        from voxwire.dialects.base import HttpResponse
        from voxwire.errors import StoreUnavailableError

        try:
            principal = await self._principal(req, platform)
            if principal is None:
                return _errors(401, "Invalid or missing API key")
            conv = await platform.store.get_conversation(req.params["call_id"])
            if conv is None or conv.dialect != "atoms" or conv.owner != principal.owner:
                return _errors(404, "Conversation not found")
            items = await platform.store.get_items(conv.id)
        except StoreUnavailableError:
            return _errors(503, "Service unavailable; retry")
        meta = conv.metadata
        data = {
            "call_id": conv.id,
            "session_id": meta.get("session_id"),
            "agent_id": conv.agent_id,
            "mode": meta.get("mode"),
            "status": "completed" if conv.finished else "in_progress",
            "end_reason": meta.get("end_reason"),
            "created_at": _iso(conv.created_at),
            "ended_at": _iso(conv.updated_at) if conv.finished else None,
            "transcript": items,
            "recording_url": None,
        }
        return HttpResponse(200, {"status": True, "data": data})

    # -- WebSocket --------------------------------------------------------------------

    async def _settle(self, hs: Handshake, platform: Platform) -> _Call | Refuse:
        """Who connects, to which agent, how; or the HTTP refusal."""
        from voxwire.dialects.base import Refuse

        def refuse(message: str) -> Refuse:
            return Refuse(401, {"status": False, "errors": [message]})

        registry = platform.registry
        assert registry is not None
        token = hs.query.get("token")
        if token is not None and token.startswith("wct_"):
            got = await platform.auth.consume_single_use(token)
            if got is None:
                return refuse("Invalid, expired or already used token")
            principal, payload = got
            agent = registry.agent(str(payload.get("agent_id")))
            if agent is None:
                return refuse("Agent not found")
            mode = payload.get("mode") if payload.get("mode") in MODES else "webcall"
            try:
                variables = clean_variables(payload.get("variables"))
            except InvalidVariables:
                variables = {}
            return _Call(principal, agent, str(mode), DEFAULT_SAMPLE_RATE, variables)
        header = _bearer(hs.headers)
        if token is not None and header is not None:
            return refuse("Give the API key once: ?token= or the Authorization header")
        key = token or header
        p = await platform.authenticate([key] if key else [])
        if p is None:
            return refuse("Invalid or missing API key")
        agent = registry.agent(hs.query.get("agent_id", ""))
        if agent is None:
            return refuse("Agent not found")
        call = _Call(p, agent, "webcall", DEFAULT_SAMPLE_RATE, {})
        mode = hs.query.get("mode", "webcall")
        rate = hs.query.get("sample_rate", str(DEFAULT_SAMPLE_RATE))
        if mode not in MODES:
            call.setup_error = ("400", "mode must be 'webcall' or 'chat'")
            return call
        call.mode = mode
        if not rate.isdigit() or int(rate) not in SAMPLE_RATES:
            call.setup_error = ("400", "sample_rate must be 8000, 16000, 24000 or 48000")
            return call
        call.sample_rate = int(rate)
        try:
            call.variables = clean_variables(json.loads(hs.query.get("variables", "null")))
        except (ValueError, RecursionError):
            call.setup_error = ("400", "variables must be a URL-encoded JSON object")
        return call

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Take a ``wct_`` token or an API key, and start the call (see the module doc)."""
        from voxwire.dialects.base import Accept, Refuse
        from voxwire.store import ConversationRecord

        call = await self._settle(hs, platform)
        if isinstance(call, Refuse):
            return call
        agent, variables = call.agent, call.variables
        dialect = AtomsDialect(
            mode=call.mode,
            sample_rate=call.sample_rate,
            setup_error=call.setup_error,
            chars_per_second=self.chars_per_second,
            agent_tools=frozenset(t.name for t in agent.tools),
        )
        webcall = call.mode == "webcall"
        state = ev.SessionState(
            id="",
            model=agent.model or platform.config.model,
            input_rate=call.sample_rate,
            output_rate=call.sample_rate,
            turn_detection=ev.TurnDetection() if webcall else None,
            modalities=("audio",) if webcall else ("text",),
            instructions=agent.render_instructions(variables),
            transcription=True,
            tools=tuple(_tool_spec(t) for t in agent.tools),
        )
        session = platform.new_session(dialect, model=state.model, state=state)
        session.context = ev.SessionContext(
            principal=call.principal,
            agent_id=agent.id,
            variables={k: _as_text(v) for k, v in variables.items()},
            conversation_id=dialect.call_id,
        )
        if call.setup_error is not None:
            log.info("atoms call refused after the upgrade: %s", call.setup_error[1])
            return Accept(session, principal=call.principal, background=(_fatal,))
        await platform.store.create_conversation(
            ConversationRecord(
                id=dialect.call_id,
                owner=call.principal.owner,
                dialect="atoms",
                agent_id=agent.id,
                metadata={"session_id": dialect.session_id, "mode": call.mode},
            )
        )
        greeting = agent.render_greeting(variables) if webcall else None
        if greeting and greeting.strip():
            session.greet(time.monotonic(), text=greeting)
        runner = _CallRunner(dialect, self.max_call_s)
        return Accept(
            session,
            principal=call.principal,
            commands=runner.command,
            background=(runner.background,),
            on_close=runner.on_close,
        )


def _iso(t: float) -> str | None:
    if not t:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _tool_spec(t: Any) -> ev.ToolSpec:
    from voxwire.config import thaw

    return ev.ToolSpec(t.name, t.description, thaw(t.parameters))


async def _fatal(io: SessionIO) -> None:
    """A setup failure: the error went out in place of ``session.created``; close 4000."""
    io.close(4000, "setup failed")


class _CallRunner:
    """One call's commands, background task and end hook.

    The background task times tool calls, answers tool results once the agent is idle,
    closes the call the agent ended and the one past its longest duration; the end hook
    stores the transcript.
    """

    def __init__(self, dialect: AtomsDialect, max_call_s: float) -> None:
        self.dialect = dialect
        self.max_call_s = max_call_s
        self._wake = asyncio.Event()
        dialect.wake = self._wake.set

    async def command(self, cmd: ev.Command, io: SessionIO) -> None:
        """The dialect's commands: text turns, tool results, closing."""
        d, s = self.dialect, io.session
        now = time.monotonic()
        if cmd.name == "session.close":
            d.end_reason = d.end_reason or "client_requested"
            io.send(closed_message("client_requested"))
            io.close(1000, "client_requested")
        elif cmd.name == "input_text.send":
            if s.response_id is not None:
                s.apply(ev.CancelResponse(None), now)  # interrupts a speaking agent
            text = str(cmd.payload)
            item = ev.Item(
                ev.random_id("item"),
                "message",
                "completed",
                "user",
                (ev.Content("input_text", text=text),),
            )
            d.transcript.append({"role": "user", "text": text})
            s.apply(ev.CreateItem(None, item), now)
            s.apply(ev.CreateResponse(None), now)
            io.flush()
        elif cmd.name == "function_call.result":
            call_id, output = cmd.payload
            self._result(io, call_id, output)

    def _result(self, io: SessionIO, call_id: str, output: str) -> None:
        item = ev.Item(
            ev.random_id("item"),
            "function_call_output",
            "completed",
            call_id=call_id,
            output=output,
        )
        io.session.apply(ev.CreateItem(None, item), time.monotonic())
        self.dialect.results_waiting = True
        self._answer_results(io)

    def _answer_results(self, io: SessionIO) -> None:
        d, s = self.dialect, io.session
        if d.results_waiting and s.response_id is None and not d.closing:
            d.results_waiting = False
            s.apply(ev.CreateResponse(None, kind="tool_results"), time.monotonic())
        io.flush()

    async def background(self, io: SessionIO) -> None:
        """Tool timeouts, answering tool results once the agent is idle, ending the call."""
        d = self.dialect
        start = time.monotonic()
        while True:
            now = time.monotonic()
            if d.end_reason == "ended":
                io.close(1000, "ended")
                return
            if now - start >= self.max_call_s and not d.closing:
                d.closing, d.end_reason = True, "ended"
                io.send(closed_message("ended"))
                io.close(1000, "max call duration")
                return
            for call_id, deadline in list(d.pending_calls.items()):
                if deadline <= now:
                    del d.pending_calls[call_id]
                    io.send(error_message("tool_timeout", f"no result for call {call_id} in time"))
                    self._result(io, call_id, json.dumps({"error": "tool_timeout"}))
            self._answer_results(io)
            wait = start + self.max_call_s - now
            if d.pending_calls:
                wait = min(wait, min(d.pending_calls.values()) - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))

    async def on_close(self, io: SessionIO) -> None:
        """Store the transcript and mark the call finished."""
        from voxwire.errors import StoreUnavailableError

        d = self.dialect
        store = io.platform.store
        try:
            if d.transcript:
                await store.append_items(d.call_id, list(d.transcript))
            meta = {
                "session_id": d.session_id,
                "mode": d.mode,
                "end_reason": d.end_reason or "websocket_closed",
            }
            await store.update_conversation(d.call_id, metadata=meta, finished=True)
        except StoreUnavailableError:
            log.warning("call %s: the transcript could not be stored", d.call_id)


PLUGIN = AtomsPlugin()

__all__ = [
    "MODES",
    "PLUGIN",
    "RESERVED_VARIABLES",
    "SAMPLE_RATES",
    "AtomsDialect",
    "AtomsPlugin",
    "ClientTool",
    "InvalidVariables",
    "clean_variables",
    "closed_message",
    "error_message",
    "new_call_id",
]
