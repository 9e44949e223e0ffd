"""An append that fails leaves the file byte-identical to before and names the file.

The full disk is injected (``os.write`` / ``os.fsync`` raising ENOSPC inside lstmkit.fileio, or
the ``NAME.append`` fault point), so no real tmpfs is needed.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lstmkit import fileio
from lstmkit.fileio import append_line
from lstmkit.train.curves import read_metrics
from lstmkit.train.rundir import read_metrics_for_resume

ROWS = [{"step": 1, "train_loss": 0.5}, {"step": 2, "train_loss": 0.25}]
NEXT = json.dumps({"step": 3, "train_loss": 0.125, "note": "x" * 300})


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.jsonl"
    for row in ROWS:
        append_line(path, json.dumps(row))
    return path


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _short_write_then_enospc(target: Path) -> Callable[[int, Any], int]:
    """os.write that writes 7 bytes of the first call on ``target`` and then finds the disk full."""
    real, calls = os.write, []

    def write(fd: int, data: Any) -> int:
        if os.fstat(fd).st_ino != target.stat().st_ino:
            return real(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[:7]))
        raise _enospc()

    return write


def _fsync_enospc(fd: int) -> None:
    raise _enospc()


def _assert_failed_append_left_file_as_before(metrics: Path, before: bytes) -> None:
    with pytest.raises(OSError) as info:
        append_line(metrics, NEXT)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(metrics)
    assert str(metrics) in str(info.value) and "No space left on device" in str(info.value)
    assert metrics.read_bytes() == before
    assert read_metrics(metrics) == ROWS
    assert read_metrics_for_resume(metrics) == ROWS


def test_short_write_then_enospc_truncates_back(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = metrics.read_bytes()
    monkeypatch.setattr(fileio.os, "write", _short_write_then_enospc(metrics))
    _assert_failed_append_left_file_as_before(metrics, before)


def test_enospc_in_fsync_truncates_back(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = metrics.read_bytes()
    monkeypatch.setattr(fileio.os, "fsync", _fsync_enospc)
    _assert_failed_append_left_file_as_before(metrics, before)


def test_enospc_at_the_append_fault_point_truncates_back(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault point fires with half of the line already on disk (what a full disk leaves)."""
    before = metrics.read_bytes()
    monkeypatch.setenv(fileio.FAULT_ENV, "metrics.jsonl.append@1:enospc")
    monkeypatch.setattr(fileio, "_reached", {})
    _assert_failed_append_left_file_as_before(metrics, before)


def test_ctrl_c_inside_an_append_truncates_back(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = metrics.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        append_line(metrics, NEXT)
    assert metrics.read_bytes() == before


def test_failed_append_to_a_new_file_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.jsonl"
    monkeypatch.setattr(fileio.os, "fsync", _fsync_enospc)
    with pytest.raises(OSError, match="new.jsonl"):
        append_line(path, NEXT)
    assert not path.exists()


def test_unopenable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing-folder" / "metrics.jsonl"
    with pytest.raises(FileNotFoundError) as info:
        append_line(path, NEXT)
    assert info.value.filename == str(path)


def test_append_after_a_failed_one_continues_the_file(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(fileio.os, "fsync", _fsync_enospc)
        with pytest.raises(OSError):
            append_line(metrics, NEXT)
    append_line(metrics, NEXT)
    assert read_metrics(metrics) == [*ROWS, json.loads(NEXT)]
    assert metrics.read_bytes().count(b"\n") == 3
