"""Handshake latency on the state store: SQLite and Redis, at 1 and at 50 concurrent clients.

A handshake's store work, as the server does it: look the API key up by hash, count the
principal's handshake against a sliding window, take the one-connection lease, create the
conversation. Each client runs handshakes back to back (the lease is released after each,
outside the timing, as a disconnect would). Prints p50/p99/max latency per handshake and the
rate, one row per backend and concurrency.

    python benches/store_bench.py [--clients 50] [--handshakes 40] [--redis-url URL]

Without --redis-url it starts its own redis-server on a free 127.0.0.1 port (the Redis rows
are skipped when the binary is missing). Redis's durability here is none (no save, no AOF),
SQLite's is WAL with synchronous=NORMAL: each as voxwire runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voxwire.store import ApiKeyRecord, ConversationRecord, Store, open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def key_hash(i: int) -> str:
    return hashlib.sha256(f"vw-bench-key-{i}".encode()).hexdigest()


async def handshake(store: Store, client: int, n: int) -> float:
    t0 = time.perf_counter()
    key = await store.get_api_key(key_hash(client))
    assert key is not None
    decision = await store.hit(f"hs:key:{key.key_id}", limit=1_000_000, window_s=60.0)
    assert decision.allowed
    holder = f"bench-{client}-{n}"
    assert await store.acquire_lease(f"conn:key:{key.key_id}", holder, 30.0)
    conv = ConversationRecord(
        id=f"conv_{uuid.uuid4().hex}", owner=f"key:{key.key_id}", dialect="amigo", agent_id="echo"
    )
    assert await store.create_conversation(conv)
    elapsed = time.perf_counter() - t0
    await store.release_lease(f"conn:key:{key.key_id}", holder)
    return elapsed


async def run(url: str, clients: int, handshakes: int) -> dict[str, float]:
    async with open_store(url) as store:
        for c in range(clients):
            await store.add_api_key(ApiKeyRecord(key_hash=key_hash(c), key_id=f"k{c}"))
        # Warm up: connections, scripts, page cache.
        await asyncio.gather(*(handshake(store, c, -1) for c in range(clients)))

        async def client(c: int) -> list[float]:
            return [await handshake(store, c, n) for n in range(handshakes)]

        t0 = time.perf_counter()
        per_client = await asyncio.gather(*(client(c) for c in range(clients)))
        wall = time.perf_counter() - t0
    lat = sorted(x for xs in per_client for x in xs)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": lat[-1] * 1000,
        "per_s": len(lat) / wall,
        "n": len(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--handshakes", type=int, default=40, help="per client")
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--backends", default="sqlite,redis")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as own_redis:
        redis_url = args.redis_url or own_redis
        backends = [("sqlite", f"sqlite://{tmp}/bench-{{c}}.db")]
        if redis_url:
            sep = "&" if "?" in redis_url else "?"
            backends.append(
                ("redis", f"{redis_url}{sep}prefix=bench-{uuid.uuid4().hex[:8]}-{{c}}:")
            )
        for name, template in backends:
            if name not in args.backends.split(","):
                continue
            for concurrency in sorted({1, args.clients}):
                url = template.format(c=concurrency)
                res = asyncio.run(run(url, concurrency, args.handshakes))
                rows.append({"backend": name, "clients": concurrency, **res})

    head = ("p50 ms", "p99 ms", "max ms", "hs/s")
    print(f"{'backend':8} {'clients':>7} {'n':>6} " + " ".join(f"{h:>8}" for h in head))
    for r in rows:
        print(
            f"{r['backend']:8} {r['clients']:>7} {r['n']:>6} {r['p50_ms']:>8.2f}"
            f" {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['per_s']:>8.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
