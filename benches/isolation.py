"""Isolation benchmark: do other sessions stall while one session transcribes or synthesizes?

A real server (``voxwire serve --asr pocketsphinx``: PocketSphinx in a worker process) with:

- 10 streaming clients: 20 ms ``input_audio_buffer.append`` messages (24 kHz PCM16, quiet
  noise, server VAD on) in real time on an absolute schedule; every 10th message is followed
  by a probe (an unknown event type, answered at once with an ``error`` event) whose round
  trip the client times;
- one client that commits a 60 s utterance (the bundled speech clip, repeated) with input
  transcription on and asks for a (text) response: the server transcribes it first;
- one client that asks for a long spoken answer (a 4,000-character text, echoed through
  espeak-ng: synthesized piece by piece while the answer streams).

Measured from the moment the 60 s commit is sent until its transcript arrives: the server's
inbound latency (``/metrics``, reset at the start: every message's processing time in the
session loop) and the streaming clients' probe round trips (which also show the time a
message waits for a loop that cannot run), p50/p99/max, and the server's RSS.

The same run against the old path (``--baseline``, default on: PocketSphinx in the server
process, called with ``asyncio.to_thread``; started through ``voxwire.server.serve`` with
``load_asr("pocketsphinx", isolated=False)``, everything else identical).

Usage: python benches/isolation.py [--seconds-of-speech 60] [--clients 10] [--no-baseline]
                                   [--json PATH]
Needs: pip install -e '.[asr]' and espeak-ng (for the spoken answer).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxwire import clips

HOST = "127.0.0.1"
RATE = 24000
CHUNK_S = 0.020
PROBE_EVERY = 10
LONG_TEXT = (
    "This is a long spoken answer, made of many sentences, so that the server has to "
    "synthesize speech for a while. "
) * 36  # about 4,000 characters: under EspeakTTS's default limit of 4,096


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_json(url: str) -> Any:
    """GET ``url`` and decode its JSON answer."""
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def descendants_rss_mb(pid: int) -> float:
    """Resident memory of ``pid``'s children (the ASR workers, espeak-ng) in MB."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                total += rss_mb(int(d))
        except (OSError, ValueError):
            continue
    return total


@contextlib.contextmanager
def server(isolated: bool) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The server: ``voxwire serve --asr pocketsphinx``, or the thread-based baseline."""
    port = free_port()
    if isolated:
        cmd = [sys.executable, "-m", "voxwire", "serve", "--port", str(port)]
        cmd += ["--asr", "pocketsphinx"]
    else:
        script = (
            "from voxwire.asr import load_asr\n"
            "from voxwire.server import ServerConfig, serve\n"
            "cfg = ServerConfig(asr=load_asr('pocketsphinx', isolated=False))\n"
            f"serve(cfg, {HOST!r}, {port})\n"
        )
        cmd = [sys.executable, "-c", script]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                http_json(f"http://{HOST}:{port}/healthz")
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("the server exited") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start within 30 s")
        if isolated:
            time.sleep(3.0)  # let the worker load its model (as a server that has been up)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Streamer:
    """A client streaming audio in real time and timing probes."""

    ws: ClientConnection
    probes_out: list[float] = field(default_factory=list)  # send times, oldest first
    rtts: list[float] = field(default_factory=list)  # (sent at, round trip) pairs, flat
    sent_at: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)


def noise_messages() -> list[str]:
    """One second of quiet noise (about -60 dBFS: no turn), as 20 ms append messages."""
    x = (np.random.default_rng(7).standard_normal(RATE) * 30).astype("<i2")
    n = int(RATE * CHUNK_S)
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(x[k : k + n].tobytes()).decode(),
            },
            separators=(",", ":"),
        )
        for k in range(0, len(x), n)
    ]


PROBE = json.dumps({"type": "voxwire.bench.probe"})


async def stream(c: Streamer, msgs: Sequence[str], stop: asyncio.Event) -> None:
    """Send appends every 20 ms on an absolute schedule (and a probe every 10th) until stop."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    with contextlib.suppress(ConnectionClosed):
        while not stop.is_set():
            due = start + k * CHUNK_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            c.lateness.append(loop.time() - due)
            await c.ws.send(msgs[k % len(msgs)])
            if k % PROBE_EVERY == 0:
                c.probes_out.append(loop.time())
                await c.ws.send(PROBE)
            k += 1


