"""voxwire.asr: PocketSphinx on the bundled clip, and transcripts through a real server.

PocketSphinx's bundled US English model does poorly on the eSpeak NG clip: measured, it hears
"oh what i will go for two weeks in a zoo" for "Hello! I would like to book a table for two,
tomorrow evening at seven." (word error rate 0.86: 12 edits for 14 words; "i", "for" and
"two" right). The thresholds below check that decoding works and hears speech, not that it is
accurate.
"""

from __future__ import annotations

import base64
import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from test_server import KEY, append_all, connect, server, talk, until

from voxwire import clips
from voxwire.asr import PocketSphinxASR, default_asr, load_asr
from voxwire.workers import IsolatedASR

pytestmark = pytest.mark.timeout(120)

#: Measured 0.86 (12 word edits for 14 reference words); garbage or nothing would exceed it.
MAX_WER = 0.9


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def wer(ref: str, hyp: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    r, h = words(ref), words(hyp)
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
    return row[len(h)] / max(1, len(r))


def test_wer_helper() -> None:
    assert wer("a b c d", "a b c d") == 0.0
    assert wer("a b c d", "a x c") == 0.5
    assert wer("a b", "") == 1.0


@pytest.fixture(scope="module")
def asr() -> PocketSphinxASR:
    a = PocketSphinxASR()
    a.warm()
    return a


@pytest.mark.slow
def test_the_clip_is_transcribed(asr: PocketSphinxASR) -> None:
    x, rate = clips.hello()
    t0 = time.perf_counter()
    text = asr.transcribe(x, rate)
    took = time.perf_counter() - t0
    print(f"\ntranscribed 4.6 s in {took:.2f} s: {text!r} (WER {wer(clips.HELLO_TEXT, text):.2f})")
    assert text and text == text.strip()
    assert wer(clips.HELLO_TEXT, text) <= MAX_WER
    assert {"for", "two"} <= set(words(text))


def test_silence_and_too_little_audio_give_nothing(asr: PocketSphinxASR) -> None:
    assert asr.transcribe(np.zeros(24000, np.int16), 24000) == ""
    noise = np.random.default_rng(1).standard_normal(16000) * 20  # about -64 dBFS
    assert asr.transcribe(noise.astype(np.int16), 16000) == ""
    assert asr.transcribe(np.zeros(10, np.int16), 24000) == ""


@pytest.mark.slow
def test_concurrent_calls_agree(asr: PocketSphinxASR) -> None:
    x, rate = clips.hello()
    x = x[: rate * 2]
    alone = asr.transcribe(x, rate)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(asr.transcribe(x, rate))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [alone, alone]


@pytest.mark.slow
def test_partial_asr_goes_on_where_it_was_and_agrees_with_a_fresh_decode() -> None:
    """Growing prefixes of one turn, fed to one PocketSphinxPartialASR (which decodes only
    the new audio each time), give the hypotheses each prefix gets decoded from its start;
    audio that does not extend the last starts a new utterance, from the model's initial
    state (no carry-over from the turn before)."""
    from voxwire.asr import PocketSphinxPartialASR

    x, rate = clips.hello()
    prefixes = [x[: rate * 3 // 2], x[: rate * 3], x]
    live, ref = PocketSphinxPartialASR(), PocketSphinxPartialASR()
    hyps = [live.transcribe(p, rate) for p in prefixes]
    # Longest first: each call to ref is a new utterance (a restart).
    assert [ref.transcribe(p, rate) for p in reversed(prefixes)] == hyps[::-1]
    assert hyps[-1] and len(set(hyps)) >= 3  # it hears more as the turn grows
    other = x[len(x) // 2 :]  # not an extension of what came before: a new turn
    assert live.transcribe(other, rate) == PocketSphinxPartialASR().transcribe(other, rate)


def test_load_partial_asr() -> None:
    from voxwire.asr import load_partial_asr

    assert load_partial_asr("none") is None
    pool = load_partial_asr("auto")
    assert isinstance(pool, IsolatedASR) and pool.workers == 1 and pool.max_pending == 0
    pool.close()
    with pytest.raises(ValueError):
        load_partial_asr("whisper")


def test_loading() -> None:
    assert isinstance(default_asr(), PocketSphinxASR)
    assert load_asr("none") is None
    # In worker processes unless asked otherwise (no worker starts before the first call).
    for spec in ("pocketsphinx", "auto"):
        isolated = load_asr(spec)
        assert isinstance(isolated, IsolatedASR) and isolated.worker_pids == []
        assert isolated.factory == "voxwire.asr:PocketSphinxASR"
    assert isinstance(load_asr("pocketsphinx", isolated=False), PocketSphinxASR)
    with pytest.raises(ValueError):
        load_asr("whisper")


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_server_sends_the_transcript_and_the_echo_carries_it(beta: bool) -> None:
    with (
        server("--api-key", KEY, "--asr", "pocketsphinx") as (port, _),
        connect(port, beta) as conn,
    ):
        created = until(conn, "session.created")[-1]
        if beta:
            assert created.session.input_audio_transcription is None
            conn.session.update(session={"input_audio_transcription": {"model": "whisper-1"}})
        else:
            assert created.session.audio.input.transcription is None
            conn.session.update(
                session={"type": "realtime", "audio": {"input": {"transcription": {"model": "x"}}}}
            )
        upd = until(conn, "session.updated")[-1]
        if beta:
            assert upd.session.input_audio_transcription.model == "pocketsphinx"
        else:
            assert upd.session.audio.input.transcription.model == "pocketsphinx"
        x, _, _ = talk()
        append_all(conn, x)
        evs = until(conn, "response.done")
        kinds = [e.type for e in evs]
        done = next(
            e for e in evs if e.type == "conversation.item.input_audio_transcription.completed"
        )
        committed = next(e for e in evs if e.type == "input_audio_buffer.committed")
        assert done.item_id == committed.item_id and done.content_index == 0
        assert done.transcript and wer(clips.HELLO_TEXT, done.transcript) <= MAX_WER
        tr_name = (
            "response.audio_transcript.done" if beta else "response.output_audio_transcript.done"
        )
        assert kinds.index(done.type) < kinds.index(tr_name)
        echo = next(e for e in evs if e.type == tr_name)
        assert echo.transcript == done.transcript
        audio_name = "response.audio.delta" if beta else "response.output_audio.delta"
        assert sum(len(base64.b64decode(e.delta)) for e in evs if e.type == audio_name) > 0
        # The user item keeps its transcript.
        conn.conversation.item.retrieve(item_id=done.item_id)
        item = until(conn, "conversation.item.retrieved")[-1].item
        assert item.content[0].transcript == done.transcript


@pytest.mark.slow
@pytest.mark.network
def test_without_transcription_on_nothing_is_transcribed() -> None:
    """Transcription is opt-in per session (it costs about real time): off, the answer is
    not delayed by the ASR and carries no transcript."""
    with server("--asr", "pocketsphinx") as (port, _), connect(port, False) as conn:
        until(conn, "session.created")
        x, _, _ = talk()
        append_all(conn, x)
        evs = until(conn, "response.done")
        kinds = [e.type for e in evs]
        assert "conversation.item.input_audio_transcription.completed" not in kinds
        echo = next(e for e in evs if e.type == "response.output_audio_transcript.done")
        assert echo.transcript == ""


@pytest.mark.slow
@pytest.mark.network
def test_asr_none_leaves_audio_turns_untranscribed() -> None:
    with server("--asr", "none") as (port, _), connect(port, False) as conn:
        until(conn, "session.created")
        conn.session.update(
            session={"type": "realtime", "audio": {"input": {"transcription": {"model": "x"}}}}
        )
        until(conn, "session.updated")
        x, _, _ = talk()
        append_all(conn, x)
        evs = until(conn, "response.done")
        assert "conversation.item.input_audio_transcription.completed" not in [e.type for e in evs]
        echo = next(e for e in evs if e.type == "response.output_audio_transcript.done")
        assert echo.transcript == ""
