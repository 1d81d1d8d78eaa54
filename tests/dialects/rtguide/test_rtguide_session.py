"""The rtguide WebSocket: the initial sequence, text turns, and every command of the guide."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from rtguide_helpers import login, open_ws, ready, running_server, types

from voxwire.dialects.rtguide import is_slug

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow, pytest.mark.network]

SESSION_FIELDS = {"session_id", "role", "parent_session_id", "user_session_id"}


def test_initial_sequence_event_by_event(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            body = await login(srv)
            c = await open_ws(srv, body["agent_c_token"], ui_session_id=body["ui_session_id"])
            e = await c.next()
            assert e == {"type": "ui_session_id_changed", "ui_session_id": body["ui_session_id"]}
            e = await c.next()
            assert e["type"] == "chat_user_data"
            user = e["user"]
            assert user["user_id"] == "alice" and user["user_name"] == "alice"
            assert user["email"] == "alice@example.com" and user["is_active"] is True
            assert "password_hash" not in user
            assert {"roles", "groups", "meta", "created_at", "last_login"} <= set(user)
            assert await c.next() == {"type": "avatar_list", "avatars": []}
            e = await c.next()
            assert e["type"] == "voice_list"
            ids = [v["voice_id"] for v in e["voices"]]
            assert ids[:2] == ["none", "avatar"]
            assert e["voices"][0] == {
                "voice_id": "none",
                "vendor": "system",
                "description": e["voices"][0]["description"],
                "output_format": "none",
            }
            assert e["voices"][1]["vendor"] == "heygen"
            assert e["voices"][1]["output_format"] == "special"
            assert all(
                set(v) == {"voice_id", "vendor", "description", "output_format"}
                for v in e["voices"]
            )
            e = await c.next()
            assert e["type"] == "agent_list"
            assert [a["key"] for a in e["agents"]] == ["echo", "helper"]
            assert e["agents"][0] == {
                "name": "Echo",
                "key": "echo",
                "agent_description": "Echoes",
                "category": ["domo"],
                "toolsets": [],
            }
            e = await c.next()
            assert e["type"] == "tool_catalog"
            assert e["tools"][0]["name"] == "get_weather"
            assert e["tools"][0]["schemas"][0]["function"]["name"] == "get_weather"
            e = await c.next()
            assert e["type"] == "chat_session_changed"
            chat = e["chat_session"]
            assert chat["version"] == 1 and chat["messages"] == [] and chat["user_id"] == "alice"
            assert chat["vendor"] == "openai" and chat["display_name"] == "New chat with Echo"
            assert chat["agent_config"]["version"] == 2 and chat["agent_config"]["key"] == "echo"
            assert is_slug(chat["session_id"])
            e = await c.next()
            assert e["type"] == "render_media"
            assert e["content_type"] == "text/markdown" and e["foreign_content"] is False
            assert e["session_id"] == chat["session_id"] and e["role"] == "assistant"
            assert set(e) >= SESSION_FIELDS
            assert await c.next() == {"type": "user_turn_start"}
            await c.close()

    asyncio.run(main())


def test_text_turn(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            c, _ = await ready(srv)
            chat_id = c.events[-3]["chat_session"]["session_id"]
            await c.send("text_input", text="Hello, how are you?")
            evs = await c.until("user_turn_start")
            t = types(evs)
            assert t[0] == "user_turn_end"
            assert t.index("interaction") < t.index("completion") < t.index("text_delta")
            assert t.index("text_delta") < t.index("history_delta")
            done = [e for e in evs if e["type"] == "completion" and not e["running"]]
            assert len(done) == 1
            assert done[0]["stop_reason"] == "stop"
            assert done[0]["input_tokens"] == 4 and done[0]["output_tokens"] >= 1
            assert t.index("completion", t.index("text_delta")) < t.index("user_turn_start")
            started = [e for e in evs if e["type"] == "interaction"]
            assert [e["started"] for e in started] == [True, False]
            assert started[0]["id"] == started[1]["id"] and started[0]["id"].startswith(
                chat_id + ":"
            )
            text = "".join(e["content"] for e in evs if e["type"] == "text_delta")
            assert text == "Hello, how are you?"
            for e in evs:
                if e["type"] in ("text_delta", "completion", "interaction", "history_delta"):
                    assert set(e) >= SESSION_FIELDS
                    assert e["session_id"] == chat_id and e["role"] == "assistant"
                    assert e["parent_session_id"] is None
            hist = next(e for e in evs if e["type"] == "history_delta")
            assert hist["vendor"] == "openai"
            assert hist["messages"] == [
                {"role": "user", "content": "Hello, how are you?"},
                {"role": "assistant", "content": "Hello, how are you?"},
            ]
            # Thoughts and tool calls, when the agent makes them.
            await c.send("text_input", text="think: deep")
            evs = await c.until("user_turn_start")
            th = [e for e in evs if e["type"] == "thought_delta"]
            assert th and th[0]["role"] == "assistant (thought)" and th[0]["content"] == "pondering"
            await c.send("text_input", text="tool: get_weather")
            evs = await c.until("user_turn_start")
            t = types(evs)
            assert "tool_select_delta" in t
            calls = [e for e in evs if e["type"] == "tool_call"]
            assert [e["active"] for e in calls] == [True, False]
            fn = calls[0]["tool_calls"][0]
            assert fn["id"] == "call_1" and fn["function"]["name"] == "get_weather"
            assert json.loads(fn["function"]["arguments"]) == {"city": "Paris"}
            await c.close()

    asyncio.run(main())


async def answer(c: Any, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """Send a command and read until a pong (the answer comes before it)."""
    await c.send(kind, **fields)
    await c.send("ping")
    evs = await c.until("pong")
    return evs[:-1]


def test_every_command(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            c, _ = await ready(srv)
            first_chat = c.events[-3]["chat_session"]["session_id"]
            await c.send("ping")
            assert await c.next() == {"type": "pong"}
            evs = await answer(c, "get_agents")
            assert types(evs) == ["agent_list", "agent_configuration_changed"]
            assert evs[1]["agent_config"]["key"] == "echo"
            evs = await answer(c, "set_agent", agent_key="helper")
            assert types(evs) == ["agent_configuration_changed"]
            cfg = evs[0]["agent_config"]
            assert cfg["key"] == "helper" and cfg["tools"] == ["get_weather"]
            assert cfg["persona"] == "Help."
            evs = await answer(c, "set_agent", agent_key="nope")
            assert evs == [
                {"type": "error", "message": "Agent 'nope' not found", "source": "set_agent"}
            ]
            assert await answer(c, "get_avatars") == [{"type": "avatar_list", "avatars": []}]
            evs = await answer(c, "set_avatar", avatar_id="x")
            assert types(evs) == ["error"] and evs[0]["source"] == "set_avatar"
            evs = await answer(c, "set_avatar_session", access_token="t", avatar_session_id="s")
            assert types(evs) == ["agent_voice_changed", "text_delta"]
            assert evs[0]["voice"]["voice_id"] == "avatar" and evs[1]["role"] == "system"
            evs = await answer(c, "get_voices")
            assert types(evs) == ["voice_list"]
            for vid in ("none", "avatar"):
                evs = await answer(c, "set_agent_voice", voice_id=vid)
                assert types(evs) == ["agent_voice_changed"] and evs[0]["voice"]["voice_id"] == vid
            evs = await answer(c, "set_agent_voice", voice_id="no-such-voice")
            assert types(evs) == ["system_message"] and evs[0]["severity"] == "error"
            evs = await answer(c, "get_tool_catalog")
            assert types(evs) == ["tool_catalog"] and len(evs[0]["tools"]) == 1
            evs = await answer(c, "set_agent_tools", tools=[])
            assert types(evs) == ["agent_configuration_changed", "system_message"]
            assert (
                evs[0]["agent_config"]["tools"] == [] and evs[1]["content"] == "Agent tools updated"
            )
            evs = await answer(c, "set_agent_tools", tools=["get_weather", "bogus"])
            assert types(evs) == ["system_message", "agent_configuration_changed", "system_message"]
            assert evs[1]["agent_config"]["tools"] == ["get_weather"]

            # Chat sessions: a turn stores the current one.
            evs = await answer(c, "get_user_sessions")
            assert evs[0]["sessions"] == {"chat_sessions": [], "total_sessions": 0, "offset": 0}
            await c.send("text_input", text="one")
            await c.until("user_turn_start")
            await c.until("chat_session_added")  # once stored (after the user's turn is back)
            evs = await answer(c, "new_chat_session", agent_key="echo")
            assert types(evs) == ["chat_session_changed"]
            second = evs[0]["chat_session"]["session_id"]
            assert second != first_chat and evs[0]["chat_session"]["messages"] == []
            await c.send("text_input", text="two")
            await c.until("user_turn_start")
            await c.until("chat_session_added")
            evs = await answer(c, "get_user_sessions", offset=0, limit=1)
            page = evs[0]["sessions"]
            assert page["total_sessions"] == 2 and page["offset"] == 0
            assert [s["session_id"] for s in page["chat_sessions"]] == [second]  # newest first
            evs = await answer(c, "get_user_sessions", offset=1, limit=10)
            assert [s["session_id"] for s in evs[0]["sessions"]["chat_sessions"]] == [first_chat]
            entry = evs[0]["sessions"]["chat_sessions"][0]
            assert set(entry) == {
                "session_id",
                "session_name",
                "created_at",
                "updated_at",
                "user_id",
                "agent_key",
                "agent_name",
            }
            evs = await answer(c, "resume_chat_session", session_id=first_chat)
            assert types(evs) == ["chat_session_changed", "system_message"]
            msgs = evs[0]["chat_session"]["messages"]
            assert [m["content"] for m in msgs] == ["one", "one"]
            assert "Welcome back" in evs[1]["content"]
            evs = await answer(c, "resume_chat_session", session_id="no-such-chat")
            assert evs == [
                {
                    "type": "error",
                    "message": "Session 'no-such-chat' not found",
                    "source": "resume_chat_session",
                }
            ]
            evs = await answer(c, "set_chat_session_name", session_name="Mine")
            assert evs == [
                {
                    "type": "chat_session_name_changed",
                    "session_name": "Mine",
                    "session_id": first_chat,
                }
            ]
            evs = await answer(c, "set_chat_session_name", session_name="Other", session_id=second)
            assert evs[0]["session_id"] == second
            evs = await answer(c, "set_session_metadata", meta={"k": "v"})
            assert evs == [{"type": "session_metadata_changed", "meta": {"k": "v"}}]
            new_msgs = [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
            evs = await answer(c, "set_session_messages", messages=new_msgs)
            assert types(evs) == ["history"]
            assert evs[0]["messages"] == new_msgs and evs[0]["role"] == "system"
            assert evs[0]["vendor"] == "openai" and evs[0]["session_id"] == first_chat
            evs = await answer(c, "resume_chat_session", session_id=first_chat)
            chat = evs[0]["chat_session"]
            assert chat["messages"] == new_msgs and chat["session_name"] == "Mine"
            assert chat["metadata"] == {"k": "v"} and chat["display_name"] == "Mine"
            evs = await answer(c, "delete_chat_session", session_id=second)
            assert types(evs) == ["chat_session_deleted", "system_message"]
            evs = await answer(c, "delete_chat_session")  # the current one: a new chat follows
            assert types(evs) == ["chat_session_deleted", "chat_session_changed", "system_message"]
            assert evs[1]["chat_session"]["session_id"] != first_chat
            evs = await answer(c, "delete_chat_session", session_id=first_chat)
            assert types(evs) == ["error"] and evs[0]["source"] == "delete_chat_session"
            evs = await answer(c, "get_user_sessions")
            assert evs[0]["sessions"]["total_sessions"] == 0

            # Cancel with nothing running, unknown types, bad JSON.
            evs = await answer(c, "client_wants_cancel")
            assert types(evs) == ["cancelled", "system_message"] and evs[1]["severity"] == "info"
            evs = await answer(c, "clear_avatar_session")
            assert types(evs) == ["system_message"] and evs[0]["severity"] == "warning"
            assert "clear_avatar_session" in evs[0]["content"]
            await c.ws.send("{not json")
            await c.send("ping")
            evs = (await c.until("pong"))[:-1]
            assert evs == [{"type": "error", "message": "Invalid JSON received", "source": None}]
            await c.close()

    asyncio.run(main())
