"""The platform's state: users, keys, tokens, conversations, leases and rate limits.

See :mod:`voxwire.store.base` for the interface.
"""

from __future__ import annotations

from voxwire.store.base import (
    ApiKeyRecord,
    ConversationRecord,
    RateDecision,
    Store,
    UserRecord,
)

__all__ = ["ApiKeyRecord", "ConversationRecord", "RateDecision", "Store", "UserRecord"]
