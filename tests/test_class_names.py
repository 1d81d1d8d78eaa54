"""Every public class of the voxwire package has a name of its own.

Two classes of one name (three ``SpeechStarted`` once: the core's, a session fact and a
client event) make imports, docs and ``isinstance`` checks ambiguous. The rule holds for
every module and the extension's stub, private classes (``_Name``) excepted.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import voxwire


def public_class_names(root: Path) -> dict[str, list[str]]:
    """Class name -> where it is defined (``path:line``), for every public class under root."""
    seen: dict[str, list[str]] = defaultdict(list)
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                seen[node.name].append(f"{path.relative_to(root)}:{node.lineno}")
    return dict(seen)


def duplicates(root: Path) -> dict[str, list[str]]:
    """The public class names defined more than once under root."""
    return {n: where for n, where in public_class_names(root).items() if len(where) > 1}


def test_no_two_public_classes_share_a_name() -> None:
    root = Path(voxwire.__file__).parent
    names = public_class_names(root)
    # The walk sees the whole package: the stub's core classes, modules in subpackages.
    assert {"InputPipeline", "Session", "RealtimeClient", "InputSpeechStarted"} <= set(names)
    assert duplicates(root) == {}


def test_the_check_finds_a_shared_name(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("class Event:\n    pass\n\n\nclass _Private:\n    pass\n")
    (tmp_path / "sub" / "b.py").write_text(
        "class Event:\n    pass\n\n\nclass _Private:\n    pass\n"
    )
    (tmp_path / "c.pyi").write_text("class Other: ...\n")
    assert duplicates(tmp_path) == {"Event": ["a.py:1", "sub/b.py:1"]}
