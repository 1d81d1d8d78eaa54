"""``voxwire talk``: one turn with a realtime server of any dialect, under one deadline.

The audio file is read first (WAV of any common form, MP3/FLAC/OGG with miniaudio; any
rate, resampled with voxwire's resampler), then the dialect's client connects once (no
silent retries), streams the audio with 1.5 s of trailing silence so that the server's VAD
ends the turn, and plays the answer through the jitter buffer into ``--out``.

One timer bounds the whole turn (``--timeout``), whether or not events arrive. Every failure
is a :class:`~voxwire.errors.CommandError`: one line and an exit code of
:class:`voxwire.cli.ExitCode` (docs/cli.md): the server unreachable, credentials refused, no
speech detected (the server started no turn within ``NO_SPEECH_GRACE_S`` of the end of the
audio), nothing answering before the deadline, a file that is missing or not audio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import urllib.error
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.cli import ExitCode
from voxwire.errors import AudioFileError, AuthError, CommandError, InvalidInputError

__all__ = ["DEFAULT_URLS", "NO_SPEECH_GRACE_S", "Watch", "run"]

#: Each dialect's server when ``--url`` is not given.
DEFAULT_URLS = {
    "openai": "ws://127.0.0.1:8000/v1/realtime",
    "chatstream": "ws://127.0.0.1:8000/v1/chat/stream",
    "atoms": "http://127.0.0.1:8000",
    "rtguide": "http://127.0.0.1:8000",
    "amigo": "ws://127.0.0.1:8000/v1/default/conversation/converse_realtime"
    "?response_format=voice&audio_format=pcm",
}
#: How long after the last audio was sent the server has to show it heard speech.
NO_SPEECH_GRACE_S = 5.0
#: Trailing silence after the file, so that the server's VAD ends the turn.
PAD_S = 1.5
#: The rates the dialects take as they are; others are resampled to 24 kHz first.
RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass
class Watch:
    """What the turn has shown so far: the timer's reasons come from here.

    ``heard`` is polled: a function telling whether the server has shown it detected speech
    (or started its answer).
    """

    source: str
    url: str
    audio_s: float = 0.0
    connected: bool = False
    sent_at: float | None = None
    heard: Callable[[], bool] = field(default=lambda: False)
    answered: bool = False

    def sent(self) -> None:
        """The last audio chunk went out."""
        self.sent_at = time.monotonic()

    async def no_speech(self, grace_s: float) -> None:
        """Raise CommandError(NO_SPEECH) when the audio is out and no turn began in time."""
        while True:
            await asyncio.sleep(0.05)
            if self.answered or self.heard():
                return
            if self.sent_at is not None and time.monotonic() - self.sent_at > grace_s:
                raise CommandError(
                    f"the server detected no speech in {self.source} ({self.audio_s:.1f} s "
                    f"sent, no turn began within {grace_s:g} s): is it silent or very quiet?",
                    ExitCode.NO_SPEECH,
                )

    def timed_out(self, timeout_s: float) -> CommandError:
        """The deadline's error, saying how far the turn got."""
        if not self.connected:
            where = f"could not connect to {self.url}"
        elif self.sent_at is None and self.audio_s:
            where = "the audio was still being sent (lower --speed's pacing or raise --timeout)"
        elif not (self.answered or self.heard()):
            where = "the server started no turn"
        else:
            where = "the answer did not finish"
        return CommandError(
            f"no answer within {timeout_s:g} s (--timeout): {where}", ExitCode.TIMEOUT
        )


def _key(args: argparse.Namespace) -> tuple[str | None, str]:
    """The API key and where it came from (--api-key / VOXWIRE_API_KEY, or OPENAI_API_KEY)."""
    if args.api_key:
        return args.api_key, "--api-key or VOXWIRE_API_KEY"
    if args.dialect == "openai" and os.environ.get("OPENAI_API_KEY"):
        return os.environ["OPENAI_API_KEY"], "OPENAI_API_KEY"
    return None, "--api-key or VOXWIRE_API_KEY"


