"""Fuzzing every dialect's decoder, and every dialect on a real server (issue 19).

1. A hypothesis state machine per dialect codec: valid client messages from the dialect's
   document, mutated ones (a field replaced by any JSON value, a field dropped), random JSON,
   random text and bytes, fed to a real session engine with agent output and time between.
   Nothing escapes ``decode`` or ``Session.receive``, nothing becomes an internal error, every
   wire message is text, bytes or a list of them.
2. The same messages over real WebSockets to a real ``voxwire serve`` (the dialects' command
   handlers run there, with the store): the server logs no traceback, stays healthy, and
   never closes with 1011 (internal error).

``VOXWIRE_FUZZ_EXAMPLES`` (default 40 runs per dialect) and ``VOXWIRE_FUZZ_STEPS`` (30) size
part 1; ``VOXWIRE_FUZZ_MESSAGES`` (150 per dialect) part 2.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fuzz_json import json_value
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from voxwire.dialects.amigo import AmigoDialect
from voxwire.dialects.atoms import AtomsDialect
from voxwire.dialects.chatstream import ChatstreamDialect
from voxwire.dialects.openai import OpenAIDialect
from voxwire.session import Limits, Session
from voxwire.session import events as ev

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("VOXWIRE_FUZZ_EXAMPLES", "40"))
STEPS = int(os.environ.get("VOXWIRE_FUZZ_STEPS", "30"))
MESSAGES = int(os.environ.get("VOXWIRE_FUZZ_MESSAGES", "150"))
#: Client messages the state machines sent, per dialect (printed by the last test, ``-s``).
SENT_D: dict[str, int] = {}

PCM = base64.b64encode((np.sin(np.arange(960) * 0.1) * 5000).astype(np.int16).tobytes()).decode()

#: Valid client messages of each dialect, as its document shows them.
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "openai": [
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}},
        {"type": "input_audio_buffer.append", "audio": PCM},
        {"type": "input_audio_buffer.commit"},
        {"type": "input_audio_buffer.clear"},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
        {"type": "conversation.item.delete", "item_id": "item_1"},
        {"type": "response.create"},
        {"type": "response.cancel"},
    ],
    "chatstream": [
        {"type": "authorize", "token": "any-token"},
        {"type": "pong"},
        {
            "type": "chat_message",
            "content": "Hello. (happy) How are you?",
            "agent_id": "echo",
            "user_id": "u1",
            "limit": 5,
        },
        {"type": "interrupt_stream", "turn_id": None},
        {"type": "fetch_backgrounds"},
        {"type": "fetch_avatar_configs"},
        {"type": "switch_avatar_config", "file": "a.json"},
    ],
    "rtguide": [
        {"type": "ping"},
        {"type": "get_agents"},
        {"type": "set_agent", "agent_key": "echo"},
        {"type": "get_voices"},
        {"type": "set_agent_voice", "voice_id": "none"},
        {"type": "get_tool_catalog"},
        {"type": "set_agent_tools", "tools": []},
        {"type": "text_input", "text": "hi there"},
        {"type": "new_chat_session"},
        {"type": "get_user_sessions", "offset": 0, "limit": 5},
        {"type": "set_chat_session_name", "session_name": "fuzz"},
        {"type": "set_session_metadata", "meta": {"a": 1}},
        {"type": "resume_chat_session", "session_id": "nope"},
        {"type": "client_wants_cancel"},
    ],
    "atoms": [
        {"type": "input_audio_buffer.append", "audio": PCM},
        {"type": "input_audio_buffer.commit"},
        {"type": "input_text.send", "text": "hello"},
        {
            "type": "session.update",
            "session": {
                "tools": [
                    {
                        "name": "lookup",
                        "description": "d",
                        "parameters": {"type": "object", "properties": {}},
                    }
                ]
            },
        },
        {"type": "function_call.result", "call_id": "c1", "result": {"ok": True}},
        {"type": "session.close"},
    ],
    "amigo": [
        {
            "type": "client.start-conversation",
            "service_id": "s1",
            "service_version_set_name": "release",
        },
        {"type": "client.continue-conversation", "conversation_id": "0" * 24},
        {"type": "client.new-text-message", "text": "hi", "message_type": "user-message"},
        {
            "type": "client.new-text-message",
            "text": "event",
            "message_type": "external-event",
            "start_interaction": True,
        },
        {
            "type": "client.new-audio-message",
            "audio": PCM,
            "audio_config": {
                "format": "pcm",
                "sample_rate": 24000,
                "sample_width": 2,
                "n_channels": 1,
                "frame_rate": 24000,
            },
        },
        {"type": "client.new-audio-message", "audio": PCM},
        {"type": "client.new-audio-message", "audio": None},
        {"type": "client.switch-vad-mode", "vad_mode_on": True},
        {"type": "client.switch-vad-mode", "vad_mode_on": False},
        {"type": "client.extend-timeout"},
        {"type": "client.finish-conversation"},
    ],
}

CODECS: dict[str, Callable[[], Any]] = {
    "openai": OpenAIDialect,
    "openai-beta": lambda: OpenAIDialect(beta=True),
    "chatstream": ChatstreamDialect,
    "atoms": lambda: AtomsDialect(mode="webcall"),
    "amigo": lambda: AmigoDialect(response_format="voice"),
}


def mutate(msg: dict[str, Any], rnd: random.Random, value: Any) -> dict[str, Any]:
    out = dict(msg)
    keys = sorted(out)
    how = rnd.randrange(3)
    if how == 0 and keys:
        out[rnd.choice(keys)] = value
    elif how == 1 and keys:
        out.pop(rnd.choice(keys))
    else:
        out[rnd.choice(["type", "x", "event_id", "id", "timestamp"])] = value
    return out


@st.composite
def client_message(draw: st.DrawFn, dialect: str) -> str | bytes:
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "json", "text", "bytes"]))
    samples = SAMPLES[dialect.split("-")[0]]
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "text":
        return draw(st.text(max_size=64))
    if kind == "json":
        return json.dumps(draw(json_value))
    msg = draw(st.sampled_from(samples))
    if kind == "mutated":
        msg = mutate(msg, random.Random(draw(st.integers(0, 2**32))), draw(json_value))
    return json.dumps(msg)


def machine(dialect: str) -> type[RuleBasedStateMachine]:
    class DialectMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = 0.0
            self.session = Session(
                CODECS[dialect](), now=0.0, limits=Limits(max_response_events=200)
            )
            self.drain()

        def drain(self) -> None:
            for m in self.session.messages_to_send():
                assert isinstance(m, str | bytes)
            for e in self.session.events():
                if isinstance(e, ev.Error):
                    assert e.kind != "internal", e.params

        @rule(data=st.data())
        def client_sends(self, data: st.DataObject) -> None:
            msg = data.draw(client_message(dialect))
            SENT_D[dialect] = SENT_D.get(dialect, 0) + 1
            decoded = self.session.dialect.decode(msg)
            # One intent, or several (a tuple) for dialects whose messages mean several steps.
            for i in decoded if isinstance(decoded, tuple) else (decoded,):
                assert isinstance(i, ev.Intent)
            self.now += 0.05
            self.session.receive(msg, self.now)
            self.drain()

        @rule(text=st.text(max_size=40))
        def agent_says(self, text: str) -> None:
            rid = self.session.response_id
            if rid is not None:
                self.session.agent_text(rid, text, self.now)
                self.drain()

        @rule(n=st.integers(0, 2400))
        def agent_speaks(self, n: int) -> None:
            rid = self.session.response_id
            if rid is not None:
                self.session.agent_audio(rid, np.zeros(n, np.int16), 24000, self.now)
                self.drain()

        @rule()
        def agent_done(self) -> None:
            rid = self.session.response_id
            if rid is not None:
                self.session.agent_done(rid, self.now)
                self.drain()

        @rule()
        def greet(self) -> None:
            self.session.greet(self.now)
            self.drain()

        @invariant()
        def lifecycle(self) -> None:
            s = self.session
            assert (s.response_id is None) or s.phase.value == "responding"

    DialectMachine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    return DialectMachine


TestOpenAIDecoder = machine("openai").TestCase
TestOpenAIBetaDecoder = machine("openai-beta").TestCase
TestChatstreamDecoder = machine("chatstream").TestCase
TestAtomsDecoder = machine("atoms").TestCase
TestAmigoDecoder = machine("amigo").TestCase


def test_zz_report() -> None:
    """Prints how many client messages each machine sent (run with ``-s``)."""
    print(f"\nfuzz: {EXAMPLES} runs per dialect, messages {SENT_D}, no failure")
    assert sum(SENT_D.values()) > 0


# -- part 2: on a real server ------------------------------------------------------------


def random_messages(dialect: str, n: int, seed: int) -> list[str | bytes]:
    rnd = random.Random(seed)
    samples = SAMPLES[dialect]
    out: list[str | bytes] = []
    leaves: list[Any] = [None, True, -1, 2**40, 1.5, "", "x" * 50, [], {}, {"a": [1, {}]}]
    for _ in range(n):
        k = rnd.random()
        if k < 0.4:
            out.append(json.dumps(rnd.choice(samples)))
        elif k < 0.8:
            out.append(json.dumps(mutate(rnd.choice(samples), rnd, rnd.choice(leaves))))
        elif k < 0.9:
            out.append(rnd.randbytes(rnd.randrange(1, 40)))
        else:
            out.append("".join(chr(rnd.randrange(32, 0x2FFF)) for _ in range(rnd.randrange(30))))
    if dialect == "rtguide":  # binary frames are audio there: some real PCM too
        pcm = base64.b64decode(PCM)
        out += [pcm[: rnd.randrange(0, len(pcm))] for _ in range(n // 10)]
        rnd.shuffle(out)
    return out


@pytest.mark.timeout(180)
def rtguide_token(port: int) -> str:
    import urllib.request

    body = json.dumps({"username": "fuzzer", "password": "fuzz-password-1"}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/rt/login",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.load(r)["agent_c_token"])


@pytest.mark.network
@pytest.mark.parametrize("dialect", ["openai", "chatstream", "atoms", "rtguide", "amigo"])
def test_random_messages_on_a_real_server(dialect: str, tmp_path: Any) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from voxwire.demo import spawn_server

    store = f"sqlite:///{tmp_path / 'state.db'}"
    args = ["--max-connections-per-peer", "1000", "--store", store]
    if dialect == "rtguide":
        subprocess.run(
            [sys.executable, "-m", "voxwire", "users", "add", "fuzzer", "--store", store],
            input="fuzz-password-1\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=60,
        )
    codes: list[int | None] = []
    with spawn_server(*args) as (port, proc):
        path = {
            "openai": "/v1/realtime",
            "chatstream": "/v1/chat/stream",
            "atoms": "/atoms/v1/agent/connect?agent_id=echo&mode=webcall",
            "rtguide": "/api/rt/ws?token=" + (rtguide_token(port) if dialect == "rtguide" else ""),
            "amigo": "/v1/acme/conversation/converse_realtime?response_format=voice",
        }[dialect]
        for run in range(3):
            msgs = random_messages(dialect, MESSAGES // 3, seed=run)
            try:
                with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10) as ws:
                    for m in msgs:
                        ws.send(m)
                        while True:  # drain what is already there, without waiting
                            try:
                                ws.recv(timeout=0.001)
                            except TimeoutError:
                                break
                    time.sleep(0.2)
            except ConnectionClosed as e:
                codes.append(e.rcvd.code if e.rcvd else None)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert json.load(r)["status"] == "ok"
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in log, log[-3000:]
    assert 1011 not in codes
