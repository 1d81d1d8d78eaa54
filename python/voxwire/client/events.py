"""The server's events as typed objects, parsed from their JSON (GA or beta names).

The classes are named after the official ``openai`` SDK's event types
(``openai.types.realtime``); the wire names they parse are the OpenAI dialect's own
(:data:`voxwire.dialects.openai.SERVER_TYPES`), so the client and the server share one list.
Events without a class of their own are a plain :class:`ServerEvent` (``type`` and the raw
JSON object).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.dialects.openai import SERVER_TYPES
from voxwire.session import events as ev


@dataclass(frozen=True)
class ServerEvent:
    """Any server event.

    Its ``type``, the raw JSON object, and when it arrived (client clock, seconds).
    """

    type: str
    data: dict[str, Any] = field(repr=False)
    at: float


@dataclass(frozen=True)
class SessionCreatedEvent(ServerEvent):
    """``session.created``."""


@dataclass(frozen=True)
class InputAudioBufferSpeechStartedEvent(ServerEvent):
    """``input_audio_buffer.speech_started``: the server heard the user start a turn."""

    audio_start_ms: int = 0
    item_id: str = ""


@dataclass(frozen=True)
class InputAudioBufferSpeechStoppedEvent(ServerEvent):
    """``input_audio_buffer.speech_stopped``: the user's turn ended."""

    audio_end_ms: int = 0
    item_id: str = ""


@dataclass(frozen=True)
class ResponseCreatedEvent(ServerEvent):
    """``response.created``."""

    response_id: str = ""


@dataclass(frozen=True)
class ResponseAudioDeltaEvent(ServerEvent):
    """Response audio (decoded to int16 at 24 kHz for pcm16 sessions)."""

    response_id: str = ""
    item_id: str = ""
    pcm: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)


@dataclass(frozen=True)
class ResponseTextDeltaEvent(ServerEvent):
    """A piece of a text response."""

    response_id: str = ""
    text: str = ""


@dataclass(frozen=True)
class ResponseAudioTranscriptDeltaEvent(ServerEvent):
    """A piece of the transcript of response audio."""

    response_id: str = ""
    text: str = ""


@dataclass(frozen=True)
class ResponseDoneEvent(ServerEvent):
    """``response.done``."""

    response_id: str = ""
    status: str = ""
    reason: str | None = None


@dataclass(frozen=True)
class RealtimeErrorEvent(ServerEvent):
    """``error``."""

    code: str | None = None
    message: str = ""
    param: str | None = None


@dataclass(frozen=True)
class Closed(ServerEvent):
    """The connection closed (the last event of :meth:`RealtimeClient.events`)."""

    code: int | None = None
    reason: str = ""


_Parser = Callable[[str, dict[str, Any], float], ServerEvent]


def _speech_started(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    return InputAudioBufferSpeechStartedEvent(
        t, d, at, int(d.get("audio_start_ms", 0)), str(d.get("item_id", ""))
    )


def _speech_stopped(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    return InputAudioBufferSpeechStoppedEvent(
        t, d, at, int(d.get("audio_end_ms", 0)), str(d.get("item_id", ""))
    )


def _response_created(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    return ResponseCreatedEvent(t, d, at, str(d.get("response", {}).get("id", "")))


def _audio_delta(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    pcm = voxwire.b64decode_pcm16(d.get("delta", ""))
    return ResponseAudioDeltaEvent(
        t, d, at, str(d.get("response_id", "")), str(d.get("item_id", "")), pcm
    )


def _text_delta(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    return ResponseTextDeltaEvent(t, d, at, str(d.get("response_id", "")), str(d.get("delta", "")))


def _transcript_delta(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    return ResponseAudioTranscriptDeltaEvent(
        t, d, at, str(d.get("response_id", "")), str(d.get("delta", ""))
    )


def _response_done(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    r = d.get("response", {})
    details = r.get("status_details") or {}
    return ResponseDoneEvent(
        t, d, at, str(r.get("id", "")), str(r.get("status", "")), details.get("reason")
    )


def _error(t: str, d: dict[str, Any], at: float) -> ServerEvent:
    e = d.get("error", {})
    return RealtimeErrorEvent(t, d, at, e.get("code"), str(e.get("message", "")), e.get("param"))


#: The parser of each fact's server events, by the dialect's names (GA and beta).
_BY_FACT: dict[type[ev.Fact], _Parser] = {
    ev.SessionCreated: SessionCreatedEvent,
    ev.InputSpeechStarted: _speech_started,
    ev.InputSpeechStopped: _speech_stopped,
    ev.ResponseCreated: _response_created,
    ev.AudioDelta: _audio_delta,
    ev.ResponseTextDelta: _text_delta,
    ev.TranscriptDelta: _transcript_delta,
    ev.ResponseDone: _response_done,
    ev.Error: _error,
}

#: Wire type -> parser.
PARSERS: dict[str, _Parser] = {
    name: parse
    for fact, parse in _BY_FACT.items()
    for name in SERVER_TYPES[fact]
    if name is not None
}


def parse_event(d: dict[str, Any], at: float) -> ServerEvent:
    """A typed event from a server JSON object (GA or beta names)."""
    t = str(d.get("type", ""))
    parse = PARSERS.get(t)
    return ServerEvent(t, d, at) if parse is None else parse(t, d, at)


__all__ = [
    "PARSERS",
    "Closed",
    "InputAudioBufferSpeechStartedEvent",
    "InputAudioBufferSpeechStoppedEvent",
    "RealtimeErrorEvent",
    "ResponseAudioDeltaEvent",
    "ResponseAudioTranscriptDeltaEvent",
    "ResponseCreatedEvent",
    "ResponseDoneEvent",
    "ResponseTextDeltaEvent",
    "ServerEvent",
    "SessionCreatedEvent",
    "parse_event",
]
