"""The session engine on its own: no sockets, the clock passed in, agent output fed by hand."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voxwire
from voxwire import clips
from voxwire.dialects import OpenAIDialect
from voxwire.dialects.openai import CLIENT_TYPES
from voxwire.session import TRANSITIONS, Limits, Phase, Session
from voxwire.session import events as ev


def msgs(s: Session) -> list[dict[str, Any]]:
    return [json.loads(m) for m in s.messages_to_send()]


def types(s: Session) -> list[str]:
    return [m["type"] for m in msgs(s)]


def send(s: Session, obj: dict[str, Any] | str, now: float = 0.0) -> list[dict[str, Any]]:
    s.receive(obj if isinstance(obj, str) else json.dumps(obj), now)
    return msgs(s)


def b64(x: np.ndarray) -> str:
    return base64.b64encode(x.astype("<i2").tobytes()).decode()


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def talk(pad_before: float = 1.0, pad_after: float = 1.5) -> tuple[np.ndarray, int, int]:
    """The bundled clip between silences (and a faint noise floor); the true speech start and
    end in ms."""
    return clips.turn(pad_before, pad_after, noise=20, seed=3)


def stream(s: Session, x: np.ndarray, chunk: int = 480) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(x), chunk):
        out += send(s, {"type": "input_audio_buffer.append", "audio": b64(x[i : i + chunk])})
    return out


def requests(s: Session) -> list[ev.Event]:
    return [e for e in s.events() if not isinstance(e, ev.Fact)]


def test_session_created_first_then_updates() -> None:
    s = Session(OpenAIDialect(), model="m1")
    (created,) = msgs(s)
    assert created["type"] == "session.created"
    sess = created["session"]
    assert sess["type"] == "realtime" and sess["model"] == "m1"
    assert sess["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert sess["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    (upd,) = send(
        s,
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "output_modalities": ["text"],
                "instructions": "be brief",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
                    },
                    "output": {"format": {"type": "audio/pcma"}, "voice": "verse"},
                },
            },
        },
    )
    su = upd["session"]
    assert upd["type"] == "session.updated"
    assert su["output_modalities"] == ["text"] and su["instructions"] == "be brief"
    assert su["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert su["audio"]["output"] == {
        "format": {"type": "audio/pcma"},
        "voice": "verse",
        "speed": 1.0,
    }
    assert su["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 700
    assert s.state.input_format == "g711_ulaw"


def test_beta_shape_and_names() -> None:
    s = Session(OpenAIDialect(beta=True))
    created = msgs(s)[0]["session"]
    assert created["input_audio_format"] == "pcm16" and "type" not in created
    (upd,) = send(
        s, {"type": "session.update", "session": {"modalities": ["text"], "turn_detection": None}}
    )
    assert upd["session"]["turn_detection"] is None and upd["session"]["modalities"] == ["text"]
    out = send(s, user_text("hi"))
    assert [m["type"] for m in out] == ["conversation.item.created"]
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse) and start.turn.text == "hi"
    s.agent_text(start.response_id, "hi", 0.1)
    s.agent_done(start.response_id, 0.2)
    t = types(s)
    assert "response.text.delta" in t and "response.text.done" in t
    assert "conversation.item.done" not in t and t[-2:] == ["response.done", "rate_limits.updated"]


def test_text_turn_answers_with_the_agent_output() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    send(
        s,
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}},
    )
    added = send(s, user_text("hello world"))
    assert [m["type"] for m in added] == ["conversation.item.added", "conversation.item.done"]
    user_id = added[0]["item"]["id"]
    out = send(s, {"type": "response.create"})
    assert [m["type"] for m in out] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert out[2]["previous_item_id"] == user_id
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse)
    assert start.turn.item_id == user_id and start.turn.text == "hello world"
    rid = start.response_id
    for w in ("hello", " world"):
        s.agent_text(rid, w, 1.0)
    s.agent_done(rid, 1.0)
    out = msgs(s)
    assert [m["delta"] for m in out if m["type"] == "response.output_text.delta"] == [
        "hello",
        " world",
    ]
    done = next(m for m in out if m["type"] == "response.done")["response"]
    assert done["status"] == "completed" and done["id"] == rid
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "hello world"}]
    assert s.phase is Phase.IDLE
    assert requests(s) == [ev.StopResponse(rid)]


def test_server_vad_turn_on_speech() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    x, start, end = talk()
    out = stream(s, x)
    kinds = [m["type"] for m in out]
    assert kinds[:6] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    started, stopped = out[0], out[1]
    # On the audio timeline: start includes the 300 ms prefix padding, stop the 500 ms silence.
    assert abs(started["audio_start_ms"] - (start - 300)) <= 100, (started, start)
    assert abs(stopped["audio_end_ms"] - (end + 500)) <= 100, (stopped, end)
    assert started["item_id"] == stopped["item_id"] == out[2]["item_id"]
    (req,) = [e for e in requests(s) if isinstance(e, ev.StartResponse)]
    turn = req.turn
    assert turn.audio is not None and turn.sample_rate == 24000
    # The committed audio is what was sent, from the padded start to the stop.
    a, b = started["audio_start_ms"] * 24, stopped["audio_end_ms"] * 24
    assert np.array_equal(turn.audio, x[a:b])
    # The agent's audio goes out resampled and base64-encoded, in order.
    rid = req.response_id
    reply = turn.audio[: 24000 * 2]
    ours = voxwire.resample(reply, 24000, 16000)
    for k in range(0, len(ours), 1600):
        s.agent_audio(rid, ours[k : k + 1600], 16000, 2.0)
    s.agent_done(rid, 2.0)
    out = msgs(s)
    audio = b"".join(
        base64.b64decode(m["delta"]) for m in out if m["type"] == "response.output_audio.delta"
    )
    assert audio == voxwire.resample(ours, 16000, 24000).tobytes()
    assert out[-2]["response"]["status"] == "completed"


def test_barge_in_cancels_the_response() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    send(s, user_text("a long answer"))
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse)
    s.agent_text(start.response_id, "talking", 0.5)
    assert [m["type"] for m in msgs(s)] == ["response.output_audio_transcript.delta"]
    x, _, _ = talk(0.2, 0.1)
    out = stream(s, x[: 24000 * 2])
    kinds = [m["type"] for m in out]
    assert kinds[0] == "input_audio_buffer.speech_started"
    done = next(m for m in out if m["type"] == "response.done")["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert ev.StopResponse(start.response_id) in requests(s)
    # Output after the cancel is dropped, not sent.
    s.agent_text(start.response_id, "late", 0.6)
    assert msgs(s) == []


def test_interrupt_response_off_keeps_the_response() -> None:
    s = Session(OpenAIDialect())
    send(
        s,
        {
            "type": "session.update",
            "session": {"audio": {"input": {"turn_detection": {"interrupt_response": False}}}},
        },
    )
    msgs(s)
    send(s, user_text("x"))
    send(s, {"type": "response.create"})
    x, _, _ = talk(0.2, 0.1)
    out = stream(s, x[: 24000 * 2])
    assert "response.done" not in [m["type"] for m in out]
    assert s.phase is Phase.RESPONDING


def test_client_cancel_and_cancel_errors() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    (err,) = send(s, {"type": "response.cancel", "event_id": "c1"})
    assert err["error"]["code"] == "response_cancel_not_active" and err["error"]["event_id"] == "c1"
    send(s, user_text("x"))
    send(s, {"type": "response.create"})
    (dup,) = send(s, {"type": "response.create", "event_id": "c2"})
    assert dup["error"]["code"] == "conversation_already_has_active_response"
    out = send(s, {"type": "response.cancel"})
    done = out[-2]["response"]
    assert done["status_details"]["reason"] == "client_cancelled"
    assert (
        out[-3]["type"] == "response.output_item.done" and out[-3]["item"]["status"] == "incomplete"
    )


@pytest.mark.parametrize(
    ("message", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        (json.dumps({"type": "nope.nope"}), "invalid_value", "type"),
        (json.dumps({"no": "type"}), "missing_required_parameter", "type"),
        (
            json.dumps({"type": "input_audio_buffer.append", "audio": "@@@@"}),
            "invalid_value",
            "audio",
        ),
        (
            json.dumps({"type": "input_audio_buffer.append", "audio": "AAA"}),
            "invalid_value",
            "audio",
        ),
        (json.dumps({"type": "input_audio_buffer.append", "audio": ""}), "invalid_value", "audio"),
        (json.dumps({"type": "input_audio_buffer.append"}), "missing_required_parameter", "audio"),
        (
            json.dumps({"type": "input_audio_buffer.commit"}),
            "input_audio_buffer_commit_empty",
            None,
        ),
        (
            json.dumps({"type": "conversation.item.delete", "item_id": "x"}),
            "item_delete_invalid_item_id",
            "item_id",
        ),
        (
            json.dumps(
                {
                    "type": "conversation.item.truncate",
                    "item_id": "x",
                    "content_index": 0,
                    "audio_end_ms": 5,
                }
            ),
            "item_truncate_invalid_item_id",
            "item_id",
        ),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"format": {"type": "audio/flac"}}}},
                }
            ),
            "invalid_value",
            "session.audio.input.format",
        ),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"turn_detection": {"threshold": 3}}}},
                }
            ),
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_audio", "audio": "!"}],
                    },
                }
            ),
            "invalid_value",
            "item.content[0].audio",
        ),
    ],
)
def test_each_bad_input_gets_its_error_and_the_session_goes_on(
    message: str, code: str, param: str | None
) -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    out = send(s, message)
    # A refused setting inside turn_detection leaves the rest of it applied: session.updated.
    rest = ["session.updated"] if "turn_detection" in message else []
    assert [m["type"] for m in out] == ["error", *rest], out
    e = out[0]["error"]
    assert (e["type"], e["code"], e["param"]) == ("invalid_request_error", code, param)
    assert e["message"]
    # Still usable: a text turn works.
    send(s, user_text("still here"))
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse) and start.turn.text == "still here"


def test_a_refused_field_leaves_the_rest_of_the_update_applied() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    bad = {
        "type": "session.update",
        "session": {"instructions": "x", "audio": {"input": {"format": "mp3"}}},
    }
    err, upd = send(s, bad)
    assert err["type"] == "error" and err["error"]["param"] == "session.audio.input.format"
    assert upd["type"] == "session.updated" and upd["session"]["instructions"] == "x"
    assert s.state.instructions == "x" and s.state.input_format == "pcm16"
    # Nothing valid in it: the error alone, the session unchanged.
    only_bad = {"type": "session.update", "session": {"audio": {"input": {"format": "mp3"}}}}
    assert [m["type"] for m in send(s, only_bad)] == ["error"]


def test_binary_frames_are_refused_in_this_dialect() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    s.receive(b"\x00\x01", 0.0)
    (err,) = msgs(s)
    assert err["error"]["code"] == "invalid_event"


def test_manual_commit_and_clear() -> None:
    s = Session(OpenAIDialect())
    send(s, {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
    msgs(s)
    x, _, _ = talk()
    out = stream(s, x)
    assert out == []  # no VAD events with turn_detection null
    out = send(s, {"type": "input_audio_buffer.commit", "event_id": "e"})
    assert [m["type"] for m in out] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert requests(s) == []  # no automatic response
    stream(s, x[:24000])
    assert [m["type"] for m in send(s, {"type": "input_audio_buffer.clear"})] == [
        "input_audio_buffer.cleared"
    ]
    (err,) = send(s, {"type": "input_audio_buffer.commit"})
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse)
    assert start.turn.audio is not None and np.array_equal(start.turn.audio, x)


def test_g711_in_and_out() -> None:
    s = Session(OpenAIDialect(beta=True))
    send(
        s,
        {
            "type": "session.update",
            "session": {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_alaw"},
        },
    )
    msgs(s)
    x24, start, _ = talk()
    x8 = voxwire.resample(x24, 24000, 8000)
    codes = voxwire.g711.ulaw_encode(x8)
    out = []
    for i in range(0, len(codes), 160):
        out += send(
            s,
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(codes[i : i + 160]).decode(),
            },
        )
    started = next(m for m in out if m["type"] == "input_audio_buffer.speech_started")
    assert abs(started["audio_start_ms"] - (start - 300)) <= 100
    (req,) = [e for e in requests(s) if isinstance(e, ev.StartResponse)]
    assert req.turn.sample_rate == 8000
    s.agent_audio(req.response_id, req.turn.audio[:8000], 8000, 1.0)
    s.agent_done(req.response_id, 1.0)
    deltas = [m["delta"] for m in msgs(s) if m["type"] == "response.audio.delta"]
    got = b"".join(base64.b64decode(d) for d in deltas)
    assert got == voxwire.g711.alaw_encode(req.turn.audio[:8000])


def test_truncate_delete_retrieve() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    send(s, user_text("x"))
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse)
    s.agent_text(start.response_id, "some words", 0.0)
    s.agent_audio(start.response_id, np.zeros(24000, np.int16), 24000, 0.0)  # 1 s
    s.agent_done(start.response_id, 0.0)
    done = next(m for m in msgs(s) if m["type"] == "response.done")
    item_id = done["response"]["output"][0]["id"]
    (err,) = send(
        s,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 1500,
        },
    )
    assert err["type"] == "error" and err["error"]["param"] == "audio_end_ms"
    (ok,) = send(
        s,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 400,
        },
    )
    assert ok == {
        **ok,
        "type": "conversation.item.truncated",
        "item_id": item_id,
        "audio_end_ms": 400,
    }
    (got,) = send(s, {"type": "conversation.item.retrieve", "item_id": item_id})
    assert got["item"]["content"][0]["transcript"] is None  # dropped with the cut
    (gone,) = send(s, {"type": "conversation.item.delete", "item_id": item_id})
    assert gone == {**gone, "type": "conversation.item.deleted", "item_id": item_id}
    (err,) = send(s, {"type": "conversation.item.retrieve", "item_id": item_id})
    assert err["error"]["code"] == "item_retrieve_invalid_item_id"


def test_idle_timeout_closes_with_an_error_first() -> None:
    s = Session(OpenAIDialect(), now=100.0, limits=Limits(idle_timeout_s=30))
    msgs(s)
    assert s.next_deadline() == 130.0
    s.receive(json.dumps(user_text("x")), 110.0)
    assert s.next_deadline() == 140.0
    s.tick(139.0)
    assert s.phase is Phase.IDLE
    s.tick(140.0)
    out = msgs(s)
    assert out[-1]["type"] == "error" and out[-1]["error"]["code"] == "session_idle_timeout"
    assert ev.Close(1000, "idle timeout") in s.events()
    s.receive(json.dumps(user_text("y")), 141.0)
    assert msgs(s) == []  # closed: ignored


def test_every_intent_has_a_transition() -> None:
    intents = [
        c
        for c in vars(ev).values()
        if isinstance(c, type) and issubclass(c, ev.Intent) and c is not ev.Intent
    ]
    for cls in intents:
        for phase in (Phase.IDLE, Phase.RESPONDING):
            assert (phase, cls) in TRANSITIONS or (None, cls) in TRANSITIONS, (phase, cls)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
client_types = st.sampled_from([*CLIENT_TYPES, "bogus"])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda t, body: json.dumps({"type": t, **body}),
                client_types,
                st.dictionaries(
                    st.sampled_from(
                        [
                            "session",
                            "audio",
                            "item",
                            "item_id",
                            "content_index",
                            "audio_end_ms",
                            "response",
                            "response_id",
                            "event_id",
                            "previous_item_id",
                        ]
                    ),
                    json_values,
                    max_size=4,
                ),
            ),
            st.text(max_size=30),
            st.binary(max_size=10),
        ),
        max_size=8,
    )
)
def test_no_input_makes_the_engine_raise(messages: list[str | bytes]) -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    for m in messages:
        s.receive(m, 0.0)
        for out in msgs(s):
            assert "type" in out
            if out["type"] == "error":
                assert out["error"]["type"] == "invalid_request_error", out
    # Whatever came before, a text turn still works (after cancelling any response).
    send(s, {"type": "response.cancel"})
    send(s, user_text("ok"))
    send(s, {"type": "response.create"})
    assert any(isinstance(e, ev.StartResponse) for e in s.events())


def commit_clip(s: Session) -> str:
    """A manual-mode user audio item (no response): its id."""
    x, _ = clips.hello()
    for i in range(0, len(x), 4800):
        send(s, {"type": "input_audio_buffer.append", "audio": b64(x[i : i + 4800])})
    out = send(s, {"type": "input_audio_buffer.commit"})
    return str(next(m for m in out if m["type"] == "input_audio_buffer.committed")["item_id"])


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_user_transcript_is_sent_only_with_transcription_on(beta: bool) -> None:
    name = "conversation.item.input_audio_transcription.completed"
    s = Session(OpenAIDialect(beta=beta))
    (created,) = msgs(s)
    if beta:
        assert created["session"]["input_audio_transcription"] is None
        off = {"turn_detection": None}
        on = {"input_audio_transcription": {"model": "whisper-1"}}
    else:
        assert created["session"]["audio"]["input"]["transcription"] is None
        off = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        on = {"type": "realtime", "audio": {"input": {"transcription": {"model": "any"}}}}
    send(s, {"type": "session.update", "session": off})
    item = commit_clip(s)
    s.events()
    # Off (the default): the item gets the transcript, the client no event.
    s.user_transcript(item, "hello there", 1.0)
    assert msgs(s) == []
    assert [type(e) for e in s.events()] == []
    (got,) = send(s, {"type": "conversation.item.retrieve", "item_id": item})
    assert got["item"]["content"][0] == {"type": "input_audio", "transcript": "hello there"}
    # On: the event, shaped as OpenAI's.
    (upd,) = send(s, {"type": "session.update", "session": on})
    shown = upd["session"] if beta else upd["session"]["audio"]["input"]
    key = "input_audio_transcription" if beta else "transcription"
    assert shown[key] == {"model": "pocketsphinx"} and s.state.transcription
    item2 = commit_clip(s)
    s.events()
    s.user_transcript(item2, "book a table", 2.0)
    (m,) = msgs(s)
    assert set(m) == {"type", "event_id", "item_id", "content_index", "transcript", "usage"}
    assert m["usage"]["type"] == "duration" and m["usage"]["seconds"] > 0
    assert (m["type"], m["item_id"], m["content_index"], m["transcript"]) == (
        name,
        item2,
        0,
        "book a table",
    )
    (fact,) = s.events()
    assert fact == ev.InputTranscriptionCompleted(item2, 0, "book a table", m["usage"]["seconds"])
    (got,) = send(s, {"type": "conversation.item.retrieve", "item_id": item2})
    assert got["item"]["content"][0]["transcript"] == "book a table"
    s.events()
    # Unknown items and text items are ignored, without an error.
    s.user_transcript("item_nope", "x", 3.0)
    assert msgs(s) == [] and s.events() == []
    send(s, user_text("typed"))
    text_item = s.items[-1].id
    s.events()
    s.user_transcript(text_item, "x", 3.0)
    assert msgs(s) == [] and s.events() == []
    # And off again.
    off_tr = (
        {"input_audio_transcription": None}
        if beta
        else {
            "type": "realtime",
            "audio": {"input": {"transcription": None}},
        }
    )
    (upd,) = send(s, {"type": "session.update", "session": off_tr})
    assert not s.state.transcription


def test_transcription_setting_must_be_an_object_or_null() -> None:
    s = Session(OpenAIDialect())
    msgs(s)
    (err,) = send(
        s,
        {"type": "session.update", "session": {"audio": {"input": {"transcription": "yes"}}}},
    )
    assert err["error"]["param"] == "session.audio.input.transcription"
    assert not s.state.transcription


def test_transcript_reaches_the_next_turn() -> None:
    s = Session(OpenAIDialect())
    send(s, {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
    item = commit_clip(s)
    s.user_transcript(item, "hello", 0.0)
    s.events()
    send(s, {"type": "response.create"})
    (start,) = requests(s)
    assert isinstance(start, ev.StartResponse)
    assert start.turn.item_id == item and start.turn.transcript == "hello"


def test_messages_per_minute_are_limited() -> None:
    s = Session(OpenAIDialect(), now=0.0, limits=Limits(messages_per_minute=5))
    s.messages_to_send()
    clear = json.dumps({"type": "input_audio_buffer.clear"})
    for k in range(8):
        s.receive(clear, k * 0.1)
    sent = [json.loads(m) for m in s.messages_to_send()]
    assert [m["type"] for m in sent] == ["input_audio_buffer.cleared"] * 5 + ["error"]
    assert sent[-1]["error"]["code"] == "rate_limit_exceeded"
    s.receive(clear, 60.5)  # a new minute
    assert [json.loads(m)["type"] for m in s.messages_to_send()] == ["input_audio_buffer.cleared"]
