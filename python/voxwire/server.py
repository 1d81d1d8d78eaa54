"""Drivers of the session engine: a websockets server and an ASGI app, for every dialect.

``voxwire serve`` runs the plain websockets server by default; the ASGI app (Starlette) is
for mounting in your own app or serving with uvicorn. Both route by the
:class:`~voxwire.platform.Platform`'s table, built from the dialect plugins
(:data:`voxwire.dialects.PLUGINS`): each plugin's WebSocket paths and REST routes, plus the
platform's ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus text) and ``/metrics.json``.
A handshake passes the server-wide admission (:mod:`voxwire.gate`), then the dialect's own
(authentication, subprotocol, variant), and its session runs in a :class:`SessionRunner`.

The runner moves messages between a transport and a :class:`voxwire.session.Session`, runs
the agent of each response as a task (cancelled on barge-in), and keeps memory bounded:
outgoing messages wait in one ordered queue, and while it holds ``max_send_queue`` messages
neither the agent nor the reader goes on (a slow client slows its own session down instead
of growing the server); a client that takes nothing for ``write_timeout_s`` is dropped.

Wire limits (documented answers):

- a message over ``max_message_bytes`` (1 MiB by default): close code 1009 (message too big);
- no client message for ``Limits.idle_timeout_s`` while no response runs: the dialect's
  idle-timeout error, then close code 1000;
- server shutdown (SIGTERM or SIGINT to ``voxwire serve``): close code 1012 (service
  restart);
- a refused handshake: the dialect's HTTP status and error body (HTTP 403 where the ASGI
  server cannot send a denial response); no session starts;
- REST bodies over 64 KiB: HTTP 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from voxwire import agents
from voxwire.asr import ASR
from voxwire.dialects.base import (
    Accept,
    BackgroundTask,
    Handshake,
    HttpRequest,
    HttpResponse,
    Refuse,
    SessionIO,
)
from voxwire.hint import text_hint
from voxwire.platform import (
    MAX_KEY_CHARS,
    MAX_KEYS_PER_HANDSHAKE,
    Metrics,
    Platform,
    ServerConfig,
    usable_key,
)
from voxwire.session import Phase, Session
from voxwire.session import events as ev

log = logging.getLogger("voxwire.server")
#: One line per connection and per REST call (INFO): never secrets, never audio.
access = logging.getLogger("voxwire.access")

#: Largest REST request body.
MAX_BODY_BYTES = 64 * 1024
#: A partial transcript of the user's turn in progress every this many ms of its speech
#: (docs/design/transcripts.md).
PARTIAL_EVERY_MS = 700
#: Set as a turn's last partial position when the ASR refuses its length: no more partials.
_NO_MORE_PARTIALS = 1 << 62


class Transport(Protocol):
    """A message-oriented connection, as :class:`SessionRunner` needs it."""

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the client has gone."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one message: text, or binary for bytes."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with a close frame."""
        ...


