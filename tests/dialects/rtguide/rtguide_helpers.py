"""A client of the rtguide API written from the guide (seed 000) and its notes, and a server.

The client does what the guide's "Client Connection Flow" does: ``POST /api/rt/login``,
connect ``/api/rt/ws?token=...&ui_session_id=...``, read events (JSON text; binary frames
are audio) and send ``{"type": ...}`` events once ``user_turn_start`` has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from voxwire.agents import AudioChunk, EchoAgent, EspeakTTS, TextDelta, Thought, ToolCall
from voxwire.config import AgentEntry, Config, Tool
from voxwire.platform import ServerConfig
from voxwire.server import serve_websockets
from voxwire.session.events import UserTurn
from voxwire.store import SQLiteStore

PASSWORD = "correct horse battery"


class ScriptAgent:
    """The echo agent, plus scripted turns: ``think: X`` (a thought, then X), ``tool: NAME``
    (a tool call), ``slow: X`` (one delta, then waits for :attr:`release`), and audio turns
    held after their first chunk while :attr:`hold_audio` is set."""

    def __init__(self) -> None:
        self.echo = EchoAgent(tts=EspeakTTS() if EspeakTTS.available() else None, pace=0)
        self.release = asyncio.Event()
        self.hold_audio = False

    async def respond(self, turn: UserTurn) -> AsyncIterator[Any]:
        text = turn.text
        if text is not None and text.startswith("think:"):
            yield Thought("pondering")
            yield TextDelta(text[6:].strip())
            return
        if text is not None and text.startswith("tool:"):
            yield ToolCall(text[5:].strip(), '{"city": "Paris"}', "call_1")
            yield TextDelta("called")
            return
        if text is not None and text.startswith("slow:"):
            yield TextDelta("first ")
            await self.release.wait()
            yield TextDelta(text[5:].strip())
            return
        if turn.audio is not None and self.hold_audio:
            yield AudioChunk(turn.audio[:1600], turn.sample_rate)
            await self.release.wait()
            return
        async for o in self.echo.respond(turn):
            yield o


WEATHER = Tool(
    name="get_weather",
    description="The weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
CONFIG = Config(
    agents=(
        AgentEntry(id="echo", name="Echo", description="Echoes", category=("domo",)),
        AgentEntry(
            id="helper",
            name="Helper",
            category=("realtime",),
            tools=(WEATHER,),
            instructions="Help.",
        ),
    ),
    tools=(WEATHER,),
)


@dataclass
class Server:
    """An in-process server on a free port with users ``alice`` and ``bob``."""

    port: int
    server: Any
    agent: ScriptAgent

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def platform(self) -> Any:
        return self.server.voxwire_platform


@contextlib.asynccontextmanager
async def running_server(db: Path, **kw: Any) -> AsyncIterator[Server]:
    agent = ScriptAgent()
    cfg = ServerConfig(store=SQLiteStore(db), agent=agent, config_file=CONFIG, **kw)
    server = await serve_websockets(cfg, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    plat = server.voxwire_platform
    for name in ("alice", "bob"):
        if await plat.store.get_user(name) is None:
            await plat.auth.add_user(name, PASSWORD, profile={"email": f"{name}@example.com"})
    try:
        yield Server(port, server, agent)
    finally:
        server.close()
        await server.wait_closed()
        await plat.stop()


def _http(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


async def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    h = dict(headers or {})
    data = None
    if isinstance(body, bytes):
        data = body
    elif body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    return await asyncio.to_thread(_http, method, url, data, h)


async def login(srv: Server, user: str = "alice", prefix: str = "/api/rt") -> dict[str, Any]:
    status, body = await http(
        "POST", f"{srv.base}{prefix}/login", {"username": user, "password": PASSWORD}
    )
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@dataclass
class Client:
    """One WebSocket of the rtguide API."""

    ws: ClientConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next JSON event (binary frames are kept in :attr:`audio`)."""
        while True:
            m = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(m, bytes):
                self.audio.append(m)
                continue
            e: dict[str, Any] = json.loads(m)
            self.events.append(e)
            return e

    async def audio_frame(self, timeout: float = 10.0) -> bytes:
        """The next binary frame (JSON events meanwhile are kept in :attr:`events`)."""
        while True:
            m = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(m, bytes):
                self.audio.append(m)
                return m
            self.events.append(json.loads(m))

    async def until(self, kind: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every event up to and including the next one of type ``kind``."""
        got = []
        while True:
            e = await self.next(timeout)
            got.append(e)
            if e["type"] == kind:
                return got

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def close(self) -> None:
        await self.ws.close()


async def open_ws(srv: Server, token: str, path: str = "/api/rt/ws", **query: str) -> Client:
    q = "&".join(f"{k}={v}" for k, v in {"token": token, **query}.items())
    ws = await connect(f"ws://127.0.0.1:{srv.port}{path}?{q}", max_size=None)
    return Client(ws)


async def ready(srv: Server, user: str = "alice", **query: str) -> tuple[Client, dict[str, Any]]:
    """Log in, connect with the login's ui_session_id, read up to ``user_turn_start``."""
    body = await login(srv, user)
    c = await open_ws(srv, body["agent_c_token"], ui_session_id=body["ui_session_id"], **query)
    await c.until("user_turn_start")
    return c, body


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