def load(path: str) -> tuple[npt.NDArray[np.int16], int]:
    """The file as mono int16 at a rate every dialect takes (others resampled to 24 kHz)."""
    from voxwire.wav import load_audio

    x, rate = load_audio(path)
    if rate not in RATES:
        try:
            x = np.asarray(voxwire.resample(x, rate, 24000), dtype=np.int16)
        except InvalidInputError as e:
            raise AudioFileError(f"{path}: {e}") from None
        rate = 24000
    return x, rate


def run(args: argparse.Namespace) -> int:
    """``voxwire talk``: an exit code (failures raise CommandError)."""
    if args.timeout <= 0:
        raise CommandError("--timeout must be more than 0 seconds", ExitCode.USAGE)
    if args.speed < 0:
        raise CommandError("--speed must be 0 (no pacing) or more", ExitCode.USAGE)
    needs_audio = args.dialect in ("openai", "atoms", "rtguide")
    if needs_audio and args.wav is None:
        raise CommandError(
            f"give an audio file: voxwire talk speech.wav --dialect {args.dialect}",
            ExitCode.USAGE,
        )
    password = None
    if args.dialect == "rtguide":
        password = os.environ.get("VOXWIRE_PASSWORD")
        if not args.username or password is None:
            raise CommandError(
                "--dialect rtguide logs in: give --username and set VOXWIRE_PASSWORD",
                ExitCode.USAGE,
            )
    audio: tuple[npt.NDArray[np.int16], int] | None = None
    if args.wav is not None and args.dialect != "chatstream":
        try:
            audio = load(args.wav)
        except AudioFileError as e:
            raise CommandError(f"{e} (give a WAV, MP3, FLAC or OGG file)", ExitCode.USAGE) from None
    url = args.url or DEFAULT_URLS[args.dialect]
    key, key_from = _key(args)
    watch = Watch(args.wav or "the text", url)
    if audio is not None:
        watch.audio_s = len(audio[0]) / audio[1]
    flow: Coroutine[Any, Any, int]
    if args.dialect == "openai":
        assert audio is not None
        flow = _openai(url, key, audio, args, watch)
    elif args.dialect == "atoms":
        assert audio is not None
        flow = _atoms(url, key, audio, args, watch)
    elif args.dialect == "rtguide":
        assert audio is not None and password is not None
        flow = _rtguide(url, password, audio, args, watch)
    elif args.dialect == "amigo":
        flow = _amigo(url, key, audio, args, watch)
    else:
        flow = _chatstream(url, key, args, watch)
    try:
        return asyncio.run(_bounded(flow, watch, args.timeout))
    except CommandError:
        raise
    except AuthError:
        raise CommandError(
            f"the server refused the credentials (check {key_from})"
            if args.dialect != "rtguide"
            else "Invalid credentials: the server refused --username and VOXWIRE_PASSWORD",
            ExitCode.AUTH,
        ) from None
    except Exception as e:
        mapped = _network_error(e, url, key_from)
        if mapped is None:
            raise
        raise mapped from None


async def _bounded(flow: Coroutine[Any, Any, int], watch: Watch, timeout_s: float) -> int:
    """Run ``flow`` under the deadline, with the no-speech watch beside it."""
    main = asyncio.ensure_future(flow)
    dog = asyncio.ensure_future(watch.no_speech(NO_SPEECH_GRACE_S))
    try:
        async with asyncio.timeout(timeout_s):
            done, _ = await asyncio.wait({main, dog}, return_when=asyncio.FIRST_COMPLETED)
            if main in done:
                return main.result()
            dog.result()  # raises NO_SPEECH; else speech was heard: the flow goes on
            return await main
    except TimeoutError:
        raise watch.timed_out(timeout_s) from None
    finally:
        for t in (main, dog):
            t.cancel()
        # A flow's clean-up (closing its connection) is itself bounded: 10 s at most.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(main, dog, return_exceptions=True)


