"""The OpenAI Realtime dialect (seed 002), GA and beta shapes.

A pure codec: :meth:`OpenAIDialect.decode` turns one client message into an intent,
:meth:`OpenAIDialect.encode` turns one fact into the JSON text to send (or ``None`` when the
fact has no form in this shape). GA names and session shape are the default; ``beta=True``
(chosen by the server when the client sends ``OpenAI-Beta: realtime=v1``) gives the beta names
(``response.audio.delta``, ``response.text.delta``, ``conversation.item.created``) and the flat
beta session (``input_audio_format``, ``turn_detection``, ``modalities``).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from voxwire.session import events as ev

if TYPE_CHECKING:
    from voxwire.dialects.base import (
        Accept,
        Handshake,
        HttpRequest,
        HttpResponse,
        HttpRoute,
        Refuse,
    )
    from voxwire.platform import Platform

#: The server event type of each fact this dialect sends: ``(GA name, beta name)``, None
#: where that shape has no such event. The one list of them: the client
#: (:mod:`voxwire.client.events`) parses by it too.
SERVER_TYPES: dict[type[ev.Fact], tuple[str | None, str | None]] = {
    ev.SessionCreated: ("session.created", "session.created"),
    ev.SessionUpdated: ("session.updated", "session.updated"),
    ev.InputSpeechStarted: (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_started",
    ),
    ev.InputSpeechStopped: (
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.speech_stopped",
    ),
    ev.AudioCommitted: ("input_audio_buffer.committed", "input_audio_buffer.committed"),
    ev.AudioCleared: ("input_audio_buffer.cleared", "input_audio_buffer.cleared"),
    ev.ItemAdded: ("conversation.item.added", "conversation.item.created"),
    ev.ItemDone: ("conversation.item.done", None),
    ev.ItemRetrieved: ("conversation.item.retrieved", "conversation.item.retrieved"),
    ev.ItemDeleted: ("conversation.item.deleted", "conversation.item.deleted"),
    ev.ItemTruncated: ("conversation.item.truncated", "conversation.item.truncated"),
    ev.InputTranscriptionCompleted: (
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.completed",
    ),
    ev.ResponseCreated: ("response.created", "response.created"),
    ev.OutputItemAdded: ("response.output_item.added", "response.output_item.added"),
    ev.OutputItemDone: ("response.output_item.done", "response.output_item.done"),
    ev.ContentPartAdded: ("response.content_part.added", "response.content_part.added"),
    ev.ContentPartDone: ("response.content_part.done", "response.content_part.done"),
    ev.ResponseTextDelta: ("response.output_text.delta", "response.text.delta"),
    ev.TextDone: ("response.output_text.done", "response.text.done"),
    ev.AudioDelta: ("response.output_audio.delta", "response.audio.delta"),
    ev.AudioDone: ("response.output_audio.done", "response.audio.done"),
    ev.TranscriptDelta: (
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    ),
    ev.TranscriptDone: ("response.output_audio_transcript.done", "response.audio_transcript.done"),
    ev.FunctionCallArgumentsDone: (
        "response.function_call_arguments.done",
        "response.function_call_arguments.done",
    ),
    ev.ResponseDone: ("response.done", "response.done"),
    ev.RateLimitsUpdated: ("rate_limits.updated", "rate_limits.updated"),
    ev.Error: ("error", "error"),
}

#: The client event types this dialect takes.
CLIENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)

_GA_FORMATS: dict[str, ev.AudioFormat] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}
_GA_FORMAT_OF: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_BETA_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")

#: The transcription model sessions report (the ASR the server runs, :mod:`voxwire.asr`).
TRANSCRIPTION_MODEL = "pocketsphinx"

#: What precedes the audio of an ``input_audio_buffer.append`` as ``json.dumps`` writes it
#: (compact, then default separators), and the base64 alphabet: the fast path of ``decode``.
_APPEND_HEADS = (
    '{"type":"input_audio_buffer.append","audio":"',
    '{"type": "input_audio_buffer.append", "audio": "',
)
_B64_ALPHABET = (string.ascii_letters + string.digits + "+/=").encode()

#: The settings of each kind of turn detection (OpenAI's ``ServerVad`` / ``SemanticVad``).
_SERVER_VAD_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
    }
)
_SEMANTIC_KEYS = frozenset({"type", "eagerness", "create_response", "interrupt_response"})

#: Session fields of either shape that are accepted and have no effect here: sampling,
#: token limits, tracing, prompts, reasoning, read-only fields a client echoes back.
_ACCEPTED_SESSION_KEYS = frozenset(
    {
        "model",
        "object",
        "id",
        "expires_at",
        "client_secret",
        "temperature",
        "max_output_tokens",
        "max_response_output_tokens",
        "speed",
        "tracing",
        "truncation",
        "prompt",
        "include",
        "parallel_tool_calls",
        "reasoning",
        "input_audio_noise_reduction",
    }
)

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOOL_CHOICES = ("auto", "none", "required")

#: The largest ``input_image`` a client may add (its ``image_url``, a data URL), bytes.
MAX_IMAGE_URL = 8 << 20


class Invalid(Exception):
    """A decode failure: becomes a BadMessage with this code, message and param."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _str(v: Any, path: str) -> str:
    """``v``, which must be a string."""
    if not isinstance(v, str):
        raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
    return v