class SessionRunner:
    """Drives one :class:`~voxwire.session.Session` over one transport until either side ends.

    Three tasks: the reader (:meth:`run`, the caller's task), the sender (one ordered queue of
    outgoing messages) and one agent task per response (cancelled on barge-in). Memory stays
    bounded: while the queue holds ``max_send_queue`` messages neither the agent nor the
    reader goes on, so a slow client slows its own session down instead of growing the
    server. A client that stops reading for ``write_timeout_s`` (one send not finishing) is
    dropped: the connection is aborted and the session ends. When the sender ends for any
    reason (the connection broke, the close frame went out, the write timed out) the reader
    stops too, so no session outlives its connection.

    Nothing here holds a reference cycle once :meth:`run` returns: a closed session is freed
    at once, not by the cyclic collector.
    """

    def __init__(
        self,
        transport: Transport,
        session: Session,
        agent: agents.Agent,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_send_queue: int = 256,
        metrics: Metrics | None = None,
        asr: ASR | None = None,
        write_timeout_s: float = 30.0,
        accept: Accept | None = None,
        platform: Platform | None = None,
        partial_asr: ASR | None = None,
        partial_every_ms: int = PARTIAL_EVERY_MS,
    ) -> None:
        self.transport = transport
        self.session = session
        self.agent = agent
        self.clock = clock
        self.max_send_queue = max_send_queue
        self.metrics = metrics
        self.asr = asr
        #: Partial transcripts of the user's turn in progress (see :meth:`_maybe_partial`).
        self.partial_asr = partial_asr
        self.partial_every_ms = partial_every_ms
        self._partial_task: asyncio.Task[None] | None = None
        self._partial_item: str | None = None
        self._partial_at_ms = 0
        #: The semantic_vad pause (its start, ms) the last partial of the turn was started in.
        self._partial_pause: int | None = None
        self.write_timeout_s = write_timeout_s
        #: Why the session ended on the server's side ("write timeout", ...), if it did.
        self.ended_by: str | None = None
        #: Messages taken from and given to the client (for the access log).
        self.messages_in = 0
        self.messages_out = 0
        #: The close code the server sent, if it closed the session.
        self.close_code: int | None = None
        self._out: deque[str | bytes | ev.Close] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._send_task: asyncio.Task[None] | None = None
        self._me: asyncio.Task[Any] | None = None
        self._sending_since: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._recv_deadline: float | None = None  # the deadline of the recv in progress
        self._in_recv = False
        #: Why the reader's recv was interrupted: "idle" (a deadline) or "sender" (gone).
        self._interrupt: str | None = None
        #: The dialect's command handler, background tasks and end hook (from its Accept).
        self._accept = accept
        self._io: SessionIO | None = (
            SessionIO(session, platform, self._pump) if platform is not None else None
        )
        self._pending: deque[ev.Command] = deque()
        self._cmd_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []

    # -- plumbing ---------------------------------------------------------------------

    def _pump(self) -> None:
        session, out = self.session, self._out
        out.extend(session.messages_to_send())
        for e in session.events():
            if isinstance(e, ev.StartResponse):
                self._tasks[e.response_id] = asyncio.create_task(self._run_agent(e))
            elif isinstance(e, ev.StopResponse):
                t = self._tasks.pop(e.response_id, None)
                if t is not None and t is not asyncio.current_task():
                    t.cancel()
            elif isinstance(e, ev.Close):
                out.append(e)
            elif isinstance(e, ev.RunCommand):
                self._pending.append(e.command)
                if self._cmd_task is None:
                    self._cmd_task = asyncio.create_task(self._run_commands())
        if out:
            self._wake.set()
        if len(out) >= self.max_send_queue:
            self._room.clear()

    def _sender_alive(self) -> bool:
        return self._send_task is not None and not self._send_task.done()

    async def _wait_room(self) -> bool:
        """Wait for room in the send queue; False once the sender has ended."""
        if not self._room.is_set():
            await self._room.wait()  # the sender's end sets it too
        return self._sender_alive()

    async def _sender(self) -> None:
        out, transport, metrics = self._out, self.transport, self.metrics
        loop = asyncio.get_running_loop()
        while True:
            while not out:
                self._wake.clear()
                await self._wake.wait()
            item = out.popleft()
            if len(out) <= self.max_send_queue // 2:
                self._room.set()
            self._sending_since = loop.time()
            if isinstance(item, ev.Close):
                self.close_code = item.code
                await transport.close(item.code, item.reason)
                return
            await transport.send(item)
            self.messages_out += 1
            self._sending_since = None
            if metrics is not None:
                metrics.messages_out += 1

    def _on_watchdog(self) -> None:
        """The write timeout: one send that has not finished for ``write_timeout_s``."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        since = self._sending_since
        if since is not None and loop.time() - since >= self.write_timeout_s:
            self.ended_by = "write timeout"
            log.info(
                "session %s: client read nothing for %g s; dropped",
                self.session.state.id,
                self.write_timeout_s,
            )
            abort = getattr(self.transport, "abort", None)
            if abort is not None:
                abort()
            if self._send_task is not None:
                self._send_task.cancel()
            return
        left = self.write_timeout_s if since is None else since + self.write_timeout_s - loop.time()
        self._watchdog = loop.call_later(max(left, 0.01), self._on_watchdog)

    def _on_sender_done(self, _: object) -> None:
        # Wake everything that waits on the sender: the agents (room) and the reader.
        self._room.set()
        if self._in_recv and self._interrupt is None and self._me is not None:
            self._interrupt = "sender"
            self._me.cancel()

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        deadline = self._recv_deadline
        if deadline is None:
            return  # the loop re-arms the timer when a recv has a deadline again
        left = deadline - self.clock()
        if left > 0:
            self._idle_timer = asyncio.get_running_loop().call_later(left, self._on_idle_timer)
        elif self._interrupt is None and self._in_recv and self._me is not None:
            self._interrupt = "idle"
            self._me.cancel()

    # -- the dialect's own commands and tasks --------------------------------------------

    async def _run_commands(self) -> None:
        """Run the dialect's commands one at a time, in arrival order."""
        handler = self._accept.commands if self._accept is not None else None
        try:
            while self._pending:
                cmd = self._pending.popleft()
                if handler is None or self._io is None:
                    log.debug("no handler for command %s", cmd.name)
                    continue
                try:
                    await handler(cmd, self._io)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("command %s failed", cmd.name)
                self._pump()
        finally:
            self._cmd_task = None

    async def _run_background(self, task: BackgroundTask) -> None:
        assert self._io is not None
        try:
            await task(self._io)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: background task failed", self.session.state.id)
        self._pump()

    # -- the agent --------------------------------------------------------------------

    async def _transcribe(self, rid: str, turn: ev.UserTurn) -> ev.UserTurn | None:
        """The turn with the ASR's transcript (None: the response is gone meanwhile)."""
        session, asr = self.session, self.asr
        assert asr is not None and turn.audio is not None and turn.item_id is not None
        from voxwire.asr import transcribe
        from voxwire.errors import VoxwireError

        try:
            # An async ASR (voxwire.workers.IsolatedASR: a worker process, killed if this
            # task is cancelled) is awaited; a blocking one runs in a thread.
            text = await transcribe(asr, turn.audio, turn.sample_rate)
        except VoxwireError as e:  # a limit, a timeout, a dead worker: one line is enough
            log.warning("ASR failed in response %s: %s: %s", rid, type(e).__name__, e)
            return turn
        except Exception:  # no transcript: the agent answers without one
            log.exception("ASR failed in response %s", rid)
            return turn
        session.user_transcript(turn.item_id, text, self.clock())
        self._pump()
        if session.response_id != rid:
            return None
        return dataclasses.replace(turn, transcript=text)

    # -- partial transcripts ------------------------------------------------------------

    def _maybe_partial(self) -> None:
        """Start a partial transcript of the user's turn in progress, when one is due.

        Due every ``partial_every_ms`` of new speech in the turn (when the session's
        ``transcription`` is on), and with semantic_vad also at once when a pause begins in
        the turn (its words become a text hint for the pause: :meth:`_partial`). At most one
        is in flight per session (a pause that begins meanwhile gets its own as soon as the
        one in flight ends); a partial ASR with ``try_transcribe`` (an IsolatedASR pool)
        skips it when no worker is free (the next message tries again). The final
        transcript has its own ASR and never waits for these.
        """
        session = self.session
        if self.partial_asr is None or self._partial_task is not None:
            return
        item = session.speech_item
        if item is None:
            return
        if item != self._partial_item:
            self._partial_item, self._partial_at_ms, self._partial_pause = item, 0, None
        if self._partial_at_ms >= _NO_MORE_PARTIALS:
            return  # the ASR refused this turn's length
        ms = session.speech_ms
        pause = session.turn_pause  # semantic_vad only
        due = (pause is not None and pause != self._partial_pause) or (
            session.state.transcription and ms - self._partial_at_ms >= self.partial_every_ms
        )
        if not due:
            return
        try_call = getattr(self.partial_asr, "try_transcribe", None)
        if try_call is not None and not self._partial_free():
            return  # every partial worker is busy: skipped
        self._partial_at_ms = ms
        self._partial_pause = pause
        audio = session.speech_audio()
        self._partial_task = asyncio.create_task(self._partial(item, audio, pause))

    def _partial_free(self) -> bool:
        free = getattr(self.partial_asr, "free_workers", None)
        return free is None or free > 0

    async def _partial(self, item: str, audio: Any, pause: int | None) -> None:
        """Decode ``audio`` (turn ``item`` so far) with the partial ASR; emit the delta.

        Started in a semantic_vad pause (``pause``: where it began), the words also become
        the pause's text hint (:func:`voxwire.hint.text_hint`), applied only while that
        same pause of that same turn is being judged: a result that comes after the speech
        resumed or the turn ended is stale and dropped.
        """
        session, asr = self.session, self.partial_asr
        assert asr is not None
        rate = session.state.input_rate
        try:
            try_call = getattr(asr, "try_transcribe", None)
            if try_call is not None:
                text = await try_call(audio, rate, affinity=session.state.id)
            else:
                from voxwire.asr import transcribe

                text = await transcribe(asr, audio, rate)
            if text is not None:
                now = self.clock()
                session.user_transcript_partial(item, str(text), now)
                if pause is not None:
                    session.set_turn_hint(text_hint(str(text)), item_id=item, pause_ms=pause)
                self._pump()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a partial is optional: one line, and the turn goes on
            from voxwire.errors import InputTooLargeError

            if isinstance(e, InputTooLargeError) and self._partial_item == item:
                self._partial_at_ms = _NO_MORE_PARTIALS  # no more this turn
            log.info("partial ASR failed: %s: %s", type(e).__name__, e)
        finally:
            self._partial_task = None
        # A pause that began while this one was decoded gets its partial now.
        self._maybe_partial()

    def _wants_asr(self, turn: ev.UserTurn) -> bool:
        return (
            self.asr is not None
            and self.session.state.transcription
            and turn.audio is not None
            and turn.text is None
            and turn.transcript is None
            and turn.item_id is not None
        )

    async def _run_agent(self, req: ev.StartResponse) -> None:
        session, clock = self.session, self.clock
        rid = req.response_id
        turn: ev.UserTurn | None = req.turn
        try:
            if self._wants_asr(req.turn):
                turn = await self._transcribe(rid, req.turn)
                if turn is None:
                    return
            assert turn is not None
            stream = self.agent.respond(turn)
            # Closed when the response ends however it ends (a cancelled agent's subprocesses
            # and files go at once, not when the collector finds the generator).
            closing: Any = (
                contextlib.aclosing(stream)
                if hasattr(stream, "aclose")
                else contextlib.nullcontext()
            )
            async with closing:
                async for o in stream:
                    now = clock()
                    if isinstance(o, agents.TextDelta):
                        session.agent_text(rid, o.text, now)
                    elif isinstance(o, agents.Thought):
                        session.agent_thought(rid, o.text, now)
                    elif isinstance(o, agents.AudioChunk):
                        session.agent_audio(rid, o.pcm, o.sample_rate, now, o.marks)
                    elif isinstance(o, agents.ToolCall):
                        session.agent_tool_call(rid, o.name, o.arguments, o.call_id, now)
                    elif isinstance(o, agents.ToolResult):
                        session.agent_tool_result(rid, o.call_id, o.output, now)
                    elif isinstance(o, agents.Notice):
                        session.agent_notice(rid, o.code, o.message, now)
                    elif isinstance(o, agents.EndConversation):
                        session.agent_end_conversation(rid, o.reason, now)
                    self._pump()
                    if session.response_id != rid:
                        return
                    if not await self._wait_room():  # backpressure from a slow client
                        return
            session.agent_done(rid, clock())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("agent failed in response %s", rid)
            session.agent_failed(rid, f"{type(e).__name__}: {e}", clock())
        finally:
            self._tasks.pop(rid, None)
        self._pump()

    # -- the reader -------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the client leaves, the session closes, or the sender ends."""
        session, clock, metrics = self.session, self.clock, self.metrics
        loop = asyncio.get_running_loop()
        self._me = asyncio.current_task()
        assert self._me is not None  # run() runs in a task
        self._send_task = asyncio.create_task(self._sender())
        self._send_task.add_done_callback(self._on_sender_done)
        if self.write_timeout_s > 0:
            self._watchdog = loop.call_later(self.write_timeout_s, self._on_watchdog)
        self._pump()  # session.created
        if self._accept is not None and self._io is not None:
            for bg in self._accept.background:
                self._background.append(asyncio.create_task(self._run_background(bg)))
        try:
            while session.phase is not Phase.CLOSED and self._sender_alive():
                if not await self._wait_room():
                    break
                deadline = session.next_deadline()
                if deadline is not None:
                    left = deadline - clock()
                    if left <= 0:
                        await asyncio.sleep(0)  # as wait_for(..., 0) did: let the loop run
                        session.tick(clock())
                        self._pump()
                        continue
                    if self._idle_timer is None:
                        self._idle_timer = loop.call_later(left, self._on_idle_timer)
                cancelling = self._me.cancelling()
                self._recv_deadline = deadline
                self._in_recv = True
                try:
                    msg = await self.transport.recv()
                except asyncio.CancelledError:
                    why, self._interrupt = self._interrupt, None
                    if why is None or self._me.uncancel() > cancelling:
                        raise  # cancelled from outside (as well)
                    if why == "sender":
                        break
                    session.tick(clock())
                    self._pump()
                    continue
                finally:
                    self._in_recv = False
                    self._recv_deadline = None
                if self._interrupt is not None:
                    # A timer fired as the message arrived: the cancellation is still pending.
                    why, self._interrupt = self._interrupt, None
                    self._me.uncancel()
                    if why == "sender":
                        break
                if msg is None:
                    break
                self.messages_in += 1
                t0 = time.perf_counter()
                session.receive(msg, clock())
                self._pump()
                self._maybe_partial()
                if metrics is not None:
                    metrics.observe(time.perf_counter() - t0)
        finally:
            await self._finish()

    async def _finish(self) -> None:
        for timer in (self._idle_timer, self._watchdog):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._watchdog = None
        for t in list(self._tasks.values()):
            t.cancel()
        for t in self._background:
            t.cancel()
        if self._partial_task is not None:
            self._partial_task.cancel()
        if self._cmd_task is not None:
            self._cmd_task.cancel()
        send_task = self._send_task
        assert send_task is not None
        if self.session.phase is Phase.CLOSED and not send_task.done():
            # Let the close frame (and what precedes it) go out, within the write timeout.
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(send_task), self.write_timeout_s or 5.0)
        send_task.cancel()
        with contextlib.suppress(BaseException):
            await send_task
        if self.metrics is not None:
            self.metrics.audio_in_ms += self.session.audio_received_ms
        with contextlib.suppress(BaseException):
            partial = (self._partial_task,) if self._partial_task is not None else ()
            await asyncio.gather(
                *self._tasks.values(), *self._background, *partial, return_exceptions=True
            )
        on_close = self._accept.on_close if self._accept is not None else None
        if on_close is not None and self._io is not None:
            try:
                await asyncio.wait_for(on_close(self._io), 5.0)
            except Exception:
                log.exception("session %s: end hook failed", self.session.state.id)
        # Drop what could hold frames (and so this object) in a cycle.
        self._tasks.clear()
        self._background.clear()
        self._pending.clear()
        self._out.clear()
        self._send_task = self._me = self._cmd_task = self._partial_task = None
        self._io = self._accept = None


