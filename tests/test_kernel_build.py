"""The compiled kernel builds once per (environment, torch, sources, flags) and is never rebuilt by
another environment, a changed PATH or a new process; the first build prints one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmkit.cli import main as cli_main
from lstmkit.kernels import compiled
from lstmkit.kernels.compiled import build

TINY = """#include <pybind11/pybind11.h>
int add(int a, int b) { return a + b; }
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("add", &add); }
"""


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "build.lock"}


def _tiny(tmp_path: Path, body: str = TINY, flags: tuple[str, ...] = ("-O1",)) -> build.ExtensionBuild:
    src = tmp_path / "tiny.cpp"
    src.write_text(body)
    return build.ExtensionBuild("lstmkit_test_tiny", (src,), cflags=flags, what="a test extension")


def _load_in_subprocess(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python where compiling raises, so any rebuild fails loudly."""
    prelude = (
        "from pathlib import Path\n"
        "from lstmkit.kernels.compiled import build\n"
        "def _no_compile(*a, **k):\n"
        "    raise SystemExit('REBUILT')\n"
        "build._compile = _no_compile\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, timeout=120)


def test_key_follows_environment_torch_sources_and_flags_not_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = _tiny(tmp_path)
    base = ext.key(prefix="/envs/a")
    assert ext.key(prefix="/envs/a") == base
    assert ext.key(prefix="/envs/b") != base
    assert _tiny(tmp_path, flags=("-O2",)).key(prefix="/envs/a") != base
    edited = tmp_path / "edited"
    edited.mkdir()
    assert _tiny(edited, body=TINY + "// edited\n").key(prefix="/envs/a") != base
    monkeypatch.setattr(build.torch, "__version__", "9.9.9")
    assert ext.key(prefix="/envs/a") != base
    monkeypatch.undo()
    monkeypatch.setenv("PATH", "/nowhere")
    assert ext.key(prefix="/envs/a") == base
    assert ext.directory(tmp_path, "/envs/a") == tmp_path / f"lstmkit_test_tiny_{base}"


def test_build_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LSTMKIT_BUILD_DIR", str(tmp_path / "k"))
    assert build.build_root() == tmp_path / "k"
    monkeypatch.delenv("LSTMKIT_BUILD_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert build.build_root() == tmp_path / "cache" / "lstmkit" / "kernel"


def test_two_environments_never_rebuild_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ext = _tiny(tmp_path)
    root = tmp_path / "builds"
    assert build.load(ext, root, prefix="/envs/a").add(2, 3) == 5
    first = capsys.readouterr().err.strip().splitlines()
    folder_a = ext.directory(root, "/envs/a")
    assert len(first) == 1 and "compiling a test extension" in first[0] and str(folder_a) in first[0]
    assert json.loads((folder_a / build.BUILT).read_text())["prefix"] == "/envs/a"
    before_a = _mtimes(folder_a)

    said: list[str] = []
    assert build.load(ext, root, prefix="/envs/b", announce=said.append).add(1, 1) == 2
    folder_b = ext.directory(root, "/envs/b")
    assert folder_b != folder_a and (folder_b / build.BUILT).is_file() and len(said) == 1
    assert _mtimes(folder_a) == before_a

    # A fresh process for environment a, with another PATH (no ninja on it), loads without compiling.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    again = f"build.ExtensionBuild('lstmkit_test_tiny', (Path({str(ext.sources[0])!r}),), cflags=('-O1',))"
    code = f"m = build.load({again}, Path({str(root)!r}), prefix='/envs/a')\nprint(m.add(20, 22))\n"
    done = _load_in_subprocess(code, env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "42" and "compiling" not in done.stderr
    assert _mtimes(folder_a) == before_a


def test_failed_build_leaves_no_marker_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = _tiny(tmp_path)
    calls: list[str] = []

    def broken(e: build.ExtensionBuild, folder: Path, name: str) -> None:
        calls.append(name)
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(build, "_compile", broken)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no compiler here"):
            build.load(ext, tmp_path / "builds", prefix="/envs/x", announce=lambda line: None)
    assert len(calls) == 2
    assert not (ext.directory(tmp_path / "builds", "/envs/x") / build.BUILT).exists()


def test_a_deleted_library_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = _tiny(tmp_path)
    folder = ext.directory(tmp_path / "builds", "/envs/y")
    folder.mkdir(parents=True)
    (folder / build.BUILT).write_text("{}")  # marker left behind, library gone
    calls: list[str] = []

    def fake(e: build.ExtensionBuild, where: Path, name: str) -> str:
        calls.append(name)
        return "module"

    monkeypatch.setattr(build, "_compile", fake)
    said: list[str] = []
    assert build.load(ext, tmp_path / "builds", prefix="/envs/y", announce=said.append) == "module"
    assert calls == [folder.name] and len(said) == 1


def test_real_kernel_loads_in_a_new_process_with_another_path_without_rebuilding() -> None:
    assert compiled.is_available(), compiled._state["error"]
    folder = build.KERNEL.directory()
    assert (folder / build.BUILT).is_file() and build.library_path(folder).is_file()
    before = _mtimes(folder)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = _load_in_subprocess("print(build.load().isa())\n", env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() in ("avx512", "avx2", "generic") and done.stderr == ""
    assert _mtimes(folder) == before


def test_cli_build_kernel_reports_the_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert compiled.is_available(), compiled._state["error"]
    assert cli_main(["build-kernel"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"lstmkit build-kernel: already built: {build.KERNEL.directory()}"]


def test_cli_build_kernel_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("LSTMKIT_BUILD_DIR", str(tmp_path / "empty"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("g++: not found\nmore detail")

    monkeypatch.setattr(build, "_compile", broken)
    assert cli_main(["build-kernel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lstmkit build-kernel: error: the kernel did not build in ")
    assert "g++: not found more detail" in err[-1]
