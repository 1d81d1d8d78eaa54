"""A UI session outlives its socket: re-attach mid-turn, cancel (event and REST), and a new
command cancelling the running turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rtguide_helpers import http, login, open_ws, ready, running_server, types
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow, pytest.mark.network]


def test_reattach_mid_turn(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            c1, body = await ready(srv)
            ui_id = body["ui_session_id"]
            chat_id = c1.events[-3]["chat_session"]["session_id"]
            await c1.send("text_input", text="slow: the end")
            first = await c1.until("text_delta")
            assert first[-1]["content"] == "first "
            # A second socket with the same ui_session_id takes the UI session over.
            c2 = await open_ws(srv, body["agent_c_token"], ui_session_id=ui_id)
            e = await c2.next()
            assert e["type"] == "chat_session_changed"  # the short sequence, no user_turn_start
            assert e["chat_session"]["session_id"] == chat_id
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await c1.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            srv.agent.release.set()  # the turn goes on; its later events reach the new socket
            evs = await c2.until("user_turn_start")
            t = types(evs)
            assert [e["content"] for e in evs if e["type"] == "text_delta"] == ["the end"]
            done = next(e for e in evs if e["type"] == "completion")
            assert done["running"] is False and done["stop_reason"] == "stop"
            assert t.index("completion") < t.index("user_turn_start")
            # The finished turn is stored after user_turn_start; its announcement comes last.
            if "chat_session_added" not in t[t.index("user_turn_start") :]:
                await c2.until("chat_session_added")
            # The client goes away; reconnecting later re-attaches with the short sequence.
            await c2.close()
            c3 = await open_ws(srv, body["agent_c_token"], ui_session_id=ui_id)
            evs = await c3.until("user_turn_start")
            assert types(evs) == ["chat_session_changed", "user_turn_start"]
            assert [m["content"] for m in evs[0]["chat_session"]["messages"]] == [
                "slow: the end",
                "first the end",
            ]
            # Another user naming this UI session gets a new one of their own.
            bob = await login(srv, "bob")
            c4 = await open_ws(srv, bob["agent_c_token"], ui_session_id=ui_id)
            e = await c4.next()
            assert e["type"] == "ui_session_id_changed" and e["ui_session_id"] != ui_id
            await c4.until("user_turn_start")
            await c3.send("ping")
            assert await c3.next() == {"type": "pong"}  # alice's socket was left alone
            await c3.close()
            await c4.close()

    asyncio.run(main())


def test_cancel_by_event_by_rest_and_by_a_new_command(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            c, body = await ready(srv)
            ui_id = body["ui_session_id"]
            token = body["agent_c_token"]

            # client_wants_cancel
            await c.send("text_input", text="slow: never")
            await c.until("text_delta")
            await c.send("client_wants_cancel")
            evs = await c.until("user_turn_start")
            t = types(evs)
            assert t[:2] == ["cancelled", "system_message"]
            assert evs[1]["severity"] == "info"
            done = next(e for e in evs if e["type"] == "completion")
            assert done["running"] is False and done["stop_reason"] == "cancelled"
            assert "never" not in [e.get("content") for e in evs]

            # POST /api/rt/cancel with the form field; another user's token finds nothing.
            await c.send("text_input", text="slow: never")
            await c.until("text_delta")
            bob = await login(srv, "bob")
            status, err = await http(
                "POST",
                f"{srv.base}/api/rt/cancel",
                f"ui_session_id={ui_id}".encode(),
                {
                    "Authorization": f"Bearer {bob['agent_c_token']}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert (status, err) == (404, {"detail": "Session not found"})
            status, _ = await http(
                "POST", f"{srv.base}/api/rt/cancel", f"ui_session_id={ui_id}".encode()
            )
            assert status == 401
            status, ok = await http(
                "POST",
                f"{srv.base}/api/rt/cancel",
                f"ui_session_id={ui_id}".encode(),
                {
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert status == 200 and ok["status"] == "success"
            evs = await c.until("user_turn_start")
            assert types(evs)[:2] == ["cancelled", "system_message"]
            assert next(e for e in evs if e["type"] == "completion")["stop_reason"] == "cancelled"

            # Any other command cancels the running turn first; ping does not.
            await c.send("text_input", text="slow: never")
            await c.until("text_delta")
            await c.send("ping")
            assert await c.next() == {"type": "pong"}
            await c.send("get_voices")
            evs = await c.until("voice_list")
            t = types(evs)
            assert t.index("completion") < t.index("user_turn_start") < t.index("voice_list")
            assert next(e for e in evs if e["type"] == "completion")["stop_reason"] == "cancelled"

            # A new text_input replaces the running turn.
            await c.send("text_input", text="slow: never")
            await c.until("text_delta")
            await c.send("text_input", text="instead")
            evs = await c.until("user_turn_start")  # the cancelled turn's
            assert next(e for e in evs if e["type"] == "completion")["stop_reason"] == "cancelled"
            evs = await c.until("user_turn_start")  # the new one
            assert types(evs)[0] == "user_turn_end"
            assert [e["content"] for e in evs if e["type"] == "text_delta"] == ["instead"]
            await c.close()

    asyncio.run(main())
