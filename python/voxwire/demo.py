"""``voxwire demo`` and ``voxwire talk``: a voice turn end to end, with its figures.

``demo`` starts ``voxwire serve`` on a free loopback port, streams the bundled speech clip
through :class:`voxwire.client.RealtimeClient` in real time, shows the event timeline, plays
the answer through the jitter buffer into a WAV file, and prints when ``speech_stopped``
came against the true end of speech, the time from the end of speech to the first answer
audio, the jitter buffer's figures and the server's CPU per session-second. No model and no
network beyond loopback.

``talk`` does the same against a server you name, with your WAV file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire import clips
from voxwire.client import (
    Closed,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeClient,
    RealtimeErrorEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseDoneEvent,
    ResponseTextDeltaEvent,
    ServerEvent,
)


@dataclass
class TurnReport:
    """What one voice turn showed."""

    speech_started_ms: int | None
    speech_stopped_ms: int | None
    #: Wall time from the end of speech being sent to the first answer audio arriving.
    first_audio_after_s: float | None
    status: str | None
    answer_ms: float
    jitter: dict[str, Any]
    errors: list[str]
    transcript: str


def _describe(e: ServerEvent) -> str:
    d = e.data
    if isinstance(e, InputAudioBufferSpeechStartedEvent):
        return f"{e.type}  audio_start_ms={e.audio_start_ms}"
    if isinstance(e, InputAudioBufferSpeechStoppedEvent):
        return f"{e.type}  audio_end_ms={e.audio_end_ms}"
    if isinstance(e, ResponseDoneEvent):
        why = f" ({e.reason})" if e.reason else ""
        return f"{e.type}  status={e.status}{why}"
    if isinstance(e, RealtimeErrorEvent):
        return f"{e.type}  {e.code}: {e.message}"
    if e.type == "session.created":
        s = d.get("session", {})
        td = (s.get("audio", {}).get("input", {}) or {}).get("turn_detection") or {}
        return f"{e.type}  model={s.get('model')} turn_detection={td.get('type')}"
    return e.type


async def converse(
    url: str,
    audio: npt.NDArray[np.int16],
    rate: int,
    *,
    api_key: str | None = None,
    speed: float = 1.0,
    out_wav: str | None = None,
    true_end_ms: int | None = None,
    show: bool = True,
    timeout_s: float = 60.0,
) -> TurnReport:
    """Stream ``audio`` to the server, play the first answer, report the turn."""
    t_start = time.monotonic()

    def say(line: str) -> None:
        if show:
            print(f"  {time.monotonic() - t_start:6.2f} s  {line}", flush=True)

    async with RealtimeClient(url, api_key) as c:
        player = c.play(wav_path=out_wav)
        sender = asyncio.create_task(c.stream_audio(audio, rate, speed=speed))
        started = stopped = None
        status = None
        errors: list[str] = []
        transcript: list[str] = []
        deltas = 0
        deadline = asyncio.get_running_loop().time() + timeout_s
        events = c.events()
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    e = await anext(events)
            except TimeoutError:
                errors.append(f"no answer within {timeout_s:g} s")
                break
            if isinstance(e, ResponseAudioDeltaEvent):
                if deltas == 0:
                    say(f"{e.type}  (first answer audio; more follow)")
                deltas += 1
                continue
            if isinstance(e, ResponseTextDeltaEvent | ResponseAudioTranscriptDeltaEvent):
                transcript.append(e.text)
                continue
            say(_describe(e))
            if isinstance(e, InputAudioBufferSpeechStartedEvent) and started is None:
                started = e.audio_start_ms
            elif isinstance(e, InputAudioBufferSpeechStoppedEvent) and stopped is None:
                stopped = e.audio_end_ms
            elif isinstance(e, RealtimeErrorEvent):
                errors.append(f"{e.code}: {e.message}")
            elif isinstance(e, ResponseDoneEvent):
                status = e.status
                break
            elif isinstance(e, Closed):
                break
        if status is None and not sender.done():
            sender.cancel()  # no answer: stop sending too
        await asyncio.gather(sender, return_exceptions=True)
        # Let the answer play out (bounded by its length plus a second).
        end = time.monotonic() + player.stats()["buffered_ms"] / 1000 + 1.0
        while player.stats()["buffered_ms"] > 0 and time.monotonic() < end:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        stats = player.stats()
        first = None
        if player.first_audio_at is not None and true_end_ms is not None:
            sent_end = t_start + true_end_ms / 1000 / (speed or float("inf"))
            first = player.first_audio_at - sent_end
        say(f"answer played: {stats['played_ms']} ms ({deltas} audio deltas)")
    return TurnReport(
        started,
        stopped,
        first,
        status,
        float(stats["played_ms"]),
        stats,
        errors,
        "".join(transcript),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_server(*args: str) -> Iterator[int]:
    """``voxwire serve`` in a subprocess on a free loopback port (stopped on exit)."""
    with spawn_server(*args) as (port, _):
        yield port


class _LogReader:
    """Reads a server's log file from the start (as a pipe would be read after exit)."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def read(self) -> bytes:
        """Everything logged so far."""
        self.f.seek(0)
        data: bytes = self.f.read()
        return data

    def close(self) -> None:
        """Close the file."""
        self.f.close()


