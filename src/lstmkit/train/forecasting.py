"""Using a trained forecaster: test-window forecasts, forecasts past the end of the data, a plot
against the real dates, and a CSV of the future.

Every function takes the model and its :class:`~lstmkit.tasks.ForecastTask`; values are in the
CSV's units. Shapes: B windows, H horizon, N future steps, C raw rows per window, F features.

Example::

    >>> s = forecast_test_windows(model, task)                        # doctest: +SKIP
    >>> dates, values = future_forecast(model, task, 52)         # doctest: +SKIP
    >>> plot_forecast_dates(task, s, "co2.png", future=(dates, values))   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_write, save_png


def forecast_test_windows(model: torch.nn.Module, task: Any, chunk: int = 512) -> dict[str, np.ndarray]:
    """``task.series`` on every test window: ``origin`` (B,), ``truth``, ``prediction``, ``naive``,
    ``snaive`` (B, H)."""
    batch = task.test_set()
    model.eval()
    with torch.no_grad():
        parts = [model(p.inputs, p.lengths) for p in (batch.slice(i, i + chunk) for i in range(0, len(batch), chunk))]
    return task.series(torch.cat(parts), batch)


def future_forecast(model: torch.nn.Module, task: Any, steps: int) -> tuple[Any, np.ndarray]:
    """Forecast ``steps`` values past the last row of the data: (dates or row numbers (N,), values (N,)).

    The model predicts H steps at a time from the last C rows; a target-only model feeds its
    own forecasts back for the next H. A model with other features cannot know their future,
    so it forecasts at most H steps (ValueError beyond).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    F, H, C = len(task.features), task.horizon, task.context
    if F > 1 and steps > H:
        raise ValueError(
            f"this model also reads {task.features[1:]}, whose future is unknown: it forecasts at most "
            f"horizon={H} steps; got {steps}"
        )
    rows = torch.from_numpy(np.array(task.values[-C:], dtype=np.float64))  # (C, F)
    out: list[float] = []
    model.eval()
    with torch.no_grad():
        while len(out) < steps:
            x = task.encode(rows.unsqueeze(0)).to(torch.float32)  # (1, window, F)
            z = model(x, torch.tensor([x.shape[1]]))  # (1, H)
            y = task.decode(z, rows[-1:, 0])[0]  # (H,)
            out.extend(float(v) for v in y)
            rows = torch.cat([rows, y.unsqueeze(1)])[-C:] if F == 1 else rows
    values = np.asarray(out[:steps], dtype=np.float64)
    if task.dates is None:
        return np.arange(len(task.values), len(task.values) + steps), values
    import pandas as pd

    dates = pd.date_range(start=task.dates[-1], periods=steps + 1, freq=task.data.freq)[1:]
    return dates, values


