"""``python -m voxwire``: the same as the ``voxwire`` command."""

from voxwire.cli import main

raise SystemExit(main())