def _network_error(e: BaseException, url: str, key_from: str) -> CommandError | None:
    """The one-line error of a failure to reach or use the server (None: not one)."""
    from voxwire.clients.amigo import AmigoClosedError
    from voxwire.clients.atoms import AtomsError
    from voxwire.clients.chatstream import ChatstreamError

    try:
        from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
    except ImportError:  # pragma: no cover - the server extra is missing
        return None
    if isinstance(e, urllib.error.HTTPError):
        if e.code in (401, 403):
            return CommandError(
                f"the server refused the credentials (HTTP {e.code}; check {key_from})",
                ExitCode.AUTH,
            )
        return CommandError(f"the server answered HTTP {e.code} at {url}", ExitCode.FAILED)
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    if isinstance(e, InvalidStatus):
        status = e.response.status_code
        if status in (401, 403):
            return CommandError(
                f"the server refused the API key (HTTP {status}): pass the right one with "
                f"{key_from}",
                ExitCode.AUTH,
            )
        if status == 404:
            return CommandError(
                f"nothing at {url} (HTTP 404): check --url and --dialect", ExitCode.USAGE
            )
        return CommandError(f"the server refused the connection (HTTP {status})", ExitCode.FAILED)
    if isinstance(e, InvalidURI | ValueError) and not isinstance(e, InvalidInputError):
        return CommandError(
            f"not a server URL for this dialect: {url} (--url: ws://host:port/path for openai, "
            "chatstream and amigo; http://host:port for atoms and rtguide)",
            ExitCode.USAGE,
        )
    if isinstance(e, ConnectionRefusedError):
        return CommandError(
            f"cannot connect to {url}: connection refused. Is `voxwire serve` running there? "
            "(start it, or give the server with --url)",
            ExitCode.UNREACHABLE,
        )
    if isinstance(e, ConnectionClosed):
        rcvd = e.rcvd
        why = f" ({rcvd.code} {rcvd.reason})".rstrip() if rcvd is not None else ""
        return CommandError(
            f"the server closed the connection{why} before the turn ended", ExitCode.FAILED
        )
    if isinstance(e, AmigoClosedError | AtomsError | ChatstreamError):
        return CommandError(f"the turn failed: {e}", ExitCode.FAILED)
    if isinstance(e, OSError):
        why = e.strerror or str(e) or type(e).__name__
        return CommandError(f"cannot reach {url}: {why}", ExitCode.UNREACHABLE)
    return None


# ------------------------------------------------------------------------------------------
# The dialects' turns


