"""run_session's idle timeout (one timer per session) over an in-memory transport."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import numpy as np
import pytest

from voxwire.agents import EchoAgent
from voxwire.dialects import OpenAIDialect
from voxwire.server import Metrics, run_session
from voxwire.session import Limits, Session

pytestmark = pytest.mark.timeout(60)

SILENCE = json.dumps(
    {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(np.zeros(480, np.int16).tobytes()).decode(),
    }
)


class MemoryTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, object]] = []
        self.closed: tuple[int, str] | None = None

    async def recv(self) -> str | bytes | None:
        return await self.inbox.get()

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def types(self) -> list[object]:
        return [m["type"] for m in self.sent]


def new_session(idle_s: float) -> Session:
    return Session(OpenAIDialect(), now=time.monotonic(), limits=Limits(idle_timeout_s=idle_s))


async def drive(t: MemoryTransport, s: Session, m: Metrics | None = None) -> None:
    await run_session(t, s, EchoAgent(tts=None), clock=time.monotonic, metrics=m)


def test_idle_session_is_closed() -> None:
    async def main() -> MemoryTransport:
        t = MemoryTransport()
        await asyncio.wait_for(drive(t, new_session(0.2)), 20)
        return t

    t = asyncio.run(main())
    assert t.closed == (1000, "idle timeout")
    errors = [m for m in t.sent if m["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["session_idle_timeout"]  # type: ignore[index]


@pytest.mark.slow
def test_messages_keep_the_session_open_then_it_times_out() -> None:
    """Messages arriving more often than the timeout, for longer than it: no close until they
    stop; every message is processed (the timer re-arms instead of interrupting)."""

    async def main() -> tuple[MemoryTransport, Session, Metrics, int]:
        t, s, m = MemoryTransport(), new_session(0.3), Metrics()
        task = asyncio.create_task(drive(t, s, m))
        sent = 0
        for _ in range(20):  # 20 x 50 ms = 1 s, over three timeouts
            await asyncio.sleep(0.05)
            assert t.closed is None
            t.inbox.put_nowait(SILENCE)
            sent += 1
        await asyncio.wait_for(task, 20)
        return t, s, m, sent

    t, s, m, sent = asyncio.run(main())
    assert t.closed == (1000, "idle timeout")
    assert m.messages_in == sent
    assert s.audio_received_ms == 20 * sent
    assert t.types().count("error") == 1


def test_client_leaving_ends_the_session_without_close_frame() -> None:
    async def main() -> MemoryTransport:
        t = MemoryTransport()
        t.inbox.put_nowait(SILENCE)
        t.inbox.put_nowait(None)
        await asyncio.wait_for(drive(t, new_session(300.0)), 20)
        return t

    t = asyncio.run(main())
    assert t.closed is None
    assert "error" not in t.types()


def test_outside_cancellation_propagates() -> None:
    async def main() -> tuple[bool, MemoryTransport]:
        t = MemoryTransport()
        task = asyncio.create_task(drive(t, new_session(300.0)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), t

    cancelled, t = asyncio.run(main())
    assert cancelled
    assert t.closed is None


@pytest.mark.slow
def test_closed_sessions_are_freed_without_the_cyclic_collector() -> None:
    """No reference cycles: with the collector off, a session, its runner and its agent's
    state are gone as soon as the session ends (client left mid-response, or closed)."""
    import gc
    import weakref

    from voxwire.server import SessionRunner

    text_turn = [
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hello there " * 50}],
                },
            }
        ),
        json.dumps({"type": "response.create", "response": {"modalities": ["text"]}}),
    ]

    async def one(leave_mid_response: bool) -> tuple[weakref.ref[Session], weakref.ref[object]]:
        t = MemoryTransport()
        s = new_session(300.0)
        runner = SessionRunner(t, s, EchoAgent(tts=None, pace=0.0))
        for m in [SILENCE] * 5 + text_turn:
            t.inbox.put_nowait(m)
        if not leave_mid_response:
            t.inbox.put_nowait(json.dumps({"type": "input_audio_buffer.clear"}))
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0 if leave_mid_response else 0.2)
        t.inbox.put_nowait(None)
        await asyncio.wait_for(task, 10)
        refs = weakref.ref(s), weakref.ref(runner)
        del task, runner, s, t
        return refs

    async def main() -> list[tuple[weakref.ref[Session], weakref.ref[object]]]:
        out = []
        for k in range(6):
            out.append(await one(leave_mid_response=k % 2 == 0))
        await asyncio.sleep(0.05)
        return out

    gc.collect()
    gc.disable()
    try:
        refs = asyncio.run(main())
        alive = [(s() is not None, r() is not None) for s, r in refs]
    finally:
        gc.enable()
    assert alive == [(False, False)] * len(refs)
