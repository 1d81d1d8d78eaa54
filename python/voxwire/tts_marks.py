"""espeak-ng speech with its own word timing: audio plus ``(ms, character)`` marks.

The ``espeak-ng`` command line tells nothing of when each word is spoken; the library does
(its synthesis callback reports every word's audio position). :class:`EspeakMarksTTS` runs
the library in a child process (``voxwire/_espeak_child.py``, one per piece of text, with
the limits of :class:`voxwire.agents.EspeakTTS`: killed on cancel, on a timeout, past an
output budget), so a crash or a hang of the library never touches the server.

Each word's characters are spread evenly over the word's time (from its start to the next
word's start, or the end of the audio); the characters between words (spaces, punctuation)
take the next word's start. Every character of the text gets one mark, so the marks' characters
joined are the text.

Child protocol (stdout): frames of one type byte and a 4-byte little-endian length, ``R`` the
sample rate (4 bytes), ``W`` the word events (JSON ``[[ms, start, length], ...]``, character
positions in the text), then ``A`` frames of PCM16 mono.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import struct
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voxwire.agents import EspeakTTS, speech_pieces
from voxwire.errors import InputTooLargeError, OutputLimitError, WorkerError, WorkerTimeoutError

__all__ = ["EspeakMarksTTS", "char_marks", "library_available", "speak_with_marks"]

Marks = tuple[tuple[float, str], ...]

_LIB = "libespeak-ng.so.1"
#: The child's script (standard library only, so it starts fast).
_CHILD = Path(__file__).with_name("_espeak_child.py")


def library_available() -> bool:
    """Whether libespeak-ng can be loaded here."""
    try:
        ctypes.CDLL(ctypes.util.find_library("espeak-ng") or _LIB)
    except OSError:
        return False
    return True


def char_marks(text: str, words: list[tuple[float, int, int]], end_ms: float) -> Marks:
    """One ``(ms, character)`` mark per character of ``text`` from the word events.

    ``words`` are ``(ms, start, length)`` (character positions in ``text``), in order;
    ``end_ms`` is the audio's length.
    """
    out: list[tuple[float, str]] = []
    pos = 0
    ws = [(ms, s, n) for ms, s, n in words if 0 <= s < len(text) and n > 0]
    for k, (ms, s, n) in enumerate(ws):
        if s < pos:
            continue
        nxt = ws[k + 1][0] if k + 1 < len(ws) else end_ms
        out.extend((ms, c) for c in text[pos:s])
        n = min(n, len(text) - s)
        dur = max(0.0, nxt - ms)
        out.extend((ms + dur * j / n, text[s + j]) for j in range(n))
        pos = s + n
    last = out[-1][0] if out else 0.0
    out.extend((last, c) for c in text[pos:])
    return tuple(out)


class EspeakMarksTTS(EspeakTTS):
    """:class:`voxwire.agents.EspeakTTS` with word timing (see the module docstring).

    :meth:`stream_marked` yields ``(pcm, rate, marks)``: marks in ms from the start of that
    piece's audio, for the characters of the whole text given (every one, in order).
    """

    def __init__(self, *args: Any, python: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.python = python or sys.executable

    async def stream(self, text: str) -> AsyncGenerator[tuple[npt.NDArray[np.int16], int], None]:
        """Speech for ``text`` (without the marks)."""
        async with contextlib.aclosing(self.stream_marked(text)) as pieces:
            async for pcm, rate, _ in pieces:
                yield pcm, rate

    async def stream_marked(
        self, text: str
    ) -> AsyncGenerator[tuple[npt.NDArray[np.int16], int, Marks], None]:
        """Speech for ``text`` piece by piece, the first chunk of each piece with its marks."""
        if len(text) > self.max_chars:
            raise InputTooLargeError(
                f"{len(text)} characters is more than the {self.max_chars} this TTS speaks"
            )
        left = self.max_output_bytes
        cursor = done = 0
        pieces = list(speech_pieces(text, self.piece_chars))
        for i, piece in enumerate(pieces):
            if left <= 0:
                raise OutputLimitError(
                    f"more than {self.max_output_bytes} bytes of audio for one answer"
                )
            words, pcm, rate = await self._speak_marked(piece, left)
            left -= 2 * len(pcm)
            # The piece's words in the whole text: found in order from the cursor.
            full: list[tuple[float, int, int]] = []
            for ms, s, n in words:
                w = piece[s : s + n]
                at = text.find(w, cursor) if w else -1
                if at < 0:
                    continue
                full.append((ms, at, n))
                cursor = at + n
            end_ms = len(pcm) * 1000 / rate if rate else 0.0
            start = done
            stop = cursor if i + 1 < len(pieces) else len(text)
            done = stop
            local = [(ms, s - start, n) for ms, s, n in full]
            marks = char_marks(text[start:stop], local, end_ms)
            yield pcm, rate, marks

    async def _speak_marked(
        self, text: str, budget: int
    ) -> tuple[list[tuple[float, int, int]], npt.NDArray[np.int16], int]:
        """One child process for one piece; killed and reaped however this ends."""
        await self._procs.acquire()
        proc: asyncio.subprocess.Process | None = None
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python,
                "-I",  # isolated: the helper needs nothing but the standard library
                str(_CHILD),
                self.voice,
                str(self.wpm),
                text,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert proc.stdout is not None
            words: list[tuple[float, int, int]] = []
            chunks: list[bytes] = []
            rate, got = 0, 0
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        head = await proc.stdout.readexactly(5)
                        kind, n = head[:1], struct.unpack("<I", head[1:])[0]
                        if n > (1 << 20):
                            raise WorkerError("the TTS helper wrote a frame over 1 MiB")
                        body = await proc.stdout.readexactly(n)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        raise WorkerError("the TTS helper's output was cut short") from None
                    break
                except TimeoutError:
                    raise WorkerTimeoutError(
                        f"the TTS helper wrote nothing for {self.timeout_s:g} s; it was killed"
                    ) from None
                if kind == b"R":
                    rate = struct.unpack("<I", body)[0]
                elif kind == b"W":
                    words = [(float(a), int(b), int(c)) for a, b, c in json.loads(body)]
                elif kind == b"A":
                    got += len(body)
                    if got > budget:
                        raise OutputLimitError(
                            f"the TTS wrote more than {self.max_output_bytes} bytes of audio "
                            "for one answer; it was killed"
                        )
                    chunks.append(body)
            code = await proc.wait()
            if code != 0 or rate <= 0:
                raise WorkerError(f"the TTS helper failed (exit code {code})")
            data = b"".join(chunks)
            pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
            return words, pcm, rate
        finally:
            if proc is not None:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                assert proc.stdout is not None
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(self.timeout_s):
                        while await proc.stdout.read(1 << 16):
                            pass
                await proc.wait()
            self._procs.release()


async def speak_with_marks(
    text: str, *, rate: int, voice: str = "en-us"
) -> tuple[bytes, list[tuple[int, str]]]:
    """PCM16 mono bytes of ``text`` at ``rate`` and its ``(ms, character)`` marks.

    For short phrases (fillers). Falls back to the ``espeak-ng`` command line, with marks
    spread evenly over the audio, when the library cannot be loaded.
    """
    import voxwire

    if library_available():
        tts = EspeakMarksTTS(voice=voice)
        parts: list[npt.NDArray[np.int16]] = []
        marks: list[tuple[int, str]] = []
        at_ms = 0.0
        src_rate = 22050
        async with contextlib.aclosing(tts.stream_marked(text)) as pieces:
            async for pcm, r, m in pieces:
                parts.append(pcm)
                src_rate = r
                marks.extend((round(at_ms + ms), c) for ms, c in m)
                at_ms += len(pcm) * 1000 / r
        pcm_all = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    else:
        pcm_all, src_rate = await EspeakTTS(voice=voice).synthesize(text)
        dur = len(pcm_all) * 1000 / src_rate if src_rate else 0.0
        marks = [(round(dur * k / max(1, len(text))), c) for k, c in enumerate(text)]
    out = voxwire.resample(pcm_all, src_rate, rate) if src_rate != rate else pcm_all
    return np.asarray(out, dtype=np.int16).tobytes(), marks
