"""``lstmkit sample`` (text from a character model) and ``lstmkit forecast`` (a series plot and
errors next to the naive forecast): thin calls into :mod:`lstmkit.train.generate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..train.checkpoint import load_run
from ..train.curves import plot_forecast
from ..train.generate import forecast_series, sample_tokens
from . import _runargs
from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``sample`` and ``forecast`` subcommands."""
    s = subparsers.add_parser(
        "sample",
        help="generate text from a trained character model",
        description="Continue a prime text with characters sampled from a charlm run.",
    )
    s.add_argument("run", help="run directory or checkpoint file")
    s.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    s.add_argument("--prime", default="The ", help="text to start from (default: 'The ')")
    s.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = most likely (default 0.8)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    s.set_defaults(func=run_sample)

    f = subparsers.add_parser(
        "forecast",
        help="plot a forecasting run's test predictions; print MAE/RMSE vs naive",
        description="Predict every test window of a forecast run, plot prediction vs truth.",
    )
    f.add_argument("run", help="run directory or checkpoint file")
    f.add_argument("--out", default="forecast.png", help="PNG to write (default: forecast.png)")
    f.add_argument("--csv", help="another CSV file with the same columns (normalised with the training stats)")
    f.set_defaults(func=run_forecast)


def _load(path: str) -> tuple[Any, Any]:
    try:
        return load_run(path)
    except ValueError as err:
        raise CLIError(str(err)) from None


def run_sample(args: argparse.Namespace) -> int:
    """``lstmkit sample``."""
    model, config = _load(args.run)
    task = _runargs.build_task(config.task, config.task_args)
    if not (hasattr(task, "encode") and hasattr(task, "decode")):
        raise CLIError(f"{args.run} is a {config.task!r} run; sample needs a character model (charlm)")
    if args.length < 0:
        raise CLIError(f"--length must be >= 0; got {args.length}")
    if not (args.temperature >= 0):
        raise CLIError(f"--temperature must be >= 0; got {args.temperature}")
    if not args.prime:
        raise CLIError("--prime must hold at least one character")
    gen = torch.Generator().manual_seed(args.seed)
    try:
        vocab = getattr(task, "vocab", None)
        unknown = (0,) if isinstance(vocab, str) and task.vocab_size == len(vocab) + 1 else ()  # id 0: unknown
        ids = sample_tokens(model, task.encode(args.prime), args.length, args.temperature, gen, banned=unknown)
    except ValueError as err:
        raise CLIError(str(err)) from None
    print(args.prime + task.decode(ids))
    return 0


def run_forecast(args: argparse.Namespace) -> int:
    """``lstmkit forecast``."""
    model, config = _load(args.run)
    task_args = dict(config.task_args)
    if args.csv:
        if "csv_file" not in task_args:
            raise CLIError(f"{args.run} is a {config.task!r} run; --csv needs a forecast run")
        task_args["csv_file"] = args.csv
    task = _runargs.build_task(config.task, task_args)
    if not hasattr(task, "series"):
        raise CLIError(f"{args.run} is a {config.task!r} run; forecast needs a forecasting run (task 'forecast')")
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise CLIError(f"--out {out}: directory {out.parent} does not exist")
    try:
        series = forecast_series(model, task)
    except ValueError as err:
        raise CLIError(str(err)) from None
    plot_forecast(series, out, title=f"{getattr(task, 'target', '')}: test windows")
    err, naive = series["prediction"] - series["truth"], series["naive"] - series["truth"]
    report = {
        "run": args.run,
        "plot": str(out),
        "windows": len(series["row"]),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "naive_mae": float(np.abs(naive).mean()),
        "naive_rmse": float(np.sqrt((naive**2).mean())),
    }
    print(json.dumps(report, indent=1))
    return 0
