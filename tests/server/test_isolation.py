"""ASR and TTS isolated from the event loop: real worker processes, real espeak-ng.

The ASR pool is driven with the stand-in recognizers of ``isolation_asrs`` (slow, failing,
memory-hungry on purpose) and with PocketSphinx through a real ``voxwire serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire import agents
from voxwire.agents import EchoAgent, EspeakTTS, speech_pieces, text_deltas
from voxwire.demo import stop_server
from voxwire.errors import (
    InputTooLargeError,
    OutputLimitError,
    WorkerBusyError,
    WorkerError,
    WorkerTimeoutError,
)
from voxwire.session.events import UserTurn
from voxwire.workers import IsolatedASR

pytestmark = pytest.mark.timeout(120)

STAND_IN = "isolation_asrs:StandInASR"
HAVE_ESPEAK = EspeakTTS.available()
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")


# -- /proc helpers ----------------------------------------------------------------------


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def gone(pid: int) -> bool:
    return state(pid) is None


def not_running(pid: int) -> bool:
    """Gone, or a zombie (dead; an orphan's status is collected by init, if at all)."""
    return state(pid) in (None, "Z")


def children(ppid: int, comm: str | None = None) -> list[int]:
    """Live (non-zombie) child processes of ``ppid``, optionally only those named ``comm``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid and fields[0] != "Z" and (comm is None or name == comm):
            out.append(int(d))
    return out


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def wait_until(cond: Callable[[], bool], limit_s: float = 10.0) -> bool:
    """Poll ``cond`` every 20 ms for at most ``limit_s`` (a bounded wait, not a timing)."""
    for _ in range(int(limit_s / 0.02)):
        if cond():
            return True
        time.sleep(0.02)
    return cond()


async def await_until(cond: Callable[[], bool], limit_s: float = 10.0) -> bool:
    for _ in range(int(limit_s / 0.02)):
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


SECOND = np.full(16000, 100, np.int16)


def text_turn(text: str, modalities: tuple[Any, ...] = ("text",)) -> UserTurn:
    return UserTurn(
        item_id="item_1",
        text=text,
        audio=None,
        sample_rate=24000,
        transcript=None,
        modalities=modalities,
        instructions="",
    )


# -- the ASR pool -------------------------------------------------------------------------


@pytest.mark.slow
def test_transcribes_in_another_process_and_reuses_it() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN)
        try:
            a = await asr.transcribe(SECOND, 16000)
            b = await asr.transcribe(SECOND[:480], 24000)
            pid = int(a.split()[1])
            assert pid != os.getpid() and asr.worker_pids == [pid]
            assert a == f"pid {pid} samples 16000 rate 16000"
            assert b == f"pid {pid} samples 480 rate 24000"
            assert asr.busy_pids == []
        finally:
            await asr.aclose()
        assert gone(pid)

    run(main())


@pytest.mark.slow
def test_a_cancelled_transcription_kills_its_worker() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 60})
        try:
            task = asyncio.create_task(asr.transcribe(SECOND, 16000))
            assert await await_until(lambda: bool(asr.busy_pids))
            pid = asr.busy_pids[0]
            assert state(pid) not in (None, "Z")
            await asyncio.sleep(0.5)  # let it start decoding (it would sleep 60 s)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await await_until(lambda: gone(pid)), state(pid)
            assert asr.worker_pids == []
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_a_timeout_kills_the_worker_and_the_next_call_gets_a_new_one() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 2.0}, timeout_s=0.3)
        try:
            with pytest.raises(WorkerTimeoutError):
                await asr.transcribe(SECOND, 16000)
            assert asr.worker_pids == []
            asr.timeout_s = 30.0
            text = await asr.transcribe(SECOND, 16000)
            assert text.endswith("samples 16000 rate 16000")
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_timed_out_worker_is_gone() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 60}, timeout_s=0.5)
        try:
            asr.start()
            (pid,) = asr.worker_pids
            with pytest.raises(WorkerTimeoutError, match="killed"):
                await asr.transcribe(SECOND, 16000)
            assert await await_until(lambda: gone(pid)), state(pid)
        finally:
            await asr.aclose()

    run(main())


def test_the_queue_is_bounded() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 60}, workers=1, max_pending=2)
        tasks = [asyncio.create_task(asr.transcribe(SECOND, 16000)) for _ in range(3)]
        try:
            assert await await_until(lambda: len(asr.busy_pids) == 1 and asr.pending == 2)
            with pytest.raises(WorkerBusyError):
                await asr.transcribe(SECOND, 16000)
            # One waiting call leaves: there is room for one more.
            tasks[2].cancel()
            assert await await_until(lambda: asr.pending == 1)
            tasks.append(asyncio.create_task(asr.transcribe(SECOND, 16000)))
            assert await await_until(lambda: asr.pending == 2)
            assert len(asr.worker_pids) == 1
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_two_workers_decode_at_once() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 0.5}, workers=2)
        try:
            a, b = await asyncio.gather(
                asr.transcribe(SECOND, 16000), asr.transcribe(SECOND, 16000)
            )
            assert a.split()[1] != b.split()[1]
            assert sorted(asr.worker_pids) == sorted([int(a.split()[1]), int(b.split()[1])])
        finally:
            await asr.aclose()

    run(main())


def test_try_transcribe_skips_when_every_worker_is_busy() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 60}, workers=1, max_pending=4)
        busy = asyncio.create_task(asr.transcribe(SECOND, 16000))
        try:
            assert await await_until(lambda: len(asr.busy_pids) == 1)
            assert asr.free_workers == 0
            assert await asr.try_transcribe(SECOND, 16000) is None  # at once, no waiting
            assert asr.pending == 0
        finally:
            busy.cancel()
            await asyncio.gather(busy, return_exceptions=True)
        try:
            assert asr.free_workers == 1
            quick = IsolatedASR(STAND_IN, workers=1)
            try:
                got = await quick.try_transcribe(SECOND, 16000)
                assert got is not None and got.endswith("samples 16000 rate 16000")
            finally:
                await quick.aclose()
        finally:
            await asr.aclose()

    run(main())


def test_try_transcribe_goes_back_to_the_worker_of_its_key() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, workers=2)
        try:
            a, b = await asyncio.gather(
                asr.try_transcribe(SECOND, 16000, affinity="a"),
                asr.try_transcribe(SECOND, 16000, affinity="b"),
            )
            assert a is not None and b is not None
            pid_a, pid_b = a.split()[1], b.split()[1]
            assert pid_a != pid_b
            for key, pid in (("a", pid_a), ("b", pid_b), ("a", pid_a), ("b", pid_b)):
                got = await asr.try_transcribe(SECOND, 16000, affinity=key)
                assert got is not None and got.split()[1] == pid
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_too_long_audio_is_refused_before_any_work() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, max_audio_s=1.0)
        try:
            with pytest.raises(InputTooLargeError, match="1 s"):
                await asr.transcribe(np.zeros(16001, np.int16), 16000)
            assert asr.worker_pids == []
            assert (await asr.transcribe(np.zeros(16000, np.int16), 16000)).endswith(
                "samples 16000 rate 16000"
            )
        finally:
            await asr.aclose()

    run(main())


def test_bad_input_is_refused() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN)
        with pytest.raises(ValueError, match="int16"):
            await asr.transcribe(np.zeros(10, np.float32), 16000)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mono"):
            await asr.transcribe(np.zeros((10, 2), np.int16), 16000)
        with pytest.raises(ValueError, match="sample_rate"):
            await asr.transcribe(np.zeros(10, np.int16), 0)
        assert asr.worker_pids == []

    run(main())
    with pytest.raises(ValueError, match="picklable"):
        IsolatedASR(lambda: None)


@pytest.mark.slow
def test_an_asr_error_is_typed_and_the_worker_stays() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"fail": True})
        try:
            with pytest.raises(WorkerError, match="ValueError: cannot hear this"):
                await asr.transcribe(SECOND, 16000)
            (pid,) = asr.worker_pids
            with pytest.raises(WorkerError):
                await asr.transcribe(SECOND, 16000)
            assert asr.worker_pids == [pid]
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_a_factory_that_fails_gives_a_typed_error() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"fail_init": True})
        try:
            with pytest.raises(WorkerError, match="could not start: RuntimeError: no model"):
                await asr.transcribe(SECOND, 16000)
            assert asr.worker_pids == []
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_a_worker_killed_from_outside_is_replaced() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN)
        try:
            first = int((await asr.transcribe(SECOND, 16000)).split()[1])
            os.kill(first, signal.SIGKILL)
            assert await await_until(lambda: state(first) == "Z")
            second = int((await asr.transcribe(SECOND, 16000)).split()[1])
            assert second != first and gone(first)
        finally:
            await asr.aclose()

    run(main())


@pytest.mark.slow
def test_a_call_right_after_an_outside_kill_gets_a_fresh_worker() -> None:
    """The kill is not yet visible (no exit status, the socket may still be open): the call
    breaks on the dying worker before any answer, and is made once more on a new one."""

    async def main() -> None:
        asr = IsolatedASR(STAND_IN)
        try:
            for _ in range(5):
                first = int((await asr.transcribe(SECOND, 16000)).split()[1])
                os.kill(first, signal.SIGKILL)
                second = int((await asr.transcribe(SECOND, 16000)).split()[1])
                assert second != first
                assert await await_until(lambda pid=first: gone(pid))
        finally:
            await asr.aclose()

    run(main())


def test_close_kills_busy_workers() -> None:
    async def main() -> None:
        asr = IsolatedASR(STAND_IN, options={"sleep_s": 60})
        task = asyncio.create_task(asr.transcribe(SECOND, 16000))
        assert await await_until(lambda: bool(asr.busy_pids))
        (pid,) = asr.busy_pids
        await asyncio.sleep(0.3)
        await asr.aclose()
        with pytest.raises(WorkerError):
            await task
        assert gone(pid)
        with pytest.raises(WorkerError, match="closed"):
            await asr.transcribe(SECOND, 16000)

    run(main())


@pytest.mark.slow
def test_the_model_lives_in_the_worker() -> None:
    """A recognizer holding 300 MB: the worker's RSS has it, this process's does not."""

    async def main() -> tuple[float, float, float]:
        asr = IsolatedASR(STAND_IN, options={"ballast_mb": 300})
        try:
            before = rss_mb()
            text = await asr.transcribe(SECOND, 16000)
            after = rss_mb()
            return before, after, rss_mb(int(text.split()[1]))
        finally:
            await asr.aclose()

    before, after, worker = run(main())
    assert worker > 300, worker
    assert after - before < 50, (before, after)


@pytest.mark.slow
def test_workers_die_with_their_parent() -> None:
    """The parent is SIGKILLed (no cleanup at all) while its worker decodes."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import numpy as np
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from voxwire.workers import IsolatedASR

        async def main():
            asr = IsolatedASR({STAND_IN!r}, options={{"sleep_s": 60}})
            task = asyncio.create_task(asr.transcribe(np.ones(160, np.int16), 16000))
            while not asr.busy_pids:
                await asyncio.sleep(0.01)
            print(asr.busy_pids[0], flush=True)
            await task

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert state(pid) not in (None, "Z")
        time.sleep(0.5)
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: not_running(pid)), state(pid)
    finally:
        parent.kill()
        parent.wait(10)


