"""``voxwire serve --workers N``: N server processes on one port.

Each worker is an ordinary ``voxwire serve`` process that binds the port with
``SO_REUSEPORT``, so the kernel spreads new connections over them (Linux, the BSDs, macOS).
The supervisor (the process you started) reserves the port first (so ``--port 0`` works:
the workers learn the port it picked), starts the workers, restarts one that dies (at most
``MAX_RESTARTS`` in a minute, then it gives up and stops the rest), and passes SIGTERM and
SIGINT on, waiting for the workers' graceful shutdown (close code 1012).

State that must hold across workers lives in the store: a SQLite file on one machine, Redis
across machines (``--store``). The audio path never touches it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence

#: Worker restarts allowed per minute before the supervisor gives up.
MAX_RESTARTS = 10


def reuse_port_supported() -> bool:
    """Whether this platform has ``SO_REUSEPORT``."""
    return hasattr(socket, "SO_REUSEPORT")


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with SO_REUSEPORT.

    It holds the port for the workers, which bind it too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    return s


def strip_workers(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--workers N`` / ``--workers=N`` and ``--port``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--workers", "--port"):
            skip = True
            continue
        if a.startswith(("--workers=", "--port=")):
            continue
        out.append(a)
    return out


def supervise(argv: Sequence[str], *, host: str, port: int, workers: int) -> int:
    """Run ``workers`` copies of ``voxwire serve`` (``argv`` after ``serve``) on one port."""
    if not reuse_port_supported():
        print("voxwire serve: --workers needs SO_REUSEPORT, which this OS lacks", file=sys.stderr)
        return 2
    try:
        holder = reserve_port(host, port)
    except OSError as e:
        print(f"voxwire serve: cannot bind {host}:{port}: {e.strerror}", file=sys.stderr)
        return 2
    port = holder.getsockname()[1]
    base = [sys.executable, "-m", "voxwire", "serve", *strip_workers(argv)]
    base += ["--port", str(port), "--reuse-port"]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False
    restarts: deque[float] = deque()

    def start(k: int) -> None:
        env = {**os.environ, "VOXWIRE_WORKER": str(k)}
        procs[k] = subprocess.Popen(base, env=env)

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for k in range(workers):
        start(k)
    print(f"voxwire: {workers} workers on {host}:{port}", flush=True)
    code = 0
    try:
        while True:
            time.sleep(0.2)
            alive = {k: p for k, p in procs.items() if p.poll() is None}
            if stopping:
                if not alive:
                    break
                continue
            for k, p in procs.items():
                if k in alive:
                    continue
                now = time.monotonic()
                while restarts and now - restarts[0] > 60:
                    restarts.popleft()
                if len(restarts) >= MAX_RESTARTS:
                    print(
                        f"voxwire serve: workers died {MAX_RESTARTS} times in a minute; stopping",
                        file=sys.stderr,
                    )
                    code = 1
                    stop(signal.SIGTERM, None)
                    break
                restarts.append(now)
                print(f"voxwire: worker {k} exited ({p.returncode}); restarting", file=sys.stderr)
                start(k)
    finally:
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        holder.close()
    return code