def write_future_csv(path: str | os.PathLike[str], task: Any, when: Any, values: np.ndarray) -> None:
    """Write ``date`` (or ``row``) and the target's forecast, one line per future step, atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([task.date_column or "row", f"{task.target}_forecast"])
    for w, v in zip(when, values, strict=True):
        writer.writerow([w.date().isoformat() if hasattr(w, "date") else int(w), repr(float(v))])
    atomic_write(path, buf.getvalue())


def plot_forecast_dates(
    task: Any,
    series: dict[str, np.ndarray],
    out: str | os.PathLike[str],
    future: tuple[Any, np.ndarray] | None = None,
    history: int | None = None,
) -> None:
    """History, truth and the one-step-ahead test forecasts (with the H-step path from the last
    test window when H > 1, and ``future`` when given) against the dates (or the row numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x_all = task.dates if task.dates is not None else np.arange(len(task.values))
    y_all = task.values[:, 0]
    first_test = int(series["origin"][0]) + 1
    start = max(0, first_test - (history if history is not None else 3 * len(series["origin"])))
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    ax.plot(x_all[start : first_test + 1], y_all[start : first_test + 1], lw=1, color="gray", label="history")
    ax.plot(x_all[first_test:], y_all[first_test:], lw=1.2, color="black", label="truth (test)")
    one = series["origin"] + 1
    ax.plot(x_all[one], series["prediction"][:, 0], lw=1, color="tab:blue", label="LSTM, 1 step ahead")
    snaive = f"seasonal naive (m={task.season})"
    ax.plot(x_all[one], series["snaive"][:, 0], lw=0.8, ls=":", color="tab:green", label=snaive)
    if task.horizon > 1:
        last = int(series["origin"][-1])
        path = x_all[last + 1 : last + 1 + task.horizon]
        ax.plot(path, series["prediction"][-1], lw=1.5, color="tab:purple", label=f"LSTM, {task.horizon} steps")
    if future is not None:
        ax.plot(future[0], future[1], lw=1.5, color="tab:red", label=f"future ({len(future[1])} steps)")
    ax.set_xlabel(task.date_column or "data row")
    ax.set_ylabel(task.target)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{task.target}: test windows ({task.normalize}, window {task.window}, horizon {task.horizon})")
    fig.autofmt_xdate()
    fig.tight_layout()
    save_png(fig, out)


# ---------------------------------------------------------------------------------- many series
def history_task(task_args: dict[str, Any], csv_file: str | None = None, panel: Any = None) -> Any:
    """A :class:`~lstmkit.tasks.panel.PanelForecastTask` with the run's ``task_args`` (its columns,
    window, horizon, scaling rule and saved category levels) over ``csv_file`` or an already read
    ``panel``, every row taken as history: the statistics come from all rows of each series."""
    from ..tasks.panel import PanelForecastTask

    args = {**task_args, "history": True}
    if csv_file is not None:
        args["csv_file"] = str(csv_file)
    if panel is not None:
        args["panel"] = panel
    return PanelForecastTask(**args)


def forecast_dates(task: Any) -> np.ndarray | None:
    """(S', H) datetime64: the H dates after the last row of each kept series (None without dates)."""
    from ..tasks.panel_data import future_dates

    p = task.panel
    if p.dates is None:
        return None
    ends = p.starts[task.kept] + p.lengths[task.kept] - 1
    return np.stack([future_dates(p.dates[e], task.horizon, task.freq) for e in ends])


def future_covariates(task: Any, path: str | os.PathLike[str] | None) -> np.ndarray | None:
    """(S', H, Fu) future-known values for the kept series of a history task, read from ``path``
    (None when the model reads none); a missing file or missing values raise a one-line ValueError."""
    from ..tasks.panel_data import read_future

    if not task.future:
        if path is not None:
            raise ValueError(f"this model reads no future-known columns; got a future file {os.fspath(path)!r}")
        return None
    if path is None:
        raise ValueError(f"this model reads the future of {task.future}: give them in a file (--future FILE)")
    dates = forecast_dates(task)
    if dates is None or not task.id_column:
        raise ValueError("future-known columns are matched by series and date: the run needs --id and --date")
    ids = [task.panel.ids[i] for i in task.kept]
    return read_future(path, task.id_column, task.date_column, task.future, ids, dates)


def panel_forecast(model: torch.nn.Module, task: Any, future: np.ndarray | None = None,
                   chunk: int = 512) -> dict[str, Any]:  # fmt: skip
    """Forecast the H steps after the last row of every kept series of a history task.

    ``future`` (S', H, Fu) holds the future-known columns over those steps (see
    :func:`future_covariates`). Returns, in the file's units: ``series`` (S',) indices,
    ``dates`` (S', H) datetime64 or None, ``quantiles`` (S', H, Q), ``prediction`` (S', H) and
    ``last`` (S',) the last value read. The model reads the C rows up to each series' end and
    the future-known columns; nothing else.
    """
    p, H, C = task.panel, task.horizon, task.context
    s = task.kept
    ends = p.starts[s] + p.lengths[s] - 1  # (S',) row of each series' last value
    rows = ends[:, None] - C + 1 + np.arange(C)  # (S', C)
    ctx = torch.from_numpy(p.values[rows])  # (S', C, F)
    ctx_dates = p.dates[rows] if p.dates is not None else None
    dates = forecast_dates(task)
    fut = None
    if task.future_steps:
        fut = torch.zeros(len(s), H, ctx.shape[-1], dtype=torch.float64)
        if task.future:
            if future is None or future.shape != (len(s), H, len(task.future)):
                got = None if future is None else future.shape
                raise ValueError(f"future must be ({len(s)}, {H}, {len(task.future)}) values; got {got}")
            fut[..., 1 + len(task.past) :] = torch.from_numpy(future)
    series = torch.from_numpy(s)
    x = task.encode(ctx, fut, ctx_dates, dates, series)  # (S', C' (+ H), I)
    lengths = torch.full((len(s),), x.shape[1], dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        z = torch.cat([model(x[i : i + chunk], lengths[i : i + chunk]) for i in range(0, len(s), chunk)])
    last = ctx[:, -1, 0]
    qs = task.unscale(task.quantile_outputs(z), last, series).numpy()  # (S', H, Q)
    return {"series": s, "dates": dates, "quantiles": qs, "prediction": qs[..., task.point_index],
            "last": last.numpy()}  # fmt: skip


def write_panel_forecasts(path: str | os.PathLike[str], task: Any, result: dict[str, Any],
                          calibrated: dict[str, np.ndarray] | None = None) -> int:  # fmt: skip
    """Write ``unique_id, ds, forecast``, one ``qL`` column per quantile level and, with
    ``calibrated`` ({"lo-80": (S', H), "hi-80": ...}), those columns; one row per series and step,
    fields quoted by the csv module where they hold commas or quotes. Returns the rows written."""
    from ..tasks.panel_data import day_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    qnames = [f"q{q:g}" for q in task.quantiles]
    extra = list(calibrated or {})
    writer.writerow(["unique_id", "ds", "forecast", *qnames, *extra])
    p, n = task.panel, 0
    for j, i in enumerate(result["series"]):
        for h in range(task.horizon):
            ds = day_text(result["dates"][j, h]) if result["dates"] is not None else int(p.lengths[i]) + h
            row = [p.ids[i], ds, repr(float(result["prediction"][j, h]))]
            row += [repr(float(v)) for v in (result["quantiles"][j, h] if qnames else [])]
            row += [repr(float(calibrated[c][j, h])) for c in extra] if calibrated else []
            writer.writerow(row)
            n += 1
    atomic_write(path, buf.getvalue())
    return n
