"""One of the processes racing to consume the same single-use tokens (see test_auth_race.py).

argv: store URL, tokens file (JSON list), ready file to create, go file to wait for. Prints a
JSON list: for each token, whether this process got it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from voxwire.auth import Authenticator, JwtKeys
from voxwire.cli_admin import open_store


async def main(url: str, tokens_file: str, ready: str, go: str) -> None:
    tokens = json.loads(Path(tokens_file).read_text())
    store = open_store(url)
    await store.open()
    try:
        auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
        await store.ping()  # connected before the start
        Path(ready).touch()
        deadline = time.monotonic() + 30
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            await asyncio.sleep(0.0005)
        got = [await auth.consume_single_use(t) is not None for t in tokens]
    finally:
        await store.close()
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
