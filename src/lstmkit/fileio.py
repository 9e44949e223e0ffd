"""Small file helpers shared by every layer that writes files.

Every file lstmkit writes goes through :func:`atomic_write` (temporary file in the same folder,
``fsync``, one ``os.replace``, ``fsync`` of the folder) or :func:`append_line`, so a reader sees the
old file or the new one, never half of one, and new files get the mode the umask allows.

Fault injection (tests only): ``LSTMKIT_FAULT`` lists ``POINT@N[:ACTION]`` items, comma separated.
At the N-th time this process reaches the named point (1-based), ACTION happens: ``kill``
(SIGKILL, the default), ``sigint`` (a Ctrl-C), ``enospc`` (``OSError`` "No space left on
device") or ``stop`` (SIGSTOP). Points: ``NAME.tmp`` (temporary file written, before the
rename), ``NAME.renamed`` (after the rename, before the folder's fsync) for each atomic write
of a file called NAME (e.g. ``checkpoint.safetensors.tmp``); ``NAME.append`` (half of a line
written) for appends; and ``step`` (before each training step). Example::

    LSTMKIT_FAULT=checkpoint.safetensors.tmp@2 lstmkit train adding ...   # dies inside the 2nd commit
"""

from __future__ import annotations

import errno
import io
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

FAULT_ENV = "LSTMKIT_FAULT"
_reached: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Count one pass through the point ``name`` and act when ``LSTMKIT_FAULT`` names this pass.

    Example::

        >>> fault_point("step")      # no LSTMKIT_FAULT: only counts
    """
    spec = os.environ.get(FAULT_ENV)
    _reached[name] = _reached.get(name, 0) + 1
    if not spec:
        return
    for item in spec.split(","):
        where, _, action = item.strip().partition(":")
        point, _, count = where.partition("@")
        if point != name or _reached[name] != int(count or 1):
            continue
        if action in ("", "kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write says it; callers name the file
        else:
            raise ValueError(f"{FAULT_ENV}: unknown action {action!r} in {item!r}; expected kill, sigint, enospc, stop")


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` with the bits the process umask removes cleared (what ``open`` would give)."""
    current = os.umask(0o022)
    os.umask(current)
    return mode & ~current


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` and one ``os.replace``.

    The file gets mode ``0o666`` minus the umask. On any error the temporary file is removed
    and ``path`` is untouched; an ``OSError`` names ``path``, not the temporary file. Fault
    points ``<name>.tmp`` and ``<name>.renamed``.

    Example::

        >>> atomic_write("/tmp/x.json", "{}")   # doctest: +SKIP
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file the user asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), umask_mode())
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        fault_point(f"{path.name}.tmp")
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (tmp, None):  # a write or fsync names no file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    fault_point(f"{path.name}.renamed")
    fsync_dir(path.parent)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one text line (newline added) and ``fsync`` it: the whole line or nothing.

    When any part of the append fails (a full disk in ``write`` or ``fsync``, a Ctrl-C), the file
    is cut back to its size before the call (a file this call created is removed), so readers never
    see a torn line, and the ``OSError`` names ``path``. Only a kill in the middle can leave a torn
    line. Fault point ``<name>.append`` fires after half of the line is written.

    Example::

        >>> append_line("/tmp/m.jsonl", '{"step": 1}')   # doctest: +SKIP
    """
    path = Path(path)
    data = (line + "\n").encode()
    try:
        fd, created = _open_for_append(path)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        size = os.fstat(fd).st_size
        try:
            half = len(data) // 2 if os.environ.get(FAULT_ENV) else 0
            _write_all(fd, data[:half])
            if half:
                fault_point(f"{path.name}.append")
            _write_all(fd, data[half:])
            os.fsync(fd)
        except BaseException as err:
            _cut_back(fd, path, size, created)
            if isinstance(err, OSError):
                raise OSError(err.errno, err.strerror, str(path)) from None
            raise
    finally:
        os.close(fd)


def _open_for_append(path: Path) -> tuple[int, bool]:
    """A write-only, append-mode descriptor of ``path`` and whether this call created the file."""
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, umask_mode()), True
    except FileExistsError:
        return os.open(path, flags), False


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte of ``data`` is written (a write may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _cut_back(fd: int, path: Path, size: int, created: bool) -> None:
    """Undo a failed append: truncate to ``size`` (or remove a file the append created)."""
    try:
        if created:
            os.unlink(path)
        else:
            os.ftruncate(fd, size)
            os.fsync(fd)
    except OSError:
        pass  # the append's own error is the one to report; a torn line is still read as torn


def stale_temporaries(folder: str | os.PathLike[str], names: tuple[str, ...]) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` for the files ``names`` (a process
    killed between writing and renaming leaves one)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file())


def save_png(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Render a matplotlib Figure to PNG and write it atomically, creating the folder."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())
