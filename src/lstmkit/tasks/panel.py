"""One model for many series: windows drawn lazily from a panel, covariates, quantiles, backtests.

The panel is read by :func:`lstmkit.tasks.panel_data.read_panel` (or given already read, as
``panel``). Each series i (n_i rows) splits in time: its last ``W * H`` rows are the test targets
(W = ``backtest`` rolling origins, H = ``horizon``; origins ``n_i - 1 - k H`` for k = W .. 1), the
``V * H`` rows before them the validation targets (V = ``val_windows`` origins, H apart),
everything earlier trains. A series with no room for one training window (n_i < C + (W + V + 1) H)
is skipped and counted. Training windows are drawn uniformly over every (series, origin) pair by
index arithmetic: nothing is materialised but the batch. With ``history`` every row is history
(for forecasts past the end, :mod:`lstmkit.train.forecasting`): no windows are held out, the
statistics below come from all rows, and a series needs the C rows of one window.

Per series, with y its target, ``s_i`` the std of its training rows (of their one-step changes
for ``diff``) and ``mu_i`` their mean, ``normalize`` works as for one series
(:mod:`lstmkit.tasks.forecast`) with the series' own ``s_i``; other numeric columns are
standardised with the series' own training mean and std. Each window step carries

    [target, past features, future features, calendar (sin, cos) pairs, future flag, static codes]

over C context rows; when there are future-known columns (``future_features`` or ``calendar``)
H more steps follow, holding only those columns and a flag of 1 (target and past features 0),
so the model reads the covariates of the horizon before its readout. The static codes (the
series id, then each ``static`` column) are embedded by the model
(``ModelConfig.categories``).

With ``quantiles`` (levels in (0, 1)) the head emits (B, H, Q), sorted along Q so that the
quantiles never cross, and the loss is the pinball loss
``mean(max(q (y - yhat_q), (q - 1) (y - yhat_q)))`` in normalised units; the point forecast is
the quantile nearest 0.5. With ``distribution`` (``normal`` or ``studentt``) the head emits the
distribution's parameters per step (:mod:`lstmkit.tasks.distributions`), the loss is its negative
log-likelihood, and its quantiles at ``quantiles`` (default 0.1, 0.5, 0.9) stand for a quantile
head's everywhere else (intervals, metrics, forecasts). Without either, the loss is the MSE.

Metrics on the test windows, in the file's units: ``mase`` (each window's MAE over its series'
in-sample seasonal naive MAE, averaged), ``rmsse`` (the same with root mean squares, Makridakis
et al. 2022), ``mae``, ``rmse``, ``smape``, the same for ``naive_`` and ``snaive_``; with
quantiles ``coverage_P`` (share of truths inside the central P% interval of each symmetric pair
of levels), ``below_qL`` (share below level L), ``wql`` (mean over levels of
``2 * sum pinball / sum |y|``) and ``crps`` (mean over levels of ``2 * pinball``, the quantile
approximation of the CRPS, in the file's units); with W > 1, ``originK_mase`` /
``originK_snaive_mase`` (and ``originK_coverage_P``) for each rolling origin K = 1 .. W.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction, uniform_int
from .base import Batch, Task
from .distributions import PARAMETERS
from .distributions import nll as distribution_nll
from .distributions import quantiles as distribution_quantiles
from .panel_data import Panel, read_panel
from .series import season_of

CALENDAR: dict[str, int] = {
    "month": 12,
    "quarter": 4,
    "weekofyear": 53,
    "dayofyear": 366,
    "dayofmonth": 31,
    "dayofweek": 7,
    "hour": 24,
    "minute": 60,
}
"""Calendar features by name and their period; each enters as sin and cos of 2 pi k / period."""


def calendar_features(dates: np.ndarray, names: list[str]) -> np.ndarray:
    """(..., 2 * len(names)) float64: sin and cos of each named calendar position of ``dates``
    (datetime64, any shape); position k counts from 0 (January is month 0, Monday day 0)."""
    import pandas as pd

    flat = pd.DatetimeIndex(np.asarray(dates).reshape(-1))
    pos = {
        "month": flat.month - 1,
        "quarter": flat.quarter - 1,
        "weekofyear": flat.isocalendar().week.to_numpy() - 1,
        "dayofyear": flat.day_of_year - 1,
        "dayofmonth": flat.day - 1,
        "dayofweek": flat.day_of_week,
        "hour": flat.hour,
        "minute": flat.minute,
    }
    cols = []
    for n in names:
        angle = 2 * np.pi * np.asarray(pos[n], dtype=np.float64) / CALENDAR[n]
        cols += [np.sin(angle), np.cos(angle)]
    out = np.stack(cols, axis=-1) if cols else np.zeros((len(flat), 0))
    return out.reshape(*np.shape(dates), len(cols))


def seasonal_scales(y: np.ndarray, season: int) -> tuple[float, float]:
    """In-sample MAE and mean square of the seasonal naive forecast ``y_t = y_{t-m}`` over ``y`` (n,)
    (lag 1 when n <= m): the MASE and RMSSE denominators (1.0 where one is 0)."""
    lag = season if len(y) > season else 1
    d = y[lag:] - y[:-lag]
    mae, mse = (float(np.abs(d).mean()), float((d**2).mean())) if len(d) else (0.0, 0.0)
    return (mae if mae > 0 else 1.0), (mse if mse > 0 else 1.0)


def point_errors(forecast: np.ndarray, truth: np.ndarray, mase_scale: np.ndarray,
                 rmsse_scale: np.ndarray) -> dict[str, float]:  # fmt: skip
    """MASE and RMSSE (each window (B, H) over its own scale (B,), averaged), MAE, RMSE, sMAPE (%)."""
    err = forecast - truth  # (B, H)
    denom = np.abs(forecast) + np.abs(truth)
    ratio = np.divide(2.0 * np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
    mase = np.abs(err).mean(axis=1) / mase_scale
    rmsse = np.sqrt((err**2).mean(axis=1) / rmsse_scale)
    return {"mase": float(mase.mean()), "rmsse": float(rmsse.mean()), "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())), "smape": 100.0 * float(ratio.mean())}  # fmt: skip


def central_intervals(levels: list[float]) -> list[tuple[int, int, int]]:
    """(lower index, upper index, percent) of each symmetric pair of quantile ``levels`` (sorted),
    e.g. [0.1, 0.5, 0.9] -> [(0, 2, 80)]."""
    out = []
    for j, q in enumerate(levels):
        other = round(1.0 - q, 10)
        if q < 0.5 and other in levels:
            out.append((j, levels.index(other), round(100 * (1 - 2 * q))))
    return out


def interval_scores(qs: np.ndarray, truth: np.ndarray, levels: list[float]) -> dict[str, float]:
    """``coverage_P`` of each central interval, ``below_qL``, ``wql`` and ``crps`` of quantile forecasts
    ``qs`` (B, H, Q) at ``levels`` (Q,) against ``truth`` (B, H) (module docstring)."""
    out: dict[str, float] = {}
    for j, q in enumerate(levels):
        out[f"below_q{q:g}"] = float((truth <= qs[..., j]).mean())
    for lo, hi, pct in central_intervals(levels):
        out[f"coverage_{pct:d}"] = float(((qs[..., lo] <= truth) & (truth <= qs[..., hi])).mean())
    lv = np.asarray(levels)
    err = truth[..., None] - qs  # (B, H, Q)
    pin = np.maximum(lv * err, (lv - 1) * err)
    total = float(np.abs(truth).sum())
    out["wql"] = float((2.0 * pin.sum(axis=(0, 1)) / (total if total > 0 else 1.0)).mean())
    out["crps"] = float((2.0 * pin).mean())
    return out


def _names(value: Any, what: str) -> list[str]:
    """A list of column names from a list or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise TypeError(f"{what} must be a list of column names or 'A,B'; got {value!r}")
    return list(value)


