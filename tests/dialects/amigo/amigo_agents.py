"""Agents for the amigo tests (plugged in like any agent: ``module:attribute``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from voxwire.agents import AgentOutput, EchoAgent, EndConversation, TextDelta
from voxwire.session.events import UserTurn


class HistoryAgent:
    """Says its greeting; otherwise answers with what it sees: the history and the input."""

    async def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        if turn.kind == "greeting":
            yield TextDelta(turn.text or "")
            return
        seen = [f"{h.role}:{h.text}" for h in turn.history]
        yield TextDelta(" | ".join([*seen, f"now:{turn.kind}:{turn.text}"]))


class SlowEcho(EchoAgent):
    """The echo agent, thinking for ``delay`` seconds before its first output (not greetings)."""

    def __init__(self, delay: float = 1.0) -> None:
        from voxwire.agents import default_tts

        super().__init__(tts=default_tts())
        self.delay = delay

    async def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        if turn.kind != "greeting":
            await asyncio.sleep(self.delay)
        async for out in super().respond(turn):
            yield out


class Goodbye(HistoryAgent):
    """Ends the conversation when the user says ``bye``."""

    async def respond(self, turn: UserTurn) -> AsyncIterator[AgentOutput]:
        if turn.text == "bye":
            yield TextDelta("Goodbye.")
            yield EndConversation("the user said bye")
            return
        async for out in super().respond(turn):
            yield out
