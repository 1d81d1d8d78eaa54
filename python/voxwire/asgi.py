"""The ASGI app factory, for mounting voxwire in your own FastAPI or Starlette app.

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from voxwire.asgi import ServerConfig, create_app

    app = Starlette(routes=[Mount("/voice", create_app(ServerConfig(api_keys=frozenset({"k"}))))])

serves the OpenAI-style realtime API at ``/voice/v1/realtime``. Serve with uvicorn's
websockets implementation (``--ws websockets``) and set its ``ws_max_size`` to
``ServerConfig.max_message_bytes`` (1 MiB by default).
"""

from __future__ import annotations

from voxwire.server import ServerConfig, create_app
from voxwire.session import Limits

__all__ = ["Limits", "ServerConfig", "create_app"]
