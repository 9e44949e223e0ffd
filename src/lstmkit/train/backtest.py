"""Rolling-origin backtests of a panel forecaster, and conformal calibration of its intervals.

**Backtest.** W windows per series, H steps apart, the last one ending at the series' last row;
window k = 1 .. W (oldest first) has its origin at row ``e_ik = n_i - 1 - (W - k + 1) H`` of
series i. The window's *history* is the panel cut after ``e_ik`` (:meth:`Panel.cut`): the
forecast (:func:`~lstmkit.train.forecasting.panel_forecast`), its scaling statistics, the
seasonal naive forecast ``y_{e+k-m ceil(k/m)}`` and the MASE / RMSSE denominators (the in-sample
seasonal naive errors) all come from that history alone; of the H rows after the origin only the
future-known columns are read. Without ``refit`` the run's weights forecast every window: they
must never have trained on a window's rows, so on the run's own file W may not exceed the run's
``backtest``. With ``refit`` a model of the run's configuration is trained on each window's
history (into ``FOLDER/refit_k``) and forecasts that window.

**Conformal calibration** (conformalized quantile regression, Romano, Patterson & Candes 2019).
On windows the weights never trained on, each central interval
[q_lo, q_hi] of the quantile head scores every truth y by ``s = max(q_lo - y, y - q_hi) / scale``
(in the series' own units, so that series of every size pool; all H steps pool too). With n
scores and nominal coverage P, the adjustment ``E`` is the ceil((n + 1) P)-th smallest score, and
the calibrated interval is ``[q_lo - E scale, q_hi + E scale]`` (E < 0 narrows it; the interval
keeps the point forecast inside and the levels stay sorted). If the calibration scores and the
new ones are exchangeable, it covers at least P of the truths. Which windows score: with
``"validation"`` the task's validation windows (they chose the weights, so they flatter them); with
``"recent"`` the latest windows that neither trained nor chose the weights: in a backtest without
refit, window 1 takes the validation windows and window k > 1 the backtest's windows 1 .. k - 1
(their truths end by origin k); with refit, and for a forecast past the end, the run's test windows.

Metrics, per series, per window and over all windows (each window's errors averaged, as in
:mod:`lstmkit.tasks.panel`): ``mase``, ``rmsse``, ``mae``, ``rmse``, ``smape``, ``crps`` and
``wql`` (quantile approximations; a point model is scored as its single 0.5 level, so its CRPS
is its MAE), ``coverage_P`` of each central interval (``coverage_P_conformal`` once calibrated),
and the same point and quantile scores for the seasonal naive forecast of the same windows
(``snaive_``, its quantiles all equal to its point).

Example::

    >>> model, config = load_run("runs/forecast")                      # doctest: +SKIP
    >>> report = backtest(model, config, windows=3, conformal=True)    # doctest: +SKIP
    >>> report["overall"]["mase"], report["overall"]["snaive_mase"]     # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..tasks.panel import central_intervals, interval_scores, point_errors, seasonal_scales
from .forecasting import history_task, panel_forecast

CONFORMAL_SOURCES = ("validation", "recent")
"""Windows a calibration scores: the validation windows, or the most recent held-out ones (module docstring)."""


def cqr_scores(qs: np.ndarray, truth: np.ndarray, scale: np.ndarray, levels: list[float]) -> dict[str, np.ndarray]:
    """``max(q_lo - y, y - q_hi) / scale`` (B, H) of each central interval (by percent) of quantile
    forecasts ``qs`` (B, H, Q) at ``levels``, truths ``truth`` (B, H), series scales ``scale`` (B,)."""
    out = {}
    for lo, hi, pct in central_intervals(levels):
        out[str(pct)] = np.maximum(qs[..., lo] - truth, truth - qs[..., hi]) / scale[:, None]
    return out


def calibrate(scores: dict[str, np.ndarray], levels: list[float], source: str, windows: int) -> dict[str, Any]:
    """The adjustment ``E`` of each central interval from its pooled ``scores``, with the raw coverage there."""
    out: dict[str, Any] = {}
    by_pct = {str(pct): (lo, hi) for lo, hi, pct in central_intervals(levels)}
    for pct, score in scores.items():
        flat = np.sort(score.ravel())
        k = min(len(flat), math.ceil((len(flat) + 1) * int(pct) / 100))
        lo, hi = by_pct[pct]
        out[pct] = {"lower": levels[lo], "upper": levels[hi], "adjust": float(flat[k - 1]), "scores": len(flat),
                    "raw_coverage": float((score <= 0).mean())}  # fmt: skip
    return {"method": "conformalized quantile regression", "source": source, "windows": windows, "intervals": out}


def conformal_calibration(model: torch.nn.Module, task: Any, source: str = "validation",
                          chunk: int = 512) -> dict[str, Any]:  # fmt: skip
    """The adjustment ``E`` of each central interval of a training-layout panel ``task``, scored on its
    validation windows (``source="validation"``) or on its test windows (``"recent"``: the latest rows
    the weights neither trained on nor were chosen by); module docstring."""
    if source not in CONFORMAL_SOURCES:
        raise ValueError(f"conformal source must be one of {CONFORMAL_SOURCES}; got {source!r}")
    if not central_intervals(task.quantiles):
        raise ValueError(
            "conformal calibration needs a quantile head with a symmetric pair of levels "
            f"(e.g. --quantiles 0.1,0.5,0.9); this run has quantiles {task.quantiles or None}"
        )
    batch = task.validation_set() if source == "validation" else task.test_set()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b.inputs, b.lengths) for b in (batch.slice(i, i + chunk)
                                                              for i in range(0, len(batch), chunk))])  # fmt: skip
    a = task.series_arrays(pred, batch)
    scores = cqr_scores(a["quantiles"], a["truth"], task.scale[a["series"]], task.quantiles)
    return calibrate(scores, task.quantiles, source, len(batch))


def apply_conformal(qs: np.ndarray, scale: np.ndarray, calibration: dict[str, Any], levels: list[float],
                    point: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Calibrated quantiles (B, H, Q) from ``qs`` (B, H, Q) of series with ``scale`` (B,), and the
    calibrated bounds by name (``lo-80``, ``hi-80``: (B, H)); ``point`` indexes the point level."""
    out = qs.copy()
    centre = qs[..., point]
    for lo, hi, pct in central_intervals(levels):
        e = calibration["intervals"][str(pct)]["adjust"] * scale[:, None]  # (B, 1)
        out[..., lo] = np.minimum(qs[..., lo] - e, centre)
        out[..., hi] = np.maximum(qs[..., hi] + e, centre)
    out = np.sort(out, axis=-1)
    bounds = {}
    for lo, hi, pct in central_intervals(levels):
        bounds[f"lo-{pct}"], bounds[f"hi-{pct}"] = out[..., lo], out[..., hi]
    return out, bounds


