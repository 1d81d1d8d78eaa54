"""The platform every dialect runs on: configuration, agents, admission, metrics, routes.

One :class:`Platform` per server process. The drivers (the ``websockets`` server and the
ASGI app, :mod:`voxwire.server`) ask it to route, to admit and to authenticate; dialect
plugins (:mod:`voxwire.dialects.base`) get it in their handshakes and REST handlers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voxwire import agents
from voxwire.asr import ASR
from voxwire.auth import Authenticator, Principal, well_formed
from voxwire.dialects.base import (
    DialectPlugin,
    Handshake,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    Router,
)
from voxwire.errors import AuthError, RateLimitedError, StoreUnavailableError
from voxwire.gate import Gate, ServerLimits
from voxwire.session import Limits, Session
from voxwire.store import Store

if TYPE_CHECKING:
    from voxwire.config import Config
    from voxwire.dialects.base import Accept, Refuse
    from voxwire.registry import Registry
    from voxwire.types import VadEngine

log = logging.getLogger("voxwire.platform")


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
        self.latency_sum_s = 0.0
        self.cpu_at_reset = time.process_time()
        self.wall_at_reset = time.monotonic()

    def observe(self, seconds: float) -> None:
        """Record one inbound message's processing time."""
        self.latency_sum_s += seconds
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

    #: Prometheus histogram bucket edges for inbound latency, in seconds.
    PROM_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25)

    def prometheus(self, sessions: int) -> bytes:
        """Everything in the Prometheus text format (via ``prometheus-client``)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self

        class _Collector:
            def collect(self) -> Any:
                yield GaugeMetricFamily("voxwire_sessions", "Open sessions.", value=sessions)
                for name, doc, v in (
                    ("sessions_started", "Sessions started.", m.sessions_started),
                    ("messages_in", "Client messages processed.", m.messages_in),
                    ("messages_out", "Messages sent to clients.", m.messages_out),
                    ("audio_in_seconds", "Input audio of ended sessions.", m.audio_in_ms / 1e3),
                    ("cpu_seconds", "Process CPU time.", time.process_time() - m.cpu_at_reset),
                ):
                    yield CounterMetricFamily(f"voxwire_{name}", doc, value=v)
                edges = [math.log(e * 1e6) / m._LOG_RATIO for e in m.PROM_BUCKETS]
                counts, seen, k = [], 0, 0
                for i, c in enumerate(m.buckets):
                    while k < len(edges) and i + 1 > edges[k]:
                        counts.append(seen)
                        k += 1
                    seen += c
                counts += [seen] * (len(edges) - len(counts))
                yield HistogramMetricFamily(
                    "voxwire_inbound_latency_seconds",
                    "Processing time of one client message.",
                    buckets=[
                        *(
                            (f"{e:g}", float(n))
                            for e, n in zip(m.PROM_BUCKETS, counts, strict=True)
                        ),
                        ("+Inf", float(seen)),
                    ],
                    sum_value=m.latency_sum_s,
                )

        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector())
        out: bytes = generate_latest(reg)
        return out

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
    #: Connections per server and per peer, handshake and failed-authentication rates.
    server_limits: ServerLimits = field(default_factory=ServerLimits)
    vad_engine: VadEngine = "silero"
    model: str = "voxwire-echo"
    #: Speech recognition for user audio turns (see :mod:`voxwire.asr`); None: no
    #: transcripts. ``voxwire serve`` picks :class:`voxwire.asr.PocketSphinxASR` when it is
    #: installed (``--asr``).
    asr: ASR | None = None
    #: Partial transcripts of the user's turn while it is spoken (dialects that show them:
    #: atoms), from an ASR of their own (:func:`voxwire.asr.isolated_pocketsphinx_partial`:
    #: a worker pool apart from ``asr``'s); None: none. ``voxwire serve`` sets it with
    #: ``asr``.
    partial_asr: ASR | None = None
    #: A partial transcript every this many ms of the turn's speech (at most one in flight
    #: per session, skipped while the partial pool is busy).
    partial_transcript_ms: int = 700
    #: The dialects served; None: every built-in one (:data:`voxwire.dialects.PLUGINS`).
    plugins: tuple[DialectPlugin, ...] | None = None
    #: The state store's URL (``sqlite:///path``, ``redis://host:port/db``); None: the
    #: default SQLite file under the user's state directory.
    store_url: str | None = field(default=None, repr=False)
    #: A store object to use instead of ``store_url`` (tests, embedding).
    store: Store | None = None
    #: The loaded ``voxwire.toml`` (agents, voices, orgs...); None: embedded defaults.
    config_file: Config | None = None

    def make_agent(self) -> agents.Agent:
        """The agent object."""
        return agents.load_agent(self.agent) if isinstance(self.agent, str) else self.agent


#: At most this many credentials of one handshake are tried; the rest are ignored.
MAX_KEYS_PER_HANDSHAKE = 8
#: Longer credentials are not tried.
MAX_KEY_CHARS = 4096


def usable_key(k: str) -> bool:
    """Whether ``k`` can be a credential: 1-4096 printable ASCII characters, no spaces.

    A byte outside that (the drivers decode such header bytes as surrogates or Latin-1)
    cannot match a configured key, and must not reach ``encode()``. The authenticator's own
    rule (:func:`voxwire.auth.well_formed`), so both agree.
    """
    return well_formed(k)


#: Who a client is when the server needs no credential (no key configured or stored:
#: loopback only, see ``voxwire serve``).
ANONYMOUS = Principal(kind="key", id="anonymous")


class Platform:
    """One server process's shared state (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        from voxwire.dialects import PLUGINS
        from voxwire.store import open_store

        self.config = config
        self.agent = config.make_agent()
        self.live: set[Session] = set()
        self.metrics = Metrics()
        self.gate = Gate(config.server_limits)
        self.plugins: tuple[DialectPlugin, ...] = config.plugins or tuple(PLUGINS)
        self.router = Router([_CorePlugin(), *self.plugins])
        self.store: Store = config.store or open_store(config.store_url)
        self.auth = Authenticator(self.store, api_keys=sorted(config.api_keys))
        #: The agents, voices, orgs... (built at :meth:`start`, off the event loop).
        self.registry: Registry | None = None
        #: Whether handshakes need a credential: keys configured, or users or keys stored.
        self.auth_required = bool(config.api_keys)
        self._started = False
        self._start_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and build the registry (once; every driver calls it lazily too)."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            from voxwire.registry import Registry

            await self.store.open()
            self.registry = await asyncio.to_thread(Registry, self.config.config_file)
            if not self.auth_required:
                users = await self.store.list_users()
                keys = await self.store.list_api_keys()
                self.auth_required = bool(users or keys)
            self._started = True

    async def stop(self) -> None:
        """Close the store."""
        if self._started:
            self._started = False
            await self.store.close()

    # -- credentials ------------------------------------------------------------------

    async def authenticate(
        self, candidates: Sequence[str], *, count: bool = True
    ) -> Principal | None:
        """The principal of the first accepted credential (None: none is).

        With no credential configured or stored, everyone is :data:`ANONYMOUS` (loopback
        only: ``voxwire serve`` refuses other addresses without keys). A store that does not
        answer raises :class:`~voxwire.errors.StoreUnavailableError` (HTTP 503, not 401).
        With ``count`` (handshakes), the principal's handshake rate is counted and checked
        (:meth:`count_handshake`).
        """
        await self.start()
        if not self.auth_required:
            return ANONYMOUS
        usable = [c for c in candidates if usable_key(c)][:MAX_KEYS_PER_HANDSHAKE]
        try:
            principal = await self.auth.authenticate(usable)
        except AuthError:
            return None
        if count:
            await self.count_handshake(principal)
        return principal

    async def count_handshake(self, principal: Principal) -> None:
        """Count a handshake of ``principal`` against its per-minute limit, in the store.

        The limit so holds across processes and hosts.

        Raises :class:`~voxwire.errors.RateLimitedError` past it (the drivers answer HTTP
        429 with ``Retry-After``).
        """
        limit = self.config.server_limits.handshakes_per_principal_per_minute
        d = await self.store.hit(f"handshakes:{principal.owner}", limit=limit, window_s=60.0)
        if not d.allowed:
            raise RateLimitedError(
                f"more than {limit} connections a minute for this credential", d.reset_s
            )

    # -- sessions ---------------------------------------------------------------------

    def new_session(
        self,
        dialect: Any,
        *,
        model: str | None = None,
        state: Any = None,
        limits: Limits | None = None,
    ) -> Session:
        """A session engine for ``dialect`` with the server's limits and VAD.

        ``limits`` replaces the server's (a dialect with its own idle timeout, say).
        """
        return Session(
            dialect,
            now=time.monotonic(),
            model=model or self.config.model,
            limits=limits or self.config.limits,
            vad_engine=self.config.vad_engine,
            state=state,
        )

    async def check_admission(self, hs: Handshake) -> Refuse | None:
        """Server-wide limits for a handshake (before the dialect sees it)."""
        from voxwire.dialects.base import Refuse

        r = self.gate.check(hs.peer)
        if r is None:
            return None
        headers = {"Retry-After": str(r.retry_after_s)} if r.retry_after_s else {}
        return Refuse(r.status, r.body(), headers)

    async def handshake(self, plugin: DialectPlugin, hs: Handshake) -> Accept | Refuse:
        """Admission, then the dialect's own handshake."""
        from voxwire.dialects.base import Refuse

        refused = await self.check_admission(hs)
        if refused is not None:
            return refused
        try:
            await self.start()
            result = await plugin.handshake(hs, self)
        except StoreUnavailableError:
            log.warning("store unavailable during a %s handshake", plugin.name)
            body = {
                "error": {
                    "type": "server_error",
                    "code": "store_unavailable",
                    "message": "The server's state store is unavailable; retry.",
                }
            }
            return Refuse(503, body, {"Retry-After": "2"})
        except RateLimitedError as e:
            body = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "rate_limit_exceeded",
                    "message": f"Too many connections: {e}.",
                }
            }
            return Refuse(429, body, {"Retry-After": str(max(1, math.ceil(e.retry_after_s)))})
        if isinstance(result, Refuse) and result.status in (401, 403):
            self.gate.auth_failed(hs.peer)
        return result


