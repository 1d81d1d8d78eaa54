"""The browser page ``voxwire serve`` serves at ``/``: static files and their configuration.

The page (``voxwire/web/``: plain JavaScript modules and AudioWorklets, no build step) talks
to the server through the dialects' own WebSocket routes, authenticating the way each
dialect's browser clients do. It learns what to offer from ``GET /ui/config.json``: the
dialects served, the registry's agents and voices, and whether a credential is needed;
never a secret. The routes are the platform's, so both drivers (``websockets`` and ASGI)
serve them. See docs/design/browser.md.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

import voxwire
from voxwire.dialects.base import HttpRequest, HttpResponse, HttpRoute

if TYPE_CHECKING:
    from voxwire.platform import Platform

#: The files of the page, by name, with their content types (nothing else is served).
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "dialects.js": "text/javascript; charset=utf-8",
    "jitter.js": "text/javascript; charset=utf-8",
    "wav.js": "text/javascript; charset=utf-8",
    "capture-worklet.js": "text/javascript; charset=utf-8",
    "playback-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

#: Sent with every file of the page: only this origin's scripts, styles and sockets.
HEADERS: dict[str, str] = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}

#: What the page needs to know of each dialect it can speak: the WebSocket path, how a
#: browser authenticates there, and the audio rates on the wire (``in_rate`` None: the page
#: sends at the microphone's own rate).
DIALECTS: dict[str, dict[str, Any]] = {
    "openai": {
        "label": "OpenAI Realtime",
        "path": "/v1/realtime",
        "auth": "subprotocol key (openai-insecure-api-key.KEY)",
        "in_rate": 24000,
        "out_rate": 24000,
        "speech": True,
    },
    "amigo": {
        "label": "Amigo converse_realtime",
        "path": "/v1/{org}/conversation/converse_realtime",
        "auth": "subprotocol bearer.authorization.amigo.ai.TOKEN",
        "in_rate": None,
        "out_rate": 24000,
        "speech": True,
    },
    "atoms": {
        "label": "Atoms webcall",
        "path": "/atoms/v1/agent/connect",
        "auth": "register-call, then ?token=wct_...",
        "in_rate": 24000,
        "out_rate": 24000,
        "speech": True,
    },
    "rtguide": {
        "label": "rtguide (Agent C)",
        "path": "/api/rt/ws",
        "auth": "login, then ?token=JWT",
        "in_rate": 16000,
        "out_rate": 24000,
        "speech": True,
    },
    "chatstream": {
        "label": "chatstream (text, with TTS)",
        "path": "/v1/chat/stream",
        "auth": "in-band authorize",
        "in_rate": None,
        "out_rate": None,
        "speech": False,
    },
}


def read_file(name: str) -> bytes:
    """The bytes of the page's file ``name`` (one of :data:`FILES`)."""
    return resources.files("voxwire.web").joinpath(name).read_bytes()


async def index(req: HttpRequest, p: Platform) -> HttpResponse:
    """``GET /``: the page."""
    return HttpResponse(
        200, raw=read_file("index.html"), content_type=FILES["index.html"], headers=dict(HEADERS)
    )


async def static(req: HttpRequest, p: Platform) -> HttpResponse:
    """``GET /ui/{name}``: one of the page's files (404 for any other name)."""
    name = req.params.get("name", "")
    if name not in FILES:
        return HttpResponse(404, {"error": {"message": f"No route for {req.path}", "code": 404}})
    return HttpResponse(200, raw=read_file(name), content_type=FILES[name], headers=dict(HEADERS))


async def config(req: HttpRequest, p: Platform) -> HttpResponse:
    """``GET /ui/config.json``: what the page offers (no secret: names and flags only)."""
    await p.start()
    reg = p.registry
    assert reg is not None
    served = [pl.name for pl in p.plugins]
    dialects = [{"name": n, **DIALECTS[n]} for n in DIALECTS if n in served]
    agents = [
        {"id": a.id, "name": a.name, "description": a.description, "voice": a.voice}
        for a in reg.agents()
    ]
    voices = [
        {
            "id": v.id,
            "description": v.description,
            "language": v.language,
            "audio": v.output_format == "pcm16",
        }
        for v in reg.voices()
    ]
    orgs = [{"id": o.id, "services": [s.id for s in o.services]} for o in reg.orgs()]
    body = {
        "version": voxwire.__version__,
        "auth_required": p.auth_required,
        "dialects": dialects,
        "agents": agents,
        "voices": voices,
        "default_agent": reg.default_agent().id,
        "default_voice": reg.default_voice().id,
        "orgs": orgs,
        "model": p.config.model,
    }
    return HttpResponse(200, body, headers={"Cache-Control": "no-store"})


def routes() -> tuple[HttpRoute, ...]:
    """The page's routes, for the platform's table (``/ui/config.json`` before the files)."""
    return (
        HttpRoute("GET", "/", index),
        HttpRoute("GET", "/ui/config.json", config),
        HttpRoute("GET", "/ui/{name}", static),
    )


__all__ = ["DIALECTS", "FILES", "HEADERS", "config", "index", "read_file", "routes", "static"]
