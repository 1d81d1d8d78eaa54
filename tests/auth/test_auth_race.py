"""Two processes race to consume the same single-use tokens: each token is won exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import voxwire
from voxwire.auth import Authenticator, JwtKeys, Principal
from voxwire.cli_admin import open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WORKER = Path(__file__).with_name("race_worker.py")
TOKENS = 40


def issue(url: str, n: int) -> list[str]:
    async def go() -> list[str]:
        store = open_store(url)
        await store.open()
        try:
            auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
            p = Principal(kind="key", id="k_race")
            return [await auth.issue_single_use(p, {"i": i}, ttl_s=60) for i in range(n)]
        finally:
            await store.close()

    return asyncio.run(go())


def race(url: str, tmp: Path) -> None:
    tokens = issue(url, TOKENS)
    (tmp / "tokens.json").write_text(json.dumps(tokens))
    pkg = Path(voxwire.__file__).parent.parent  # the voxwire these tests import
    env = {**os.environ, "PYTHONPATH": f"{pkg}{os.pathsep}{ROOT / 'tests' / 'auth'}"}
    go = tmp / "go"
    readies = [tmp / f"ready{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(tmp / "tokens.json"), str(r), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in readies
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in readies):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "workers never got ready"
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outs
    a, b = (json.loads(o[0]) for o in outs)
    assert len(a) == len(b) == TOKENS
    assert all(x != y for x, y in zip(a, b, strict=True)), (a, b)  # exactly one of two won

    # and nothing is left to take
    async def leftovers() -> int:
        store = open_store(url)
        await store.open()
        try:
            auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
            return sum([await auth.consume_single_use(t) is not None for t in tokens])
        finally:
            await store.close()

    assert asyncio.run(leftovers()) == 0


@pytest.mark.timeout(180)
def test_two_processes_race_on_a_sqlite_file(tmp_path: Path) -> None:
    race(f"sqlite:///{tmp_path / 'race.db'}", tmp_path)


@pytest.mark.network
@pytest.mark.timeout(180)
def test_two_processes_race_on_redis(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url")
    race(f"{url}?prefix=auth-race-{os.urandom(4).hex()}:", tmp_path)
