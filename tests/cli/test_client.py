"""voxwire.client against a real server on 127.0.0.1, and `voxwire demo --quick`."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from voxwire import clips
from voxwire.cli import main as cli_main
from voxwire.client import (
    AudioDelta,
    Closed,
    RealtimeClient,
    ResponseDone,
    SessionCreated,
    SpeechStarted,
    SpeechStopped,
    parse_event,
)
from voxwire.demo import local_server

pytestmark = pytest.mark.timeout(120)


def talk(pad_before: float = 1.0, pad_after: float = 1.5) -> np.ndarray:
    return clips.turn(pad_before, pad_after, noise=20, seed=4)[0]


@pytest.fixture(scope="module")
def port() -> object:
    with local_server() as p:
        yield p


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


@pytest.mark.slow
@pytest.mark.network
def test_a_full_voice_turn_played_through_the_jitter_buffer(port: int, tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    x = talk()

    async def run() -> tuple[list[object], dict[str, object]]:
        async with RealtimeClient(f"ws://127.0.0.1:{port}/v1/realtime") as c:
            player = c.play(wav_path=str(out), adaptive=False)  # plain pre-buffer: exact audio
            sender = asyncio.create_task(c.stream_audio(x, 24000, speed=4.0))
            evs = await c.until(ResponseDone)
            await sender
            for _ in range(100):  # let it play out (bounded)
                if player.stats()["buffered_ms"] == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            return list(evs), player.stats()

    evs, stats = asyncio.run(run())
    assert isinstance(evs[0], SessionCreated)
    started = next(e for e in evs if isinstance(e, SpeechStarted))
    stopped = next(e for e in evs if isinstance(e, SpeechStopped))
    assert isinstance(evs[-1], ResponseDone) and evs[-1].status == "completed"
    answer = np.concatenate([e.pcm for e in evs if isinstance(e, AudioDelta)])
    # The echo: the committed span of what was sent.
    want = x[started.audio_start_ms * 24 : stopped.audio_end_ms * 24]
    assert np.array_equal(answer, want)
    # The WAV holds exactly the answer, after the fixed pre-buffer's silence.
    played = read_wav(out)
    nz = np.flatnonzero(played)
    assert np.array_equal(played[nz[0] : nz[0] + len(want)], want[np.flatnonzero(want)[0] :])
    assert stats["underruns"] == 0 and stats["played_ms"] == len(want) // 24


@pytest.mark.slow
@pytest.mark.network
def test_barge_in_clears_playback_and_truncates(port: int) -> None:
    x = talk(0.5, 1.0)

    async def run() -> tuple[list[object], list[tuple[str, int]]]:
        async with RealtimeClient(f"ws://127.0.0.1:{port}/v1/realtime") as c:
            c.play()
            await c.stream_audio(x, 24000, speed=0)
            await c.until(AudioDelta)
            await asyncio.sleep(0.6)  # some of the answer plays
            await c.stream_audio(x[: 24000 * 2], 24000, speed=0)  # the user talks over it
            evs = await c.until("conversation.item.truncated")
            return list(evs), c.truncations

    evs, truncations = asyncio.run(run())
    done = next(e for e in evs if isinstance(e, ResponseDone))
    assert done.status == "cancelled" and done.reason == "turn_detected"
    ((item_id, played),) = truncations
    assert 200 <= played <= 1500  # about 0.6 s after playback began, less the pre-buffer
    t = evs[-1]
    assert t.data["item_id"] == item_id and t.data["audio_end_ms"] == played


@pytest.mark.slow
@pytest.mark.network
def test_reconnect_after_the_server_closes() -> None:
    async def run() -> tuple[Closed, list[object]]:
        with local_server("--idle-timeout", "1") as p:
            async with RealtimeClient(f"ws://127.0.0.1:{p}/v1/realtime") as c:
                evs = await c.until(Closed, timeout=10)
                closed = evs[-1]
                assert isinstance(closed, Closed)
                await c.reconnect()
                again = await c.until(SessionCreated, timeout=10)
                return closed, list(again)

    closed, again = asyncio.run(run())
    assert closed.code == 1000 and closed.reason == "idle timeout"
    assert isinstance(again[-1], SessionCreated)


def test_parse_event_types() -> None:
    e = parse_event({"type": "response.audio.delta", "delta": "AQD//w==", "item_id": "i"}, 1.0)
    assert isinstance(e, AudioDelta) and e.pcm.tolist() == [1, -1] and e.item_id == "i"
    other = parse_event({"type": "rate_limits.updated", "rate_limits": []}, 2.0)
    assert other.type == "rate_limits.updated" and other.at == 2.0


@pytest.mark.slow
@pytest.mark.network
def test_demo_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.wav"
    assert cli_main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in (
        "speech_stopped at",
        "end of speech -> first answer audio",
        "jitter buffer:",
        "server CPU per session-second",
    ):
        assert needle in text, text
    assert len(read_wav(out)) > 24000 * 3  # the echoed sentence
