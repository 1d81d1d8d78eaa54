"""semantic_vad takes the partial transcript's text hint (issue 24): the server decodes the
turn so far as soon as a pause begins and tells the end-of-turn rule whether the words leave
a sentence open (:func:`voxwire.hint.text_hint`).

A real server on 127.0.0.1 (in this process, on its own event loop thread) with a partial ASR
plugin that always hears the same words, and the synthetic voice of
tests/core/test_semantic_turn.py (the spectral VAD hears it as speech): a phrase whose pitch
falls (judged complete: at high eagerness the turn ends well before 700 ms into the pause), a 700 ms
pause, a second phrase. Words ending in "and" keep the turn open through the pause; words
ending in a content word leave the prosody's judgement alone; server_vad ignores the words.
The engine's side (which hints apply, which are stale) is checked on the sans-I/O session.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from loop_server import LoopServer
from websockets.sync.client import connect as ws_connect
from websockets.sync.connection import Connection

from voxwire.dialects import OpenAIDialect
from voxwire.platform import ServerConfig
from voxwire.session import Session
from voxwire.session import events as ev
from voxwire.store import SQLiteStore

KEY = "sk-hint-test"
IN = 24000  # the OpenAI dialect's input rate
#: Voice 1.0-2.2 s (falling end), pause 2.2-2.9 s, voice 2.9-3.9 s (falling end), then quiet.
PAUSE_START_MS, PAUSE_END_MS = 2200, 2900


def voiced(f0: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A harmonic voice following the pitch contour ``f0`` (Hz per sample)."""
    ph = 2 * np.pi * np.cumsum(f0) / IN
    return np.asarray(sum(np.sin(k * ph) / k for k in range(1, 10)) * 5000)


def falling(seconds: float) -> npt.NDArray[np.float64]:
    """A 140 Hz voice whose last 400 ms fall 4 semitones (a statement's end: judged complete,
    but not so surely that words leaving the sentence open cannot outweigh it)."""
    f = np.full(int(IN * seconds), 140.0)
    m = int(IN * 0.4)
    f[-m:] = 140 * 2 ** (np.linspace(0, -4.0, m) / 12)
    return voiced(f)