async def run_session(
    transport: Transport,
    session: Session,
    agent: agents.Agent,
    *,
    clock: Callable[[], float] = time.monotonic,
    max_send_queue: int = 256,
    metrics: Metrics | None = None,
    asr: ASR | None = None,
    write_timeout_s: float = 30.0,
) -> None:
    """Drive ``session`` over ``transport`` until either side closes.

    See :class:`SessionRunner`.

    With an ``asr``, and when the session asked for input transcription (OpenAI's
    ``input_audio_transcription`` / ``audio.input.transcription``: opt-in, because
    transcribing takes about real time on CPU), an audio turn without a transcript is
    transcribed in a worker before the agent runs: the agent gets the transcript, the user
    item keeps it, and the client gets
    ``conversation.item.input_audio_transcription.completed``.
    """
    await SessionRunner(
        transport,
        session,
        agent,
        clock=clock,
        max_send_queue=max_send_queue,
        metrics=metrics,
        asr=asr,
        write_timeout_s=write_timeout_s,
    ).run()


async def serve_accepted(
    transport: Transport,
    accept: Accept,
    platform: Platform,
    peer: str,
    *,
    path: str = "",
    dialect: str = "",
) -> None:
    """Run one accepted WebSocket's session (either driver), counted in the platform.

    With ``accept.attach`` the connection is handed to the dialect instead (it runs its
    session itself, see :class:`~voxwire.dialects.base.Accept`). Ends with one access line:
    peer, path, dialect, principal, close code, duration, messages in and out, seconds of
    input audio.
    """
    platform.gate.opened(peer)
    t0 = time.monotonic()
    runner: SessionRunner | None = None
    try:
        if accept.close is not None:
            with contextlib.suppress(Exception):
                await transport.close(*accept.close)
            return
        if accept.attach is not None:
            await accept.attach(transport)
            return
        runner = _runner(transport, accept, platform)
        await run_accepted(transport, accept, platform, runner=runner)
    finally:
        platform.gate.closed(peer)
        _trim_soon()
        if access.isEnabledFor(logging.INFO):
            _access_line(accept, runner, transport, peer, path, dialect, t0)


