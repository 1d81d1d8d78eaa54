"""The server, for real: `voxwire serve` on 127.0.0.1, driven by the official openai SDK."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import OpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

import voxwire
from voxwire import clips
from voxwire.cli import main as cli_main
from voxwire.demo import spawn_server

KEY = "test-key-1"

# Every test here talks to a real server: none may hang.
pytestmark = pytest.mark.timeout(120)


def server(*extra: str) -> contextlib.AbstractContextManager[tuple[int, subprocess.Popen[bytes]]]:
    """`voxwire serve` in a subprocess, on a free loopback port; stopped at the end."""
    return spawn_server(*extra)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with server("--api-key", KEY, "--api-key", "other-key") as (p, _):
        yield p


@pytest.fixture(scope="module")
def spectral_port() -> Iterator[int]:
    with server("--vad", "spectral", "--api-key", KEY) as (p, _):
        yield p


def sessions(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return int(json.load(r)["sessions"])


@contextlib.contextmanager
def connect(port: int, beta: bool, key: str = KEY) -> Iterator[Any]:
    if beta:
        client = OpenAI(api_key=key, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
            yield conn
    else:
        client = OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1")
        with client.realtime.connect(model="gpt-realtime") as conn:
            yield conn


def until(conn: Any, kind: str, limit: int = 5000) -> list[Any]:
    """Events up to and including the first of type ``kind`` (bounded; an unexpected error
    event fails at once instead of waiting)."""
    out = []
    for _ in range(limit):
        e = conn.recv()
        out.append(e)
        if e.type == kind:
            return out
        if e.type == "error":
            raise AssertionError(f"error while waiting for {kind}: {e.error}")
    raise AssertionError(f"no {kind} in {limit} events")


def talk(pad_before: float = 1.0, pad_after: float = 1.5) -> tuple[np.ndarray, int, int]:
    return clips.turn(pad_before, pad_after, noise=20, seed=3)


def append_all(conn: Any, x: np.ndarray, chunk: int = 480) -> None:
    for i in range(0, len(x), chunk):
        conn.input_audio_buffer.append(audio=base64.b64encode(x[i : i + chunk].tobytes()).decode())


def names(beta: bool) -> dict[str, str]:
    return {
        "audio": "response.audio.delta" if beta else "response.output_audio.delta",
        "text": "response.text.delta" if beta else "response.output_text.delta",
        "item": "conversation.item.created" if beta else "conversation.item.added",
    }


def text_only(conn: Any, beta: bool) -> None:
    if beta:
        conn.session.update(session={"modalities": ["text"]})
    else:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    until(conn, "session.updated")


def text_turn(conn: Any, beta: bool, text: str) -> str:
    conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    conn.response.create()
    evs = until(conn, "response.done")
    assert evs[-1].response.status == "completed"
    return "".join(e.delta for e in evs if e.type == names(beta)["text"])


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_voice_turn_then_text_turn(port: int, beta: bool) -> None:
    with connect(port, beta) as conn:
        created = conn.recv()
        assert created.type == "session.created"
        if beta:
            assert created.session.input_audio_format == "pcm16"
        else:
            assert created.session.audio.input.format.type == "audio/pcm"
        x, start, end = talk()
        append_all(conn, x)
        evs = until(conn, "response.done")
        kinds = [e.type for e in evs]
        started = next(e for e in evs if e.type == "input_audio_buffer.speech_started")
        stopped = next(e for e in evs if e.type == "input_audio_buffer.speech_stopped")
        # On the audio timeline, within 100 ms of the true bounds plus padding and silence.
        assert abs(started.audio_start_ms - (start - 300)) <= 100, (started, start)
        assert abs(stopped.audio_end_ms - (end + 500)) <= 100, (stopped, end)
        assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
        assert names(beta)["item"] in kinds
        # The echo answers with the user's own audio (committed span, 24 kHz PCM16).
        audio = b"".join(base64.b64decode(e.delta) for e in evs if e.type == names(beta)["audio"])
        got = np.frombuffer(audio, np.int16)
        want = x[started.audio_start_ms * 24 : stopped.audio_end_ms * 24]
        assert len(got) == len(want)
        assert np.corrcoef(got.astype(float), want.astype(float))[0, 1] > 0.999
        assert evs[-1].response.status == "completed"
        text_only(conn, beta)
        assert text_turn(conn, beta, "hello there voxwire") == "hello there voxwire"


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_bad_inputs_get_errors_and_the_session_stays_usable(port: int, beta: bool) -> None:
    with connect(port, beta) as conn:
        until(conn, "session.created")
        text_only(conn, beta)

        def expect(code: str) -> None:
            e = until(conn, "error")[-1]
            assert e.error.code == code, e
            assert e.error.type == "invalid_request_error" and e.error.message

        conn.input_audio_buffer.append(audio="not*base64")
        expect("invalid_value")
        conn.send({"type": "no.such.event"})
        expect("invalid_value")
        # Malformed JSON: the SDK only sends JSON, so write to its socket directly
        # (``send_raw`` in GA; the beta connection has no such method).
        raw = getattr(conn, "send_raw", None) or conn._connection.send
        raw("{this is not json")
        expect("invalid_json")
        conn.input_audio_buffer.commit()
        expect("input_audio_buffer_commit_empty")
        conn.response.cancel()
        expect("response_cancel_not_active")
        # A response in progress (a long echo: 2,000 deltas of 64 characters fill the send
        # queue, so the answer is still going), then a second response.create.
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "x " * 64000}],
            }
        )
        conn.response.create()
        until(conn, "response.created")
        conn.response.create()
        expect("conversation_already_has_active_response")
        until(conn, "response.done")
        assert text_turn(conn, beta, "still fine") == "still fine"


@pytest.mark.network
def test_barge_in_cancels_the_response_and_truncate_follows(port: int) -> None:
    with connect(port, beta=False) as conn:
        until(conn, "session.created")
        x, _, _ = talk(0.5, 1.0)
        append_all(conn, x)
        evs = until(conn, "response.output_audio.delta")
        item_id = evs[-1].item_id
        sent = len(base64.b64decode(evs[-1].delta))
        # The echo streams at 2x real time: 4.6 s of audio takes 2.3 s. Talk over it.
        append_all(conn, x[: 24000 * 2])
        evs = until(conn, "response.done")
        kinds = [e.type for e in evs]
        assert "input_audio_buffer.speech_started" in kinds
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        done = evs[-1].response
        assert done.status == "cancelled" and done.status_details.reason == "turn_detected"
        # The client tells what it played (here: half of the first delta).
        sent += sum(len(base64.b64decode(e.delta)) for e in evs if e.type.endswith("audio.delta"))
        played = sent // 48 // 2
        conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=played)
        t = until(conn, "conversation.item.truncated")[-1]
        assert (t.item_id, t.audio_end_ms) == (item_id, played)


@pytest.mark.network
def test_wrong_or_missing_key_is_refused_at_the_handshake(port: int) -> None:
    # Earlier tests' sessions end shortly after their clients close: wait for none (bounded).
    for _ in range(50):
        if sessions(port) == 0:
            break
        time.sleep(0.1)
    before = sessions(port)
    assert before == 0
    for key in ("wrong-key", ""):
        with pytest.raises(InvalidStatus) as e:
            ws_connect(
                f"ws://127.0.0.1:{port}/v1/realtime",
                additional_headers={"Authorization": f"Bearer {key}"},
            )
        assert e.value.response.status_code in (401, 403)
    with pytest.raises(Exception, match=r"401|403"), connect(port, False, "wrong-key") as conn:
        conn.recv()
    assert sessions(port) == before


@pytest.mark.network
def test_key_as_query_or_browser_subprotocol(port: int) -> None:
    with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?api_key=other-key") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "session.created"
    with ws_connect(
        f"ws://127.0.0.1:{port}/v1/realtime",
        subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(ws.recv(timeout=5))["type"] == "session.created"


@pytest.mark.network
def test_a_message_over_1_mib_closes_with_1009(port: int) -> None:
    with ws_connect(
        f"ws://127.0.0.1:{port}/v1/realtime", additional_headers={"Authorization": f"Bearer {KEY}"}
    ) as ws:
        ws.recv(timeout=5)
        big = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (1 << 20)})
        ws.send(big)
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(100):
                ws.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009


@pytest.mark.slow
@pytest.mark.network
def test_idle_timeout_and_graceful_shutdown() -> None:
    with (
        server("--idle-timeout", "1") as (port, _),
        ws_connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws,
    ):
        assert json.loads(ws.recv(timeout=5))["type"] == "session.created"
        err = json.loads(ws.recv(timeout=5))
        assert err["error"]["code"] == "session_idle_timeout"
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1000
    with server() as (port, proc):
        with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
            ws.recv(timeout=5)
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as e:
                for _ in range(100):
                    ws.recv(timeout=10)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1012  # service restart
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert proc.wait(10) in (0, -signal.SIGTERM)


def _get(port: int, path: str, key: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("driver", ["websockets", "asgi"])
def test_both_drivers(driver: str) -> None:
    """`voxwire serve` runs the websockets driver by default; `--driver asgi` serves the
    Starlette app on uvicorn. Both answer the same HTTP routes, sessions and shutdown."""
    with server("--driver", driver, "--api-key", KEY) as (port, proc):
        status, health = _get(port, "/healthz")
        assert (status, health["status"], health["sessions"]) == (200, "ok", 0)
        assert _get(port, "/v1/models")[1]["data"][0]["owned_by"] == "voxwire"
        assert _get(port, "/metrics")[0] == 401
        assert _get(port, "/nope")[0] == 404
        with connect(port, beta=False) as conn:
            until(conn, "session.created")
            assert sessions(port) == 1
            text_only(conn, False)
            assert text_turn(conn, False, f"via {driver}") == f"via {driver}"
        status, m = _get(port, "/metrics.json?reset=1", KEY)
        assert status == 200 and m["messages_in"] >= 3 and m["sessions_started"] == 1
        assert _get(port, "/metrics.json", KEY)[1]["messages_in"] == 0  # reset after reading
        prom = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(prom, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        assert "voxwire_sessions 0.0" in text
        assert "voxwire_inbound_latency_seconds_bucket" in text
        with pytest.raises(InvalidStatus) as bad:
            ws_connect(f"ws://127.0.0.1:{port}/v1/realtime")
        assert bad.value.response.status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime", additional_headers=auth) as ws:
            ws.recv(timeout=5)
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as e:
                for _ in range(100):
                    ws.recv(timeout=10)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1012
        assert proc.wait(10) in (0, -signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_text_turn_with_audio_answer_uses_tts(port: int) -> None:
    with connect(port, beta=False) as conn:
        until(conn, "session.created")
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "good morning"}],
            }
        )
        conn.response.create()
        evs = until(conn, "response.done")
        audio = b"".join(
            base64.b64decode(e.delta) for e in evs if e.type == "response.output_audio.delta"
        )
        assert len(audio) > 24000  # over half a second of speech
        tr = next(e for e in evs if e.type == "response.output_audio_transcript.done")
        assert tr.transcript == "good morning"


def test_serve_refuses_a_public_address_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    env = os.environ.pop("VOXWIRE_API_KEYS", None)
    try:
        assert cli_main(["serve", "--host", "0.0.0.0"]) == 2
    finally:
        if env is not None:
            os.environ["VOXWIRE_API_KEYS"] = env
    assert "no API key" in capsys.readouterr().err


VAD_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "vad-dev"


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(not VAD_DEV.exists(), reason="../shared/data/vad-dev is not beside the repo")
@pytest.mark.parametrize(
    ("beta", "recording", "span", "speech"),
    [
        (False, "clean", (11300, 17000), (12940, 15190)),
        (True, "white_20dB", (33300, 37900), (34370, 36650)),
        (False, "pink_10dB", (300, 4600), (1400, 3760)),
    ],
    ids=["ga-clean", "beta-white20", "ga-pink10"],
)
def test_voice_turn_on_recorded_speech(
    spectral_port: int,
    beta: bool,
    recording: str,
    span: tuple[int, int],
    speech: tuple[int, int],
) -> None:
    """A server-VAD turn on a human recording (vad-dev, labelled per 10 ms) with the spectral
    engine (`--vad spectral`, whose timing these bounds were set on): the events land within
    100 ms of the labelled bounds plus the padding and the silence."""
    port = spectral_port
    with wave.open(str(VAD_DEV / f"{recording}.wav")) as w:
        x16 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    a, b = span
    x = voxwire.resample(x16[a * 16 : b * 16], 16000, 24000)
    start, end = speech[0] - a, speech[1] - a  # in the excerpt
    with connect(port, beta) as conn:
        until(conn, "session.created")
        append_all(conn, x)
        evs = until(conn, "response.done")
        started = [e for e in evs if e.type == "input_audio_buffer.speech_started"]
        stopped = [e for e in evs if e.type == "input_audio_buffer.speech_stopped"]
        assert len(started) == len(stopped) == 1
        assert abs(started[0].audio_start_ms - (start - 300)) <= 100, (started, start)
        assert abs(stopped[0].audio_end_ms - (end + 500)) <= 100, (stopped, end)
        assert evs[-1].response.status == "completed"


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(not VAD_DEV.exists(), reason="../shared/data/vad-dev is not beside the repo")
def test_serve_with_the_silero_vad() -> None:
    """`voxwire serve --vad silero`: the server-VAD turn on recorded speech runs on the native
    Silero engine, and its events land within 100 ms of the labelled bounds plus the padding
    and the silence."""
    with wave.open(str(VAD_DEV / "clean.wav")) as w:
        x16 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    (a, b), (s0, s1) = (11300, 17000), (12940, 15190)
    x = voxwire.resample(x16[a * 16 : b * 16], 16000, 24000)
    with server("--vad", "silero", "--api-key", KEY) as (p, _), connect(p, False) as conn:
        until(conn, "session.created")
        append_all(conn, x)
        evs = until(conn, "response.done")
        started = [e for e in evs if e.type == "input_audio_buffer.speech_started"]
        stopped = [e for e in evs if e.type == "input_audio_buffer.speech_stopped"]
        assert len(started) == len(stopped) == 1
        assert abs(started[0].audio_start_ms - (s0 - a - 300)) <= 100, (started, s0 - a)
        assert abs(stopped[0].audio_end_ms - (s1 - a + 500)) <= 100, (stopped, s1 - a)
