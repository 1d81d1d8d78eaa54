"""Server-wide admission: how many connections, from whom, and how often.

One :class:`Gate` per server process, asked at every WebSocket handshake (both drivers)
before authentication, told of every failed authentication and of every connection's end.
The answers follow nginx's ``limit_conn`` / ``limit_req``: HTTP 503 when the server is full,
429 (with ``Retry-After``) when one peer address has too many connections, opens too many
handshakes, or fails authentication too often.

In memory, per process: with ``--workers N`` each process enforces its own share. The windows
are sliding (the last 60 seconds), and the table of peers is bounded (the stalest peers are
forgotten first), so a flood of addresses cannot grow it without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerLimits:
    """Server-wide limits (documented in docs/security.md)."""

    #: Open WebSocket sessions per process; past it: HTTP 503.
    max_connections: int = 1000
    #: Open sessions per peer address; past it: HTTP 429.
    max_connections_per_peer: int = 64
    #: WebSocket handshakes a peer address may open per minute; past it: HTTP 429.
    handshakes_per_peer_per_minute: int = 600
    #: WebSocket handshakes one principal (user or key) may open per minute, counted in the
    #: store, so across every process and host; past it: HTTP 429.
    handshakes_per_principal_per_minute: int = 600
    #: Failed authentications a peer address may have per minute; past it every handshake
    #: of that address gets HTTP 429 until the window has room again.
    failed_auth_per_peer_per_minute: int = 20
    #: Seconds a client has to complete its opening handshake (request line and headers).
    handshake_timeout_s: float = 10.0
    #: Peers remembered at once (the least recently seen are forgotten first).
    max_tracked_peers: int = 100_000


@dataclass
class _Peer:
    open: int = 0
    handshakes: deque[float] = field(default_factory=deque)
    failures: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class Refusal:
    """Why a handshake is refused: the HTTP status, a JSON-ready body, and Retry-After."""

    status: int
    code: str
    message: str
    retry_after_s: int = 0

    def body(self) -> dict[str, object]:
        """The JSON body (OpenAI's error shape)."""
        return {
            "error": {"type": "invalid_request_error", "code": self.code, "message": self.message}
        }


class Gate:
    """Admission control for one server process (see the module docstring)."""

    WINDOW_S = 60.0

    def __init__(
        self, limits: ServerLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or ServerLimits()
        self.clock = clock
        self.open = 0
        self._peers: OrderedDict[str, _Peer] = OrderedDict()

    def _peer(self, addr: str) -> _Peer:
        p = self._peers.get(addr)
        if p is None:
            p = self._peers[addr] = _Peer()
            while len(self._peers) > self.limits.max_tracked_peers:
                # Forget the stalest peer that holds no open connection.
                for k, v in self._peers.items():
                    if v.open == 0:
                        del self._peers[k]
                        break
                else:
                    break
        else:
            self._peers.move_to_end(addr)
        return p

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] >= self.WINDOW_S:
            q.popleft()

    def check(self, addr: str) -> Refusal | None:
        """A handshake from ``addr`` arrives: None to go on, or why it is refused.

        Once it is accepted, call :meth:`opened`.
        """
        lim, now = self.limits, self.clock()
        p = self._peer(addr)
        self._trim(p.failures, now)
        if len(p.failures) >= lim.failed_auth_per_peer_per_minute:
            wait = self.WINDOW_S - (now - p.failures[0])
            return Refusal(
                429,
                "too_many_failed_authentications",
                "Too many failed authentications from this address; try again later.",
                max(1, int(wait + 0.999)),
            )
        self._trim(p.handshakes, now)
        if len(p.handshakes) >= lim.handshakes_per_peer_per_minute:
            wait = self.WINDOW_S - (now - p.handshakes[0])
            return Refusal(
                429,
                "rate_limit_exceeded",
                "Too many connections opened from this address in the last minute.",
                max(1, int(wait + 0.999)),
            )
        p.handshakes.append(now)
        if self.open >= lim.max_connections:
            return Refusal(503, "server_at_capacity", "The server is at capacity; retry later.", 5)
        if p.open >= lim.max_connections_per_peer:
            return Refusal(
                429,
                "too_many_connections",
                f"At most {lim.max_connections_per_peer} open sessions per address.",
                5,
            )
        return None

    def auth_failed(self, addr: str) -> None:
        """A handshake from ``addr`` failed authentication."""
        self._peer(addr).failures.append(self.clock())

    def opened(self, addr: str) -> None:
        """A session from ``addr`` was accepted (pair with :meth:`closed`)."""
        self.open += 1
        self._peer(addr).open += 1

    def closed(self, addr: str) -> None:
        """A session from ``addr`` ended."""
        self.open -= 1
        p = self._peers.get(addr)
        if p is not None and p.open > 0:
            p.open -= 1