async def run_accepted(
    transport: Transport,
    accept: Accept,
    platform: Platform,
    *,
    runner: SessionRunner | None = None,
) -> None:
    """Run ``accept.session`` over ``transport`` until it ends, counted in the platform.

    The drivers call it for every accepted connection; a dialect whose sessions outlive
    their connections (``Accept.attach``) calls it with a transport of its own.
    """
    session = accept.session
    platform.live.add(session)
    platform.metrics.sessions_started += 1
    try:
        await (runner or _runner(transport, accept, platform)).run()
    finally:
        platform.live.discard(session)


def _runner(transport: Transport, accept: Accept, platform: Platform) -> SessionRunner:
    """The runner of an accepted session, with the platform's settings."""
    cfg = platform.config
    return SessionRunner(
        transport,
        accept.session,
        platform.agent,
        max_send_queue=cfg.max_send_queue,
        metrics=platform.metrics,
        asr=cfg.asr,
        write_timeout_s=cfg.write_timeout_s,
        accept=accept,
        platform=platform,
        partial_asr=cfg.partial_asr,
        partial_every_ms=cfg.partial_transcript_ms,
    )


def _access_line(
    accept: Accept,
    runner: SessionRunner | None,
    transport: Transport,
    peer: str,
    path: str,
    dialect: str,
    t0: float,
) -> None:
    principal = getattr(accept.principal, "owner", None) or "-"
    code: int | None = accept.close[0] if accept.close else None
    if runner is not None:
        code = runner.close_code or _client_close_code(transport)
    fields = {
        "peer": peer,
        "path": path,
        "dialect": dialect,
        "principal": principal,
        "close_code": code,
        "duration_s": round(time.monotonic() - t0, 3),
        "messages_in": runner.messages_in if runner else 0,
        "messages_out": runner.messages_out if runner else 0,
        "audio_in_s": round(accept.session.audio_received_ms / 1000, 3),
    }
    access.info(
        "%s WS %s %s %s close=%s %.3fs in=%d out=%d audio=%.1fs",
        peer,
        path,
        dialect,
        principal,
        code,
        fields["duration_s"],
        fields["messages_in"],
        fields["messages_out"],
        fields["audio_in_s"],
        extra={"fields": fields},
    )