class PanelForecastTask(Task):
    """Forecast ``horizon`` steps of every series of a panel with one model (module docstring).

    Built by ``make_task("forecast", ...)`` when a panel option is given (``id_column``, a list
    of targets, ``static``, ``future_features``, ``calendar``, ``quantiles``, ``backtest``).
    Inputs (B, C or C + H, I) float32; targets (B, H); the model emits (B, H) or (B, H * Q).
    ``batch.extra``: ``series`` (B,) index, ``origin`` (B,) row within the series, ``fold`` (B,)
    rolling origin 0 .. W - 1, float64 ``last`` (B,), ``truth`` and ``snaive`` (B, H).

    Example::

        >>> task = make_task("forecast", csv_file="retail.csv", target="y", id_column="store",
        ...                  date_column="ds", horizon=6, quantiles=[0.1, 0.5, 0.9])   # doctest: +SKIP
        >>> task.sample(32, torch.Generator().manual_seed(0)).inputs.shape              # doctest: +SKIP
        torch.Size([32, 24, 3])
    """

    name: ClassVar[str] = "forecast"
    readout: ClassVar[str] = "last"
    validation_metric: ClassVar[str] = "mase"  # scale-free across series; lower is better
    paper: ClassVar[dict[str, object]] = {
        "source": "global forecasting of many series, scored by MASE (Hyndman & Koehler 2006) and quantile loss",
        "criterion": "none; MASE below seasonal naive's on the test windows",
    }

    def __init__(self, csv_file: str, target: str | list[str], features: list[str] | None = None,
                 window: int | None = None, horizon: int = 1, date_column: str | None = None,
                 fill: str = "interpolate", normalize: str = "level", season: int | None = None,
                 id_column: str | list[str] | None = None, static: list[str] | None = None,
                 future_features: list[str] | None = None, calendar: list[str] | None = None,
                 quantiles: list[float] | None = None, backtest: int | None = None, freq: str | None = None,
                 levels: list[list[str]] | None = None, val_windows: int | None = None, history: bool = False,
                 panel: Panel | None = None, distribution: str | None = None) -> None:  # fmt: skip
        if normalize not in ("level", "diff", "global"):
            raise ValueError(f"normalize must be one of ('level', 'diff', 'global'); got {normalize!r}")
        self.calendar = _names(calendar, "calendar")
        unknown = [c for c in self.calendar if c not in CALENDAR]
        if unknown:
            raise ValueError(f"calendar must name some of {sorted(CALENDAR)}; got {unknown}")
        if distribution is not None and distribution not in PARAMETERS:
            raise ValueError(f"distribution must be one of {sorted(PARAMETERS)}; got {distribution!r}")
        self.distribution = distribution
        self.quantiles = self._check_quantiles(quantiles)
        if distribution is not None and not self.quantiles:
            self.quantiles = [0.1, 0.5, 0.9]  # the levels a distribution head reports
        ids, targets = _names(id_column, "id_column"), _names(target, "target")
        self.csv_file, self.fill, self.normalize = str(csv_file), fill, normalize
        self.target = targets[0] if len(targets) == 1 else targets
        self.id_column, self.date_column = ids, date_column
        self.past, self.future = _names(features, "features"), _names(future_features, "future_features")
        self.static = _names(static, "static")
        if self.calendar and date_column is None:
            raise ValueError("calendar features need the date column; give date_column (--date)")
        if panel is None:
            self.panel, read_levels = read_panel(
                csv_file, self.target, ids or None, date_column, self.past, self.future, self.static, fill, freq
            )
        else:  # already read (a backtest's history cut at its origin)
            self.panel, read_levels = panel, panel.levels
        self.freq = self.panel.freq
        self.levels = read_levels if levels is None else [list(v) for v in levels]
        self.codes = self._remap(self.panel.static, read_levels, self.levels)  # (S, K)
        self.categories = [len(lv) + 1 for lv in self.levels]  # code 0: a value unseen in training
        self.season = season_of(self.freq) if season is None else check_int("season", season, 1)
        self.window = max(24, 2 * self.season) if window is None else check_int("window", window, 1)
        self.horizon = check_int("horizon", horizon, 1)
        self.backtest = 1 if backtest is None else check_int("backtest", backtest, 1)
        self.val_windows = 1 if val_windows is None else check_int("val_windows", val_windows, 1)
        self.history = bool(history)
        self.context = self.window + (1 if normalize == "diff" else 0)
        self.future_steps = self.horizon if (self.future or self.calendar) else 0
        self._layout()
        self._statistics()
        per_step = PARAMETERS[distribution] if distribution is not None else max(1, len(self.quantiles))
        self.output_size = self.horizon * per_step
        self.input_size = (1 + len(self.past) + len(self.future) + 2 * len(self.calendar)
                           + (1 if self.future_steps else 0) + len(self.levels))  # fmt: skip
        self._cache: dict[str, Batch] = {}

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_quantiles(quantiles: Any) -> list[float]:
        if quantiles is None:
            return []
        qs = [float(q) for q in (_names(quantiles, "quantiles") if isinstance(quantiles, str) else quantiles)]
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or len(set(qs)) != len(qs):
            raise ValueError(f"quantiles must be distinct levels in (0, 1); got {quantiles!r}")
        return sorted(qs)

    @staticmethod
    def _remap(codes: np.ndarray, read: list[list[str]], saved: list[list[str]]) -> np.ndarray:
        """Codes of this file's values in the saved levels (0 where a value was not in training)."""
        if len(read) != len(saved):
            raise ValueError(f"levels must hold {len(read)} lists (id and static columns); got {len(saved)}")
        out = np.zeros_like(codes)
        for k, (lr, ls) in enumerate(zip(read, saved, strict=True)):
            index = {v: j + 1 for j, v in enumerate(ls)}
            lut = np.array([0] + [index.get(v, 0) for v in lr], dtype=np.int64)
            out[:, k] = lut[codes[:, k]]
        return out

    def _layout(self) -> None:
        """Per series: training origins [lo, hi], the validation and test origins; short series skipped.

        With ``history`` every row is history (a forecast past the end): no held-out rows, the
        statistics come from all rows and a series needs the C rows of one window."""
        H, W, V, C = self.horizon, self.backtest, self.val_windows, self.context
        n = self.panel.lengths
        if self.history:
            lo, hi, need = n - 1, n - 1, C
        else:
            lo, hi, need = np.full(len(n), C - 1), n - 1 - (W + V + 1) * H, C + (W + V + 1) * H
        keep = (hi >= lo) & (n >= need)
        self.skipped = int((~keep).sum())
        if not keep.any():
            held = "" if self.history else f", backtest={W}, val_windows={V}"
            raise ValueError(
                f"csv_file {self.csv_file!r}: no series is long enough for window={self.window}, horizon={H}{held}: "
                f"the longest has {int(n.max())} rows; each needs at least {need}"
            )
        self.kept = np.flatnonzero(keep)  # (S',) series indices used
        self.lo, self.hi = lo[keep], hi[keep]
        self.counts = self.hi - self.lo + 1  # training windows per kept series
        self.n_train = n if self.history else n - (W + V) * H  # rows [0, n_train) hold every training target

    def _statistics(self) -> None:
        """Per-series scale, mean, feature mean/std and the MASE / RMSSE denominators (training rows)."""
        S, F, m = len(self.panel.ids), self.panel.values.shape[1], self.season
        self.scale, self.mean = np.ones(S), np.zeros(S)
        self.fmean, self.fstd = np.zeros((S, F)), np.ones((S, F))
        self.mase_scale, self.rmsse_scale = np.ones(S), np.ones(S)
        for i in self.kept:
            v = self.panel.values[self.panel.starts[i] : self.panel.starts[i] + self.n_train[i]]  # (n_train, F)
            y = v[:, 0]
            s = float(np.diff(y).std()) if self.normalize == "diff" else float(y.std())
            self.scale[i], self.mean[i] = (s if s > 0 else 1.0), float(y.mean())
            sd = v.std(axis=0)
            self.fmean[i], self.fstd[i] = v.mean(axis=0), np.where(sd > 0, sd, 1.0)
            self.mase_scale[i], self.rmsse_scale[i] = seasonal_scales(y, m)

    # ------------------------------------------------------------------ inputs
    def encode(self, ctx: Tensor, fut: Tensor | None, ctx_dates: np.ndarray | None,
               fut_dates: np.ndarray | None, series: Tensor) -> Tensor:  # fmt: skip
        """Model inputs (B, T, I) float32 from raw context rows ``ctx`` (B, C, F), the raw future
        rows ``fut`` (B, H, F) (only the future-feature columns are read), their dates
        (B, C) / (B, H) datetime64 and the series indices (B,)."""
        P = len(self.past)
        s = series.numpy()
        scale = torch.from_numpy(self.scale[s]).unsqueeze(1)  # (B, 1)
        fmean, fstd = torch.from_numpy(self.fmean[s]).unsqueeze(1), torch.from_numpy(self.fstd[s]).unsqueeze(1)
        y = ctx[..., 0]
        if self.normalize == "diff":
            t, ctx, ctx_dates = (
                (y[:, 1:] - y[:, :-1]) / scale,
                ctx[:, 1:],
                (ctx_dates[:, 1:] if ctx_dates is not None else None),
            )
        elif self.normalize == "level":
            t = (y - y[:, -1:]) / scale
        else:
            t = (y - torch.from_numpy(self.mean[s]).unsqueeze(1)) / scale
        others = (ctx[..., 1:] - fmean[..., 1:]) / fstd[..., 1:]  # (B, C', P + Fu)
        parts = [t.unsqueeze(-1), others]
        if self.calendar and ctx_dates is not None:
            parts.append(torch.from_numpy(calendar_features(ctx_dates, self.calendar)))
        if self.future_steps:
            parts.append(torch.zeros_like(t).unsqueeze(-1))  # flag 0 on the context
        past = torch.cat(parts, dim=-1)  # (B, C', 1 + P + Fu + 2N (+1))
        if self.future_steps:
            assert fut is not None
            B, H = fut.shape[0], fut.shape[1]
            f = [torch.zeros(B, H, 1 + P, dtype=past.dtype)]
            f.append((fut[..., 1 + P :] - fmean[..., 1 + P :]) / fstd[..., 1 + P :])
            if self.calendar and fut_dates is not None:
                f.append(torch.from_numpy(calendar_features(fut_dates, self.calendar)))
            f.append(torch.ones(B, H, 1, dtype=past.dtype))
            past = torch.cat([past, torch.cat(f, dim=-1)], dim=1)  # (B, C' + H, ...)
        codes = torch.from_numpy(self.codes[s]).to(past.dtype).unsqueeze(1).expand(-1, past.shape[1], -1)
        return torch.cat([past, codes], dim=-1).to(torch.float32)

    def to_targets(self, truth: Tensor, last: Tensor, series: Tensor) -> Tensor:
        """Future values (B, H) -> normalised targets (B, H) (inverse of :meth:`unscale`)."""
        scale = torch.from_numpy(self.scale[series.numpy()]).unsqueeze(1)
        if self.normalize == "diff":
            return (truth - torch.cat([last.unsqueeze(1), truth[:, :-1]], dim=1)) / scale
        if self.normalize == "level":
            return (truth - last.unsqueeze(1)) / scale
        return (truth - torch.from_numpy(self.mean[series.numpy()]).unsqueeze(1)) / scale

    def unscale(self, z: Tensor, last: Tensor, series: Tensor) -> Tensor:
        """Model outputs (B, H) or (B, H, Q) -> values in the file's units, given ``y_e`` (B,)."""
        s = series.numpy()
        shape = (-1,) + (1,) * (z.dim() - 1)
        scale = torch.from_numpy(self.scale[s]).view(shape)
        z = z.to(torch.float64) * scale
        base = last.view(shape)
        if self.normalize == "diff":
            return base + torch.cumsum(z, dim=1)
        if self.normalize == "level":
            return base + z
        return z + torch.from_numpy(self.mean[s]).view(shape)

    def quantile_outputs(self, prediction: Tensor) -> Tensor:
        """(B, H * Q) -> (B, H, Q) sorted along Q (non-crossing); (B, H) -> (B, H, 1); a distribution
        head's (B, H * P) -> its quantiles (B, H, Q) at ``quantiles``."""
        if self.distribution is not None:
            raw = prediction.reshape(prediction.shape[0], self.horizon, PARAMETERS[self.distribution])
            return distribution_quantiles(raw, self.quantiles, self.distribution)
        Q = max(1, len(self.quantiles))
        out = prediction.reshape(prediction.shape[0], self.horizon, Q)
        return torch.sort(out, dim=-1).values if Q > 1 else out

    @property
    def point_index(self) -> int:
        """The quantile taken as the point forecast: the level nearest 0.5 (0 without quantiles)."""
        return int(np.argmin([abs(q - 0.5) for q in self.quantiles])) if self.quantiles else 0

    # ------------------------------------------------------------------ windows
    def windows(self, series: Tensor, origins: Tensor, fold: Tensor | None = None) -> Batch:
        """The windows of series ``series`` (B,) ending at their rows ``origins`` (B,)."""
        H, C, m = self.horizon, self.context, self.season
        vals = torch.from_numpy(self.panel.values)
        g = torch.from_numpy(self.panel.starts[series.numpy()]) + origins  # (B,) global row of each origin
        ctx_rows = g.unsqueeze(1) - C + 1 + torch.arange(C)  # (B, C)
        k = torch.arange(1, H + 1)
        fut_rows = g.unsqueeze(1) + k  # (B, H)
        ctx, fut = vals[ctx_rows], vals[fut_rows]
        dates = self.panel.dates
        cd = dates[ctx_rows.numpy()] if dates is not None else None
        fd = dates[fut_rows.numpy()] if dates is not None else None
        truth, last = fut[..., 0], ctx[:, -1, 0]
        local_back = origins.unsqueeze(1) + k - m * torch.div(k + m - 1, m, rounding_mode="floor")
        snaive = vals[g.unsqueeze(1) - origins.unsqueeze(1) + local_back.clamp(min=0), 0]
        inputs = self.encode(ctx, fut if self.future_steps else None, cd, fd, series)
        lengths = torch.full((len(series),), inputs.shape[1], dtype=torch.int64)
        targets = self.to_targets(truth, last, series).to(torch.float32)
        fold = torch.zeros_like(series) if fold is None else fold
        extra = {"series": series, "origin": origins, "fold": fold, "last": last, "truth": truth, "snaive": snaive}
        return Batch(inputs, targets, lengths, None, extra)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` training windows, uniform over every (series, origin) pair, drawn lazily."""
        self._not_history("training windows")
        b = check_batch_size(batch_size)
        cum = np.cumsum(self.counts)
        u = uniform_int(0, int(cum[-1]) - 1, b, check_generator(generator)).numpy()
        j = np.searchsorted(cum, u, side="right")  # kept-series position of each draw
        origins = self.lo[j] + u - (cum[j] - self.counts[j])
        return self.windows(torch.from_numpy(self.kept[j]), torch.from_numpy(origins.astype(np.int64)))

    def _not_history(self, what: str) -> None:
        if self.history:
            raise ValueError(f"a history task (every row is history, for forecasts past the end) has no {what}")

    def _split(self, name: str) -> Batch:
        self._not_history(f"{name} windows")
        if name not in self._cache:
            H, W, V, n = self.horizon, self.backtest, self.val_windows, self.panel.lengths[self.kept]
            if name == "val":  # V windows per series just before the test rows, oldest first
                ks = W + np.arange(V, 0, -1)
                series, fold = np.repeat(self.kept, V), np.zeros(V * len(n), dtype=np.int64)
                origins = (np.repeat(n, V) - 1 - np.tile(ks, len(n)) * H).astype(np.int64)
            else:  # W rolling origins per series, oldest first
                ks = np.arange(W, 0, -1)
                series = np.repeat(self.kept, W)
                origins = (np.repeat(n, W) - 1 - np.tile(ks, len(n)) * H).astype(np.int64)
                fold = np.tile(np.arange(W), len(n))
            self._cache[name] = self.windows(torch.from_numpy(series), torch.from_numpy(origins),
                                             torch.from_numpy(fold))  # fmt: skip
        return self._cache[name]

    def validation_set(self) -> Batch:
        """``val_windows`` validation windows per series (targets just before the test rows)."""
        return self._split("val")

    def test_set(self) -> Batch:
        """``backtest`` rolling-origin windows per series (oldest first within each series)."""
        return self._split("test")

    # ------------------------------------------------------------------ loss, metrics
    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Pinball loss averaged over levels, steps and windows (quantiles), the negative
        log-likelihood (a distribution head), else the MSE."""
        check_prediction(prediction, (len(batch), self.output_size), self.name)
        y = batch.targets.to(prediction.device, prediction.dtype)
        if self.distribution is not None:
            raw = prediction.reshape(len(batch), self.horizon, PARAMETERS[self.distribution])
            return distribution_nll(raw, y, self.distribution)
        if not self.quantiles:
            return torch.mean((prediction - y) ** 2)
        q = torch.tensor(self.quantiles, dtype=prediction.dtype, device=prediction.device)
        err = y.unsqueeze(-1) - self.quantile_outputs(prediction)  # (B, H, Q)
        return torch.mean(torch.maximum(q * err, (q - 1) * err))

    def series_arrays(self, prediction: Tensor, batch: Batch) -> dict[str, np.ndarray]:
        """In the file's units: ``series``, ``origin``, ``fold`` (B,), ``truth``, ``prediction``,
        ``naive``, ``snaive`` (B, H) and ``quantiles`` (B, H, Q)."""
        check_prediction(prediction, (len(batch), self.output_size), self.name)
        ex = batch.extra
        qs = self.unscale(self.quantile_outputs(prediction.detach().cpu()), ex["last"], ex["series"]).numpy()
        return {
            "series": ex["series"].numpy(), "origin": ex["origin"].numpy(), "fold": ex["fold"].numpy(),
            "truth": ex["truth"].numpy(), "prediction": qs[..., self.point_index], "quantiles": qs,
            "naive": ex["last"].unsqueeze(1).expand(-1, self.horizon).numpy(), "snaive": ex["snaive"].numpy(),
        }  # fmt: skip

    def errors(self, forecast: np.ndarray, truth: np.ndarray, series: np.ndarray) -> dict[str, float]:
        """MASE, RMSSE (per window over its series' in-sample scale, averaged), MAE, RMSE, sMAPE."""
        return point_errors(forecast, truth, self.mase_scale[series], self.rmsse_scale[series])

    def interval_metrics(self, qs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        """Coverage of each central interval, share below each level, wQL and CRPS (module docstring)."""
        return interval_scores(qs, truth, self.quantiles)

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``; model, ``naive_`` and ``snaive_`` errors; interval metrics; per-origin MASE."""
        with torch.no_grad():
            out = {"loss": float(self.loss(prediction.detach(), batch))}
        a = self.series_arrays(prediction, batch)
        for prefix, key in (("", "prediction"), ("naive_", "naive"), ("snaive_", "snaive")):
            out.update({prefix + k: v for k, v in self.errors(a[key], a["truth"], a["series"]).items()})
        if self.quantiles:
            out.update(self.interval_metrics(a["quantiles"], a["truth"]))
        folds = int(a["fold"].max()) + 1 if len(a["fold"]) else 0
        for k in range(folds if folds > 1 else 0):
            sel = a["fold"] == k
            out[f"origin{k + 1}_mase"] = self.errors(a["prediction"][sel], a["truth"][sel], a["series"][sel])["mase"]
            out[f"origin{k + 1}_snaive_mase"] = self.errors(a["snaive"][sel], a["truth"][sel], a["series"][sel])["mase"]
            if self.quantiles:
                cov = self.interval_metrics(a["quantiles"][sel], a["truth"][sel])
                out.update({f"origin{k + 1}_{n}": v for n, v in cov.items() if n.startswith("coverage_")})
        return out

    # ------------------------------------------------------------------ reports
    def describe(self) -> dict[str, object]:
        """What was read and how it is modelled (series used and skipped, fill counts, windows)."""
        return {**self.panel.report, "series_used": len(self.kept), "series_skipped_short": self.skipped,
                "training_windows": int(self.counts.sum()), "freq": self.freq, "season": self.season,
                "window": self.window, "horizon": self.horizon, "backtest": self.backtest,
                "normalize": self.normalize, "inputs": self.input_size}  # fmt: skip

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready, with the resolved choices and the category levels."""
        return {
            "csv_file": self.csv_file, "target": self.target, "id_column": self.id_column or None,
            "date_column": self.date_column, "features": self.past, "future_features": self.future,
            "static": self.static, "calendar": self.calendar, "quantiles": self.quantiles or None,
            "window": self.window, "horizon": self.horizon, "backtest": self.backtest, "fill": self.fill,
            "normalize": self.normalize, "season": self.season, "freq": self.freq, "levels": self.levels,
            "val_windows": self.val_windows, "distribution": self.distribution,
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"PanelForecastTask({len(self.kept)} series, window={self.window}, horizon={self.horizon})"
