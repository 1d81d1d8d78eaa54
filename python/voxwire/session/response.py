"""The response lifecycle of a session: the agent's answer in progress, from start to end.

:class:`ResponseLifecycle` starts a response (within the responses-per-minute window),
opens its message item, turns the agent's text, audio, thoughts and tool calls into facts,
sends its audio through a :class:`voxwire.OutputPipeline`, truncates it while it plays,
and finishes it (completed, cancelled, failed or incomplete past its budget). It is driven
by :class:`voxwire.session.Session`, which owns the state: the lifecycle reads the session's
settings, context and time in a :class:`SessionView`, adds its output items to the
:class:`~voxwire.session.conversation.Conversation` and emits its facts into the
:class:`~voxwire.session.outbox.Outbox`. None of them refers back to the session.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.session import events as ev
from voxwire.session.conversation import Conversation, ItemRecord
from voxwire.session.outbox import Outbox

if TYPE_CHECKING:
    from voxwire.session.engine import Limits
    from voxwire.types import Encoding


@dataclass
class LiveResponse:
    """The response in progress: what it has sent so far and where its message stands."""

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


@dataclass
class SessionView:
    """What the lifecycle reads of its session: settings, context, the latest call's time.

    The session keeps its own in it (``Session.state`` and ``Session.context`` read and
    write here), so the lifecycle sees every change without a reference to the session.
    """

    state: ev.SessionState
    context: ev.SessionContext
    now: float


class ResponseLifecycle:
    """At most one response at a time (:attr:`current`), driven by the session.

    ``view`` is the session's settings, context and time; facts go to ``outbox``.
    """

    def __init__(
        self,
        *,
        conversation: Conversation,
        limits: Limits,
        ids: ev.IdFactory,
        encoding: Encoding,
        outbox: Outbox,
        view: SessionView,
    ) -> None:
        self.conversation = conversation
        self.limits = limits
        self._ids = ids
        self._encoding = encoding
        self._outbox = outbox
        self._emit = outbox.emit
        self._view = view
        #: The response in progress, if any.
        self.current: LiveResponse | None = None
        #: When the responses of the last minute started (the rate window).
        self._times: deque[float] = deque()

    def live(self, response_id: str) -> LiveResponse | None:
        """The response in progress if it is ``response_id``."""
        r = self.current
        return r if r is not None and r.id == response_id else None

    def _error(self, kind: ev.ErrorKind, eid: str | None, **params: Any) -> None:
        self._emit(ev.Error(kind, params, eid))

    # -- start ------------------------------------------------------------------------

    def start(
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
        """Start a response (a ``rate_limited`` error past the responses per minute)."""
        t = now
        window = self._times
        while window and t - window[0] > 60.0:
            window.popleft()
        if len(window) >= self.limits.responses_per_minute:
            self._error(
                "rate_limited", eid, what="responses", limit=self.limits.responses_per_minute
            )
            return
        window.append(t)
        state = self._view.state
        mods = modalities or state.modalities
        r = LiveResponse(
            self._ids("resp"),
            mods,
            state.instructions if instructions is None else instructions,
            self._ids("item"),
        )
        r.metadata = metadata
        self.current = self._outbox.response = r
        self.conversation.pinned = r.item_id
        self._emit(ev.ResponseCreated(self.view(r, "in_progress")))
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
            self.open_message(r)
        self._emit(ev.StartResponse(r.id, turn))

    def _turn(self, r: LiveResponse, kind: str = "user", text: str | None = None) -> ev.UserTurn:
        state = self._view.state
        conv = self.conversation
        extra: dict[str, Any] = {
            "tools": state.tools,
            "tool_choice": state.tool_choice,
            "context": self._view.context,
            "voice": state.voice,
        }
        records = conv.records
        if kind == "user" and records and records[-1].item.type == "function_call_output":
            # The client sent its tools' results and asks for an answer: answer them.
            kind = "tool_results"
        if kind != "user":
            # No user input: a greeting (``text``: what to say first), the tools' results
            # or an external event (the last history items).
            if kind == "external_event" and text is None:
                # The event's own text too: the latest system item's.
                text = conv.latest_system_text()
            return ev.UserTurn(
                None,
                text,
                None,
                state.input_rate,
                None,
                r.modalities,
                r.instructions,
                kind=kind,  # type: ignore[arg-type]
                history=conv.history(len(conv)),
                **extra,
            )
        latest = conv.latest_user()
        if latest is not None:
            k, rec = latest
            it = rec.item
            text = " ".join(c.text for c in it.content if c.type == "input_text" and c.text)
            transcript = " ".join(c.transcript for c in it.content if c.transcript) or None
            extra["images"] = tuple(
                c.image_url for c in it.content if c.type == "input_image" and c.image_url
            )
            return ev.UserTurn(
                it.id,
                text or None,
                rec.audio,
                rec.audio_rate or state.input_rate,
                transcript,
                r.modalities,
                r.instructions,
                history=conv.history(k),
                **extra,
            )
        return ev.UserTurn(
            None,
            None,
            None,
            state.input_rate,
            None,
            r.modalities,
            r.instructions,
            history=conv.history(len(conv)),
            **extra,
        )

    def open_message(self, r: LiveResponse) -> None:
        """Open the response's message item (text or audio), once, at its first content."""
        if r.opened:
            return
        r.opened = True
        r.output_index = r.n_out
        r.n_out += 1
        prev = self.conversation.last_id()
        part = (
            ev.Content("audio", transcript="")
            if "audio" in r.modalities
            else ev.Content("text", text="")
        )
        item = ev.Item(r.item_id, "message", "in_progress", "assistant", ())
        self.conversation.add(ItemRecord(item))
        self._emit(ev.OutputItemAdded(r.id, r.output_index, item))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.ContentPartAdded(*self._part(r), part=part))

    @staticmethod
    def _part(r: LiveResponse) -> tuple[str, str, int, int]:
        return (r.id, r.item_id, r.output_index, 0)

    # -- what the agent produces --------------------------------------------------------

    def text(self, r: LiveResponse, text: str) -> None:
        """A text delta (the transcript, in audio responses)."""
        self.open_message(r)
        r.text.append(text)
        part = self._part(r)
        if "audio" in r.modalities:
            self._emit(ev.TranscriptDelta(*part, delta=text))
        else:
            self._emit(ev.ResponseTextDelta(*part, delta=text))
        self.over_budget(r)

    def audio_marks(
        self,
        r: LiveResponse,
        pcm: npt.NDArray[np.int16],
        rate: int,
        marks: tuple[tuple[float, str], ...],
    ) -> None:
        """Before :meth:`audio_out`: open the message, send the TTS's timing, count the ms."""
        self.open_message(r)
        if marks:
            base = r.agent_audio_ms
            self._emit(
                ev.SpeechMarks(*self._part(r), marks=tuple((base + ms, c) for ms, c in marks))
            )
        if rate > 0:
            r.agent_audio_ms += len(pcm) * 1000 / rate

    def audio_out(self, r: LiveResponse, pcm: npt.NDArray[np.int16], rate: int) -> None:
        """Encode agent audio at ``rate`` into deltas of the session's output format."""
        state = self._view.state
        fmt = state.output_format
        out_rate = state.output_rate
        if r.out is None or r.out_rate_in != rate:
            if r.out is not None:
                self._send_audio(r, r.out.flush())
            r.out = voxwire.OutputPipeline(
                in_rate=rate, out_rate=out_rate, format=fmt, encoding=self._encoding
            )
            r.out_rate_in = rate
        step = max(1, rate * self.limits.max_delta_ms // 1000)
        for k in range(0, len(pcm), step):
            self._send_audio(r, r.out.push(pcm[k : k + step]))

    def _send_audio(self, r: LiveResponse, delta: str | bytes) -> None:
        if not delta:
            return
        assert r.out is not None
        r.audio_samples += r.out.last_samples
        self._emit(ev.AudioDelta(*self._part(r), delta=delta))

    def thought(self, r: LiveResponse, text: str) -> None:
        """A piece of the agent's reasoning (not kept in the conversation)."""
        self._emit(ev.ThoughtDelta(r.id, r.item_id, text))
        self.over_budget(r)

    def tool_call(self, r: LiveResponse, name: str, arguments: str, call_id: str) -> None:
        """The agent calls a tool: a ``function_call`` output item."""
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
        prev = self.conversation.last_id()
        self.conversation.add(ItemRecord(item))
        self._emit(ev.OutputItemAdded(r.id, idx, replace(item, status="in_progress")))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.FunctionCallArgumentsDone(r.id, item.id, idx, call_id, name, arguments))
        self._emit(ev.ItemDone(item, prev))
        self._emit(ev.OutputItemDone(r.id, idx, item))
        r.outputs.append(item)
        self.over_budget(r)

    def tool_result(self, r: LiveResponse, call_id: str, output: str) -> None:
        """A server-side tool's ``output``: a ``function_call_output`` item."""
        calls = (x.item for x in self.conversation.records if x.item.type == "function_call")
        call = next((c for c in calls if c.call_id == call_id), None)
        name = call.name if call is not None else None
        item = ev.Item(
            self._ids("item"), "function_call_output", "completed", call_id=call_id, output=output
        )
        prev = self.conversation.last_id()
        self.conversation.add(ItemRecord(item))
        self._emit(ev.ItemAdded(item, prev))
        self._emit(ev.FunctionCallOutputDone(r.id, item.id, call_id, name or "", output))
        self._emit(ev.ItemDone(item, prev))
        self.over_budget(r)

    def over_budget(self, r: LiveResponse) -> bool:
        """End ``r`` as incomplete when it has sent too much (True: it has ended)."""
        lim = self.limits
        if r.events < lim.max_response_events and r.wire_bytes < lim.max_response_bytes:
            return False
        self.finish("incomplete", reason="max_output_tokens")
        return True

    # -- truncate -----------------------------------------------------------------------

    def truncate(self, r: LiveResponse, rec: ItemRecord, i: ev.TruncateItem) -> None:
        """Truncate the answer still being generated (a client stopping playback at once).

        Its audio stops here (no more deltas; the response goes on until it ends or is
        cancelled) and the item keeps what was played, without its transcript.
        """
        if i.content_index != 0 or i.audio_end_ms < 0:
            self._error("truncate_invalid", i.event_id)
            return
        sent_ms = r.audio_samples * 1000 / self._view.state.output_rate
        if i.audio_end_ms > sent_ms + 0.5:
            self._error("truncate_too_long", i.event_id, audio_ms=sent_ms, end_ms=i.audio_end_ms)
            return
        r.cut_ms = float(i.audio_end_ms)
        rec.audio_ms = r.cut_ms
        self._emit(ev.ItemTruncated(i.item_id, i.content_index, i.audio_end_ms))

    # -- the end ------------------------------------------------------------------------

    def view(self, r: LiveResponse, status: Any, **kw: Any) -> ev.Response:
        """The response as facts carry it."""
        state = self._view.state
        return ev.Response(
            r.id,
            status,
            r.modalities,
            state.output_format,
            state.voice,
            output=tuple(r.outputs),
            metadata=r.metadata,
            **kw,
        )

    def finish(self, status: str, reason: str | None = None, error: str | None = None) -> None:
        """End the response in progress with ``status``: its last facts, ``response.done``."""
        r = self.current
        assert r is not None
        if not r.opened and not r.outputs:
            self.open_message(r)  # a response with nothing in it still has its message
        if not r.opened:
            self._end(r, status, reason, error, "")
            return
        done_ok = status == "completed"
        part_args = self._part(r)
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
        conv = self.conversation
        rec = conv.find(r.item_id)
        if r.cut_ms is not None:
            part = replace(part, transcript=None)  # truncated: no text the user did not hear
        item = ev.Item(
            r.item_id, "message", "completed" if done_ok else "incomplete", "assistant", (part,)
        )
        prev = None
        if rec is not None:
            conv.replace(rec, item)
            conv.trim()
            rec.audio_ms = (
                r.audio_samples * 1000 / self._view.state.output_rate
                if r.cut_ms is None
                else r.cut_ms
            )
            prev = conv.previous_id(rec)
        self._emit(ev.ItemDone(item, prev))
        self._emit(ev.OutputItemDone(r.id, r.output_index, item))
        r.outputs.insert(r.output_index, item)
        self._end(r, status, reason, error, text)

    def _end(
        self, r: LiveResponse, status: str, reason: str | None, error: str | None, text: str
    ) -> None:
        """The end of every response: idle again, ``response.done``, the rate limits."""
        self.current = self._outbox.response = None
        self.conversation.pinned = None
        self._emit(ev.StopResponse(r.id))
        words = len(text.split())
        self._emit(
            ev.ResponseDone(self.view(r, status, reason=reason, error=error, output_tokens=words))
        )
        t = self._view.now
        window = self._times
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


__all__ = ["LiveResponse", "ResponseLifecycle", "SessionView"]