def talk() -> npt.NDArray[np.int16]:
    """Two phrases with falling ends and a 700 ms pause between them."""
    z = np.zeros
    x = np.concatenate([z(IN), falling(1.2), z(IN * 7 // 10), falling(1.0), z(IN * 5 // 2)])
    x = x + np.random.default_rng(5).standard_normal(len(x)) * 30  # a quiet noise floor
    out: npt.NDArray[np.int16] = np.clip(x, -32768, 32767).astype(np.int16)
    return out


class HeardASR:
    """A partial ASR (the :class:`voxwire.asr.AsyncASR` protocol) that hears ``words``.

    It answers at once, on the server's loop, so the hint is applied before the server reads
    the next message; ``calls`` counts its decodes, ``called`` is set at the first.
    """

    def __init__(self, words: str) -> None:
        self.words = words
        self.calls = 0
        self.called = threading.Event()

    async def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The same words for any audio."""
        assert sample_rate == IN and len(pcm) > 0
        self.calls += 1
        self.called.set()
        return self.words


class Server(LoopServer):
    """``serve_websockets`` on a free loopback port, on an event loop thread of its own."""

    def __init__(self, tmp: Path, asr: HeardASR | HeldASR) -> None:
        self.config = ServerConfig(
            api_keys=frozenset({KEY}),
            vad_engine="spectral",
            partial_asr=asr,
            partial_transcript_ms=1_000_000,  # no periodic partials: only the pauses'
            store=SQLiteStore(tmp / "store.db"),
        )
        super().__init__(self.config)


def recv_until(ws: Connection, kind: str, got: list[str]) -> None:
    """Reads events (their types into ``got``) up to the first of type ``kind``."""
    for _ in range(10_000):
        e = json.loads(ws.recv(timeout=30))
        got.append(e["type"])
        if e["type"] == "error":
            raise AssertionError(f"error while waiting for {kind}: {e['error']}")
        if e["type"] == kind:
            return
    raise AssertionError(f"no {kind}")


def send_audio(ws: Connection, x: npt.NDArray[np.int16]) -> None:
    """``input_audio_buffer.append`` in 40 ms blocks."""
    step = IN * 40 // 1000
    for i in range(0, len(x), step):
        b64 = base64.b64encode(x[i : i + step].astype("<i2").tobytes()).decode()
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))


def start_session(ws: Connection, kind: str, got: list[str]) -> None:
    """Waits for the session and sets turn detection ``kind`` (semantic_vad at high
    eagerness, server_vad at 500 ms), with no responses."""
    recv_until(ws, "session.created", got)
    td: dict[str, Any] = {"type": kind, "create_response": False}
    if kind == "semantic_vad":
        td["eagerness"] = "high"
    else:
        td["silence_duration_ms"] = 500
    update = {"type": "realtime", "audio": {"input": {"turn_detection": td}}}
    ws.send(json.dumps({"type": "session.update", "session": update}))
    recv_until(ws, "session.updated", got)


def settle(ws: Connection, got: list[str]) -> None:
    """Reads up to the reply to a new message: every event of the audio before it."""
    ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    recv_until(ws, "session.updated", got)


def stops_at_the_pause(tmp: Path, words: str, kind: str) -> tuple[list[str], HeardASR]:
    """The event types of one session that sends :func:`talk` with turn detection ``kind``
    (high eagerness, no responses) and a partial ASR hearing ``words``."""
    asr = HeardASR(words)
    srv = Server(tmp, asr)
    got: list[str] = []
    try:
        url = f"ws://127.0.0.1:{srv.port}/v1/realtime?model=gpt-realtime"
        with ws_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            start_session(ws, kind, got)
            x = talk()
            cut = IN * (PAUSE_START_MS + 100) // 1000
            send_audio(ws, x[:cut])  # the speech and 100 ms of the pause
            if kind == "semantic_vad":
                # The pause's partial was started at its first frame; the hint is applied
                # on the server's loop before the next message is read.
                assert asr.called.wait(30), "no partial transcript at the pause"
            send_audio(ws, x[cut:])
            settle(ws, got)
    finally:
        srv.close()
    return got, asr


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(120)
def test_an_open_sentence_keeps_a_semantic_vad_turn_open_through_the_pause(
    tmp_path: Path,
) -> None:
    """Words ending in "and" keep the turn open through the 700 ms pause (one turn); words
    ending in a content word give no hint, and the falling pitch ends the turn in the
    pause (two turns)."""
    got, asr = stops_at_the_pause(tmp_path, "i would like a table and", "semantic_vad")
    assert got.count("input_audio_buffer.speech_started") == 1, got
    assert got.count("input_audio_buffer.speech_stopped") == 1, got
    assert asr.calls == 2  # the pause's partial and the end's
    got, asr = stops_at_the_pause(tmp_path, "i would like a table", "semantic_vad")
    assert got.count("input_audio_buffer.speech_started") == 2, got
    assert got.count("input_audio_buffer.speech_stopped") == 2, got
    assert asr.calls >= 1


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(120)
def test_server_vad_ignores_the_words(tmp_path: Path) -> None:
    """server_vad (500 ms) ends the turn in the 700 ms pause whatever the words, and runs no
    partial transcript for a hint (transcription is off, periodic partials disabled)."""
    got, asr = stops_at_the_pause(tmp_path, "i would like a table and", "server_vad")
    assert got.count("input_audio_buffer.speech_stopped") == 2, got
    assert asr.calls == 0


# -- the session engine's side ---------------------------------------------------------------


def session(kind: str) -> Session:
    td = ev.TurnDetection(type=kind, eagerness="high")  # type: ignore[arg-type]
    s = Session(
        OpenAIDialect(),
        vad_engine="spectral",
        state=ev.SessionState(id="", model="m", turn_detection=td),
    )
    s.messages_to_send()
    return s


def feed(s: Session, x: npt.NDArray[np.int16], on_pause: Any = None) -> list[dict[str, Any]]:
    """Appends ``x`` in 20 ms messages; calls ``on_pause(s, pauses)`` at each new pause.

    Returns the ``speech_stopped`` events.
    """
    stopped: list[dict[str, Any]] = []
    pauses: list[tuple[str, int]] = []
    for i in range(0, len(x), 480):
        b64 = base64.b64encode(x[i : i + 480].astype("<i2").tobytes()).decode()
        s.receive(json.dumps({"type": "input_audio_buffer.append", "audio": b64}), 0.0)
        p = s.turn_pause
        if p is not None and (not pauses or pauses[-1][1] != p):
            assert s.speech_item is not None
            pauses.append((s.speech_item, p))
            if on_pause is not None:
                on_pause(s, pauses)
        msgs = [json.loads(m) for m in s.messages_to_send()]
        stopped += [m for m in msgs if m["type"] == "input_audio_buffer.speech_stopped"]
    return stopped


def test_the_session_applies_a_hint_only_to_the_pause_it_was_made_for() -> None:
    """``turn_pause`` names the pause being judged (where the speech before it ended, on the
    session's timeline); ``set_turn_hint`` applies to that pause of that turn only: not to
    a later pause of the turn (the speech resumed since), nor to another turn."""
    applied: list[bool] = []

    def fresh(s: Session, pauses: list[tuple[str, int]]) -> None:
        item, p = pauses[-1]
        applied.append(s.set_turn_hint(False, item_id=item, pause_ms=p))

    s = session("semantic_vad")
    (hinted,) = feed(s, talk(), fresh)
    assert applied == [True, True]
    # Words that leave the sentence open: the end waits longer than the prosody alone.
    assert hinted["audio_end_ms"] > 3900 + 500, hinted

    def stale(s: Session, pauses: list[tuple[str, int]]) -> None:
        item, p = pauses[-1]
        if len(pauses) == 1:  # the first pause: applied
            applied.append(s.set_turn_hint(False, item_id=item, pause_ms=p))
        else:  # the second: the first pause's words, and another turn's, are stale
            assert item == pauses[0][0]
            applied.append(s.set_turn_hint(False, item_id=item, pause_ms=pauses[0][1]))
            applied.append(s.set_turn_hint(False, item_id="item_other", pause_ms=p))

    applied.clear()
    s = session("semantic_vad")
    (end,) = feed(s, talk(), stale)
    assert applied == [True, False, False]
    assert end["audio_end_ms"] < hinted["audio_end_ms"] - 300, (end, hinted)
    # After the turn: nothing to hint.
    assert s.turn_pause is None and s.set_turn_hint(False, item_id=end["item_id"]) is False


def test_server_vad_sessions_have_no_pause_to_hint() -> None:
    """server_vad ends the turn in the pause; there is never a pause being judged."""
    s = session("server_vad")
    seen: list[int] = []
    stopped = feed(s, talk(), lambda s, pauses: seen.append(1))
    assert len(stopped) == 2 and seen == []
    assert s.turn_pause is None and s.set_turn_hint(False) is False


class HeldASR:
    """A partial ASR whose decodes each wait (on the server's loop, without blocking it)
    until the test releases them: ``started[k]`` is set when decode ``k`` begins, setting
    ``release[k]`` lets it answer ``words[k]``."""

    def __init__(self, *words: str) -> None:
        self.words = words
        self.started = [threading.Event() for _ in words]
        self.release = [threading.Event() for _ in words]
        self.calls = 0

    async def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """``words[k]`` for the ``k``-th decode, once released ("" past the last)."""
        k = self.calls
        self.calls += 1
        if k >= len(self.words):
            return ""
        self.started[k].set()
        for _ in range(60_000):  # at most 5 minutes (the test's timeout comes first)
            if self.release[k].is_set():
                break
            await asyncio.sleep(0.005)
        return self.words[k]


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(120)
def test_words_heard_before_the_speech_resumed_do_not_hold_a_later_pause(
    tmp_path: Path,
) -> None:
    """A short pause (200 ms: too short to end the turn) starts a partial that answers
    "... and" only once the user has spoken on and paused again: that answer is stale and
    is dropped; the second pause gets a partial of its own (started when the first one
    ends; its answer is held back here, so no hint at all), and the falling pitch ends the
    turn 300 ms into it. Applied, the stale hint would hold the turn open."""
    z = np.zeros
    x = np.concatenate(
        [z(IN), falling(1.2), z(IN // 5), falling(1.0), z(IN * 7 // 10), falling(1.0), z(IN * 2)]
    )
    x = x + np.random.default_rng(5).standard_normal(len(x)) * 30
    pcm = np.clip(x, -32768, 32767).astype(np.int16)
    first, second = 2200, 3400  # the pauses begin (ms)
    asr = HeldASR("i would like a table and", "i would like a table and then")
    srv = Server(tmp_path, asr)
    got: list[str] = []
    try:
        url = f"ws://127.0.0.1:{srv.port}/v1/realtime?model=gpt-realtime"
        with ws_connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            start_session(ws, "semantic_vad", got)
            cut = IN * (first + 100) // 1000
            send_audio(ws, pcm[:cut])
            assert asr.started[0].wait(30), "no partial at the first pause"
            cut2 = IN * (second + 100) // 1000
            send_audio(ws, pcm[cut:cut2])  # speech again, and 100 ms of the second pause
            settle(ws, got)
            asr.release[0].set()  # the first pause's words come now, stale
            assert asr.started[1].wait(30), "no partial at the second pause"
            send_audio(ws, pcm[cut2:])
            settle(ws, got)
            asr.release[1].set()
    finally:
        srv.close()
    assert got.count("input_audio_buffer.speech_stopped") == 2, got