def _client_close_code(transport: Transport) -> int | None:
    ws = getattr(transport, "ws", None)
    code = getattr(ws, "close_code", None)
    return code if isinstance(code, int) else None


_trim_at = 0.0
_trim_pending = False
_malloc_trim: Any = None


def _trim_soon() -> None:
    """Give freed heap memory back to the OS, at most once a second (glibc only).

    A closed session's buffers are freed at once, but glibc keeps large freed blocks in its
    heap (its mmap threshold rises after the first large free), so without a trim RSS stays
    at its peak after big sessions end. The trim runs in a worker thread (ctypes releases the
    GIL), 0.2 s after a session ends, and once for all sessions that end within a second.
    """
    global _trim_pending, _malloc_trim
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        try:
            _malloc_trim = ctypes.CDLL(name).malloc_trim if name else False
        except (OSError, AttributeError):
            _malloc_trim = False
    if not _malloc_trim or _trim_pending:
        return
    _trim_pending = True
    loop = asyncio.get_running_loop()

    def run() -> None:
        global _trim_at, _trim_pending
        _trim_pending = False
        _trim_at = time.monotonic()
        loop.run_in_executor(None, _malloc_trim, 0)

    delay = max(0.2, _trim_at + 1.0 - time.monotonic())
    loop.call_later(delay, run)


