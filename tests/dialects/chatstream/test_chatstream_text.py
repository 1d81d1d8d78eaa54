"""The chatstream sentence splitter: sentences, abbreviations, numbers, emotion tags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.dialects.chatstream_text import EMOTIONS, SentenceSplitter, clean_sentence


def split(text: str, cuts: list[int] | None = None) -> list[tuple[str, str | None]]:
    s = SentenceSplitter()
    out = []
    pos = 0
    for c in sorted(cuts or []):
        out += s.push(text[pos:c])
        pos = c
    out += s.push(text[pos:])
    out += s.flush()
    return [(x.text, x.emotion) for x in out]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Hello. World.", ["Hello.", "World."]),
        ("Mr. Smith met Dr. Who at St. Paul's.", ["Mr. Smith met Dr. Who at St. Paul's."]),
        ("Pi is 3.14159. Next.", ["Pi is 3.14159.", "Next."]),
        ("It costs $1,000.50 today! Wow.", ["It costs $1,000.50 today!", "Wow."]),
        (
            "See No. 5 for details. I said no. Then left.",
            ["See No. 5 for details.", "I said no.", "Then left."],
        ),
        ("Use e.g. salt, i.e. NaCl. Done.", ["Use e.g. salt, i.e. NaCl.", "Done."]),
        ("J. R. R. Tolkien wrote it.", ["J. R. R. Tolkien wrote it."]),
        ("1. First item\n2. Second item", ["1. First item", "2. Second item"]),
        ("Wait... what? Really!", ["Wait... what?", "Really!"]),
        ("Well... Then go.", ["Well...", "Then go."]),
        ('She said "Stop." Then left.', ['She said "Stop."', "Then left."]),
        ("At 5 p.m. tomorrow we meet.", ["At 5 p.m. tomorrow we meet."]),
        ("Um, I think so. Uh, maybe.", ["I think so.", "maybe."]),
        ("Umbrella time. Uh-oh.", ["Umbrella time.", "Uh-oh."]),
        ("No end at all", ["No end at all"]),
        ("(joyful)", []),
        ("", []),
    ],
)
def test_sentences(text: str, want: list[str]) -> None:
    assert [t for t, _ in split(text)] == want


def test_emotion_tags_are_taken_out() -> None:
    got = split("(joyful) Hi there! I (laughing) love it. (Crying  Loudly) So sad. (see above) Ok.")
    assert got == [
        ("Hi there!", "joyful"),
        ("I love it.", "laughing"),
        ("So sad.", "crying loudly"),
        ("(see above) Ok.", None),
    ]
    for e in EMOTIONS:
        s = clean_sentence(f"({e}) Fine.")
        assert s is not None and s.emotion == e and s.text == "Fine."


def test_an_end_is_not_given_before_the_next_word_starts() -> None:
    s = SentenceSplitter()
    assert s.push("It is 3.") == []
    assert s.push(" ") == []
    assert [x.text for x in s.push("Then")] == ["It is 3."]
    assert [x.text for x in s.flush()] == ["Then"]


def test_long_text_without_punctuation_is_cut() -> None:
    text = " ".join(["word"] * 600)
    got = split(text)
    assert len(got) >= 2 and all(len(t) <= 1000 for t, _ in got)
    assert " ".join(t for t, _ in got) == text


@pytest.mark.slow
@given(
    st.lists(
        st.sampled_from(
            [
                "Hello",
                " ",
                ".",
                "!",
                "?",
                "Mr.",
                "3.14",
                "(joyful)",
                "\n",
                "um,",
                "e.g.",
                "A",
                "b",
                "...",
                "No.",
                "5",
                '"',
                ")",
            ]
        ),
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_how_the_text_is_cut_into_pieces_does_not_matter(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    cuts = [c for c in cuts if c <= len(text)]
    assert split(text, cuts) == split(text)
