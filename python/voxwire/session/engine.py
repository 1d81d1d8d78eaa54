"""The sans-I/O session engine: one per connection, no sockets, no tasks, no clock of its own.

The transport feeds it what the client sent (:meth:`Session.receive`) and what the agent
produced (:meth:`Session.agent_text`, :meth:`Session.agent_audio`, ...), with the time;
it reads back the wire messages to send (:meth:`Session.messages_to_send`) and the events
(:meth:`Session.events`): facts, and requests for the driver (start or stop an agent
response, close the connection). :meth:`Session.next_deadline` and :meth:`Session.tick`
handle the idle timeout.

Audio goes through the Rust core: each ``input_audio_buffer.append`` is one
:class:`voxwire.InputPipeline` call (base64 or G.711 decode, resampling to the VAD rate,
VAD, turn detection); agent audio goes out through a :class:`voxwire.OutputPipeline`
(resampling to the wire rate, encoding).

Nothing raises out of :meth:`receive` or the agent methods: bad input becomes an ``error``
fact and the session goes on. The response lifecycle is the table ``TRANSITIONS`` below.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.errors import BufferFullError, VoxwireError
from voxwire.session import events as ev

if TYPE_CHECKING:
    from voxwire.dialects import Dialect

log = logging.getLogger("voxwire.session")


class Phase(Enum):
    """Where the session's response lifecycle is."""

    IDLE = "idle"
    RESPONDING = "responding"
    CLOSED = "closed"


@dataclass(frozen=True)
class Limits:
    """Per-session limits."""

    #: Close the session after this long without a client message (while no response runs).
    idle_timeout_s: float = 300.0
    #: Most uncommitted input audio kept (server VAD commits turns, so this bounds a manual
    #: buffer or one endless turn): 5 minutes, 14.4 MB at 24 kHz.
    max_buffer_ms: int = 5 * 60 * 1000
    #: Most conversation items kept; the oldest go first.
    max_items: int = 512
    #: Most bytes of audio and text the conversation keeps; the oldest items go first.
    max_conversation_bytes: int = 32 << 20
    #: Most wire events one response may send; past it the response ends ``incomplete``
    #: (reason ``max_output_tokens``).
    max_response_events: int = 20_000
    #: Most wire bytes one response may send; past it the response ends ``incomplete``.
    max_response_bytes: int = 32 << 20
    #: Responses per minute, reported in ``rate_limits.updated`` and enforced.
    responses_per_minute: int = 600
    #: Client messages per minute (a fixed window); past it messages are refused with one
    #: ``rate_limit_exceeded`` error per window. 12,000 is 200 a second: 10 ms audio chunks
    #: with room to spare.
    messages_per_minute: int = 12_000
    #: Longest piece of output audio in one delta event.
    max_delta_ms: int = 200


@dataclass
class _ItemRec:
    item: ev.Item
    audio: npt.NDArray[np.int16] | None = None
    audio_rate: int = 0
    #: Output audio sent for an assistant item, in ms.
    audio_ms: float = 0.0

    def nbytes(self) -> int:
        """What the item keeps in memory, roughly: its audio and its text."""
        n = 0 if self.audio is None else int(self.audio.nbytes)
        it = self.item
        n += len(it.arguments or "") + len(it.output or "")
        for c in it.content:
            n += len(c.text or "") + len(c.transcript or "") + len(c.image_url or "")
        return n


@dataclass
class _Resp:
    id: str
    modalities: tuple[ev.Modality, ...]
    instructions: str
    item_id: str
    output_index: int = 0
    text: list[str] = field(default_factory=list)
    out: voxwire.OutputPipeline | None = None
    out_rate_in: int = 0
    audio_samples: int = 0
    outputs: list[ev.Item] = field(default_factory=list)
    notices: int = 0
    #: Wire events and bytes this response has sent.
    events: int = 0
    wire_bytes: int = 0
    #: Audio the agent has produced for this response, ms.
    agent_audio_ms: float = 0.0
    #: Whether the message item (text or audio) has been opened: it is, at the first text
    #: or audio, or at the end when the response made no tool call (a response of tool
    #: calls only has no message item).
    opened: bool = False
    #: Where the client truncated the answer while it was generated (ms of audio it
    #: played): no audio is sent after that.
    cut_ms: float | None = None
    #: Output items so far (the message item counts once opened).
    n_out: int = 0
    metadata: dict[str, str] | None = None