def _join_headers(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _subprotocols(headers: Mapping[str, str]) -> tuple[str, ...]:
    raw = headers.get("sec-websocket-protocol", "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


async def _rest(platform: Platform, req: HttpRequest) -> HttpResponse:
    """Answer a REST request by the routing table, with one access line."""
    t0 = time.monotonic()
    answer = await _route_rest(platform, req)
    if access.isEnabledFor(logging.INFO):
        dt = round(time.monotonic() - t0, 4)
        fields: dict[str, Any] = {"peer": req.peer, "method": req.method, "path": req.path}
        fields |= {"status": answer.status, "duration_s": dt}
        access.info(
            "%s %s %s %d %.4fs",
            req.peer,
            req.method,
            req.path,
            answer.status,
            dt,
            extra={"fields": fields},
        )
    return answer


async def _route_rest(platform: Platform, req: HttpRequest) -> HttpResponse:
    """Answer a REST request by the routing table (404, 405 and 500 included)."""
    found = platform.router.match_http(req.method, req.path)
    if found is None:
        return HttpResponse(404, {"error": {"message": f"No route for {req.path}", "code": 404}})
    if found is False:
        return HttpResponse(405, {"error": {"message": "Method not allowed", "code": 405}})
    assert not isinstance(found, bool)
    route, params = found
    try:
        return await route.handler(dataclasses.replace(req, params=params), platform)
    except Exception:
        log.exception("REST %s %s failed", req.method, req.path)
        return HttpResponse(500, {"error": {"message": "Internal server error", "code": 500}})


# --------------------------------------------------------------------------------------
# ASGI (Starlette)


class _StarletteTransport:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def recv(self) -> str | bytes | None:
        m = await self.ws.receive()
        if m["type"] == "websocket.disconnect":
            return None
        text: str | None = m.get("text")
        data: bytes | None = m.get("bytes")
        return text if text is not None else data

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            await self.ws.send_text(message)
        else:
            await self.ws.send_bytes(message)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


def _route_path(scope: Mapping[str, Any]) -> str:
    """The path below the app's mount point (``root_path``), as the routes see it."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _peer(client: Any) -> str:
    return str(client.host) if client else "?"


def create_app(config: ServerConfig | None = None, *, platform: Platform | None = None) -> Any:
    """The ASGI app: every dialect's WebSocket and REST routes, and the platform's.

    Mount it in a FastAPI/Starlette app under any prefix, or serve it with uvicorn (use
    ``ws="websockets"`` and ``ws_max_size=config.max_message_bytes``).
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    plat = platform or Platform(config or ServerConfig())

    def to_response(a: HttpResponse) -> Response:
        if a.raw is not None:
            return Response(a.raw, a.status, headers=a.headers, media_type=a.content_type)
        return JSONResponse(a.body, a.status, headers=a.headers)

    async def http(request: Request) -> Response:
        body = b""
        if request.method in ("POST", "PUT", "PATCH"):
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return JSONResponse(
                        {"error": {"message": "Request body too large", "code": 413}}, 413
                    )
                chunks.append(chunk)
            body = b"".join(chunks)
        req = HttpRequest(
            request.method,
            _route_path(request.scope),
            {},
            dict(request.query_params),
            _join_headers(list(request.headers.items())),
            body,
            _peer(request.client),
        )
        return to_response(await _rest(plat, req))

    async def deny(ws: WebSocket, r: Refuse) -> None:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            body = r.body if isinstance(r.body, bytes) else json.dumps(r.body).encode()
            resp = Response(body, r.status, headers=r.headers, media_type="application/json")
            await ws.send_denial_response(resp)
        else:
            await ws.close(code=1008)  # before accept: the server answers HTTP 403

    async def websocket(ws: WebSocket) -> None:
        path = _route_path(ws.scope)
        peer = _peer(ws.client)
        found = plat.router.match_ws(path)
        if found is None:
            await deny(ws, Refuse(404, {"error": {"message": f"No route for {path}"}}))
            return
        plugin, params = found
        headers = _join_headers(list(ws.headers.items()))
        hs = Handshake(
            path,
            params,
            dict(ws.query_params),
            headers,
            tuple(ws.scope.get("subprotocols", ())),
            peer,
        )
        result = await plat.handshake(plugin, hs)
        if isinstance(result, Refuse):
            await deny(ws, result)
            return
        await ws.accept(subprotocol=result.subprotocol)
        transport = _StarletteTransport(ws)
        await serve_accepted(transport, result, plat, peer, path=path, dialect=plugin.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        # Mounted sub-apps get no lifespan events: the platform also starts lazily.
        await plat.start()
        try:
            yield
        finally:
            await plat.stop()

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route("/{path:path}", http, methods=methods),
            WebSocketRoute("/{path:path}", websocket),
        ],
        lifespan=lifespan,
    )
    app.state.platform = plat
    app.state.config = plat.config
    app.state.sessions = plat.live
    app.state.metrics = plat.metrics
    app.state.gate = plat.gate
    return app


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    driver: str = "websockets",
    ready: Callable[[int], None] | None = None,
    *,
    reuse_port: bool = False,
    **uvicorn_kw: Any,
) -> None:
    """Serve until SIGTERM or SIGINT (blocks); open sessions are then closed with 1012.

    ``driver="websockets"`` (the default) runs :func:`serve_websockets`; ``"asgi"`` serves
    :func:`create_app` with uvicorn and its websockets implementation (``uvicorn_kw`` go to
    ``uvicorn.run``). ``ready`` is called with the bound port once the server listens (the
    websockets driver only). ``reuse_port`` binds with SO_REUSEPORT (the workers of
    ``voxwire serve --workers``).
    """
    if driver == "websockets":
        asyncio.run(_run_websockets(config, host, port, ready, reuse_port))
        return
    if driver != "asgi":
        raise ValueError(f"unknown driver {driver!r}: use 'websockets' or 'asgi'")
    import uvicorn

    timeout = config.server_limits.handshake_timeout_s
    uvicorn_kw.setdefault("http", _h11_with_handshake_timeout(timeout))
    if reuse_port:
        import socket

        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        uvicorn_kw["fd"] = sock.fileno()
    else:
        uvicorn_kw["host"], uvicorn_kw["port"] = host, port
    uvicorn.run(
        create_app(config),
        ws="websockets",
        ws_max_size=config.max_message_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=math.ceil(config.shutdown_timeout_s),
        log_level=uvicorn_kw.pop("log_level", "warning"),
        # Its access log writes query strings (``?api_key=...``) in clear.
        access_log=uvicorn_kw.pop("access_log", False),
        **uvicorn_kw,
    )


