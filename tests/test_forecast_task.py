"""The forecast task: windows, the three normalisations (equations written out here and round
trips), horizons > 1, naive / seasonal naive baselines and MASE, and keeping the best
validation weights in the training loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pandas")

from lstmkit.tasks import make_task
from lstmkit.tasks.base import Batch
from lstmkit.train.best import BEST, BestKeeper, load_best
from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
from lstmkit.train.loop import evaluate, train
from lstmkit.train.model import build_model


def monthly_csv(tmp_path: Path, n: int = 120) -> tuple[str, np.ndarray, np.ndarray]:
    """y: trend + a 12-month season; x: another column."""
    import pandas as pd

    dates = pd.date_range("2000-01-01", periods=n, freq="MS")
    i = np.arange(n)
    y = 100.0 + 0.5 * i + 3.0 * np.sin(2 * np.pi * i / 12)
    x = np.cos(i / 5.0)
    rows = [f"{d.date()},{float(a)!r},{float(b)!r}" for d, a, b in zip(dates, y, x, strict=True)]
    path = tmp_path / "m.csv"
    path.write_text("date,y,x\n" + "\n".join(rows) + "\n")
    return str(path), y, x


@pytest.mark.parametrize("normalize", ["level", "diff", "global"])
def test_inputs_and_targets_follow_the_equations_and_round_trip(tmp_path: Path, normalize: str) -> None:
    path, y, x = monthly_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", features=["x"], window=6, horizon=3, normalize=normalize)
    assert task.season == 12 and task.features == ["y", "x"] and task.output_size == 3
    n_train = int(120 * 0.7)
    mx, sx = x[:n_train].mean(), x[:n_train].std()
    s = np.diff(y[:n_train]).std() if normalize == "diff" else y[:n_train].std()
    assert task.scale == pytest.approx(s, rel=1e-12)
    batch = task.sample(16, torch.Generator().manual_seed(1))
    assert batch.inputs.shape == (16, 6, 2) and batch.targets.shape == (16, 3)
    for b in range(16):
        e = int(batch.extra["origin"][b])
        assert e + 3 <= n_train - 1  # training targets never reach the validation rows
        rows = np.arange(e - 5, e + 1)
        if normalize == "level":
            want_in, want_out = (y[rows] - y[e]) / s, (y[e + 1 : e + 4] - y[e]) / s
        elif normalize == "diff":
            want_in, want_out = (y[rows] - y[rows - 1]) / s, (y[e + 1 : e + 4] - y[e : e + 3]) / s
        else:
            m = y[:n_train].mean()
            want_in, want_out = (y[rows] - m) / s, (y[e + 1 : e + 4] - m) / s
        np.testing.assert_allclose(batch.inputs[b, :, 0].numpy(), want_in, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch.inputs[b, :, 1].numpy(), (x[rows] - mx) / sx, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch.targets[b].numpy(), want_out, rtol=1e-5, atol=1e-6)
    test = task.test_set()
    back = task.decode(task.to_targets(test.extra["truth"], test.extra["last"]), test.extra["last"])
    np.testing.assert_allclose(back.numpy(), test.extra["truth"].numpy(), rtol=0, atol=1e-9)
    perfect = task.metrics(test.targets.clone(), test)
    assert perfect["mae"] < 1e-3 and perfect["mase"] < 1e-3


def test_splits_baselines_and_mase(tmp_path: Path) -> None:
    path, y, _ = monthly_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", window=4, horizon=2)
    n_train, n_val_end = int(120 * 0.7), int(120 * 0.85)
    val, test = task.validation_set(), task.test_set()
    assert val.extra["origin"].tolist() == list(range(n_train - 1, n_val_end - 2))
    assert test.extra["origin"].tolist() == list(range(n_val_end - 1, 120 - 2))
    e = test.extra["origin"].numpy()
    truth = np.stack([y[e + 1], y[e + 2]], axis=1)
    snaive = np.stack([y[e + 1 - 12], y[e + 2 - 12]], axis=1)  # same month last year
    np.testing.assert_allclose(test.extra["snaive"].numpy(), snaive)
    scale = np.abs(y[12:n_train] - y[: n_train - 12]).mean()  # in-sample seasonal naive MAE
    m = task.metrics(test.targets.clone(), test)
    naive_mae = np.abs(truth - y[e][:, None]).mean()
    assert m["naive_mae"] == pytest.approx(naive_mae, rel=1e-12)
    assert m["naive_mase"] == pytest.approx(naive_mae / scale, rel=1e-12)
    assert m["snaive_mae"] == pytest.approx(np.abs(truth - snaive).mean(), rel=1e-12)
    assert m["snaive_rmse"] == pytest.approx(math.sqrt(((truth - snaive) ** 2).mean()), rel=1e-12)
    smape = 100 * np.mean(2 * np.abs(truth - snaive) / (np.abs(truth) + np.abs(snaive)))
    assert m["snaive_smape"] == pytest.approx(smape, rel=1e-12)
    again = make_task("forecast", **task.config())
    assert torch.equal(again.test_set().inputs, test.inputs) and again.config() == task.config()


def test_window_and_season_defaults_and_errors(tmp_path: Path) -> None:
    path, _, _ = monthly_csv(tmp_path, n=200)
    task = make_task("forecast", csv_file=path, target="y")
    assert (task.season, task.window, task.normalize, task.fill) == (12, 24, "level", "interpolate")
    assert make_task("forecast", csv_file=path, target="y", season=20).window == 40
    with pytest.raises(ValueError, match=r"normalize must be one of \('level', 'diff', 'global'\); got 'log'"):
        make_task("forecast", csv_file=path, target="y", normalize="log")
    with pytest.raises(ValueError, match="too few rows for window=150, horizon=1: 200 rows"):
        make_task("forecast", csv_file=path, target="y", window=150)


class ScriptedVal:
    """A task whose validation 'mae' is read from a script, one value per evaluation."""

    validation_metric = "mae"

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.calls = 0

    def validation_set(self) -> Batch:
        return Batch(torch.zeros(1, 1, 1), torch.zeros(1, 1), torch.ones(1, dtype=torch.int64))


def test_best_keeper_keeps_the_lowest_and_stops_after_patience(tmp_path: Path) -> None:
    task = ScriptedVal([3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8])
    keeper = BestKeeper(task, tmp_path, patience=3)
    model = torch.nn.Linear(1, 1)
    stops = []
    for step, value in enumerate(task.values, start=1):
        with torch.no_grad():
            model.weight.fill_(float(step))  # weights that name their step
        _, stop = keeper.update(model, step, lambda m, t, b, v=value: {"mae": v})
        stops.append(stop)
    assert keeper.step == 4 and keeper.value == 1.5 and stops == [False] * 6 + [True]
    fresh = torch.nn.Linear(1, 1)
    info = load_best(tmp_path, fresh)
    assert info == {"step": 4, "mae": 1.5} and float(fresh.weight.detach()) == 4.0
    assert load_best(tmp_path / "elsewhere", fresh) is None


def test_loop_keeps_the_best_validation_weights(tmp_path: Path) -> None:
    path, _, _ = monthly_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", window=6)
    config = RunConfig(
        task="forecast",
        task_args=task.config(),
        model=ModelConfig(input_size=1, output_size=1, hidden=8),
        optim=OptimConfig(lr=3e-2, batch_size=16, steps=60, eval_every=10, log_every=10),
    )
    torch.set_num_threads(1)
    result = train(config, tmp_path / "run", task=task, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [(r["val"]["mae"], r["step"]) for r in rows if "val" in r]
    assert len(vals) == 6
    best_val, best_step = min(vals)
    assert result.best["step"] == best_step and result.best["value"] == pytest.approx(best_val, rel=1e-12)
    model = build_model(config.model, config.seed)
    assert load_best(tmp_path / "run", model)["step"] == best_step
    assert evaluate(model, task, task.validation_set())["mae"] == pytest.approx(best_val, rel=1e-9)
    assert result.best["test"] == evaluate(model, task)
    assert (tmp_path / "run" / BEST).is_file()


def test_patience_stops_training_early(tmp_path: Path) -> None:
    path, _, _ = monthly_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", window=6)
    config = RunConfig(
        task="forecast",
        task_args=task.config(),
        model=ModelConfig(input_size=1, output_size=1, hidden=8),
        optim=OptimConfig(lr=1.0, batch_size=8, steps=400, eval_every=5, log_every=5, patience=2, clip=None),
    )
    torch.set_num_threads(1)
    result = train(config, tmp_path / "run", task=task, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "val" in r]
    assert result.step < 400 and evals[-1]["early_stop"] is True
    assert [r["step"] for r in evals][-3] == result.best["step"]  # two evaluations without a new best


def test_resume_keeps_the_best_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    path, _, _ = monthly_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", window=6)

    def config(steps: int) -> RunConfig:
        optim = OptimConfig(lr=3e-2, batch_size=16, steps=steps, eval_every=10, log_every=10, patience=50)
        model = ModelConfig(input_size=1, output_size=1, hidden=8)
        return RunConfig(task="forecast", task_args=task.config(), model=model, optim=optim)

    torch.set_num_threads(1)
    whole = train(config(40), tmp_path / "whole", task=task, quiet=True)
    train(config(20), tmp_path / "split", task=task, quiet=True)
    resumed = train(config(40), tmp_path / "split", task=task, quiet=True, resume=True)
    assert resumed.best["step"] == whole.best["step"] and resumed.best["value"] == whole.best["value"]
    a, b = build_model(config(40).model), build_model(config(40).model)
    load_best(tmp_path / "whole", a)
    load_best(tmp_path / "split", b)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
