"""The README's command lines run as written, in the order written.

Every indented ``lstmkit ...`` line of README.md runs through the real command-line entry point in
one fresh folder, after the files the README says stand for the user's own (a text, a CSV series,
an input array) have been written there. Training commands get a tiny step budget appended (the
last flag wins), so this checks that the commands parse, fit together (no run overwrites another)
and run end to end, not how well they train.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BUDGET = ["--steps", "4", "--eval-every", "2", "--quiet"]


def readme_commands() -> list[list[str]]:
    """The argv (without the leading ``lstmkit``) of every indented ``lstmkit`` line, in order."""
    lines = [line[4:] for line in README.read_text().splitlines() if line.startswith("    lstmkit ")]
    return [shlex.split(line, comments=True)[1:] for line in lines]


def _user_files(folder: Path) -> None:
    words = "the cat sat on the mat while a dog ran past the old red barn and the sun set".split()
    rng = np.random.default_rng(0)
    (folder / "book.txt").write_text(" ".join(rng.choice(words, size=6000)) + "\n")
    weeks = np.arange(400)
    level = 315 + 0.03 * weeks + 3 * np.sin(2 * np.pi * weeks / 52) + rng.normal(0, 0.3, size=400)
    dates = np.datetime64("1960-01-03") + 7 * weeks.astype("timedelta64[D]")
    rows = [f"{d},{v:.2f}" for d, v in zip(dates, level, strict=True)]
    (folder / "co2.csv").write_text("date,co2\n" + "\n".join(rows) + "\n")
    np.save(folder / "my_inputs.npy", rng.normal(size=(3, 40, 2)).astype(np.float32))


def test_the_readme_lists_the_commands_a_reader_runs() -> None:
    names = [argv[0] for argv in readme_commands()]
    for command in ("train", "eval", "inspect", "sample", "forecast", "export"):
        assert command in names, f"README.md lost its `lstmkit {command}` example"


def test_readme_commands_run_in_order(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    _user_files(tmp_path)
    for argv in readme_commands():
        run = argv + BUDGET if argv[0] == "train" else argv
        code = main(run)
        err = capsys.readouterr().err
        assert code == 0, f"`lstmkit {shlex.join(argv)}` exited {code}: {err.strip()}"
    assert (tmp_path / "runs" / "adding" / "inspect" / "gates_l0.png").is_file()
    assert (tmp_path / "runs" / "adding-gru" / "checkpoint.safetensors").is_file()
    assert (tmp_path / "runs" / "forecast" / "future.csv").is_file()
    assert (tmp_path / "co2.onnx").is_file()
