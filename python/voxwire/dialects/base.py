"""What a dialect plugs into the server: routes, handshake, codec, and how errors look.

A dialect module (``voxwire.dialects.<name>``) exposes one :class:`DialectPlugin`. The server
serves every plugin in :data:`voxwire.dialects.PLUGINS` on one port: each plugin declares

- its WebSocket paths (``ws_paths``; ``{name}`` segments become path parameters),
- its REST routes (``http_routes``: method, path, an async handler taking an
  :class:`HttpRequest` and the :class:`~voxwire.platform.Platform`),
- its handshake (:meth:`DialectPlugin.handshake`): who the client is (asking the platform's
  authenticator), which subprotocol to answer, which variant of the API it speaks, and the
  session to run, or why it is refused (an HTTP status and the API's own error body).

Inside a session, the plugin's codec (the ``dialect`` of the :class:`~voxwire.session.Session`)
decodes client messages (``str`` or ``bytes``) into intents and encodes facts into ``str``
(JSON text) or ``bytes`` (binary audio frames), rendering the engine's error kinds in the
API's words. Adding a dialect is one module plus one line in ``PLUGINS``.

Everything here is transport-neutral: both server drivers (the ``websockets`` server and the
ASGI app) build the same :class:`Handshake` and :class:`HttpRequest` values.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from voxwire.platform import Platform
    from voxwire.session import Session
    from voxwire.session.events import Command


@dataclass(frozen=True)
class Handshake:
    """A WebSocket opening handshake, as every dialect sees it."""

    #: The path as routed (after any mount prefix).
    path: str
    #: The values of the route's ``{name}`` segments.
    params: dict[str, str]
    query: dict[str, str]
    #: Header names lower-cased; of repeated headers, the values joined by ``, ``.
    headers: dict[str, str]
    subprotocols: tuple[str, ...]
    #: The client's address (for limits and logs).
    peer: str


class SessionIO:
    """What a dialect's command handler and background tasks may do in a running session.

    ``session`` is the engine (call its methods: ``greet``, ``receive``...; set its
    ``context``); :meth:`send` queues a wire message of the dialect's own making, in order
    with the engine's; :meth:`close` ends the connection with a close code. ``platform``
    gives the store, the authenticator, the registry and the configuration.
    """

    def __init__(self, session: Session, platform: Platform, pump: Callable[[], None]) -> None:
        self.session = session
        self.platform = platform
        self._pump = pump

    def send(self, message: str | bytes) -> None:
        """Send ``message`` (after everything queued before it)."""
        self.session.send_raw(message)
        self._pump()

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` after what is queued (ends the session)."""
        self.session.close(code, reason)
        self._pump()

    def flush(self) -> None:
        """Send what session methods called directly have queued."""
        self._pump()


#: A dialect's handler of its own commands (:class:`voxwire.session.events.Command`): run
#: in arrival order, one at a time per session, with the session's I/O.
CommandHandler = Callable[["Command", SessionIO], Awaitable[None]]
#: A coroutine that runs beside a session for its whole life (a heartbeat, say), cancelled
#: when the session ends.
BackgroundTask = Callable[[SessionIO], Awaitable[None]]


@dataclass
class Accept:
    """The handshake succeeds: run ``session``, answering ``subprotocol``.

    ``close``: accept, then close at once with this code and reason (APIs whose browser
    clients cannot see an HTTP status report some refusals as close codes after the upgrade).
    ``principal`` is who the client is (for logs, leases and stored conversations).
    ``commands`` handles the dialect's own commands; ``background`` tasks run beside the
    session (both get a :class:`SessionIO`). ``on_close`` runs once the session has ended
    (release a lease, store the transcript), whatever ended it.

    ``attach``: for sessions that outlive their connection (a client re-attaching to a live
    session after a network drop). When set, the driver does not run ``session`` itself: it
    hands the accepted connection's transport (:class:`voxwire.server.Transport`) to
    ``attach`` and keeps the connection open until the coroutine returns. The dialect runs
    the session itself over a transport of its own (see :func:`voxwire.server.run_accepted`)
    and moves it from connection to connection.
    """

    session: Session
    subprotocol: str | None = None
    principal: Any = None
    close: tuple[int, str] | None = None
    commands: CommandHandler | None = None
    background: tuple[BackgroundTask, ...] = ()
    on_close: Callable[[SessionIO], Awaitable[None]] | None = None
    attach: Callable[[Any], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Refuse:
    """The handshake fails with an HTTP answer: status, JSON body, extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpRequest:
    """A REST request, as dialect handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: str


@dataclass(frozen=True)
class HttpResponse:
    """A REST answer: ``body`` is sent as JSON unless ``raw`` is given (with its type)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


HttpHandler = Callable[[HttpRequest, "Platform"], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class HttpRoute:
    """One REST endpoint of a dialect."""

    method: str
    path: str
    handler: HttpHandler


class DialectPlugin(Protocol):
    """What a dialect module gives the server (see the module docstring)."""

    #: The dialect's name (``openai``, ``amigo``, ...), as logs and metrics show it.
    name: str
    #: WebSocket paths; ``{name}`` segments are path parameters.
    ws_paths: tuple[str, ...]
    #: REST endpoints.
    http_routes: tuple[HttpRoute, ...]

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        """Authenticate and set up one WebSocket session, or refuse it."""
        ...


_SEGMENT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_path(path: str) -> re.Pattern[str]:
    """A route path with ``{name}`` segments as a regular expression (one segment each).

    A trailing slash is optional.
    """
    out, pos = [], 0
    for m in _SEGMENT.finditer(path):
        out.append(re.escape(path[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(path[pos:].rstrip("/")))
    return re.compile("^" + "".join(out) + "/?$")


class Router:
    """Matches paths to the plugins' routes (WebSocket and REST)."""

    def __init__(self, plugins: list[DialectPlugin]) -> None:
        self.ws: list[tuple[re.Pattern[str], DialectPlugin, str]] = []
        self.http: list[tuple[re.Pattern[str], HttpRoute]] = []
        for p in plugins:
            for path in p.ws_paths:
                self.ws.append((compile_path(path), p, path))
            for r in p.http_routes:
                self.http.append((compile_path(r.path), r))

    def match_ws(self, path: str) -> tuple[DialectPlugin, dict[str, str]] | None:
        """The plugin whose WebSocket route ``path`` is, with the path parameters."""
        for rx, plugin, _ in self.ws:
            m = rx.match(path)
            if m is not None:
                return plugin, m.groupdict()
        return None

    def match_http(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | bool | None:
        """The REST route of ``method`` and ``path`` with its parameters.

        ``False`` when the path exists for another method (405); None when no route has the
        path (404).
        """
        other = False
        for rx, route in self.http:
            m = rx.match(path)
            if m is not None:
                if route.method == method or (method == "HEAD" and route.method == "GET"):
                    return route, m.groupdict()
                other = True
        return False if other else None
