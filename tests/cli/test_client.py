"""voxwire.client: its event parsing and sans-I/O player alone, then against a real server on
127.0.0.1, and `voxwire demo --quick`."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

import voxwire
from voxwire import clips
from voxwire.cli import main as cli_main
from voxwire.client import (
    Closed,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    Player,
    RealtimeClient,
    RealtimeErrorEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseDoneEvent,
    ResponseTextDeltaEvent,
    ServerEvent,
    SessionCreatedEvent,
    parse_event,
)
from voxwire.client.events import PARSERS
from voxwire.demo import local_server
from voxwire.dialects.openai import SERVER_TYPES
from voxwire.session import events as session_ev

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
            evs = await c.until(ResponseDoneEvent)
            await sender
            for _ in range(100):  # let it play out (bounded)
                if player.stats()["buffered_ms"] == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            return list(evs), player.stats()

    evs, stats = asyncio.run(run())
    assert isinstance(evs[0], SessionCreatedEvent)
    started = next(e for e in evs if isinstance(e, InputAudioBufferSpeechStartedEvent))
    stopped = next(e for e in evs if isinstance(e, InputAudioBufferSpeechStoppedEvent))
    assert isinstance(evs[-1], ResponseDoneEvent) and evs[-1].status == "completed"
    answer = np.concatenate([e.pcm for e in evs if isinstance(e, ResponseAudioDeltaEvent)])
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
            await c.until(ResponseAudioDeltaEvent)
            await asyncio.sleep(0.6)  # some of the answer plays
            await c.stream_audio(x[: 24000 * 2], 24000, speed=0)  # the user talks over it
            evs = await c.until("conversation.item.truncated")
            return list(evs), c.truncations

    evs, truncations = asyncio.run(run())
    done = next(e for e in evs if isinstance(e, ResponseDoneEvent))
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
                again = await c.until(SessionCreatedEvent, timeout=10)
                return closed, list(again)

    closed, again = asyncio.run(run())
    assert closed.code == 1000 and closed.reason == "idle timeout"
    assert isinstance(again[-1], SessionCreatedEvent)


def test_parse_event_types() -> None:
    e = parse_event({"type": "response.audio.delta", "delta": "AQD//w==", "item_id": "i"}, 1.0)
    assert isinstance(e, ResponseAudioDeltaEvent) and e.pcm.tolist() == [1, -1] and e.item_id == "i"
    other = parse_event({"type": "rate_limits.updated", "rate_limits": []}, 2.0)
    assert type(other) is ServerEvent
    assert other.type == "rate_limits.updated" and other.at == 2.0
    # Text and the transcript of audio are two types, each under its GA and beta name.
    for t in ("response.output_text.delta", "response.text.delta"):
        e = parse_event({"type": t, "delta": "hi", "response_id": "r"}, 0.0)
        assert isinstance(e, ResponseTextDeltaEvent) and (e.text, e.response_id) == ("hi", "r")
    for t in ("response.output_audio_transcript.delta", "response.audio_transcript.delta"):
        e = parse_event({"type": t, "delta": "hi"}, 0.0)
        assert isinstance(e, ResponseAudioTranscriptDeltaEvent) and e.text == "hi"
    done = parse_event(
        {
            "type": "response.done",
            "response": {
                "id": "r",
                "status": "cancelled",
                "status_details": {"reason": "turn_detected"},
            },
        },
        0.0,
    )
    assert isinstance(done, ResponseDoneEvent)
    assert (done.response_id, done.status, done.reason) == ("r", "cancelled", "turn_detected")
    err = parse_event({"type": "error", "error": {"code": "c", "message": "m"}}, 0.0)
    assert isinstance(err, RealtimeErrorEvent) and (err.code, err.message) == ("c", "m")


def test_parse_event_knows_every_name_the_dialect_sends_for_its_types() -> None:
    # The client parses by the dialect's own table: a type the dialect renames is followed.
    for fact in (session_ev.InputSpeechStarted, session_ev.AudioDelta, session_ev.ResponseDone):
        for name in SERVER_TYPES[fact]:
            assert name is not None and name in PARSERS


def audio_event(item_id: str, pcm: np.ndarray, at: float = 0.0) -> ServerEvent:
    delta = voxwire.b64encode_pcm16(pcm).decode()
    return parse_event(
        {"type": "response.output_audio.delta", "item_id": item_id, "delta": delta}, at
    )


def speech_started(at: float = 0.0) -> ServerEvent:
    d = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u"}
    return parse_event(d, at)


def test_player_barge_in_returns_the_truncate_of_what_was_played() -> None:
    p = Player(adaptive=False, prebuffer_ms=100)
    assert p.on_event(audio_event("item_a", np.full(24000, 1000, np.int16), at=3.5), 0.0) == []
    assert p.first_audio_at == 3.5 and p.pending
    # The caller drives playback: 30 frames of 10 ms, every one of them the answer's audio.
    heard = sum(bool(p.tick(k * 10.0).any()) for k in range(30))
    assert heard == 30
    out = p.on_event(speech_started(), 300.0)
    assert out == [
        {
            "type": "conversation.item.truncate",
            "item_id": "item_a",
            "content_index": 0,
            "audio_end_ms": 300,
        }
    ]
    assert p.truncations == [("item_a", 300)]
    # The rest of the answer is dropped: only silence plays from here.
    assert p.stats()["buffered_ms"] == 0 and not p.pending
    assert not any(p.tick(300.0 + k * 10.0).any() for k in range(10))
    # A second speech_started, with nothing playing, asks for nothing.
    assert p.on_event(speech_started(), 400.0) == []


def test_player_sends_nothing_when_no_answer_plays() -> None:
    p = Player()
    assert p.on_event(speech_started(), 0.0) == []  # before any answer
    p.on_event(audio_event("item_a", np.full(2400, 7, np.int16)), 0.0)
    done = parse_event({"type": "response.done", "response": {"id": "r"}}, 0.1)
    assert p.on_event(done, 100.0) == [] and not p.pending
    # The answer is complete: the user speaking now is a new turn, not a barge-in.
    assert p.on_event(speech_started(), 150.0) == []
    assert p.truncations == []
    other = parse_event({"type": "rate_limits.updated"}, 0.2)
    assert p.on_event(other, 200.0) == []


def test_player_writes_the_answer_into_a_wav_from_its_first_audio(tmp_path: Path) -> None:
    out = tmp_path / "p.wav"
    p = Player(adaptive=False, prebuffer_ms=20, wav_path=str(out))
    for k in range(5):  # no answer yet: nothing written
        p.tick(k * 10.0)
    x = (np.arange(2400) % 200 - 100).astype(np.int16)
    p.on_event(audio_event("item_a", x), 50.0)
    p.on_event(parse_event({"type": "response.done", "response": {}}, 0.0), 50.0)
    for k in range(5, 20):
        p.tick(k * 10.0)
    p.close()
    assert np.array_equal(read_wav(out)[: len(x)], x)


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
