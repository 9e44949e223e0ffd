"""``lstmkit sample`` (text from a character model), ``lstmkit forecast`` (a plot against the
dates, errors next to the naive and seasonal naive forecasts, ``--future N`` into a CSV),
``lstmkit predict RUN --csv FILE [--future FILE]`` (the next H steps of every series of a file,
future-known columns from another, into a CSV) and ``lstmkit predict RUN --stream FILE`` (a
trained model run over a file frame by frame, the state carried from frame to frame): thin calls
into :mod:`lstmkit.train.generate`, :mod:`lstmkit.train.forecasting`,
:mod:`lstmkit.train.backtest` and :func:`lstmkit.train.model.predict_frames`."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_write
from ..train.checkpoint import load_run
from ..train.generate import sample_tokens
from . import _runargs
from .common import add_run_argument, run_folder
from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``sample``, ``forecast`` and ``predict`` subcommands."""
    s = subparsers.add_parser(
        "sample",
        help="generate text from a trained character model",
        description="Continue a prime text with characters sampled from a charlm run.",
    )
    add_run_argument(s)
    s.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    s.add_argument("--prime", default="The ", help="text to start from (default: 'The ')")
    s.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = most likely (default 0.8)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    s.set_defaults(func=run_sample)

    f = subparsers.add_parser(
        "forecast",
        help="plot a forecasting run against the dates; errors vs naive and seasonal naive; --future N",
        description="Predict every test window of a forecast run (best validation weights when kept), plot "
        "history, truth and prediction against the dates, print MASE/MAE/RMSE/sMAPE next to the naive and "
        "seasonal naive forecasts, and with --future N forecast N steps past the end of the data into a CSV.",
    )
    add_run_argument(f)
    f.add_argument("--out", help="PNG to write, folders created (default: RUN/forecast.png)")
    f.add_argument("--csv", help="another CSV file with the same columns (normalised with the training stats)")
    f.add_argument("--future", type=int, metavar="N", help="also forecast N steps past the last row")
    f.add_argument("--future-csv", help="CSV for --future, folders created (default: RUN/future.csv)")
    f.set_defaults(func=run_forecast)

    p = subparsers.add_parser(
        "predict",
        help="forecast the next H steps of every series in a CSV (--csv), or run a model over a stream (--stream)",
        description="--csv FILE: forecast the H steps after the end of every series in FILE (a file with the "
        "forecast run's columns), with the future-known columns read from --future FILE, and write unique_id, ds, "
        "forecast and one column per quantile (and the calibrated bounds with --conformal) to a CSV; for a "
        "one-series run, the H steps after the end of its file. --stream FILE: feed a file to a trained model one "
        "frame per call, carrying the state from call to call, and write the model's output at every frame to a "
        "CSV (one row per frame; equal to one call on the whole file). FILE: .npy or .csv array (T, I) of input "
        "frames, (T,) token ids for a model with an embedding, or a text file for a character model.",
    )
    add_run_argument(p)
    p.add_argument("--csv", metavar="FILE", help="forecast: history of each series, the run's columns")
    p.add_argument("--future", metavar="FILE", help="forecast: future-known columns by series id and date")
    p.add_argument(
        "--conformal",
        nargs="?",
        const="validation",
        choices=("validation", "recent"),
        help="forecast: add intervals calibrated on the run's validation windows (the default) or on its test "
        "windows, the most recent it never trained on ('recent')",
    )
    p.add_argument("--stream", metavar="FILE", help="the frames: .npy/.csv (T, I) or (T,), or text")
    p.add_argument("--out", help="CSV to write, folders created (default: RUN/forecasts.csv or RUN/stream.csv)")
    p.set_defaults(func=run_predict)


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
        _warn_unknown_characters(args.prime, vocab)
        ids = sample_tokens(model, task.encode(args.prime), args.length, args.temperature, gen, banned=unknown)
    except ValueError as err:
        raise CLIError(str(err)) from None
    print(args.prime + task.decode(ids))
    return 0


def _warn_unknown_characters(prime: str, vocab: object) -> None:
    """Name the prime's characters the model never saw (they are read as the unknown symbol)."""
    if not isinstance(vocab, str):
        return
    unseen = sorted(set(prime) - set(vocab))
    if unseen:
        shown = ", ".join(repr(ch) for ch in unseen)
        print(
            f"lstmkit sample: warning: the prime holds characters this model never saw, read as unknown: {shown}",
            file=sys.stderr,
        )


