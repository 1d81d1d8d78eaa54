"""The chatstream avatar/background configs and its TTS endpoint on a real server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cs_helpers import API_KEY, MAO, HistoryAgent, chat, client, png, running

from voxwire.agents import EspeakTTS

pytestmark = [pytest.mark.timeout(60), pytest.mark.network]
needs_espeak = pytest.mark.skipif(not EspeakTTS.available(), reason="espeak-ng not installed")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def http(
    url: str, body: Any = None, *, token: str | None = API_KEY, method: str = "POST"
) -> tuple[int, str, bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_backgrounds_listed_and_served(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], list[tuple[int, str, bytes]]]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.authorize()
            await c.send({"type": "fetch_backgrounds", "id": "bg-1"})
            files = await c.recv()
            got = [
                await asyncio.to_thread(http, srv.http + path, method="GET", token=None)
                for path in (*files["files"], "/bg/notes.txt", "/bg/..%2Fvoxwire.toml")
            ]
            return files, got

    files, got = run(main())
    assert files["type"] == "background_files" and files["id"] == "bg-1"
    assert files["files"] == ["/bg/dusk.png", "/bg/room.jpg"]
    (s1, t1, b1), (s2, t2, _), (s3, _, _), (s4, _, _) = got
    assert (s1, t1, b1) == (200, "image/png", png())
    assert (s2, t2) == (200, "image/jpeg")
    assert s3 == 404 and s4 == 404  # not an image; no way out of the folder


def test_avatar_configs_listed_and_switched(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        async with running(tmp_path, agent=HistoryAgent()) as srv, client(srv) as c:
            cid = await c.authorize()
            out: list[dict[str, Any]] = [{"connection_id": cid}]
            await c.send({"type": "fetch_avatar_configs"})
            out.append(await c.recv())
            await c.send({"type": "switch_avatar_config", "file": "mao.json"})
            out.append(await c.recv())
            out.append(await c.recv())
            await c.send({"type": "switch_avatar_config", "file": "shizuku.toml"})
            out.append(await c.recv())
            out.append(await c.recv())
            # The switched avatar's persona is the agent's when the message names none.
            await c.send(chat("who are you?"))
            out.append((await c.until("stream_end"))[-1])
            await c.send(chat("and now?", persona="You are a pirate."))
            out.append((await c.until("stream_end"))[-1])
            return out

    cid, listed, mao, switched, shizuku, switched2, end1, end2 = run(main())
    assert listed["type"] == "avatar_config_files"
    assert listed["configs"] == [
        {"filename": "mao.json", "name": "Mao"},
        {"filename": "shizuku.toml", "name": "Shizuku"},
    ]
    assert mao["type"] == "set_model_and_conf"
    assert mao["conf_name"] == "Mao" and mao["conf_uid"] == "mao-001"
    assert mao["client_uid"] == cid["connection_id"]
    assert mao["persona_prompt"] == "You are Mao."
    info = dict(MAO["model_info"])  # type: ignore[call-overload]
    info["url"] = "/live2d/mao_pro/runtime/mao_pro.model3.json"  # added when missing
    assert mao["model_info"] == info
    assert switched == {**switched, "type": "avatar_config_switched", "file": "mao.json"}
    assert shizuku["conf_name"] == "Shizuku"
    assert shizuku["model_info"]["url"] == "/live2d/shizuku/shizuku.model3.json"
    assert len(shizuku["conf_uid"]) == 36  # a UUID derived from the file name
    assert switched2["file"] == "shizuku.toml"
    assert json.loads(end1["content"])["instructions"] == "You are Shizuku."
    assert json.loads(end2["content"])["instructions"] == "You are a pirate."


@pytest.mark.parametrize(
    "name",
    [
        "../secret.json",
        "/etc/passwd",
        "..",
        "avatars/mao.json",
        "mao.json\x00",
        "~/mao.json",
        "C:mao.json",
        "secret.json",
    ],
)
def test_switch_refuses_names_outside_the_folder(tmp_path: Path, name: str) -> None:
    async def main() -> dict[str, Any]:
        async with running(tmp_path) as srv, client(srv) as c:
            await c.authorize()
            await c.send({"type": "switch_avatar_config", "file": name})
            return await c.recv()

    m = run(main())
    assert m["type"] == "error" and m["error"].startswith("Config file not found: ")
    assert "Secret" not in json.dumps(m)


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm, rate


@needs_espeak
def test_tts_endpoint_returns_playable_wav(tmp_path: Path) -> None:
    async def main() -> list[tuple[int, str, bytes]]:
        async with running(tmp_path) as srv:
            url = srv.http + "/v1/tts/synthesize"
            return [
                await asyncio.to_thread(http, url, {"text": "Hello there, how are you?"}),
                await asyncio.to_thread(
                    http, url, {"text": "Hello there, how are you?", "output_format": "bytes"}
                ),
                await asyncio.to_thread(
                    http,
                    url,
                    {"text": "Hi.", "output_format": "base64", "reference_id": "en-gb"},
                ),
            ]

    (s1, t1, b1), (s2, t2, b2), (s3, _, b3) = run(main())
    assert (s1, t1) == (200, "application/json")
    body = json.loads(b1)
    assert body["format"] == "base64"
    wav1 = base64.b64decode(body["audio_data"])
    assert (s2, t2) == (200, "audio/wav")
    for data in (wav1, b2):
        pcm, rate = parse_wav(data)
        assert rate == 22050
        assert len(pcm) / rate > 0.8  # a sentence of speech
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300  # not silence
    assert s3 == 200
    pcm3, _ = parse_wav(base64.b64decode(json.loads(b3)["audio_data"]))
    assert len(pcm3) > 0


@needs_espeak
def test_tts_endpoint_errors(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with running(tmp_path) as srv:
            url = srv.http + "/v1/tts/synthesize"
            cases: list[tuple[Any, str | None]] = [
                ({"text": "hi"}, None),  # no credential
                ({"text": "hi"}, "wrong-key"),
                (b"{nope", API_KEY),
                ({"text": ""}, API_KEY),
                ({"text": "   "}, API_KEY),
                ({"output_format": "bytes"}, API_KEY),
                ({"text": "hi", "output_format": "mp4"}, API_KEY),
                ({"text": "hi", "audio_format": "mp3"}, API_KEY),
                ({"text": "hi", "reference_id": "no-such-voice"}, API_KEY),
                ({"text": "x" * 5000}, API_KEY),
            ]
            out = []
            for body, token in cases:
                status, _, _ = await asyncio.to_thread(http, url, body, token=token)
                out.append(status)
            status, _, _ = await asyncio.to_thread(http, url, None, method="GET")
            out.append(status)
            return out

    assert run(main()) == [401, 401, 422, 422, 422, 422, 422, 422, 422, 422, 405]


@needs_espeak
def test_tts_request_whose_body_comes_after_its_headers(tmp_path: Path) -> None:
    # Clients (urllib among them) may send the body in a packet of its own.
    import socket
    import time

    def post(port: int) -> bytes:
        body = json.dumps({"text": "Hello."}).encode()
        head = (
            "POST /v1/tts/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(head)
            time.sleep(0.1)  # not a timing assertion: makes the two packets likely
            s.sendall(body)
            out = b""
            while chunk := s.recv(1 << 16):
                out += chunk
        return out

    async def main() -> bytes:
        async with running(tmp_path) as srv:
            return await asyncio.to_thread(post, srv.port)

    answer = run(main())
    assert answer.startswith(b"HTTP/1.1 200 ")
    _, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body)["format"] == "base64"
