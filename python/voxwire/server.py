"""Drivers of the session engine: a websockets server and an ASGI app.

``voxwire serve`` runs the plain websockets server; the ASGI app (Starlette) is for mounting
in your own app or serving with uvicorn.

Both run :func:`run_session`, which moves messages between a transport and a
:class:`voxwire.session.Session`, runs the agent of each response as a task (cancelled on
barge-in), and keeps memory bounded: outgoing messages wait in one ordered queue, and while
it holds ``max_send_queue`` messages neither the agent nor the reader goes on (a slow client
slows its own session down instead of growing the server).

Wire limits (documented answers):

- a message over ``max_message_bytes`` (1 MiB by default): close code 1009 (message too big);
- no client message for ``Limits.idle_timeout_s`` while no response runs: an ``error`` event
  with code ``session_idle_timeout``, then close code 1000;
- server shutdown (SIGTERM or SIGINT to ``voxwire serve``): close code 1012 (service
  restart);
- a missing or wrong API key: HTTP 401 at the handshake (403 where the ASGI server cannot send
  a denial response); no session starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from voxwire import agents
from voxwire.asr import ASR
from voxwire.dialects import OpenAIDialect
from voxwire.session import Limits, Phase, Session
from voxwire.session import events as ev

log = logging.getLogger("voxwire.server")

#: Subprotocol prefix browsers use to carry the key (they cannot set headers).
KEY_SUBPROTOCOL = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"


class Metrics:
    """Server-wide counters and the inbound latency histogram (exposed at ``/metrics``).

    Inbound latency is the time from a client message's arrival in the session loop to the
    end of its processing (engine, Rust pipeline, and queueing of the events it caused).
    ``audio_in_ms`` sums the input audio of finished sessions (to check nothing was dropped).
    """

    #: Histogram buckets: 1 us to about 100 s, 5% apart.
    _RATIO = 1.05
    _N = 380
    _LOG_RATIO = math.log(_RATIO)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start counting afresh."""
        self.messages_in = 0
        self.messages_out = 0
        self.sessions_started = 0
        self.audio_in_ms = 0
        self.buckets = [0] * self._N
        self.cpu_at_reset = time.process_time()
        self.wall_at_reset = time.monotonic()

    def observe(self, seconds: float) -> None:
        """Record one inbound message's processing time."""
        us = max(seconds * 1e6, 1.0)
        k = min(self._N - 1, int(math.log(us) / self._LOG_RATIO))
        self.buckets[k] += 1
        self.messages_in += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of inbound latency in microseconds (upper bucket edge)."""
        n = sum(self.buckets)
        if n == 0:
            return None
        want, seen = q * n, 0
        for k, c in enumerate(self.buckets):
            seen += c
            if seen >= want:
                return float(self._RATIO ** (k + 1))
        return float(self._RATIO**self._N)

    def snapshot(self, sessions: int) -> dict[str, Any]:
        """Everything, as JSON-ready values."""
        return {
            "sessions": sessions,
            "sessions_started": self.sessions_started,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "audio_in_ms": self.audio_in_ms,
            "inbound_latency_us": {
                "p50": self.quantile(0.5),
                "p90": self.quantile(0.9),
                "p99": self.quantile(0.99),
                "max": self.quantile(1.0),
            },
            "cpu_seconds": time.process_time() - self.cpu_at_reset,
            "wall_seconds": time.monotonic() - self.wall_at_reset,
        }


class Transport(Protocol):
    """A message-oriented connection, as :func:`run_session` needs it."""

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the client has gone."""
        ...

    async def send(self, text: str) -> None:
        """Send one text message."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with a close frame."""
        ...


@dataclass
class ServerConfig:
    """What a voxwire server needs to know."""

    #: Accepted API keys; empty means no authentication (loopback only, see ``voxwire serve``).
    api_keys: frozenset[str] = frozenset()
    #: The agent: a name for :func:`voxwire.agents.load_agent`, or an agent object.
    agent: str | agents.Agent = "echo"
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 1 << 20
    max_send_queue: int = 256
    #: A client that does not take a message for this long is dropped (0: never).
    write_timeout_s: float = 30.0
    #: Seconds open sessions get to close at shutdown (SIGTERM) before the server exits.
    shutdown_timeout_s: float = 10.0
    vad_engine: str = "spectral"
    model: str = "voxwire-echo"
    #: Speech recognition for user audio turns (see :mod:`voxwire.asr`); None: no
    #: transcripts. ``voxwire serve`` picks :class:`voxwire.asr.PocketSphinxASR` when it is
    #: installed (``--asr``).
    asr: ASR | None = None

    def make_agent(self) -> agents.Agent:
        """The agent object."""
        return agents.load_agent(self.agent) if isinstance(self.agent, str) else self.agent


