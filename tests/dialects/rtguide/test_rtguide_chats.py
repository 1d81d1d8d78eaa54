"""Chat sessions are stored, survive a restart, and belong to their user only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rtguide_helpers import Client, login, open_ws, ready, running_server, types

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow, pytest.mark.network]


async def answer(c: Client, kind: str, **fields: Any) -> list[dict[str, Any]]:
    await c.send(kind, **fields)
    await c.send("ping")
    return (await c.until("pong"))[:-1]


def test_chat_sessions_across_a_restart_and_users(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    async def first() -> tuple[str, str]:
        async with running_server(db) as srv:
            c, _ = await ready(srv)
            chat_id = c.events[-3]["chat_session"]["session_id"]
            await c.send("text_input", text="remember me")
            await c.until("user_turn_start")
            await c.until("chat_session_added")
            evs = await answer(c, "set_chat_session_name", session_name="Kept")
            assert types(evs) == ["chat_session_name_changed"]
            evs = await answer(c, "new_chat_session")
            other = evs[0]["chat_session"]["session_id"]
            await c.send("text_input", text="second chat")
            await c.until("user_turn_start")
            await c.until("chat_session_added")
            await c.close()
            return chat_id, other

    async def second(chat_id: str, other: str) -> None:
        async with running_server(db) as srv:
            c, _ = await ready(srv)
            evs = await answer(c, "get_user_sessions")
            listed = evs[0]["sessions"]["chat_sessions"]
            assert [s["session_id"] for s in listed] == [other, chat_id]  # newest first
            assert listed[1]["session_name"] == "Kept"
            evs = await answer(c, "resume_chat_session", session_id=chat_id)
            chat = evs[0]["chat_session"]
            assert chat["session_name"] == "Kept"
            assert chat["messages"] == [
                {"role": "user", "content": "remember me"},
                {"role": "assistant", "content": "remember me"},
            ]
            # Connecting with chat_session_id loads it (and welcomes back).
            body = await login(srv)
            c2 = await open_ws(srv, body["agent_c_token"], chat_session_id=chat_id)
            evs = await c2.until("user_turn_start")
            changed = next(e for e in evs if e["type"] == "chat_session_changed")
            assert changed["chat_session"]["session_id"] == chat_id
            welcome = next(e for e in evs if e["type"] == "render_media")
            assert "Welcome back" in welcome["content"]
            await c2.close()

            # Bob can neither list, read, resume, rename nor delete alice's sessions.
            b, _ = await ready(srv, "bob")
            evs = await answer(b, "get_user_sessions")
            assert evs[0]["sessions"]["total_sessions"] == 0
            for kind, fields in (
                ("resume_chat_session", {"session_id": chat_id}),
                ("set_chat_session_name", {"session_id": chat_id, "session_name": "mine"}),
                ("delete_chat_session", {"session_id": chat_id}),
            ):
                evs = await answer(b, kind, **fields)
                assert evs == [
                    {"type": "error", "message": f"Session '{chat_id}' not found", "source": kind}
                ]
            bob = await login(srv, "bob")
            b2 = await open_ws(srv, bob["agent_c_token"], chat_session_id=chat_id)
            evs = await b2.until("user_turn_start")
            changed = next(e for e in evs if e["type"] == "chat_session_changed")
            assert changed["chat_session"]["session_id"] != chat_id
            assert changed["chat_session"]["messages"] == []
            await b2.close()
            await b.close()

            # Alice renames and deletes; the name stays, the deletion too.
            evs = await answer(c, "set_chat_session_name", session_name="Renamed", session_id=other)
            assert evs[0]["session_id"] == other
            evs = await answer(c, "delete_chat_session", session_id=chat_id)
            assert types(evs)[0] == "chat_session_deleted"
            await c.close()

    async def third(chat_id: str, other: str) -> None:
        async with running_server(db) as srv:
            c, _ = await ready(srv)
            evs = await answer(c, "get_user_sessions")
            listed = evs[0]["sessions"]["chat_sessions"]
            assert [(s["session_id"], s["session_name"]) for s in listed] == [(other, "Renamed")]
            evs = await answer(c, "resume_chat_session", session_id=chat_id)
            assert types(evs) == ["error"]
            await c.close()

    chat_id, other = asyncio.run(first())
    asyncio.run(second(chat_id, other))
    asyncio.run(third(chat_id, other))
