"""Load benchmark: N concurrent realtime voice clients against one ``voxwire serve`` process.

Each client streams 20 ms ``input_audio_buffer.append`` messages (24 kHz PCM16, base64) in
real time, on an absolute schedule (no drift) offset randomly within the first 20 ms, with
server VAD on: the bundled speech clip then 1.5 s of silence, repeated from a random phase, so
turns are detected and the echo agent streams answers back (and is barged in on by the next
turn). A reader task per client drains the server's events. For each N:

- server-side inbound latency p50/p99 (``/metrics``: a message's arrival in the session loop
  to its events queued), and, client-observed, the time from sending the chunk that ends a
  turn to receiving its ``input_audio_buffer.speech_stopped`` (wire + event loop + engine);
- server CPU (its own ``process_time``, via ``/metrics``) per session and per inbound message,
  messages out per message in, server RSS;
- dropped audio: the audio the clients sent against the server's ``audio_in_ms`` once the
  sessions have closed (must be equal), and ``error`` events received (must be zero);
- how late the clients' sends were against their schedule (the generator kept up or not).

The same N clients then send the same messages at the same rate to a bare ``websockets``
echo server (``benches/echo_server.py``, its own process): the ceiling for a Python WebSocket
layer; the ratio of server CPU per inbound message is reported (voxwire also sends response
events, and the echo server sends one message per message: see the out/in column). Memory per
idle session: RSS growth of a fresh server over M idle connections, for both servers.

Server, echo server and this load generator are three processes sharing the machine's cores.

Usage: python benches/load.py [--quick] [--max-n N] [--seconds S] [--plot docs/load.png]
                              [--json PATH]
Needs: pip install -e . (and matplotlib for --plot)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxwire import clips

HERE = Path(__file__).resolve().parent
CHUNK_S = 0.020
RATE = 24000
SILENCE_S = 1.5
HOST = "127.0.0.1"
#: The N steps of a full run (cut at --max-n); see the README for what a 2-core VM sustains.
STEPS = (1, 5, 10, 25, 50, 75, 100, 150, 200)
DEFAULT_MAX_N = 50


# --------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_json(url: str, method: str = "GET") -> Any:
    """GET (or POST) ``url`` and decode its JSON answer."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` from ``/proc/<pid>/stat`` (10 ms ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have been busy since boot (``/proc/stat``, steal included)."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server under test, in its own process."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    ws_url: str

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    @property
    def has_metrics(self) -> bool:
        """Whether it serves voxwire's ``/metrics`` (both drivers do)."""
        return self.name.startswith("voxwire")

    @property
    def greets(self) -> bool:
        """Whether a connection starts with ``session.created``."""
        return self.name != "echo"

    def cpu(self) -> float:
        """Its CPU seconds so far: its own ``time.process_time``, which voxwire tells at
        ``/metrics`` and the echo server at ``/cpu``."""
        base = f"http://{HOST}:{self.port}"
        if self.has_metrics:
            m = http_json(f"{base}/metrics.json")
            # cpu_seconds counts from the last reset; cpu_at_reset is not exposed, so the
            # benchmark never resets between two reads it subtracts (see run_step).
            return float(m["cpu_seconds"])
        with urllib.request.urlopen(f"{base}/cpu", timeout=10) as r:
            return float(r.read())


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    for _ in range(300):  # up to 30 s (a busy 2-core machine imports slowly)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def voxwire_server(logdir: Path, vad: str, driver: str = "websockets") -> Iterator[Server]:
    """``python -m voxwire serve`` on a free loopback port (logs to a file, not a pipe).

    ``driver``: ``websockets`` (the default of ``voxwire serve``: the same WebSocket layer as
    the echo server) or ``asgi`` (``--driver asgi``: the Starlette app on uvicorn).
    """
    port = free_port()
    log = logdir / f"voxwire-{driver}-{port}.log"
    cmd = [sys.executable, "-m", "voxwire", "serve", "--port", str(port), "--vad", vad]
    # Every client comes from 127.0.0.1: lift the per-address limits.
    cmd += ["--max-connections-per-peer", "100000", "--max-handshakes-per-peer", "100000"]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [*cmd, "--driver", driver],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(proc, f"http://{HOST}:{port}/healthz", log)
        name = "voxwire" if driver == "websockets" else "voxwire-asgi"
        yield Server(name, proc, port, f"ws://{HOST}:{port}/v1/realtime")
    finally:
        _stop(proc)


