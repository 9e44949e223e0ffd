"""``lstmkit backtest RUN --windows N [--refit] [--conformal]``: rolling-origin windows of a panel
forecast run scored against seasonal naive on the same windows; a thin call into
:func:`lstmkit.train.backtest.backtest`. Writes ``backtest.json`` (overall, per window, per series),
``backtest_series.csv`` and ``backtest_forecasts.csv`` into the run directory (or ``--out-dir``)
and prints a short table."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write
from .common import add_run_argument, run_folder
from .errors import CLIError

COLUMNS = ("mase", "smape", "rmsse", "crps", "wql")


def register(subparsers: Any) -> None:
    """Add the ``backtest`` subcommand."""
    b = subparsers.add_parser(
        "backtest",
        help="rolling-origin backtest of a panel forecast run against seasonal naive",
        description="Forecast N windows per series, H steps apart, the last ending at each series' last row, "
        "each from the history up to its origin only (and the future-known columns of its horizon); score MASE, "
        "sMAPE, RMSSE, CRPS, wQL and interval coverage per series, per window and overall, beside seasonal naive "
        "on the same windows. Without --refit the run's best weights forecast every window (N at most the run's "
        "--backtest on its own file); --refit trains the run's configuration on each window's history.",
    )
    add_run_argument(b)
    b.add_argument("--windows", type=int, required=True, metavar="N", help="rolling origins per series")
    b.add_argument("--refit", action="store_true", help="train a model on each window's history (slow)")
    b.add_argument(
        "--conformal",
        nargs="?",
        const="validation",
        choices=("validation", "recent"),
        help="also calibrate each central interval (conformalized quantile regression) on the validation windows "
        "(the default) or on the most recent held-out windows before each origin ('recent')",
    )
    b.add_argument("--csv", help="backtest on another file with the run's columns (default: the run's file)")
    b.add_argument("--out-dir", dest="out_dir", help="folder for the results (default: the run directory)")
    b.set_defaults(func=run_backtest)


def run_backtest(args: argparse.Namespace) -> int:
    """``lstmkit backtest``."""
    from ..train.backtest import backtest
    from ..train.best import load_best
    from ..train.checkpoint import load_run

    try:
        model, config = load_run(args.run)
        load_best(args.run, model)
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    if config.task != "forecast" or "levels" not in config.task_args:
        what = "a one-series forecast run" if config.task == "forecast" else f"a {config.task!r} run"
        raise CLIError(f"{args.run} is {what}; backtest needs a panel forecast run (--id, or several --target columns)")
    if args.windows < 1:
        raise CLIError(f"--windows must be >= 1; got {args.windows}")
    out = Path(args.out_dir) if args.out_dir else run_folder(args.run)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out-dir {out} is a file; give a folder")
    try:
        report = backtest(model, config, args.windows, csv_file=args.csv, refit=args.refit,
                          conformal=args.conformal, folder=out / "backtest_refits")  # fmt: skip
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    gathered = report.pop("gathered")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "backtest.json", json.dumps(report, indent=1, default=float) + "\n")
    atomic_write(out / "backtest_series.csv", _series_csv(report["per_series"]))
    atomic_write(out / "backtest_forecasts.csv", _forecasts_csv(gathered, config.task_args.get("quantiles") or []))
    print(table(report))
    print(f"wrote {out / 'backtest.json'}, {out / 'backtest_series.csv'}, {out / 'backtest_forecasts.csv'}")
    return 0


def table(report: dict[str, Any]) -> str:
    """The overall metrics of the model and of seasonal naive, one line each, and the coverages."""
    o = report["overall"]
    head = f"{'':16}" + "".join(f"{c.upper():>9}" for c in COLUMNS)
    lines = [
        f"backtest: {report['windows']} window(s) x {report['series']} series, horizon {report['horizon']}"
        + (", refit per window" if report["refit"] else ", the run's weights"),
        head,
        f"{'lstmkit':16}" + "".join(f"{o[c]:9.4g}" for c in COLUMNS),
        f"{'seasonal naive':16}" + "".join(f"{o['snaive_' + c]:9.4g}" for c in COLUMNS),
    ]
    cover = [f"{k}={v:.3f}" for k, v in o.items() if k.startswith("coverage_")]
    if cover:
        lines.append("interval coverage: " + ", ".join(cover))
    return "\n".join(lines)


def _series_csv(per_series: dict[str, dict[str, float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = list(next(iter(per_series.values())))
    w.writerow(["unique_id", *keys])
    for name, m in per_series.items():
        w.writerow([name, *(repr(float(m[k])) for k in keys)])
    return buf.getvalue()


def _forecasts_csv(g: dict[str, Any], levels: list[float]) -> str:
    """One row per series, window and step: the truth, the forecast, its quantiles, seasonal naive."""
    from ..tasks.panel_data import day_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    qn = [f"q{q:g}" for q in levels]
    cal = [f"{n}_conformal" for n in qn] if "calibrated" in g else []
    w.writerow(["unique_id", "window", "origin", "ds", "y", "forecast", *qn, *cal, "snaive"])
    B, H = g["truth"].shape
    for b in range(B):
        origin = g["origin"][b]
        for h in range(H):
            ds = day_text(g["dates"][b, h]) if "dates" in g else int(origin) + 1 + h
            row = [g["unique_id"][b], int(g["window"][b]), _when(origin), ds, repr(float(g["truth"][b, h])),
                   repr(float(g["prediction"][b, h]))]  # fmt: skip
            row += [repr(float(v)) for v in (g["quantiles"][b, h] if qn else [])]
            row += [repr(float(v)) for v in (g["calibrated"][b, h] if cal else [])]
            w.writerow([*row, repr(float(g["snaive"][b, h]))])
    return buf.getvalue()


def _when(origin: Any) -> Any:
    from ..tasks.panel_data import day_text

    return day_text(origin) if isinstance(origin, np.datetime64) else int(origin)
