"""Handshake benchmark: WebSocket handshakes (admission, authentication against the store,
session start) at 50 concurrent clients against one ``voxwire serve`` process.

Each client opens a session with an API key that lives in the store (made with ``voxwire
keys add``), waits for ``session.created``, closes, and opens the next one on its own
schedule: ``--rate`` handshakes a second per client, started at random phases (an open loop,
as real arrivals are: 50 clients at 2 a second is 100 handshakes a second); ``--rate 0``
runs them back to back instead (a closed loop: the throughput ceiling, where latency is just
clients / throughput). The latency is from the TCP connect to ``session.created`` received.
Three series, each its own server: the key in a SQLite store, in a Redis store (a
redis-server on a free loopback port), and, for reference, a key given on the command line
(no store lookup).

Usage: python benches/handshake_bench.py [--clients 50] [--rate 2] [--seconds 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def server(*args: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxwire", "serve", "--port", str(port),
         "--max-connections-per-peer", "100000", "--max-handshakes-per-peer", "10000000",
         "--max-handshakes-per-principal", "10000000",
         *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1)
                break
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


def add_key(store: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "voxwire", "keys", "add", "--store", store],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return r.stdout.strip()


async def client(
    port: int, key: str, until: float, out: list[float], errors: list[str], rate: float = 0.0
) -> None:
    import random

    url = f"ws://{HOST}:{port}/v1/realtime"
    headers = {"Authorization": f"Bearer {key}"}
    period = 1.0 / rate if rate > 0 else 0.0
    next_at = time.perf_counter() + random.random() * period
    while time.perf_counter() < until:
        if period:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += period
        t0 = time.perf_counter()
        try:
            async with connect(url, additional_headers=headers, compression=None) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                out.append(time.perf_counter() - t0)
                if first.get("type") != "session.created":
                    errors.append(str(first.get("type")))
        except Exception as e:  # counted, not raised: a benchmark reports failures
            errors.append(type(e).__name__)
            await asyncio.sleep(0.01)


async def run(port: int, key: str, clients: int, seconds: float, rate: float) -> dict[str, Any]:
    # Warm up (first imports, the store's first statements).
    await client(port, key, time.perf_counter() + 0.5, [], [])
    lat: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(client(port, key, until, lat, errors, rate) for _ in range(clients)))
    ms = np.array(lat) * 1e3
    return {
        "handshakes": len(lat),
        "per_second": len(lat) / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "errors": len(errors),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--rate", type=float, default=2.0, help="handshakes per second per client (0: closed loop)"
    )
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    results: dict[str, Any] = {
        "clients": args.clients,
        "seconds": args.seconds,
        "rate_per_client": args.rate,
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'state.db'}"
        key = add_key(sqlite)
        with server("--store", sqlite) as port:
            results["sqlite"] = asyncio.run(run(port, key, args.clients, args.seconds, args.rate))
        with redis_server(Path(tmp)) as url:
            key = add_key(url)
            with server("--store", url) as port:
                results["redis"] = asyncio.run(
                    run(port, key, args.clients, args.seconds, args.rate)
                )
        static = "static-bench-key-0123456789"
        with server("--api-key", static, "--store", f"sqlite:///{Path(tmp) / 's2.db'}") as port:
            results["static_key"] = asyncio.run(
                run(port, static, args.clients, args.seconds, args.rate)
            )
    loop = f"{args.rate:g} a second each" if args.rate > 0 else "back to back"
    print(f"{args.clients} concurrent clients, handshakes {loop}, {args.seconds:g} s a series")
    print(f"{'key in':<12} {'handshakes/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("sqlite", "redis", "static_key"):
        r = results[name]
        print(
            f"{name:<12} {r['per_second']:>13.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['errors']:>7}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
