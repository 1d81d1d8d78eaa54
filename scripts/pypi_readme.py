"""Write docs/pypi.md, the PyPI page, from README.md: the install Quickstart, absolute links.

Run after editing README.md: ``python scripts/pypi_readme.py`` (tests/cli/test_examples.py checks
that the page holds the README's snippets and no relative link).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Placeholder until the project is published.
REPO = "https://github.com/voxwire/voxwire"
BLOB = f"{REPO}/blob/main/"
RAW = "https://raw.githubusercontent.com/voxwire/voxwire/main/"

QUICKSTART = """## Quickstart

```sh
pip install "voxwire[server]" && voxwire demo
```

`voxwire demo` starts a local `voxwire serve`, streams a spoken sentence to it in real time,
shows the event timeline, plays the echo agent's answer through the jitter buffer into
`voxwire-demo.wav`, and prints the figures (turn-end accuracy, end of speech to first answer
audio, server CPU). Nothing leaves the machine. `pip install voxwire` alone is the audio core
(numpy only); `voxwire[server]` adds the server and clients, `voxwire[audio]` MP3/FLAC/OGG
input.

"""

LINKS = f"""## Links

Source, issues and documentation: {REPO}. History: [CHANGELOG.md]({BLOB}CHANGELOG.md).
Licence: MIT; derived material is listed in [THIRD_PARTY_NOTICES]({BLOB}THIRD_PARTY_NOTICES).
"""


def main() -> None:
    """Write docs/pypi.md."""
    s = (ROOT / "README.md").read_text()
    a, b = s.index("## Quickstart"), s.index("## The audio core")
    s = s[:a] + QUICKSTART + s[b:]
    s = s[: s.index("## Development")] + LINKS
    s = re.sub(r"!\[([^]]*)\]\((?!https?://)([^)]+)\)", lambda m: f"![{m[1]}]({RAW}{m[2]})", s)
    s = re.sub(
        r"(?<!!)\[([^]]*)\]\((?!https?://)([^)#]+)\)", lambda m: f"[{m[1]}]({BLOB}{m[2]})", s
    )
    s = s.replace("runnable file in `examples/`", "runnable file in the repository's `examples/`")
    s = s.replace("`examples/openai_sdk_*.py`.", "`examples/openai_sdk_*.py` in the repository.")
    head = "<!-- The PyPI page (pyproject's readme), written by scripts/pypi_readme.py. -->\n"
    (ROOT / "docs" / "pypi.md").write_text(head + s)


if __name__ == "__main__":
    main()