def _h11_with_handshake_timeout(seconds: float) -> type:
    """Uvicorn's h11 protocol with a handshake timeout.

    It closes a connection whose first request line and headers have not arrived within
    ``seconds``: uvicorn has no such timeout, and a client sending one byte every half second
    held its connection forever.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11WithHandshakeTimeout(H11Protocol):
        _vx_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._vx_timer = self.loop.call_later(seconds, self._vx_expire)

        def _vx_expire(self) -> None:
            self._vx_timer = None
            t = self.transport
            if self.scope is None and not t.is_closing() and t.get_protocol() is self:
                t.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.scope is not None and self._vx_timer is not None:
                self._vx_timer.cancel()
                self._vx_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._vx_timer is not None:
                self._vx_timer.cancel()
                self._vx_timer = None
            super().connection_lost(exc)

    return H11WithHandshakeTimeout


async def _run_websockets(
    config: ServerConfig,
    host: str,
    port: int,
    ready: Callable[[int], None] | None,
    reuse_port: bool = False,
) -> None:
    import signal

    server = await serve_websockets(config, host, port, reuse_port=reuse_port)
    if ready is not None:
        ready(next(iter(server.sockets)).getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Stop accepting, then tell every open session that the service restarts.
    server.close(close_connections=False)

    async def drain() -> None:
        await asyncio.gather(
            *(c.close(1012, "server restart") for c in list(server.connections)),
            return_exceptions=True,
        )
        await server.wait_closed()

    try:
        await asyncio.wait_for(drain(), config.shutdown_timeout_s)
    except TimeoutError:
        # Whatever is left (a client that reads nothing) is dropped.
        for c in list(server.connections):
            c.transport.abort()
        log.warning(
            "shutdown: %d connections dropped after %g s",
            len(server.connections),
            config.shutdown_timeout_s,
        )
    await server.voxwire_platform.stop()


# --------------------------------------------------------------------------------------
# Plain websockets (no ASGI)


class _WebsocketsTransport:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def recv(self) -> str | bytes | None:
        from websockets.exceptions import ConnectionClosed

        try:
            msg: str | bytes = await self.ws.recv()
        except ConnectionClosed:
            return None
        return msg

    async def send(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once.

        No close handshake: the client reads nothing.
        """
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()


