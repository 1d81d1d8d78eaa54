"""A bare ``websockets`` (asyncio) echo server: the ceiling for a Python WebSocket layer.

Echoes every message back unchanged, with the same settings as ``voxwire serve`` where they
apply (no compression, 1 MiB messages, asyncio event loop). ``benches/load.py`` drives it with
the same clients and messages as voxwire and compares the server CPU per inbound message.

``GET /cpu`` answers this process's CPU seconds (``time.process_time()``, all threads), so
that short runs are measured more finely than ``/proc/<pid>/stat``'s 10 ms ticks.

Usage: python benches/echo_server.py [--port 0]   (prints "port <N>" once listening)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def echo(conn: ServerConnection) -> None:
    """Send every message back as it came."""
    async for message in conn:
        await conn.send(message)


def http(conn: ServerConnection, request: Request) -> Response | None:
    """``/cpu`` (CPU seconds) and ``/healthz``; anything else goes on to the WebSocket."""
    if request.path == "/cpu":
        return conn.respond(HTTPStatus.OK, f"{time.process_time():.9f}\n")
    if request.path == "/healthz":
        return conn.respond(HTTPStatus.OK, "ok\n")
    return None


async def main(port: int) -> None:
    """Serve on 127.0.0.1 until SIGINT or SIGTERM."""
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        "127.0.0.1",
        port,
        process_request=http,
        compression=None,
        max_size=1 << 20,
        ping_interval=20.0,
        ping_timeout=20.0,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"port {bound}", flush=True)
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    asyncio.run(main(p.parse_args().port))
