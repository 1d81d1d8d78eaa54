"""What the voice frameworks need of the OpenAI dialect (issue 24), checked against the
official SDK's types: every server message here validates as the ``openai`` package's server
event (GA and beta), and the shapes asserted are the ones those types and OpenAI's reference
give: semantic_vad, refused fields with the rest applied, tools and tool_choice, response
metadata, input_image and function_call items, truncating the answer being generated, and
responses of tool calls only."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from openai.types.beta.realtime.realtime_server_event import (
    RealtimeServerEvent as BetaServerEvent,
)
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import TypeAdapter

from voxwire.dialects import OpenAIDialect
from voxwire.session import Session
from voxwire.session import events as ev

GA = TypeAdapter(RealtimeServerEvent)
BETA = TypeAdapter(BetaServerEvent)


def out(s: Session, beta: bool = False) -> list[dict[str, Any]]:
    msgs = [json.loads(m) for m in s.messages_to_send()]
    for m in msgs:  # each one as the official types read it
        (BETA if beta else GA).validate_python(m)
    return msgs


def send(s: Session, obj: dict[str, Any], beta: bool = False) -> list[dict[str, Any]]:
    s.receive(json.dumps(obj), 0.0)
    return out(s, beta)


def session(beta: bool = False) -> Session:
    # (The beta types take OpenAI's model names only.)
    s = Session(OpenAIDialect(beta=beta), model="gpt-4o-realtime-preview" if beta else "m")
    out(s, beta)
    s.events()
    return s


def start(s: Session) -> ev.StartResponse:
    (req,) = [e for e in s.events() if isinstance(e, ev.StartResponse)]
    return req


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("eagerness", ["low", "medium", "high", "auto"])
def test_semantic_vad_ga(eagerness: str) -> None:
    s = session()
    td = {"type": "semantic_vad", "eagerness": eagerness, "interrupt_response": False}
    (upd,) = send(
        s, {"type": "session.update", "session": {"audio": {"input": {"turn_detection": td}}}}
    )
    shown = upd["session"]["audio"]["input"]["turn_detection"]
    assert shown == {
        "type": "semantic_vad",
        "eagerness": eagerness,
        "create_response": True,
        "interrupt_response": False,
    }
    t = s.state.turn_detection
    assert t is not None and (t.type, t.eagerness) == ("semantic_vad", eagerness)


def test_semantic_vad_beta() -> None:
    s = session(beta=True)
    td = {"type": "semantic_vad", "eagerness": "low"}
    (upd,) = send(s, {"type": "session.update", "session": {"turn_detection": td}}, beta=True)
    assert upd["session"]["turn_detection"]["type"] == "semantic_vad"
    assert upd["session"]["turn_detection"]["eagerness"] == "low"
    # The waits by eagerness (high soonest, low longest): tests/core/test_semantic_turn.py.


def test_a_refused_field_is_named_and_the_rest_applies() -> None:
    s = session()
    upd = {
        "type": "session.update",
        "session": {
            "instructions": "be brief",
            "tools": [WEATHER],
            "colour": "blue",
            "audio": {
                "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "sometimes"}},
                "output": {"voice": "verse", "pitch": 3},
            },
        },
    }
    msgs = send(s, upd)
    errors = [m["error"] for m in msgs if m["type"] == "error"]
    assert {e["param"] for e in errors} == {
        "session.colour",
        "session.audio.input.turn_detection.eagerness",
        "session.audio.output.pitch",
    }
    assert {e["code"] for e in errors} == {"unknown_parameter", "invalid_value"}
    assert msgs[-1]["type"] == "session.updated"
    shown = msgs[-1]["session"]
    assert shown["instructions"] == "be brief" and shown["audio"]["output"]["voice"] == "verse"
    assert shown["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert [t["name"] for t in shown["tools"]] == ["get_weather"]


def test_fields_of_the_other_shape_are_taken() -> None:
    ga = session()
    beta_fields = {"modalities": ["text"], "voice": "ash", "input_audio_format": "g711_ulaw"}
    (upd,) = send(ga, {"type": "session.update", "session": beta_fields})
    assert upd["session"]["output_modalities"] == ["text"]
    assert upd["session"]["audio"]["output"]["voice"] == "ash"
    assert upd["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    beta = session(beta=True)
    ga_fields = {
        "type": "realtime",
        "output_modalities": ["text"],
        "audio": {"output": {"voice": "ash"}},
    }
    (upd,) = send(beta, {"type": "session.update", "session": ga_fields}, beta=True)
    assert upd["session"]["modalities"] == ["text"] and upd["session"]["voice"] == "ash"


def test_tools_and_tool_choice_are_echoed_and_reach_the_agent() -> None:
    s = session()
    choice = {"type": "function", "name": "get_weather"}
    (upd,) = send(
        s, {"type": "session.update", "session": {"tools": [WEATHER], "tool_choice": choice}}
    )
    assert upd["session"]["tools"] == [WEATHER] and upd["session"]["tool_choice"] == choice
    send(
        s,
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
    )
    s.events()
    send(s, {"type": "response.create"})
    turn = start(s).turn
    assert [t.name for t in turn.tools] == ["get_weather"] and turn.tools[0].client
    assert turn.tool_choice == "get_weather"
    (bad,) = send(
        s, {"type": "session.update", "session": {"tools": [{"type": "mcp", "server_label": "x"}]}}
    )
    assert bad["error"]["param"] == "session.tools[0].type"


def test_a_tool_only_response_has_no_message_item_and_results_are_answered() -> None:
    s = session()
    send(
        s,
        {"type": "session.update", "session": {"tools": [WEATHER], "output_modalities": ["text"]}},
    )
    send(
        s,
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "weather?"}],
            },
        },
    )
    s.events()
    created = send(s, {"type": "response.create"})
    assert [m["type"] for m in created] == ["response.created"]  # no message opened yet
    rid = start(s).response_id
    s.agent_tool_call(rid, "get_weather", '{"city":"Paris"}', "call_1", 0.0)
    s.agent_done(rid, 0.0)
    msgs = out(s)
    assert "response.content_part.added" not in [m["type"] for m in msgs]
    (done,) = [m for m in msgs if m["type"] == "response.done"]
    assert [o["type"] for o in done["response"]["output"]] == ["function_call"]
    assert done["response"]["output"][0]["call_id"] == "call_1"
    # The client runs the tool, sends its output and asks for the answer to it.
    send(
        s,
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        },
    )
    s.events()
    send(s, {"type": "response.create"})
    turn = start(s).turn
    assert turn.kind == "tool_results" and turn.history[-1].output == "sunny"


def test_metadata_round_trips() -> None:
    s = session()
    meta = {"request": "r-17", "topic": "weather"}
    send(s, {"type": "session.update", "session": {"output_modalities": ["text"]}})
    created = send(s, {"type": "response.create", "response": {"metadata": meta}})
    assert created[0]["type"] == "response.created" and created[0]["response"]["metadata"] == meta
    rid = start(s).response_id
    s.agent_text(rid, "ok", 0.0)
    s.agent_done(rid, 0.0)
    (done,) = [m for m in out(s) if m["type"] == "response.done"]
    assert done["response"]["metadata"] == meta
    (bad,) = send(s, {"type": "response.create", "response": {"metadata": {"k": 3}}})
    assert bad["error"]["param"] == "response.metadata.k"


def test_input_image_and_function_call_items_are_kept_and_passed_on() -> None:
    s = session()
    url = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0 fake jpeg").decode()
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": url, "detail": "low"},
        ],
    }
    added, _ = send(s, {"type": "conversation.item.create", "item": item})
    assert added["item"]["content"][1] == {"type": "input_image", "image_url": url, "detail": "low"}
    call = {"type": "function_call", "call_id": "c9", "name": "lookup", "arguments": "{}"}
    added, _ = send(
        s, {"type": "conversation.item.create", "item": call, "previous_item_id": "root"}
    )
    assert (added["item"]["type"], added["item"]["call_id"], added["item"]["name"]) == (
        "function_call",
        "c9",
        "lookup",
    )
    s.events()
    send(s, {"type": "response.create"})
    turn = start(s).turn
    assert turn.images == (url,) and turn.text == "what is this?"
    assert turn.history[0].name == "lookup" and turn.history[0].call_id == "c9"


def test_truncating_the_answer_being_generated_stops_its_audio() -> None:
    s = session()
    send(
        s,
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "talk"}],
            },
        },
    )
    s.events()
    send(s, {"type": "response.create"})
    req = start(s)
    tone = (np.sin(np.arange(24000) * 0.05) * 8000).astype(np.int16)
    s.agent_text(req.response_id, "a long answer", 0.0)
    s.agent_audio(req.response_id, tone, 24000, 0.0)  # 1 s
    item_id = next(m for m in out(s) if m["type"] == "response.output_audio.delta")["item_id"]
    (trunc,) = send(
        s,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 400,
        },
    )
    assert trunc == {**trunc, "type": "conversation.item.truncated", "audio_end_ms": 400}
    s.agent_audio(req.response_id, tone, 24000, 0.0)  # more audio: not sent
    assert not [m for m in out(s) if m["type"] == "response.output_audio.delta"]
    msgs = send(s, {"type": "response.cancel"})
    (done,) = [m for m in msgs if m["type"] == "response.done"]
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["output"][0]["content"][0]["transcript"] is None
    (over,) = send(
        s,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 500,
        },
    )
    assert over["error"]["param"] == "audio_end_ms"  # it keeps 400 ms


def test_transcription_usage_by_duration() -> None:
    s = session()
    send(
        s,
        {
            "type": "session.update",
            "session": {
                "audio": {"input": {"transcription": {"model": "x"}, "turn_detection": None}}
            },
        },
    )
    pcm = (np.sin(np.arange(36000) * 0.05) * 8000).astype(np.int16)  # 1.5 s
    send(
        s, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm.tobytes()).decode()}
    )
    committed = send(s, {"type": "input_audio_buffer.commit"})
    item_id = committed[0]["item_id"]
    s.user_transcript(item_id, "hello", 0.0)
    (m,) = out(s)
    assert m["usage"] == {"type": "duration", "seconds": 1.5}


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(60)
def test_the_azure_style_api_key_header_is_a_key() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from voxwire.demo import spawn_server

    with spawn_server("--api-key", "k-azure", "--asr", "none") as (port, _):
        url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        with connect(url, additional_headers={"api-key": "k-azure"}, open_timeout=10) as ws:
            first = json.loads(ws.recv(timeout=10))
            assert first["type"] == "session.created"
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(url, additional_headers={"api-key": "wrong"}, open_timeout=10),
        ):
            pass
        assert refused.value.response.status_code == 401


def test_offered_credentials_reads_the_named_key_headers() -> None:
    from voxwire.auth import offered_credentials

    headers = [("Authorization", "Bearer k1"), ("API-Key", " k2 "), ("x-other", "k3")]
    assert offered_credentials(headers, {}, (), header_names=("api-key",)) == ["k1", "k2"]
    assert offered_credentials(headers, {}, ()) == ["k1"]
