"""Playback of response audio, sans-I/O: a jitter buffer and the barge-in policy.

:class:`Player` takes the server's events (:meth:`Player.on_event`) and returns the client
messages they call for (the ``conversation.item.truncate`` of a barge-in); the caller sends
them and drives playback by calling :meth:`Player.tick` once every ``frame_ms`` of its clock.
No sockets and no clock of its own: :class:`voxwire.client.RealtimeClient` is one driver,
the other APIs' clients (:mod:`voxwire.clients`) push audio and tick it themselves.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.client.events import (
    InputAudioBufferSpeechStartedEvent,
    ResponseAudioDeltaEvent,
    ResponseDoneEvent,
    ServerEvent,
)

#: The OpenAI dialect's pcm16 rate.
RATE = 24000


class Player:
    """Plays response audio through a :class:`voxwire.JitterBuffer`.

    One frame per :meth:`tick` (the caller calls it every ``frame_ms`` of its clock), into a
    WAV file and/or a callback. ``adaptive=False`` is the plain fixed pre-buffer
    (``prebuffer_ms``).
    """

    def __init__(
        self,
        sample_rate: int = RATE,
        frame_ms: int = 10,
        *,
        wav_path: str | None = None,
        sink: Callable[[npt.NDArray[np.int16]], None] | None = None,
        adaptive: bool = True,
        prebuffer_ms: int = 250,
    ) -> None:
        self.jb = voxwire.JitterBuffer(
            sample_rate, frame_ms=frame_ms, prebuffer_ms=prebuffer_ms, adaptive=adaptive
        )
        self.frame_ms = frame_ms
        self.sink = sink
        self._wav: wave.Wave_write | None = None
        if wav_path is not None:
            w = wave.open(wav_path, "wb")  # noqa: SIM115 - closed by close()
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            self._wav = w
        #: The item whose audio is playing (for truncate) and whether its stream is open.
        self.item_id: str | None = None
        self.pending = False
        #: When the first answer audio arrived (the event's time, client clock, seconds).
        self.first_audio_at: float | None = None
        #: The barge-ins so far: (item_id, audio_end_ms) of each truncate asked for.
        self.truncations: list[tuple[str, int]] = []

    def on_event(self, event: ServerEvent, now_ms: float) -> list[dict[str, Any]]:
        """Take one server event that arrived at ``now_ms``; the client messages to send.

        Response audio is queued, ``response.done`` ends the answer's stream, and the
        server's ``speech_started`` while an answer plays is a barge-in: the queue is
        dropped and a ``conversation.item.truncate`` with the milliseconds actually played
        is returned. Other events change nothing.
        """
        if isinstance(event, ResponseAudioDeltaEvent):
            if self.first_audio_at is None:
                self.first_audio_at = event.at
            self.push(event.item_id, event.pcm, now_ms)
        elif isinstance(event, ResponseDoneEvent):
            self.end()
        elif (
            isinstance(event, InputAudioBufferSpeechStartedEvent)
            and self.pending
            and self.item_id is not None
        ):
            # Barge-in: stop playing and tell the server how much was heard.
            played = self.barge_in()
            self.truncations.append((self.item_id, played))
            return [
                {
                    "type": "conversation.item.truncate",
                    "item_id": self.item_id,
                    "content_index": 0,
                    "audio_end_ms": played,
                }
            ]
        return []

    def push(self, item_id: str, pcm: npt.NDArray[np.int16], now_ms: float) -> None:
        """Queue audio of ``item_id`` that arrived at ``now_ms``."""
        if item_id != self.item_id:
            if self.item_id is not None:
                self.jb.mark_end()
            self.item_id = item_id
        self.pending = True
        self.jb.push(pcm, now_ms)

    def end(self) -> None:
        """The current answer is complete."""
        self.jb.mark_end()
        self.pending = False

    def barge_in(self) -> int:
        """Drop what is queued; the ms of the current answer that were played."""
        self.pending = False
        return int(self.jb.clear())

    def tick(self, now_ms: float) -> npt.NDArray[np.int16]:
        """Play one frame (written out from the first answer's audio on)."""
        frame: npt.NDArray[np.int16] = self.jb.pop(now_ms)
        if self.item_id is None:
            return frame
        if self._wav is not None:
            self._wav.writeframes(frame.astype("<i2").tobytes())
        if self.sink is not None:
            self.sink(frame)
        return frame

    def stats(self) -> dict[str, Any]:
        """The jitter buffer's figures."""
        return dict(self.jb.stats())

    def close(self) -> None:
        """Finish the WAV file."""
        if self._wav is not None:
            self._wav.close()
            self._wav = None


__all__ = ["RATE", "Player"]