def _pad(x: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    return np.concatenate([x, np.zeros(int(rate * PAD_S), np.int16)])


async def _openai(
    url: str,
    key: str | None,
    audio: tuple[npt.NDArray[np.int16], int],
    args: argparse.Namespace,
    watch: Watch,
) -> int:
    from voxwire.client import (
        Closed,
        InputAudioBufferSpeechStartedEvent,
        RealtimeClient,
        RealtimeErrorEvent,
        ResponseAudioDeltaEvent,
        ResponseAudioTranscriptDeltaEvent,
        ResponseCreatedEvent,
        ResponseDoneEvent,
        ResponseTextDeltaEvent,
    )
    from voxwire.demo import _describe

    t0 = time.monotonic()
    c = RealtimeClient(url, key)
    await c.connect(retries=0)
    try:
        watch.connected = True
        c.play(wav_path=args.out)
        x, rate = audio

        async def send() -> None:
            await c.stream_audio(_pad(x, rate), rate, speed=args.speed)
            watch.sent()

        sender = asyncio.create_task(send())
        status: str | None = None
        errors: list[str] = []
        transcript: list[str] = []
        deltas = 0
        closed: Closed | None = None
        async for e in c.events():
            if isinstance(e, ResponseAudioDeltaEvent):
                watch.answered = True
                if deltas == 0:
                    print(f"  {time.monotonic() - t0:6.2f} s  {e.type}  (first answer audio)")
                deltas += 1
                continue
            if isinstance(e, ResponseTextDeltaEvent | ResponseAudioTranscriptDeltaEvent):
                transcript.append(e.text)
                continue
            print(f"  {time.monotonic() - t0:6.2f} s  {_describe(e)}", flush=True)
            if isinstance(e, InputAudioBufferSpeechStartedEvent | ResponseCreatedEvent):
                watch.answered = True  # a turn began
            elif isinstance(e, RealtimeErrorEvent):
                errors.append(f"{e.code}: {e.message}")
            elif isinstance(e, ResponseDoneEvent):
                status = e.status
                break
            elif isinstance(e, Closed):
                closed = e
                break
        if not sender.done():
            sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        stats = await c.wait_played()
    finally:
        await c.close()
    if closed is not None and status is None:
        why = f" ({closed.code} {closed.reason})".rstrip() if closed.code else ""
        detail = f": {errors[-1]}" if errors else ""
        raise CommandError(
            f"the server closed the connection{why} before answering{detail}", ExitCode.FAILED
        )
    print(f"status: {status}; answer {stats.get('played_ms', 0):.0f} ms played into {args.out}")
    if transcript:
        print(f"transcript: {''.join(transcript)}")
    for err in errors:
        print(f"error: {err}")
    if status != "completed":
        raise CommandError(
            f"the answer ended with status {status}" + (f" ({errors[-1]})" if errors else ""),
            ExitCode.FAILED,
        )
    return 0


async def _atoms(
    url: str,
    key: str | None,
    audio: tuple[npt.NDArray[np.int16], int],
    args: argparse.Namespace,
    watch: Watch,
) -> int:
    from voxwire.clients.atoms import PREBUFFER_MS, AtomsClient, AtomsError
    from voxwire.wav import write_wav

    c = AtomsClient(url, api_key=key, agent_id=args.agent_id)
    await c.connect()
    try:
        watch.connected = True
        try:
            await c.wait_for("agent_start_talking", timeout=2.0)
        except AtomsError:
            pass  # an agent without a greeting waits for the user
        else:
            await c.wait_for("agent_stop_talking", timeout=args.timeout)
        n = len(c.log.events)
        watch.heard = lambda: any(
            e.get("type") in ("agent_start_talking", "transcript") for e in c.log.events[n:]
        )
        x, rate = audio
        await c.send_audio(_pad(x, rate), rate, args.speed)
        watch.sent()
        await c.wait_for("agent_stop_talking", after=n, timeout=args.timeout)
        await asyncio.sleep(PREBUFFER_MS / 1000 + 0.1)  # let the tail play out
    finally:
        await c.close()
    log = c.log
    for role, text in log.transcripts:
        print(f"{role}: {text}")
    for err in log.errors:
        print(f"error: {err.get('code')}: {err.get('message')}")
    if log.interruptions:
        print(f"interruptions: {log.interruptions}")
    if args.out:
        write_wav(args.out, log.played_audio(), int(log.session.get("sample_rate", 24000)))
    if log.errors:
        raise CommandError(f"the call failed: {log.errors[-1].get('message')}", ExitCode.FAILED)
    if not any(role == "assistant" for role, _ in log.transcripts):
        raise CommandError("the agent did not answer", ExitCode.FAILED)
    return 0


async def _rtguide(
    url: str,
    password: str,
    audio: tuple[npt.NDArray[np.int16], int],
    args: argparse.Namespace,
    watch: Watch,
) -> int:
    from voxwire.clients.rtguide import RtguideClient

    c = RtguideClient(url, username=args.username, password=password, voice=args.voice)
    await c.connect()
    try:
        watch.connected = True
        n = len(c.events)
        watch.heard = lambda: any(
            e.get("type") in ("user_turn_end", "completion") for e in c.events[n:]
        )
        x, rate = audio
        rep = await c.talk(
            _pad(x, rate),
            rate,
            speed=args.speed,
            out_wav=args.out,
            timeout_s=args.timeout,
            on_sent=watch.sent,
        )
    finally:
        await c.close()
    print(
        f"stop reason: {rep.stop_reason}; answer {rep.answer_ms:.0f} ms "
        f"({rep.audio_bytes} bytes of audio)"
    )
    if rep.text:
        print(f"text: {rep.text}")
    for err in rep.errors:
        print(f"error: {err}")
    if rep.stop_reason != "stop":
        raise CommandError(
            f"the answer stopped with {rep.stop_reason}"
            + (f" ({rep.errors[-1]})" if rep.errors else ""),
            ExitCode.FAILED,
        )
    return 0


async def _amigo(
    url: str,
    key: str | None,
    audio: tuple[npt.NDArray[np.int16], int] | None,
    args: argparse.Namespace,
    watch: Watch,
) -> int:
    import json
    import urllib.parse

    from voxwire.client import Player
    from voxwire.clients.amigo import OUTPUT_RATE, AmigoClient, AmigoTurn

    q = urllib.parse.urlsplit(url)
    if "response_format" not in urllib.parse.parse_qs(q.query):
        extra = "response_format=voice&audio_format=pcm"
        url = urllib.parse.urlunsplit(q._replace(query=(q.query + "&" if q.query else "") + extra))
    player = Player(OUTPUT_RATE, wav_path=args.out)
    turns: list[AmigoTurn] = []
    c = AmigoClient(url, key or "voxwire", player=player)
    await c.connect()
    try:
        watch.connected = True
        await c.start(args.service)
        turns.append(await c.turn(timeout=args.timeout))
        if audio is not None:
            x, rate = audio
            n = len(c.log)
            watch.heard = lambda: any(
                m.get("type") == "server.vad-speech-started" for m in c.log[n:]
            )
            await c.switch_vad(True)

            async def send() -> None:
                await c.stream_audio(_pad(x, rate), rate, speed=args.speed)
                watch.sent()

            sender = asyncio.create_task(send())
            turns.append(await c.turn(timeout=args.timeout))
            await sender
        else:
            watch.answered = True  # a text turn: no speech to detect
            await c.send_text(args.text)
            turns.append(await c.turn(timeout=args.timeout))
        while player.pending or player.jb.stats()["buffered_ms"] > 0:
            await asyncio.sleep(0.05)  # let the answer play out (the deadline bounds it)
        await c.finish()
        stats = player.stats()
        vad = [m for m in c.log if str(m.get("type", "")).startswith("server.vad-")]
    finally:
        await c.close()
    for m in vad:
        extra_fields = {k: v for k, v in m.items() if k != "type"}
        print(f"{m['type']}  {json.dumps(extra_fields)}")
    for t in turns:
        print(f"agent: {t.text}  ({len(t.pieces)} pieces)")
    print(f"jitter: {stats}")
    return 0


async def _chatstream(url: str, key: str | None, args: argparse.Namespace, watch: Watch) -> int:
    from voxwire.clients.chatstream import ChatstreamClient

    watch.answered = True  # a text turn: no speech to detect
    c = ChatstreamClient(url, key or "voxwire")
    await c.connect()
    try:
        watch.connected = True
        await c.authorize()
        speaker = c.speak(wav_path=args.out, speed=args.speed)
        turn = await c.chat(
            args.text, user_id="voxwire-talk", agent_id=args.agent_id, timeout=args.timeout
        )
        stats = await speaker.done(timeout=args.timeout)
    finally:
        await c.close()
    for chunk, emotion in turn.sentences:
        print(f"tts_ready_chunk: {chunk}" + (f" ({emotion})" if emotion else ""))
    print(f"status: {turn.status}; answer: {turn.content}")
    played = sum(speaker.chunk_ms)
    print(f"spoken: {len(speaker.played)} chunks, {played:.0f} ms; jitter: {stats}")
    for chunk, err in speaker.failures:
        print(f"error: speech for {chunk!r}: {err}")
    if turn.status != "completed" or speaker.failures or not speaker.played:
        raise CommandError(
            f"the turn ended {turn.status or 'without an answer'}"
            + (f"; speech failed for {len(speaker.failures)} chunks" if speaker.failures else ""),
            ExitCode.FAILED,
        )
    return 0