def _refit(config: Any, task_args: dict[str, Any], history: Any, folder: Path, source: str | None) -> tuple[Any, Any]:
    """Train the run's configuration on one window's history; its best weights and calibration."""
    from ..tasks.panel import PanelForecastTask
    from .best import load_best
    from .checkpoint import load_run
    from .loop import train

    task = PanelForecastTask(**{**task_args, "panel": history})
    train(config, folder, task=task, quiet=True, overwrite=True)
    model = load_run(folder)[0]
    load_best(folder, model)
    return model, (conformal_calibration(model, task, source) if source else None)


def _window(model: Any, task_args: dict[str, Any], full: Any, ends: np.ndarray, calibration: Any) -> dict[str, Any]:
    """Forecast one window from the history cut after rows ``ends`` (S,); scores' raw material."""
    hist = full.cut(np.maximum(ends, 0))
    task = history_task(task_args, panel=hist)
    s = task.kept
    g = full.starts[s] + ends[s]  # (S',) row of each origin in the full panel
    steps = g[:, None] + 1 + np.arange(task.horizon)  # (S', H)
    P, Fu = len(task.past), len(task.future)
    future = full.values[steps][..., 1 + P : 1 + P + Fu] if Fu else None
    res = panel_forecast(model, task, future)
    m, H = task.season, task.horizon
    k = np.arange(1, H + 1)
    back = k - m * ((k + m - 1) // m)  # (H,) offset of the same point one season back
    snaive = np.empty((len(s), H))
    ms, rs = np.empty(len(s)), np.empty(len(s))
    for j, i in enumerate(s):
        y = hist.values[hist.starts[i] : hist.starts[i + 1], 0]
        snaive[j] = y[np.clip(len(y) - 1 + back, 0, None)]
        ms[j], rs[j] = seasonal_scales(y, m)
    out = {"series": s, "truth": full.values[steps, 0], "prediction": res["prediction"],
           "quantiles": res["quantiles"], "snaive": snaive, "mase_scale": ms, "rmsse_scale": rs,
           "origin": hist.dates[hist.starts[s + 1] - 1] if hist.dates is not None else ends[s],
           "dates": res["dates"], "skipped": task.skipped, "scale": task.scale[s]}  # fmt: skip
    if calibration is not None:
        out["calibrated"] = apply_conformal(res["quantiles"], task.scale[s], calibration, task.quantiles,
                                            task.point_index)[0]  # fmt: skip
    return out


def scores(w: dict[str, np.ndarray], levels: list[float]) -> dict[str, float]:
    """The module docstring's metrics of the windows ``w`` (arrays as :func:`backtest` gathers them)."""
    lv = levels or [0.5]
    qs = w["quantiles"] if levels else w["prediction"][..., None]
    out = point_errors(w["prediction"], w["truth"], w["mase_scale"], w["rmsse_scale"])
    out.update({k: v for k, v in interval_scores(qs, w["truth"], lv).items() if not k.startswith("below_")})
    if "calibrated" in w:
        cal = interval_scores(w["calibrated"], w["truth"], lv)
        out.update({f"{k}_conformal": v for k, v in cal.items() if k.startswith("coverage_")})
    sn = point_errors(w["snaive"], w["truth"], w["mase_scale"], w["rmsse_scale"])
    sq = interval_scores(np.repeat(w["snaive"][..., None], len(lv), axis=-1), w["truth"], lv)
    out.update({f"snaive_{k}": v for k, v in sn.items()})
    out.update({f"snaive_{k}": sq[k] for k in ("crps", "wql")})
    out["windows"] = len(w["truth"])
    return out


def backtest(model: torch.nn.Module | None, config: Any, windows: int, csv_file: str | None = None, refit: bool = False,
             conformal: bool | str = False, folder: str | Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Backtest a panel forecast run (module docstring) on its own file or on ``csv_file``.

    ``model`` (the run's weights; unused with ``refit``) and ``config`` (its RunConfig);
    ``conformal``: False, ``"validation"`` (or True) or ``"recent"``. Returns ``overall``,
    ``per_window`` (k = 1 .. W) and ``per_series`` metrics, the arrays ``gathered`` and the
    ``calibration`` of each window.
    """
    source = "validation" if conformal is True else (conformal or None)
    if source is not None and source not in CONFORMAL_SOURCES:
        raise ValueError(f"conformal must be one of {CONFORMAL_SOURCES}; got {conformal!r}")
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows must be a positive int; got {windows!r}")
    args = dict(config.task_args)
    own = csv_file is None or Path(csv_file).resolve() == Path(args["csv_file"]).resolve()
    held = int(args.get("backtest") or 1)
    if not refit and own and windows > held:
        raise ValueError(
            f"the run's weights trained on all but the last {held} window(s) of each series (backtest={held}); "
            f"got windows={windows}: give at most {held}, or refit"
        )
    if refit and folder is None:
        raise ValueError("a refit backtest needs a folder for its runs")
    if not refit and model is None:
        raise ValueError("a backtest without refit needs the run's model")
    if csv_file is not None:
        args["csv_file"] = str(csv_file)
    full_task = history_task(args)
    full, H = full_task.panel, full_task.horizon
    levels = full_task.quantiles
    first = None
    if source is not None and not refit:
        from ..tasks import make_task

        assert model is not None  # checked above
        first = conformal_calibration(model, make_task(config.task, **config.task_args))  # validation windows
    gathered: list[dict[str, Any]] = []
    calibrations: dict[str, Any] = {}
    for k in range(1, windows + 1):
        ends = full.lengths - 1 - (windows - k + 1) * H
        m, cal = model, first
        if refit:
            hist = full.cut(np.maximum(ends, 0))
            m, cal = _refit(config, args, hist, Path(folder) / f"refit_{k}", source)  # type: ignore[arg-type]
        elif source == "recent" and k > 1:  # the earlier windows: their truths end by this origin
            pooled = [cqr_scores(g["quantiles"], g["truth"], g["scale"], levels) for g in gathered]
            cal = calibrate({p: np.concatenate([d[p] for d in pooled]) for p in pooled[0]}, levels,
                            f"recent: windows 1..{k - 1}", sum(len(g["series"]) for g in gathered))  # fmt: skip
        w = _window(m, args, full, ends, cal)
        gathered.append({**w, "window": np.full(len(w["series"]), k)})
        calibrations[str(k)] = cal
    keys = [key for key in gathered[0] if key not in ("dates", "skipped", "scale")]
    every = {key: np.concatenate([g[key] for g in gathered]) for key in keys}
    if gathered[0]["dates"] is not None:
        every["dates"] = np.concatenate([g["dates"] for g in gathered])
    names = np.array(full.ids, dtype=object)[every["series"]]
    report: dict[str, Any] = {
        "windows": windows, "horizon": H, "refit": refit, "series": len(set(names.tolist())),
        "skipped_short": [int(g["skipped"]) for g in gathered], "overall": scores(every, levels),
        "per_window": {str(k): scores(_select(every, every["window"] == k), levels) for k in range(1, windows + 1)},
        "per_series": {n: scores(_select(every, names == n), levels) for n in dict.fromkeys(names.tolist())},
        "conformal": source, "calibration": calibrations if source is not None else None,
    }  # fmt: skip
    report["gathered"] = {**every, "unique_id": names}
    return report


def _select(arrays: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in arrays.items()}
