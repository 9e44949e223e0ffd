"""Forecast two real series that ship inside statsmodels with default settings; print a table.

    python -m benchmarks.forecast_real_data [--out DIR] [--steps N]

Writes ``co2.csv`` (weekly CO2 at Mauna Loa, 1958-2001, 59 empty cells) and ``sunspots.csv``
(yearly sunspot numbers, 1700-2008) from ``statsmodels.datasets`` (no download), trains
``lstmkit train forecast --csv FILE --target COLUMN --threads 1`` with nothing else, and
prints the LSTM's test MASE/MAE/RMSE/sMAPE next to the naive and seasonal naive forecasts and
a classical model from statsmodels fitted on the training and validation rows and run one
step ahead over the same test rows with those parameters: ETS (additive trend and season,
``statsmodels.tsa.statespace.exponential_smoothing``) for co2, AR(9) (``ARIMA(9, 0, 0)``)
for sunspots. MASE divides by the in-sample seasonal naive MAE of the training rows (the
task's definition), so every row of a series shares one scale.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SERIES = {"co2": ("co2", "date"), "sunspots": ("SUNACTIVITY", None)}


def write_csvs(out: Path) -> dict[str, Path]:
    """The two statsmodels data sets as CSV files, as a user would write them with pandas."""
    from statsmodels import datasets

    out.mkdir(parents=True, exist_ok=True)
    paths = {"co2": out / "co2.csv", "sunspots": out / "sunspots.csv"}
    datasets.co2.load_pandas().data.to_csv(paths["co2"], index_label="date")
    datasets.sunspots.load_pandas().data.to_csv(paths["sunspots"], index=False)
    return paths


def train_default(csv: Path, target: str, run: Path, steps: int | None) -> dict[str, Any]:
    """``lstmkit train forecast`` with default settings; returns its JSON report."""
    from lstmkit.cli import main

    argv = ["train", "forecast", "--csv", str(csv), "--target", target, "--out", str(run), "--overwrite"]
    argv += ["--threads", "1", "--quiet"] + (["--steps", str(steps)] if steps else [])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"training on {csv} failed with status {code}")
    return json.loads(buf.getvalue())


def classical(name: str, task: Any) -> tuple[str, np.ndarray]:
    """One-step-ahead forecasts of the test rows from a statsmodels model fitted on the rows before them."""
    y = task.values[:, 0]
    fit_rows = task.n_val_end  # training and validation rows
    first, last = task.origins["test"][0] + 1, task.origins["test"][1] + 1  # the test target rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "co2":
            from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

            label = f"ETS (additive trend, season {task.season})"
            model = ExponentialSmoothing(y[:fit_rows], trend=True, seasonal=task.season)
        else:
            from statsmodels.tsa.arima.model import ARIMA

            label, model = "ARIMA(9, 0, 0)", ARIMA(y[:fit_rows], order=(9, 0, 0))
        result = model.fit(disp=False) if name == "co2" else model.fit()
        full = result.apply(y)  # the fitted parameters, filtered over the whole series
        pred = full.predict(start=first, end=last)  # each row predicted from the rows before it
    return label, np.asarray(pred, dtype=np.float64)


def table(out: Path, steps: int | None) -> str:
    """Train, evaluate and format the markdown table."""
    from lstmkit.tasks import make_task

    lines = ["| series | forecast | MASE | MAE | RMSE | sMAPE % |", "|---|---|---|---|---|---|"]
    for name, csv in write_csvs(out).items():
        target, _ = SERIES[name]
        report = train_default(csv, target, out / f"run_{name}", steps)
        task = make_task("forecast", **report["task_args"])
        test = report["best"]["test"]
        label, pred = classical(name, task)
        truth = task.test_set().extra["truth"].numpy()
        ref = task.errors(pred.reshape(truth.shape), truth)
        d = report["data"]
        setting = f"window {d['window']}, {d['normalize']}, best of step {report['best']['step']}"
        rows = [
            (f"LSTM, defaults ({setting})", {k: test[k] for k in ("mase", "mae", "rmse", "smape")}),
            ("naive (last value)", {k: test["naive_" + k] for k in ("mase", "mae", "rmse", "smape")}),
            (f"seasonal naive (m = {task.season})", {k: test["snaive_" + k] for k in ("mase", "mae", "rmse", "smape")}),
            (label, ref),
        ]
        for i, (what, m) in enumerate(rows):
            head = f"{name} ({d['rows_used']} rows, {d['freq']}, {d['filled']} filled)" if i == 0 else ""
            lines.append(f"| {head} | {what} | {m['mase']:.3f} | {m['mae']:.3f} | {m['rmse']:.3f} | {m['smape']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/forecast_real_data", help="folder for the CSVs and runs")
    parser.add_argument("--steps", type=int, help="training steps (default: the task's default)")
    args = parser.parse_args()
    print(table(Path(args.out), args.steps))


if __name__ == "__main__":
    main()
