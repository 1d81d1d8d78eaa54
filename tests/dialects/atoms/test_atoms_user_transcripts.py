"""The user's ``transcript.delta`` while speaking, then ``transcript`` at commit (seed 004).

A real server with PocketSphinx in worker processes, as ``voxwire serve`` runs it: one pool
for the final transcripts, one for the partial ones. The client follows the seed's guide:
register-call, connect with the token, stream real speech (vad-dev) in 40 ms blocks at the
pace of a microphone, then silence.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from atoms_harness import blocks, connect_url, recv, register_call, running, speech, until
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(180)
pytest.importorskip("pocketsphinx")

from voxwire.asr import (  # noqa: E402  (after the skip)
    PocketSphinxASR,
    isolated_pocketsphinx,
    isolated_pocketsphinx_partial,
)
from voxwire.workers import IsolatedASR  # noqa: E402

RATE = 24000


@pytest.fixture(scope="module")
def pools() -> Iterator[tuple[IsolatedASR, IsolatedASR]]:
    """The final and the partial pool, their models loaded (one call each)."""
    # At normal priority here (serve runs them niced): on a loaded test machine a niced
    # worker may get no CPU while the 4 s of speech stream.
    final = isolated_pocketsphinx(workers=1, nice=0)
    partial = isolated_pocketsphinx_partial(nice=0)

    async def warm() -> None:
        quiet = np.zeros(RATE // 2, np.int16)
        await asyncio.gather(final.transcribe(quiet, RATE), partial.transcribe(quiet, RATE))

    asyncio.run(warm())
    yield final, partial
    final.close()
    partial.close()


def user_events(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in got if e["type"].startswith("transcript") and e["role"] == "user"]


async def speak(ws: Any, pcm: np.ndarray[Any, Any], got: list[dict[str, Any]]) -> None:
    """Stream ``pcm`` in 40 ms blocks at real time, reading what comes meanwhile."""
    for m in blocks(pcm, RATE):
        await ws.send(m)
        await asyncio.sleep(0.04)
        while True:  # what has arrived, without waiting
            try:
                got.append(await recv(ws, timeout=0.001))
            except TimeoutError:
                break


def test_user_deltas_while_speaking_then_the_final_transcript(
    tmp_path: Path, pools: tuple[IsolatedASR, IsolatedASR]
) -> None:
    final_pool, partial_pool = pools
    with running(tmp_path, asr=final_pool, partial_asr=partial_pool) as srv:
        data = register_call(srv.port, "silent")

        async def call() -> tuple[list[dict[str, Any]], int]:
            got: list[dict[str, Any]] = []
            async with connect(connect_url(srv.port, data["access_token"], "silent")) as ws:
                got.append(await recv(ws))
                await speak(ws, speech(RATE), got)
                spoken = len(got)  # events that came while the user was still speaking
                await speak(ws, np.zeros(RATE, np.int16), got)
                await until(ws, "agent_stop_talking", got)
            return got, spoken

        got, spoken = asyncio.run(call())
    kinds = [e["type"] for e in got]
    assert "error" not in kinds
    user = user_events(got)
    finals = [e for e in user if e["type"] == "transcript"]
    assert len(finals) == 1
    heard = finals[0]["text"]
    assert heard.strip()
    deltas = [e["text"] for e in user if e["type"] == "transcript.delta"]
    # Several deltas, all before the final transcript; the last carries the final text.
    assert len(deltas) >= 2, deltas
    assert user[-1]["type"] == "transcript" and deltas[-1] == heard
    # At least one partial came while the speech was still being streamed (how many depends
    # on the machine's load: a partial is skipped while the previous one is decoded).
    assert len(user_events(got[:spoken])) >= 1, deltas
    assert all(d.strip() for d in deltas)
    assert all(a != b for a, b in itertools.pairwise(deltas))  # each one new
    # The final transcript is the ASR's decode of the whole turn: the echo agent answers
    # with the turn's audio, which PocketSphinx (whole-utterance decode) hears as `heard`.
    answer = got[kinds.index("agent_start_talking") :]
    pcm = np.frombuffer(
        b"".join(base64.b64decode(e["audio"]) for e in answer if e["type"] == "output_audio.delta"),
        dtype="<i2",
    ).astype(np.int16)
    assert len(pcm) > RATE
    assert PocketSphinxASR().transcribe(pcm, RATE) == heard
    assert [e["text"] for e in answer if e["type"] == "transcript"] == [heard]


def engine_with_speech(dialect: Any) -> tuple[Any, str]:
    """A session (the sans-I/O engine) fed real speech until the user's turn is in progress."""
    from voxwire.session import Session
    from voxwire.session import events as ev

    state = ev.SessionState(
        id="",
        model="m",
        input_rate=RATE,
        output_rate=RATE,
        turn_detection=ev.TurnDetection(create_response=False),
        transcription=True,
    )
    s = Session(dialect, state=state)
    for k, m in enumerate(blocks(speech(RATE), RATE)):
        s.receive(m, k * 0.04)
        if s.speech_item is not None and s.speech_ms >= 1000:
            break
    item = s.speech_item
    assert item is not None and len(s.speech_audio()) >= RATE  # a second of the turn
    s.messages_to_send()
    return s, item


def test_engine_sends_partials_only_while_their_turn_is_in_progress() -> None:
    from voxwire.dialects.atoms import AtomsDialect

    s, item = engine_with_speech(AtomsDialect())
    head = s.speech_audio()
    s.user_transcript_partial(item, "is there", 1.0)
    s.user_transcript_partial(item, "is there", 1.1)  # unchanged: not sent again
    s.user_transcript_partial(item, "is there a secret", 1.2)
    s.user_transcript_partial("item_other", "not this turn", 1.3)
    sent = [m for m in s.messages_to_send() if isinstance(m, str)]
    assert sent == [
        '{"type":"transcript.delta","role":"user","text":"is there"}',
        '{"type":"transcript.delta","role":"user","text":"is there a secret"}',
    ]
    for k, m in enumerate(blocks(np.zeros(RATE, np.int16), RATE)):  # the turn ends
        s.receive(m, 2.0 + k * 0.04)
    assert s.speech_item is None and len(s.speech_audio()) == 0
    assert len(head) > 0
    s.messages_to_send()
    s.user_transcript_partial(item, "too late", 3.0)  # after its turn: dropped
    assert s.messages_to_send() == []


def test_openai_dialect_sends_nothing_for_partials() -> None:
    from voxwire.dialects.openai import OpenAIDialect

    s, item = engine_with_speech(OpenAIDialect())
    s.user_transcript_partial(item, "is there", 1.0)
    assert s.messages_to_send() == []