def run_forecast(args: argparse.Namespace) -> int:
    """``lstmkit forecast``."""
    from ..train.best import load_best
    from ..train.forecasting import forecast_test_windows, future_forecast, plot_forecast_dates, write_future_csv

    model, config = _load(args.run)
    task_args = dict(config.task_args)
    if args.csv:
        if "csv_file" not in task_args:
            raise CLIError(f"{args.run} is a {config.task!r} run; --csv needs a forecast run")
        task_args["csv_file"] = args.csv
    task = _runargs.build_task(config.task, task_args)
    if hasattr(task, "series_arrays"):  # a panel: its metrics per origin and interval come from `lstmkit eval`
        raise CLIError(
            f"{args.run} forecasts many series; `lstmkit forecast` plots one; use: lstmkit eval {args.run}, "
            f"lstmkit backtest {args.run} --windows N or lstmkit predict {args.run} --csv FILE"
        )
    if not hasattr(task, "series"):
        raise CLIError(f"{args.run} is a {config.task!r} run; forecast needs a forecasting run (task 'forecast')")
    if args.future is not None and args.future <= 0:
        raise CLIError(f"--future must be a positive int; got {args.future}")
    args.out = args.out or str(run_folder(args.run) / "forecast.png")
    args.future_csv = args.future_csv or str(run_folder(args.run) / "future.csv")
    for name in ("out", "future_csv"):
        target = Path(getattr(args, name))
        if target.is_dir():
            raise CLIError(f"--{name.replace('_', '-')} {target} is a folder; give a file name")
    try:
        best = load_best(args.run, model)
        series = forecast_test_windows(model, task)
        future = future_forecast(model, task, args.future) if args.future else None
    except ValueError as err:
        raise CLIError(str(err)) from None
    plot_forecast_dates(task, series, args.out, future=future)
    report: dict[str, Any] = {"run": args.run, "plot": args.out, "windows": len(series["origin"])}
    report["weights"] = f"best validation, step {best['step']}" if best else "last step"
    for prefix, key in (("", "prediction"), ("naive_", "naive"), ("snaive_", "snaive")):
        report.update({prefix + k: v for k, v in task.errors(series[key], series["truth"]).items()})
    if future is not None:
        Path(args.future_csv).parent.mkdir(parents=True, exist_ok=True)
        write_future_csv(args.future_csv, task, *future)
        report["future_csv"] = args.future_csv
    print(json.dumps(report, indent=1))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """``lstmkit predict RUN --csv FILE`` or ``lstmkit predict RUN --stream FILE``."""
    if (args.csv is None) == (args.stream is None):
        given = "both" if args.csv else "neither"
        raise CLIError(f"give --csv FILE (forecast every series) or --stream FILE (run frame by frame); got {given}")
    if args.stream is None:
        return run_predict_csv(args)
    for flag in ("future", "conformal"):
        if getattr(args, flag):
            raise CLIError(f"--{flag} goes with --csv (a forecast), not with --stream")
    return run_predict_stream(args)


def run_predict_csv(args: argparse.Namespace) -> int:
    """``lstmkit predict RUN --csv FILE [--future FILE] [--conformal]``."""
    from ..train.best import load_best
    from ..train.forecasting import future_covariates, history_task, panel_forecast, write_panel_forecasts

    model, config = _load(args.run)
    if config.task != "forecast":
        raise CLIError(f"{args.run} is a {config.task!r} run; --csv needs a forecast run (task 'forecast')")
    out = Path(args.out or run_folder(args.run) / "forecasts.csv")
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name")
    if "levels" not in config.task_args:
        return _predict_one_series(args, model, config, out)
    try:
        best = load_best(args.run, model)
        task = history_task(config.task_args, csv_file=args.csv)
        result = panel_forecast(model, task, future_covariates(task, args.future))
        bounds, calibration = None, None
        if args.conformal:
            from ..train.backtest import apply_conformal, conformal_calibration

            training = _runargs.build_task(config.task, config.task_args)
            calibration = conformal_calibration(model, training, args.conformal)
            bounds = apply_conformal(result["quantiles"], task.scale[result["series"]], calibration,
                                     task.quantiles, task.point_index)[1]  # fmt: skip
            atomic_write(run_folder(args.run) / "conformal.json", json.dumps(calibration, indent=1) + "\n")
    except ValueError as err:
        raise CLIError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = write_panel_forecasts(out, task, result, bounds)
    report: dict[str, Any] = {"run": args.run, "csv": args.csv, "out": str(out), "rows": rows,
                              "series": len(task.kept), "series_skipped_short": task.skipped,
                              "horizon": task.horizon, "weights": f"best validation, step {best['step']}"
                              if best else "last step"}  # fmt: skip
    if calibration is not None:
        report["conformal"] = {k: v["adjust"] for k, v in calibration["intervals"].items()}
    print(json.dumps(report, indent=1))
    return 0


