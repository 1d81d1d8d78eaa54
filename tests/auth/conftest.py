"""Fixtures of the credential tests: a real SQLite store in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxwire.auth import Authenticator, JwtKeys
from voxwire.store.sqlite import SQLiteStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "voxwire.db") as s:
        yield s


@pytest.fixture
def jwt_keys() -> JwtKeys:
    return JwtKeys.hs256(os.urandom(32))


@pytest.fixture
def auth(store: SQLiteStore, jwt_keys: JwtKeys) -> Authenticator:
    return Authenticator(store, jwt=jwt_keys)