# -- TTS ----------------------------------------------------------------------------------


def espeak_children() -> list[int]:
    return children(os.getpid(), "espeak-ng")


@given(st.text(alphabet=st.sampled_from("ab .!?\n;"), max_size=300), st.integers(1, 40))
def test_speech_pieces_keep_every_character_within_the_limit(text: str, limit: int) -> None:
    pieces = list(speech_pieces(text, limit))
    assert all(0 < len(p) <= limit and p == p.strip() for p in pieces)
    assert "".join("".join(p.split()) for p in pieces) == "".join(text.split())


@given(st.text(alphabet=st.sampled_from("ab  c"), max_size=400), st.integers(1, 70))
def test_text_deltas_join_to_the_text(text: str, limit: int) -> None:
    pieces = list(text_deltas(text, limit))
    assert "".join(pieces) == text
    assert all(0 < len(p) <= limit for p in pieces)


def test_speech_pieces_start_with_the_first_sentence() -> None:
    text = "Hello there. " + "This is the rest of it, " * 40 + "the end."
    pieces = list(speech_pieces(text, 400))
    assert pieces[0] == "Hello there."
    # The rest is one sentence of 968 characters: cut at spaces into three.
    assert all(len(p) <= 400 for p in pieces) and len(pieces) == 4
    assert [p.split()[-1] for p in pieces[1:]] == ["rest", "is", "end."]