@contextlib.contextmanager
def echo_server(logdir: Path) -> Iterator[Server]:
    """``benches/echo_server.py`` on a free loopback port."""
    port = free_port()
    log = logdir / f"echo-{port}.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "echo_server.py"), "--port", str(port)],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(proc, f"http://{HOST}:{port}/healthz", log)
        yield Server("echo", proc, port, f"ws://{HOST}:{port}/")
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------
# Clients


def append_messages() -> list[str]:
    """One cycle of the stream: the speech clip then 1.5 s of silence, as append messages."""
    pcm, rate = clips.hello()
    assert rate == RATE, rate
    n = int(RATE * CHUNK_S)
    x = np.concatenate((pcm, np.zeros(int(RATE * SILENCE_S), np.int16)))
    x = np.concatenate((x, np.zeros(-len(x) % n, np.int16)))
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(x[k : k + n].astype("<i2").tobytes()).decode(),
            },
            separators=(",", ":"),
        )
        for k in range(0, len(x), n)
    ]


@dataclass
class Client:
    """One connection and what its reader and writer saw."""

    ws: ClientConnection
    send_times: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    received: int = 0
    errors: int = 0
    turn_latency: list[float] = field(default_factory=list)
    failed: str | None = None


_ERROR = '{"type":"error"'
_STOPPED = '{"type":"input_audio_buffer.speech_stopped"'


