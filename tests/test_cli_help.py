"""The command line teaches: help lists the tasks and their defaults, every run-reading subcommand
names its argument RUN, and only rank 0 of a torchrun run speaks."""

from __future__ import annotations

import pytest

from lstmkit.cli import main
from lstmkit.tasks import TASKS
from lstmkit.train.defaults import defaults_for


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_train_help_lists_every_task_with_its_defaults(capsys) -> None:
    text = _help(capsys, "train")
    listing = text.split("tasks and their defaults")[1]
    for name in TASKS:
        d = defaults_for(name)
        line = (
            f"hidden {d['hidden']}, {d['optimizer']} lr {d['lr']:g}, batch {d['batch_size']}, up to {d['steps']} steps"
        )
        block = listing.split(f"\n  {name} ")[1].split("\n  ")[1]
        assert block.strip().startswith(line), (name, block)


@pytest.mark.parametrize("command", ["eval", "inspect", "export", "sample", "forecast"])
def test_every_subcommand_that_reads_a_run_calls_it_RUN(capsys, command) -> None:
    usage = _help(capsys, command).split("\n\n")[0]
    assert usage.rstrip().endswith(" RUN") or " RUN " in usage, usage
    assert "CHECKPOINT" not in usage


@pytest.mark.parametrize(("rank", "speaks"), [("0", True), ("1", False)])
def test_only_rank_0_prints_the_run_header(capsys, monkeypatch, tmp_path, rank, speaks) -> None:
    import lstmkit.cli.train as cli_train

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(cli_train, "_train", lambda *args: 0)  # the header comes before training starts
    assert main(["train", "adding", "--seq-len", "30", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert (f"run {tmp_path / 'r'}: adding" in err) is speaks
    if not speaks:
        assert err == ""
