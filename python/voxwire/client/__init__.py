"""An async realtime client for the OpenAI dialect, with jitter-buffered playback.

    async with RealtimeClient("ws://127.0.0.1:8000/v1/realtime", api_key="k") as c:
        player = c.play(wav_path="answer.wav")            # response audio -> JitterBuffer
        asyncio.create_task(c.stream_audio(pcm, 24000))   # real time (speed=1)
        async for e in c.events():
            if isinstance(e, ResponseDoneEvent):
                break
        await c.wait_played()                             # the answer's audio played out

Three parts: :mod:`~voxwire.client.events` (the server's events, typed, named as the
``openai`` SDK names them), :mod:`~voxwire.client.connection` (the WebSocket I/O:
:class:`RealtimeClient`) and :mod:`~voxwire.client.player` (sans-I/O playback and barge-in:
:class:`Player`, whose :meth:`~Player.on_event` returns what to send).
"""

from __future__ import annotations

from voxwire.client.connection import RealtimeClient
from voxwire.client.events import (
    Closed,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseTextDeltaEvent,
    ServerEvent,
    SessionCreatedEvent,
    parse_event,
)
from voxwire.client.player import RATE, Player
from voxwire.wav import read_wav

__all__ = [
    "RATE",
    "Closed",
    "InputAudioBufferSpeechStartedEvent",
    "InputAudioBufferSpeechStoppedEvent",
    "Player",
    "RealtimeClient",
    "RealtimeErrorEvent",
    "ResponseAudioDeltaEvent",
    "ResponseAudioTranscriptDeltaEvent",
    "ResponseCreatedEvent",
    "ResponseDoneEvent",
    "ResponseTextDeltaEvent",
    "ServerEvent",
    "SessionCreatedEvent",
    "parse_event",
    "read_wav",
]