async def read(c: Streamer) -> None:
    """Time each probe's answer (the ``error`` event it causes)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionClosed):
        async for m in c.ws:
            if isinstance(m, str) and m.startswith('{"type":"error"') and c.probes_out:
                sent = c.probes_out.pop(0)
                c.rtts += [sent, loop.time() - sent]


def speech(seconds: float) -> np.ndarray:
    """``seconds`` of the bundled speech clip, repeated."""
    x, rate = clips.hello()
    assert rate == RATE
    return np.tile(x, int(seconds * RATE / len(x)) + 1)[: int(seconds * RATE)]


async def recv_until(ws: ClientConnection, kinds: Sequence[str], limit_s: float) -> str:
    """Drain ``ws`` until an event of one of ``kinds``; its type."""
    async with asyncio.timeout(limit_s):
        async for m in ws:
            if isinstance(m, str):
                kind = json.loads(m)["type"]
                if kind in kinds:
                    return str(kind)
    raise RuntimeError(f"connection closed before {kinds}")


async def drain_audio(ws: ClientConnection, got: list[int]) -> None:
    """Read everything; count the bytes of output audio."""
    with contextlib.suppress(ConnectionClosed):
        async for m in ws:
            if isinstance(m, str) and m.startswith('{"type":"response.output_audio.delta"'):
                got[0] += len(base64.b64decode(json.loads(m)["delta"]))


def pct(xs: Sequence[float], q: float) -> float:
    """The ``q`` (0-100) percentile of ``xs`` (NaN when empty)."""
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


async def run_once(isolated: bool, n_clients: int, speech_s: float) -> dict[str, Any]:
    """One run against one server; the figures of its measuring window."""
    with server(isolated) as (port, proc):
        url = f"ws://{HOST}:{port}/v1/realtime"
        metrics = f"http://{HOST}:{port}/metrics"
        opened = [
            await connect(url, compression=None, max_size=1 << 24) for _ in range(n_clients + 2)
        ]
        for ws in opened:
            await ws.recv()  # session.created
        asr_ws, tts_ws = opened[-2], opened[-1]
        streamers = [Streamer(ws) for ws in opened[:n_clients]]
        stop = asyncio.Event()
        msgs = noise_messages()
        tasks = [asyncio.create_task(stream(c, msgs, stop)) for c in streamers]
        tasks += [asyncio.create_task(read(c)) for c in streamers]

        # The transcribing client: manual turns, transcription on, a text answer.
        await asr_ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "output_modalities": ["text"],
                        "audio": {
                            "input": {"turn_detection": None, "transcription": {"model": "x"}}
                        },
                    },
                }
            )
        )
        await recv_until(asr_ws, ["session.updated"], 10)
        x = speech(speech_s)
        for k in range(0, len(x), RATE):  # 1 s per message
            chunk = base64.b64encode(x[k : k + RATE].astype("<i2").tobytes()).decode()
            await asr_ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await asyncio.sleep(2.0)  # the appends are processed; the streamers run steadily

        # The window: from the commit to the transcript.
        await asyncio.to_thread(http_json, metrics + "?reset=1")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        rss0 = rss_mb(proc.pid)
        await asr_ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await asr_ws.send(json.dumps({"type": "response.create"}))
        await tts_ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": LONG_TEXT}],
                    },
                }
            )
        )
        await tts_ws.send(json.dumps({"type": "response.create"}))
        tts_audio = [0]  # bytes of spoken answer received
        tts_reader = asyncio.create_task(drain_audio(tts_ws, tts_audio))
        kind = await recv_until(
            asr_ws,
            ["conversation.item.input_audio_transcription.completed", "response.done"],
            300.0,
        )
        t1 = loop.time()
        m = await asyncio.to_thread(http_json, metrics)
        peak_rss = rss_mb(proc.pid)
        workers_rss = descendants_rss_mb(proc.pid)
        tts_reader.cancel()
        stop.set()
        for t in [*tasks, tts_reader]:
            t.cancel()
        await asyncio.gather(*tasks, tts_reader, return_exceptions=True)
        for ws in opened:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)

    rtts = [
        rtt
        for c in streamers
        for sent, rtt in zip(c.rtts[::2], c.rtts[1::2], strict=True)
        if t0 <= sent <= t1
    ]
    lat = m["inbound_latency_us"]
    return {
        "mode": "worker process" if isolated else "thread (old)",
        "transcribed": kind.endswith("completed"),
        "window_s": round(t1 - t0, 1),
        "tts_audio_s": round(tts_audio[0] / 2 / RATE, 1),
        "messages_in": m["messages_in"],
        "server_p50_ms": lat["p50"] / 1000 if lat["p50"] else None,
        "server_p99_ms": lat["p99"] / 1000 if lat["p99"] else None,
        "server_max_ms": lat["max"] / 1000 if lat["max"] else None,
        "probes": len(rtts),
        "probe_p50_ms": pct(rtts, 50) * 1000,
        "probe_p99_ms": pct(rtts, 99) * 1000,
        "probe_max_ms": max(rtts) * 1000 if rtts else float("nan"),
        "server_rss_mb_before": round(rss0, 1),
        "server_rss_mb_after": round(peak_rss, 1),
        "children_rss_mb": round(workers_rss, 1),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    cols = [
        ("mode", "ASR runs in", "{}"),
        ("window_s", "window s", "{:.1f}"),
        ("messages_in", "msgs in", "{}"),
        ("server_p50_ms", "server p50 ms", "{:.3f}"),
        ("server_p99_ms", "server p99 ms", "{:.3f}"),
        ("server_max_ms", "server max ms", "{:.1f}"),
        ("probe_p50_ms", "probe p50 ms", "{:.2f}"),
        ("probe_p99_ms", "probe p99 ms", "{:.1f}"),
        ("probe_max_ms", "probe max ms", "{:.0f}"),
        ("server_rss_mb_after", "server RSS MB", "{:.0f}"),
        ("children_rss_mb", "children RSS MB", "{:.0f}"),
    ]
    out = ["| " + " | ".join(h for _, h, _ in cols) + " |"]
    out.append("|" + "---|" * len(cols))
    for r in rows:
        out.append("| " + " | ".join(f.format(r[k]) for k, _, f in cols) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print a table (and write JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10, help="streaming clients (10)")
    p.add_argument("--seconds-of-speech", type=float, default=60.0, help="utterance (60 s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the thread-based run")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = p.parse_args(argv)
    rows = [asyncio.run(run_once(True, args.clients, args.seconds_of_speech))]
    if not args.no_baseline:
        rows.append(asyncio.run(run_once(False, args.clients, args.seconds_of_speech)))
    print(table(rows))
    for r in rows:
        print(
            f"{r['mode']}: transcribed={r['transcribed']} spoken answer received: "
            f"{r['tts_audio_s']} s of audio, "
            f"probes={r['probes']}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
