"""A real voxwire server with the amigo dialect for the tests: a store with users and API
keys, a config with an org and its services, the server in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxwire.agents import Agent
from voxwire.asr import ASR
from voxwire.auth import Authenticator
from voxwire.config import load_config
from voxwire.dialects.amigo import AmigoPlugin, AmigoSettings
from voxwire.platform import ServerConfig
from voxwire.server import serve_websockets
from voxwire.store import Store, open_store

PREFIX = "bearer.authorization.amigo.ai."
VAD_DEV = Path(__file__).resolve().parents[4] / "shared" / "data" / "vad-dev"
if not VAD_DEV.exists():
    VAD_DEV = Path("/work/shared/data/vad-dev")

CONFIG = """
[[agents]]
id = "echo"
name = "Echo"
greeting = "Hello, I am Echo."

[[agents]]
id = "echo-edge"
name = "Echo edge"
greeting = "Edge here."

[[orgs]]
id = "acme"

[[orgs.services]]
id = "65f1c0ffee0000000000000a"
version_sets = { release = "echo", edge = "echo-edge" }

[[orgs.services]]
id = "65f1c0ffee0000000000000b"
agent = "echo"

[[orgs]]
id = "other"

[[orgs.services]]
id = "65f1c0ffee0000000000000c"
agent = "echo"
"""

SERVICE = "65f1c0ffee0000000000000a"
SERVICE_B = "65f1c0ffee0000000000000b"


@dataclass
class Env:
    """What a test needs: the store URL, the config file, credentials."""

    store_url: str
    config_path: Path
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # user -> (key_id, key)

    def server_config(self, **kw: Any) -> ServerConfig:
        return ServerConfig(
            store_url=self.store_url, config_file=load_config(self.config_path), **kw
        )


def make_env(tmp: Path, store_url: str | None = None) -> Env:
    """Users alice and carol (org acme; carol limited to service B), bob (org other), each
    with an API key; the config above."""
    cfg = tmp / "voxwire.toml"
    cfg.write_text(CONFIG)
    url = store_url or f"sqlite:///{tmp / 'state.db'}"
    env = Env(url, cfg)

    async def setup() -> None:
        store = open_store(url)
        await store.open()
        try:
            auth = Authenticator(store)
            for name, org, scopes in (
                ("alice", "acme", ()),
                ("bob", "other", ()),
                ("carol", "acme", (f"amigo:service:{SERVICE_B}",)),
            ):
                await auth.add_user(name, "pw-" + name, org=org, scopes=scopes)
                env.keys[name] = await auth.add_api_key(org=org, user=name, scopes=scopes)
        finally:
            await store.close()

    asyncio.run(setup())
    return env


class ServerThread:
    """``serve_websockets`` on a free port in a thread with its own event loop."""

    def __init__(self, config: ServerConfig, settings: AmigoSettings | None = None) -> None:
        self.config = config
        self.config.plugins = (AmigoPlugin(settings),)
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        self.server: Any = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = await serve_websockets(self.config, "127.0.0.1", 0)
            self.server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close()
            await server.wait_closed()
            await server.voxwire_platform.stop()

        try:
            asyncio.run(main())
        except BaseException as e:
            self.error = e
            self._ready.set()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def url(self, org: str = "acme", query: str = "response_format=text") -> str:
        return f"ws://127.0.0.1:{self.port}/v1/{org}/conversation/converse_realtime?{query}"


def sign_in(port: int, org: str, key_id: str, key: str, user: str) -> tuple[int, dict[str, Any]]:
    """``POST /v1/{org}/user/signin_with_api_key`` as the Amigo SDKs send it."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/{org}/user/signin_with_api_key",
        method="POST",
        data=b"",
        headers={"x-api-key": key, "x-api-key-id": key_id, "x-user-id": user},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def speech(name: str = "clean.wav", start_s: float = 0.0, end_s: float = 5.0) -> np.ndarray:
    """PCM16 16 kHz mono from vad-dev (clean.wav: speech 1.40-3.76 s, 4.70-6.20 s, ...)."""
    with wave.open(str(VAD_DEV / name)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x[int(start_s * 16000) : int(end_s * 16000)].copy()


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def chunks(pcm: np.ndarray, ms: int = 40, rate: int = 16000) -> Iterator[bytes]:
    step = rate * ms // 1000
    for k in range(0, len(pcm), step):
        yield pcm[k : k + step].tobytes()


_ = (contextlib, Agent, ASR, Store)


class Client:
    """A minimal async amigo client on the ``websockets`` library (for close-code tests)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.got: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, token: str | None) -> Client:
        from websockets.asyncio.client import connect

        protos = [PREFIX + token] if token is not None else None
        ws = await connect(url, subprotocols=protos, max_size=None)  # type: ignore[arg-type]
        return cls(ws)

    async def send(self, **msg: Any) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        m = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.got.append(m)
        return m  # type: ignore[no-any-return]

    async def until(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """Read until a message of type ``kind`` (returned); the rest land in ``got``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            m = await self.recv(max(0.1, end - loop.time()))
            if m["type"] == kind:
                return m

    async def closed(self, timeout: float = 30.0) -> tuple[int | None, str]:
        """Read until the server closes; its close code and reason."""
        from websockets.exceptions import ConnectionClosed

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            while True:
                await self.recv(max(0.1, end - loop.time()))
        except ConnectionClosed as e:
            rcvd = e.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.got if m["type"] == kind]


async def start(
    url: str, token: str, service: str = SERVICE, vset: str = "release"
) -> tuple[Client, str]:
    """Open, start a conversation, read through the greeting; the client and conversation id."""
    c = await Client.open(url, token)
    await c.send(
        type="client.start-conversation", service_id=service, service_version_set_name=vset
    )
    created = await c.until("server.conversation-created")
    await c.until("server.interaction-complete")
    return c, created["conversation_id"]


def token_of(port: int, env: Env, user: str = "alice", org: str = "acme") -> str:
    kid, key = env.keys[user]
    status, body = sign_in(port, org, kid, key, user)
    assert status == 200, body
    return str(body["id_token"])
