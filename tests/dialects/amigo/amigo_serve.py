"""A voxwire server process with the amigo dialect and chosen settings (for the tests that
kill or restart servers): ``python amigo_serve.py STORE_URL CONFIG LEASE_TTL AGENT``.
Prints the port on its first line of output."""

from __future__ import annotations

import asyncio
import sys

from voxwire.config import load_config
from voxwire.dialects.amigo import AmigoPlugin, AmigoSettings
from voxwire.platform import ServerConfig
from voxwire.server import serve_websockets


async def main() -> None:
    store_url, config, ttl, agent = sys.argv[1:5]
    agent_obj: object = agent
    if agent != "echo":
        import amigo_agents

        agent_obj = getattr(amigo_agents, agent)()
    cfg = ServerConfig(
        store_url=store_url,
        config_file=load_config(config),
        plugins=(AmigoPlugin(AmigoSettings(lease_ttl_s=float(ttl))),),
        agent=agent_obj,  # type: ignore[arg-type]
    )
    server = await serve_websockets(cfg, "127.0.0.1", 0)
    print(next(iter(server.sockets)).getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
