"""Golden transcripts of the OpenAI dialect: scripted sessions replayed with deterministic
ids and compared message by message with ``tests/dialects/openai/*.jsonl``.

Each script step is a client message, agent output, or time passing; the golden file holds,
for each step, every message the server sent. ``VOXWIRE_REGEN_GOLDEN=1`` rewrites the files
(review the diff: it is the wire change).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxwire.dialects import OpenAIDialect
from voxwire.session import Session
from voxwire.session import events as ev

HERE = Path(__file__).parent / "openai"

TONE = base64.b64encode((np.sin(np.arange(2400) * 0.05) * 8000).astype(np.int16).tobytes()).decode()

SCRIPTS: dict[str, list[dict[str, Any]]] = {
    "text_turn": [
        {
            "client": {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            }
        },
        {
            "client": {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            }
        },
        {"client": {"type": "response.create"}},
        {"agent": "text", "text": "hello"},
        {"agent": "text", "text": " there"},
        {"agent": "done"},
    ],
    "audio_answer_and_truncate": [
        {
            "client": {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "x"}],
                },
            }
        },
        {"client": {"type": "response.create"}},
        {"agent": "text", "text": "tone"},
        {"agent": "audio", "b64": TONE, "rate": 24000},
        {"agent": "done"},
        {
            "client": {
                "type": "conversation.item.truncate",
                "item_id": "item_0002",
                "content_index": 0,
                "audio_end_ms": 50,
            }
        },
        {
            "client": {
                "type": "conversation.item.truncate",
                "item_id": "item_0002",
                "content_index": 0,
                "audio_end_ms": 99999,
            }
        },
    ],
    "errors_beta": [
        {"beta": True},
        {"client": "not json"},
        {"client": {"type": "nope"}},
        {"client": {"type": "conversation.item.delete", "item_id": "x", "event_id": "evt_1"}},
        {"client": {"type": "response.cancel"}},
        {"client": {"type": "input_audio_buffer.commit"}},
        {"client": {"type": "input_audio_buffer.append", "audio": "@@@@"}},
        {"time": 400.0},
    ],
}


def replay(script: list[dict[str, Any]]) -> list[list[Any]]:
    ids = ev.SequentialIds()
    beta = bool(script and script[0].get("beta"))
    s = Session(OpenAIDialect(beta=beta, ids=ids), now=0.0, ids=ids)
    out: list[list[Any]] = [[json.loads(m) for m in s.messages_to_send()]]
    now = 0.0
    for step in script:
        if "beta" in step:
            continue
        now += 0.01
        rid = s.response_id
        if "client" in step:
            c = step["client"]
            s.receive(c if isinstance(c, str) else json.dumps(c), now)
        elif step.get("agent") == "text" and rid:
            s.agent_text(rid, step["text"], now)
        elif step.get("agent") == "audio" and rid:
            pcm = np.frombuffer(base64.b64decode(step["b64"]), np.int16)
            s.agent_audio(rid, pcm, step["rate"], now)
        elif step.get("agent") == "done" and rid:
            s.agent_done(rid, now)
        elif "time" in step:
            now += step["time"]
            s.tick(now)
        out.append([json.loads(m) for m in s.messages_to_send()])
    return out


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_golden(name: str) -> None:
    got = replay(SCRIPTS[name])
    path = HERE / f"{name}.jsonl"
    if os.environ.get("VOXWIRE_REGEN_GOLDEN") == "1":
        path.write_text("".join(json.dumps(step) + "\n" for step in got))
    want = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"step {k}"