@contextlib.contextmanager
def spawn_server(
    *args: str, cwd: str | os.PathLike[str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Like :func:`local_server`, also giving the process (to signal it); ``cwd``: its folder."""
    import tempfile

    port = _free_port()
    # The server's log goes to a file, not a pipe: a pipe nobody reads fills up (64 KiB of
    # access lines) and blocks the server. ``proc.stderr`` reads the file.
    # Read after the server stops (tests do): closed with the process object.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxwire", "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=cwd,
    )
    proc.stderr = _LogReader(log)  # type: ignore[assignment]
    try:
        for _ in range(200):  # up to 20 s
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"voxwire serve exited: {err}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("voxwire serve did not start within 20 s")
        yield port, proc
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[Any]) -> None:
    """Stop a server process: SIGTERM, up to 10 s for its graceful end, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _metrics(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics.json", timeout=5) as r:
        out: dict[str, Any] = json.load(r)
        return out


def demo(quick: bool = False, out_wav: str = "voxwire-demo.wav") -> int:
    """``voxwire demo``: returns an exit code (0 when the turn went as it should)."""
    audio, true_start, true_end = clips.turn(1.0, 1.5)
    clip, rate = clips.hello()
    speed = 4.0 if quick else 1.0
    print(
        f"voxwire {voxwire.__version__} demo: a {len(clip) / rate:.1f} s spoken sentence "
        f'("{clips.HELLO_TEXT}") streamed {"at 4x" if quick else "in real time"} in 20 ms '
        "chunks to a local voxwire server (server VAD, echo agent); the answer is played "
        f"through the adaptive jitter buffer into {out_wav}.\n"
    )
    with local_server() as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        print(f"server: {url}\ntimeline (client clock):")
        rep = asyncio.run(
            converse(url, audio, rate, speed=speed, out_wav=out_wav, true_end_ms=true_end)
        )
        m = _metrics(port)
    silence = 500
    print("\nresults")
    ok = rep.status == "completed" and not rep.errors
    if rep.speech_started_ms is not None:
        print(
            f"  speech_started at {rep.speech_started_ms} ms of audio: true start "
            f"{true_start} ms - 300 ms prefix padding = {true_start - 300} ms "
            f"({rep.speech_started_ms - (true_start - 300):+d} ms)"
        )
    if rep.speech_stopped_ms is not None:
        err = rep.speech_stopped_ms - (true_end + silence)
        print(
            f"  speech_stopped at {rep.speech_stopped_ms} ms of audio: true end of speech "
            f"{true_end} ms + {silence} ms silence setting = {true_end + silence} ms "
            f"({err:+d} ms)"
        )
    else:
        ok = False
    if rep.first_audio_after_s is not None:
        # The turn ends after `silence` ms of audio without speech; streamed at `speed` x
        # real time, that audio takes silence / speed ms of wall time to send.
        wait = silence / speed
        rest = rep.first_audio_after_s * 1000 - wait
        pace = "in real time" if speed == 1 else f"at {speed:g}x real time"
        print(
            f"  end of speech -> first answer audio: {rep.first_audio_after_s * 1000:.0f} ms "
            f"of wall time: {wait:.0f} ms sending the {silence} ms of silence that ends a turn "
            f"({pace}), {rest:.0f} ms the server and the agent"
        )
    j = rep.jitter
    print(
        f"  jitter buffer: played {j['played_ms']:.0f} ms of answer, "
        f"target {j['target_ms']:.0f} ms, underruns {j['underruns']}, "
        f"concealed {j['concealed_ms']:.1f} ms, stretched {j['stretched_ms']:.1f} ms, "
        f"max buffered {j['max_buffered_ms']:.0f} ms"
    )
    cpu, wall = m["cpu_seconds"], m["wall_seconds"]
    print(
        f"  server CPU per session-second: {cpu / max(wall, 1e-9) * 1000:.1f} ms "
        f"({cpu:.2f} s CPU over {wall:.1f} s, {m['messages_in']} messages in, "
        f"p99 inbound processing {m['inbound_latency_us']['p99']:.0f} us)"
    )
    print(f"  answer written to {out_wav}")
    for e in rep.errors:
        print(f"  error: {e}")
    return 0 if ok else 1
