"""The plug-in interface on a real server: the identity dialect as a plugin with a path
parameter, its own handshake, REST route, commands, background task and end hook."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from identity import IdentityDialect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxwire.dialects.base import (
    Accept,
    Handshake,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    Refuse,
    SessionIO,
)
from voxwire.platform import Platform, ServerConfig
from voxwire.server import serve_websockets
from voxwire.session import events as ev
from voxwire.store import SQLiteStore

pytestmark = [pytest.mark.timeout(60), pytest.mark.network]


class IdentityPlugin:
    name = "identity"
    ws_paths: tuple[str, ...] = ("/identity/{room}",)

    def __init__(self) -> None:
        self.closed: list[str] = []
        self.http_routes: tuple[HttpRoute, ...] = (
            HttpRoute("POST", "/identity/{room}/note", self.note),
        )

    async def note(self, req: HttpRequest, platform: Platform) -> HttpResponse:
        return HttpResponse(201, {"room": req.params["room"], "got": json.loads(req.body)})

    async def handshake(self, hs: Handshake, platform: Platform) -> Accept | Refuse:
        if hs.query.get("token") != "ok":
            return Refuse(401, {"detail": "bad token"})
        room = hs.params["room"]
        session = platform.new_session(IdentityDialect())
        session.context = ev.SessionContext(agent_id="echo", variables={"room": room})

        async def commands(cmd: ev.Command, io: SessionIO) -> None:
            if cmd.name == "echo":
                await asyncio.sleep(0.01)  # an await, as a store call would be
                io.send(json.dumps({"echo": cmd.payload, "room": room}))
            elif cmd.name == "bye":
                io.close(4000, "bye")

        async def heartbeat(io: SessionIO) -> None:
            for n in range(3):
                await asyncio.sleep(0.05)
                io.send(json.dumps({"ping": n}))

        async def on_close(io: SessionIO) -> None:
            self.closed.append(room)

        return Accept(
            session,
            subprotocol=None,
            commands=commands,
            background=(heartbeat,),
            on_close=on_close,
        )


def test_plugin_routes_commands_background_and_end_hook(tmp_path: Path) -> None:
    plugin = IdentityPlugin()

    async def main() -> tuple[list[Any], list[Any], int, tuple[int, dict[str, Any]]]:
        cfg = ServerConfig(plugins=(plugin,), store=SQLiteStore(tmp_path / "s.db"))
        server = await serve_websockets(cfg, "127.0.0.1", 0)
        port = next(iter(server.sockets)).getsockname()[1]
        try:
            with pytest.raises(InvalidStatus) as bad:
                await connect(f"ws://127.0.0.1:{port}/identity/a?token=no")
            status = bad.value.response.status_code
            got: list[Any] = []
            async with connect(f"ws://127.0.0.1:{port}/identity/kitchen?token=ok") as ws:
                for k in range(3):
                    await ws.send(json.dumps({"intent": "Command", "name": "echo", "payload": k}))
                await ws.send(json.dumps({"intent": "Command", "name": "bye"}))
                try:
                    while True:
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
                except ConnectionClosed as e:
                    code = e.rcvd.code if e.rcvd else None
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/identity/kitchen/note", data=b'{"x": 1}', method="POST"
            )

            def post() -> tuple[int, dict[str, Any]]:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, json.load(r)

            rest = await asyncio.to_thread(post)
            for _ in range(100):
                if plugin.closed:
                    break
                await asyncio.sleep(0.02)
            return got, [code], status, rest
        finally:
            server.close()
            await server.wait_closed()

    got, codes, status, rest = asyncio.run(main())
    assert status == 401
    assert got[0]["fact"] == "SessionCreated"
    echoes = [m["echo"] for m in got if "echo" in m]
    assert echoes == [0, 1, 2]  # in order, each after its await
    assert codes == [4000]
    assert rest == (201, {"room": "kitchen", "got": {"x": 1}})
    assert plugin.closed == ["kitchen"]


def test_rest_body_in_a_later_segment(tmp_path: Path) -> None:
    """A POST whose body arrives after its headers (urllib writes them apart) is answered."""
    plugin = IdentityPlugin()

    async def main() -> bytes:
        cfg = ServerConfig(plugins=(plugin,), store=SQLiteStore(tmp_path / "s.db"))
        server = await serve_websockets(cfg, "127.0.0.1", 0)
        port = next(iter(server.sockets)).getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{"x": 2}'
            writer.write(
                b"POST /identity/den/note HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            await writer.drain()
            await asyncio.sleep(0.2)  # the headers are read alone first
            writer.write(body)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer
        finally:
            server.close()
            await server.wait_closed()

    answer = asyncio.run(main())
    assert answer.split(b" ")[1] == b"201"
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"room": "den", "got": {"x": 2}}
