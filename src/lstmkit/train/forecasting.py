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
