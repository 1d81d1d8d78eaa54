"""continue-conversation: the stored conversation, its history in the agent's context, across
a server restart (SQLite) and across two server processes (Redis); the lease of a killed
process expires."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from amigo_agents import HistoryAgent
from amigo_helpers import SERVICE, Client, ServerThread, make_env, start, token_of
from websockets.exceptions import ConnectionClosed

from voxwire.demo import stop_server
from voxwire.store import open_store

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.network]

HERE = Path(__file__).parent


async def _answer(c: Client, text: str, **extra: Any) -> str:
    await c.send(type="client.new-text-message", text=text, message_type="user-message", **extra)
    done = await c.until("server.interaction-complete")
    return str(done["full_message"])


def test_continue_after_a_restart_sqlite(tmp_path: Path) -> None:
    env = make_env(tmp_path)

    async def first(url: str, token: str) -> str:
        c, conv = await start(url, token)
        assert (await _answer(c, "I like apples")).endswith("now:user:I like apples")
        await c.send(
            type="client.new-text-message",
            text="user opened the fruit page",
            message_type="external-event",
        )
        await c.send(type="client.close-connection")
        assert (await c.closed())[0] == 1000
        return conv

    with ServerThread(env.server_config(agent=HistoryAgent())) as srv:
        token = token_of(srv.port, env)
        conv = asyncio.run(first(srv.url(), token))

    async def second(url: str) -> tuple[list[str], str, bool]:
        c = await Client.open(url, token)
        await c.send(type="client.continue-conversation", conversation_id=conv)
        await c.until("server.conversation-retrieved")
        answer = await _answer(c, "what do I like?")
        await c.send(type="client.finish-conversation")
        await c.until("server.conversation-completed")
        await c.close()
        store = open_store(env.store_url)
        await store.open()
        try:
            rec = await store.get_conversation(conv)
            items = await store.get_items(conv)
        finally:
            await store.close()
        assert rec is not None
        return [f"{i['role']}:{i['text']}" for i in items], answer, rec.finished

    with ServerThread(env.server_config(agent=HistoryAgent())) as srv:  # a new process state
        items, answer, finished = asyncio.run(second(srv.url()))
    history = [
        "assistant:Hello, I am Echo.",
        "user:I like apples",
        "assistant:assistant:Hello, I am Echo. | now:user:I like apples",
        "system:user opened the fruit page",
    ]
    # The agent of the new server sees the stored conversation before the new message.
    assert answer == " | ".join([*history, "now:user:what do I like?"])
    assert items[:4] == history
    assert items[4:] == ["user:what do I like?", f"assistant:{answer}"]
    assert finished


@contextmanager
def amigo_server(
    store_url: str, config: Path, ttl: float, agent: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *sys.path])
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "amigo_serve.py"), store_url, str(config), str(ttl), agent],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), "the server did not start"
        yield int(line), proc
    finally:
        stop_server(proc)


def _url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/acme/conversation/converse_realtime?response_format=text"


def test_two_processes_share_conversations_and_leases_redis(
    tmp_path: Path, redis_server_factory: Any
) -> None:
    redis = redis_server_factory()
    redis.start()
    env = make_env(tmp_path, store_url=redis.url)
    ttl = 3.0
    with (
        amigo_server(redis.url, env.config_path, ttl, "HistoryAgent") as (port_a, _),
        amigo_server(redis.url, env.config_path, ttl, "HistoryAgent") as (port_b, proc_b),
    ):
        token = token_of(port_a, env)  # a JWT of process A works on B (shared keys)

        async def main() -> dict[str, Any]:
            out: dict[str, Any] = {}
            a, conv = await start(_url(port_a), token)
            await _answer(a, "I like pears")
            # The same user and service on the other process: conflict, both ways in.
            b = await Client.open(_url(port_b), token)
            await b.send(type="client.start-conversation", service_id=SERVICE)
            out["second"] = await b.closed()
            b = await Client.open(_url(port_b), token)
            await b.send(type="client.continue-conversation", conversation_id=conv)
            out["busy"] = await b.closed()
            await a.send(type="client.close-connection")
            await a.closed()
            # Released: process B continues A's conversation with its history.
            b = await Client.open(_url(port_b), token)
            await b.send(type="client.continue-conversation", conversation_id=conv)
            await b.until("server.conversation-retrieved")
            out["answer"] = await _answer(b, "and now?")
            # Process B dies holding the lease: refused until the lease expires.
            proc_b.send_signal(signal.SIGKILL)
            proc_b.wait(10)
            c = await Client.open(_url(port_a), token)
            await c.send(type="client.continue-conversation", conversation_id=conv)
            out["held"] = await c.closed()
            for _ in range(int(ttl * 10) + 20):
                await asyncio.sleep(0.25)
                c = await Client.open(_url(port_a), token)
                await c.send(type="client.continue-conversation", conversation_id=conv)
                try:
                    m = await c.recv()
                except ConnectionClosed:
                    continue  # 4009 while the dead process's lease lasts
                out["after"] = m
                await c.close()
                break
            return out

        out = asyncio.run(main())
    assert out["second"][0] == 4009
    assert out["busy"][0] == 4009
    assert out["answer"].startswith("assistant:Hello, I am Echo. | user:I like pears | ")
    assert out["answer"].endswith(" | now:user:and now?")
    assert out["held"][0] == 4009
    assert out["after"] == {"type": "server.conversation-retrieved"}


def test_agent_ends_the_conversation(tmp_path: Path) -> None:
    from amigo_agents import Goodbye

    env = make_env(tmp_path)
    with ServerThread(env.server_config(agent=Goodbye())) as srv:
        token = token_of(srv.port, env)

        async def main() -> tuple[dict[str, Any], tuple[int | None, str], str]:
            c, conv = await start(srv.url(), token)
            await c.send(type="client.new-text-message", text="bye", message_type="user-message")
            done = await c.until("server.interaction-complete")
            await c.send(type="client.new-text-message", text="hello?", message_type="user-message")
            closed = await c.closed()
            return done, closed, conv

        done, closed, conv = asyncio.run(main())

        async def stored() -> bool:
            store = open_store(env.store_url)
            await store.open()
            try:
                rec = await store.get_conversation(conv)
                return rec is not None and rec.finished
            finally:
                await store.close()

        finished = asyncio.run(stored())
    assert done["full_message"] == "Goodbye." and done["conversation_completed"] is True
    assert closed[0] == 4009
    assert finished
