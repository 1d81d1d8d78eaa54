"""Dialects: pure codecs between a seed API's wire format and the session engine's events.

A dialect has ``decode(message) -> Intent`` and ``encode(fact) -> str | None``; see
:mod:`voxwire.session.events` and docs/session.md for the mapping of all five seed APIs.
"""

from __future__ import annotations

from typing import Protocol

from voxwire.dialects.openai import OpenAIDialect
from voxwire.session.events import Fact, Intent


class Dialect(Protocol):
    """What the session engine needs of a dialect."""

    name: str

    def decode(self, message: str | bytes) -> Intent:
        """One client message as an intent (a BadMessage when it is not valid)."""
        ...

    def encode(self, fact: Fact) -> str | None:
        """The wire text of a fact, or None when the dialect has no such event."""
        ...


__all__ = ["Dialect", "OpenAIDialect"]