def authenticate(
    keys: Iterable[str],
    headers: Mapping[str, str],
    query: Mapping[str, str],
    subprotocols: Iterable[str],
) -> bool:
    """Whether the handshake carries an accepted key.

    Keys come as ``Authorization: Bearer <key>``, ``?api_key=<key>``, or the subprotocol
    ``openai-insecure-api-key.<key>``. With no keys configured everything is accepted.
    """
    keys = list(keys)
    if not keys:
        return True
    offered = offered_keys(headers, query, subprotocols)
    # Constant-time comparisons, all of them (no early exit on the first match).
    ok = False
    for o in offered:
        for k in keys:
            ok |= hmac.compare_digest(o.encode(), k.encode())
    return ok


#: At most this many credentials of one handshake are tried; the rest are ignored.
MAX_KEYS_PER_HANDSHAKE = 8
#: Longer credentials are not tried.
MAX_KEY_CHARS = 4096


def _usable_key(k: str) -> bool:
    # Printable ASCII only: a byte outside it (the server decodes such header bytes as
    # surrogates or Latin-1) cannot match a configured key, and must not reach encode().
    return 0 < len(k) <= MAX_KEY_CHARS and k.isascii() and k.isprintable() and " " not in k


def offered_keys(
    headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Iterable[str]
) -> list[str]:
    """The usable credentials a handshake offers, at most :data:`MAX_KEYS_PER_HANDSHAKE`.

    From ``Authorization: Bearer <key>``, the Azure-style ``api-key`` header, ``?api_key=``,
    and subprotocols ``openai-insecure-api-key.<key>``.
    """
    offered: list[str] = []
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        offered.append(auth[7:].strip())
    if "api-key" in headers:
        offered.append(headers["api-key"].strip())
    if "api_key" in query:
        offered.append(query["api_key"])
    for p in subprotocols:
        if len(offered) >= MAX_KEYS_PER_HANDSHAKE:
            break
        if p.startswith(KEY_SUBPROTOCOL):
            offered.append(p[len(KEY_SUBPROTOCOL) :])
    return [o for o in offered[:MAX_KEYS_PER_HANDSHAKE] if _usable_key(o)]


def wants_beta(headers: Mapping[str, str], subprotocols: Iterable[str]) -> bool:
    """Whether the client asked for the beta shape (``OpenAI-Beta: realtime=v1``)."""
    beta = headers.get("openai-beta", "").replace(" ", "")
    return "realtime=v1" in beta.split(",") or BETA_SUBPROTOCOL in subprotocols


def answer_subprotocol(subprotocols: Iterable[str]) -> str | None:
    """The subprotocol to accept: ``realtime`` when offered (browsers), else none."""
    return "realtime" if "realtime" in subprotocols else None


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
    ) -> None:
        self.transport = transport
        self.session = session
        self.agent = agent
        self.clock = clock
        self.max_send_queue = max_send_queue
        self.metrics = metrics
        self.asr = asr
        self.write_timeout_s = write_timeout_s
        #: Why the session ended on the server's side ("write timeout", ...), if it did.
        self.ended_by: str | None = None
        self._out: deque[str | ev.Close] = deque()
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
                await transport.close(item.code, item.reason)
                return
            await transport.send(item)
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
            async for o in self.agent.respond(turn):
                now = clock()
                if isinstance(o, agents.TextDelta):
                    session.agent_text(rid, o.text, now)
                elif isinstance(o, agents.AudioChunk):
                    session.agent_audio(rid, o.pcm, o.sample_rate, now)
                elif isinstance(o, agents.ToolCall):
                    session.agent_tool_call(rid, o.name, o.arguments, o.call_id, now)
                elif isinstance(o, agents.Notice):
                    session.agent_notice(rid, o.code, o.message, now)
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
                t0 = time.perf_counter()
                session.receive(msg, clock())
                self._pump()
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
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        # Drop what could hold frames (and so this object) in a cycle.
        self._tasks.clear()
        self._out.clear()
        self._send_task = self._me = None


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

    async def send(self, text: str) -> None:
        await self.ws.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


