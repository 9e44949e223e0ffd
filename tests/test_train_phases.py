"""The loop's phases one at a time, divergence, torn metrics lines, the run lock, and exact resume
for every task and for specs with zoneout and recurrent dropout (in-process, seconds each)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.train import ModelConfig, OptimConfig, RunConfig, load_run
from lstmkit.train.checkpoint import CHECKPOINT, CONFIG, METRICS, read_checkpoint, read_state
from lstmkit.train.distributed import DistInfo
from lstmkit.train.guard import SignalGuard, TrainingDiverged
from lstmkit.train.loop import train
from lstmkit.train.phases import Run
from lstmkit.train.rundir import RunLock, RunLocked, read_metrics_for_resume

TASK_ARGS = {"T": 8, "modern": True, "test_size": 16, "test_seed": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def config(steps: int = 6, model: dict[str, Any] | None = None, **optim: Any) -> RunConfig:
    opt = {"lr": 1e-2, "batch_size": 4, "steps": steps, "eval_every": 3, "log_every": 1, "stop_when_solved": False}
    opt.update(optim)
    return RunConfig(
        task="adding",
        task_args=TASK_ARGS,
        model=ModelConfig(input_size=2, output_size=1, hidden=6, **(model or {})),
        optim=OptimConfig(**opt),
        seed=1,
    )


def new_run(cfg: RunConfig, run_dir: Path) -> Run:
    return Run(cfg, run_dir, make_task(cfg.task, **cfg.task_args), DistInfo())


def strict_rows(run_dir: Path) -> list[dict[str, Any]]:
    def refuse(constant: str) -> None:
        raise AssertionError(f"metrics.jsonl holds {constant}: not strict JSON")

    return [json.loads(line, parse_constant=refuse) for line in (run_dir / METRICS).read_text().splitlines()]


# ------------------------------------------------------------------ phases alone
def test_open_writes_config_before_the_first_step(tmp_path: Path) -> None:
    run = new_run(config(), tmp_path)
    run.open(resume=False)
    assert json.loads((tmp_path / CONFIG).read_text())["optim"]["steps"] == 6
    assert (tmp_path / METRICS).read_text() == "" and not (tmp_path / CHECKPOINT).exists()
    with pytest.raises(ValueError, match=r"already holds a run \(config.json\)"):
        new_run(config(), tmp_path).open(resume=False)


def test_step_log_evaluate_checkpoint_phases(tmp_path: Path) -> None:
    run = new_run(config(), tmp_path)
    run.open(resume=False)
    before = [p.detach().clone() for p in run.model.parameters()]
    loss = run.train_step(1)
    run.step = 1
    assert math.isfinite(loss) and run.window_steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters(), strict=True))
    assert run.log_row(1, evaluating=False) is not None and run.window_steps == 0  # log_every=1
    row = {"step": 1}
    assert run.evaluate(1, row) is False and "mse" in row["test"]
    run.write_row(row)
    assert strict_rows(tmp_path)[0]["step"] == 1
    run.checkpoint()
    assert read_state(tmp_path)["step"] == 1 and run.checkpointed == 1
    again = new_run(config(), tmp_path)
    again.open(resume=True)
    assert again.step == 1
    for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_loop_phase_stops_on_the_first_ctrl_c(tmp_path: Path) -> None:
    run = new_run(config(), tmp_path)
    run.open(resume=False)
    guard = SignalGuard()
    guard.flag = True  # as the handler sets it
    assert run.loop(guard) is True and run.step == 1 and read_state(tmp_path)["step"] == 1


def test_second_ctrl_c_waits_for_the_critical_section() -> None:
    guard = SignalGuard()
    guard._handle(2, None)
    assert guard.flag
    done = []
    with pytest.raises(KeyboardInterrupt):
        with guard.critical():
            guard._handle(2, None)  # a second Ctrl-C inside the commit
            done.append("commit finished")
    assert done == ["commit finished"]
    with pytest.raises(KeyboardInterrupt):
        guard._handle(2, None)  # outside: at once


# ------------------------------------------------------------------ divergence
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = config(steps=40, optimizer="sgd", lr=1e4, clip=None, checkpoint_every=1, eval_every=100)
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: .*last good checkpoint: step") as info:
        train(cfg, tmp_path, quiet=True)
    step = info.value.result.step
    assert read_state(tmp_path)["step"] == step  # the step before the divergence, committed
    tensors, _ = read_checkpoint(tmp_path)
    assert all(torch.isfinite(t).all() for t in tensors.values())
    rows = strict_rows(tmp_path)
    assert "not finite" in rows[-1]["diverged"] or "is nan" in rows[-1]["diverged"] or "inf" in rows[-1]["diverged"]


def test_on_nan_skip_skips_the_update_and_counts_it(tmp_path: Path) -> None:
    run = new_run(config(on_nan="skip"), tmp_path)
    run.open(resume=False)
    before = [p.detach().clone() for p in run.model.parameters()]
    run.task.loss = lambda prediction, batch: prediction.sum() * float("nan")  # type: ignore[method-assign]
    run.train_step(1)
    assert run.skipped == 1 and run.window_steps == 0
    for a, b in zip(before, run.model.parameters(), strict=True):
        assert torch.equal(a, b)
    run.step = 1
    row = run.log_row(1, evaluating=False)
    run.write_row(row or {})
    assert strict_rows(tmp_path)[0] == {**strict_rows(tmp_path)[0], "train_loss": None, "skipped": 1}
    result = run.result(interrupted=False)
    assert result.skipped == 1 and result.best == {}  # the count lands in its own field


def test_layer_norm_divergence_names_the_remedy(tmp_path: Path) -> None:
    run = new_run(config(model={"spec": {"layer_norm": True}}), tmp_path)
    run.open(resume=False)
    run.task.loss = lambda prediction, batch: prediction.sum() * float("inf")  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged, match="Layer norm on long sequences"):
        run.train_step(1)


def test_cli_divergence_exits_3_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "adding", "--seq-len", "50", "--hidden", "16", "--optimizer", "sgd", "--lr", "1000"]
    argv += ["--clip", "0", "--steps", "30", "--test-size", "16", "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged at step" in err[0] and "--on-nan skip" in err[0]
    rows = strict_rows(tmp_path / "r")
    assert "diverged" in rows[-1] and not (tmp_path / "r" / CHECKPOINT).exists()  # diverged before step 100

    def refuse(constant: str) -> None:
        raise AssertionError(f"stdout holds {constant}: not strict JSON")

    assert main(["train", "--resume", str(tmp_path / "r"), "--steps", "5", "--quiet"]) == 0  # before the divergence
    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["steps"] == 5
    assert main(["eval", str(tmp_path / "r")]) == 0
    json.loads(capsys.readouterr().out, parse_constant=refuse)


# ------------------------------------------------------------------ metrics lines, lock, reached budget
def test_torn_last_metrics_line_is_dropped_a_bad_middle_line_refused(tmp_path: Path) -> None:
    path = tmp_path / METRICS
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert read_metrics_for_resume(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}')  # no newline: cut before it, dropped too
    assert [r["step"] for r in read_metrics_for_resume(path)] == [1, 2]
    path.write_text('{"step": 1}\nxx\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON"):
        read_metrics_for_resume(path)


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match=r"in use by another training \(pid \d+\)"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass


def test_resume_to_a_reached_budget_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(config(steps=3), tmp_path, quiet=True)
    code = main(["train", "--resume", str(tmp_path), "--steps", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "already at step 3 and --steps is 2: nothing to train" in err[0]


def test_flipped_byte_is_refused_by_eval_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(config(steps=2), tmp_path, quiet=True)
    data = bytearray((tmp_path / CHECKPOINT).read_bytes())
    data[len(data) // 2 + 200] ^= 0x10
    (tmp_path / CHECKPOINT).write_bytes(bytes(data))
    for argv in (["eval", str(tmp_path)], ["train", "--resume", str(tmp_path), "--steps", "4", "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "corrupted or truncated" in err[0], err


# ------------------------------------------------------------------ exact resume, every task
def _task_config(name: str, tmp_path: Path, model: dict[str, Any]) -> RunConfig:
    args: dict[str, Any] = {
        "adding": {"T": 8, "test_size": 16} | {"modern": True},
        "copy": {"T": 4, "test_size": 16},
        "order": {"variant": "6a", "test_size": 16},
        "reber": {"test_size": 16},
        "charlm": {"seq_len": 12, "test_size": 8},
        "forecast": {"window": 4},
    }[name]
    if name == "charlm":
        (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog. " * 20)
        args["text_file"] = str(tmp_path / "text.txt")
    if name == "forecast":
        rows = "\n".join(f"{i},{math.sin(i / 3):.6f}" for i in range(120))
        (tmp_path / "series.csv").write_text("t,value\n" + rows + "\n")
        args |= {"csv_file": str(tmp_path / "series.csv"), "target": "value"}
    task = make_task(name, **args)
    args = task.config() or args
    fields = {
        "input_size": max(1, int(task.input_size or 1)),
        "output_size": task.output_size,
        "vocab_size": task.vocab_size,
        "readout": task.readout,
        "embedding_dim": 4,
        "hidden": 6,
    }
    optim = OptimConfig(lr=1e-2, batch_size=4, steps=6, eval_every=3, log_every=2, stop_when_solved=False)
    return RunConfig(task=name, task_args=args, model=ModelConfig(**fields, **model), optim=optim, seed=2)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("adding", {"zoneout": 0.2, "recurrent_dropout": 0.3}),
        ("adding", {"layers": 2, "dropout": 0.2, "weight_drop": 0.2, "spec": {"peephole": True}}),
        ("copy", {}),
        ("order", {"zoneout": 0.1}),
        ("reber", {"recurrent_dropout": 0.2}),
        ("charlm", {"zoneout": 0.1}),
        ("forecast", {"recurrent_dropout": 0.1}),
    ],
)
def test_resume_is_bitwise_for_every_task(name: str, model: dict[str, Any], tmp_path: Path) -> None:
    cfg = _task_config(name, tmp_path, model)
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg, full, quiet=True)
    short = cfg.replace(optim=OptimConfig(**{**vars(cfg.optim), "steps": 3}))
    train(short, part, quiet=True)
    train(cfg, part, quiet=True, resume=True)
    a, b = read_checkpoint(full)[0], read_checkpoint(part)[0]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows_a, rows_b = strict_rows(full), strict_rows(part)
    for r in rows_a + rows_b:
        r.pop("elapsed")
    assert rows_a == rows_b
    assert load_run(part)[1] == cfg


def test_eval_refuses_non_finite_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.train.checkpoint import save_checkpoint
    from lstmkit.train.model import build_model

    cfg = config()
    model = build_model(cfg.model, 0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))  # as a diverged run before this guard would have saved
    save_checkpoint(tmp_path, model, None, cfg, {"step": 1})
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite weights" in err[0]
