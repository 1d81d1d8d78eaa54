"""The platform behind `voxwire serve` (issue 18): state in the store, on SQLite and Redis.

Real servers, a real redis-server, the official openai SDK, on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from voxwire.demo import spawn_server

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow, pytest.mark.network]


def add_key(store: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "voxwire", "keys", "add", "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return r.stdout.strip()


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def text_turn(port: int, key: str, text: str) -> str:
    client = OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1")
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        )
        conn.response.create()
        for _ in range(500):
            e = conn.recv()
            if e.type == "response.done":
                out = e.response.output[0]
                return str(out.content[0].text)  # type: ignore[union-attr]
    raise AssertionError("no response.done")


def refused(port: int, key: str) -> int:
    with pytest.raises(InvalidStatus) as e:
        ws_connect(
            f"ws://127.0.0.1:{port}/v1/realtime",
            additional_headers={"Authorization": f"Bearer {key}"},
            open_timeout=10,
        )
    return int(e.value.response.status_code)


def test_stored_keys_are_required_and_survive_a_restart(tmp_path: Path) -> None:
    """A key made with `voxwire keys add` is accepted; a server with stored keys asks for one
    (no --api-key given); after a restart on the same SQLite file it still works."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    key = add_key(store)
    assert key.startswith("sk-") or len(key) >= 20
    db = (tmp_path / "state.db").read_bytes()
    assert key.encode() not in db  # stored hashed
    for _ in range(2):  # the second time is a restart
        with spawn_server("--store", store) as (port, _):
            assert text_turn(port, key, "stored key") == "stored key"
            assert refused(port, "not-a-key") == 401
            assert get(port, "/readyz") == (200, {"status": "ready", "store": True})


@contextlib.contextmanager
def open_session(port: int, key: str) -> Iterator[Any]:
    with ws_connect(
        f"ws://127.0.0.1:{port}/v1/realtime",
        additional_headers={"Authorization": f"Bearer {key}"},
        open_timeout=10,
    ) as ws:
        assert json.loads(ws.recv(10))["type"] == "session.created"
        yield ws


def ws_text_turn(ws: Any, text: str) -> str:
    ws.send(
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
    )
    ws.send(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}}))
    for _ in range(500):
        m = json.loads(ws.recv(10))
        if m["type"] == "response.done":
            return str(m["response"]["output"][0]["content"][0]["text"])
    raise AssertionError("no response.done")


def test_redis_restart_mid_run(redis_server_factory: Any) -> None:
    """Redis goes away: open sessions go on, new handshakes get 503 and /readyz says so;
    once Redis is back (same port, empty: the key is added again), handshakes work again."""
    redis = redis_server_factory()
    redis.start()
    store = redis.url
    key = add_key(store)
    with spawn_server("--store", store) as (port, _), open_session(port, key) as ws:
        assert ws_text_turn(ws, "before") == "before"
        redis.kill()
        assert ws_text_turn(ws, "during") == "during"  # the audio/text path never needs Redis
        assert refused(port, key) == 503
        assert get(port, "/readyz")[0] == 503
        redis.start()
        key2 = add_key(store)  # the restarted Redis kept nothing (no persistence)
        deadline = time.monotonic() + 20
        while get(port, "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get(port, "/readyz") == (200, {"status": "ready", "store": True})
        with open_session(port, key2) as ws2:
            assert ws_text_turn(ws2, "after") == "after"
        assert ws_text_turn(ws, "still") == "still"


def test_workers_share_one_port_and_one_store(tmp_path: Path) -> None:
    """`--workers 2`: two processes answer on one port (SO_REUSEPORT), both accept a key from
    the shared SQLite store; a worker killed with SIGKILL is restarted; SIGTERM to the
    supervisor stops them all."""
    import os
    import signal

    store = f"sqlite:///{tmp_path / 'state.db'}"
    key = add_key(store)
    with spawn_server("--workers", "2", "--store", store) as (port, proc):
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.add(get(port, "/healthz")[1]["pid"])
        assert len(pids) == 2, pids
        for _ in range(4):
            assert text_turn(port, key, "worker") == "worker"
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                seen.add(get(port, "/healthz")[1]["pid"])
            if len(seen - {victim}) == 2:
                break
            time.sleep(0.05)
        assert victim not in seen
        assert len(seen) == 2  # the survivor and the replacement
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def post(port: int, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method="POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            json.load(r)
            return int(r.status)
    except urllib.error.HTTPError as e:
        json.load(e)
        return int(e.code)


@pytest.mark.parametrize("driver", ["websockets", "asgi"])
def test_rest_posts_on_one_port_with_websockets(driver: str, tmp_path: Path) -> None:
    """REST requests with bodies are served on the same port as the WebSockets, by both
    drivers (the websockets library parses GET only: voxwire reads the others with h11)."""
    import socket

    key = "rest-key-123"
    with spawn_server("--driver", driver, "--api-key", key) as (port, _):
        auth = {"Authorization": f"Bearer {key}"}
        assert post(port, "/metrics/reset", b"{}", auth) == 200
        assert post(port, "/metrics/reset", b"{}") == 401
        assert post(port, "/healthz", b"{}") == 405
        assert post(port, "/no/such/route", b"{}") == 404
        assert post(port, "/metrics/reset", b"x" * (100 * 1024), auth) == 413
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /metrics/reset HTTP/1.1\r\nthis is not a header\r\n\r\n")
            assert s.recv(100).split(b" ")[1] == b"400"
        assert text_turn(port, key, "rest and ws") == "rest and ws"


def test_per_credential_handshake_limit_holds_across_processes(tmp_path: Path) -> None:
    """Two server processes share one SQLite store: a credential's handshakes are counted
    across both, and the sixth within the minute is refused with 429 by either."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    key = add_key(store)
    limit = ("--store", store, "--max-handshakes-per-principal", "5")
    with spawn_server(*limit) as (port_a, _), spawn_server(*limit) as (port_b, _):
        for port in (port_a, port_b, port_a, port_b, port_a):
            with open_session(port, key):
                pass
        assert refused(port_b, key) == 429
        assert refused(port_a, key) == 429
        # Another credential is not affected.
        other = add_key(store)
        with open_session(port_b, other):
            pass


def test_access_log_one_line_per_connection_and_rest_call_without_secrets() -> None:
    key = "very-secret-key-42"
    with spawn_server("--api-key", key, "--log-format", "json") as (port, proc):
        with open_session(port, key) as ws:
            assert ws_text_turn(ws, "logged") == "logged"
        get(port, "/healthz")
        get(port, f"/v1/models?api_key={key}")
        time.sleep(0.5)
    lines = [json.loads(x) for x in proc.stderr.read().decode().splitlines() if x.startswith("{")]
    acc = [x for x in lines if x["logger"] == "voxwire.access"]
    ws_lines = [x for x in acc if "dialect" in x]
    assert len(ws_lines) == 1
    w = ws_lines[0]
    assert (w["dialect"], w["path"], w["close_code"]) == ("openai", "/v1/realtime", 1000)
    assert w["principal"].startswith("key:cfg-")
    assert w["messages_in"] == 2 and w["messages_out"] > 5
    rest = [x for x in acc if x.get("method") == "GET"]
    assert {(x["path"], x["status"]) for x in rest} >= {("/healthz", 200), ("/v1/models", 200)}
    assert key not in proc.stderr.read().decode()
