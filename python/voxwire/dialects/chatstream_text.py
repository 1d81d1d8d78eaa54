"""Text for speech, as the chatstream dialect cuts it: sentences, emotion tags, fillers.

:class:`SentenceSplitter` takes an answer's text as it streams (any pieces) and gives back
each finished sentence once it is sure the sentence has ended, cleaned for a TTS:

- a sentence ends at ``.``, ``!``, ``?``, ``…`` (and their full-width forms), after any
  closing quotes or brackets, when white space follows and the next word has begun; or at a
  line break. Until the next word's first character has arrived the end is not certain
  (``3.`` may go on as ``3.14``), so the last sentence comes at :meth:`flush`;
- a period is no sentence end after a known abbreviation (``Mr.``, ``e.g.``, ``etc.``...),
  after ``No.``/``Vol.``/``Fig.``... before a number, after a single capital letter (an
  initial: ``J. K. Rowling``), after a number that is all the sentence holds so far (a list
  marker: ``1. First``), inside a number (``3.14``, no space), or when the next word starts
  in lower case (``e.g. this``, ``Well... then``);
- a parenthesised emotion tag from :data:`EMOTIONS` (``(joyful)``, ``(crying loudly)``, any
  case) is taken out of the text; the sentence's first tag becomes its ``emotion``. Other
  parentheses stay;
- the fillers ``um`` and ``uh`` (``umm``, ``uhh``...) are dropped, with a comma right after
  them; white space is collapsed. A sentence left empty is not given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ABBREVIATIONS", "EMOTIONS", "Sentence", "SentenceSplitter", "clean_sentence"]

#: The emotion tags the source project's agent writes, in parentheses.
EMOTIONS = (
    "joyful",
    "sad",
    "angry",
    "surprised",
    "scared",
    "disgusted",
    "confused",
    "curious",
    "worried",
    "satisfied",
    "sarcastic",
    "laughing",
    "crying loudly",
    "sighing",
    "whispering",
    "hesitating",
)

#: Words a period follows without ending the sentence (lower case, inner dots kept).
ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "cf",
        "approx",
        "dept",
        "est",
        "inc",
        "ltd",
        "co",
        "corp",
        "u.s",
        "u.k",
        "a.m",
        "p.m",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)
#: Abbreviations only when a number follows (``No. 5``; "I said no. Then" ends).
_NUMBER_ABBREVIATIONS = frozenset({"no", "nr", "vol", "fig", "p", "pp", "ch", "sec", "art"})

_TERMINATORS = ".!?\u2026\u3002\uff01\uff1f"  # ... and the ideographic / full-width forms
_CLOSERS = "\"')]}\u00bb\u201d\u2019"
_OPENERS = "\"'([{\u00ab\u201c\u2018"
_EMOTION_TAG = re.compile(
    r"\(\s*(" + "|".join(re.escape(e).replace(r"\ ", r"\s+") for e in EMOTIONS) + r")\s*\)",
    re.IGNORECASE,
)
_FILLER = re.compile(r"(?<![\w'-])(?:u+m+|u+h+)(?![\w'-])\s*,?", re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:…])")
_SPACES = re.compile(r"\s+")

#: Most characters held while waiting for a sentence end; past it the text goes out as one
#: chunk (cut at the last space), so a reply without punctuation is still spoken.
MAX_SENTENCE_CHARS = 1000


@dataclass(frozen=True)
class Sentence:
    """One sentence ready for speech: its cleaned text and its emotion tag, if any."""

    text: str
    emotion: str | None = None


def clean_sentence(raw: str) -> Sentence | None:
    """``raw`` without emotion tags and fillers (the first tag is the emotion); None if empty."""
    emotion: str | None = None
    m = _EMOTION_TAG.search(raw)
    if m is not None:
        emotion = _SPACES.sub(" ", m.group(1).lower())
    text = _EMOTION_TAG.sub(" ", raw)
    text = _FILLER.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()
    text = text.lstrip(",;: ").strip()
    if not any(c.isalnum() for c in text):
        return None
    return Sentence(text, emotion)


class SentenceSplitter:
    """Cuts streamed text into finished, cleaned sentences (see the module docstring).

    ``push`` each piece of text as it comes and take the sentences it finished;
    ``flush`` at the end of the text for the last one.
    """

    def __init__(self, *, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        self._buf = ""
        self._scan = 0  # where the search for the next end resumes
        self.max_chars = max_chars

    def push(self, text: str) -> list[Sentence]:
        """The sentences ``text`` finished (maybe none), in order."""
        self._buf += text
        out: list[Sentence] = []
        while True:
            end = self._next_end()
            if end is None:
                break
            raw, self._buf, self._scan = self._buf[:end], self._buf[end:], 0
            s = clean_sentence(raw)
            if s is not None:
                out.append(s)
        while len(self._buf) > self.max_chars:
            cut = self._buf.rfind(" ", 0, self.max_chars)
            cut = cut if cut > 0 else self.max_chars
            raw, self._buf, self._scan = self._buf[:cut], self._buf[cut:], 0
            s = clean_sentence(raw)
            if s is not None:
                out.append(s)
        return out

    def flush(self) -> list[Sentence]:
        """The rest of the text as a last sentence (none if it is empty)."""
        raw, self._buf, self._scan = self._buf, "", 0
        s = clean_sentence(raw)
        return [] if s is None else [s]

    def reset(self) -> None:
        """Drop what is held (an interrupted answer)."""
        self._buf, self._scan = "", 0

    def _next_end(self) -> int | None:
        """Where the first certain sentence end is (the index after it), or None."""
        b, n = self._buf, len(self._buf)
        i = self._scan
        while i < n:
            c = b[i]
            if c == "\n":
                if b[:i].strip():
                    return i + 1
                i += 1
                continue
            if c not in _TERMINATORS:
                i += 1
                continue
            j = i
            while j < n and b[j] in _TERMINATORS:
                j += 1
            while j < n and b[j] in _CLOSERS:
                j += 1
            if j >= n:
                self._scan = i  # wait for what follows
                return None
            if not b[j].isspace():
                i = j  # 3.14, e.g.x, "Hi!"x: no end here
                continue
            k = j
            while k < n and b[k].isspace():
                k += 1
            if k >= n:
                self._scan = i
                return None
            if self._ends(b, i, j, k):
                return j
            i = k
        self._scan = n
        return None

    @staticmethod
    def _ends(b: str, i: int, j: int, k: int) -> bool:
        """Whether the terminators at ``i`` (up to ``j``) end the sentence; ``k``: next word."""
        run = b[i:j].rstrip(_CLOSERS)
        nxt = b[k]
        if run[-1] in "!?\u3002\uff01\uff1f":
            return True
        # A period or an ellipsis.
        if nxt.islower():
            return False
        if run != ".":
            return True  # "..." before a capital
        start = max(b.rfind(" ", 0, i), b.rfind("\n", 0, i)) + 1
        word = b[start:i].lstrip(_OPENERS)
        low = word.lower()
        if low in ABBREVIATIONS:
            return False
        if low in _NUMBER_ABBREVIATIONS and nxt.isdigit():
            return False
        if len(word) == 1 and word.isupper():
            return False  # an initial
        return not (word.isdigit() and not b[:start].strip())  # "1. First": a list marker
