"""Print voxwire against its peers, measured in one process (the same as `voxwire bench`).

Usage: python benches/compare.py [--quick] [--json PATH]
"""

from voxwire.cli import main

if __name__ == "__main__":
    import sys

    raise SystemExit(main(["bench", *sys.argv[1:]]))