def _connection_class(
    rest: Callable[[HttpRequest], Awaitable[HttpResponse]], max_body: int = MAX_BODY_BYTES
) -> type:
    """The websockets library's server connection, which also answers REST requests.

    The library parses GET requests only (a WebSocket upgrade, or a plain GET answered by
    ``process_request``). This subclass looks at the first bytes of a connection: a request
    whose method is not GET (POST, PUT, DELETE, ...) is read with h11 (headers, and a body of
    at most ``max_body`` bytes: 413 beyond), answered by ``rest``, and closed; anything else
    goes to the library untouched. The opening-handshake timeout covers both.
    """
    import h11
    from websockets.asyncio.server import ServerConnection

    class RestServerConnection(ServerConnection):
        _vx_mode: str | None = None  # None: undecided; "ws"; "rest"
        _vx_head = b""
        _vx_h11: Any = None
        _vx_decided: asyncio.Future[None] | None = None
        _vx_done: asyncio.Future[None] | None = None
        _vx_request: Any = None
        _vx_body: list[bytes]
        _vx_size = 0
        _vx_task: asyncio.Task[None] | None = None

        def _vx_decide(self, mode: str) -> None:
            self._vx_mode = mode
            if self._vx_decided is None:
                self._vx_decided = self.loop.create_future()
            if not self._vx_decided.done():
                self._vx_decided.set_result(None)

        def data_received(self, data: bytes) -> None:
            if self._vx_mode == "ws":
                super().data_received(data)
                return
            if self._vx_mode == "rest":
                self._vx_feed(data)
                return
            self._vx_head += data
            sp = self._vx_head.find(b" ")
            if sp < 0 and len(self._vx_head) < 16:
                return
            head, self._vx_head = self._vx_head, b""
            if head[: max(sp, 0)] == b"GET" or sp < 0:
                self._vx_decide("ws")
                super().data_received(head)
                return
            self._vx_h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
            self._vx_body = []
            self._vx_done = self.loop.create_future()
            self._vx_decide("rest")
            self._vx_feed(head)

        def eof_received(self) -> None:
            if self._vx_mode == "rest":
                if self._vx_h11 is not None:
                    self._vx_feed(b"")
                return
            super().eof_received()

        def _vx_reply(self, status: int, body: dict[str, Any]) -> None:
            self._vx_send(HttpResponse(status, body))

        def _vx_send(self, a: HttpResponse) -> None:
            conn = self._vx_h11
            payload = a.raw if a.raw is not None else json.dumps(a.body).encode()
            headers = [
                ("Content-Type", a.content_type),
                ("Content-Length", str(len(payload))),
                ("Connection", "close"),
                *a.headers.items(),
            ]
            try:
                out = conn.send(h11.Response(status_code=a.status, headers=headers))
                out += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
            except h11.LocalProtocolError:
                out = b""
            self.transport.write(out)
            self.transport.close()
            if self._vx_done is not None and not self._vx_done.done():
                self._vx_done.set_result(None)

        def _vx_feed(self, data: bytes) -> None:
            conn = self._vx_h11
            # Until the request has been read (the server's side is IDLE before the request
            # line and SEND_RESPONSE after it, while the body may still come in pieces).
            if (
                conn is None
                or self._vx_task is not None
                or conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)
            ):
                return
            try:
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA or event is h11.PAUSED:
                        return
                    if isinstance(event, h11.Request):
                        self._vx_request = event
                    elif isinstance(event, h11.Data):
                        self._vx_size += len(event.data)
                        if self._vx_size > max_body:
                            self._vx_reply(413, {"error": {"message": "Request body too large"}})
                            return
                        self._vx_body.append(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        self._vx_task = self.loop.create_task(self._vx_answer())
                        return
                    elif isinstance(event, h11.ConnectionClosed):
                        self.transport.close()
                        return
            except h11.RemoteProtocolError as e:
                self._vx_reply(400, {"error": {"message": f"Bad request: {e}"}})

        async def _vx_answer(self) -> None:
            from urllib.parse import parse_qsl, urlsplit

            r = self._vx_request
            url = urlsplit(r.target.decode("latin-1"))
            headers = _join_headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers]
            )
            addr = self.remote_address
            req = HttpRequest(
                r.method.decode("latin-1"),
                url.path or "/",
                {},
                dict(parse_qsl(url.query)),
                headers,
                b"".join(self._vx_body),
                str(addr[0]) if addr else "?",
            )
            try:
                answer = await rest(req)
            except Exception:
                log.exception("REST %s %s failed", req.method, req.path)
                answer = HttpResponse(500, {"error": {"message": "Internal server error"}})
            self._vx_send(answer)

        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            if self._vx_decided is None:
                self._vx_decided = self.loop.create_future()
            await asyncio.wait(
                [self._vx_decided, self.connection_lost_waiter],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._vx_mode == "rest":
                assert self._vx_done is not None
                await asyncio.wait(
                    [self._vx_done, self.connection_lost_waiter],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                # Let the answer go out before the library aborts the (non-WebSocket)
                # connection.
                for _ in range(200):
                    if self.transport.is_closing() and self.connection_lost_waiter.done():
                        break
                    await asyncio.sleep(0.005)
                return
            await super().handshake(*args, **kwargs)

    return RestServerConnection


async def serve_websockets(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    platform: Platform | None = None,
    reuse_port: bool = False,
) -> Any:
    """The server ``voxwire serve`` runs: the ``websockets`` library's asyncio server.

    Every dialect's WebSocket and REST routes: GET requests go through the library's own
    parser; other methods (POST, ...) are read with h11 on the same port (see
    :func:`_connection_class`). No ASGI layer in between: per message it costs about what a
    bare ``websockets`` echo server does (``benches/load.py``).

    Returns the started ``websockets`` Server (``async with`` it, or ``close()`` it: open
    sessions get close code 1001; :func:`serve` closes them with 1012 instead). The platform
    is on the server object as ``voxwire_platform`` (and its sessions and metrics as
    ``voxwire_sessions`` and ``voxwire_metrics``).
    """
    from http import HTTPStatus
    from urllib.parse import parse_qsl, urlsplit

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    plat = platform or Platform(config)
    await plat.start()

    def respond(conn: ServerConnection, a: HttpResponse) -> Response:
        body = a.raw if a.raw is not None else json.dumps(a.body).encode()
        r = conn.respond(HTTPStatus(a.status), "")
        r.body = body
        del r.headers["Content-Type"]
        del r.headers["Content-Length"]
        r.headers["Content-Type"] = a.content_type
        r.headers["Content-Length"] = str(len(body))
        for k, v in a.headers.items():
            r.headers[k] = v
        return r

    def peer_of(conn: ServerConnection) -> str:
        addr = conn.remote_address
        return str(addr[0]) if addr else "?"

    # The handshake's outcome, for select() and the handler.
    accepted: WeakKeyDictionary[ServerConnection, Accept] = WeakKeyDictionary()
    routes: WeakKeyDictionary[ServerConnection, tuple[str, str]] = WeakKeyDictionary()

    async def check(conn: ServerConnection, req: Request) -> Response | None:
        url = urlsplit(req.path)
        headers = _join_headers(list(req.headers.raw_items()))
        query = dict(parse_qsl(url.query))
        path = url.path or "/"
        found = plat.router.match_ws(path)
        if "upgrade" not in headers or found is None:
            hreq = HttpRequest("GET", path, {}, query, headers, b"", peer_of(conn))
            return respond(conn, await _rest(plat, hreq))
        plugin, params = found
        hs = Handshake(path, params, query, headers, _subprotocols(headers), peer_of(conn))
        result = await plat.handshake(plugin, hs)
        if isinstance(result, Refuse):
            return respond(conn, HttpResponse(result.status, result.body, result.headers))
        accepted[conn] = result
        routes[conn] = (path, plugin.name)
        return None

    def select(conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        a = accepted.get(conn)
        if a is None or a.subprotocol is None:
            return None
        return Subprotocol(a.subprotocol)

    async def handler(conn: ServerConnection) -> None:
        accept = accepted.pop(conn)
        path, name = routes.pop(conn, ("", ""))
        transport = _WebsocketsTransport(conn)
        await serve_accepted(transport, accept, plat, peer_of(conn), path=path, dialect=name)

    async def rest(req: HttpRequest) -> HttpResponse:
        return await _rest(plat, req)

    server = await serve(
        handler,
        host,
        port,
        create_connection=_connection_class(rest),
        process_request=check,
        select_subprotocol=select,
        max_size=config.max_message_bytes,
        compression=None,
        open_timeout=config.server_limits.handshake_timeout_s,
        reuse_port=reuse_port or None,
    )
    setattr(server, "voxwire_platform", plat)  # noqa: B010 (websockets' Server has no slot)
    setattr(server, "voxwire_sessions", plat.live)  # noqa: B010
    setattr(server, "voxwire_metrics", plat.metrics)  # noqa: B010
    setattr(server, "voxwire_gate", plat.gate)  # noqa: B010
    return server


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_KEYS_PER_HANDSHAKE",
    "MAX_KEY_CHARS",
    "Metrics",
    "ServerConfig",
    "SessionRunner",
    "Transport",
    "create_app",
    "run_accepted",
    "run_session",
    "serve",
    "serve_accepted",
    "serve_websockets",
    "usable_key",
]
