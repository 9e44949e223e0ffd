"""Forecasts past the end of every series (``lstmkit predict RUN --csv``), rolling-origin backtests
that read nothing after their origins (``lstmkit backtest``), and conformal calibration of the
quantile intervals, with tiny models and small panels."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("pandas")

import pandas as pd

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.train.backtest import backtest
from lstmkit.train.best import load_best
from lstmkit.train.checkpoint import load_run
from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
from lstmkit.train.forecasting import future_covariates, history_task, panel_forecast
from lstmkit.train.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ['Store "A", north', "b", "c,d"]
H = 3


def price_panel(tmp_path: Path, shift: int = 0, poison_after: dict[str, int] | None = None) -> tuple[str, str]:
    """Daily series ``y = level + 2 price + small noise`` with a random known price; the history in
    panel.csv, the H prices after each series' end in future.csv (``shift`` steps late or early)."""
    rng = np.random.default_rng(0)
    rows, fut = [], []
    for k, name in enumerate(NAMES):
        n = 70 + 10 * k
        dates = pd.date_range("2000-01-03", periods=n + H + 2, freq="D")
        price = rng.standard_normal(n + H + 2)
        y = 10.0 * (k + 1) + 2.0 * price + 0.1 * rng.standard_normal(n + H + 2)
        cut = (poison_after or {}).get(name, n)
        for t in range(n):
            bad = t > cut
            rows.append([name, str(dates[t].date()), 1e6 if bad else y[t], 1e6 if t > cut + H else price[t]])
        fut += [[name, str(dates[t].date()), price[t + shift]] for t in range(n, n + H)]
    panel, future = tmp_path / "panel.csv", tmp_path / "future.csv"
    pd.DataFrame(rows, columns=["id", "ds", "y", "price"]).to_csv(panel, index=False)
    pd.DataFrame(fut, columns=["id", "ds", "price"]).to_csv(future, index=False)
    return str(panel), str(future)