@needs_espeak
def test_the_stream_is_the_same_speech_as_one_call() -> None:
    async def main() -> None:
        tts = EspeakTTS()
        one = [p async for p in tts.stream("Hello there.")]
        assert {r for _, r in one} == {22050}
        pcm, rate = await tts.synthesize("Hello there.")
        assert rate == 22050 and len(pcm) > 0.5 * rate
        assert np.array_equal(np.concatenate([p for p, _ in one]), pcm)

    run(main())


@pytest.mark.slow
@needs_espeak
def test_81_kb_of_text_streams_in_bounded_memory_and_starts_at_once(tmp_path: Path) -> None:
    """The first audio comes when one espeak-ng has had one short piece; memory stays flat.

    A wrapper (a real shell script in front of espeak-ng) logs the length of the text each
    process gets.
    """
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "espeak-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\nfor a; do last="$a"; done\necho "${{#last}}" >> {log}\n'
        f'exec {EspeakTTS().binary} "$@"\n'
    )
    wrapper.chmod(0o755)
    text = ("This is one sentence of a long answer, with several words in it. " * 1300)[:81920]

    async def main() -> tuple[list[int], float, float, float]:
        tts = EspeakTTS(str(wrapper), max_chars=100_000, max_output_bytes=1 << 30)
        before, peak, samples, at_first = rss_mb(), 0.0, 0, None
        async for pcm, _ in tts.stream(text):
            if at_first is None:
                at_first = [int(x) for x in log.read_text().split()]
            samples += len(pcm)
            peak = max(peak, rss_mb() - before)
        assert at_first is not None
        return at_first, peak, samples / 22050, before

    at_first, peak, seconds, before = run(main())
    calls = [int(x) for x in log.read_text().split()]
    assert len(at_first) == 1 and at_first[0] < 100  # one process, the first sentence
    assert len(calls) > 200 and max(calls) <= 400 and sum(calls) > 80000
    assert seconds > 3600  # over an hour of speech went through
    assert peak < 50, f"RSS grew by {peak:.0f} MB (from {before:.0f} MB)"


@needs_espeak
def test_a_cancelled_answer_kills_espeak() -> None:
    """The agent's task is cancelled as the server cancels it (barge-in): while it waits
    elsewhere, with the TTS generator suspended, not closed."""
    text = "This is one sentence of a long answer, with several words in it. " * 60

    async def main() -> None:
        agent = EchoAgent(tts=EspeakTTS(piece_chars=4000), pace=1.0)
        turn = text_turn(text, ("text", "audio"))
        got = asyncio.Event()

        async def consume() -> None:
            async for out in agent.respond(turn):
                if isinstance(out, agents.AudioChunk):
                    got.set()
                    await asyncio.sleep(60)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got.wait(), 30)
        assert espeak_children(), "espeak-ng should still be writing the long piece"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await await_until(lambda: not espeak_children()), espeak_children()

    run(main())