class Session:
    """One client's session, driven by the caller (see the module docstring).

    ``dialect`` is the wire codec (e.g. :class:`voxwire.dialects.OpenAIDialect`): it decodes
    client messages, encodes facts (errors included, from their kinds), and says how audio
    travels (``audio_encoding``: ``base64`` text or ``raw`` bytes). ``model`` is what
    ``session.model`` reports; ``vad_engine`` picks the VAD of the input pipeline; ``ids``
    makes every id (a counter gives reproducible sessions). ``now`` is the caller's clock in
    seconds (any monotonic origin). ``state`` is the initial configuration (the dialect's
    audio format and rates, for example).
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        now: float = 0.0,
        model: str = "voxwire-echo",
        limits: Limits | None = None,
        vad_engine: str = "silero",
        ids: ev.IdFactory = ev.random_id,
        state: ev.SessionState | None = None,
        context: ev.SessionContext | None = None,
    ) -> None:
        self.dialect = dialect
        self.limits = limits or Limits()
        self.vad_engine = vad_engine
        self._ids = ids
        #: Who and what the session is for (the dialect's handshake sets it).
        self.context = context or ev.SessionContext()
        self._encoding: str = getattr(dialect, "audio_encoding", "base64")
        base = state or ev.SessionState(id="", model=model)
        self.state = replace(base, id=ids("sess"), model=model)
        self.phase = Phase.IDLE
        self._outbox: list[str | bytes] = []
        self._events: list[ev.Event] = []
        self._items: list[_ItemRec] = []
        self._items_bytes = 0
        self._resp: _Resp | None = None
        self._speech_item: str | None = None
        self._speech_start_ms = 0
        self._offset_ms = 0
        self._last_activity = now
        self._now = now
        self._response_times: deque[float] = deque()
        self._window_start = now
        self._window_count = 0
        self._pipeline = self._make_pipeline()
        self._emit(ev.SessionCreated(self.state))

    # ----------------------------------------------------------------------------------
    # The driver's interface

    def receive(self, message: str | bytes, now: float) -> None:
        """Handle one client message (never raises)."""
        if self.phase is Phase.CLOSED:
            return
        self._last_activity = self._now = now
        if now - self._window_start >= 60.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.limits.messages_per_minute:
            if self._window_count == self.limits.messages_per_minute + 1:
                self._error(
                    "rate_limited", None, what="messages", limit=self.limits.messages_per_minute
                )
            return
        decoded = self.dialect.decode(message)
        # A dialect may decode one message into several intents (a tuple), handled in order.
        for intent in decoded if isinstance(decoded, tuple) else (decoded,):
            self._dispatch_guarded(intent, now)

    def _dispatch_guarded(self, intent: ev.Intent, now: float) -> None:
        if self.phase is not Phase.CLOSED:
            self._guard(lambda: self._dispatch(intent, now), getattr(intent, "event_id", None))

    def apply(self, intent: ev.Intent, now: float) -> None:
        """Handle an intent a dialect's command handler built (never raises).

        As :meth:`receive` does for a decoded message, without counting a client message
        (the command that led here was counted when it arrived): a dialect whose own
        message stands for several engine steps (load a stored conversation, add the user's
        text, start a response) applies them in order.
        """
        if self.phase is Phase.CLOSED:
            return
        self._now = now
        self._guard(lambda: self._dispatch(intent, now), getattr(intent, "event_id", None))

    @property
    def items(self) -> tuple[ev.Item, ...]:
        """The conversation's items, oldest first (as clients see them: no audio)."""
        return tuple(r.item for r in self._items)

    def tick(self, now: float) -> None:
        """Let time pass: closes the session once it has been idle too long."""
        self._now = now
        if self.phase is Phase.IDLE and now - self._last_activity >= self.limits.idle_timeout_s:
            self._error("idle_timeout", None, seconds=self.limits.idle_timeout_s)
            self._close(1000, "idle timeout")

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing pending)."""
        if self.phase is not Phase.IDLE:
            return None
        return self._last_activity + self.limits.idle_timeout_s

    def send_raw(self, message: str | bytes) -> None:
        """Queue a wire message the dialect made itself (a command's answer).

        It goes out in order with the engine's own messages.
        """
        if self.phase is not Phase.CLOSED:
            self._outbox.append(message)

    def messages_to_send(self) -> list[str | bytes]:
        """Wire messages produced since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[ev.Event]:
        """Facts and driver requests produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """End the session from the server side (e.g. graceful shutdown)."""
        if self.phase is not Phase.CLOSED:
            if self._resp is not None:
                self._finish("cancelled", reason="client_cancelled")
            self._close(code, reason)

    @property
    def speaking(self) -> bool:
        """Whether the user is in the middle of a turn (server VAD)."""
        return self._pipeline.speaking

    @property
    def audio_received_ms(self) -> int:
        """Milliseconds of input audio taken in since the session started (the timeline)."""
        return self._offset_ms + self._pipeline.position_ms

    @property
    def response_id(self) -> str | None:
        """The response in progress, if any."""
        return self._resp.id if self._resp else None

    # ----------------------------------------------------------------------------------
    # The agent's interface (the driver forwards what the agent yields)

    def agent_text(self, response_id: str, text: str, now: float) -> None:
        """A text delta of the response (the transcript, in audio responses)."""
        r = self._live(response_id, now)
        if r is None or not text:
            return
        self._open_message(r)
        r.text.append(text)
        part = self._part_fact_args(r)
        if "audio" in r.modalities:
            self._emit(ev.TranscriptDelta(*part, delta=text))
        else:
            self._emit(ev.TextDelta(*part, delta=text))
        self._over_budget(r)

    def agent_audio(
        self,
        response_id: str,
        pcm: npt.NDArray[np.int16],
        sample_rate: int,
        now: float,
        marks: tuple[tuple[float, str], ...] = (),
    ) -> None:
        """Audio of the response (int16 at ``sample_rate``).

        Sent as deltas in the session's output format; ignored in text responses. ``marks``:
        the TTS's timing, ``(ms from the start of this audio, character)``, sent first as a
        :class:`~voxwire.session.events.SpeechMarks` fact (ms from the response's start).
        """
        r = self._live(response_id, now)
        if r is None or "audio" not in r.modalities or r.cut_ms is not None:
            return
        self._open_message(r)
        if marks:
            base = r.agent_audio_ms
            self._emit(
                ev.SpeechMarks(
                    *self._part_fact_args(r), marks=tuple((base + ms, c) for ms, c in marks)
                )
            )
        if sample_rate > 0:
            r.agent_audio_ms += len(pcm) * 1000 / sample_rate
        self._guard(lambda: self._audio_out(r, pcm, sample_rate), None)
        if self._resp is r:
            self._over_budget(r)

    def agent_thought(self, response_id: str, text: str, now: float) -> None:
        """A piece of the agent's reasoning (a :class:`~voxwire.session.events.ThoughtDelta`).

        It is not kept in the conversation.
        """
        r = self._live(response_id, now)
        if r is None or not text:
            return
        self._emit(ev.ThoughtDelta(r.id, r.item_id, text))
        self._over_budget(r)

    def agent_tool_call(
        self, response_id: str, name: str, arguments: str, call_id: str, now: float
    ) -> None:
        """The agent calls a tool: a ``function_call`` output item."""
        r = self._live(response_id, now)
        if r is None:
            return
        idx = r.n_out
        r.n_out += 1
        item = ev.Item(
            self._ids("item"),
            "function_call",
            "completed",
            call_id=call_id,
            name=name,
            arguments=arguments,
        )
        prev = self._items[-1].item.id if self._items else None
        self._add_item(_ItemRec(item))
        self._emit(ev.OutputItemAdded(r.id, idx, replace(item, status="in_progress")))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.FunctionCallArgumentsDone(r.id, item.id, idx, call_id, name, arguments))
        self._emit(ev.ItemDone(item, prev))
        self._emit(ev.OutputItemDone(r.id, idx, item))
        r.outputs.append(item)
        self._over_budget(r)

    def agent_tool_result(self, response_id: str, call_id: str, output: str, now: float) -> None:
        """The agent ran a tool itself (a server-side tool) and got ``output``.

        It becomes a ``function_call_output`` item after the call's item, and a
        :class:`~voxwire.session.events.FunctionCallOutputDone` fact (with the call's tool
        name, when the call is in the conversation).
        """
        r = self._live(response_id, now)
        if r is None:
            return
        calls = (x.item for x in self._items if x.item.type == "function_call")
        call = next((c for c in calls if c.call_id == call_id), None)
        name = call.name if call is not None else None
        item = ev.Item(
            self._ids("item"), "function_call_output", "completed", call_id=call_id, output=output
        )
        prev = self._items[-1].item.id if self._items else None
        self._add_item(_ItemRec(item))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.FunctionCallOutputDone(r.id, item.id, call_id, name or "", output))
        self._emit(ev.ItemDone(item, prev))
        self._over_budget(r)

    def agent_notice(self, response_id: str, code: str, message: str, now: float) -> None:
        """Something the agent wants the client told.

        It goes out as a non-fatal error event (for example: audio is unavailable).
        """
        if self._live(response_id, now) is None:
            return
        self._error("agent_notice", None, code=code, message=message)

    def agent_end_conversation(self, response_id: str, reason: str, now: float) -> None:
        """The agent ends the conversation; the dialect tells the client its way."""
        if self._live(response_id, now) is not None:
            self._emit(ev.ConversationEnded(reason))

    def greet(self, now: float, *, text: str | None = None) -> None:
        """Let the agent speak first (a ``greeting`` turn).

        APIs whose agent opens the conversation call this once the session is set up.
        ``text`` is what the agent is configured to say first (the registry agent's rendered
        ``greeting``), passed to the agent as the turn's ``text``. Ignored while a response
        runs.
        """
        self._now = now
        if self.phase is Phase.IDLE:
            self._guard(
                lambda: self._start_response(None, None, None, now, kind="greeting", text=text),
                None,
            )

    def agent_done(self, response_id: str, now: float) -> None:
        """The agent finished the response."""
        if self._live(response_id, now) is not None:
            self._guard(lambda: self._finish("completed"), None)

    def user_transcript(self, item_id: str, transcript: str, now: float) -> None:
        """The ASR's transcript of user item ``item_id`` (never raises).

        Sets it on the item's (first) ``input_audio`` part and, when the
        session's ``transcription`` setting is on, emits
        :class:`~voxwire.session.events.InputTranscriptionCompleted`. An unknown item (deleted,
        or dropped past ``max_items``), or one with no such part, is ignored.
        """
        self._now = now
        if self.phase is Phase.CLOSED:
            return
        self._guard(lambda: self._set_transcript(item_id, transcript), None)

    @property
    def speech_item(self) -> str | None:
        """The item id of the user's turn in progress (server VAD), None between turns."""
        return self._speech_item if self.phase is not Phase.CLOSED else None

    @property
    def speech_ms(self) -> int:
        """Milliseconds of audio in the user's turn in progress (0 between turns)."""
        if self._speech_item is None:
            return 0
        return max(0, self._pipeline.position_ms - self._speech_start_ms)

    def speech_audio(self) -> npt.NDArray[np.int16]:
        """The audio of the user's turn in progress so far (a copy, at the input rate).

        From the turn's start (with its prefix padding) to the latest audio; the same start
        on every call of one turn, so each result extends the one before. Empty between
        turns.
        """
        if self._speech_item is None:
            return np.zeros(0, np.int16)
        return self._pipeline.audio(self._speech_start_ms, self._pipeline.position_ms)

    def user_transcript_partial(self, item_id: str, text: str, now: float) -> None:
        """A partial transcript of the turn in progress (never raises).

        Emits :class:`~voxwire.session.events.InputTranscriptionDelta` when ``item_id`` is
        still the turn in progress and the session's ``transcription`` setting is on;
        ignored otherwise (a result that comes after its turn ended).
        """
        self._now = now
        if self.phase is Phase.CLOSED or item_id != self._speech_item:
            return
        if self.state.transcription:
            self._emit(ev.InputTranscriptionDelta(item_id, text))

    def _set_transcript(self, item_id: str, transcript: str) -> None:
        rec = self._find(item_id)
        if rec is None or rec.item.role != "user":
            return
        parts = rec.item.content
        idx = next((k for k, c in enumerate(parts) if c.type == "input_audio"), None)
        if idx is None:
            return
        new = replace(parts[idx], transcript=transcript)
        self._replace_item(rec, replace(rec.item, content=(*parts[:idx], new, *parts[idx + 1 :])))
        if self.state.transcription:
            seconds = len(rec.audio) / rec.audio_rate if rec.audio is not None else 0.0
            if rec.audio is not None and rec.audio_rate <= 0:
                seconds = 0.0
            self._emit(ev.InputTranscriptionCompleted(item_id, idx, transcript, round(seconds, 3)))

    def agent_failed(self, response_id: str, message: str, now: float) -> None:
        """The agent failed; the response ends as ``failed``."""
        if self._live(response_id, now) is not None:
            self._finish("failed", error=message)

    # ----------------------------------------------------------------------------------
    # Internals

    def _guard(self, fn: Callable[[], None], event_id: str | None) -> None:
        try:
            fn()
        except Exception as e:  # the engine's promise: nothing raises out of it
            log.exception("session %s: internal error", self.state.id)
            self._error("internal", event_id, detail=str(e))

    def _emit(self, e: ev.Event) -> None:
        self._events.append(e)
        if isinstance(e, ev.Fact):
            wire = self.dialect.encode(e)
            if wire is None:
                return
            # A dialect may answer one fact with several wire messages (a list or tuple).
            for w in (wire,) if isinstance(wire, str | bytes) else wire:
                self._outbox.append(w)
                r = self._resp
                if r is not None:
                    r.events += 1
                    r.wire_bytes += len(w)

    def _over_budget(self, r: _Resp) -> bool:
        """End ``r`` as incomplete when it has sent too much (True: it has ended)."""
        lim = self.limits
        if r.events < lim.max_response_events and r.wire_bytes < lim.max_response_bytes:
            return False
        self._finish("incomplete", reason="max_output_tokens")
        return True

    def _error(self, kind: ev.ErrorKind, eid: str | None, **params: Any) -> None:
        self._emit(ev.Error(kind, params, eid))

    def _close(self, code: int, reason: str) -> None:
        self.phase = Phase.CLOSED
        self._emit(ev.Close(code, reason))

    def _make_pipeline(self) -> voxwire.InputPipeline:
        td = self.state.turn_detection
        fmt = self.state.input_format
        rate = self.state.input_rate
        semantic = td is not None and td.type == "semantic_vad"
        return voxwire.InputPipeline(
            in_rate=rate,
            encoding=self._encoding,
            format=fmt,
            vad_rate=16000 if rate > 8000 else 8000,
            engine=self.vad_engine,
            # The client's threshold (server_vad's documented 0.5 by default); the turn-start
            # rule under it (start_secs, vad_reset_ms) is the pipeline's default, chosen on
            # benches/turn_start_sweep.py's tuning split (docs/design/vad.md).
            threshold=td.threshold if td else 0.5,
            prefix_padding_ms=td.prefix_padding_ms if td else 300,
            silence_duration_ms=td.silence_duration_ms if td else 500,
            turn_detection=td is not None,
            max_buffer_ms=self.limits.max_buffer_ms,
            # semantic_vad: the prosodic end-of-turn rule, its waits by eagerness.
            end_mode="semantic" if semantic else "silence",
            eagerness=td.eagerness if td is not None else "auto",
        )

    def _dispatch(self, intent: ev.Intent, now: float) -> None:
        handler = TRANSITIONS.get((self.phase, type(intent))) or TRANSITIONS.get(
            (None, type(intent))
        )
        if handler is None:  # pragma: no cover - every intent type has an entry
            raise AssertionError(f"no transition for {self.phase} {type(intent).__name__}")
        handler(self, intent, now)

    # -- intents ---------------------------------------------------------------------

    def _on_command(self, i: ev.Command, now: float) -> None:
        self._events.append(ev.RunCommand(i))

    def _on_bad(self, i: ev.BadMessage, now: float) -> None:
        self._error("bad_message", i.event_id, code=i.code, message=i.message, param=i.param)

    def _on_update(self, i: ev.UpdateSession, now: float) -> None:
        changes = {
            k: getattr(i, k)
            for k in (
                "input_format",
                "output_format",
                "input_rate",
                "output_rate",
                "turn_detection",
                "modalities",
                "instructions",
                "voice",
                "transcription",
                "tools",
                "tool_choice",
            )
            if getattr(i, k) is not ev.UNSET
        }
        old = self.state
        self.state = replace(old, **changes)
        if (old.input_format, old.input_rate, old.turn_detection) != (
            self.state.input_format,
            self.state.input_rate,
            self.state.turn_detection,
        ):
            # A new pipeline for the new format or VAD settings; the timeline goes on.
            self._offset_ms += self._pipeline.position_ms
            self._pipeline = self._make_pipeline()
            self._speech_item = None
        self._emit(ev.SessionUpdated(self.state))

    def _on_append(self, i: ev.AppendAudio, now: float) -> None:
        if not i.audio:
            self._error("audio_empty", i.event_id)
            return
        fmt, rate = self.state.input_format, self.state.input_rate
        try:
            turns = self._pipeline.push(i.audio)
        except BufferFullError as e:
            self._error("buffer_full", i.event_id, max_ms=e.max_ms, format=fmt, rate=rate)
            return
        except VoxwireError as e:
            self._error("audio_invalid", i.event_id, detail=str(e), format=fmt, rate=rate)
            return
        for t in turns:
            if isinstance(t, voxwire.SpeechStarted):
                self._speech_started(t.audio_start_ms, now)
            else:
                self._speech_stopped(t.audio_end_ms, t.emitted_at_ms, now)

    def _speech_started(self, start_ms: int, now: float) -> None:
        td = self.state.turn_detection
        assert td is not None
        self._speech_item = self._ids("item")
        self._speech_start_ms = max(0, start_ms - td.prefix_padding_ms)
        self._emit(ev.SpeechStarted(self._offset_ms + self._speech_start_ms, self._speech_item))
        if self._resp is not None and td.interrupt_response:
            self._finish("cancelled", reason="turn_detected")

    def _speech_stopped(self, end_ms: int, emitted_ms: int, now: float) -> None:
        td = self.state.turn_detection
        assert td is not None
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        self._emit(ev.SpeechStopped(self._offset_ms + emitted_ms, item_id))
        audio = self._pipeline.audio(self._speech_start_ms, emitted_ms)
        self._pipeline.discard_until(emitted_ms)
        self._commit(item_id, audio, None)
        if td.create_response:
            if self._resp is None:
                self._start_response(None, None, None, now)
            else:
                self._busy_error(None)

    def _commit(self, item_id: str, audio: npt.NDArray[np.int16], eid: str | None) -> None:
        prev = self._items[-1].item.id if self._items else None
        item = ev.Item(item_id, "message", "completed", "user", (ev.Content("input_audio"),))
        rate = self.state.input_rate
        self._add_item(_ItemRec(item, audio=audio.copy(), audio_rate=rate))
        self._emit(ev.AudioCommitted(item_id, prev))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.ItemDone(item, prev))

    def _on_commit(self, i: ev.CommitAudio, now: float) -> None:
        _, audio = self._pipeline.buffered()
        ms = len(audio) * 1000 / self.state.input_rate
        if ms < 100:
            self._error("commit_too_small", i.event_id, ms=ms, min_ms=100)
            return
        self._pipeline.clear_buffer()
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        self._commit(item_id, audio, i.event_id)

    def _on_clear(self, i: ev.ClearAudio, now: float) -> None:
        self._pipeline.clear_buffer()
        self._emit(ev.AudioCleared())

    def _add_item(self, rec: _ItemRec, after: str | None = None) -> None:
        if after is None:
            self._items.append(rec)
        elif after == "root":
            self._items.insert(0, rec)
        else:
            at = next(k for k, r in enumerate(self._items) if r.item.id == after)
            self._items.insert(at + 1, rec)
        self._items_bytes += rec.nbytes()
        self._trim_items()

    def _trim_items(self) -> None:
        """Drop the oldest items past ``max_items`` or ``max_conversation_bytes``.

        Never the newest one, nor the item of the response in progress.
        """
        lim = self.limits
        items = self._items
        keep = self._resp.item_id if self._resp is not None else None
        k = 0
        while len(items) - k > 1 and (
            len(items) > lim.max_items or self._items_bytes > lim.max_conversation_bytes
        ):
            if items[k].item.id == keep:
                k += 1
                continue
            self._items_bytes -= items.pop(k).nbytes()

    def _remove_item(self, rec: _ItemRec) -> None:
        self._items.remove(rec)
        self._items_bytes -= rec.nbytes()

    def _replace_item(self, rec: _ItemRec, item: ev.Item) -> None:
        self._items_bytes -= rec.nbytes()
        rec.item = item
        self._items_bytes += rec.nbytes()

    def _find(self, item_id: str) -> _ItemRec | None:
        return next((r for r in self._items if r.item.id == item_id), None)

    def _on_create_item(self, i: ev.CreateItem, now: float) -> None:
        if self._find(i.item.id) is not None:
            self._error("item_exists", i.event_id, item_id=i.item.id)
            return
        prev = i.previous_item_id
        if prev not in (None, "root") and self._find(prev) is None:
            self._error("previous_item_missing", i.event_id, item_id=prev)
            return
        rec = _ItemRec(i.item)
        for idx, b64 in i.audio:
            try:
                pcm = voxwire.b64decode_pcm16(b64)
            except VoxwireError as e:
                self._error(
                    "item_audio_invalid", i.event_id, index=idx, detail=str(e), rate=i.audio_rate
                )
                return
            rec.audio = pcm if rec.audio is None else np.concatenate((rec.audio, pcm))
            rec.audio_rate = i.audio_rate
        if prev is None:
            before = self._items[-1].item.id if self._items else None
        elif prev == "root":
            before = None
        else:
            before = prev
        self._add_item(rec, prev)
        self._emit(ev.ItemAdded(i.item, before))
        self._emit(ev.ItemDone(i.item, before))

    def _find_or_error(self, item_id: str, op: str, eid: str | None) -> _ItemRec | None:
        """The item, or None after an ``item_missing`` error for operation ``op``."""
        rec = self._find(item_id)
        if rec is None:
            self._error("item_missing", eid, op=op, item_id=item_id)
        return rec

    def _on_truncate(self, i: ev.TruncateItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "truncate", i.event_id)
        if rec is None:
            return
        r = self._resp
        if r is not None and r.item_id == i.item_id and "audio" in r.modalities:
            self._truncate_live(r, rec, i)
            return
        it = rec.item
        if it.role != "assistant" or not any(c.type == "audio" for c in it.content):
            self._error("truncate_not_audio", i.event_id)
            return
        if i.content_index != 0 or i.audio_end_ms < 0:
            self._error("truncate_invalid", i.event_id)
            return
        if i.audio_end_ms > rec.audio_ms + 0.5:
            self._error(
                "truncate_too_long", i.event_id, audio_ms=rec.audio_ms, end_ms=i.audio_end_ms
            )
            return
        rec.audio_ms = float(i.audio_end_ms)
        # The transcript no longer matches what the user heard: dropped, as OpenAI does.
        self._replace_item(
            rec, replace(it, content=tuple(replace(c, transcript=None) for c in it.content))
        )
        self._emit(ev.ItemTruncated(i.item_id, i.content_index, i.audio_end_ms))

    def _truncate_live(self, r: _Resp, rec: _ItemRec, i: ev.TruncateItem) -> None:
        """Truncate the answer still being generated (a client stopping playback at once).

        Its audio stops here (no more deltas; the response goes on until it ends or is
        cancelled) and the item keeps what was played, without its transcript.
        """
        if i.content_index != 0 or i.audio_end_ms < 0:
            self._error("truncate_invalid", i.event_id)
            return
        sent_ms = r.audio_samples * 1000 / self.state.output_rate
        if i.audio_end_ms > sent_ms + 0.5:
            self._error("truncate_too_long", i.event_id, audio_ms=sent_ms, end_ms=i.audio_end_ms)
            return
        r.cut_ms = float(i.audio_end_ms)
        rec.audio_ms = r.cut_ms
        self._emit(ev.ItemTruncated(i.item_id, i.content_index, i.audio_end_ms))

    def _on_delete(self, i: ev.DeleteItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "delete", i.event_id)
        if rec is None:
            return
        self._remove_item(rec)
        self._emit(ev.ItemDeleted(i.item_id))

    def _on_retrieve(self, i: ev.RetrieveItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "retrieve", i.event_id)
        if rec is not None:
            self._emit(ev.ItemRetrieved(rec.item))

    def _on_respond(self, i: ev.CreateResponse, now: float) -> None:
        self._start_response(
            i.modalities,
            i.instructions,
            i.event_id,
            now,
            kind=i.kind,
            metadata=i.metadata,
            tools=i.tools,
            tool_choice=i.tool_choice,
        )

    def _on_respond_busy(self, i: ev.CreateResponse, now: float) -> None:
        self._busy_error(i.event_id)

    def _busy_error(self, eid: str | None) -> None:
        assert self._resp is not None
        self._error("response_busy", eid, response_id=self._resp.id)

    def _on_cancel(self, i: ev.CancelResponse, now: float) -> None:
        assert self._resp is not None
        if i.response_id is not None and i.response_id != self._resp.id:
            self._error("cancel_not_active", i.event_id, response_id=i.response_id)
            return
        self._finish("cancelled", reason="client_cancelled")

    def _on_cancel_idle(self, i: ev.CancelResponse, now: float) -> None:
        self._error("cancel_not_active", i.event_id, response_id=i.response_id)

    # -- responses -------------------------------------------------------------------

    def _start_response(
        self,
        modalities: tuple[ev.Modality, ...] | None,
        instructions: str | None,
        eid: str | None,
        now: float,
        kind: str = "user",
        text: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        tools: tuple[ev.ToolSpec, ...] | None = None,
        tool_choice: str | None = None,
    ) -> None:
        t = now
        window = self._response_times
        while window and t - window[0] > 60.0:
            window.popleft()
        if len(window) >= self.limits.responses_per_minute:
            self._error(
                "rate_limited", eid, what="responses", limit=self.limits.responses_per_minute
            )
            return
        window.append(t)
        mods = modalities or self.state.modalities
        r = _Resp(
            self._ids("resp"),
            mods,
            self.state.instructions if instructions is None else instructions,
            self._ids("item"),
        )
        r.metadata = metadata
        self._resp = r
        self.phase = Phase.RESPONDING
        self._emit(ev.ResponseCreated(self._response_view(r, "in_progress")))
        turn = self._turn(r, kind, text)
        if tools is not None or tool_choice is not None:
            turn = replace(
                turn,
                tools=turn.tools if tools is None else tools,
                tool_choice=turn.tool_choice if tool_choice is None else tool_choice,
            )
        if not turn.tools or turn.tool_choice == "none":
            # No tool to call: the answer is a message, opened now. With tools it opens at
            # its first text or audio, so that a response of tool calls only has none.
            self._open_message(r)
        self._emit(ev.StartResponse(r.id, turn))

    def _open_message(self, r: _Resp) -> None:
        """Open the response's message item (text or audio), once, at its first content."""
        if r.opened:
            return
        r.opened = True
        r.output_index = r.n_out
        r.n_out += 1
        prev = self._items[-1].item.id if self._items else None
        part = (
            ev.Content("audio", transcript="")
            if "audio" in r.modalities
            else ev.Content("text", text="")
        )
        item = ev.Item(r.item_id, "message", "in_progress", "assistant", ())
        self._add_item(_ItemRec(item))
        self._emit(ev.OutputItemAdded(r.id, r.output_index, item))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.ContentPartAdded(*self._part_fact_args(r), part=part))

    def _turn(self, r: _Resp, kind: str = "user", text: str | None = None) -> ev.UserTurn:
        extra: dict[str, Any] = {
            "tools": self.state.tools,
            "tool_choice": self.state.tool_choice,
            "context": self.context,
            "voice": self.state.voice,
        }
        if kind == "user" and self._items and self._items[-1].item.type == "function_call_output":
            # The client sent its tools' results and asks for an answer: answer them.
            kind = "tool_results"
        if kind != "user":
            # No user input: a greeting (``text``: what to say first), the tools' results
            # or an external event (the last history items).
            if kind == "external_event" and text is None:
                # The event's own text too: the latest system item's.
                text = next(
                    (
                        " ".join(c.text for c in rec.item.content if c.text)
                        for rec in reversed(self._items)
                        if rec.item.role == "system"
                    ),
                    None,
                )
            return ev.UserTurn(
                None,
                text,
                None,
                self.state.input_rate,
                None,
                r.modalities,
                r.instructions,
                kind=kind,  # type: ignore[arg-type]
                history=self._history(len(self._items)),
                **extra,
            )
        for k in range(len(self._items) - 1, -1, -1):
            rec = self._items[k]
            it = rec.item
            if it.role != "user":
                continue
            text = " ".join(c.text for c in it.content if c.type == "input_text" and c.text)
            transcript = " ".join(c.transcript for c in it.content if c.transcript) or None
            extra["images"] = tuple(
                c.image_url for c in it.content if c.type == "input_image" and c.image_url
            )
            return ev.UserTurn(
                it.id,
                text or None,
                rec.audio,
                rec.audio_rate or self.state.input_rate,
                transcript,
                r.modalities,
                r.instructions,
                history=self._history(k),
                **extra,
            )
        return ev.UserTurn(
            None,
            None,
            None,
            self.state.input_rate,
            None,
            r.modalities,
            r.instructions,
            history=self._history(len(self._items)),
            **extra,
        )

    def _history(self, end: int) -> tuple[ev.HistoryItem, ...]:
        """The conversation's first ``end`` items as the agent sees them (no audio)."""
        out: list[ev.HistoryItem] = []
        for rec in self._items[:end]:
            it = rec.item
            if it.type == "function_call":
                out.append(
                    ev.HistoryItem(
                        "assistant",
                        name=it.name,
                        arguments=it.arguments,
                        call_id=it.call_id,
                        item_id=it.id,
                    )
                )
            elif it.type == "function_call_output":
                out.append(
                    ev.HistoryItem("tool", call_id=it.call_id, output=it.output, item_id=it.id)
                )
            elif it.status != "in_progress":
                text = " ".join(c.text or c.transcript or "" for c in it.content).strip()
                out.append(ev.HistoryItem(it.role or "user", text, item_id=it.id))
        return tuple(out)

    def _live(self, response_id: str, now: float | None = None) -> _Resp | None:
        if now is not None:
            self._now = now
        r = self._resp
        return (
            r if r is not None and r.id == response_id and self.phase is Phase.RESPONDING else None
        )

    def _part_fact_args(self, r: _Resp) -> tuple[str, str, int, int]:
        return (r.id, r.item_id, r.output_index, 0)

    def _audio_out(self, r: _Resp, pcm: npt.NDArray[np.int16], rate: int) -> None:
        fmt = self.state.output_format
        out_rate = self.state.output_rate
        if r.out is None or r.out_rate_in != rate:
            if r.out is not None:
                self._send_audio(r, r.out.flush())
            r.out = voxwire.OutputPipeline(rate, out_rate, format=fmt, encoding=self._encoding)
            r.out_rate_in = rate
        step = max(1, rate * self.limits.max_delta_ms // 1000)
        for k in range(0, len(pcm), step):
            self._send_audio(r, r.out.push(pcm[k : k + step]))

    def _send_audio(self, r: _Resp, delta: str | bytes) -> None:
        if not delta:
            return
        assert r.out is not None
        r.audio_samples += r.out.last_samples
        self._emit(ev.AudioDelta(*self._part_fact_args(r), delta=delta))

    def _response_view(self, r: _Resp, status: Any, **kw: Any) -> ev.Response:
        return ev.Response(
            r.id,
            status,
            r.modalities,
            self.state.output_format,
            self.state.voice,
            output=tuple(r.outputs),
            metadata=r.metadata,
            **kw,
        )

    def _finish(self, status: str, reason: str | None = None, error: str | None = None) -> None:
        r = self._resp
        assert r is not None
        if not r.opened and not r.outputs:
            self._open_message(r)  # a response with nothing in it still has its message
        if not r.opened:
            self._end_response(r, status, reason, error, "")
            return
        done_ok = status == "completed"
        part_args = self._part_fact_args(r)
        text = "".join(r.text)
        if "audio" in r.modalities:
            if r.out is not None and done_ok and r.cut_ms is None:
                self._send_audio(r, r.out.flush())
            self._emit(ev.AudioDone(*part_args))
            self._emit(ev.TranscriptDone(*part_args, transcript=text))
            part = ev.Content("audio", transcript=text)
        else:
            self._emit(ev.TextDone(*part_args, text=text))
            part = ev.Content("text", text=text)
        self._emit(ev.ContentPartDone(*part_args, part=part))
        rec = self._find(r.item_id)
        if r.cut_ms is not None:
            part = replace(part, transcript=None)  # truncated: no text the user did not hear
        item = ev.Item(
            r.item_id, "message", "completed" if done_ok else "incomplete", "assistant", (part,)
        )
        prev = None
        if rec is not None:
            self._replace_item(rec, item)
            self._trim_items()
            rec.audio_ms = (
                r.audio_samples * 1000 / self.state.output_rate if r.cut_ms is None else r.cut_ms
            )
            k = self._items.index(rec)
            prev = self._items[k - 1].item.id if k > 0 else None
        self._emit(ev.ItemDone(item, prev))
        self._emit(ev.OutputItemDone(r.id, r.output_index, item))
        r.outputs.insert(r.output_index, item)
        self._end_response(r, status, reason, error, text)

    def _end_response(
        self, r: _Resp, status: str, reason: str | None, error: str | None, text: str
    ) -> None:
        """The end of every response: idle again, ``response.done``, the rate limits."""
        self._resp = None
        self.phase = Phase.IDLE
        self._emit(ev.StopResponse(r.id))
        words = len(text.split())
        self._emit(
            ev.ResponseDone(
                self._response_view(r, status, reason=reason, error=error, output_tokens=words)
            )
        )
        t = self._now
        window = self._response_times
        self._emit(
            ev.RateLimitsUpdated(
                (
                    ev.RateLimit(
                        "requests",
                        self.limits.responses_per_minute,
                        max(0, self.limits.responses_per_minute - len(window)),
                        round(max(0.0, 60.0 - (t - window[0])) if window else 0.0, 3),
                    ),
                )
            )
        )


_Handler = Callable[[Session, Any, float], None]

#: The session's transitions in one place: (phase, intent type) -> handler; a ``None``
#: phase is any phase that has no entry of its own. CLOSED sessions ignore everything.
TRANSITIONS: dict[tuple[Phase | None, type[ev.Intent]], _Handler] = {
    (None, ev.BadMessage): Session._on_bad,
    (None, ev.Command): Session._on_command,
    (None, ev.UpdateSession): Session._on_update,
    (None, ev.AppendAudio): Session._on_append,
    (None, ev.CommitAudio): Session._on_commit,
    (None, ev.ClearAudio): Session._on_clear,
    (None, ev.CreateItem): Session._on_create_item,
    (None, ev.TruncateItem): Session._on_truncate,
    (None, ev.DeleteItem): Session._on_delete,
    (None, ev.RetrieveItem): Session._on_retrieve,
    (Phase.IDLE, ev.CreateResponse): Session._on_respond,
    (Phase.RESPONDING, ev.CreateResponse): Session._on_respond_busy,
    (Phase.IDLE, ev.CancelResponse): Session._on_cancel_idle,
    (Phase.RESPONDING, ev.CancelResponse): Session._on_cancel,
}
