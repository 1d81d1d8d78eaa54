"""The amigo dialect: Amigo's ``converse_realtime`` voice WebSocket (seed 003).

``/v1/{org}/conversation/converse_realtime?response_format=text|voice&audio_format=pcm|mp3``,
authenticated by the subprotocol ``bearer.authorization.amigo.ai.<token>`` (echoed in the 101
answer), the token being a JWT from ``POST /v1/{org}/user/signin_with_api_key`` or an API
key. Every refusal after the upgrade is a close code (browsers cannot read HTTP statuses):
3000 bad or expired token, 3003 no access, 3008 idle, 4000 bad message, 4004 unknown
service or conversation, 4009 conflict (a second connection, a finished conversation), 4015
unsupported audio, 4029 more than 1200 messages a minute; over 1 MiB the server's 1009.

Wire mapping (docs/dialects/amigo.md has the whole contract and every choice the seed leaves
open):

- ``client.start-conversation`` / ``client.continue-conversation`` take a lease of the
  (user, org, service) in the store, create or load the stored conversation (its items go
  into the agent's context), answer ``server.conversation-created`` (then the agent's
  opening line) or ``server.conversation-retrieved``;
- ``client.new-text-message`` adds a user item (and answers it) or an external event (a
  system item; answered when ``start_interaction``);
- ``client.new-audio-message``: base64 PCM16 (``audio_config`` on the first chunk) or MP3
  (decoded with ``miniaudio``); one :class:`voxwire.InputPipeline` call per message;
  ``audio: null`` ends a push-to-talk utterance;
- ``client.switch-vad-mode`` turns server VAD on or off (``server.vad-speech-started`` /
  ``server.vad-speech-ended`` / ``server.vad-speech-reset-zero``); speech barges in;
- answers are ``server.new-message`` pieces (text, or base64 PCM16 at
  :attr:`AmigoSettings.output_rate` / MP3 with ``transcript_alignment``) and
  ``server.interaction-complete``;
- ``client.finish-conversation`` marks the stored conversation finished.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from voxwire.auth import AMIGO_SUBPROTOCOL_PREFIX, Principal, offered_credentials
from voxwire.dialects.base import (
    Accept,
    Handshake,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    Refuse,
    SessionIO,
)
from voxwire.errors import AuthError, StoreUnavailableError
from voxwire.session import Phase
from voxwire.session import events as ev
from voxwire.store.base import ConversationRecord

if TYPE_CHECKING:
    from voxwire.platform import Platform

log = logging.getLogger("voxwire.dialects.amigo")

# Close codes (the seed's table; 1009 for messages over the size limit is the server's).
UNAUTHORIZED = 3000
FORBIDDEN = 3003
TIMEOUT = 3008
BAD_REQUEST = 4000
NOT_FOUND = 4004
CONFLICT = 4009
UNSUPPORTED_MEDIA = 4015
RATE_LIMITED = 4029

#: The sample rates PCM input may have.
MIN_RATE, MAX_RATE = 8000, 48000
#: A push-to-talk utterance shorter than this is refused (the engine's minimum commit).
MIN_UTTERANCE_MS = 100
#: Scope prefix that restricts a principal to named services (``amigo:service:<id>``).
SERVICE_SCOPE = "amigo:service:"


@dataclass(frozen=True)
class AmigoSettings:
    """The dialect's knobs (the seed's limits are the defaults)."""

    #: No client message for this long: close 3008.
    idle_timeout_s: float = 30.0
    #: Client messages per sliding minute; one more: close 4029.
    messages_per_minute: int = 1200
    #: The (user, org, service) lease's lifetime; renewed every third of it. A dead
    #: process's lease expires after this long.
    lease_ttl_s: float = 15.0
    #: Sample rate of PCM16 voice output (and of MP3 output).
    output_rate: int = 24000
    #: MP3 output bit rate, kbit/s.
    mp3_kbps: int = 64
    #: Speak a filler when the agent's first output comes later than this (None: never).
    filler_delay_s: float | None = 1.2
    #: The filler phrases, used in turn.
    filler_phrases: tuple[str, ...] = (
        "Let me look that up.",
        "One moment, please.",
        "Let me think about that.",
    )
    #: What the agent says first when its registry entry has no ``greeting``.
    default_greeting: str = "Hello! How can I help you today?"
    #: Lifetime of the JWT ``signin_with_api_key`` issues, seconds.
    token_ttl_s: float = 3600.0


def new_id() -> str:
    """A 24-hex id (Amigo's ObjectId style) for conversations, interactions and messages."""
    return secrets.token_hex(12)


def _close(code: int, reason: str) -> ev.BadMessage:
    """A decoded message that closes the connection with ``code`` (rendered by the codec)."""
    return ev.BadMessage(None, str(code), reason[:120])


# --------------------------------------------------------------------------------------
# The codec


@dataclass
class _Interaction:
    interaction_id: str
    message_id: str
    seq: int = 0
    sent: int = 0
    text: list[str] = field(default_factory=list)
    #: Output audio sent so far in this message, ms.
    audio_ms: float = 0.0
    #: Alignment entries not sent yet: (ms, char).
    marks: deque[tuple[int, str]] = field(default_factory=deque)
    started: float = 0.0
    #: Whether the agent has produced output (no filler after that).
    output: bool = False
    filler_taken: bool = False
    filler_sending: bool = False
    #: Where the agent's own audio starts in the message (after a filler), ms.
    offset_ms: float = 0.0
    mp3: Any = None


class AmigoDialect:
    """The amigo wire codec (one per connection; it keeps the connection's wire state).

    Audio travels as raw bytes inside the engine (``audio_encoding = "raw"``): the codec
    decodes base64 (or MP3) input and encodes output to base64 PCM16 or MP3 itself.
    """

    name = "amigo"
    audio_encoding = "raw"

    def __init__(
        self,
        *,
        response_format: str = "text",
        audio_format: str = "pcm",
        settings: AmigoSettings | None = None,
        asr: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or AmigoSettings()
        self.response_format = response_format
        self.audio_format = audio_format
        self.asr = asr
        self.clock = clock
        #: The conversation has been started or continued (set when that message is decoded).
        self.initialized = False
        self.conversation_id: str | None = None
        self.finished = False
        self.vad_on = False
        #: The input audio's declared format (after the first ``audio_config``).
        self.input_kind: str | None = None
        self.input_rate = 16000
        self._mp3_in = bytearray()
        #: Audio buffered for the push-to-talk utterance in progress, ms.
        self._utt_ms = 0.0
        #: Input audio taken in, ms (the engine's timeline); the VAD clock's zero on it.
        self.received_ms = 0.0
        self.zero_ms = 0.0
        self.speaking = False
        self.responding = False
        self._times: deque[float] = deque()
        self.last_message = clock()
        #: A close the codec decided on (the plugin's watchdog carries it out).
        self.close_request: tuple[int, str] | None = None
        self.wake = asyncio.Event()
        #: Items to store, oldest first; ``flush`` is set when they should be written.
        self.pending_items: list[dict[str, Any]] = []
        self.flush = asyncio.Event()
        #: Set while no response runs.
        self.idle = asyncio.Event()
        self.idle.set()
        self.restoring = False
        self.conversation_completed = False
        self._cur: _Interaction | None = None
        self._speech_start_ms = 0
        #: A ``server.vad-speech-ended`` waiting for its transcript: (item id, frame).
        self._speech_end: tuple[str, dict[str, Any]] | None = None
        self._audio_items: dict[str, dict[str, Any]] = {}

    # -- helpers ------------------------------------------------------------------------

    def request_close(self, code: int, reason: str) -> None:
        """Ask for the connection to close (the first request wins)."""
        if self.close_request is None:
            self.close_request = (code, reason[:120])
        self.wake.set()

    @property
    def voice(self) -> bool:
        """Whether answers are audio."""
        return self.response_format == "voice"

    # -- decode -------------------------------------------------------------------------

    def decode(self, message: str | bytes) -> ev.Intent | tuple[ev.Intent, ...]:
        """One client message as the engine's intents (a close for a bad one)."""
        now = self.clock()
        self.last_message = now
        if self.close_request is not None:
            return ()
        times = self._times
        times.append(now)
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) > self.settings.messages_per_minute:
            return _close(RATE_LIMITED, "rate limited: more than 1200 messages a minute")
        if isinstance(message, bytes):
            return _close(BAD_REQUEST, "binary frames are not part of this API; send JSON text")
        try:
            o = json.loads(message)
        except ValueError:
            return _close(BAD_REQUEST, "malformed message: not JSON")
        if not isinstance(o, dict) or not isinstance(o.get("type"), str):
            return _close(BAD_REQUEST, "malformed message: a JSON object with a 'type' is expected")
        kind = o["type"]
        try:
            handler = _DECODERS.get(kind)
            if handler is None:
                return _close(BAD_REQUEST, f"unknown message type {kind[:60]!r}")
            out: ev.Intent | tuple[ev.Intent, ...] = handler(self, o)
            return out
        except _Bad as e:
            return _close(e.code, e.reason)

    def _needs_conversation(self) -> None:
        if not self.initialized:
            raise _Bad(
                BAD_REQUEST,
                "no conversation: send client.start-conversation or "
                "client.continue-conversation first",
            )
        if self.finished:
            raise _Bad(CONFLICT, "the conversation is finished")

    def _d_start(self, o: dict[str, Any]) -> ev.Intent:
        if self.initialized:
            raise _Bad(BAD_REQUEST, "the conversation is already started on this connection")
        sid = o.get("service_id")
        vset = o.get("service_version_set_name", "release")
        if not isinstance(sid, str) or not sid or len(sid) > 128:
            raise _Bad(BAD_REQUEST, "client.start-conversation: service_id must be a string")
        if not isinstance(vset, str) or not vset or len(vset) > 128:
            raise _Bad(BAD_REQUEST, "service_version_set_name must be a string")
        self.initialized = True
        return ev.Command(None, "start", {"service_id": sid, "version_set": vset})

    def _d_continue(self, o: dict[str, Any]) -> ev.Intent:
        if self.initialized:
            raise _Bad(BAD_REQUEST, "the conversation is already started on this connection")
        cid = o.get("conversation_id")
        if not isinstance(cid, str) or not cid or len(cid) > 128:
            raise _Bad(BAD_REQUEST, "client.continue-conversation: conversation_id is a string")
        self.initialized = True
        return ev.Command(None, "continue", {"conversation_id": cid})

    def _d_text(self, o: dict[str, Any]) -> ev.Intent | tuple[ev.Intent, ...]:
        self._needs_conversation()
        text = o.get("text")
        mtype = o.get("message_type", "user-message")
        start = o.get("start_interaction", False)
        if not isinstance(text, str):
            raise _Bad(BAD_REQUEST, "client.new-text-message: text must be a string")
        if mtype not in ("user-message", "external-event"):
            raise _Bad(BAD_REQUEST, "message_type must be 'user-message' or 'external-event'")
        if not isinstance(start, bool):
            raise _Bad(BAD_REQUEST, "start_interaction must be a boolean")
        if mtype == "user-message":
            if not text.strip():
                raise _Bad(BAD_REQUEST, "client.new-text-message: text is empty")
            return ev.Command(None, "text", {"text": text})
        return ev.Command(None, "event", {"text": text, "start_interaction": start})

    def _d_audio(self, o: dict[str, Any]) -> ev.Intent | tuple[ev.Intent, ...]:
        self._needs_conversation()
        out: list[ev.Intent] = []
        cfg = o.get("audio_config")
        if cfg is not None:
            out.extend(self._audio_config(cfg))
        elif self.input_kind is None:
            # No audio_config on the first chunk: the seed's documented default.
            self.input_kind, self.input_rate = "pcm", 16000
            out.append(ev.UpdateSession(None, input_format="pcm16", input_rate=16000))
        audio = o.get("audio")
        if audio is None:
            if "audio" not in o and cfg is None:
                raise _Bad(BAD_REQUEST, "client.new-audio-message: audio is missing")
            if cfg is not None:
                return tuple(out)
            return (*out, *self._end_of_utterance())
        if not isinstance(audio, str):
            raise _Bad(BAD_REQUEST, "client.new-audio-message: audio must be base64 or null")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(BAD_REQUEST, "client.new-audio-message: audio is not valid base64") from None
        if self.input_kind == "mp3":
            if len(self._mp3_in) + len(data) > 8 << 20:
                raise _Bad(BAD_REQUEST, "MP3 utterance over 8 MiB; end it with audio: null")
            self._mp3_in += data
            return tuple(out)
        if len(data) % 2:
            raise _Bad(BAD_REQUEST, "PCM16 audio with an odd number of bytes")
        if not data:
            return tuple(out)
        ms = len(data) / 2 * 1000 / self.input_rate
        self.received_ms += ms
        self._utt_ms += ms
        out.append(ev.AppendAudio(None, data))
        return tuple(out)

    def _audio_config(self, cfg: Any) -> list[ev.Intent]:
        if not isinstance(cfg, dict):
            raise _Bad(BAD_REQUEST, "audio_config must be an object")
        fmt = cfg.get("format", cfg.get("type"))
        if fmt == "mp3":
            if self.vad_on:
                raise _Bad(UNSUPPORTED_MEDIA, "MP3 input is not supported in VAD mode; use PCM")
            if (self.input_kind, self.input_rate) != ("mp3", 16000):
                self._utt_ms = 0.0
            self.input_kind, self.input_rate = "mp3", 16000
            return [ev.UpdateSession(None, input_format="pcm16", input_rate=16000)]
        if fmt != "pcm":
            raise _Bad(UNSUPPORTED_MEDIA, "audio_config format must be 'pcm' or 'mp3'")
        rate = cfg.get("sample_rate", cfg.get("frame_rate", 16000))
        width = cfg.get("sample_width", 2)
        channels = cfg.get("n_channels", 1)
        if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
            raise _Bad(UNSUPPORTED_MEDIA, "PCM sample_rate must be 8000 to 48000")
        fr = cfg.get("frame_rate", rate)
        if fr != rate:
            raise _Bad(UNSUPPORTED_MEDIA, "PCM frame_rate must equal sample_rate")
        if width != 2:
            raise _Bad(UNSUPPORTED_MEDIA, "PCM sample_width must be 2 (16-bit)")
        if channels != 1:
            raise _Bad(UNSUPPORTED_MEDIA, "PCM audio must be mono (n_channels 1)")
        if (self.input_kind, self.input_rate) != ("pcm", rate):
            self._utt_ms = 0.0  # a new rate: the engine's new pipeline starts empty
        self.input_kind, self.input_rate = "pcm", rate
        return [ev.UpdateSession(None, input_format="pcm16", input_rate=rate)]

    def _end_of_utterance(self) -> tuple[ev.Intent, ...]:
        if self.vad_on:
            return ()  # VAD mode ends turns itself
        out: list[ev.Intent] = []
        if self.input_kind == "mp3":
            data, self._mp3_in = bytes(self._mp3_in), bytearray()
            if data:
                pcm = _decode_mp3(data, self.input_rate)
                if pcm is None:
                    raise _Bad(UNSUPPORTED_MEDIA, "the MP3 audio could not be decoded")
                ms = len(pcm) / 2 * 1000 / self.input_rate
                self.received_ms += ms
                self._utt_ms += ms
                out.append(ev.AppendAudio(None, pcm))
        utt_ms, self._utt_ms = self._utt_ms, 0.0
        if utt_ms < MIN_UTTERANCE_MS:
            # Too short: the engine refuses the commit (a server.error); nothing is answered
            # and the scrap is dropped.
            return (*out, ev.CommitAudio(None), ev.ClearAudio(None))
        if self.responding:
            out.insert(0, ev.CancelResponse(None))
        return (*out, ev.CommitAudio(None), ev.CreateResponse(None))

    def _d_vad(self, o: dict[str, Any]) -> tuple[ev.Intent, ...]:
        self._needs_conversation()
        on = o.get("vad_mode_on")
        if not isinstance(on, bool):
            raise _Bad(BAD_REQUEST, "client.switch-vad-mode: vad_mode_on must be a boolean")
        if on and (self.input_kind == "mp3" or (self.voice and self.audio_format == "mp3")):
            raise _Bad(UNSUPPORTED_MEDIA, "VAD mode needs PCM audio, not MP3")
        was = self.vad_on
        self.vad_on = on
        intents: list[ev.Intent] = []
        if on != was:
            td = ev.TurnDetection(create_response=True, interrupt_response=True) if on else None
            intents.append(ev.UpdateSession(None, turn_detection=td))
            if on:
                self.zero_ms = self.received_ms
            self.speaking = False
            self._utt_ms = 0.0  # the engine's new pipeline starts empty
        intents.append(ev.Command(None, "vad", {"on": on, "changed": on != was}))
        return tuple(intents)

    def _d_finish(self, o: dict[str, Any]) -> ev.Intent | tuple[ev.Intent, ...]:
        self._needs_conversation()
        self.finished = True
        out: list[ev.Intent] = []
        if self.vad_on:
            self.vad_on = False
            out.append(ev.UpdateSession(None, turn_detection=None))
        if self.responding:
            out.append(ev.CancelResponse(None))
        return (*out, ev.Command(None, "finish"))

    def _d_close(self, o: dict[str, Any]) -> ev.Intent:
        return ev.Command(None, "close")

    def _d_keepalive(self, o: dict[str, Any]) -> tuple[ev.Intent, ...]:
        return ()  # any message resets the idle timer (done above)

    # -- encode -------------------------------------------------------------------------

    def encode(self, fact: ev.Fact) -> str | list[str] | None:
        """The wire form of ``fact`` (None for the engine's facts amigo has no event for)."""
        match fact:
            case ev.ResponseCreated():
                self.responding = True
                self.idle.clear()
                self._cur = _Interaction(new_id(), new_id(), started=self.clock())
                return None
            case ev.ResponseTextDelta():
                return self._with_speech_end(self._text_piece(fact.delta))
            case ev.TranscriptDelta():
                if self._cur is not None:
                    self._cur.text.append(fact.delta)
                    self._cur.output = True
                return None
            case ev.AudioDelta():
                return self._with_speech_end(self._audio_piece(fact.delta))
            case ev.SpeechMarks():
                if self._cur is not None:
                    self._cur.output = True
                    self._cur.marks.extend(
                        (round(self._cur.offset_ms + ms), ch) for ms, ch in fact.marks
                    )
                return None
            case ev.ResponseDone():
                return self._with_speech_end(self._done(fact.response))
            case ev.InputSpeechStarted():
                self.speaking = True
                self._speech_start_ms = fact.audio_start_ms
                start = self._vad_s(fact.audio_start_ms)
                return self._frame({"type": "server.vad-speech-started", "start": start})
            case ev.InputSpeechStopped():
                self.speaking = False
                frame = {
                    "type": "server.vad-speech-ended",
                    "transcript": "",
                    "start": self._vad_s(self._speech_start_ms),
                    "end": self._vad_s(fact.audio_end_ms),
                }
                if self.asr:
                    self._speech_end = (fact.item_id, frame)
                    return None
                return self._frame(frame)
            case ev.InputTranscriptionCompleted():
                rec = self._audio_items.get(fact.item_id)
                if rec is not None:
                    rec["text"] = fact.transcript
                pend = self._speech_end
                if pend is not None and pend[0] == fact.item_id:
                    self._speech_end = None
                    pend[1]["transcript"] = fact.transcript
                    return self._frame(pend[1])
                return None
            case ev.ItemDone():
                self._keep_item(fact.item)
                return None
            case ev.ConversationEnded():
                # The agent ended it: marked finished in the store; later messages get 4009.
                self.conversation_completed = True
                self.finished = True
                return None
            case ev.Error():
                return self._error(fact)
        return None

    def _frame(self, d: dict[str, Any]) -> str:
        return json.dumps(d, ensure_ascii=False)

    def _vad_s(self, ms: float) -> float:
        return round(max(0.0, (ms - self.zero_ms) / 1000.0), 3)

    def _with_speech_end(self, frames: list[str]) -> list[str] | None:
        """``frames``, after a ``vad-speech-ended`` still waiting for a transcript (with none)."""
        pend, self._speech_end = self._speech_end, None
        if pend is not None:
            frames.insert(0, self._frame(pend[1]))
        return frames or None

    def _piece(
        self, cur: _Interaction, message: str, alignment: list[list[Any]] | None, *, stop: bool
    ) -> str:
        cur.seq += 1
        cur.sent += 1
        return self._frame(
            {
                "type": "server.new-message",
                "interaction_id": cur.interaction_id,
                "message": message,
                "message_metadata": ["filler"] if cur.filler_sending else [],
                "transcript_alignment": alignment,
                "stop": stop,
                "sequence_number": cur.seq,
                "message_id": cur.message_id,
            }
        )

    def _text_piece(self, delta: str) -> list[str]:
        cur = self._cur
        if cur is None or not delta:
            return []
        cur.text.append(delta)
        cur.output = True
        return [self._piece(cur, delta, None, stop=False)]

    def _audio_piece(self, delta: str | bytes) -> list[str]:
        cur = self._cur
        if cur is None or not delta:
            return []
        pcm = delta if isinstance(delta, bytes) else base64.b64decode(delta)
        cur.output = True
        return self._audio_out(cur, pcm)

    def _audio_out(self, cur: _Interaction, pcm: bytes) -> list[str]:
        cur.audio_ms += len(pcm) / 2 * 1000 / self.settings.output_rate
        if self.audio_format == "mp3":
            if cur.mp3 is None:
                cur.mp3 = _mp3_encoder(self.settings.output_rate, self.settings.mp3_kbps)
            data = bytes(cur.mp3.encode(pcm))
            if not data:
                return []
        else:
            data = pcm
        align = self._take_marks(cur, cur.audio_ms)
        return [self._piece(cur, base64.b64encode(data).decode("ascii"), align, stop=False)]

    def _take_marks(self, cur: _Interaction, until_ms: float | None) -> list[list[Any]] | None:
        out: list[list[Any]] = []
        while cur.marks and (until_ms is None or cur.marks[0][0] < until_ms):
            ms, ch = cur.marks.popleft()
            out.append([ms, ch])
        return out or None

    def _done(self, resp: ev.Response) -> list[str]:
        self.responding = False
        self.idle.set()
        cur, self._cur = self._cur, None
        item_text = _response_text(resp)
        if resp.status != "cancelled" or (cur is not None and cur.sent):
            self._keep_item_dict(
                {"role": "assistant", "type": "text", "text": item_text, "status": resp.status}
            )
        self.flush.set()
        if cur is None or (resp.status == "cancelled" and cur.sent == 0):
            return []
        frames: list[str] = []
        if cur.mp3 is not None:
            tail = bytes(cur.mp3.flush())
            if tail:
                frames.append(
                    self._piece(cur, base64.b64encode(tail).decode("ascii"), None, stop=False)
                )
        frames.append(self._piece(cur, "", self._take_marks(cur, None), stop=True))
        frames.append(
            self._frame(
                {
                    "type": "server.interaction-complete",
                    "message_id": cur.message_id,
                    "interaction_id": cur.interaction_id,
                    "full_message": item_text or "".join(cur.text),
                    "conversation_completed": self.conversation_completed,
                }
            )
        )
        return frames

    def _error(self, e: ev.Error) -> str | None:
        p = e.params
        if e.kind == "bad_message":
            try:
                code = int(p.get("code") or BAD_REQUEST)
            except ValueError:
                code = BAD_REQUEST
            self.request_close(code, str(p.get("message") or "bad request"))
            return None
        if e.kind in ("audio_invalid", "buffer_full"):
            self.request_close(BAD_REQUEST, f"bad audio: {e.kind.replace('_', ' ')}")
            return None
        if e.kind == "rate_limited":
            self.request_close(RATE_LIMITED, "rate limited")
            return None
        status = {"commit_too_small": 400, "audio_empty": 400, "response_busy": 409}.get(
            e.kind, 500
        )
        text = {
            "commit_too_small": "the utterance is too short (at least 100 ms of audio)",
            "audio_empty": "empty audio",
            "response_busy": "a response is in progress",
            "agent_notice": str(p.get("message", "")),
        }.get(e.kind, "internal error")
        return self._frame(
            {"type": "server.error", "http_error_code": status, "error_description": text}
        )

    # -- stored items ---------------------------------------------------------------------

    def _keep_item(self, it: ev.Item) -> None:
        if self.restoring or it.type != "message" or it.role not in ("user", "system"):
            return
        parts = it.content
        if any(c.type == "input_audio" for c in parts):
            rec = {"role": "user", "type": "audio", "text": ""}
            self._audio_items[it.id] = rec
            self._keep_item_dict(rec)
            return
        text = " ".join(c.text or "" for c in parts)
        if it.role == "system":
            self._keep_item_dict({"role": "system", "type": "external-event", "text": text})
        else:
            self._keep_item_dict({"role": "user", "type": "text", "text": text})

    def _keep_item_dict(self, d: dict[str, Any]) -> None:
        if self.restoring:
            return
        d.setdefault("id", new_id())
        d.setdefault("created_at", time.time())
        self.pending_items.append(d)

    def take_items(self) -> list[dict[str, Any]]:
        """The items to store now (the audio items' transcripts are in by now)."""
        out, self.pending_items = self.pending_items, []
        self._audio_items.clear()
        return out

    # -- fillers --------------------------------------------------------------------------

    def filler_due(self) -> _Interaction | None:
        """The running interaction, when its filler should start now (at most one each)."""
        cur, delay = self._cur, self.settings.filler_delay_s
        if cur is None or delay is None or cur.output or cur.filler_taken or not self.voice:
            return None
        if self._speech_end is not None:
            return None  # the transcript comes first (vad-speech-ended precedes the answer)
        if self.clock() - cur.started < delay:
            return None
        cur.filler_taken = True
        return cur

    def filler_frames(
        self, cur: _Interaction, pcm: bytes, marks: list[tuple[int, str]]
    ) -> list[str]:
        """The filler's audio pieces (alignment included), unless the agent spoke meanwhile.

        The agent's own audio and alignment then count from the filler's end.
        """
        if self._cur is not cur or cur.output:
            return []
        cur.marks.extend((round(cur.audio_ms + ms), ch) for ms, ch in marks)
        out: list[str] = []
        cur.filler_sending = True
        step = self.settings.output_rate * 2 // 5 * 2  # 400 ms pieces
        for k in range(0, len(pcm), step):
            out.extend(self._audio_out(cur, pcm[k : k + step]))
        cur.filler_sending = False
        cur.offset_ms = cur.audio_ms
        return out


class _Bad(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


_DECODERS: dict[str, Callable[[AmigoDialect, dict[str, Any]], Any]] = {
    "client.start-conversation": AmigoDialect._d_start,
    "client.continue-conversation": AmigoDialect._d_continue,
    "client.new-text-message": AmigoDialect._d_text,
    "client.new-audio-message": AmigoDialect._d_audio,
    "client.switch-vad-mode": AmigoDialect._d_vad,
    "client.finish-conversation": AmigoDialect._d_finish,
    "client.close-connection": AmigoDialect._d_close,
    "client.extend-timeout": AmigoDialect._d_keepalive,
}


def _response_text(resp: ev.Response) -> str:
    for it in resp.output:
        if it.type == "message":
            return "".join(c.text or c.transcript or "" for c in it.content)
    return ""


def _decode_mp3(data: bytes, rate: int) -> bytes | None:
    """MP3 bytes as PCM16 mono at ``rate`` (None when they do not decode)."""
    import miniaudio

    try:
        d = miniaudio.decode(
            data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1, sample_rate=rate
        )
    except miniaudio.DecodeError:
        return None
    return bytes(d.samples.tobytes())


def _mp3_encoder(rate: int, kbps: int) -> Any:
    import lameenc

    enc = lameenc.Encoder()
    enc.set_bit_rate(kbps)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(5)
    return enc


# --------------------------------------------------------------------------------------
# The plugin


def _signin_org_ok(p: Principal, org: str) -> bool:
    return not p.org or p.org == org


class AmigoPlugin:
    """The amigo dialect on the platform: its WebSocket route, sign-in route and commands."""

    name = "amigo"
    ws_paths: tuple[str, ...] = ("/v1/{org}/conversation/converse_realtime",)

    def __init__(self, settings: AmigoSettings | None = None) -> None:
        self.settings = settings or AmigoSettings()
        self.http_routes: tuple[HttpRoute, ...] = (
            HttpRoute("POST", "/v1/{org}/user/signin_with_api_key", self.signin),
        )

    # -- REST -----------------------------------------------------------------------------

    async def signin(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        """``POST /v1/{org}/user/signin_with_api_key``: an API key for a JWT."""
        h = req.headers
        key, key_id, user = h.get("x-api-key"), h.get("x-api-key-id"), h.get("x-user-id")
        if not key:
            return HttpResponse(401, {"detail": "Missing x-api-key header."})
        await platform.start()
        try:
            p = await platform.auth.sign_in_with_api_key(
                key, key_id=key_id or None, user=user or None
            )
        except AuthError:
            platform.gate.auth_failed(req.peer)
            return HttpResponse(401, {"detail": "Invalid API key."})
        except StoreUnavailableError:
            return HttpResponse(
                503, {"detail": "Service unavailable; retry."}, {"Retry-After": "2"}
            )
        if not _signin_org_ok(p, req.params["org"]):
            return HttpResponse(403, {"detail": "This API key has no access to the organization."})
        token, exp = platform.auth.issue_access(p, ttl_s=self.settings.token_ttl_s)
        expires = datetime.fromtimestamp(exp, UTC).isoformat().replace("+00:00", "Z")
        return HttpResponse(200, {"id_token": token, "expires_at": expires})

    # -- the WebSocket --------------------------------------------------------------------

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Authenticate by the subprotocol; the rest of the session is :class:`_Conn`'s."""
        org = hs.params["org"]
        offered = next((s for s in hs.subprotocols if s.startswith(AMIGO_SUBPROTOCOL_PREFIX)), None)
        rf = hs.query.get("response_format")
        af = hs.query.get("audio_format", "pcm" if rf != "voice" else None)
        codec = AmigoDialect(
            response_format=rf if rf in ("text", "voice") else "text",
            audio_format=af if af in ("pcm", "mp3") else "pcm",
            settings=self.settings,
            asr=platform.config.asr is not None,
        )
        voice = codec.voice
        state = ev.SessionState(
            id="",
            model=platform.config.model,
            input_format="pcm16",
            output_format="pcm16",
            input_rate=16000,
            output_rate=self.settings.output_rate,
            turn_detection=None,
            modalities=("audio",) if voice else ("text",),
            transcription=platform.config.asr is not None,
        )
        # The dialect's own watchdog closes idle connections (3008), not the engine.
        limits = replace(platform.config.limits, idle_timeout_s=365 * 86400.0)
        session = platform.new_session(codec, state=state, limits=limits)

        def closed(code: int, reason: str) -> Accept:
            return Accept(session, subprotocol=offered, close=(code, reason))

        creds = offered_credentials(
            hs.headers, {}, hs.subprotocols, query_names=(),
            subprotocol_prefixes=(AMIGO_SUBPROTOCOL_PREFIX,),
        )  # fmt: skip
        try:
            principal = await platform.authenticate(creds)
        except StoreUnavailableError:
            raise
        if principal is None:
            platform.gate.auth_failed(hs.peer)
            return closed(UNAUTHORIZED, "unauthorized: invalid or expired token")
        registry = platform.registry
        assert registry is not None
        if not _signin_org_ok(principal, org) or (
            not registry.open_orgs and registry.org(org) is None
        ):
            return closed(FORBIDDEN, "forbidden: no access to this organization")
        if rf not in ("text", "voice"):
            return closed(BAD_REQUEST, "response_format must be 'text' or 'voice'")
        if voice and af not in ("pcm", "mp3"):
            return closed(BAD_REQUEST, "audio_format must be 'pcm' or 'mp3' with voice")
        if af is not None and af not in ("pcm", "mp3"):
            return closed(BAD_REQUEST, "audio_format must be 'pcm' or 'mp3'")
        conn = _Conn(self, platform, codec, principal, org)
        session.context = ev.SessionContext(principal=principal)
        return Accept(
            session,
            subprotocol=offered,
            principal=principal,
            commands=conn.command,
            background=(conn.watchdog, conn.keep_lease, conn.store_items, conn.fillers),
            on_close=conn.end,
        )


class _Conn:
    """One connection's server side: commands, lease, stored items, watchdog, fillers."""

    def __init__(
        self,
        plugin: AmigoPlugin,
        platform: Platform,
        codec: AmigoDialect,
        principal: Principal,
        org: str,
    ) -> None:
        self.plugin = plugin
        self.settings = plugin.settings
        self.platform = platform
        self.codec = codec
        self.principal = principal
        self.org = org
        self.holder = "conn-" + secrets.token_hex(8)
        self.lease: str | None = None
        self.lease_ready = asyncio.Event()
        self._released = False
        self.conv: ConversationRecord | None = None
        self._filler_k = 0

    # -- commands -----------------------------------------------------------------------

    async def command(self, cmd: ev.Command, io: SessionIO) -> None:
        """Run one of the dialect's commands."""
        if self.codec.close_request is not None:
            return
        handler = _COMMANDS[cmd.name]
        try:
            await handler(self, cmd.payload, io)
        except StoreUnavailableError:
            log.warning("store unavailable in amigo command %s", cmd.name)
            self.codec.request_close(1011, "the server's state store is unavailable; retry")
        io.flush()

    def _lease_key(self, service_id: str) -> str:
        return f"amigo:{self.principal.owner}:{self.org}:{service_id}"

    def _may_use(self, service_id: str) -> bool:
        allowed = [
            s[len(SERVICE_SCOPE) :] for s in self.principal.scopes if s.startswith(SERVICE_SCOPE)
        ]
        return not allowed or service_id in allowed

    async def _take_lease(self, service_id: str) -> bool:
        if self._released:
            return False
        key = self._lease_key(service_id)
        # Set before the await: a release (or the end hook) meanwhile covers this key too.
        self.lease = key
        store = self.platform.store
        ok = await store.acquire_lease(key, self.holder, self.settings.lease_ttl_s)
        if self._released:  # the connection ended while the lease was being taken
            if ok:
                await store.release_lease(key, self.holder)
            return False
        if not ok:
            self.lease = None
            return False
        self.lease_ready.set()
        return True

    async def _start(self, payload: dict[str, Any], io: SessionIO) -> None:
        registry = self.platform.registry
        assert registry is not None
        sid, vset = payload["service_id"], payload["version_set"]
        service = registry.service(self.org, sid)
        agent_id = service.agent_for(vset) if service is not None else None
        if service is None or agent_id is None:
            self.codec.request_close(NOT_FOUND, "not found: no such service or version set")
            return
        if not self._may_use(sid):
            self.codec.request_close(FORBIDDEN, "forbidden: no access to this service")
            return
        if not await self._take_lease(sid):
            self.codec.request_close(
                CONFLICT, "conflict: another connection of this user uses the service"
            )
            return
        agent = registry.agent(agent_id)
        conv = ConversationRecord(
            id=new_id(),
            owner=self.principal.owner,
            dialect="amigo",
            agent_id=agent_id,
            metadata={"org": self.org, "service_id": sid, "service_version_set_name": vset},
        )
        await self.platform.store.create_conversation(conv)
        self.conv = conv
        self._set_context(io, conv, agent.render_instructions() if agent is not None else "")
        self.codec.conversation_id = conv.id
        io.send(json.dumps({"type": "server.conversation-created", "conversation_id": conv.id}))
        greeting = agent.render_greeting() if agent is not None else None
        io.session.greet(time.monotonic(), text=greeting or self.settings.default_greeting)

    def _set_context(self, io: SessionIO, conv: ConversationRecord, instructions: str) -> None:
        s = io.session
        s.context = ev.SessionContext(
            principal=self.principal, agent_id=conv.agent_id, conversation_id=conv.id
        )
        s.state = replace(s.state, instructions=instructions)

    async def _continue(self, payload: dict[str, Any], io: SessionIO) -> None:
        store = self.platform.store
        conv = await store.get_conversation(payload["conversation_id"])
        if (
            conv is None
            or conv.owner != self.principal.owner
            or conv.dialect != "amigo"
            or conv.metadata.get("org") != self.org
        ):
            self.codec.request_close(NOT_FOUND, "not found: no such conversation")
            return
        if conv.finished:
            self.codec.request_close(CONFLICT, "conflict: the conversation is finished")
            return
        sid = str(conv.metadata.get("service_id", ""))
        if not self._may_use(sid):
            self.codec.request_close(FORBIDDEN, "forbidden: no access to this service")
            return
        if not await self._take_lease(sid):
            self.codec.request_close(
                CONFLICT, "conflict: the conversation is in use by another connection"
            )
            return
        registry = self.platform.registry
        assert registry is not None
        agent = registry.agent(conv.agent_id)
        self.conv = conv
        self._set_context(io, conv, agent.render_instructions() if agent is not None else "")
        self.codec.conversation_id = conv.id
        items = await store.get_items(conv.id)
        now = time.monotonic()
        self.codec.restoring = True
        try:
            for d in items:
                item = _stored_to_item(d)
                if item is not None:
                    io.session.apply(ev.CreateItem(None, item), now)
        finally:
            self.codec.restoring = False
        io.send(json.dumps({"type": "server.conversation-retrieved"}))

    async def _text(self, payload: dict[str, Any], io: SessionIO) -> None:
        s = io.session
        # A typed message waits for the answer in progress to end (it is not cut off).
        while s.response_id is not None and s.phase is not Phase.CLOSED:
            await self.codec.idle.wait()
            await asyncio.sleep(0)
        item = ev.Item(
            "item_" + new_id(),
            "message",
            "completed",
            "user",
            (ev.Content("input_text", payload["text"]),),
        )
        now = time.monotonic()
        s.apply(ev.CreateItem(None, item), now)
        s.apply(ev.CreateResponse(None), now)

    async def _event(self, payload: dict[str, Any], io: SessionIO) -> None:
        s = io.session
        if payload["start_interaction"] and self.codec.vad_on:
            # The user is speaking: the event waits until the speech has ended.
            while self.codec.speaking and s.phase is not Phase.CLOSED:
                await asyncio.sleep(0.02)
        item = ev.Item(
            "item_" + new_id(),
            "message",
            "completed",
            "system",
            (ev.Content("input_text", payload["text"]),),
        )
        now = time.monotonic()
        if payload["start_interaction"] and s.response_id is not None:
            s.apply(ev.CancelResponse(None), now)
        s.apply(ev.CreateItem(None, item), now)
        if payload["start_interaction"]:
            s.apply(ev.CreateResponse(None, kind="external_event"), now)

    async def _vad(self, payload: dict[str, Any], io: SessionIO) -> None:
        on = bool(payload["on"])
        io.send(json.dumps({"type": "server.vad-mode-switched", "current_vad_mode_on": on}))
        if on and payload["changed"]:
            io.send(
                json.dumps(
                    {
                        "type": "server.vad-speech-reset-zero",
                        "timestamp": round(self.codec.zero_ms / 1000.0, 3),
                    }
                )
            )

    async def _finish(self, payload: Any, io: SessionIO) -> None:
        await self._store_pending()
        if self.conv is not None:
            await self.platform.store.update_conversation(self.conv.id, finished=True)
        io.send(json.dumps({"type": "server.conversation-completed"}))

    async def _close(self, payload: Any, io: SessionIO) -> None:
        await self._store_pending()
        await self._release()
        io.close(1000, "closed by the client")

    # -- background tasks ---------------------------------------------------------------

    async def watchdog(self, io: SessionIO) -> None:
        """Carry out the codec's closes; close 3008 after the idle timeout."""
        codec = self.codec
        while True:
            if codec.close_request is not None:
                code, reason = codec.close_request
                # The lease goes before the close frame: a client that reconnects at once
                # finds the service free.
                await self._release()
                io.close(code, reason)
                return
            left = codec.last_message + self.settings.idle_timeout_s - codec.clock()
            if left <= 0:
                codec.request_close(TIMEOUT, "timeout: no message for 30 s")
                continue
            codec.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(codec.wake.wait(), left)

    async def keep_lease(self, io: SessionIO) -> None:
        """Renew the lease every third of its lifetime; lost and taken by another: 4009."""
        await self.lease_ready.wait()
        store, ttl = self.platform.store, self.settings.lease_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            key = self.lease
            if key is None:
                return
            try:
                ok = await store.renew_lease(key, self.holder, ttl)
                if not ok and not self._released:
                    ok = await store.acquire_lease(key, self.holder, ttl)
            except StoreUnavailableError:
                continue  # try again at the next renewal
            if self._released:  # released meanwhile: what was renewed goes too
                with contextlib.suppress(StoreUnavailableError):
                    await store.release_lease(key, self.holder)
                return
            if not ok:
                self.codec.request_close(CONFLICT, "conflict: another connection took the service")
                return

    async def store_items(self, io: SessionIO) -> None:
        """Write the conversation's new items when an interaction ends."""
        while True:
            await self.codec.flush.wait()
            self.codec.flush.clear()
            with contextlib.suppress(StoreUnavailableError):
                await self._store_pending()

    async def _store_pending(self) -> None:
        if self.conv is None or not self.codec.pending_items:
            return
        items = self.codec.take_items()
        await self.platform.store.append_items(self.conv.id, items)
        if self.codec.conversation_completed:
            await self.platform.store.update_conversation(self.conv.id, finished=True)

    async def fillers(self, io: SessionIO) -> None:
        """Speak a filler phrase when the agent's first output is late (voice only)."""
        codec, delay = self.codec, self.settings.filler_delay_s
        if delay is None or not codec.voice or not self.settings.filler_phrases:
            return
        from voxwire.tts_marks import speak_with_marks

        tick = min(0.1, delay / 4)
        while True:
            await asyncio.sleep(tick)
            cur = codec.filler_due()
            if cur is None:
                continue
            phrases = self.settings.filler_phrases
            text = phrases[self._filler_k % len(phrases)]
            self._filler_k += 1
            try:
                pcm, marks = await speak_with_marks(text, rate=self.settings.output_rate)
            except Exception:
                log.exception("filler synthesis failed")
                continue
            for frame in codec.filler_frames(cur, pcm, marks):
                io.send(frame)

    async def _release(self) -> None:
        """Give the lease up, for good (no lease is taken or renewed after this)."""
        self._released = True
        if self.lease is not None:
            key, self.lease = self.lease, None
            with contextlib.suppress(Exception):
                await self.platform.store.release_lease(key, self.holder)

    async def end(self, io: SessionIO) -> None:
        """Store what is left and release the lease."""
        with contextlib.suppress(Exception):
            await self._store_pending()
        await self._release()


_COMMANDS: dict[str, Callable[[_Conn, Any, SessionIO], Awaitable[None]]] = {
    "start": _Conn._start,
    "continue": _Conn._continue,
    "text": _Conn._text,
    "event": _Conn._event,
    "vad": _Conn._vad,
    "finish": _Conn._finish,
    "close": _Conn._close,
}


def _stored_to_item(d: dict[str, Any]) -> ev.Item | None:
    role, text = d.get("role"), d.get("text")
    if role not in ("user", "assistant", "system") or not isinstance(text, str):
        return None
    kind = "text" if role == "assistant" else "input_text"
    return ev.Item(
        "item_" + str(d.get("id") or new_id()),
        "message",
        "completed",
        role,
        (ev.Content(kind, text),),  # type: ignore[arg-type]
    )


#: The plugin ``voxwire serve`` runs.
PLUGIN = AmigoPlugin()

__all__ = ["PLUGIN", "AmigoDialect", "AmigoPlugin", "AmigoSettings"]
