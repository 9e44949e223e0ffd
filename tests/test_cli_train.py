"""``lstmkit train`` / ``lstmkit eval`` end to end: runs, Ctrl-C, resume, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lstmkit.cli import main
from lstmkit.train import load_run
from lstmkit.train.checkpoint import CHECKPOINT, read_state

TINY = [
    "adding",
    "--modern",
    "--seq-len",
    "8",
    "--test-size",
    "64",
    "--hidden",
    "8",
    "--batch-size",
    "8",
    "--eval-every",
    "4",
    "--log-every",
    "2",
    "--quiet",
    "--threads",
    "1",
]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_train_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["train", *TINY, "--steps", "8", "--out", str(tmp_path / "r")], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["steps"] == 8 and report["sequences"] == 64 and "mse" in report["test"]
    assert report["paper"]["source"].startswith("Le, Jaitly")  # the modern form's papers
    assert "sequences_to_criterion" not in report["paper"]  # Table 7 is for the classic form
    code, out, _ = run_cli(["eval", str(tmp_path / "r")], capsys)
    assert code == 0
    evaluated = json.loads(out)
    assert evaluated["test"] == pytest.approx(report["test"], rel=1e-6)
    code, out, _ = run_cli(["eval", str(tmp_path / "r"), "--seq-len", "12"], capsys)  # longer sequences
    assert code == 0 and json.loads(out)["task_args"]["T"] == 12
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model"]["hidden"] == 8 and config["task_args"]["T"] == 8


def test_spec_flags_and_baseline_reach_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(
        [
            "train",
            *TINY,
            "--steps",
            "2",
            "--spec",
            "peephole,cell_clip=3",
            "--forget-bias",
            "1",
            "--out",
            str(tmp_path / "p"),
        ],
        capsys,
    )
    assert code == 0
    model, config = load_run(tmp_path / "p")
    assert model.lstm.spec.peephole and model.lstm.spec.cell_clip == 3
    assert config.model.spec == {"peephole": True, "cell_clip": 3}
    code, _, _ = run_cli(
        ["train", *TINY, "--sequences", "20", "--baseline", "gru", "--out", str(tmp_path / "g")], capsys
    )
    assert code == 0
    model, config = load_run(tmp_path / "g")
    assert isinstance(model.lstm, torch.nn.GRU) and config.optim.steps == 3  # ceil(20 / 8)


def test_stacked_bidirectional_projected_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "train",
        *TINY,
        "--steps",
        "2",
        "--layers",
        "2",
        "--bidirectional",
        "--proj-size",
        "4",
        "--dropout",
        "0.1",
        "--recurrent-dropout",
        "0.1",
        "--weight-drop",
        "0.2",
        "--optimizer",
        "rmsprop",
        "--momentum",
        "0.5",
        "--clip",
        "0",
        "--out",
        str(tmp_path / "s"),
    ]
    assert run_cli(argv, capsys)[0] == 0
    model, config = load_run(tmp_path / "s")
    lstm = model.lstm
    assert (lstm.num_layers, lstm.bidirectional, lstm.proj_size, lstm.dropout) == (2, True, 4, 0.1)
    assert model.head.in_features == 8 and config.optim.clip is None and config.optim.optimizer == "rmsprop"


def test_resume_with_other_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = str(tmp_path / "r")
    assert run_cli(["train", *TINY, "--steps", "4", "--out", run], capsys)[0] == 0
    code, _, err = run_cli(["train", "--resume", run, "--hidden", "16", "--steps", "8", "--quiet"], capsys)
    assert_one_line_error(code, err, "different config", "model.hidden: checkpoint has 8, this run asks for 16")
    code, _, err = run_cli(["train", *TINY, "--steps", "4", "--out", run], capsys)
    assert_one_line_error(code, err, "already holds a run", "--resume")
    code, out, _ = run_cli(["train", "--resume", run, "--steps", "6", "--quiet"], capsys)
    assert code == 0 and json.loads(out)["steps"] == 6
    assert run_cli(["train", *TINY, "--steps", "2", "--out", run, "--overwrite"], capsys)[0] == 0
    assert read_state(tmp_path / "r")["step"] == 2


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "nosuchtask"], ["unknown task 'nosuchtask'", "adding"]),
        (["train"], ["give a task name"]),
        (["train", "adding", "--spec", "bogus"], ["--spec", "unknown spec preset 'bogus'"]),
        (["train", "adding", "--spec", "peephole,width=3"], ["unknown field 'width'"]),
        (["train", "adding", "--window", "5"], ["takes no --window"]),
        (["train", "adding", "--task-arg", "colour=red"], ["takes no argument 'colour'"]),
        (["train", "adding", "--task-arg", "oops"], ["KEY=VALUE"]),
        (["train", "adding", "--seq-len", "5"], ["task 'adding'", "T must be >= 22; got 5"]),
        (["train", "adding", "--hidden", "0"], ["hidden must be a positive int; got 0"]),
        (["train", "adding", "--lr", "-1"], ["lr must be positive"]),
        (["train", "adding", "--baseline", "gru", "--zoneout", "0.1"], ["no zoneout"]),
        (["train", "adding", "--threads", "0"], ["--threads must be a positive int"]),
        (["train", "--resume", "/nonexistent/run"], ["no such run directory"]),
        (["eval", "/nonexistent/run"], ["no checkpoint at /nonexistent/run"]),
    ],
)
def test_bad_arguments_give_one_line(argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, *needles)


def test_argparse_type_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "adding", "--hidden", "many"])
    assert info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_corrupted_checkpoint_gives_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    assert run_cli(["train", *TINY, "--steps", "2", "--out", str(run)], capsys)[0] == 0
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[:-100])
    code, _, err = run_cli(["eval", str(run)], capsys)
    assert_one_line_error(code, err, "corrupted or truncated", str(run / CHECKPOINT))
    (run / CHECKPOINT).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"__metadata__":1}' + data[26:])
    code, _, err = run_cli(["eval", str(run)], capsys)
    assert_one_line_error(code, err, str(run / CHECKPOINT))
    (run / CHECKPOINT).write_bytes(data)
    (run / "config.json").write_text("{not json")
    code, _, err = run_cli(["train", "--resume", str(run), "--steps", "4"], capsys)
    assert_one_line_error(code, err, "cannot read run config", "config.json")


def test_sigint_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "r"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "lstmkit",
        "train",
        *TINY,
        "--steps",
        "1000000",
        "--eval-every",
        "100000",
        "--checkpoint-every",
        "3",
        "--out",
        str(run),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / CHECKPOINT).exists():  # the first checkpoint (step 3)
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            try:
                proc.wait(timeout=0.05)  # a bounded poll; the process must still be running
                pytest.fail(f"training exited early: {proc.returncode} {proc.stderr.read()}")
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    model, config = load_run(run)
    step = read_state(run)["step"]
    assert step >= 3 and config.optim.steps == 1_000_000
    assert model.lstm.hidden_size == 8


def test_report_puts_the_papers_number_beside_ours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.cli.train import headline

    argv = [
        "train",
        "adding",
        "--seq-len",
        "100",
        "--steps",
        "1",
        "--test-size",
        "16",
        "--hidden",
        "4",
        "--quiet",
        "--out",
        str(tmp_path / "a"),
    ]
    code, out, _ = run_cli(argv, capsys)
    report = json.loads(out)
    assert code == 0 and report["paper"]["sequences_to_criterion"] == 74_000 and report["has_criterion"]
    line = headline(report)
    assert "criterion not met in 32 training sequences (paper: 74,000)" in line and "T=100" in line