class _CorePlugin:
    """The platform's own routes: health, readiness, metrics, the browser page."""

    name = "voxwire"
    ws_paths: tuple[str, ...] = ()

    def __init__(self) -> None:
        from voxwire import webui

        self.http_routes: tuple[HttpRoute, ...] = (
            *webui.routes(),
            HttpRoute("GET", "/healthz", _healthz),
            HttpRoute("GET", "/readyz", _readyz),
            HttpRoute("GET", "/metrics", _metrics),
            HttpRoute("GET", "/metrics.json", _metrics_json),
            HttpRoute("POST", "/metrics/reset", _metrics_reset),
        )

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        raise AssertionError("no WebSocket routes")  # pragma: no cover


async def _healthz(req: HttpRequest, p: Platform) -> HttpResponse:
    return HttpResponse(200, {"status": "ok", "sessions": len(p.live), "pid": os.getpid()})


async def _readyz(req: HttpRequest, p: Platform) -> HttpResponse:
    try:
        await p.start()
    except StoreUnavailableError:
        return HttpResponse(503, {"status": "unavailable", "store": False})
    ok = await p.store.ping()
    body = {"status": "ready" if ok else "unavailable", "store": ok}
    return HttpResponse(200 if ok else 503, body)


async def _metrics_allowed(req: HttpRequest, p: Platform) -> bool:
    from voxwire.dialects.openai import credentials

    try:
        creds = credentials(req.headers, req.query, ())
        return await p.authenticate(creds, count=False) is not None
    except StoreUnavailableError:
        return False


_UNAUTHORIZED = HttpResponse(401, {"error": "unauthorized"})


async def _metrics(req: HttpRequest, p: Platform) -> HttpResponse:
    if not await _metrics_allowed(req, p):
        return _UNAUTHORIZED
    return HttpResponse(
        200, raw=p.metrics.prometheus(len(p.live)), content_type="text/plain; version=0.0.4"
    )


async def _metrics_json(req: HttpRequest, p: Platform) -> HttpResponse:
    if not await _metrics_allowed(req, p):
        return _UNAUTHORIZED
    snap = p.metrics.snapshot(len(p.live))
    if req.query.get("reset") in ("1", "true"):
        p.metrics.reset()
    return HttpResponse(200, snap)


async def _metrics_reset(req: HttpRequest, p: Platform) -> HttpResponse:
    if not await _metrics_allowed(req, p):
        return _UNAUTHORIZED
    snap = p.metrics.snapshot(len(p.live))
    p.metrics.reset()
    return HttpResponse(200, snap)


__all__ = [
    "ANONYMOUS",
    "MAX_KEYS_PER_HANDSHAKE",
    "MAX_KEY_CHARS",
    "Metrics",
    "Platform",
    "Principal",
    "ServerConfig",
    "usable_key",
]
