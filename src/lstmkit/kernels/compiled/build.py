"""Build lstmkit's C++ kernel once per environment and load it without ever rebuilding it.

A build is identified by a key, the digest of everything that changes the binary::

    key = sha256(sys.prefix, Python version, torch version and location, source and header bytes, flags)[:16]

and lives in its own folder ``<root>/lstmkit_lstm_<key>/`` (root: ``$LSTMKIT_BUILD_DIR``, else
``$XDG_CACHE_HOME/lstmkit/kernel``, else ``~/.cache/lstmkit/kernel``). Once a build has succeeded
its folder holds ``BUILT`` (a JSON note of what was built, when and in how long), and every later
load imports the shared library directly: no compiler, no ``ninja``, nothing read from ``PATH``.
Two virtual environments, two torch versions or two sets of flags get two folders and never
rebuild each other; an edited source gets a new key. Concurrent first builds are serialised by a
file lock in the folder. The first build prints one line to stderr (what, how long, where).

``lstmkit build-kernel`` calls :func:`load` ahead of use (for images and CI).

Example::

    >>> from lstmkit.kernels.compiled import build
    >>> ext = build.load()  # builds on the first call in this environment, imports afterwards
    >>> build.KERNEL.directory().name.startswith("lstmkit_lstm_")
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
BUILT = "BUILT"
"""Name of the file that marks a finished build (written last, atomically)."""


@dataclass(frozen=True)
class ExtensionBuild:
    """One C++ extension: what to compile and with which flags; the build folder follows from it."""

    name: str  # module name prefix; the module is f"{name}_{key}"
    sources: tuple[Path, ...]  # translation units
    headers: tuple[Path, ...] = ()  # included files: part of the key, not compiled alone
    cflags: tuple[str, ...] = ()  # extra compiler flags
    include_dirs: tuple[Path, ...] = ()  # extra -I folders
    what: str = "a C++ extension"  # said in the line printed before the build

    def key(self, prefix: str | None = None) -> str:
        """Digest of the environment (``prefix``, default ``sys.prefix``), torch, sources and flags."""
        h = hashlib.sha256()
        for part in (
            prefix if prefix is not None else sys.prefix,
            sys.version,
            torch.__version__,
            str(Path(torch.__file__).resolve().parent),
            *self.cflags,
            *map(str, self.include_dirs),
        ):
            h.update(part.encode() + b"\0")
        for path in (*self.sources, *self.headers):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()[:16]

    def module_name(self, prefix: str | None = None) -> str:
        return f"{self.name}_{self.key(prefix)}"

    def directory(self, root: Path | None = None, prefix: str | None = None) -> Path:
        """The folder of this build: ``<root>/<module name>``."""
        return (root or build_root()) / self.module_name(prefix)


KERNEL = ExtensionBuild(
    name="lstmkit_lstm",
    sources=(CSRC / "lstm.cpp",),
    headers=tuple(sorted(CSRC.glob("*.h"))),
    # Plain -O3 (no -march=native: the build folder may be shared by machines with other CPUs); the two
    # -fno flags change no result, they let the compiler vectorise the branch-free activation loops.
    cflags=("-O3", "-fno-math-errno", "-fno-trapping-math"),
    include_dirs=(CSRC,),
    what="the C++ LSTM kernel",
)
"""lstmkit's LSTM recurrence (``csrc/lstm.cpp``)."""


def build_root() -> Path:
    """Where builds go: ``$LSTMKIT_BUILD_DIR``, else the user's cache folder."""
    explicit = os.environ.get("LSTMKIT_BUILD_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lstmkit" / "kernel"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load(
    ext: ExtensionBuild = KERNEL,
    root: Path | None = None,
    prefix: str | None = None,
    announce: Callable[[str], None] = _say,
) -> ModuleType:
    """The built extension module: imported from its folder when built before, else compiled now.

    ``prefix`` stands for the environment (default ``sys.prefix``); ``announce`` receives the one line
    printed before a build. Raises whatever the compiler raises when the build fails.
    """
    folder = ext.directory(root, prefix)
    name = folder.name
    if _finished(folder):
        return _import(folder, name)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / "build.lock"):
        if _finished(folder):  # another process finished it while we waited
            return _import(folder, name)
        announce(
            f"lstmkit: compiling {ext.what} once for this environment "
            f"(usually 30-90 s; never again for this Python, torch and source) into {folder}"
        )
        start = time.perf_counter()
        module = _compile(ext, folder, name)
        note = {"module": name, "seconds": round(time.perf_counter() - start, 1), "prefix": prefix or sys.prefix}
        note.update(torch=torch.__version__, python=sys.version.split()[0], built=time.strftime("%Y-%m-%d %H:%M:%S"))
        tmp = folder / (BUILT + ".tmp")
        tmp.write_text(json.dumps(note, indent=1) + "\n")
        tmp.replace(folder / BUILT)
    return module


def _finished(folder: Path) -> bool:
    """A build that completed and whose library is still there (a deleted library is built again)."""
    return (folder / BUILT).is_file() and library_path(folder).is_file()


def library_path(folder: Path) -> Path:
    """The shared library of the build in ``folder``."""
    return folder / f"{folder.name}.so"


def _import(folder: Path, name: str) -> ModuleType:
    """Import the built module from its shared library (the same module object on every call)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, library_path(folder))
    if spec is None or spec.loader is None:
        raise ImportError(f"no loadable extension at {library_path(folder)}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """Put the ``ninja`` package's binary first on PATH for the build (it need not be on PATH otherwise)."""
    old = os.environ.get("PATH", "")
    try:
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + old
    except ImportError:  # a ninja on PATH still works; torch names the problem when there is none
        pass
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _compile(ext: ExtensionBuild, folder: Path, name: str) -> ModuleType:
    from torch.utils import cpp_extension

    with _ninja_on_path():
        module = cpp_extension.load(
            name=name,
            sources=[str(s) for s in ext.sources],
            extra_cflags=list(ext.cflags),
            extra_include_paths=[str(d) for d in ext.include_dirs],
            build_directory=str(folder),
            verbose=False,
        )
    sys.modules[name] = module
    return module
