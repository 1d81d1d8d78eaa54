"""espeak-ng speech with its own word timing (voxwire.tts_marks)."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.agents import EspeakTTS
from voxwire.errors import InputTooLargeError
from voxwire.tts_marks import EspeakMarksTTS, char_marks, library_available

needs_lib = pytest.mark.skipif(
    not (EspeakTTS.available() and library_available()), reason="libespeak-ng is not installed"
)


@given(st.text(alphabet="ab .,!", max_size=60), st.floats(0, 5000))
def test_char_marks_cover_every_character_in_order(text: str, end_ms: float) -> None:
    words = [(m.start() * 10.0, m.start(), len(m.group())) for m in re.finditer(r"\w+", text)]
    marks = char_marks(text, words, max(end_ms, len(text) * 10.0))
    assert "".join(c for _, c in marks) == text
    times = [ms for ms, _ in marks]
    assert times == sorted(times)


def test_char_marks_spread_a_word_over_its_time() -> None:
    marks = char_marks("ab cd", [(0.0, 0, 2), (100.0, 3, 2)], 300.0)
    assert marks == ((0.0, "a"), (50.0, "b"), (100.0, " "), (100.0, "c"), (200.0, "d"))


@needs_lib
@pytest.mark.timeout(60)
def test_marks_of_a_spoken_text() -> None:
    text = "Hello big world. How are you today? Fine, thanks."

    async def main() -> list[tuple[int, float, str]]:
        out = []
        async for pcm, rate, marks in EspeakMarksTTS(piece_chars=20).stream_marked(text):
            dur = len(pcm) * 1000 / rate
            out.extend((k, ms, c) for ms, c in marks for k in [int(dur)])
        return out

    got = asyncio.run(main())
    assert "".join(c for _, _, c in got) == text
    assert all(0 <= ms <= dur for dur, ms, _ in got)


@needs_lib
def test_too_long_text_is_refused() -> None:
    async def main() -> None:
        async for _ in EspeakMarksTTS(max_chars=10).stream_marked("x" * 11):
            pass

    with pytest.raises(InputTooLargeError):
        asyncio.run(main())
