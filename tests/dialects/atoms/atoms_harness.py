"""A real voxwire server for the atoms tests, and a client that does what the seed's Python
guide does (register-call with the API key, then the WebSocket with ``?token=wct_...``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt
from loop_server import LoopServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import voxwire
from voxwire.agents import Agent
from voxwire.asr import ASR
from voxwire.client import read_wav
from voxwire.config import load_config
from voxwire.dialects.atoms import AtomsPlugin
from voxwire.platform import ServerConfig
from voxwire.store import SQLiteStore

KEY = "sk_test_0123456789"
AGENT = "65f1c0de00000000000000aa"
GREETING = "Hello {user_name}, this is {company}. How can I help you today?"
LONG_GREETING = (
    "Welcome to the Example Clinic front desk. Our opening hours are from eight in the "
    "morning to six in the evening, Monday to Friday, and from nine to one on Saturdays. "
    "You can book, move or cancel an appointment, ask about your bill, or leave a message "
    "for your doctor. Please tell me what you would like to do today."
)
CONFIG = f"""
[[agents]]
id = "{AGENT}"
name = "Receptionist"
greeting = "{GREETING}"
instructions = "You are the receptionist of {{company}}."
[agents.variables]
company = "Example Clinic"
user_name = "there"

[[agents]]
id = "long"
name = "Long greeting"
greeting = "{LONG_GREETING}"

[[agents]]
id = "zone"
name = "Reserved variables"
greeting = "Your zone is {{timezone}} and you are {{user_name}}."

[[agents]]
id = "silent"
name = "No greeting"

[[agents]]
id = "tooled"
name = "With a tool of its own"
tools = [{{ name = "lookup_order", description = "Find an order." }}]
"""

# ../shared beside the repository (where CI lays it), else this machine's copy.
VAD_DEV = Path(__file__).resolve().parents[4] / "shared" / "data" / "vad-dev"
if not VAD_DEV.exists():
    VAD_DEV = Path("/work/shared/data/vad-dev")


def speech(rate: int = 24000) -> npt.NDArray[np.int16]:
    """The first utterance of vad-dev's clean.wav (1.4-3.76 s) with the pause after it."""
    pcm, r = read_wav(str(VAD_DEV / "clean.wav"))
    clip = pcm[int(0.9 * r) : int(4.6 * r)]
    return voxwire.resample(clip, r, rate) if r != rate else clip  # type: ignore[no-any-return]


def blocks(pcm: npt.NDArray[np.int16], rate: int, ms: int = 40) -> Iterator[str]:
    """``input_audio_buffer.append`` messages of ``ms`` each (the guide's 40 ms blocks)."""
    step = rate * ms // 1000
    for k in range(0, len(pcm), step):
        b64 = base64.b64encode(pcm[k : k + step].astype("<i2").tobytes()).decode("ascii")
        yield json.dumps({"type": "input_audio_buffer.append", "audio": b64})


class Server(LoopServer):
    """An in-process server on its own event loop thread."""

    def __init__(
        self,
        tmp: Path,
        *,
        plugin: AtomsPlugin | None = None,
        agent: Agent | str = "echo",
        asr: ASR | None = None,
        partial_asr: ASR | None = None,
        store_path: Path | None = None,
    ) -> None:
        cfg_path = tmp / "voxwire.toml"
        cfg_path.write_text(CONFIG)
        self.plugin = plugin or AtomsPlugin()
        self.config = ServerConfig(
            api_keys=frozenset({KEY}),
            agent=agent,
            asr=asr,
            partial_asr=partial_asr,
            plugins=(self.plugin,),
            store=SQLiteStore(store_path or tmp / "store.db"),
            config_file=load_config(cfg_path),
        )
        super().__init__(self.config)


@contextlib.contextmanager
def running(tmp: Path, **kw: Any) -> Iterator[Server]:
    """A :class:`Server`, closed afterwards."""
    s = Server(tmp, **kw)
    try:
        yield s
    finally:
        s.close()


def http(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """A REST call: status and JSON body (error statuses too)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def register_call(port: int, agent_id: str = AGENT, **body: Any) -> dict[str, Any]:
    """``POST /register-call`` as the guide does it; the ``data`` object."""
    status, got = http(
        port, "POST", "/atoms/v1/conversation/register-call", {"agent_id": agent_id, **body}
    )
    assert status == 201, got
    data: dict[str, Any] = got["data"]
    return data


def connect_url(port: int, token: str, agent_id: str = AGENT, mode: str = "webcall") -> str:
    """The guide's URL: ``agent_id``, ``token``, ``mode`` and ``sample_rate`` in the query."""
    q = urlencode({"agent_id": agent_id, "token": token, "mode": mode, "sample_rate": 24000})
    return f"ws://127.0.0.1:{port}/atoms/v1/agent/connect?{q}"


async def recv(ws: ClientConnection, timeout: float = 30.0) -> dict[str, Any]:
    """The next event."""
    m: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return m


async def until(
    ws: ClientConnection, kind: str, got: list[dict[str, Any]], limit: int = 5000
) -> dict[str, Any]:
    """Read events into ``got`` until one of type ``kind`` (returned)."""
    for _ in range(limit):
        m = await recv(ws)
        got.append(m)
        if m["type"] == kind:
            return m
    raise AssertionError(f"no {kind} in {limit} events")


async def drain(ws: ClientConnection, got: list[dict[str, Any]]) -> int | None:
    """Read until the server closes; the close code."""
    try:
        for _ in range(100_000):
            got.append(await recv(ws))
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None
    raise AssertionError("the server did not close")


def types(events: list[dict[str, Any]]) -> list[str]:
    """The event types, in order."""
    return [e["type"] for e in events]


def audio_of(events: list[dict[str, Any]]) -> npt.NDArray[np.int16]:
    """The decoded ``output_audio.delta`` audio (PCM16 LE)."""
    parts = [base64.b64decode(e["audio"]) for e in events if e["type"] == "output_audio.delta"]
    for p in parts:
        assert len(p) % 2 == 0
    return np.frombuffer(b"".join(parts), dtype="<i2").astype(np.int16)


def cumulative(texts: list[str]) -> bool:
    """Each text extends the one before (replace, not append)."""
    return all(b.startswith(a) for a, b in itertools.pairwise(texts))


__all__ = ["connect"]
