"""The ``voxwire`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxwire`` command."""
    p = argparse.ArgumentParser(prog="voxwire", description="voxwire: realtime voice audio engine")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="benchmark voxwire against its peers in this process")
    b.add_argument("--quick", action="store_true", help="short run (about 15 s)")
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voxwire`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from voxwire import bench

        return bench.main(quick=args.quick, json_path=args.json)
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
