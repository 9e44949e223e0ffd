"""Multi-process training: 2 processes with batch b each take the same steps as 1 process with 2b.

Launched with ``torchrun --standalone`` (gloo on localhost) on a tiny model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmkit.cli import main
from lstmkit.train import build_model, load_run
from lstmkit.train.checkpoint import METRICS

ARGS = [
    "train",
    "adding",
    "--modern",
    "--seq-len",
    "8",
    "--test-size",
    "32",
    "--hidden",
    "6",
    "--batch-size",
    "16",
    "--steps",
    "5",
    "--eval-every",
    "5",
    "--log-every",
    "1",
    "--lr",
    "0.01",
    "--quiet",
    "--seed",
    "2",
]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_processes_equal_one_with_the_global_batch(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    try:
        assert main([*ARGS, "--threads", "1", "--out", str(one)]) == 0  # one process, in this one
    finally:
        torch.set_num_threads(threads)
    multi = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "lstmkit",
            *ARGS,
            "--out",
            str(two),
        ]
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stdout.count('"steps": 5') == 1  # only rank 0 reports
    a, _ = load_run(one)
    b, _ = load_run(two)
    for name, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)
    trained = torch.nn.utils.parameters_to_vector(a.parameters())
    init = torch.nn.utils.parameters_to_vector(build_model(a.config, seed=2).parameters())
    assert (trained - init).abs().max() > 1e-3  # the 5 steps changed the weights, so the comparison means something
    rows_a = [json.loads(line) for line in (one / METRICS).read_text().splitlines()]
    rows_b = [json.loads(line) for line in (two / METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
