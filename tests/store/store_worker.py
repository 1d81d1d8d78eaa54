"""A separate process that races others on one store (driven by test_store.py).

Usage: python store_worker.py STORE_URL OP ARG...

It opens the store, prints ``ready``, waits for a line on stdin (the barrier: the test writes
``go`` to every worker at once), runs OP, prints its result as one JSON line and exits.
The ``lease`` op then waits for a second line (or EOF) before it exits, holding the lease.
"""

import asyncio
import json
import sys

from voxwire.store import open_store


async def main(url: str, op: str, args: list[str]) -> None:
    loop = asyncio.get_running_loop()
    async with open_store(url, timeout=10.0) as store:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        result: object
        if op == "consume":  # consume tok-0 .. tok-(N-1) in order; which ones did I get?
            got = []
            for i in range(int(args[0])):
                if await store.consume_token(f"tok-{i}") is not None:
                    got.append(i)
            result = got
        elif op == "rotate":  # rotate FAMILY from PRESENTED to NEW
            result = await store.rotate_family(args[0], args[1], args[2], 60.0)
        elif op == "hit":  # hit KEY N times with LIMIT per 60 s; how many were allowed?
            n, limit = int(args[1]), int(args[2])
            allowed = 0
            for _ in range(n):
                allowed += (await store.hit(args[0], limit=limit, window_s=60.0)).allowed
            result = allowed
        elif op == "lease":  # acquire KEY for HOLDER with TTL, hold it until told
            result = await store.acquire_lease(args[0], args[1], float(args[2]))
        else:
            raise SystemExit(f"unknown op {op}")
        print(json.dumps(result), flush=True)
        if op == "lease":
            await loop.run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
