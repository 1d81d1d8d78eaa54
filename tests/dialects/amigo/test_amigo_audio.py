"""Audio on a real server: MP3 in and out, the ASR's transcript in vad-speech-ended,
external events in VAD mode, fillers."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import lameenc
import miniaudio
import numpy as np
import pytest
from amigo_agents import HistoryAgent, SlowEcho
from amigo_helpers import Client, ServerThread, chunks, make_env, silence, speech, start, token_of

from voxwire.dialects.amigo import AmigoSettings

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]

PCM_CFG = {
    "format": "pcm",
    "sample_rate": 16000,
    "sample_width": 2,
    "n_channels": 1,
    "frame_rate": 16000,
}


def pieces_of(c: Client, done: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m
        for m in c.got
        if m["type"] == "server.new-message" and m["interaction_id"] == done["interaction_id"]
    ]


async def send_audio(
    c: Client, pcm: np.ndarray, *, first_config: dict[str, Any] | None = None
) -> None:
    for k, ch in enumerate(chunks(pcm)):
        msg: dict[str, Any] = {"audio": base64.b64encode(ch).decode()}
        if k == 0 and first_config is not None:
            msg["audio_config"] = first_config
        await c.send(type="client.new-audio-message", **msg)


def test_mp3_output_and_input(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config()) as srv:
        token = token_of(srv.port, env)

        async def main() -> tuple[Any, ...]:
            c, _ = await start(srv.url(query="response_format=voice&audio_format=mp3"), token)
            await c.send(
                type="client.new-text-message",
                text="Good morning to you.",
                message_type="user-message",
            )
            done = await c.until("server.interaction-complete")
            spoken = pieces_of(c, done)
            # MP3 input, push-to-talk.
            utt = speech(start_s=1.3, end_s=3.9)
            enc = lameenc.Encoder()
            enc.set_bit_rate(64)
            enc.set_in_sample_rate(16000)
            enc.set_channels(1)
            mp3 = bytes(enc.encode(utt.tobytes())) + bytes(enc.flush())
            for k in range(0, len(mp3), 2000):
                msg: dict[str, Any] = {"audio": base64.b64encode(mp3[k : k + 2000]).decode()}
                if k == 0:
                    msg["audio_config"] = {
                        "format": "mp3",
                        "bit_rate": 64000,
                        "sample_rate": 16000,
                        "n_channels": 1,
                    }
                await c.send(type="client.new-audio-message", **msg)
            await c.send(type="client.new-audio-message", audio=None)
            done2 = await c.until("server.interaction-complete")
            echoed = pieces_of(c, done2)
            await c.close()
            return done, spoken, echoed, len(utt) / 16000

        done, spoken, echoed, utt_s = asyncio.run(main())
    audio = b"".join(base64.b64decode(p["message"]) for p in spoken)
    assert audio[:3] == b"ID3" or audio[0] == 0xFF  # an MP3 stream
    assert miniaudio.mp3_get_info(audio).sample_rate == 24000
    dec = miniaudio.decode(
        audio, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1, sample_rate=24000
    )
    assert 0.8 < dec.num_frames / 24000 < 3.0
    align = [a for p in spoken for a in (p["transcript_alignment"] or [])]
    assert "".join(ch for _, ch in align) == done["full_message"] == "Good morning to you."
    # The MP3 utterance came back (the echo agent answers with the user's audio).
    back = b"".join(base64.b64decode(p["message"]) for p in echoed)
    dec2 = miniaudio.decode(
        back, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1, sample_rate=24000
    )
    assert abs(dec2.num_frames / 24000 - utt_s) < 0.2


def test_vad_transcript_from_the_asr(tmp_path: Path) -> None:
    from voxwire.asr import PocketSphinxASR

    try:
        asr = PocketSphinxASR()
    except Exception as e:  # pragma: no cover - the test extra installs it
        pytest.skip(f"PocketSphinx unavailable: {e}")
    env = make_env(tmp_path)
    with ServerThread(env.server_config(asr=asr)) as srv:
        token = token_of(srv.port, env)

        async def main() -> tuple[dict[str, Any], dict[str, Any]]:
            c, _ = await start(srv.url(), token)
            await c.send(type="client.switch-vad-mode", vad_mode_on=True)
            await c.until("server.vad-mode-switched")
            await send_audio(c, speech(end_s=4.4), first_config=PCM_CFG)
            ended = await c.until("server.vad-speech-ended")
            done = await c.until("server.interaction-complete")
            await c.close()
            return ended, done

        ended, done = asyncio.run(main())
    assert ended["transcript"].strip()
    assert done["full_message"] == ended["transcript"]  # the echo agent says the transcript


def test_external_events_in_vad_mode(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config(agent=HistoryAgent())) as srv:
        token = token_of(srv.port, env)

        async def main() -> list[dict[str, Any]]:
            c, _ = await start(srv.url(), token)
            # Without start_interaction an event is context only: the next answer sees it.
            await c.send(
                type="client.new-text-message", text="cart emptied", message_type="external-event"
            )
            await c.send(type="client.new-text-message", text="hello", message_type="user-message")
            await c.until("server.interaction-complete")
            await c.send(type="client.switch-vad-mode", vad_mode_on=True)
            await c.until("server.vad-mode-switched")
            # The user is speaking (speech from 1.40 s): the event waits for the end of speech.
            await send_audio(c, speech(end_s=2.2), first_config=PCM_CFG)
            await c.until("server.vad-speech-started")
            await c.send(
                type="client.new-text-message",
                text="payment failed",
                message_type="external-event",
                start_interaction=True,
            )
            await send_audio(c, speech(start_s=2.2, end_s=4.4))
            await send_audio(c, silence(0.5))
            for _ in range(200):
                m = await c.recv()
                if (
                    m["type"] == "server.interaction-complete"
                    and "now:external_event" in m["full_message"]
                ):
                    break
            await c.close()
            return c.got

        got = asyncio.run(main())
    completes = [m for m in got if m["type"] == "server.interaction-complete"]
    assert completes[0]["full_message"] == "Hello, I am Echo."  # the greeting
    assert completes[1]["full_message"].endswith("system:cart emptied | now:user:hello")
    types = [m["type"] for m in got]
    ended = types.index("server.vad-speech-ended")
    event_answer = next(
        k
        for k, m in enumerate(got)
        if m["type"] == "server.new-message" and "now:external_event:payment failed" in m["message"]
    )
    assert ended < event_answer
    # The event's answer sees the user's speech turn before it.
    assert "user:" in got[event_answer]["message"]


def _filler_run(tmp_path: Path, delay: float | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    env = make_env(tmp_path)
    settings = AmigoSettings(filler_delay_s=delay)
    with ServerThread(env.server_config(agent=SlowEcho(1.5)), settings) as srv:
        token = token_of(srv.port, env)

        async def main() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            c, _ = await start(srv.url(query="response_format=voice&audio_format=pcm"), token)
            await c.send(
                type="client.new-text-message", text="Hi there.", message_type="user-message"
            )
            done = await c.until("server.interaction-complete")
            await c.close()
            return pieces_of(c, done), done

        return asyncio.run(main())


def test_audio_filler_when_the_agent_is_late(tmp_path: Path) -> None:
    pieces, done = _filler_run(tmp_path, 0.2)
    fill = [p for p in pieces if p["message_metadata"] == ["filler"]]
    agent = [p for p in pieces if p["message_metadata"] == []]
    assert fill and pieces[: len(fill)] == fill  # the filler comes first
    said = "".join(ch for p in fill for _, ch in p["transcript_alignment"] or [])
    assert said in AmigoSettings().filler_phrases
    filler_ms = sum(len(base64.b64decode(p["message"])) for p in fill) / 48
    align = [a for p in agent for a in (p["transcript_alignment"] or [])]
    assert "".join(ch for _, ch in align) == done["full_message"] == "Hi there."
    assert align[0][0] >= filler_ms - 1  # the agent's audio starts after the filler
    assert [p["sequence_number"] for p in pieces] == list(range(1, len(pieces) + 1))


def test_no_filler_when_off(tmp_path: Path) -> None:
    pieces, _ = _filler_run(tmp_path, None)
    assert pieces and all(p["message_metadata"] == [] for p in pieces)
    align = [a for p in pieces for a in (p["transcript_alignment"] or [])]
    assert align[0][0] == 0


_ = json


def test_push_to_talk_too_short_is_refused_not_answered(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    with ServerThread(env.server_config(agent=HistoryAgent())) as srv:
        token = token_of(srv.port, env)

        async def main() -> list[dict[str, Any]]:
            c, _ = await start(srv.url(), token)
            await send_audio(c, silence(0.04), first_config=PCM_CFG)
            await c.send(type="client.new-audio-message", audio=None)
            err = await c.until("server.error")
            await c.send(type="client.new-text-message", text="next", message_type="user-message")
            done = await c.until("server.interaction-complete")
            await c.close()
            return [err, done]

        err, done = asyncio.run(main())
    assert err["http_error_code"] == 400 and "too short" in err["error_description"]
    # The short utterance was neither answered nor kept: the next answer is to "next".
    assert done["full_message"].endswith("now:user:next")
    assert "user:" not in done["full_message"].replace("now:user:next", "")
