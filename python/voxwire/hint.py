"""Text hints for the semantic end of turn: do the words so far leave a sentence open.

semantic_vad (``TurnConfig(end_mode="semantic")``) judges a pause from the prosody of the
speech before it; a partial transcript can tell it more. :func:`text_hint` reads the words
a streaming ASR has heard so far and says ``False`` (not complete) when the last one cannot
end an English sentence: an article, a conjunction, a possessive determiner, a subject pronoun,
"of" or "to", a filler ("the", "and", "my", "we", "to", "um", ...). Otherwise it has no opinion
(``None``): an ASR without punctuation cannot tell a finished sentence from a pause after a
content word. Pass the result to ``TurnDetector.set_text_hint`` / ``InputPipeline``'s, or
let ``voxwire serve`` do it (it runs a partial ASR during user turns when one is
configured).

The word list is English grammar, not fitted to any data.
"""

from __future__ import annotations

import re

__all__ = ["OPEN_WORDS", "text_hint"]

#: Words after which an English sentence cannot end (lower case).
OPEN_WORDS: frozenset[str] = frozenset(
    # Articles; coordinating conjunctions; subordinators that need a clause after them;
    # possessive determiners that are never pronouns; subject pronouns and their
    # contractions; "of" and "to" (a sentence hardly ever ends on them); hesitation fillers.
    # Words that often end a sentence in speech ("for" in "what for?", "from", "in", "on",
    # "this", "that", auxiliaries as in "yes I do") are left out.
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "nor",
        "because",
        "although",
        "though",
        "unless",
        "whereas",
        "than",
        "my",
        "your",
        "our",
        "their",
        "i",
        "we",
        "they",
        "i'm",
        "we're",
        "you're",
        "they're",
        "i'll",
        "we'll",
        "they'll",
        "i'd",
        "we'd",
        "they'd",
        "of",
        "to",
        "um",
        "uh",
        "er",
        "erm",
        "uhm",
    ]
)

_WORD = re.compile(r"[a-z']+")


def text_hint(words: str) -> bool | None:
    """Whether the words so far leave an English sentence open: ``False`` or ``None``.

    ``False`` (not complete) when the last word cannot end a sentence, else ``None`` (no
    opinion; never ``True``).

    ``words`` is what an ASR has heard of the turn so far, in any case; PocketSphinx's
    filler markers such as ``<sil>`` or ``[noise]`` and punctuation are skipped.

    >>> text_hint("i would like to book a table and")
    False
    >>> text_hint("i would like to book a table") is None
    True
    """
    found = _WORD.findall(re.sub(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)", " ", words.lower()))
    if not found:
        return None
    return False if found[-1] in OPEN_WORDS else None
