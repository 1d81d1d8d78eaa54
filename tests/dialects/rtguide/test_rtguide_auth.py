"""rtguide login, refresh and the WebSocket's token check (the guide's REST endpoints)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from rtguide_helpers import PASSWORD, http, login, open_ws, running_server, types
from websockets.exceptions import InvalidStatus

from voxwire.auth import Authenticator, Principal
from voxwire.dialects.rtguide import is_slug

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow, pytest.mark.network]


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def tampered(token: str) -> str:
    head, _payload, sig = token.split(".")
    c = claims(token)
    c["sub"] = "bob"
    raw = base64.urlsafe_b64encode(json.dumps(c).encode()).rstrip(b"=").decode()
    return f"{head}.{raw}.{sig}"


def test_login_refresh_and_tokens(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_server(tmp_path / "s.db") as srv:
            for prefix in ("/api/rt", "/rt"):
                body = await login(srv, prefix=prefix)
                assert set(body) == {"agent_c_token", "heygen_token", "ui_session_id"}
                assert body["heygen_token"] == "None"
                assert is_slug(body["ui_session_id"])
                assert len(body["ui_session_id"].split("-")) == 3
            c = claims(body["agent_c_token"])
            assert c["sub"] == "alice"
            assert c["user"]["user_id"] == "alice"
            assert c["user"]["email"] == "alice@example.com"
            raw = json.dumps(c)
            assert "password" not in raw and "scrypt" not in raw

            # Bad credentials: 401 with the guide's body (unknown user and wrong password alike).
            for user, pw in (("alice", "wrong password"), ("nobody", PASSWORD)):
                status, err = await http(
                    "POST", f"{srv.base}/api/rt/login", {"username": user, "password": pw}
                )
                assert (status, err) == (401, {"detail": "Invalid credentials"})
            status, _ = await http("POST", f"{srv.base}/api/rt/login", {"username": "alice"})
            assert status == 422

            # Refresh: the Bearer JWT gives a fresh one, which opens a WebSocket.
            token = body["agent_c_token"]
            for prefix in ("/api/rt", "/rt"):
                status, fresh = await http(
                    "GET",
                    f"{srv.base}{prefix}/refresh_token",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert status == 200, fresh
                assert set(fresh) == {"agent_c_token", "heygen_token"}
                assert fresh["agent_c_token"] != token
                assert claims(fresh["agent_c_token"])["sub"] == "alice"
            c1 = await open_ws(srv, fresh["agent_c_token"])
            assert types(await c1.until("user_turn_start"))[0] == "ui_session_id_changed"
            await c1.close()

            # Expired and tampered tokens: refresh refused, the upgrade fails.
            old = Authenticator(
                srv.platform.store, jwt=srv.platform.auth.jwt, clock=lambda: time.time() - 7200
            )
            expired, _ = old.issue_access(Principal(kind="user", id="alice"), ttl_s=60)
            for bad in (expired, tampered(token), "not-a-jwt", ""):
                status, err = await http(
                    "GET",
                    f"{srv.base}/api/rt/refresh_token",
                    headers={"Authorization": f"Bearer {bad}"},
                )
                assert (status, err) == (401, {"detail": "Invalid token"}), bad
                with pytest.raises(InvalidStatus) as refused:
                    await open_ws(srv, bad)
                assert refused.value.response.status_code == 401
            status, _ = await http("GET", f"{srv.base}/api/rt/refresh_token")
            assert status == 401

            # A removed user's token no longer opens anything.
            bob = (await login(srv, "bob"))["agent_c_token"]
            await srv.platform.store.remove_user("bob")
            with pytest.raises(InvalidStatus) as refused:
                await open_ws(srv, bob)
            assert refused.value.response.status_code == 401
            status, _ = await http(
                "GET",
                f"{srv.base}/api/rt/refresh_token",
                headers={"Authorization": f"Bearer {bob}"},
            )
            assert status == 401

    asyncio.run(main())
