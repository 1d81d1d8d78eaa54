"""A session's output, in order: its events, and the wire messages its dialect makes of facts.

:class:`Outbox` is shared by :class:`voxwire.session.Session` and its response lifecycle
(:mod:`voxwire.session.response`): both emit into it, so facts and requests keep one order,
and it counts what the response in progress has sent (its budget). It holds no reference to
the session: no reference cycle, a closed session is freed at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxwire.session import events as ev

if TYPE_CHECKING:
    from voxwire.dialects import Dialect
    from voxwire.session.response import LiveResponse


class Outbox:
    """Events and wire messages since they were last taken, in order.

    ``dialect`` encodes each fact (none, one or several wire messages); ``response`` is the
    response in progress, whose wire events and bytes are counted.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        #: Wire messages to send, in order.
        self.messages: list[str | bytes] = []
        #: Facts and driver requests, in order.
        self.events: list[ev.Event] = []
        #: The response in progress (the lifecycle sets it), whose output is counted.
        self.response: LiveResponse | None = None

    def emit(self, e: ev.Event) -> None:
        """Queue ``e``, and the wire messages of a fact."""
        self.events.append(e)
        if isinstance(e, ev.Fact):
            wire = self.dialect.encode(e)
            if wire is None:
                return
            # A dialect may answer one fact with several wire messages (a list or tuple).
            for w in (wire,) if isinstance(wire, str | bytes) else wire:
                self.messages.append(w)
                r = self.response
                if r is not None:
                    r.events += 1
                    r.wire_bytes += len(w)


__all__ = ["Outbox"]
