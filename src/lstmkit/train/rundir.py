"""The run directory as one writer's property: an OS lock, stale temporaries, metrics lines.

* :class:`RunLock` holds ``fcntl.flock`` on ``DIR/.lock`` (holding the owner's pid) for the whole
  run; a second training into the same directory fails at once naming that pid. The OS drops
  the lock when the process dies, so a killed run never leaves a stale lock behind.
* :func:`clean_temporaries` removes the ``.NAME.*.tmp`` files a killed commit left behind.
* :func:`read_metrics_for_resume` reads ``metrics.jsonl`` and drops a torn last line; a bad line
  anywhere else is an error. Only a kill -9 in the middle of an append can leave one: a failed
  write (a full disk, say) cuts the file back to its last whole line
  (:func:`lstmkit.fileio.append_line`).

Example::

    >>> with RunLock("runs/adding"):        # doctest: +SKIP
    ...     clean_temporaries("runs/adding")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..fileio import stale_temporaries, umask_mode
from .best import BEST
from .checkpoint import CHECKPOINT, CONFIG, METRICS

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are then unguarded against a second writer
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
CURVE = "curve.png"
RUN_FILES = (CHECKPOINT, CONFIG, METRICS, CURVE, BEST)
"""Files a run writes (each through a temporary file, except metrics lines)."""


class RunLocked(RuntimeError):
    """Another process trains into this run directory."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``run_dir/.lock`` (the directory is created).

    Example::

        >>> with RunLock("runs/x"):             # doctest: +SKIP
        ...     RunLock("runs/x").acquire()      # from another process: RunLocked naming the pid
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, umask_mode())
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RunLocked(
                    f"{self.path.parent} is in use by another training (pid {holder}); "
                    "wait for it to end or choose another directory"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking it would race)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def clean_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries of the run files left by a killed writer (call with the lock held)."""
    stale = stale_temporaries(run_dir, RUN_FILES)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_metrics_for_resume(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``metrics.jsonl`` rows, dropping a torn last line (no newline, or not JSON); a bad line
    before the last one raises ValueError naming the file and the line.

    Example::

        >>> read_metrics_for_resume("runs/adding/metrics.jsonl")[-1]["step"]   # doctest: +SKIP
        1900
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_bytes().decode(errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the text ended with a newline: the last line is whole
    elif lines:
        lines.pop()  # no newline at the end: the last append was cut short
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {n} is not JSON: {err}") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path} line {n} is not a metrics row (an object with an int 'step')")
        rows.append(row)
    return rows
