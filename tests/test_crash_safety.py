"""Runs survive kill -9, Ctrl-C, full disks, read-only folders, concurrent starts and divergence.

Faults are injected at named points (``LSTMKIT_FAULT``, see lstmkit.fileio), never by timing.
Each ``lstmkit`` process is a real process forked from a server that imported lstmkit once
(tests/cli_forker.py), and killed with a real SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lstmkit.train.checkpoint import CHECKPOINT, CONFIG, METRICS, read_checkpoint, read_state
from lstmkit.train.curves import read_metrics

TINY = [
    "adding",
    "--modern",
    "--seq-len",
    "8",
    "--test-size",
    "16",
    "--hidden",
    "6",
    "--batch-size",
    "4",
    "--steps",
    "8",
    "--eval-every",
    "4",
    "--log-every",
    "1",
    "--checkpoint-every",
    "2",
    "--no-stop",
    "--quiet",
    "--threads",
    "1",
    "--seed",
    "5",
]
KILLED = -signal.SIGKILL


class Forker:
    """Client of tests/cli_forker.py: ``run(argv, fault)`` -> (exit code, stdout+stderr)."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("LSTMKIT_FAULT", None)
        script = Path(__file__).with_name("cli_forker.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.tmp, self.count = tmp, 0

    def run(self, argv: list[str], fault: str | None = None, umask: int | None = None) -> tuple[int, str]:
        self.count += 1
        log = self.tmp / f"log{self.count}.txt"
        env = {"LSTMKIT_FAULT": fault} if fault else {}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log), "umask": umask}) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, "the fork server died"
        return json.loads(reply)["code"], log.read_text()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker]:
    forker = Forker(tmp_path_factory.mktemp("logs"))
    yield forker
    forker.close()


@pytest.fixture(scope="module")
def reference(cli: Forker, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every interrupted one must end equal to."""
    run = tmp_path_factory.mktemp("ref") / "run"
    code, log = cli.run(["train", *TINY, "--out", str(run)])
    assert code == 0, log
    return run


def snapshot(run: Path) -> dict[str, Any]:
    """Everything a run ends with but wall-clock times: checkpoint tensors, state, metrics."""
    tensors, meta = read_checkpoint(run)
    state = read_state(run)
    state.pop("elapsed")
    rows = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    for r in rows:
        r.pop("elapsed")
    return {"tensors": tensors, "state": state, "rows": rows, "config": json.loads(meta["config"])}


def assert_bitwise_equal(run: Path, reference: Path) -> None:
    a, b = snapshot(run), snapshot(reference)
    assert a["rows"] == b["rows"] and a["state"] == b["state"] and a["config"] == b["config"]
    assert a["tensors"].keys() == b["tensors"].keys()
    for name, value in b["tensors"].items():
        assert torch.equal(a["tensors"][name], value), name


def continue_run(cli: Forker, run: Path, fault: str | None = None) -> tuple[int, str]:
    """Resume when the run has a config.json; else rerun the original command (nothing committed)."""
    if (run / CONFIG).exists():
        return cli.run(["train", "--resume", str(run), "--quiet", "--threads", "1"], fault)
    return cli.run(["train", *TINY, "--out", str(run)], fault)


def assert_one_line(log: str, *needles: str) -> None:
    assert "Traceback" not in log, log
    lines = log.strip().splitlines()
    assert len(lines) == 1, log
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.glob(".*.tmp"))


# ------------------------------------------------------------------ kill -9
KILL_CHAIN = [  # (fault, what it cuts); each process resumes what the previous one left
    ("config.json.tmp@1", "the first config.json, before its rename"),
    ("config.json.renamed@1", "the first config.json, after its rename (no metrics.jsonl yet)"),
    ("metrics.jsonl.tmp@1", "creating metrics.jsonl"),
    ("metrics.jsonl.renamed@1", "creating metrics.jsonl, after its rename"),
    ("step@2", "step 2 of a run with no checkpoint yet"),
    ("metrics.jsonl.append@2", "half of the line of step 2 written (a torn line)"),
    ("checkpoint.safetensors.tmp@1", "the first commit (step 2), before its rename"),
    ("checkpoint.safetensors.renamed@1", "the first commit, after its rename"),
    ("step@2", "step 4, with the line of step 3 beyond the checkpoint"),
    ("metrics.jsonl.tmp@1", "resume cutting metrics.jsonl back to the checkpoint"),
    ("metrics.jsonl.renamed@1", "the same, after its rename"),
    ("checkpoint.safetensors.tmp@1", "the commit of step 4, before its rename"),
    ("checkpoint.safetensors.renamed@1", "the commit of step 4, after its rename"),
    ("metrics.jsonl.append@3", "the line of step 7 half written, the checkpoint at step 6"),
    ("checkpoint.safetensors.tmp@1", "the last commit (step 8), before its rename"),
    ("curve.png.tmp@1", "the curve, after the last commit"),
]


def test_kill_9_at_every_commit_point_resumes_bitwise_equal(cli: Forker, reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for fault, what in KILL_CHAIN:
        code, log = continue_run(cli, run, fault)
        assert code == KILLED, (fault, what, code, log)
        if (run / CHECKPOINT).exists():
            assert read_state(run)["step"] % 2 == 0, what  # a whole checkpoint, its checksum verified
    assert read_state(run)["step"] == 8 and temporaries(run) != []  # the last kill left a temporary
    code, log = continue_run(cli, run)
    assert code == 2  # killed after the last commit: the run is complete
    assert_one_line(log, "already at step 8", "nothing to train")
    assert temporaries(run) == []  # stale temporaries were cleaned by the next start
    assert_bitwise_equal(run, reference)


def test_kill_9_fresh_interpreter(cli: Forker, reference: Path, tmp_path: Path) -> None:
    """The fork server changes nothing: a ``python -m lstmkit`` process killed inside a rename."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LSTMKIT_FAULT": "checkpoint.safetensors.renamed@3"}
    argv = [sys.executable, "-m", "lstmkit", "train", *TINY, "--out", str(run)]
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == KILLED, killed.stderr
    assert read_state(run)["step"] == 6
    code, log = continue_run(cli, run)
    assert code == 0, log
    assert_bitwise_equal(run, reference)


