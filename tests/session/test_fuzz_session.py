"""Fuzzing the OpenAI dialect's decoder and the session engine (issue 19).

A hypothesis state machine drives a real :class:`voxwire.session.Session` with a mix of
well-formed client events (with hostile values), mutated ones, random JSON and random bytes,
plus agent output and time. After every step: nothing escaped (the engine promises never to
raise), every wire message is a JSON object with a ``type``, the conversation stays within
its limits, and the response lifecycle is consistent.

``VOXWIRE_FUZZ_EXAMPLES`` sets how many runs (default 60, a few seconds) and
``VOXWIRE_FUZZ_STEPS`` the most steps a run (default 40); the long run (10^5 client messages
and more): ``VOXWIRE_FUZZ_EXAMPLES=8000 VOXWIRE_FUZZ_STEPS=200 pytest -s
tests/session/test_fuzz_session.py``.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import numpy as np
import pytest
from fuzz_json import json_leaf, json_value
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from voxwire.dialects import OpenAIDialect
from voxwire.dialects.openai import CLIENT_TYPES
from voxwire.session import Limits, Phase, Session
from voxwire.session import events as ev

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("VOXWIRE_FUZZ_EXAMPLES", "60"))
#: Client messages sent in this run (printed with ``-s`` at the end of a long run).
SENT = [0]

LIMITS = Limits(max_items=20, max_conversation_bytes=200_000, max_response_events=300)


def pcm_b64(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 3000).astype(np.int16)
    return base64.b64encode(x.tobytes()).decode()


@st.composite
def client_event(draw: st.DrawFn, item_ids: list[str]) -> str | bytes:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "json", "bytes", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "text":
        return draw(st.text(max_size=64))
    if kind == "json":
        return json.dumps(draw(json_value))
    t = draw(st.sampled_from(CLIENT_TYPES))
    some_id = draw(st.sampled_from([*item_ids, "item_nope", "", "root"]))
    msg: dict[str, Any] = {"type": t}
    if t == "session.update":
        msg["session"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "modalities": st.sampled_from([["text"], ["audio", "text"], ["x"], []]),
                    "instructions": st.text(max_size=20),
                    "input_audio_format": st.sampled_from(
                        ["pcm16", "g711_ulaw", "g711_alaw", "mp3", 7]
                    ),
                    "output_audio_format": st.sampled_from(["pcm16", "g711_ulaw", "bogus"]),
                    "turn_detection": st.one_of(
                        st.none(),
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["server_vad", "semantic_vad", "x"])},
                            optional={
                                "threshold": st.floats(allow_nan=True),
                                "silence_duration_ms": st.integers(-(2**40), 2**40),
                                "prefix_padding_ms": st.integers(-(2**40), 2**40),
                            },
                        ),
                    ),
                    "voice": st.text(max_size=8),
                },
            )
        )
    elif t == "input_audio_buffer.append":
        msg["audio"] = draw(
            st.one_of(
                st.integers(0, 2000).map(lambda n: pcm_b64(n, n)),
                st.text(max_size=12),
                st.just("AAAA\ud800"),
                st.just(""),
            )
        )
    elif t == "conversation.item.create":
        msg["item"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "type": st.just("message"),
                        "role": st.sampled_from(["user", "assistant", "system", "x"]),
                        "content": st.lists(
                            st.one_of(
                                st.fixed_dictionaries(
                                    {"type": st.just("input_text"), "text": st.text(max_size=30)}
                                ),
                                st.fixed_dictionaries(
                                    {
                                        "type": st.just("input_audio"),
                                        "audio": st.integers(0, 500).map(lambda n: pcm_b64(n, 1)),
                                    }
                                ),
                            ),
                            max_size=3,
                        ),
                    }
                ),
                json_value,
            )
        )
        if draw(st.booleans()):
            msg["previous_item_id"] = some_id
    elif t == "conversation.item.truncate":
        msg.update(
            item_id=some_id,
            content_index=draw(st.integers(-2, 2)),
            audio_end_ms=draw(st.integers(-(2**40), 2**40)),
        )
    elif t in ("conversation.item.delete", "conversation.item.retrieve"):
        msg["item_id"] = some_id
    elif t == "response.create":
        msg["response"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"modalities": st.sampled_from([["text"], ["audio", "text"]])}
                ),
                json_value,
            )
        )
    elif t == "response.cancel" and draw(st.booleans()):
        msg["response_id"] = draw(st.text(max_size=10))
    if draw(st.booleans()):
        msg["event_id"] = draw(st.one_of(st.text(max_size=10), json_leaf))
    if kind == "mutated":
        key = draw(st.sampled_from(sorted(msg)))
        msg[key] = draw(json_value)
    return json.dumps(msg)


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.session = Session(OpenAIDialect(), now=self.now, limits=LIMITS)
        self.item_ids: list[str] = []
        self.responses: list[str] = []
        self.drain()

    def drain(self) -> None:
        for m in self.session.messages_to_send():
            obj = json.loads(m)
            assert isinstance(obj, dict) and isinstance(obj.get("type"), str)
            if obj["type"] == "error":
                # An internal error the engine's guard caught is a bug all the same.
                assert "had an error while processing" not in obj["error"]["message"], obj
            item = obj.get("item")
            if (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and item["id"] not in self.item_ids
            ):
                self.item_ids.append(item["id"])
                del self.item_ids[:-30]
        for e in self.session.events():
            if isinstance(e, ev.StartResponse):
                self.responses.append(e.response_id)

    @rule(data=st.data())
    def client_sends(self, data: st.DataObject) -> None:
        msg = data.draw(client_event(self.item_ids))
        self.now += data.draw(st.floats(0, 2))
        self.session.receive(msg, self.now)
        SENT[0] += 1
        self.drain()

    @rule(text=st.text(max_size=50))
    def agent_text(self, text: str) -> None:
        rid = self.session.response_id
        if rid is not None:
            self.session.agent_text(rid, text, self.now)
            self.drain()

    @rule(n=st.integers(0, 3000), rate=st.sampled_from([8000, 16000, 22050, 24000, 48000]))
    def agent_audio(self, n: int, rate: int) -> None:
        rid = self.session.response_id
        if rid is not None:
            pcm = (np.arange(n) % 200 - 100).astype(np.int16) * 50
            self.session.agent_audio(rid, pcm, rate, self.now)
            self.drain()

    @rule(args=st.text(max_size=30))
    def agent_tool(self, args: str) -> None:
        rid = self.session.response_id
        if rid is not None:
            self.session.agent_tool_call(rid, "f", args, "call_1", self.now)
            self.drain()

    @rule(ok=st.booleans())
    def agent_ends(self, ok: bool) -> None:
        rid = self.session.response_id
        if rid is not None:
            if ok:
                self.session.agent_done(rid, self.now)
            else:
                self.session.agent_failed(rid, "boom", self.now)
            self.drain()

    @rule(text=st.text(max_size=30))
    def transcript(self, text: str) -> None:
        if self.item_ids:
            self.session.user_transcript(self.item_ids[-1], text, self.now)
            self.drain()

    @rule(dt=st.floats(0, 400))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.session.tick(self.now)
        self.drain()

    @invariant()
    def consistent(self) -> None:
        s = self.session
        conv = s.conversation
        assert len(conv) <= LIMITS.max_items
        assert conv.nbytes == sum(r.nbytes() for r in conv.records)
        if s.phase is Phase.RESPONDING:
            assert s.response_id is not None
        else:
            assert s.response_id is None


SessionMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=int(os.environ.get("VOXWIRE_FUZZ_STEPS", "40")),
    suppress_health_check=list(HealthCheck),
    deadline=None,
)
TestSessionFuzz = SessionMachine.TestCase


def test_zz_report() -> None:
    """Prints how many client messages the state machine sent (run with ``-s``)."""
    print(f"\nfuzz: {EXAMPLES} runs, {SENT[0]} client messages, no failure")
    assert SENT[0] > 0