_INVALID_KEY = {
    "error": {
        "type": "invalid_request_error",
        "code": "invalid_api_key",
        "message": "Incorrect or missing API key.",
    }
}


def _http_answer(
    cfg: ServerConfig,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    live: set[Session],
    metrics: Metrics,
) -> tuple[int, dict[str, Any]] | None:
    """The JSON answer to a plain HTTP GET of one of the server's routes, or None.

    ``/metrics`` needs a key when keys are configured; ``?reset=1`` starts its counters
    afresh (after reading them). Any other path gives None.
    """
    path = path.rstrip("/") or "/"
    if path == "/healthz":
        return 200, {"status": "ok", "sessions": len(live)}
    if path == "/v1/models":
        return 200, {
            "object": "list",
            "data": [{"id": cfg.model, "object": "model", "owned_by": "voxwire"}],
        }
    if path == "/metrics":
        if not authenticate(cfg.api_keys, headers, query, []):
            return 401, {"error": "unauthorized"}
        snap = metrics.snapshot(len(live))
        if query.get("reset") in ("1", "true"):
            metrics.reset()
        return 200, snap
    return None


async def _serve_session(
    transport: Transport,
    cfg: ServerConfig,
    agent: agents.Agent,
    live: set[Session],
    metrics: Metrics,
    headers: Mapping[str, str],
    protos: Sequence[str],
    model: str,
) -> None:
    """Runs one accepted WebSocket's session (either driver), counted in ``live``."""
    session = Session(
        OpenAIDialect(beta=wants_beta(headers, protos)),
        now=time.monotonic(),
        model=model,
        limits=cfg.limits,
        vad_engine=cfg.vad_engine,
    )
    live.add(session)
    metrics.sessions_started += 1
    try:
        await run_session(
            transport,
            session,
            agent,
            max_send_queue=cfg.max_send_queue,
            metrics=metrics,
            asr=cfg.asr,
            write_timeout_s=cfg.write_timeout_s,
        )
    finally:
        live.discard(session)


def create_app(config: ServerConfig | None = None) -> Any:
    """The ASGI app.

    WebSocket ``/v1/realtime`` (also ``/realtime``), ``GET /healthz``, ``GET /v1/models``,
    ``GET /metrics`` (counters, inbound latency quantiles, CPU seconds; ``?reset=1`` or
    ``POST /metrics/reset`` starts afresh; both need a key when keys are configured). Mount it in a
    FastAPI/Starlette app, or serve it with uvicorn (use ``ws="websockets"`` and
    ``ws_max_size=config.max_message_bytes``).
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    cfg = config or ServerConfig()
    agent = cfg.make_agent()
    live: set[Session] = set()
    metrics = Metrics()

    async def http(request: Request) -> JSONResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        answer = _http_answer(cfg, request.url.path, query, headers, live, metrics)
        assert answer is not None  # only the routes below lead here
        return JSONResponse(answer[1], status_code=answer[0])

    async def reset_metrics(request: Request) -> JSONResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = {**request.query_params, "reset": "1"}
        answer = _http_answer(cfg, "/metrics", query, headers, live, metrics)
        assert answer is not None
        return JSONResponse(answer[1], status_code=answer[0])

    async def realtime(ws: WebSocket) -> None:
        headers = {k.lower(): v for k, v in ws.headers.items()}
        protos = list(ws.scope.get("subprotocols", []))
        if not authenticate(cfg.api_keys, headers, dict(ws.query_params), protos):
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                await ws.send_denial_response(JSONResponse(_INVALID_KEY, status_code=401))
            else:
                await ws.close(code=1008)  # before accept: the server answers HTTP 403
            return
        await ws.accept(subprotocol=answer_subprotocol(protos))
        model = ws.query_params.get("model", cfg.model)
        await _serve_session(
            _StarletteTransport(ws), cfg, agent, live, metrics, headers, protos, model
        )

    app = Starlette(
        routes=[
            Route("/healthz", http),
            Route("/v1/models", http),
            Route("/metrics", http),
            Route("/metrics/reset", reset_metrics, methods=["POST"]),
            WebSocketRoute("/v1/realtime", realtime),
            WebSocketRoute("/realtime", realtime),
        ]
    )
    app.state.config = cfg
    app.state.sessions = live
    app.state.metrics = metrics
    return app


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    driver: str = "websockets",
    ready: Callable[[int], None] | None = None,
    **uvicorn_kw: Any,
) -> None:
    """Serve until SIGTERM or SIGINT (blocks); open sessions are then closed with 1012.

    ``driver="websockets"`` (the default) runs :func:`serve_websockets`; ``"asgi"`` serves
    :func:`create_app` with uvicorn and its websockets implementation (``uvicorn_kw`` go to
    ``uvicorn.run``). ``ready`` is called with the bound port once the server listens (the
    websockets driver only).
    """
    if driver == "websockets":
        asyncio.run(_run_websockets(config, host, port, ready))
        return
    if driver != "asgi":
        raise ValueError(f"unknown driver {driver!r}: use 'websockets' or 'asgi'")
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
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


async def _run_websockets(
    config: ServerConfig, host: str, port: int, ready: Callable[[int], None] | None
) -> None:
    import signal

    server = await serve_websockets(config, host, port)
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

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once.

        No close handshake: the client reads nothing.
        """
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()


