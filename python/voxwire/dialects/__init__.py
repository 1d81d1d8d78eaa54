"""Dialects: pure codecs between a seed API's wire format and the session engine's events.

A dialect has ``decode(message) -> Intent`` and ``encode(fact) -> str | None``; see
:mod:`voxwire.session.events` and docs/session.md for the mapping of all five seed APIs.
"""

from __future__ import annotations

from typing import Protocol

from voxwire.dialects import amigo, atoms, chatstream, openai, rtguide
from voxwire.dialects.base import DialectPlugin
from voxwire.dialects.openai import OpenAIDialect
from voxwire.session.events import Fact, Intent

#: The dialects ``voxwire serve`` speaks, on one port: adding one is a module and a line here.
PLUGINS: list[DialectPlugin] = [
    openai.PLUGIN,
    chatstream.PLUGIN,
    atoms.PLUGIN,
    rtguide.PLUGIN,
    amigo.PLUGIN,
]


class Dialect(Protocol):
    """What the session engine needs of a dialect."""

    name: str
    #: How audio travels: ``base64`` text in JSON events, or ``raw`` bytes in binary frames.
    audio_encoding: str

    def decode(self, message: str | bytes) -> Intent | tuple[Intent, ...]:
        """One client message as an intent (a BadMessage when it is not valid).

        A tuple of intents is handled in order (one message that means several things).
        """
        ...

    def encode(self, fact: Fact) -> str | bytes | list[str | bytes] | None:
        """The wire form of a fact (JSON text or binary), or None when it has none here.

        A list is several wire messages for one fact, sent in order.
        """
        ...


__all__ = ["PLUGINS", "Dialect", "DialectPlugin", "OpenAIDialect"]
