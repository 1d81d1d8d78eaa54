"""``serve_websockets`` on a free 127.0.0.1 port, on an event loop thread of its own (for
tests that talk to a real server with a blocking client)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from voxwire.platform import ServerConfig
from voxwire.server import serve_websockets


class LoopServer:
    """A real server for ``config``: ``port`` once constructed, ``loop`` its event loop;
    ``close()`` stops it and its platform."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> Any:
            server = await serve_websockets(self.config, "127.0.0.1", 0)
            self.port = next(iter(server.sockets)).getsockname()[1]
            return server

        self.server = self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        """Stops the server and its loop."""

        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()
            await self.server.voxwire_platform.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