# ------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize(
    ("fault", "saved"),
    [
        ("step@3:sigint", 3),  # one Ctrl-C during step 3: saves at its end
        ("step@3:sigint,checkpoint.safetensors.tmp@2:sigint", 3),  # the second inside that save: it completes
        ("step@3:sigint,checkpoint.safetensors.renamed@2:sigint", 3),
        ("step@3:sigint,curve.png.tmp@1:sigint", 3),  # the second during the curve
        # the first inside the commit of step 2 (noticed after step 3), the second inside the save of step 3
        ("checkpoint.safetensors.tmp@1:sigint,checkpoint.safetensors.tmp@2:sigint", 3),
        ("step@5:sigint,step@5:sigint", 4),  # both at once, between commits: the first save never starts
    ],
)
def test_ctrl_c_once_or_twice_exits_130_and_resumes_equal(
    cli: Forker, reference: Path, tmp_path: Path, fault: str, saved: int
) -> None:
    run = tmp_path / "run"
    code, log = cli.run(["train", *TINY, "--out", str(run)], fault)
    assert code == 130, log
    assert_one_line(log, "--resume")
    assert read_state(run)["step"] == saved
    assert temporaries(run) == []
    code, log = continue_run(cli, run)
    assert code == 0, log
    assert_bitwise_equal(run, reference)


