"""The voice frameworks' tests: a `voxwire serve` for each test module (see fw_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fw_helpers import KEY


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """A `voxwire serve` on a free loopback port (echo agent, ASR when installed)."""
    from voxwire.demo import spawn_server

    with spawn_server("--api-key", KEY, "--asr", "auto") as (p, _):
        yield p
