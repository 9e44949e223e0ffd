"""`lstmkit reproduce`: rows, reading a run, the markdown table, one real (tiny) run, bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmkit.cli import _results, main
from lstmkit.cli.reproduce import run_one, write


def test_rows_are_default_commands_with_the_papers_numbers() -> None:
    keys = [r.key for r in _results.ROWS]
    assert len(keys) == len(set(keys))
    tuning = {"--hidden", "--lr", "--batch-size", "--init", "--t-max", "--forget-bias", "--steps", "--sequences"}
    for row in _results.ROWS:
        assert not tuning & set(row.args), row  # the table shows what the default command does
    paper = {r.key: r.paper for r in _results.ROWS}
    assert paper["adding1000"] == 853_000 and paper["order6a"] == 31_390 and paper["reber"] == 8_440


def write_metrics(run: Path, rows: list[dict]) -> None:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_run_and_markdown(tmp_path: Path) -> None:
    test = {"accuracy": 0.5, "mse": 0.02}
    write_metrics(
        tmp_path / "a",
        [
            {"step": 1, "sequences": 32, "elapsed": 1.0, "test": test, "solved": False},
            {"step": 2, "sequences": 64, "elapsed": 2.0, "test": {"accuracy": 0.995, "mse": 0.001}, "solved": True},
        ],
    )
    write_metrics(tmp_path / "b", [{"step": 3, "sequences": 96, "elapsed": 3.5, "test": test, "solved": False}])
    a, b = _results.read_run(tmp_path / "a"), _results.read_run(tmp_path / "b")
    assert a["sequences_to_criterion"] == 64 and a["test"]["accuracy"] == 0.995
    assert b["sequences_to_criterion"] is None and b["sequences"] == 96
    runs = [{**a, "seed": 0, "task": "adding", "wall_seconds": 4.0}, {**b, "seed": 1, "task": "adding"}]
    for r in runs:
        r.update(load_before=1.0, load_after=2.5)
    row = {"label": "adding, T = 9", "args": ["adding"], "paper": 100, "paper_note": "Table 7", "runs": runs}
    machine = {"cpu": "cpu", "cores": 2, "torch": "x", "python": "3"}
    report = {"date": "today", "command": "lstmkit reproduce", "machine": machine, "rows": [row]}
    write(report, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| 64 / not met in 96 (1/2 met; 1/2 below the paper) |" in md
    assert "within 0.04 99.5%" in md and "100 (Table 7)" in md and "load average" in md
    assert json.loads((tmp_path / "results.json").read_text())["load_max"] == 2.5


def test_one_real_run(tmp_path: Path) -> None:
    args = ("adding", "--modern", "--seq-len", "8", "--test-size", "16", "--hidden", "4", "--steps", "3")
    row = _results.Row("tiny", "tiny", args, None, "none", cap_s=600)
    run = run_one(row, 0, tmp_path / "r", row.cap_s)
    assert run["sequences"] == 96 and not run["capped"] and "error" not in run and "mse" in run["test"]


def test_append_refuses_an_unreadable_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text("{not json")
    assert main(["reproduce", "--only", "reber", "--out", str(tmp_path), "--append"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--append: cannot read" in err


def test_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--only", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown rows ['nosuch']" in err


def row_config(args: tuple[str, ...]):
    """The RunConfig ``lstmkit train ARGS`` would run (nothing trained)."""
    from lstmkit.cli import build_parser
    from lstmkit.cli._runargs import build_config, build_task, task_args_from

    ns = build_parser().parse_args(["train", *args])
    task_args = task_args_from(ns, ns.task)
    return build_config(ns, ns.task, build_task(ns.task, task_args), task_args)


def test_family_rows_build_valid_runs_and_show_the_papers_figures() -> None:
    rows = {r.key: r for r in _results.FAMILY_ROWS}
    assert {"parity-lstm", "parity-slstm", "parity-mlstm", "mqar-mlstm", "mqar-lstm"} <= set(rows)
    assert [k for k in rows if k.startswith("selcopy-minlstm")] == [f"selcopy-minlstm{n}" for n in (1, 2, 3)]
    for row in _results.FAMILY_ROWS:
        assert row.paper is None and ("Fig." in row.paper_note or "Table" in row.paper_note), row
        assert row.seeds == 3 and row.cap_s <= 300
        config = row_config(row.args)
        expected_cell = row.args[row.args.index("--cell") + 1] if "--cell" in row.args else "lstm"
        assert config.model.cell == expected_cell
    assert row_config(rows["selcopy-minlstm3"].args).model.layers == 3
    assert row_config(rows["mqar-lstm"].args).task_args["pairs"] == 16


def test_markdown_shows_a_papers_figure_and_scaled_accuracy(tmp_path: Path) -> None:
    run = {"seed": 0, "task": "parity", "sequences_to_criterion": None, "sequences": 640, "wall_seconds": 9.0,
           "test": {"accuracy": 0.75, "scaled_accuracy": 0.5}, "load_before": 1.0, "load_after": 1.0}  # fmt: skip
    row = {"label": "parity, mLSTM", "args": ["parity", "--cell", "mlstm"], "paper": None,
           "paper_note": "fails (Fig. 4)", "runs": [run]}  # fmt: skip
    machine = {"cpu": "cpu", "cores": 2, "torch": "x", "python": "3"}
    write({"date": "today", "command": "lstmkit reproduce", "machine": machine, "rows": [row]}, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| not met in 640 (0/1 met) |" in md and "accuracy 75.0%, scaled 0.50" in md and "| fails (Fig. 4) |" in md
