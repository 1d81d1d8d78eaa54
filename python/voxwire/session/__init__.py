"""The sans-I/O session engine and its event model.

:class:`Session` is one connection's protocol state machine; :mod:`voxwire.session.events`
holds the events it takes and gives. Drivers (the ASGI app, the websockets server) live in
:mod:`voxwire.server`.
"""

from __future__ import annotations

from voxwire.session import events
from voxwire.session.engine import TRANSITIONS, Limits, Phase, Session

__all__ = ["TRANSITIONS", "Limits", "Phase", "Session", "events"]