def _sections(v: Any, path: str, errors: list[Invalid]) -> list[tuple[str, Any]]:
    """The fields of an object (none, after an error, when ``v`` is not one; null: none)."""
    if v is None:
        return []
    if not isinstance(v, dict):
        errors.append(Invalid("invalid_type", f"Invalid type for '{path}'.", path))
        return []
    return list(v.items())


def _unknown(path: str) -> Invalid:
    """OpenAI's refusal of a field it does not know."""
    return Invalid("unknown_parameter", f"Unknown parameter: '{path}'.", path)


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """``d[key]``, which must be present and of ``kind``."""
    if key not in d:
        raise Invalid("missing_required_parameter", f"Missing required parameter: '{path}'.", path)
    v = d[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, float, (int, float))):
        raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
    return v


def _opt(d: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """``d[key]`` if present (and of ``kind``), else None."""
    if key not in d or d[key] is None:
        return None
    return _get(d, key, kind, path)


class OpenAIDialect:
    """Codec for the OpenAI Realtime API; ``beta`` selects the beta names and shapes."""

    name = "openai"
    #: Audio travels as base64 text inside JSON events.
    audio_encoding = "base64"

    def __init__(self, beta: bool = False, *, ids: ev.IdFactory = ev.random_id) -> None:
        self.beta = beta
        self._ids = ids

    # ----------------------------------------------------------------------------------
    # decode

    def decode(self, message: str | bytes) -> ev.Intent | tuple[ev.Intent, ...]:
        """One client message as an intent (a :class:`BadMessage` if it is not valid)."""
        if isinstance(message, bytes):
            return ev.BadMessage(
                None,
                "invalid_event",
                "Expected a text WebSocket message; binary frames are not supported.",
            )
        if message.endswith('"}') and message.startswith(_APPEND_HEADS):
            # Nearly every message is an append. When it is exactly {"type": ..., "audio":
            # "<base64 alphabet only>"}, it is valid JSON (no escapes, no control characters)
            # that decodes to that very string: json.loads and the checks below (about 10 us
            # for 20 ms of audio) are skipped. Anything else (an event_id, another key order,
            # escapes) takes the general path, with the same result.
            head = _APPEND_HEADS[0] if message[8] == '"' else _APPEND_HEADS[1]
            audio = message[len(head) : -2]
            if audio.isascii() and not audio.encode().translate(None, _B64_ALPHABET):
                return ev.AppendAudio(None, audio)
        try:
            obj = json.loads(message)
        except (ValueError, RecursionError) as e:
            return ev.BadMessage(
                None, "invalid_json", f"Invalid event: failed to parse JSON value. {e}"
            )
        if not isinstance(obj, dict):
            return ev.BadMessage(None, "invalid_json", "Invalid event: expected a JSON object.")
        eid = obj.get("event_id")
        eid = eid if isinstance(eid, str) else None
        try:
            return self._decode(obj, eid)
        except Invalid as e:
            return ev.BadMessage(eid, e.code, e.message, e.param)

    def _decode(self, o: dict[str, Any], eid: str | None) -> ev.Intent | tuple[ev.Intent, ...]:
        t = _get(o, "type", str, "type")
        if t == "input_audio_buffer.append":
            audio = _get(o, "audio", str, "audio")
            return ev.AppendAudio(eid, audio)
        if t == "input_audio_buffer.commit":
            return ev.CommitAudio(eid)
        if t == "input_audio_buffer.clear":
            return ev.ClearAudio(eid)
        if t == "session.update":
            return self._session_update(_get(o, "session", dict, "session"), eid)
        if t == "conversation.item.create":
            return self._item_create(o, eid)
        if t == "conversation.item.truncate":
            return ev.TruncateItem(
                eid,
                _get(o, "item_id", str, "item_id"),
                _get(o, "content_index", int, "content_index"),
                _get(o, "audio_end_ms", int, "audio_end_ms"),
            )
        if t == "conversation.item.delete":
            return ev.DeleteItem(eid, _get(o, "item_id", str, "item_id"))
        if t == "conversation.item.retrieve":
            return ev.RetrieveItem(eid, _get(o, "item_id", str, "item_id"))
        if t == "response.create":
            return self._response_create(o, eid)
        if t == "response.cancel":
            return ev.CancelResponse(eid, _opt(o, "response_id", str, "response_id"))
        supported = ", ".join(f"'{c}'" for c in CLIENT_TYPES[:-1])
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{t}'. Supported values are: {supported}, and '{CLIENT_TYPES[-1]}'.",
            "type",
        )

    def _modalities(self, mods: list[Any] | None, path: str) -> tuple[ev.Modality, ...] | None:
        if mods is None:
            return None
        out: list[ev.Modality] = []
        for m in mods:
            if m not in ("text", "audio"):
                raise Invalid("invalid_value", f"Invalid value in '{path}': {m!r}.", path)
            out.append(m)
        if not out:
            raise Invalid("invalid_value", f"'{path}' must not be empty.", path)
        if not self.beta and len(set(out)) > 1 and not path.endswith(".modalities"):
            raise Invalid(
                "invalid_value", f"'{path}' takes either ['audio'] or ['text'], not both.", path
            )
        return tuple(dict.fromkeys(out))

    def _turn_detection(self, td: Any, path: str, errors: list[Invalid]) -> ev.TurnDetection | None:
        """``server_vad`` or ``semantic_vad`` settings; a bad setting is left out (an error)."""
        if td is None:
            return None
        if not isinstance(td, dict):
            raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
        kind = td.get("type", "server_vad")
        if kind not in ("server_vad", "semantic_vad"):
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'.",
                f"{path}.type",
            )
        base = ev.TurnDetection()
        kw: dict[str, Any] = {"type": kind}
        keys = _SEMANTIC_KEYS if kind == "semantic_vad" else _SERVER_VAD_KEYS
        for key in td:
            if key not in keys:
                errors.append(_unknown(f"{path}.{key}"))
                continue
            p = f"{path}.{key}"
            try:
                if key in ("create_response", "interrupt_response"):
                    v = _opt(td, key, bool, p)
                    if v is not None:
                        kw[key] = v
                elif key == "threshold":
                    thr = _opt(td, key, (int, float), p)
                    if thr is not None and not 0.0 <= thr <= 1.0:
                        raise Invalid("invalid_value", "threshold must be in [0, 1].", p)
                    if thr is not None:
                        kw[key] = float(thr)
                elif key in ("prefix_padding_ms", "silence_duration_ms"):
                    ms = _opt(td, key, int, p)
                    if ms is not None and not 0 <= ms <= 10_000:
                        raise Invalid("invalid_value", f"{key} must be in [0, 10000].", p)
                    if ms is not None:
                        kw[key] = ms
                elif key == "eagerness":
                    e = _opt(td, key, str, p)
                    if e is not None and e not in ev.EAGERNESS_VALUES:
                        raise Invalid(
                            "invalid_value",
                            f"Invalid value: '{e}'. Supported values are: 'low', 'medium', "
                            "'high', and 'auto'.",
                            p,
                        )
                    if e is not None:
                        kw[key] = e
                elif key == "idle_timeout_ms":
                    _opt(td, key, int, p)  # accepted; sessions close on their own idle timeout
            except Invalid as err:
                errors.append(err)
        return replace(base, **kw)

    def _transcription(self, t: Any, path: str) -> bool:
        """Input transcription on (an object, e.g. ``{"model": ...}``) or off (null)."""
        if t is None:
            return False
        if not isinstance(t, dict):
            raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
        for key in ("model", "language", "prompt"):
            _opt(t, key, str, f"{path}.{key}")
        return True

    def _format(self, f: Any, path: str) -> ev.AudioFormat:
        if isinstance(f, str) and f in _BETA_FORMATS:
            return f  # type: ignore[return-value]
        if isinstance(f, dict):
            kind = f.get("type")
            if kind in _GA_FORMATS:
                rate = f.get("rate", 24000)
                if kind == "audio/pcm" and rate != 24000:
                    raise Invalid("invalid_value", "audio/pcm is 24000 Hz only.", f"{path}.rate")
                return _GA_FORMATS[kind]
        raise Invalid("invalid_value", f"Invalid audio format at '{path}': {f!r}.", path)

    @staticmethod
    def _voice(v: Any, path: str) -> str:
        """A voice: its name, or (GA, newer) ``{"id": name}``."""
        if isinstance(v, dict):
            return str(_get(v, "id", str, f"{path}.id"))
        if not isinstance(v, str):
            raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
        return v

    def _tools(self, tools: Any, path: str) -> tuple[ev.ToolSpec, ...]:
        """Function tools (the client runs them); other kinds of tool are refused."""
        if not isinstance(tools, list):
            raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
        out: list[ev.ToolSpec] = []
        for k, t in enumerate(tools):
            p = f"{path}[{k}]"
            if not isinstance(t, dict):
                raise Invalid("invalid_type", f"Invalid type for '{p}'.", p)
            kind = t.get("type", "function")
            if kind != "function":
                raise Invalid(
                    "invalid_value",
                    f"Invalid value: '{kind}'. voxwire supports tools of type 'function'.",
                    f"{p}.type",
                )
            name = _get(t, "name", str, f"{p}.name")
            if not _TOOL_NAME.fullmatch(name):
                raise Invalid(
                    "invalid_value",
                    f"Invalid '{p}.name': '{name}'. Expected a string that matches the pattern "
                    "'^[a-zA-Z0-9_-]+$' (at most 64 characters).",
                    f"{p}.name",
                )
            if any(o.name == name for o in out):
                raise Invalid("invalid_value", f"Duplicate tool name: '{name}'.", f"{p}.name")
            desc = _opt(t, "description", str, f"{p}.description") or ""
            params = _opt(t, "parameters", dict, f"{p}.parameters") or {}
            out.append(ev.ToolSpec(name, desc, params, client=True))
        return tuple(out)

    @staticmethod
    def _tool_choice(c: Any, path: str) -> str:
        """``auto``/``none``/``required``, or a function's name (``{"type": "function"}``)."""
        if isinstance(c, str):
            if c not in _TOOL_CHOICES:
                raise Invalid(
                    "invalid_value",
                    f"Invalid value: '{c}'. Supported values are: 'auto', 'none', and 'required'.",
                    path,
                )
            return c
        if isinstance(c, dict):
            if c.get("type") != "function":
                raise Invalid(
                    "invalid_value", "voxwire supports a tool_choice of type 'function'.", path
                )
            return str(_get(c, "name", str, f"{path}.name"))
        raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)

    def _session_update(
        self, s: dict[str, Any], eid: str | None
    ) -> ev.Intent | tuple[ev.Intent, ...]:
        """The update, with one error per refused field: the valid rest applies.

        Both shapes' fields are taken in either mode (a beta field in a GA update, a GA
        field with the beta header), as the two shapes name the same settings; an unknown
        field is refused with ``unknown_parameter``. The errors come before the
        ``session.updated`` that shows what was applied (none when nothing was).
        """
        kw: dict[str, Any] = {}
        errors: list[Invalid] = []

        def td(v: Any, p: str) -> ev.TurnDetection | None:
            return self._turn_detection(v, p, errors)

        # field -> (setting, parser); the beta and GA names of one setting share it.
        fields: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
            "instructions": ("instructions", _str),
            "output_modalities": ("modalities", self._modalities_of),
            "modalities": ("modalities", self._modalities_of),
            "voice": ("voice", self._voice),
            "input_audio_format": ("input_format", self._format),
            "output_audio_format": ("output_format", self._format),
            "turn_detection": ("turn_detection", td),
            "input_audio_transcription": ("transcription", self._transcription),
            "tools": ("tools", self._tools),
            "tool_choice": ("tool_choice", self._tool_choice),
        }
        audio_fields: dict[str, tuple[str, Callable[[Any, str], Any]] | None] = {
            "input.format": ("input_format", self._format),
            "input.turn_detection": ("turn_detection", td),
            "input.transcription": ("transcription", self._transcription),
            "input.noise_reduction": None,  # accepted; the input is not denoised
            "output.format": ("output_format", self._format),
            "output.voice": ("voice", self._voice),
            "output.speed": None,  # accepted; the agent's TTS speaks at its own pace
        }

        def take(spec: tuple[str, Callable[[Any, str], Any]], v: Any, p: str) -> None:
            try:
                kw[spec[0]] = spec[1](v, p)
            except Invalid as e:
                errors.append(e)

        for key, v in s.items():
            p = f"session.{key}"
            if key in fields:
                take(fields[key], v, p)
            elif key == "type":
                if v != "realtime":
                    msg = f"Invalid value: '{v}'. Supported values are: 'realtime'."
                    errors.append(Invalid("invalid_value", msg, p))
            elif key == "audio":
                for part, section in _sections(v, p, errors):
                    for k2, v2 in _sections(section, f"{p}.{part}", errors):
                        name = f"{part}.{k2}"
                        if name not in audio_fields:
                            errors.append(_unknown(f"{p}.{name}"))
                        elif (spec := audio_fields[name]) is not None:
                            take(spec, v2, f"{p}.{name}")
            elif key not in _ACCEPTED_SESSION_KEYS:
                errors.append(_unknown(p))
        update = ev.UpdateSession(eid, **self._rates(kw))
        bad = tuple(ev.BadMessage(eid, e.code, e.message, e.param) for e in errors)
        if not bad:
            return update
        # Nothing valid left: the errors alone (no session.updated for an unchanged session).
        return (*bad, update) if kw else bad

    def _modalities_of(self, v: Any, path: str) -> tuple[ev.Modality, ...]:
        if not isinstance(v, list):
            raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
        mods = self._modalities(v, path)
        assert mods is not None
        return mods

    @staticmethod
    def _rates(kw: dict[str, Any]) -> dict[str, Any]:
        """The wire rates that go with the formats (pcm16 is 24 kHz, G.711 8 kHz)."""
        if "input_format" in kw:
            kw["input_rate"] = ev.FORMAT_RATE[kw["input_format"]]
        if "output_format" in kw:
            kw["output_rate"] = ev.FORMAT_RATE[kw["output_format"]]
        return kw

    def _response_create(self, o: dict[str, Any], eid: str | None) -> ev.CreateResponse:
        r = _opt(o, "response", dict, "response") or {}
        mods = None
        for key in ("output_modalities", "modalities"):
            if key in r:
                mods = self._modalities(_opt(r, key, list, f"response.{key}"), f"response.{key}")
        instr = _opt(r, "instructions", str, "response.instructions")
        meta = _opt(r, "metadata", dict, "response.metadata")
        if meta is not None:
            if len(meta) > 16:
                raise Invalid(
                    "invalid_value", "metadata holds at most 16 pairs.", "response.metadata"
                )
            for k, v in meta.items():
                p = f"response.metadata.{k}"
                if len(k) > 64:
                    raise Invalid("invalid_value", "A metadata key is at most 64 characters.", p)
                if not isinstance(v, str):
                    raise Invalid("invalid_type", f"Invalid type for '{p}'.", p)
                if len(v) > 512:
                    raise Invalid("invalid_value", "A metadata value is at most 512 characters.", p)
        conv = r.get("conversation")
        if conv not in (None, "auto"):
            raise Invalid(
                "invalid_value",
                "voxwire answers in the default conversation only ('auto').",
                "response.conversation",
            )
        tools = None
        if r.get("tools") is not None:
            tools = self._tools(r["tools"], "response.tools")
        choice = None
        if r.get("tool_choice") is not None:
            choice = self._tool_choice(r["tool_choice"], "response.tool_choice")
        return ev.CreateResponse(
            eid,
            mods,
            instr,
            metadata=None if meta is None else dict(meta),
            tools=tools,
            tool_choice=choice,
        )

    def _item_create(self, o: dict[str, Any], eid: str | None) -> ev.CreateItem:
        it = _get(o, "item", dict, "item")
        prev = _opt(o, "previous_item_id", str, "previous_item_id")
        kind = it.get("type", "message")
        item_id = _opt(it, "id", str, "item.id") or self._ids("item")
        if kind == "function_call_output":
            return ev.CreateItem(
                eid,
                ev.Item(
                    item_id,
                    "function_call_output",
                    "completed",
                    call_id=_get(it, "call_id", str, "item.call_id"),
                    output=_get(it, "output", str, "item.output"),
                ),
                prev,
            )
        if kind == "function_call":
            return ev.CreateItem(
                eid,
                ev.Item(
                    item_id,
                    "function_call",
                    "completed",
                    call_id=_opt(it, "call_id", str, "item.call_id") or self._ids("call"),
                    name=_get(it, "name", str, "item.name"),
                    arguments=_get(it, "arguments", str, "item.arguments"),
                ),
                prev,
            )
        if kind != "message":
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                "and 'function_call_output'.",
                "item.type",
            )
        role = _get(it, "role", str, "item.role")
        if role not in ("user", "assistant", "system"):
            raise Invalid("invalid_value", f"Invalid value: '{role}'.", "item.role")
        parts: list[ev.Content] = []
        audio: list[tuple[int, str]] = []
        for i, c in enumerate(_get(it, "content", list, "item.content")):
            path = f"item.content[{i}]"
            if not isinstance(c, dict):
                raise Invalid("invalid_type", f"Invalid type for '{path}'.", path)
            ct = c.get("type")
            if ct == "input_text" or (ct in ("text", "output_text") and role == "assistant"):
                text = _get(c, "text", str, f"{path}.text")
                parts.append(ev.Content("input_text" if ct == "input_text" else "text", text=text))
            elif ct == "input_audio" and role == "user":
                tr = _opt(c, "transcript", str, f"{path}.transcript")
                if c.get("audio") is None and tr is not None:
                    parts.append(ev.Content("input_audio", transcript=tr))  # history, no audio
                    continue
                audio.append((i, _get(c, "audio", str, f"{path}.audio")))
                parts.append(ev.Content("input_audio", transcript=tr))
            elif ct in ("audio", "output_audio") and role == "assistant":
                # History of a spoken answer: its transcript (the audio is not kept).
                tr = _opt(c, "transcript", str, f"{path}.transcript") or ""
                parts.append(ev.Content("audio", transcript=tr))
            elif ct == "input_image" and role == "user":
                url = _get(c, "image_url", str, f"{path}.image_url")
                detail = _opt(c, "detail", str, f"{path}.detail") or "auto"
                if detail not in ("auto", "low", "high"):
                    raise Invalid(
                        "invalid_value",
                        f"Invalid value: '{detail}'. Supported values are: 'auto', 'low', and "
                        "'high'.",
                        f"{path}.detail",
                    )
                if len(url) > MAX_IMAGE_URL:
                    raise Invalid(
                        "invalid_value",
                        f"The image is larger than {MAX_IMAGE_URL} bytes.",
                        f"{path}.image_url",
                    )
                parts.append(ev.Content("input_image", image_url=url, detail=detail))
            else:
                raise Invalid("invalid_value", f"Invalid content type: {ct!r}.", f"{path}.type")
        item = ev.Item(item_id, "message", "completed", role, tuple(parts))
        return ev.CreateItem(eid, item, prev, tuple(audio), audio_rate=24000)

    # ----------------------------------------------------------------------------------
    # encode

    def _content(self, c: ev.Content, role: str | None) -> dict[str, Any]:
        t: str = c.type
        if not self.beta and role == "assistant":
            t = {"text": "output_text", "audio": "output_audio"}.get(t, t)
        d: dict[str, Any] = {"type": t}
        if c.type in ("input_text", "text"):
            d["text"] = c.text
        elif c.type == "input_image":
            d.update(image_url=c.image_url, detail=c.detail)
        else:
            d["transcript"] = c.transcript
        return d

    def _item(self, it: ev.Item) -> dict[str, Any]:
        d: dict[str, Any] = {"id": it.id, "object": "realtime.item", "type": it.type}
        d["status"] = it.status
        if it.type == "message":
            d["role"] = it.role
            d["content"] = [self._content(c, it.role) for c in it.content]
        elif it.type == "function_call":
            d.update(call_id=it.call_id, name=it.name, arguments=it.arguments)
        else:
            d.update(call_id=it.call_id, output=it.output)
        return d

    def _part(self, c: ev.Content) -> dict[str, Any]:
        if c.type == "audio":
            return {"type": "audio", "transcript": c.transcript or ""}
        return {"type": "text", "text": c.text or ""}

    def session_object(self, s: ev.SessionState) -> dict[str, Any]:
        """The session as this shape shows it."""
        td: dict[str, Any] | None = None
        if s.turn_detection is not None:
            t = s.turn_detection
            if t.type == "semantic_vad":
                td = {
                    "type": "semantic_vad",
                    "eagerness": t.eagerness,
                    "create_response": t.create_response,
                    "interrupt_response": t.interrupt_response,
                }
            else:
                td = {
                    "type": "server_vad",
                    "threshold": t.threshold,
                    "prefix_padding_ms": t.prefix_padding_ms,
                    "silence_duration_ms": t.silence_duration_ms,
                    "create_response": t.create_response,
                    "interrupt_response": t.interrupt_response,
                }
                if not self.beta:
                    td["idle_timeout_ms"] = None
        tr = {"model": TRANSCRIPTION_MODEL} if s.transcription else None
        tools = [
            {
                "type": "function",
                "name": x.name,
                "description": x.description,
                "parameters": x.parameters,
            }
            for x in s.tools
        ]
        choice: Any = s.tool_choice
        if choice not in _TOOL_CHOICES:
            choice = {"type": "function", "name": choice}
        if self.beta:
            return {
                "id": s.id,
                "object": "realtime.session",
                "model": s.model,
                "modalities": list(s.modalities),
                "instructions": s.instructions,
                "voice": s.voice,
                "input_audio_format": s.input_format,
                "output_audio_format": s.output_format,
                "input_audio_transcription": tr,
                "input_audio_noise_reduction": None,
                "turn_detection": td,
                "tools": tools,
                "tool_choice": choice,
                "temperature": 0.8,
                "max_response_output_tokens": "inf",
                "speed": 1.0,
                "tracing": None,
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": s.id,
            "model": s.model,
            "output_modalities": list(s.modalities),
            "instructions": s.instructions,
            "tools": tools,
            "tool_choice": choice,
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": _GA_FORMAT_OF[s.input_format],
                    "transcription": tr,
                    "noise_reduction": None,
                    "turn_detection": td,
                },
                "output": {
                    "format": _GA_FORMAT_OF[s.output_format],
                    "voice": s.voice,
                    "speed": 1.0,
                },
            },
        }

    def _response(self, r: ev.Response) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if r.status == "cancelled":
            details = {"type": "cancelled", "reason": r.reason}
        elif r.status == "failed":
            details = {
                "type": "failed",
                "error": {"type": "server_error", "code": None, "message": r.error},
            }
        elif r.status == "incomplete":
            details = {"type": "incomplete", "reason": r.reason}
        usage: dict[str, Any] | None = None
        if r.status != "in_progress":
            usage = {
                "total_tokens": r.input_tokens + r.output_tokens,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "input_token_details": {"text_tokens": r.input_tokens, "audio_tokens": 0},
                "output_token_details": {"text_tokens": r.output_tokens, "audio_tokens": 0},
            }
            if not self.beta:
                usage["input_token_details"].update(
                    image_tokens=0,
                    cached_tokens=0,
                    cached_tokens_details={"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
                )
            else:
                usage["input_token_details"]["cached_tokens"] = 0
        d: dict[str, Any] = {
            "object": "realtime.response",
            "id": r.id,
            "status": r.status,
            "status_details": details,
            "output": [self._item(i) for i in r.output],
            "conversation_id": "conv_default",
            "max_output_tokens": "inf",
            "usage": usage,
            "metadata": r.metadata,
        }
        if self.beta:
            d.update(
                modalities=list(r.modalities),
                voice=r.voice,
                output_audio_format=r.output_format,
                temperature=0.8,
            )
        else:
            d.update(
                output_modalities=list(r.modalities),
                audio={"output": {"format": _GA_FORMAT_OF[r.output_format], "voice": r.voice}},
            )
        return d

    def _names(self, fact: ev.Fact) -> str | None:
        names = SERVER_TYPES.get(type(fact))
        return None if names is None else names[1 if self.beta else 0]

    def encode(self, fact: ev.Fact) -> str | None:
        """The JSON text of ``fact``, or None if this shape has no such event."""
        name = self._names(fact)
        if name is None:
            return None
        d: dict[str, Any] = {"type": name, "event_id": self._ids("event")}
        match fact:
            case ev.SessionCreated(session=s) | ev.SessionUpdated(session=s):
                d["session"] = self.session_object(s)
            case ev.InputSpeechStarted():
                d.update(audio_start_ms=fact.audio_start_ms, item_id=fact.item_id)
            case ev.InputSpeechStopped():
                d.update(audio_end_ms=fact.audio_end_ms, item_id=fact.item_id)
            case ev.AudioCommitted():
                d.update(previous_item_id=fact.previous_item_id, item_id=fact.item_id)
            case (
                ev.ItemAdded(item=it, previous_item_id=p) | ev.ItemDone(item=it, previous_item_id=p)
            ):
                d.update(previous_item_id=p, item=self._item(it))
            case ev.ItemRetrieved():
                d["item"] = self._item(fact.item)
            case ev.ItemDeleted():
                d["item_id"] = fact.item_id
            case ev.ItemTruncated():
                d.update(
                    item_id=fact.item_id,
                    content_index=fact.content_index,
                    audio_end_ms=fact.audio_end_ms,
                )
            case ev.InputTranscriptionCompleted():
                d.update(
                    item_id=fact.item_id,
                    content_index=fact.content_index,
                    transcript=fact.transcript,
                    usage={"type": "duration", "seconds": fact.audio_seconds},
                )
            case ev.ResponseCreated(response=r) | ev.ResponseDone(response=r):
                d["response"] = self._response(r)
            case ev.OutputItemAdded() | ev.OutputItemDone():
                d.update(
                    response_id=fact.response_id,
                    output_index=fact.output_index,
                    item=self._item(fact.item),
                )
            case ev.PartFact():
                d.update(
                    response_id=fact.response_id,
                    item_id=fact.item_id,
                    output_index=fact.output_index,
                    content_index=fact.content_index,
                )
                match fact:
                    case ev.ContentPartAdded() | ev.ContentPartDone():
                        d["part"] = self._part(fact.part)
                    case (
                        ev.ResponseTextDelta(delta=x)
                        | ev.TranscriptDelta(delta=x)
                        | ev.AudioDelta(delta=x)
                    ):
                        d["delta"] = x
                    case ev.TextDone():
                        d["text"] = fact.text
                    case ev.TranscriptDone():
                        d["transcript"] = fact.transcript
            case ev.FunctionCallArgumentsDone():
                d.update(
                    response_id=fact.response_id,
                    item_id=fact.item_id,
                    output_index=fact.output_index,
                    call_id=fact.call_id,
                    name=fact.name,
                    arguments=fact.arguments,
                )
            case ev.RateLimitsUpdated():
                d["rate_limits"] = [
                    {
                        "name": r.name,
                        "limit": r.limit,
                        "remaining": r.remaining,
                        "reset_seconds": r.reset_seconds,
                    }
                    for r in fact.rate_limits
                ]
            case ev.Error():
                kind, code, message, param = render_error(fact)
                d["error"] = {
                    "type": kind,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": fact.event_id,
                }
        return json.dumps(d, separators=(",", ":"))


#: Subprotocol prefix browsers use to carry the key (they cannot set headers).
KEY_SUBPROTOCOL = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"

#: The HTTP 401 body of a missing or wrong key.
INVALID_KEY = {
    "error": {
        "type": "invalid_request_error",
        "code": "invalid_api_key",
        "message": "Incorrect or missing API key.",
    }
}


def credentials(
    headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Iterable[str]
) -> list[str]:
    """The keys a handshake offers, in the ways OpenAI clients send them.

    ``Authorization: Bearer <key>``, the Azure-style ``api-key`` header, ``?api_key=``, and
    subprotocols ``openai-insecure-api-key.<key>`` (browsers):
    :func:`voxwire.auth.offered_credentials` with these places, at most
    :data:`~voxwire.platform.MAX_KEYS_PER_HANDSHAKE` keys.
    """
    from voxwire.auth import offered_credentials
    from voxwire.platform import MAX_KEYS_PER_HANDSHAKE

    return offered_credentials(
        headers,
        query,
        subprotocols,
        max_keys=MAX_KEYS_PER_HANDSHAKE,
        query_names=("api_key",),
        subprotocol_prefixes=(KEY_SUBPROTOCOL,),
        header_names=("api-key",),
    )


def wants_beta(headers: Mapping[str, str], subprotocols: Iterable[str]) -> bool:
    """Whether the client asked for the beta shape (``OpenAI-Beta: realtime=v1``)."""
    beta = headers.get("openai-beta", "").replace(" ", "")
    return "realtime=v1" in beta.split(",") or BETA_SUBPROTOCOL in subprotocols


class OpenAIPlugin:
    """The OpenAI Realtime API on the server: ``/v1/realtime`` and ``GET /v1/models``.

    The handshake takes a key from any of :func:`credentials`' places (HTTP 401 with
    OpenAI's error body when none is accepted), picks the beta shape from the
    ``OpenAI-Beta: realtime=v1`` header or subprotocol, answers the ``realtime`` subprotocol
    when a browser offers it, and takes ``?model=``.
    """

    name = "openai"
    ws_paths: tuple[str, ...] = ("/v1/realtime", "/realtime")

    def __init__(self) -> None:
        from voxwire.dialects.base import HttpRoute

        self.http_routes: tuple[HttpRoute, ...] = (HttpRoute("GET", "/v1/models", self._models),)

    async def _models(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        from voxwire.dialects.base import HttpResponse

        model = platform.config.model
        return HttpResponse(
            200,
            {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "voxwire"}]},
        )

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Authenticate by key and start an OpenAI-dialect session."""
        from voxwire.dialects.base import Accept, Refuse

        principal = await platform.authenticate(credentials(hs.headers, hs.query, hs.subprotocols))
        if principal is None:
            return Refuse(401, INVALID_KEY)
        dialect = OpenAIDialect(beta=wants_beta(hs.headers, hs.subprotocols))
        session = platform.new_session(dialect, model=hs.query.get("model"))
        proto = "realtime" if "realtime" in hs.subprotocols else None
        return Accept(session, subprotocol=proto, principal=principal)


PLUGIN = OpenAIPlugin()


def render_error(e: ev.Error) -> tuple[str, str | None, str, str | None]:
    """An engine error in OpenAI's words: ``(type, code, message, param)``."""
    p = e.params
    inv = "invalid_request_error"
    match e.kind:
        case "bad_message":
            return inv, p["code"], p["message"], p.get("param")
        case "idle_timeout":
            return (
                inv,
                "session_idle_timeout",
                f"No client message for {p['seconds']:g} s; closing.",
                None,
            )
        case "rate_limited":
            if p["what"] == "messages":
                msg = (
                    f"More than {p['limit']} messages in a minute: messages are refused until "
                    "the minute is over."
                )
            else:
                msg = f"More than {p['limit']} responses in a minute."
            return inv, "rate_limit_exceeded", msg, None
        case "audio_empty":
            return (
                inv,
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio bytes but got empty bytes.",
                "audio",
            )
        case "audio_invalid" | "buffer_full":
            if e.kind == "buffer_full":
                code = "input_audio_buffer_full"
                detail = (
                    f"the input buffer holds at most {p['max_ms']} ms; commit or clear it first"
                )
            else:
                code, detail = "invalid_value", p["detail"]
            return (
                inv,
                code,
                f"Invalid 'audio'. Expected base64-encoded {p['format']} audio ({p['rate']} Hz "
                f"mono) but got an invalid value: {detail}",
                "audio",
            )
        case "commit_too_small":
            return (
                inv,
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{p['min_ms']}ms of audio, but buffer only has {p['ms']:.2f}ms of audio.",
                None,
            )
        case "item_exists":
            return (
                inv,
                "item_id_already_exists",
                f"Item with id '{p['item_id']}' already exists.",
                "item.id",
            )
        case "previous_item_missing":
            return (
                inv,
                "invalid_value",
                f"Item with id '{p['item_id']}' not found.",
                "previous_item_id",
            )
        case "item_audio_invalid":
            khz = f"{p['rate'] / 1000:g}kHz"
            return (
                inv,
                "invalid_value",
                f"Invalid 'audio'. Expected base64-encoded audio bytes (mono PCM16 at {khz}) but "
                f"got an invalid value: {p['detail']}",
                f"item.content[{p['index']}].audio",
            )
        case "item_missing":
            i = p["item_id"]
            if p["op"] == "truncate":
                return (
                    inv,
                    "item_truncate_invalid_item_id",
                    f"Item with item_id not found: {i}",
                    "item_id",
                )
            if p["op"] == "delete":
                return (
                    inv,
                    "item_delete_invalid_item_id",
                    f"Error deleting item: the item with id '{i}' does not exist.",
                    "item_id",
                )
            return (
                inv,
                "item_retrieve_invalid_item_id",
                f"Error retrieving item: the item with id '{i}' does not exist.",
                "item_id",
            )
        case "truncate_not_audio":
            return inv, None, "Only model output audio messages can be truncated", None
        case "truncate_invalid":
            return inv, "invalid_value", "Invalid content_index or audio_end_ms.", "audio_end_ms"
        case "truncate_too_long":
            return (
                inv,
                "invalid_value",
                f"Audio content of {p['audio_ms']:.0f}ms is already shorter than {p['end_ms']}ms",
                "audio_end_ms",
            )
        case "response_busy":
            return (
                inv,
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {p['response_id']}. "
                "Wait until the response is finished before creating a new one.",
                None,
            )
        case "cancel_not_active":
            if p.get("response_id") is not None:
                return (
                    inv,
                    "response_cancel_not_active",
                    f"Cancellation failed: no active response found with id {p['response_id']}",
                    "response_id",
                )
            return (
                inv,
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
            )
        case "agent_notice":
            return "server_error", p["code"], p["message"], None
        case "internal":
            return (
                "server_error",
                None,
                f"The server had an error while processing your request: {p['detail']}",
                None,
            )
    return "server_error", None, f"Error: {e.kind}", None  # pragma: no cover


__all__ = [
    "CLIENT_TYPES",
    "PLUGIN",
    "SERVER_TYPES",
    "Invalid",
    "OpenAIDialect",
    "OpenAIPlugin",
    "credentials",
    "render_error",
    "wants_beta",
]