@needs_espeak
def test_closing_the_stream_kills_and_reaps_espeak() -> None:
    async def main() -> None:
        tts = EspeakTTS(piece_chars=4000)
        stream = tts.stream("word " * 800)
        await stream.__anext__()
        (pid,) = espeak_children()
        await stream.aclose()
        assert gone(pid)

    run(main())


@needs_espeak
def test_too_much_output_kills_espeak() -> None:
    async def main() -> None:
        tts = EspeakTTS(max_output_bytes=100_000, piece_chars=4000)
        with pytest.raises(OutputLimitError):
            async for _ in tts.stream("word " * 800):
                pass
        assert not espeak_children()

    run(main())


def test_a_silent_tts_process_times_out_and_is_killed(tmp_path: Path) -> None:
    stuck = tmp_path / "stuck-tts"
    stuck.write_text("#!/bin/sh\nexec sleep 60\n")
    stuck.chmod(0o755)

    async def main() -> None:
        tts = EspeakTTS(str(stuck), timeout_s=0.3)
        with pytest.raises(WorkerTimeoutError):
            async for _ in tts.stream("hello"):
                pass
        assert not children(os.getpid(), "sleep")

    run(main())


def test_too_long_text_is_refused() -> None:
    async def main() -> None:
        tts = EspeakTTS(max_chars=10)
        with pytest.raises(InputTooLargeError):
            async for _ in tts.stream("x" * 11):
                pass
        outs = [o async for o in EchoAgent(tts=tts).respond(text_turn("x" * 11, ("text", "audio")))]
        assert isinstance(outs[-1], agents.Notice) and outs[-1].code == "audio_unavailable"
        assert "".join(o.text for o in outs if isinstance(o, agents.TextDelta)) == "x" * 11

    run(main())


def test_the_echo_of_a_megabyte_of_one_letter_words_is_few_events() -> None:
    text = " ".join(["a"] * 500_000)  # 999,999 characters

    async def main() -> list[Any]:
        return [o async for o in EchoAgent().respond(text_turn(text))]

    outs = run(main())
    assert len(outs) <= 20_000, len(outs)
    assert all(isinstance(o, agents.TextDelta) and len(o.text) <= 64 for o in outs)
    assert "".join(o.text for o in outs) == text