def test_ctrl_c_during_the_curve_after_the_last_save(cli: Forker, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, log = cli.run(["train", *TINY, "--out", str(run)], "curve.png.tmp@1:sigint")
    assert code == 130 and read_state(run)["step"] == 8
    assert_one_line(log, "interrupted at step 8")
    code, log = continue_run(cli, run)
    assert code == 2
    assert_one_line(log, "already at step 8", "--steps is 8", "nothing to train")


# ------------------------------------------------------------------ one writer
def test_second_writer_fails_at_once_naming_the_first(reference: Path, tmp_path: Path) -> None:
    from lstmkit.cli import main

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LSTMKIT_FAULT": "step@3:stop"}
    first = subprocess.Popen(
        [sys.executable, "-m", "lstmkit", "train", *TINY, "--out", str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)  # returns once the first run stopped itself
        assert os.WIFSTOPPED(status)
        threads = torch.get_num_threads()
        for argv in (["train", *TINY, "--out", str(run)], ["train", "--resume", str(run), "--quiet"]):
            try:
                code, err = _run_main(main, argv)
            finally:
                torch.set_num_threads(threads)
            assert code == 2
            assert_one_line(err, "in use by another training", f"pid {first.pid}")
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    assert first.returncode == 0, err
    assert_bitwise_equal(run, reference)  # the refused starts wrote nothing


def _run_main(main: Any, argv: list[str]) -> tuple[int, str]:
    """``lstmkit ARGV`` in this process (another process than the run holding the lock)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code = main(argv)
    return code, buf.getvalue()


# ------------------------------------------------------------------ full disk, read-only
def test_injected_enospc_gives_one_line_and_the_run_resumes(cli: Forker, reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for fault in ("checkpoint.safetensors.tmp@2:enospc", "metrics.jsonl.tmp@1:enospc", "metrics.jsonl.append@3:enospc"):
        code, log = continue_run(cli, run, fault)
        assert code == 2, log
        name = fault.split(".tmp")[0].split(".append")[0]
        assert_one_line(log, f"cannot write {run / name}: No space left on device", "--resume")
        assert temporaries(run) == []
        text = (run / METRICS).read_text()
        assert text.endswith("\n") and read_metrics(run / METRICS) != []  # no torn line left behind
    code, log = continue_run(cli, run)
    assert code == 0, log
    assert_bitwise_equal(run, reference)


def _namespace_ok() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(not _namespace_ok(), reason="needs unshare -rm (user and mount namespaces)")


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LSTMKIT_FAULT", None)
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)


@needs_namespace
def test_full_tmpfs_gives_one_line_and_the_run_resumes(reference: Path, tmp_path: Path) -> None:
    """A real full disk: a 1 MiB tmpfs filled up but for 12 KiB, freed after the failure."""
    disk, out = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    py, argv = sys.executable, " ".join(TINY)
    script = f"""
        mount -t tmpfs -o size=1m none {disk} || exit 90
        cat /dev/zero > {disk}/filler 2>/dev/null
        truncate -s -12k {disk}/filler
        {py} -m lstmkit train {argv} --out {disk}/run 2> {tmp_path}/full.txt
        echo $? > {tmp_path}/code.txt
        rm {disk}/filler
        {py} -m lstmkit train --resume {disk}/run --quiet --threads 1 > /dev/null || exit 91
        cp -r {disk}/run {out}
    """
    done = _in_namespace(script)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "code.txt").read_text().strip() == "2"
    assert_one_line((tmp_path / "full.txt").read_text(), "No space left on device", "--resume")
    assert_bitwise_equal(out, reference)


@needs_namespace
def test_read_only_folder_gives_one_line_and_the_run_resumes(cli: Forker, reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, log = cli.run(["train", *TINY, "--out", str(run)], "step@4:kill")
    assert code == KILLED
    py = sys.executable
    script = f"""
        mount --bind {run} {run} && mount -o remount,bind,ro {run} || exit 90
        {py} -m lstmkit train --resume {run} --quiet --threads 1 2> {tmp_path}/ro.txt
        echo $? > {tmp_path}/code.txt
    """
    done = _in_namespace(script)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "code.txt").read_text().strip() == "2"
    assert_one_line((tmp_path / "ro.txt").read_text(), "Read-only file system", "--resume")
    code, log = continue_run(cli, run)
    assert code == 0, log
    assert_bitwise_equal(run, reference)


# ------------------------------------------------------------------ umask
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(cli: Forker, tmp_path: Path, umask: int) -> None:
    run = tmp_path / "run"
    code, log = cli.run(["train", *TINY, "--steps", "2", "--out", str(run)], umask=umask)
    assert code == 0, log
    for name in (CHECKPOINT, CONFIG, METRICS, "curve.png", ".lock"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