async def serve_websockets(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> Any:
    """The server ``voxwire serve`` runs: the ``websockets`` library's asyncio server.

    The session is at ``/v1/realtime`` (also ``/realtime``) and ``GET /healthz``, ``GET
    /v1/models`` and ``GET /metrics`` (``?reset=1`` starts afresh) answered as the ASGI app
    answers them. No ASGI layer in between: per message it costs about what a bare
    ``websockets`` echo server does (``benches/load.py``).

    Returns the started ``websockets`` Server (``async with`` it, or ``close()`` it: open
    sessions get close code 1001; :func:`serve` closes them with 1012 instead). The sessions
    and metrics are on the server object as ``voxwire_sessions`` and ``voxwire_metrics``.
    """
    import json
    from http import HTTPStatus
    from urllib.parse import parse_qsl, urlsplit

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    agent = config.make_agent()
    live: set[Session] = set()
    metrics = Metrics()

    def protos(req: Request) -> list[str]:
        raw = req.headers.get_all("Sec-WebSocket-Protocol")
        return [p.strip() for h in raw for p in h.split(",") if p.strip()]

    def respond(conn: ServerConnection, status: int, body: dict[str, Any]) -> Response:
        r = conn.respond(HTTPStatus(status), json.dumps(body))
        del r.headers["Content-Type"]
        r.headers["Content-Type"] = "application/json"
        return r

    # What check() parsed of an accepted upgrade, for its handler.
    parsed: WeakKeyDictionary[ServerConnection, tuple[dict[str, str], list[str], str]]
    parsed = WeakKeyDictionary()

    def check(conn: ServerConnection, req: Request) -> Response | None:
        url = urlsplit(req.path)
        headers = {k.lower(): v for k, v in req.headers.raw_items()}
        query = dict(parse_qsl(url.query))
        if "upgrade" not in headers:
            answer = _http_answer(config, url.path, query, headers, live, metrics)
            if answer is not None:
                return respond(conn, *answer)
        if url.path.rstrip("/") not in ("/v1/realtime", "/realtime"):
            return respond(conn, 404, {"error": "not found"})
        offered = protos(req)
        if not authenticate(config.api_keys, headers, query, offered):
            return respond(conn, 401, _INVALID_KEY)
        parsed[conn] = (headers, offered, query.get("model", config.model))
        return None

    def select(conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        return Subprotocol("realtime") if answer_subprotocol(offered) else None

    async def handler(conn: ServerConnection) -> None:
        headers, offered, model = parsed.pop(conn)
        await _serve_session(
            _WebsocketsTransport(conn), config, agent, live, metrics, headers, offered, model
        )

    server = await serve(
        handler,
        host,
        port,
        process_request=check,
        select_subprotocol=select,
        max_size=config.max_message_bytes,
        compression=None,
    )
    setattr(server, "voxwire_sessions", live)  # noqa: B010 (websockets' Server has no slot)
    setattr(server, "voxwire_metrics", metrics)  # noqa: B010
    return server


__all__ = [
    "Metrics",
    "ServerConfig",
    "Transport",
    "answer_subprotocol",
    "authenticate",
    "create_app",
    "run_session",
    "serve",
    "serve_websockets",
    "wants_beta",
]
