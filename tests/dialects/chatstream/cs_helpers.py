"""Shared parts of the chatstream tests: a real in-process server and a raw client.

The client speaks the wire as the seed (``001``) and its notes describe it: JSON text
messages with a ``type``; it does not use voxwire's own chatstream client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxwire.config import Config
from voxwire.dialects.chatstream import ChatstreamPlugin
from voxwire.platform import Platform, ServerConfig
from voxwire.server import serve_websockets
from voxwire.session import events as ev
from voxwire.store import SQLiteStore

API_KEY = "sk-chatstream-test-key-0123456789"

CONFIG = """
[[tools]]
name = "lookup_order"
description = "Find an order by its number."
[tools.parameters]
type = "object"
required = ["order_id"]
[tools.parameters.properties.order_id]
type = "string"

[[agents]]
id = "agent_001"
name = "Companion"
instructions = "You are a helpful companion."
tools = ["lookup_order"]

[[agents]]
id = "plain"
name = "Plain"

[chatstream]
backgrounds_dir = "bg"
avatar_configs_dir = "avatars"
"""

MAO = {
    "conf_name": "Mao",
    "conf_uid": "mao-001",
    "persona_prompt": "You are Mao.",
    "model_info": {"name": "mao_pro", "expressions": ["smile"], "motions": ["idle"]},
}


def png(width: int = 2, height: int = 1) -> bytes:
    """A tiny valid PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def write_config(root: Path) -> Config:
    """The test config with its folders: two backgrounds, two avatar configs."""
    (root / "bg").mkdir()
    (root / "bg" / "dusk.png").write_bytes(png())
    (root / "bg" / "room.jpg").write_bytes(b"\xff\xd8\xff\xe0not really a jpeg")
    (root / "bg" / "notes.txt").write_text("not an image")
    (root / "avatars").mkdir()
    (root / "avatars" / "mao.json").write_text(json.dumps(MAO))
    (root / "avatars" / "shizuku.toml").write_text(
        'conf_name = "Shizuku"\npersona_prompt = "You are Shizuku."\n'
        '[model_info]\nname = "shizuku"\nurl = "/live2d/shizuku/shizuku.model3.json"\n'
    )
    (root / "secret.json").write_text(json.dumps({"conf_name": "Secret"}))
    path = root / "voxwire.toml"
    path.write_text(CONFIG)
    return Config.parse(CONFIG, path=path)


@dataclass
class Server:
    """A running server: its port and platform."""

    port: int
    platform: Platform

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/chat/stream"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running(
    tmp: Path,
    *,
    keys: bool = True,
    agent: Any = "echo",
    **plugin_kw: Any,
) -> AsyncIterator[Server]:
    """A real server with the chatstream plugin, a SQLite store and the test config."""
    plugin_kw.setdefault("ping_interval_s", 30.0)
    plugin_kw.setdefault("pong_timeout_s", 10.0)
    cfg = ServerConfig(
        plugins=(ChatstreamPlugin(**plugin_kw),),
        store=SQLiteStore(tmp / "state.db"),
        config_file=write_config(tmp),
        api_keys=frozenset({API_KEY}) if keys else frozenset(),
        agent=agent,
    )
    server = await serve_websockets(cfg, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield Server(port, server.voxwire_platform)
    finally:
        server.close()
        await server.wait_closed()


class Client:
    """A raw client: sends dicts, reads dicts; answers ``ping`` unless told not to."""

    def __init__(self, ws: ClientConnection, *, pong: bool = True) -> None:
        self.ws = ws
        self.pong = pong
        self.pings = 0
        self.close_code: int | None = None

    async def send(self, msg: dict[str, Any] | str) -> None:
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message that is not a ping (raises ConnectionClosed at the end)."""
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout)
            except ConnectionClosed as e:
                self.close_code = e.rcvd.code if e.rcvd else None
                raise
            m: dict[str, Any] = json.loads(raw)
            if m.get("type") == "ping":
                self.pings += 1
                if self.pong:
                    await self.send({"type": "pong"})
                continue
            return m

    async def until(self, type_: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every message up to and including the first of ``type_``."""
        out = []
        while True:
            m = await self.recv(timeout)
            out.append(m)
            if m.get("type") == type_:
                return out

    async def closed(self, timeout: float = 10.0) -> tuple[list[dict[str, Any]], int | None]:
        """The messages until the server closes, and its close code."""
        out = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                out.append(await self.recv(timeout))
        return out, self.close_code

    async def authorize(self, token: str = API_KEY) -> str:
        await self.send({"type": "authorize", "token": token})
        m = await self.recv()
        assert m["type"] == "authorize_success", m
        return str(m["connection_id"])


@contextlib.asynccontextmanager
async def client(server: Server, *, pong: bool = True) -> AsyncIterator[Client]:
    async with connect(server.ws_url, max_size=None) as ws:
        yield Client(ws, pong=pong)


def chat(content: str, **kw: Any) -> dict[str, Any]:
    """A chat_message as the seed's example writes it."""
    return {
        "type": "chat_message",
        "content": content,
        "user_id": "user_001",
        "agent_id": "agent_001",
        **kw,
    }


class HistoryAgent:
    """An agent plug-in that answers with what it was given (history, persona, tools)."""

    async def respond(self, turn: ev.UserTurn) -> AsyncIterator[Any]:
        from voxwire.agents import TextDelta

        seen = {
            "history": [[h.role, h.text] for h in turn.history],
            "instructions": turn.instructions,
            "text": turn.text,
            "tools": [t.name for t in turn.tools],
        }
        yield TextDelta(json.dumps(seen))