# -- through a real server ------------------------------------------------------------------


@contextlib.contextmanager
def python_server(setup: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A server run by :func:`voxwire.server.serve` with ``cfg`` built by ``setup``."""
    from voxwire.demo import _free_port

    port = _free_port()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from voxwire.server import ServerConfig, serve
        from voxwire.workers import IsolatedASR
        {setup}
        serve(cfg, "127.0.0.1", {port})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        ok = wait_until(lambda: _healthy(port) or proc.poll() is not None, 30)
        if not ok or proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"server did not start: {err}")
        yield port, proc
    finally:
        stop_server(proc)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(json.load(r))
    except OSError:
        return False


def _transcribing(conn: Any) -> None:
    from test_server import until

    conn.session.update(
        session={
            "type": "realtime",
            "output_modalities": ["text"],
            "audio": {"input": {"transcription": {"model": "x"}}},
        }
    )
    until(conn, "session.updated")


@pytest.mark.slow
@pytest.mark.network
def test_server_asr_timeout_answers_without_a_transcript_and_goes_on() -> None:
    from test_server import append_all, connect, talk, text_turn, until

    setup = (
        f"cfg = ServerConfig(asr=IsolatedASR({STAND_IN!r}, options={{'sleep_s': 60}}, "
        f"timeout_s=1.0))"
    )
    with python_server(setup) as (port, proc), connect(port, False) as conn:
        until(conn, "session.created")
        _transcribing(conn)
        x, _, _ = talk()
        append_all(conn, x)
        evs = []
        for _ in range(5000):
            evs.append(conn.recv())
            if evs[-1].type == "response.done":
                break
        assert evs[-1].response.status == "completed"
        kinds = [e.type for e in evs]
        assert "conversation.item.input_audio_transcription.completed" not in kinds
        # The echo answers a text-only turn without a transcript with a notice.
        errors = [e.error.code for e in evs if e.type == "error"]
        assert errors == ["transcript_unavailable"]
        assert text_turn(conn, False, "still here") == "still here"
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    assert "ASR failed in response" in log and "WorkerTimeoutError" in log
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None,
    reason="pocketsphinx is not installed",
)
def test_server_pocketsphinx_runs_in_a_worker_and_leaves_no_process() -> None:
    from test_server import append_all, connect, server, talk, until

    with server("--asr", "pocketsphinx") as (port, proc):
        workers = [c for c in children(proc.pid) if b"_child_main" in _cmdline(c)]
        assert len(workers) >= 1
        with connect(port, False) as conn:
            until(conn, "session.created")
            _transcribing(conn)
            x, _, _ = talk()
            before = rss_mb(proc.pid)
            append_all(conn, x)
            evs = until(conn, "response.done")
            done = [e for e in evs if e.type.endswith("input_audio_transcription.completed")]
            assert done and done[0].transcript
            after = rss_mb(proc.pid)
        # The decoder (about 100 MB) is in the worker, not in the server.
        assert max(rss_mb(w) for w in workers) > 80
        assert after - before < 30, (before, after)
    assert all(wait_until(lambda w=w: gone(w)) for w in workers)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
@pytest.mark.network
@needs_espeak
def test_server_cancelled_answers_leave_no_espeak() -> None:
    """Ten create/cancel cycles of a long spoken answer, then the client leaves."""
    from test_server import connect, server, until

    text = "This is one sentence of a long answer, with several words in it. " * 60
    with server() as (port, proc):
        with connect(port, False) as conn:
            until(conn, "session.created")
            for _ in range(10):
                conn.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": text}],
                    }
                )
                conn.response.create()
                until(conn, "response.output_audio.delta")
                conn.response.cancel()
                until(conn, "response.done")
        assert wait_until(lambda: not children(proc.pid, "espeak-ng")), children(
            proc.pid, "espeak-ng"
        )


@pytest.mark.slow
@pytest.mark.network
def test_server_echo_of_a_megabyte_of_words_is_few_events() -> None:
    from test_server import connect, server, until

    text = " ".join(["a"] * 500_000)
    with server() as (port, _), connect(port, False) as conn:
        until(conn, "session.created")
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        until(conn, "session.updated")
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        )
        conn.response.create()
        evs = until(conn, "response.done", limit=40_000)
        deltas = [e for e in evs if e.type == "response.output_text.delta"]
        assert len(evs) <= 20_000 and len(deltas) > 1000
        assert "".join(e.delta for e in deltas) == text