async def read_events(c: Client) -> None:
    """Drain the server's messages; count errors, time the turn ends."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionClosed):
        async for m in c.ws:
            c.received += 1
            if not isinstance(m, str):
                continue
            if m.startswith(_ERROR):
                c.errors += 1
            elif m.startswith(_STOPPED):
                # audio_end_ms is where the turn ended on this session's input timeline:
                # the chunk holding that instant is the one that ended the turn.
                end_ms = int(json.loads(m)["audio_end_ms"])
                k = end_ms // round(CHUNK_S * 1000)
                if 0 <= k < len(c.send_times):
                    c.turn_latency.append(loop.time() - c.send_times[k])


async def stream(c: Client, msgs: Sequence[str], phase: int, start: float, chunks: int) -> None:
    """Send ``chunks`` messages, the k-th at ``start + k * 20 ms`` (absolute schedule)."""
    loop = asyncio.get_running_loop()
    try:
        for k in range(chunks):
            due = start + k * CHUNK_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            c.lateness.append(now - due)
            c.send_times.append(now)
            await c.ws.send(msgs[(phase + k) % len(msgs)])
    except ConnectionClosed as e:
        c.failed = f"closed after {len(c.send_times)} sends: {e}"


async def open_clients(url: str, n: int, greeting: bool) -> list[Client]:
    """``n`` connections (and their ``session.created``, when the server sends one)."""

    async def one() -> Client:
        ws = await connect(url, compression=None, max_size=1 << 22, open_timeout=30)
        if greeting:
            first = await asyncio.wait_for(ws.recv(), 30)
            assert isinstance(first, str) and '"session.created"' in first, first[:200]
        return Client(ws)

    out: list[Client] = []
    for k in range(0, n, 25):  # in batches: a burst of handshakes is not what we measure
        out += await asyncio.gather(*(one() for _ in range(min(25, n - k))))
    return out


async def close_clients(clients: Sequence[Client]) -> None:
    """Close every connection (bounded wait)."""
    await asyncio.gather(
        *(asyncio.wait_for(c.ws.close(), 15) for c in clients), return_exceptions=True
    )


def pct(xs: Sequence[float], q: float) -> float:
    """The ``q`` (0-100) percentile of ``xs`` (NaN when empty)."""
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


# --------------------------------------------------------------------------------------
# Steps


async def _wait_sessions(server: Server, want: int) -> dict[str, Any]:
    m: dict[str, Any] = {}
    for _ in range(150):  # up to 15 s
        m = await asyncio.to_thread(http_json, f"http://{HOST}:{server.port}/metrics.json")
        if m["sessions"] == want:
            return m
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name}: {m.get('sessions')} sessions, expected {want}")


async def run_step(
    server: Server, n: int, seconds: float, msgs: Sequence[str], rng: random.Random
) -> dict[str, Any]:
    """N clients streaming for ``seconds`` against ``server``; its measurements."""
    is_vox = server.has_metrics
    base = f"http://{HOST}:{server.port}"
    clients = await open_clients(server.ws_url, n, greeting=server.greets)
    readers = [asyncio.create_task(read_events(c)) for c in clients]
    try:
        if is_vox:
            await _wait_sessions(server, n)
            await asyncio.to_thread(http_json, f"{base}/metrics.json?reset=1")
        await asyncio.sleep(0.2)
        chunks = round(seconds / CHUNK_S)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1
        cpu0, ticks0 = await asyncio.to_thread(server.cpu), proc_cpu_seconds(server.pid)
        gen0, wall0, busy0 = time.process_time(), time.monotonic(), machine_busy_seconds()
        await asyncio.gather(
            *(
                stream(c, msgs, rng.randrange(len(msgs)), start + rng.uniform(0, CHUNK_S), chunks)
                for c in clients
            )
        )
        wall = time.monotonic() - wall0
        gen_cpu = time.process_time() - gen0
        busy = machine_busy_seconds() - busy0
        cpu1, ticks1 = await asyncio.to_thread(server.cpu), proc_cpu_seconds(server.pid)
        rss = rss_bytes(server.pid)
        snap = await asyncio.to_thread(http_json, f"{base}/metrics.json") if is_vox else None
    finally:
        await close_clients(clients)
        await asyncio.gather(*readers, return_exceptions=True)
    sent = sum(len(c.send_times) for c in clients)
    received = sum(c.received for c in clients)
    late = [x for c in clients for x in c.lateness]
    cpu = cpu1 - cpu0
    res: dict[str, Any] = {
        "n": n,
        "seconds": wall,
        "messages_sent": sent,
        "messages_received": received,
        "server_cpu_s": cpu,
        "server_cpu_s_proc_stat": ticks1 - ticks0,
        "server_cpu_pct": 100 * cpu / wall,
        "cpu_per_session_pct": 100 * cpu / wall / n,
        "cpu_per_message_us": 1e6 * cpu / max(sent, 1),
        "server_rss_mb": rss / 2**20,
        "generator_cpu_pct": 100 * gen_cpu / wall,
        # Everything else the machine ran meanwhile (other users; the idle servers), in % of
        # one core: the CPU our three processes competed with.
        "others_cpu_pct": 100 * max(0.0, busy - cpu - gen_cpu) / wall,
        "send_late_ms": {
            "p50": 1e3 * pct(late, 50),
            "p99": 1e3 * pct(late, 99),
            "max": 1e3 * max(late, default=float("nan")),
        },
        "client_failures": [c.failed for c in clients if c.failed],
        "errors": sum(c.errors for c in clients),
    }
    if is_vox:
        assert snap is not None
        done = await _wait_sessions(server, 0)  # audio_in_ms counts finished sessions
        lat = snap["inbound_latency_us"]
        turns = [x for c in clients for x in c.turn_latency]
        res.update(
            messages_in=snap["messages_in"],
            messages_out=snap["messages_out"],
            out_per_in=snap["messages_out"] / max(snap["messages_in"], 1),
            inbound_latency_us=lat,
            turn_end_latency_ms={
                "n": len(turns),
                "p50": 1e3 * pct(turns, 50),
                "p99": 1e3 * pct(turns, 99),
            },
            audio_sent_ms=round(sent * CHUNK_S * 1000),
            audio_in_ms=done["audio_in_ms"],
        )
        res["audio_dropped"] = res["audio_in_ms"] != res["audio_sent_ms"] or res["errors"] > 0
    else:
        res["out_per_in"] = received / max(sent, 1)
    return res


async def idle_memory(server: Server, m: int) -> dict[str, Any]:
    """RSS growth of ``server`` over ``m`` idle connections, per connection."""
    greet = server.greets
    warm = await open_clients(server.ws_url, 5, greeting=greet)  # imports, first allocations
    await close_clients(warm)
    await asyncio.sleep(0.5)
    before = rss_bytes(server.pid)
    clients = await open_clients(server.ws_url, m, greeting=greet)
    try:
        await asyncio.sleep(1.0)
        after = rss_bytes(server.pid)
    finally:
        await close_clients(clients)
    return {
        "connections": m,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "per_session_kb": (after - before) / m / 1024,
    }


# --------------------------------------------------------------------------------------
# Report


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    head = (
        "| N | inbound p50 / p99 (ms) | turn end p50 / p99 (ms) | server CPU | CPU / session "
        "| CPU / msg (us) | echo CPU / msg (us) | ratio | ASGI driver CPU / msg (us), ratio "
        "| out/in | RSS (MB) | audio dropped | send late p99 (ms) | generator / others CPU |"
    )
    lines = [head, "|" + "---|" * (head.count(" | ") + 1)]
    for r in rows:
        v, e, w = r["voxwire"], r["echo"], r.get("voxwire_asgi")
        lat, te = v["inbound_latency_us"], v["turn_end_latency_ms"]
        dropped = "yes" if v["audio_dropped"] else "no"
        if v["audio_dropped"]:
            dropped += f" ({v['audio_in_ms']}/{v['audio_sent_ms']} ms, {v['errors']} errors)"
        ws = f"{w['cpu_per_message_us']:.0f}, {r['ratio_asgi']:.2f}x" if w else "-"
        late = v["send_late_ms"]["p99"]  # of the voxwire serve step (all steps: the JSON)
        lines.append(
            f"| {r['n']} | {lat['p50'] / 1e3:.2f} / {lat['p99'] / 1e3:.2f} "
            f"| {te['p50']:.1f} / {te['p99']:.1f} | {v['server_cpu_pct']:.1f}% "
            f"| {v['cpu_per_session_pct']:.2f}% | {v['cpu_per_message_us']:.0f} "
            f"| {e['cpu_per_message_us']:.0f} | {r['ratio']:.2f}x | {ws} "
            f"| {v['out_per_in']:.2f} | {v['server_rss_mb']:.0f} | {dropped} | {late:.1f} "
            f"| {v['generator_cpu_pct']:.0f}% / {v['others_cpu_pct']:.0f}% |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Three panels against N: inbound latency; CPU per message (voxwire and the bare echo
    server); CPU per session (and the server's total)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    v = [r["voxwire"] for r in rows]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.6))
    a.plot(ns, [x["inbound_latency_us"]["p50"] / 1e3 for x in v], "o-", label="server p50")
    a.plot(ns, [x["inbound_latency_us"]["p99"] / 1e3 for x in v], "s-", label="server p99")
    a.plot(
        ns,
        [x["turn_end_latency_ms"]["p99"] for x in v],
        "^--",
        label="turn end p99, client-observed",
    )
    a.axhline(20, color="grey", ls=":", label="p99 target (20 ms)")
    a.set(xscale="log", yscale="log", xlabel="concurrent sessions N", ylabel="latency (ms)")
    a.set_title("inbound processing latency")
    a.legend(fontsize=8)
    b.plot(ns, [x["cpu_per_message_us"] for x in v], "o-", label="voxwire serve")
    if all("voxwire_asgi" in r for r in rows):
        b.plot(
            ns,
            [r["voxwire_asgi"]["cpu_per_message_us"] for r in rows],
            "v-.",
            label="voxwire serve --driver asgi (Starlette on uvicorn)",
        )
    b.plot(ns, [r["echo"]["cpu_per_message_us"] for r in rows], "s--", label="bare websockets echo")
    b.set(
        xscale="log", xlabel="concurrent sessions N", ylabel="server CPU per inbound message (us)"
    )
    b.set_ylim(bottom=0)
    b.set_title("server CPU per message")
    b.legend(fontsize=8)
    c.plot(ns, [x["cpu_per_session_pct"] for x in v], "d-", color="C3", label="per session")
    c.set(xscale="log", xlabel="concurrent sessions N", ylabel="% of one core")
    c.set_ylim(bottom=0)
    c2 = c.twinx()
    c2.plot(ns, [x["server_cpu_pct"] for x in v], "o:", color="C4", label="server total (right)")
    c2.set_ylabel("server total, % of one core")
    c2.set_ylim(bottom=0)
    h1, l1 = c.get_legend_handles_labels()
    h2, l2 = c2.get_legend_handles_labels()
    c.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center")
    c.set_title("voxwire serve CPU per session")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark."""
    msgs = append_messages()
    rng = random.Random(args.seed)
    steps = [n for n in (STEPS if not args.quick else (1, 5)) if n <= args.max_n]
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "seconds": args.seconds,
        "vad": args.vad,
        "steps": [],
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        vox = stack.enter_context(voxwire_server(tmp, args.vad))
        echo = stack.enter_context(echo_server(tmp))
        wsd = None if args.no_asgi else stack.enter_context(voxwire_server(tmp, args.vad, "asgi"))
        out["idle_memory"] = {
            "voxwire": await idle_memory(vox, args.idle),
            "echo": await idle_memory(echo, args.idle),
        }
        im = out["idle_memory"]
        print(
            f"idle memory, {args.idle} connections: voxwire "
            f"{im['voxwire']['per_session_kb']:.0f} KiB/session, bare websockets "
            f"{im['echo']['per_session_kb']:.0f} KiB/connection",
            flush=True,
        )
        for n in steps:
            v = await run_step(vox, n, args.seconds, msgs, rng)
            e = await run_step(echo, n, args.seconds, msgs, rng)
            row: dict[str, Any] = {"n": n, "voxwire": v, "echo": e}
            row["ratio"] = v["cpu_per_message_us"] / max(e["cpu_per_message_us"], 1e-9)
            if wsd is not None:
                w = await run_step(wsd, n, args.seconds, msgs, rng)
                row["voxwire_asgi"] = w
                row["ratio_asgi"] = w["cpu_per_message_us"] / max(e["cpu_per_message_us"], 1e-9)
            out["steps"].append(row)
            lat = v["inbound_latency_us"]
            ws = f", asgi driver {row['ratio_asgi']:.2f}x" if wsd is not None else ""
            print(
                f"N={n}: inbound p50 {lat['p50'] / 1e3:.2f} ms p99 {lat['p99'] / 1e3:.2f} ms, "
                f"CPU {v['server_cpu_pct']:.1f}% ({v['cpu_per_message_us']:.0f} us/msg; "
                f"echo {e['cpu_per_message_us']:.0f}: {row['ratio']:.2f}x{ws}), "
                f"dropped {'YES' if v['audio_dropped'] else 'no'}, "
                f"send late p99 {v['send_late_ms']['p99']:.1f} ms, "
                f"generator CPU {v['generator_cpu_pct']:.0f}%, "
                f"others {v['others_cpu_pct']:.0f}% (of one core)",
                flush=True,
            )
    out["machine"]["loadavg_end"] = os.getloadavg()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 1, 5 for 3 s each (CI smoke)")
    p.add_argument("--max-n", type=int, default=DEFAULT_MAX_N, help="largest N")
    p.add_argument("--seconds", type=float, default=None, help="seconds per step (10; quick 3)")
    p.add_argument("--idle", type=int, default=None, help="idle connections (200; quick 20)")
    p.add_argument("--vad", default="spectral", help="server VAD engine")
    p.add_argument(
        "--no-asgi",
        action="store_true",
        help="skip the third series (voxwire serve --driver asgi)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (phases, offsets)")
    p.add_argument("--plot", metavar="PNG", help="write the latency and CPU plot")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="no run: print (and --plot) the results of an earlier one",
    )
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    if args.idle is None:
        args.idle = 20 if args.quick else 200
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        args.seconds = res["seconds"]
    else:
        res = asyncio.run(run(args))
    rows = res["steps"]
    print()
    print(table(rows))
    broken: list[str] = []
    if rows:
        last = rows[-1]
        v = last["voxwire"]
        p99_ok = v["inbound_latency_us"]["p99"] < 20_000
        ratio_ok = all(r["ratio"] <= 1.5 for r in rows)
        for r in rows:
            for key in ("voxwire", "echo", "voxwire_asgi"):
                x = r.get(key)
                if x and (x.get("audio_dropped") or x["errors"] or x["client_failures"]):
                    broken.append(f"{key} N={r['n']}: dropped audio, errors or failed clients")
        print(
            f"\ntargets (timing, informative): p99 inbound < 20 ms at N={last['n']}: "
            f"{'met' if p99_ok else 'MISSED'}; CPU/msg <= 1.5x echo at every N: "
            f"{'met' if ratio_ok else 'MISSED'} (max {max(r['ratio'] for r in rows):.2f}x)\n"
            f"correctness (exit status): {'; '.join(broken) or 'no audio dropped, no errors'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.plot and rows:
        cpus = res["machine"]["cpus"]
        others = np.mean([r["voxwire"]["others_cpu_pct"] for r in rows])
        plot(
            rows,
            args.plot,
            f"voxwire serve (uvicorn + websockets) on {cpus} CPUs shared with the load generator "
            f"and other users (others' mean CPU during the steps: {others:.0f}% of one core); "
            f"{args.seconds:g} s per step",
        )
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
