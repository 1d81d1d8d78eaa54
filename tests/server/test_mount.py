"""`voxwire.asgi.create_app` under a mount prefix (FastAPI at /voice, Starlette at /) and
behind a proxy's root_path: every route answers where the mount puts it (issue 25)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from openai import OpenAI

from voxwire.asgi import ServerConfig, create_app
from voxwire.store import SQLiteStore

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]

KEY = "mount-key-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_server(app: Any, **kw: Any) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets", log_level="warning", **kw)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(20)


def get(url: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body.decode()


def text_turn(base_url: str) -> str:
    client = OpenAI(api_key=KEY, base_url=base_url)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        content = [{"type": "input_text", "text": "mounted"}]
        conn.conversation.item.create(item={"type": "message", "role": "user", "content": content})
        conn.response.create()
        for _ in range(500):
            e = conn.recv()
            if e.type == "response.done":
                return str(e.response.output[0].content[0].text)  # type: ignore[union-attr]
    raise AssertionError("no response.done")


def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(api_keys=frozenset({KEY}), store=SQLiteStore(tmp_path / "s.db"))


def test_fastapi_mount_at_voice(tmp_path: Path) -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/voice", create_app(config(tmp_path)))
    with uvicorn_server(app) as port:
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/hello") == (200, {"hello": "world"})
        assert get(f"{base}/voice/healthz")[1]["status"] == "ok"
        assert get(f"{base}/voice/v1/models")[1]["data"][0]["owned_by"] == "voxwire"
        assert get(f"{base}/voice/metrics.json")[0] == 200
        status, text = get(f"{base}/voice/metrics")
        assert status == 200 and "voxwire_sessions" in text
        assert get(f"{base}/voice/readyz")[1]["store"] is True
        assert text_turn(f"{base}/voice/v1") == "mounted"


def test_starlette_at_root_and_behind_a_proxy_root_path(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount("/", create_app(config(tmp_path)))])
    with uvicorn_server(app) as port:
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/healthz")[1]["status"] == "ok"
        assert text_turn(f"{base}/v1") == "mounted"
    # A proxy strips /api and tells uvicorn so (root_path): the routes still match.
    with uvicorn_server(create_app(config(tmp_path)), root_path="/api") as port:
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/healthz")[1]["status"] == "ok"
        assert text_turn(f"{base}/v1") == "mounted"
