"""Imports inside src/lstmkit go one way: spec -> functional -> families -> kernels -> modules -> trace -> interop
-> tasks -> train -> cli. Every import statement counts, also those inside functions (a lazy import is still a
dependency): a lower layer that imports a higher one fails here, naming the file and the line."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import lstmkit

PACKAGE = Path(lstmkit.__file__).resolve().parent
LAYERS = (
    "fileio",
    "spec",
    "functional",
    "families",
    "kernels",
    "init",
    "modules",
    "trace",
    "interop",
    "tasks",
    "train",
    "bench",
    "cli",
)
"""Bottom to top. ``fileio`` is a leaf utility (atomic writes) that imports nothing of lstmkit; ``init``
(gate-bias initialisation) sits below the modules that call it; ``bench`` is the benchmark harness the CLI offers."""
FACADES = ("__init__", "__main__", "demo")
"""The package's entry points sit above every layer and may import any."""
FACADE_LEVEL = "interop"
"""``import lstmkit`` runs the facade, which imports everything up to interop: only higher layers may."""


def _component(module: str) -> str:
    """``lstmkit.kernels.compiled.ops`` -> ``kernels``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every lstmkit import in a file, relative ones resolved."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lstmkit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from .. import kernels: each name may be a subpackage
                    found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
                    continue
                found.append((node.lineno, target))
            elif node.module and node.module.split(".")[0] == "lstmkit":
                found.append((node.lineno, node.module))
    return found


def back_edges() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _component(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source in FACADES:
            continue
        assert source in LAYERS, f"{path}: {source!r} belongs to no layer; add it to LAYERS"
        for line, target in _imports(path):
            dest = _component(target)
            if dest in FACADES and LAYERS.index(FACADE_LEVEL) >= LAYERS.index(source):
                problems.append(f"{path.relative_to(PACKAGE)}:{line} ({source}) imports the package facade {target}")
            elif dest in LAYERS and LAYERS.index(dest) > LAYERS.index(source):
                problems.append(f"{path.relative_to(PACKAGE)}:{line} ({source}) imports {target} ({dest})")
    return problems


def test_no_import_goes_up_a_layer() -> None:
    problems = back_edges()
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_walk_sees_relative_and_lazy_imports(tmp_path: Path, monkeypatch: object) -> None:
    """The checker itself: a lazy ``from ..trace import x`` inside a function of modules/ is found."""
    fake = tmp_path / "lstmkit"
    (fake / "modules").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "modules" / "bad.py").write_text("def f():\n    from ..trace.record import GateTrace\n")
    (fake / "modules" / "ok.py").write_text("from ..kernels import native\nfrom .. import spec\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)  # type: ignore[attr-defined]
    problems = back_edges()
    assert problems == ["modules/bad.py:2 (modules) imports lstmkit.trace.record (trace)"]
