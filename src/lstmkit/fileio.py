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
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
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
        if isinstance(err, OSError) and err.filename == tmp:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    fault_point(f"{path.name}.renamed")
    fsync_dir(path.parent)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one text line (newline added) and flush it to disk; fault point ``<name>.append``
    fires after half of the line is written (a torn line, as a full disk or a kill leaves)."""
    path = Path(path)
    data = (line + "\n").encode()
    with open(path, "ab") as f:
        if os.environ.get(FAULT_ENV):
            f.write(data[: len(data) // 2])
            f.flush()
            fault_point(f"{path.name}.append")
            f.write(data[len(data) // 2 :])
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
