"""Every README snippet is a file in examples/ that runs as written and exits 0 (issue 25)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import voxwire

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(voxwire.__file__).parent.parent)}
    r = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=80,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip()  # each example says what it did


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8


def test_the_pypi_page_shows_the_readme_snippets() -> None:
    # docs/pypi.md is README.md for PyPI (absolute links): its code must not drift.
    import re

    root = Path(__file__).parents[2]
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    page = (root / "docs" / "pypi.md").read_text()
    assert blocks and all(b in page for b in blocks)
    assert not re.search(r"\]\((?!https?://)", page)  # every link works from PyPI
