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

:class:`Session` is the facade: it owns the state (settings, phase, the input pipeline and
the message rate window) and dispatches intents. The conversation's items are a
:class:`~voxwire.session.conversation.Conversation`; the response in progress is the
:class:`~voxwire.session.response.ResponseLifecycle`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.errors import BufferFullError, VoxwireError
from voxwire.session import events as ev
from voxwire.session.conversation import Conversation, ItemRecord
from voxwire.session.outbox import Outbox
from voxwire.session.response import LiveResponse, ResponseLifecycle, SessionView

if TYPE_CHECKING:
    from voxwire.dialects import Dialect
    from voxwire.types import Encoding, VadEngine

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
        vad_engine: VadEngine = "silero",
        ids: ev.IdFactory = ev.random_id,
        state: ev.SessionState | None = None,
        context: ev.SessionContext | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.vad_engine = vad_engine
        self._ids = ids
        self._encoding: Encoding = getattr(dialect, "audio_encoding", "base64")
        base = state or ev.SessionState(id="", model=model)
        # The settings, context and clock, shared with the response lifecycle (read there).
        self._view = SessionView(
            replace(base, id=ids("sess"), model=model), context or ev.SessionContext(), now
        )
        self._closed = False
        self._out = Outbox(dialect)
        #: The conversation's items (the store).
        self.conversation = Conversation(
            max_items=self.limits.max_items, max_bytes=self.limits.max_conversation_bytes
        )
        #: The response in progress (the lifecycle).
        self.responses = ResponseLifecycle(
            conversation=self.conversation,
            limits=self.limits,
            ids=ids,
            encoding=self._encoding,
            outbox=self._out,
            view=self._view,
        )
        self._speech_item: str | None = None
        self._speech_start_ms = 0
        self._offset_ms = 0
        self._last_activity = now
        self._window_start = now
        self._window_count = 0
        self._pipeline = self._make_pipeline()
        self._emit(ev.SessionCreated(self.state))

    @property
    def dialect(self) -> Dialect:
        """The wire codec (it encodes every fact into the outbox)."""
        return self._out.dialect

    @dialect.setter
    def dialect(self, dialect: Dialect) -> None:
        self._out.dialect = dialect

    @property
    def state(self) -> ev.SessionState:
        """The session's settings (formats, rates, turn detection, voice, tools...)."""
        return self._view.state

    @state.setter
    def state(self, state: ev.SessionState) -> None:
        self._view.state = state

    @property
    def context(self) -> ev.SessionContext:
        """Who and what the session is for (the dialect's handshake sets it)."""
        return self._view.context

    @context.setter
    def context(self, context: ev.SessionContext) -> None:
        self._view.context = context

    @property
    def _now(self) -> float:
        """The time of the latest call (the caller's clock)."""
        return self._view.now

    @_now.setter
    def _now(self, now: float) -> None:
        self._view.now = now

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
    def phase(self) -> Phase:
        """Where the response lifecycle is: idle, responding, or closed."""
        if self._closed:
            return Phase.CLOSED
        return Phase.IDLE if self.responses.current is None else Phase.RESPONDING

    @property
    def items(self) -> tuple[ev.Item, ...]:
        """The conversation's items, oldest first (as clients see them: no audio)."""
        return self.conversation.items

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
            self._out.messages.append(message)

    def messages_to_send(self) -> list[str | bytes]:
        """Wire messages produced since the last call, in order."""
        out, self._out.messages = self._out.messages, []
        return out

    def events(self) -> list[ev.Event]:
        """Facts and driver requests produced since the last call, in order."""
        out, self._out.events = self._out.events, []
        return out

    def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """End the session from the server side (e.g. graceful shutdown)."""
        if self.phase is not Phase.CLOSED:
            if self.responses.current is not None:
                self.responses.finish("cancelled", reason="client_cancelled")
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
        r = self.responses.current
        return r.id if r else None

    # ----------------------------------------------------------------------------------
    # The agent's interface (the driver forwards what the agent yields)

    def agent_text(self, response_id: str, text: str, now: float) -> None:
        """A text delta of the response (the transcript, in audio responses)."""
        r = self._live(response_id, now)
        if r is not None and text:
            self.responses.text(r, text)

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
        self.responses.audio_marks(r, pcm, sample_rate, marks)
        self._guard(lambda: self.responses.audio_out(r, pcm, sample_rate), None)
        if self.responses.current is r:
            self.responses.over_budget(r)

    def agent_thought(self, response_id: str, text: str, now: float) -> None:
        """A piece of the agent's reasoning (a :class:`~voxwire.session.events.ThoughtDelta`).

        It is not kept in the conversation.
        """
        r = self._live(response_id, now)
        if r is not None and text:
            self.responses.thought(r, text)

    def agent_tool_call(
        self, response_id: str, name: str, arguments: str, call_id: str, now: float
    ) -> None:
        """The agent calls a tool: a ``function_call`` output item."""
        r = self._live(response_id, now)
        if r is not None:
            self.responses.tool_call(r, name, arguments, call_id)

    def agent_tool_result(self, response_id: str, call_id: str, output: str, now: float) -> None:
        """The agent ran a tool itself (a server-side tool) and got ``output``.

        It becomes a ``function_call_output`` item after the call's item, and a
        :class:`~voxwire.session.events.FunctionCallOutputDone` fact (with the call's tool
        name, when the call is in the conversation).
        """
        r = self._live(response_id, now)
        if r is not None:
            self.responses.tool_result(r, call_id, output)

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
                lambda: self.responses.start(None, None, None, now, kind="greeting", text=text),
                None,
            )

    def agent_done(self, response_id: str, now: float) -> None:
        """The agent finished the response."""
        if self._live(response_id, now) is not None:
            self._guard(lambda: self.responses.finish("completed"), None)

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

    @property
    def turn_pause(self) -> int | None:
        """Where the pause being judged in the user's turn began (ms), else None.

        semantic_vad only: the ms on the session's audio timeline (as in
        ``speech_started``/``speech_stopped``) where the speech before the pause ended,
        while the semantic rule waits in that pause; None during speech, between turns,
        with server_vad or no turn detection, and once closed. The same value for the
        whole pause: a new value means a new pause.
        """
        if self.phase is Phase.CLOSED or self._speech_item is None:
            return None
        td = self.state.turn_detection
        if td is None or td.type != "semantic_vad":
            return None
        est = self._pipeline.end_estimate
        return None if est is None else self._offset_ms + est[0]

    def set_turn_hint(
        self, complete: bool | None, *, item_id: str | None = None, pause_ms: int | None = None
    ) -> bool:
        """Tells semantic_vad whether the user's words so far end a sentence (never raises).

        ``complete`` is a text hint (see :func:`voxwire.hint.text_hint`): ``False`` makes
        the pause being judged wait longer, ``True`` shorter, ``None`` withdraws a hint.
        It holds until speech resumes or the turn ends. Applied only while a pause is
        judged (:attr:`turn_pause` is not None), and only to the turn ``item_id`` and the
        pause ``pause_ms`` when they are given (a hint from words decoded before the
        speech resumed, or for an earlier turn, is stale). Returns whether it was applied;
        server_vad sessions ignore hints (False).
        """
        pause = self.turn_pause
        if pause is None:
            return False
        if item_id is not None and item_id != self._speech_item:
            return False
        if pause_ms is not None and pause_ms != pause:
            return False
        self._pipeline.set_text_hint(complete)
        return True

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
        done = self.conversation.set_transcript(item_id, transcript)
        if done is not None and self.state.transcription:
            idx, seconds = done
            self._emit(ev.InputTranscriptionCompleted(item_id, idx, transcript, round(seconds, 3)))

    def agent_failed(self, response_id: str, message: str, now: float) -> None:
        """The agent failed; the response ends as ``failed``."""
        if self._live(response_id, now) is not None:
            self.responses.finish("failed", error=message)

    # ----------------------------------------------------------------------------------
    # Internals

    def _guard(self, fn: Callable[[], None], event_id: str | None) -> None:
        try:
            fn()
        except Exception as e:  # the engine's promise: nothing raises out of it
            log.exception("session %s: internal error", self.state.id)
            self._error("internal", event_id, detail=str(e))

    def _emit(self, e: ev.Event) -> None:
        self._out.emit(e)

    def _error(self, kind: ev.ErrorKind, eid: str | None, **params: Any) -> None:
        self._emit(ev.Error(kind, params, eid))

    def _close(self, code: int, reason: str) -> None:
        self._closed = True
        self._emit(ev.Close(code, reason))

    def _make_pipeline(self) -> voxwire.InputPipeline:
        td = self.state.turn_detection
        fmt = self.state.input_format
        rate = self.state.input_rate
        turn = None
        if td is not None:
            # The client's threshold (server_vad's documented 0.5 by default); the turn-start
            # rule under it (start_secs, vad_reset_ms) is TurnConfig's default, chosen on
            # benches/turn_start_sweep.py's tuning split (docs/design/vad.md).
            turn = voxwire.TurnConfig(
                threshold=td.threshold,
                prefix_padding_ms=td.prefix_padding_ms,
                silence_duration_ms=td.silence_duration_ms,
                # semantic_vad: the prosodic end-of-turn rule, its waits by eagerness.
                end_mode="semantic" if td.type == "semantic_vad" else "silence",
                eagerness=td.eagerness,
            )
        return voxwire.InputPipeline(
            in_rate=rate,
            encoding=self._encoding,
            format=fmt,
            vad_rate=16000 if rate > 8000 else 8000,
            engine=self.vad_engine,
            mode=3,  # the webrtc engine's aggressiveness (the others have none)
            turn=turn,
            turn_detection=td is not None,
            max_buffer_ms=self.limits.max_buffer_ms,
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
        self._out.events.append(ev.RunCommand(i))

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
        self._emit(
            ev.InputSpeechStarted(self._offset_ms + self._speech_start_ms, self._speech_item)
        )
        if self.responses.current is not None and td.interrupt_response:
            self.responses.finish("cancelled", reason="turn_detected")

    def _speech_stopped(self, end_ms: int, emitted_ms: int, now: float) -> None:
        td = self.state.turn_detection
        assert td is not None
        item_id = self._speech_item or self._ids("item")
        self._speech_item = None
        self._emit(ev.InputSpeechStopped(self._offset_ms + emitted_ms, item_id))
        audio = self._pipeline.audio(self._speech_start_ms, emitted_ms)
        self._pipeline.discard_until(emitted_ms)
        self._commit(item_id, audio, None)
        if td.create_response:
            if self.responses.current is None:
                self.responses.start(None, None, None, now)
            else:
                self._busy_error(None)

    def _commit(self, item_id: str, audio: npt.NDArray[np.int16], eid: str | None) -> None:
        prev = self.conversation.last_id()
        item = ev.Item(item_id, "message", "completed", "user", (ev.Content("input_audio"),))
        rate = self.state.input_rate
        self.conversation.add(ItemRecord(item, audio=audio.copy(), audio_rate=rate))
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

    def _on_create_item(self, i: ev.CreateItem, now: float) -> None:
        conv = self.conversation
        if conv.find(i.item.id) is not None:
            self._error("item_exists", i.event_id, item_id=i.item.id)
            return
        prev = i.previous_item_id
        if prev not in (None, "root") and conv.find(prev) is None:
            self._error("previous_item_missing", i.event_id, item_id=prev)
            return
        rec = ItemRecord(i.item)
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
            before = conv.last_id()
        elif prev == "root":
            before = None
        else:
            before = prev
        conv.add(rec, prev)
        self._emit(ev.ItemAdded(i.item, before))
        self._emit(ev.ItemDone(i.item, before))

    def _find_or_error(self, item_id: str, op: str, eid: str | None) -> ItemRecord | None:
        """The item, or None after an ``item_missing`` error for operation ``op``."""
        rec = self.conversation.find(item_id)
        if rec is None:
            self._error("item_missing", eid, op=op, item_id=item_id)
        return rec

    def _on_truncate(self, i: ev.TruncateItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "truncate", i.event_id)
        if rec is None:
            return
        r = self.responses.current
        if r is not None and r.item_id == i.item_id and "audio" in r.modalities:
            self.responses.truncate(r, rec, i)
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
        self.conversation.truncate_audio(rec, i.audio_end_ms)
        self._emit(ev.ItemTruncated(i.item_id, i.content_index, i.audio_end_ms))

    def _on_delete(self, i: ev.DeleteItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "delete", i.event_id)
        if rec is None:
            return
        self.conversation.remove(rec)
        self._emit(ev.ItemDeleted(i.item_id))

    def _on_retrieve(self, i: ev.RetrieveItem, now: float) -> None:
        rec = self._find_or_error(i.item_id, "retrieve", i.event_id)
        if rec is not None:
            self._emit(ev.ItemRetrieved(rec.item))

    def _on_respond(self, i: ev.CreateResponse, now: float) -> None:
        self.responses.start(
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
        r = self.responses.current
        assert r is not None
        self._error("response_busy", eid, response_id=r.id)

    def _on_cancel(self, i: ev.CancelResponse, now: float) -> None:
        r = self.responses.current
        assert r is not None
        if i.response_id is not None and i.response_id != r.id:
            self._error("cancel_not_active", i.event_id, response_id=i.response_id)
            return
        self.responses.finish("cancelled", reason="client_cancelled")

    def _on_cancel_idle(self, i: ev.CancelResponse, now: float) -> None:
        self._error("cancel_not_active", i.event_id, response_id=i.response_id)

    def _live(self, response_id: str, now: float | None = None) -> LiveResponse | None:
        if now is not None:
            self._now = now
        r = self.responses.live(response_id)
        return r if r is not None and self.phase is Phase.RESPONDING else None


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
