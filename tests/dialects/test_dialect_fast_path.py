"""The append fast path of OpenAIDialect.decode gives what the general JSON path gives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.dialects import OpenAIDialect
from voxwire.dialects import openai as dialect_module
from voxwire.session import events as ev


def general(d: OpenAIDialect, message: str) -> ev.Intent:
    """decode() with the fast path switched off."""
    saved = dialect_module._APPEND_HEADS
    dialect_module._APPEND_HEADS = ("\x00never", "\x00never")
    try:
        return d.decode(message)
    finally:
        dialect_module._APPEND_HEADS = saved


def shapes(audio: str) -> list[str]:
    head = (
        '{"type":"input_audio_buffer.append","audio":"',
        '{"type": "input_audio_buffer.append", "audio": "',
    )
    return [
        *(h + audio + '"}' for h in head),  # raw: may be invalid JSON
        json.dumps({"type": "input_audio_buffer.append", "audio": audio}),
        json.dumps({"type": "input_audio_buffer.append", "audio": audio}, separators=(",", ":")),
        json.dumps({"type": "input_audio_buffer.append", "audio": audio}, ensure_ascii=False),
    ]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            [*"ABCxyz019+/=", '"', "\\", "\x00", "\x1f", "\x7f", " ", "é", "\u2028", "}"]
        ),
        max_size=12,
    )
)
def test_fast_path_equals_general_path(audio: str) -> None:
    d = OpenAIDialect()
    for m in shapes(audio):
        assert repr(d.decode(m)) == repr(general(d, m)), m


@pytest.mark.parametrize("audio", ["", "AAAA", "AAA=", "@@@@", "AA\\/AA"])
def test_known_appends(audio: str) -> None:
    d = OpenAIDialect(beta=True)
    for m in shapes(audio):
        assert repr(d.decode(m)) == repr(general(d, m))
