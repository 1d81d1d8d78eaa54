"""The seed's own Python example, as written there (``websocket.WebSocketApp`` with the token
in a ``Sec-WebSocket-Protocol`` header), against a real server; then the rest of the
documented flow with the same library: audio with ``audio_config``, VAD mode with real
speech, barge-in, an external event with ``start_interaction``, finish, close."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websocket
from amigo_helpers import (
    PREFIX,
    SERVICE,
    ServerThread,
    chunks,
    make_env,
    silence,
    speech,
    token_of,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]


def test_quick_start_python_example(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config()) as srv:
        auth_token = token_of(srv.port, env)
        org_id = "acme"
        got: list[dict[str, Any]] = []
        closed: list[Any] = []
        protocol: list[str] = []
        done = threading.Event()

        # 1. Create connection with authentication (the seed's code, host made local)
        ws_url = (
            f"ws://127.0.0.1:{srv.port}/v1/{org_id}/conversation/converse_realtime"
            "?response_format=voice&audio_format=pcm"
        )
        headers = {"Sec-WebSocket-Protocol": f"bearer.authorization.amigo.ai.{auth_token}"}

        def on_open(ws: websocket.WebSocketApp) -> None:
            protocol.append(ws.sock.getheaders().get("sec-websocket-protocol", ""))
            # 2. Start conversation
            ws.send(
                json.dumps(
                    {
                        "type": "client.start-conversation",
                        "service_id": SERVICE,
                        "service_version_set_name": "release",
                    }
                )
            )

        def on_message(ws: websocket.WebSocketApp, message: str) -> None:
            # 3. Handle responses
            msg = json.loads(message)
            got.append(msg)
            if msg["type"] == "server.conversation-created":
                # 4. Send a message
                ws.send(
                    json.dumps(
                        {
                            "type": "client.new-text-message",
                            "text": "Hello!",
                            "message_type": "user-message",
                        }
                    )
                )
            done_ = [m for m in got if m["type"] == "server.interaction-complete"]
            if msg["type"] == "server.interaction-complete" and len(done_) == 2:
                ws.send(json.dumps({"type": "client.finish-conversation"}))
            if msg["type"] == "server.conversation-completed":
                ws.send(json.dumps({"type": "client.close-connection"}))

        def on_error(ws: websocket.WebSocketApp, error: Any) -> None:
            closed.append(("error", repr(error)))

        def on_close(ws: websocket.WebSocketApp, code: Any, reason: Any) -> None:
            closed.append((code, reason))
            done.set()

        ws = websocket.WebSocketApp(
            ws_url,
            header=headers,
            on_open=on_open,
            on_message=on_message,
            on_error=on_error,
            on_close=on_close,
        )
        t = threading.Thread(target=ws.run_forever, daemon=True)
        t.start()
        assert done.wait(60), got
        t.join(10)

    # The subprotocol is echoed (browsers require it).
    assert protocol == [f"bearer.authorization.amigo.ai.{auth_token}"]
    types = [m["type"] for m in got]
    assert types[0] == "server.conversation-created"
    assert len(got[0]["conversation_id"]) == 24
    assert types[-1] == "server.conversation-completed"
    assert closed[-1] == (1000, "closed by the client")
    completes = [m for m in got if m["type"] == "server.interaction-complete"]
    # The agent speaks first (its configured greeting), then answers "Hello!".
    assert [c["full_message"] for c in completes] == ["Hello, I am Echo.", "Hello!"]
    assert all(c["conversation_completed"] is False for c in completes)
    for c in completes:
        pieces = [
            m
            for m in got
            if m["type"] == "server.new-message" and m["interaction_id"] == c["interaction_id"]
        ]
        assert pieces and all(p["message_id"] == c["message_id"] for p in pieces)
        assert [p["sequence_number"] for p in pieces] == list(range(1, len(pieces) + 1))
        assert [p["stop"] for p in pieces] == [False] * (len(pieces) - 1) + [True]
        assert all(p["message_metadata"] == [] for p in pieces)
        audio = b"".join(base64.b64decode(p["message"]) for p in pieces)
        assert len(audio) % 2 == 0 and len(audio) > 24000 * 2 * 0.3  # PCM16 at 24 kHz
        # Alignment: every character of the answer, in order, times rising, from the TTS.
        align = [a for p in pieces for a in (p["transcript_alignment"] or [])]
        assert "".join(ch for _, ch in align) == c["full_message"]
        times = [ms for ms, _ in align]
        assert times == sorted(times) and times[0] == 0
        assert times[-1] < len(audio) / 2 / 24000 * 1000
        # Each piece's alignment is sent no later than its audio.
        sent_ms = 0.0
        for p in pieces:
            for ms, _ in p["transcript_alignment"] or []:
                assert ms < sent_ms + len(base64.b64decode(p["message"])) / 48 or p["stop"]
            sent_ms += len(base64.b64decode(p["message"])) / 48


def _recv_until(
    ws: websocket.WebSocket, kind: str, got: list[dict[str, Any]], n: int = 2000
) -> dict[str, Any]:
    for _ in range(n):
        m = json.loads(ws.recv())
        got.append(m)
        if m["type"] == kind:
            return m
    raise AssertionError(f"no {kind} in {n} messages")


def test_documented_flow_audio_vad_bargein_event_finish(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config()) as srv:
        token = token_of(srv.port, env)
        url = srv.url(query="response_format=voice&audio_format=pcm")
        ws = websocket.create_connection(
            url, header={"Sec-WebSocket-Protocol": PREFIX + token}, timeout=30
        )
        got: list[dict[str, Any]] = []
        try:
            ws.send(
                json.dumps(
                    {
                        "type": "client.start-conversation",
                        "service_id": SERVICE,
                        "service_version_set_name": "release",
                    }
                )
            )
            _recv_until(ws, "server.conversation-created", got)
            _recv_until(ws, "server.interaction-complete", got)

            # Push-to-talk audio: audio_config on the first chunk, then audio: null.
            utt = speech(start_s=1.3, end_s=3.9)
            for k, c in enumerate(chunks(utt)):
                msg: dict[str, Any] = {
                    "type": "client.new-audio-message",
                    "audio": base64.b64encode(c).decode(),
                }
                if k == 0:
                    msg["audio_config"] = {
                        "format": "pcm",
                        "sample_rate": 16000,
                        "sample_width": 2,
                        "n_channels": 1,
                        "frame_rate": 16000,
                    }
                ws.send(json.dumps(msg))
            ws.send(json.dumps({"type": "client.new-audio-message", "audio": None}))
            done = _recv_until(ws, "server.interaction-complete", got)
            answer = b"".join(
                base64.b64decode(m["message"])
                for m in got
                if m["type"] == "server.new-message"
                and m["interaction_id"] == done["interaction_id"]
            )
            # The echo agent answers with the user's audio: as long, at 24 kHz.
            assert abs(len(answer) / 2 / 24000 - len(utt) / 16000) < 0.1

            # VAD mode with real speech.
            ws.send(json.dumps({"type": "client.switch-vad-mode", "vad_mode_on": True}))
            sw = _recv_until(ws, "server.vad-mode-switched", got)
            assert sw["current_vad_mode_on"] is True
            zero = _recv_until(ws, "server.vad-speech-reset-zero", got)
            assert zero["timestamp"] == pytest.approx(len(utt) / 16000, abs=0.05)
            audio = np.concatenate([speech(start_s=0.0, end_s=4.3)])
            for c in chunks(audio):
                ws.send(
                    json.dumps(
                        {"type": "client.new-audio-message", "audio": base64.b64encode(c).decode()}
                    )
                )
            started = _recv_until(ws, "server.vad-speech-started", got)
            ended = _recv_until(ws, "server.vad-speech-ended", got)
            # clean.wav: speech from 1.40 s to 3.76 s (seconds since the reset).
            assert 1.0 <= started["start"] <= 1.6
            assert ended["start"] == started["start"]
            assert 3.7 <= ended["end"] <= 4.3
            assert ended["transcript"] == ""  # no ASR configured on this server
            first = _recv_until(ws, "server.new-message", got)
            # Barge-in: the user speaks again while the answer streams.
            for c in chunks(speech(start_s=4.3, end_s=7.6)):
                ws.send(
                    json.dumps(
                        {"type": "client.new-audio-message", "audio": base64.b64encode(c).decode()}
                    )
                )
            _recv_until(ws, "server.vad-speech-started", got)
            cut = [m for m in got if m.get("interaction_id") == first["interaction_id"]]
            # The interrupted answer ends at once: its last piece says stop, then it completes.
            rest = []
            for _ in range(200):
                m = json.loads(ws.recv())
                got.append(m)
                if m.get("interaction_id") == first["interaction_id"]:
                    rest.append(m)
                if (
                    m["type"] == "server.interaction-complete"
                    and m["interaction_id"] == first["interaction_id"]
                ):
                    break
            pieces = [m for m in cut + rest if m["type"] == "server.new-message"]
            assert pieces[-1]["stop"] is True
            played = sum(len(base64.b64decode(p["message"])) for p in pieces) / 2 / 24000
            assert played < 2.3  # cut short: the whole echo would be ~2.4 s
            _recv_until(ws, "server.vad-speech-ended", got)

            # An external event with start_interaction while the user is silent: answered now.
            for c in chunks(silence(0.3)):
                ws.send(
                    json.dumps(
                        {"type": "client.new-audio-message", "audio": base64.b64encode(c).decode()}
                    )
                )
            event = json.dumps(
                {"event": "payment.failed", "amount": 100.0, "error": "Card declined"}
            )
            ws.send(
                json.dumps(
                    {
                        "type": "client.new-text-message",
                        "message_type": "external-event",
                        "text": event,
                        "start_interaction": True,
                    }
                )
            )
            for _ in range(3000):
                m = json.loads(ws.recv())
                got.append(m)
                if m["type"] == "server.interaction-complete" and m["full_message"] == event:
                    break
            else:
                raise AssertionError("no answer to the event")

            # Finish in VAD mode: switch off, wait, finish.
            ws.send(json.dumps({"type": "client.switch-vad-mode", "vad_mode_on": False}))
            off = _recv_until(ws, "server.vad-mode-switched", got)
            assert off["current_vad_mode_on"] is False
            ws.send(json.dumps({"type": "client.finish-conversation"}))
            _recv_until(ws, "server.conversation-completed", got)
            ws.send(json.dumps({"type": "client.close-connection"}))
            for _ in range(100):
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert int.from_bytes(data[:2], "big") == 1000
        finally:
            ws.close()
