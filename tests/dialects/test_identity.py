"""The session engine driven through the identity dialect: no vendor's names anywhere."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from identity import IdentityDialect

from voxwire import clips
from voxwire.session import Limits, Session
from voxwire.session import events as ev


def new_session() -> tuple[Session, ev.SequentialIds]:
    ids = ev.SequentialIds()
    return Session(IdentityDialect(ids), now=0.0, ids=ids, limits=Limits()), ids


def sent(s: Session) -> list[dict[str, Any]]:
    return [json.loads(m) for m in s.messages_to_send()]


def test_text_turn_with_deterministic_ids() -> None:
    s, _ = new_session()
    assert [m["fact"] for m in sent(s)] == ["SessionCreated"]
    s.receive(json.dumps({"intent": "CreateText", "text": "hello"}), 1.0)
    s.receive(json.dumps({"intent": "CreateResponse", "modalities": ["text"]}), 1.0)
    out = sent(s)
    assert [m["fact"] for m in out] == [
        "ItemAdded",
        "ItemDone",
        "ResponseCreated",
        "OutputItemAdded",
        "ItemAdded",
        "ContentPartAdded",
    ]
    assert out[0]["item"]["id"] == "item_0001"
    rid = out[2]["response"]["id"]
    assert rid == "resp_0001"
    start = [e for e in s.events() if isinstance(e, ev.StartResponse)]
    assert start[0].turn.text == "hello"
    s.agent_text(rid, "hi there", 1.1)
    s.agent_done(rid, 1.2)
    facts = [m["fact"] for m in sent(s)]
    assert facts[0] == "ResponseTextDelta"
    assert "ResponseDone" in facts


def test_errors_are_kinds_with_params_not_vendor_text() -> None:
    s, _ = new_session()
    sent(s)
    s.receive(json.dumps({"intent": "DeleteItem", "item_id": "nope", "event_id": "e1"}), 1.0)
    s.receive(json.dumps({"intent": "CancelResponse"}), 1.0)
    s.receive(json.dumps({"intent": "CommitAudio"}), 1.0)
    s.receive(json.dumps({"intent": "AppendAudio", "audio": "!!"}), 1.0)
    errs = sent(s)
    assert [(e["fact"], e["kind"]) for e in errs] == [
        ("Error", "item_missing"),
        ("Error", "cancel_not_active"),
        ("Error", "commit_too_small"),
        ("Error", "audio_invalid"),
    ]
    assert errs[0]["params"] == {"op": "delete", "item_id": "nope"}
    assert errs[0]["event_id"] == "e1"
    assert errs[2]["params"]["min_ms"] == 100


def test_buffer_full_is_its_own_kind() -> None:
    ids = ev.SequentialIds()
    s = Session(IdentityDialect(ids), now=0.0, ids=ids, limits=Limits(max_buffer_ms=1000))
    s.receive(json.dumps({"intent": "UpdateSession", "turn_detection": None}), 0.0)
    chunk = base64.b64encode(np.zeros(24000 // 2, np.int16).tobytes()).decode()  # 500 ms
    sent(s)
    for k in range(3):
        s.receive(json.dumps({"intent": "AppendAudio", "audio": chunk}), 0.1 * k)
    errs = [m for m in sent(s) if m["fact"] == "Error"]
    assert [e["kind"] for e in errs] == ["buffer_full"]
    assert errs[0]["params"]["max_ms"] == 1000


def test_speech_turn_from_real_speech() -> None:
    s, _ = new_session()
    sent(s)
    audio, _, _ = clips.turn(0.5, 1.0)
    pcm24 = audio  # clips.turn is 24 kHz
    step = 480
    for k in range(0, len(pcm24) - step, step):
        b64 = base64.b64encode(pcm24[k : k + step].tobytes()).decode()
        s.receive(json.dumps({"intent": "AppendAudio", "audio": b64}), k / 24000)
    facts = [m["fact"] for m in sent(s)]
    assert (
        facts.index("InputSpeechStarted")
        < facts.index("InputSpeechStopped")
        < facts.index("ResponseCreated")
    )


def test_agent_turns_carry_history_context_and_greetings() -> None:
    ids = ev.SequentialIds()
    ctx = ev.SessionContext(principal="user:ann", agent_id="echo", variables={"name": "Ann"})
    s = Session(IdentityDialect(ids), now=0.0, ids=ids, context=ctx)
    s.greet(0.0)
    start = [e for e in s.events() if isinstance(e, ev.StartResponse)]
    assert start[0].turn.kind == "greeting"
    assert start[0].turn.context.variables == {"name": "Ann"}
    assert start[0].turn.history == ()
    rid = start[0].response_id
    s.agent_text(rid, "Hello Ann", 0.1)
    s.agent_done(rid, 0.2)
    s.receive(json.dumps({"intent": "CreateText", "text": "first"}), 1.0)
    s.receive(json.dumps({"intent": "CreateResponse", "modalities": ["text"]}), 1.0)
    start = [e for e in s.events() if isinstance(e, ev.StartResponse)]
    turn = start[0].turn
    assert (turn.kind, turn.text) == ("user", "first")
    assert [(h.role, h.text) for h in turn.history] == [("assistant", "Hello Ann")]
    assert turn.context.principal == "user:ann"
    s.agent_end_conversation(start[0].response_id, "goodbye", 1.1)
    assert [m["reason"] for m in sent(s) if m["fact"] == "ConversationEnded"] == ["goodbye"]