def _predict_one_series(args: argparse.Namespace, model: Any, config: Any, out: Path) -> int:
    """The one-series case: the H steps after the end of FILE, as ``lstmkit forecast --future H``."""
    from ..train.best import load_best
    from ..train.forecasting import future_forecast

    if args.future or args.conformal:
        raise CLIError("--future and --conformal are for panel runs (--id); this run forecasts one series")
    task = _runargs.build_task(config.task, {**config.task_args, "csv_file": args.csv})
    try:
        load_best(args.run, model)
        dates, values = future_forecast(model, task, task.horizon)
    except ValueError as err:
        raise CLIError(str(err)) from None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["unique_id", "ds", "forecast"])
    for d, v in zip(dates, values, strict=True):
        writer.writerow([task.target, d.date().isoformat() if hasattr(d, "date") else int(d), repr(float(v))])
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, buf.getvalue())
    print(json.dumps({"run": args.run, "csv": args.csv, "out": str(out), "rows": len(values)}, indent=1))
    return 0


def run_predict_stream(args: argparse.Namespace) -> int:
    """``lstmkit predict RUN --stream FILE``."""
    from ..train.model import predict_frames

    model, config = _load(args.run)
    if config.model.bidirectional:
        raise CLIError(f"{args.run} is bidirectional: it cannot stream (expected a unidirectional model)")
    out = Path(args.out or run_folder(args.run) / "stream.csv")
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name")
    frames = _stream_frames(args.stream, model, config)
    try:
        outputs = predict_frames(model, frames)  # (T, O)
    except ValueError as err:
        raise CLIError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["step," + ",".join(f"out_{j}" for j in range(outputs.shape[1]))]
    lines += [f"{t}," + ",".join(repr(float(v)) for v in row) for t, row in enumerate(outputs.tolist())]
    atomic_write(out, "\n".join(lines) + "\n")
    report = {"run": args.run, "stream": args.stream, "frames": int(frames.shape[0]), "out": str(out)}
    report["last"] = outputs[-1].tolist()
    print(json.dumps(report, indent=1))
    return 0


def _stream_frames(path: str, model: Any, config: Any) -> torch.Tensor:
    """(T, I) float or (T,) int64 frames for ``model`` from ``--stream`` (one-line CLIError otherwise)."""
    from .inspect import load_array

    c = config.model
    if c.vocab_size is not None and Path(path).suffix.lower() not in (".npy", ".csv"):
        task = _runargs.build_task(config.task, config.task_args)
        if not hasattr(task, "encode"):
            raise CLIError(f"--stream {path}: a {config.task!r} model reads .npy or .csv token ids, not text")
        if not Path(path).is_file():
            raise CLIError(f"--stream file not found: {path}")
        try:
            ids = task.encode(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise CLIError(f"--stream {path}: cannot read it as UTF-8 text ({err})") from None
        if len(ids) == 0:
            raise CLIError(f"--stream {path} is empty; expected at least one character")
        return ids
    try:
        array = load_array(path)
    except CLIError as err:
        raise CLIError(str(err).replace("--input", "--stream")) from None
    if c.vocab_size is not None:
        flat = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
        if flat.ndim != 1 or (flat != flat.round()).any() or flat.min() < 0 or flat.max() >= c.vocab_size:
            raise CLIError(
                f"--stream {path}: expected (T,) token ids in [0, {c.vocab_size}); got shape {array.shape}, "
                f"values {flat.min()}..{flat.max()}"
            )
        return torch.as_tensor(flat.astype("int64"))
    if array.ndim == 1 and c.input_size == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != c.input_size:
        raise CLIError(f"--stream {path}: expected frames shaped (T, {c.input_size}); got {array.shape}")
    return torch.as_tensor(array, dtype=next(model.parameters()).dtype)
