"""The child process of :mod:`voxwire.tts_marks`: libespeak-ng speech with word events.

``python -I _espeak_child.py VOICE WPM TEXT`` writes frames of one type byte and a 4-byte
little-endian length: ``R`` the sample rate, ``W`` the word events (JSON
``[[ms, start, length], ...]``, 0-based character positions), then ``A`` frames of PCM16
mono. Standard library only (it starts in a few tens of milliseconds).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import struct
import sys
from typing import Any

_LIB = "libespeak-ng.so.1"


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


def _child(voice: str, wpm: int, text: str) -> int:
    """Synthesize ``text``; write the rate, the word events and the audio (module docstring)."""
    lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or _LIB)
    rate = lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
    if rate <= 0:
        return 2
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        return 3
    lib.espeak_SetParameter(1, wpm, 0)  # espeakRATE, absolute
    audio = bytearray()
    words: list[list[int]] = []
    # Character positions come as 1-based code point indices of the UTF-8 text.
    callback_t = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
    )

    def cb(wav: Any, n: int, events: Any) -> int:
        if wav and n > 0:
            audio.extend(ctypes.string_at(wav, n * 2))
            if len(audio) > (256 << 20):
                return 1
        i = 0
        while events[i].type != 0:
            e = events[i]
            if e.type == 1:  # espeakEVENT_WORD
                words.append([e.audio_position, e.text_position - 1, e.length])
            i += 1
        return 0

    c_cb = callback_t(cb)
    lib.espeak_SetSynthCallback(c_cb)
    data = text.encode("utf-8")
    if lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None) != 0:  # espeakCHARS_UTF8
        return 4
    out = sys.stdout.buffer

    def frame(kind: bytes, body: bytes) -> None:
        out.write(kind + struct.pack("<I", len(body)) + body)

    frame(b"R", struct.pack("<I", rate))
    frame(b"W", json.dumps(words).encode())
    for k in range(0, len(audio), 1 << 16):
        frame(b"A", bytes(audio[k : k + (1 << 16)]))
    out.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(64)
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