def train_run(tmp_path: Path, path: str, steps: int, hidden: int = 8, **task_args: object) -> Path:
    task = make_task("forecast", csv_file=path, target="y", id_column="id", date_column="ds", window=8, horizon=H,
                     future_features=["price"], calendar=["dayofweek"], quantiles=[0.1, 0.5, 0.9], season=7,
                     **task_args)  # fmt: skip
    cfg = RunConfig(task="forecast", task_args=task.config(), seed=0,
                    model=ModelConfig(input_size=task.input_size, output_size=task.output_size, hidden=hidden,
                                      categories=task.categories),
                    optim=OptimConfig(lr=1e-2, batch_size=32, steps=steps, eval_every=max(1, steps // 2)))  # fmt: skip
    run = tmp_path / "run"
    train(cfg, run, task=task, quiet=True)
    return run


def test_predict_writes_one_row_per_series_and_step_with_quoted_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, future = price_panel(tmp_path)
    run = train_run(tmp_path, path, steps=4, backtest=2)
    out = tmp_path / "out" / "forecasts.csv"
    assert main(["predict", str(run), "--csv", path, "--future", future, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == len(NAMES) * H and report["series"] == 3
    text = out.read_text()
    assert '"Store ""A"", north",' in text and '"c,d",' in text  # quoted where a name holds commas or quotes
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"]
    body = rows[1:]
    assert [r[0] for r in body] == [n for n in sorted(NAMES) for _ in range(H)]
    hist = pd.read_csv(path)
    for name in NAMES:
        last = pd.Timestamp(hist.loc[hist["id"] == name, "ds"].max())
        want = [str((last + pd.Timedelta(days=h)).date()) for h in range(1, H + 1)]
        assert [r[1] for r in body if r[0] == name] == want
    values = np.array([[float(v) for v in r[2:]] for r in body])  # (S * H, 4)
    np.testing.assert_array_equal(values[:, 0], values[:, 2])  # the point forecast is the 0.5 level
    assert (np.diff(values[:, 1:], axis=1) >= 0).all()
    model, config = load_run(run)
    load_best(run, model)
    task = history_task(config.task_args, csv_file=path)
    again = panel_forecast(model, task, future_covariates(task, future))
    np.testing.assert_allclose(values[:, 1:], again["quantiles"].reshape(-1, 3), rtol=1e-12)


def test_predict_refuses_missing_future_covariates_naming_series_and_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, future = price_panel(tmp_path)
    run = train_run(tmp_path, path, steps=2)
    frame = pd.read_csv(future)
    b = frame.index[frame["id"] == "b"]
    lacking = frame.drop(index=b[1])  # b's second forecast date missing
    lacking.to_csv(tmp_path / "lacking.csv", index=False)
    empty = frame.copy()
    empty.loc[b[2], "price"] = np.nan  # b's third date present, its price empty
    empty.to_csv(tmp_path / "empty.csv", index=False)
    dates = frame.loc[b, "ds"].tolist()
    cases = [
        (["--future", str(tmp_path / "lacking.csv")], f"series 'b' has no value of ['price'] for {dates[1]}"),
        (["--future", str(tmp_path / "empty.csv")], f"series 'b' has no value of ['price'] for {dates[2]}"),
        ([], "reads the future of ['price']: give them in a file (--future FILE)"),
        (["--stream", path], "give --csv FILE (forecast every series) or --stream FILE (run frame by frame); got both"),
    ]
    for extra, message in cases:
        assert main(["predict", str(run), "--csv", path, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["predict", str(run)]) == 2
    assert "got neither" in capsys.readouterr().err
    shifted = frame.assign(ds=pd.to_datetime(frame["ds"]) + pd.Timedelta(days=1))  # misaligned by a day
    shifted.to_csv(tmp_path / "late.csv", index=False)
    assert main(["predict", str(run), "--csv", path, "--future", str(tmp_path / "late.csv")]) == 2
    err = capsys.readouterr().err
    first = frame.loc[frame["id"] == NAMES[0], "ds"].tolist()  # the first series in name order
    want = f"""series 'Store "A", north' has no value of ['price'] for {first[0]} (its 3 forecast dates run"""
    assert f"{want} {first[0]} to {first[2]}); 2 more series lack some" in err


def test_future_covariates_shifted_by_one_step_change_the_forecast(tmp_path: Path) -> None:
    """y = level + 2 price: a model that learned to read the known price moves its forecast by about
    twice the change of the price when the future file holds the next day's price instead."""
    path, future = price_panel(tmp_path)
    (tmp_path / "late").mkdir()
    _, late = price_panel(tmp_path / "late", shift=1)
    run = train_run(tmp_path, path, steps=250, hidden=16)
    model, config = load_run(run)
    load_best(run, model)
    task = history_task(config.task_args, csv_file=path)
    f0, f1 = future_covariates(task, future), future_covariates(task, late)
    a, b = panel_forecast(model, task, f0), panel_forecast(model, task, f1)
    moved = (b["prediction"] - a["prediction"]).ravel()
    pushed = 2.0 * (f1 - f0)[..., 0].ravel()
    assert np.abs(moved).mean() > 0.5
    assert np.corrcoef(moved, pushed)[0, 1] > 0.9


def test_backtest_never_reads_beyond_its_origin(tmp_path: Path) -> None:
    """Values after window 1's origin set to 1e6 leave window 1's forecast, seasonal naive and scales
    exactly as they were, and change window 2's (which reads them as history)."""
    path, _ = price_panel(tmp_path)
    run = train_run(tmp_path, path, steps=20, backtest=2)
    model, config = load_run(run)
    clean = backtest(model, config, windows=2, conformal="recent")["gathered"]
    lengths = {n: 70 + 10 * k for k, n in enumerate(NAMES)}
    origins = {n: lengths[n] - 1 - 2 * H for n in NAMES}  # window 1 of 2
    bad_dir = tmp_path / "poison"
    bad_dir.mkdir()
    poisoned, _ = price_panel(bad_dir, poison_after=origins)
    dirty = backtest(model, config, windows=2, csv_file=poisoned, conformal="recent")["gathered"]
    one, two = clean["window"] == 1, clean["window"] == 2
    assert one.sum() == len(NAMES) and (dirty["window"] == clean["window"]).all()
    for key in ("prediction", "quantiles", "calibrated", "snaive", "mase_scale", "rmsse_scale"):
        np.testing.assert_array_equal(dirty[key][one], clean[key][one])
    assert (np.abs(dirty["prediction"][two] - clean["prediction"][two]) > 1.0).all()
    assert (dirty["truth"][one] == 1e6).all()  # the truths it is scored on were poisoned, the forecast not


def test_refit_backtest_trains_on_each_windows_history_only(tmp_path: Path) -> None:
    path, _ = price_panel(tmp_path)
    run = train_run(tmp_path, path, steps=3)
    model, config = load_run(run)
    origins = {n: 70 + 10 * k - 1 - 2 * H for k, n in enumerate(NAMES)}
    (tmp_path / "poison").mkdir()
    poisoned, _ = price_panel(tmp_path / "poison", poison_after=origins)
    with pytest.raises(ValueError, match=r"trained on all but the last 1 window\(s\) .* got windows=2"):
        backtest(model, config, windows=2)
    clean = backtest(None, config, windows=2, refit=True, folder=tmp_path / "a")
    dirty = backtest(None, config, windows=2, csv_file=poisoned, refit=True, folder=tmp_path / "b")
    one = clean["gathered"]["window"] == 1
    np.testing.assert_array_equal(dirty["gathered"]["quantiles"][one], clean["gathered"]["quantiles"][one])
    assert (tmp_path / "a" / "refit_1" / "checkpoint.safetensors").is_file()
    assert set(clean["per_window"]) == {"1", "2"} and set(clean["per_series"]) == set(NAMES)


class Band(torch.nn.Module):
    """A stand-in forecaster: the mean of the C context values -/+ ``width`` (normalised units)."""

    def __init__(self, context: int, width: float) -> None:
        super().__init__()
        self.context, self.width = context, width

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        centre = x[:, : self.context, 0].mean(dim=1)  # (B,)
        q = centre[:, None, None] + torch.tensor([-self.width, 0.0, self.width])  # (B, 1, 3)
        return q.expand(-1, 4, -1).reshape(len(x), 12)


def noise_panel(tmp_path: Path, series: int = 12, n: int = 220, sigma: float = 0.5, seed: int = 3) -> str:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2001-01-01", periods=n, freq="D")
    rows = []
    for k in range(series):
        y = 5.0 * (k + 1) + sigma * rng.standard_normal(n)
        rows += [f"s{k},{d.date()},{float(v)!r}" for d, v in zip(dates, y, strict=True)]
    (tmp_path / "noise.csv").write_text("id,ds,y\n" + "\n".join(rows) + "\n")
    return str(tmp_path / "noise.csv")


@pytest.mark.parametrize("source", ["validation", "recent"])
@pytest.mark.parametrize(("width", "raw_low", "raw_high", "sign"), [(0.66, 0.25, 0.55, 1), (2.6, 0.95, 1.0, -1)])
def test_conformal_calibration_brings_a_miscalibrated_80_percent_interval_to_80(
    tmp_path: Path, width: float, raw_low: float, raw_high: float, sign: int, source: str
) -> None:
    """Level + N(0, 0.25) noise, forecast by the window mean: the exact 80% half-width is about
    1.32 in normalised units. An interval half as wide (or twice as wide) misses the mark on the
    test windows; calibrated on 768 validation scores it covers 80% of 768 test truths within 0.06
    (over ten noise seeds the calibrated coverage averaged 0.802 with a spread of 0.019). With
    ``recent``, window k > 1 is calibrated on the backtest's windows 1 .. k - 1 instead."""
    path = noise_panel(tmp_path, series=24)
    task = make_task("forecast", csv_file=path, target="y", id_column="id", date_column="ds", window=16, horizon=4,
                     quantiles=[0.1, 0.5, 0.9], normalize="global", season=1, backtest=8, val_windows=8)  # fmt: skip
    config = SimpleNamespace(task="forecast", task_args=task.config())
    report = backtest(Band(16, width), config, windows=8, conformal=source)
    cal = report["calibration"]
    o, adjust = report["overall"], cal["1"]["intervals"]["80"]["adjust"]
    assert cal["1"]["source"] == "validation" and cal["1"]["intervals"]["80"]["scores"] == 24 * 8 * 4
    if source == "recent":
        assert cal["3"]["source"] == "recent: windows 1..2" and cal["3"]["intervals"]["80"]["scores"] == 24 * 2 * 4
    assert o["windows"] == 24 * 8
    assert raw_low <= o["coverage_80"] <= raw_high
    assert abs(o["coverage_80_conformal"] - 0.8) <= 0.06
    assert np.sign(adjust) == sign  # widened a narrow interval, narrowed a wide one


def test_backtest_cli_writes_its_tables_and_refuses_too_many_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = noise_panel(tmp_path, series=6, n=120)
    run = tmp_path / "run"
    train_cmd = ["train", "forecast", "--csv", path, "--id", "id", "--date", "ds", "--target", "y", "--window", "8",
                 "--horizon", "4", "--quantiles", "0.1,0.5,0.9", "--backtest", "3", "--task-arg", "val_windows=3",
                 "--steps", "60", "--eval-every", "30", "--hidden", "8", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(train_cmd) == 0
    capsys.readouterr()
    assert main(["backtest", str(run), "--windows", "3", "--conformal"]) == 0
    printed = capsys.readouterr().out
    assert "seasonal naive" in printed and "coverage_80_conformal=" in printed
    report = json.loads((run / "backtest.json").read_text())
    assert report["windows"] == 3 and set(report["per_window"]) == {"1", "2", "3"}
    for key in ("mase", "smape", "rmsse", "crps", "wql", "coverage_80", "coverage_80_conformal", "snaive_mase"):
        assert np.isfinite(report["overall"][key])
    series = list(csv.DictReader((run / "backtest_series.csv").read_text().splitlines()))
    assert [r["unique_id"] for r in series] == [f"s{k}" for k in range(6)]
    forecasts = list(csv.DictReader((run / "backtest_forecasts.csv").read_text().splitlines()))
    assert len(forecasts) == 6 * 3 * 4 and {"q0.9_conformal", "snaive", "origin"} <= set(forecasts[0])
    assert main(["backtest", str(run), "--windows", "4"]) == 2
    err = capsys.readouterr().err
    assert "got windows=4: give at most 3, or refit" in err and len(err.strip().splitlines()) == 1


def test_predict_csv_of_a_one_series_run_is_its_future_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.train.forecasting import future_forecast

    dates = pd.date_range("2000-01-01", periods=90, freq="MS")
    y = (10 + np.sin(np.arange(90) / 2)).tolist()
    (tmp_path / "one.csv").write_text(
        "month,v\n" + "\n".join(f"{d.date()},{v!r}" for d, v in zip(dates, y, strict=True)) + "\n"
    )
    run = tmp_path / "run"
    cmd = ["train", "forecast", "--csv", str(tmp_path / "one.csv"), "--target", "v", "--horizon", "2",
           "--window", "6", "--steps", "3", "--hidden", "4", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(cmd) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "--csv", str(tmp_path / "one.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    rows = list(csv.reader((run / "forecasts.csv").read_text().splitlines()))
    model, config = load_run(run)
    load_best(run, model)
    _, values = future_forecast(model, make_task("forecast", **config.task_args), 2)
    assert rows == [["unique_id", "ds", "forecast"], ["v", "2007-07-01", repr(float(values[0]))],
                    ["v", "2007-08-01", repr(float(values[1]))]]  # fmt: skip
    assert main(["predict", str(run), "--csv", str(tmp_path / "one.csv"), "--conformal"]) == 2
    assert "are for panel runs (--id)" in capsys.readouterr().err
    assert main(["backtest", str(run), "--windows", "1"]) == 2
    assert "is a one-series forecast run; backtest needs a panel forecast run" in capsys.readouterr().err
