"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one file run in order in one namespace, as a reader would paste them, inside a
temporary working folder (files they write land there). A block fenced as ```python skip is shown
but not run (reserved for code that needs what a test cannot have, e.g. a GPU).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python( skip)?\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each runnable ```python block."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) is None]


def test_the_documents_have_examples() -> None:
    assert python_blocks(ROOT / "README.md"), "README.md lost its python examples"


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if python_blocks(p)], ids=lambda p: p.name)
def test_examples_run(path: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)  # whatever a block sets in the environment is undone afterwards
    namespace: dict[str, object] = {"__name__": f"example_{path.stem}"}
    try:
        for line, code in python_blocks(path):
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{path.name} block at line {line} fails: {type(err).__name__}: {err}") from err
    finally:
        os.environ.clear()
        os.environ.update(saved)
