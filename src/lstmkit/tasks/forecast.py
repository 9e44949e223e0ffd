"""Forecasting a column of a CSV time series ``horizon`` steps ahead, next to naive baselines.

The file is read by :func:`lstmkit.tasks.series.read_series` (dates as the index, chosen
features, a fill rule, the frequency and the season inferred). Rows are time steps. The first
``1 - val_fraction - test_fraction`` of the rows train, the next ``val_fraction`` validate
(the training loop keeps the weights with the lowest validation MAE and may stop early), the
last ``test_fraction`` test; no window's targets cross a split.

A window ends at its origin row ``e`` (the last value seen) and predicts the target at rows
``e+1 .. e+H`` (H = horizon) from ``C`` rows of the F features (target first). With
``y`` the target, ``s`` a scale fixed from the training rows, and the other features
standardised with the training mean and std, ``normalize`` says what the model sees:

    level   x_t = (y_t - y_e) / s             z_k = (y_{e+k} - y_e) / s            C = window
    diff    x_t = (y_t - y_{t-1}) / s         z_k = (y_{e+k} - y_{e+k-1}) / s      C = window + 1
    global  x_t = (y_t - mean) / s            z_k = (y_{e+k} - mean) / s           C = window

so ``level`` normalises each window by its own last level, ``diff`` predicts the change step
by step (the forecast is ``y_e + s * cumsum(z)``), ``global`` is plain standardisation. ``s`` is
the training std of ``y`` (global, level) or of its one-step changes (diff).

Metrics, in the CSV's units over all H steps of every window: ``mae``, ``rmse``, ``smape``
(symmetric MAPE, percent) and ``mase`` (MAE divided by the in-sample MAE of the seasonal
naive forecast ``y_t = y_{t-m}`` on the training rows, Hyndman & Koehler 2006), and the
same four for the naive forecast (``naive_*``: ``y_{e+k} = y_e``) and the seasonal naive one
(``snaive_*``: ``y_{e+k} = y_{e+k-m*ceil(k/m)}``, m = season).
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task
from .series import read_series, season_of

NORMALIZATIONS = ("level", "diff", "global")
"""What the model sees of the target: see the module docstring."""

PANEL_ARGS = (
    "id_column",
    "static",
    "future_features",
    "calendar",
    "quantiles",
    "backtest",
    "freq",
    "levels",
    "val_windows",
    "distribution",
)
"""Arguments that make ``ForecastTask(...)`` a panel task (:mod:`lstmkit.tasks.panel`); the one-series
path takes none of them."""


class ForecastTask(Task):
    """Predict the next ``horizon`` values of ``target`` from a window of a CSV time series.

    Inputs (B, window, F) float32 (see the module docstring); targets (B, H) float32, the
    normalised future; readout "last": the model emits (B, H). ``batch.extra`` holds ``origin``
    (B,) the 0-based row of each window's last value, and float64 in the CSV's units ``last``
    (B,), ``truth``, ``snaive`` (B, H). ``window`` defaults to ``max(24, 2 * season)``; ``season``
    to the one of the inferred frequency (1 when the file has no dates).

    ``config()`` stores the resolved arguments and the training statistics (``stats``), so a
    reload, or another file with the same columns, is normalised exactly as training was.

    Example::

        >>> task = ForecastTask("co2.csv", target="co2", horizon=4)     # doctest: +SKIP
        >>> task.sample(32, torch.Generator().manual_seed(0)).targets.shape   # doctest: +SKIP
        torch.Size([32, 4])
    """

    name: ClassVar[str] = "forecast"
    readout: ClassVar[str] = "last"
    validation_metric: ClassVar[str] = "mae"  # lower is better; the loop keeps the best weights
    paper: ClassVar[dict[str, object]] = {
        "source": "time-series forecasting, scored by MASE (Hyndman & Koehler 2006) against seasonal naive",
        "criterion": "none; MASE < 1 and MAE below the naive forecast's on the test windows",
    }

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """A :class:`~lstmkit.tasks.panel.PanelForecastTask` when a panel option is given (many
        series, covariates known ahead, static columns, calendar features, quantiles, backtests)."""
        target = kwargs.get("target", args[1] if len(args) > 1 else None)
        many = isinstance(target, (list, tuple)) or (isinstance(target, str) and "," in target)
        if cls is ForecastTask and (many or any(kwargs.get(k) is not None for k in PANEL_ARGS)):
            from .panel import PanelForecastTask

            for k in ("val_fraction", "test_fraction", "stats"):
                if kwargs.get(k) is not None:
                    raise ValueError(
                        f"{k} is for one series; a panel splits each series by horizon; got {k}={kwargs[k]!r}"
                    )
            kwargs = {k: v for k, v in kwargs.items() if k not in ("val_fraction", "test_fraction", "stats")}
            return PanelForecastTask(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        csv_file: str,
        target: str,
        features: list[str] | None = None,
        window: int | None = None,
        horizon: int = 1,
        date_column: str | None = None,
        fill: str = "interpolate",
        normalize: str = "level",
        season: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        stats: dict[str, Any] | None = None,
        id_column: str | list[str] | None = None,
        static: list[str] | None = None,
        future_features: list[str] | None = None,
        calendar: list[str] | None = None,
        quantiles: list[float] | None = None,
        backtest: int | None = None,
        freq: str | None = None,
        levels: list[list[str]] | None = None,
        val_windows: int | None = None,
        distribution: str | None = None,
    ) -> None:
        if not isinstance(csv_file, (str, os.PathLike)):
            raise TypeError(f"csv_file must be a path; got {csv_file!r}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}")
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < frac < 1.0:
                raise ValueError(f"{name} must be a number in (0, 1); got {frac!r}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1; got {val_fraction} + {test_fraction}")
        self.csv_file = os.fspath(csv_file)
        self.data = read_series(self.csv_file, target, features, date_column, fill)
        self.target, self.features, self.fill, self.normalize = target, list(self.data.features), fill, normalize
        self.date_column = self.data.date_column
        self.season = season_of(self.data.freq) if season is None else check_int("season", season, 1)
        self.window = max(24, 2 * self.season) if window is None else check_int("window", window, 1)
        self.horizon = check_int("horizon", horizon, 1)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.context = self.window + (1 if normalize == "diff" else 0)  # raw rows one window needs
        self.values = np.array(self.data.values, dtype=np.float64)  # (N, F), target first
        self.dates = self.data.dates
        self._splits()
        self._set_stats(stats)
        self._raw = torch.from_numpy(self.values)  # (N, F) float64
        self.input_size, self.output_size = len(self.features), self.horizon
        self._cache: dict[str, Batch] = {}

    def _splits(self) -> None:
        n, H, C = len(self.values), self.horizon, self.context
        self.n_train = int(n * (1.0 - self.val_fraction - self.test_fraction))
        self.n_val_end = int(n * (1.0 - self.test_fraction))
        # origins e: window rows e-C+1..e, targets e+1..e+H, all inside one split
        self.origins = {
            "train": (C - 1, self.n_train - 1 - H),
            "val": (self.n_train - 1, self.n_val_end - 1 - H),
            "test": (self.n_val_end - 1, n - 1 - H),
        }
        if any(hi < lo for lo, hi in self.origins.values()):
            need = math.ceil((C + H) / (1.0 - self.val_fraction - self.test_fraction))
            need = max(need, math.ceil(H / min(self.val_fraction, self.test_fraction)) + 1)
            raise ValueError(
                f"csv_file {self.csv_file!r}: too few rows for window={self.window}, horizon={H}: {n} rows; "
                f"need at least about {need} so that train, validation and test each hold a window"
            )
        m = self.season
        y = self.values[: self.n_train, 0]
        if len(y) <= m:
            raise ValueError(f"season={m} needs more than {m} training rows for MASE; got {len(y)}")
        scale = float(np.abs(y[m:] - y[:-m]).mean())
        self.mase_scale = scale if scale > 0 else 1.0  # in-sample seasonal naive MAE

    def _set_stats(self, stats: dict[str, Any] | None) -> None:
        F = len(self.features)
        if stats is None:
            train = self.values[: self.n_train]
            mean, std = train.mean(axis=0), train.std(axis=0)
            y = train[:, 0]
            scale = float(np.diff(y).std()) if self.normalize == "diff" else float(y.std())
        else:
            if not isinstance(stats, dict) or set(stats) != {"mean", "std", "scale"}:
                raise ValueError(f"stats must be a dict with keys mean, std, scale (as config() stores); got {stats!r}")
            mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
            scale = float(stats["scale"])
            if mean.shape != (F,) or std.shape != (F,):
                raise ValueError(f"stats mean and std must each have {F} values (one per feature)")
        self.mean, self.std = mean, np.where(std > 0, std, 1.0)  # a constant column stays centred, unscaled
        self.scale = scale if scale > 0 else 1.0

    # ------------------------------------------------------------------ transforms (float64)
    def encode(self, raw: Tensor) -> Tensor:
        """Raw windows (B, C, F) in the CSV's units -> model inputs (B, window, F) (module docstring)."""
        mean, std = torch.from_numpy(self.mean).to(raw), torch.from_numpy(self.std).to(raw)
        y = raw[..., 0]  # (B, C)
        if self.normalize == "diff":
            t, others = (y[:, 1:] - y[:, :-1]) / self.scale, raw[:, 1:, 1:]
        elif self.normalize == "level":
            t, others = (y - y[:, -1:]) / self.scale, raw[..., 1:]
        else:
            t, others = (y - mean[0]) / self.scale, raw[..., 1:]
        return torch.cat([t.unsqueeze(-1), (others - mean[1:]) / std[1:]], dim=-1)

    def decode(self, z: Tensor, last: Tensor) -> Tensor:
        """Model outputs (B, H) -> forecasts (B, H) in the CSV's units, given each window's ``y_e`` (B,)."""
        z = z.to(torch.float64) * self.scale
        if self.normalize == "diff":
            return last.unsqueeze(1) + torch.cumsum(z, dim=1)
        if self.normalize == "level":
            return last.unsqueeze(1) + z
        return z + float(self.mean[0])

    def to_targets(self, truth: Tensor, last: Tensor) -> Tensor:
        """Inverse of :meth:`decode`: future values (B, H) -> normalised targets (B, H)."""
        if self.normalize == "diff":
            return (truth - torch.cat([last.unsqueeze(1), truth[:, :-1]], dim=1)) / self.scale
        if self.normalize == "level":
            return (truth - last.unsqueeze(1)) / self.scale
        return (truth - float(self.mean[0])) / self.scale

    # ------------------------------------------------------------------ data
    def raw(self, origins: Tensor) -> Tensor:
        """The C raw rows (B, C, F) float64 in the CSV's units ending at rows ``origins`` (B,)."""
        C = self.context
        return self._raw[origins.unsqueeze(1) - C + 1 + torch.arange(C)]

    def windows(self, origins: Tensor) -> Batch:
        """The windows ending at rows ``origins`` (B,) int64, with their targets and baselines."""
        H, m = self.horizon, self.season
        raw = self.raw(origins)  # (B, C, F)
        k = torch.arange(1, H + 1)
        future = origins.unsqueeze(1) + k  # (B, H)
        truth = self._raw[future, 0]
        last = raw[:, -1, 0]
        back = future - m * torch.div(k + m - 1, m, rounding_mode="floor")  # e+k-m*ceil(k/m)
        snaive = self._raw[back.clamp(min=0), 0]
        inputs = self.encode(raw).to(torch.float32)
        lengths = torch.full((len(origins),), self.window, dtype=torch.int64)
        targets = self.to_targets(truth, last).to(torch.float32)
        extra = {"origin": origins, "last": last, "truth": truth, "snaive": snaive}
        return Batch(inputs, targets, lengths, None, extra)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` random training windows."""
        b = check_batch_size(batch_size)
        lo, hi = self.origins["train"]
        return self.windows(torch.randint(lo, hi + 1, (b,), generator=check_generator(generator)))

    def _split(self, name: str) -> Batch:
        if name not in self._cache:
            lo, hi = self.origins[name]
            self._cache[name] = self.windows(torch.arange(lo, hi + 1))
        return self._cache[name]

    def validation_set(self) -> Batch:
        """Every validation window, in time order (what the loop selects the best weights on)."""
        return self._split("val")

    def test_set(self) -> Batch:
        """Every test window, in time order."""
        return self._split("test")

    # ------------------------------------------------------------------ loss, metrics
    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean squared error in normalised units; prediction (B, H)."""
        check_prediction(prediction, (len(batch), self.horizon), self.name)
        return torch.mean((prediction - batch.targets.to(prediction.device, prediction.dtype)) ** 2)

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss`` and, for the model, ``naive_`` and ``snaive_``: ``mae``, ``rmse``, ``smape``, ``mase``."""
        with torch.no_grad():
            out = {"loss": float(self.loss(prediction.detach(), batch))}
        s = self.series(prediction, batch)
        for prefix, key in (("", "prediction"), ("naive_", "naive"), ("snaive_", "snaive")):
            out.update({prefix + k: v for k, v in self.errors(s[key], s["truth"]).items()})
        return out

    def errors(self, forecast: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        """MASE (the headline), MAE, RMSE and sMAPE (percent) of ``forecast`` against ``truth`` (same shapes)."""
        err = forecast - truth
        denom = np.abs(forecast) + np.abs(truth)
        ratio = np.divide(2.0 * np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
        mae = float(np.abs(err).mean())
        return {"mase": mae / self.mase_scale, "mae": mae, "rmse": float(np.sqrt((err**2).mean())),
                "smape": 100.0 * float(ratio.mean())}  # fmt: skip

    def series(self, prediction: Tensor, batch: Batch) -> dict[str, np.ndarray]:
        """Arrays in the CSV's units: ``origin`` (B,), ``truth``, ``prediction``, ``naive``, ``snaive`` (B, H)."""
        check_prediction(prediction, (len(batch), self.horizon), self.name)
        last = batch.extra["last"]
        return {
            "origin": batch.extra["origin"].numpy().copy(),
            "truth": batch.extra["truth"].numpy().copy(),
            "prediction": self.decode(prediction.detach().cpu(), last).numpy(),
            "naive": last.unsqueeze(1).expand(-1, self.horizon).numpy().copy(),
            "snaive": batch.extra["snaive"].numpy().copy(),
        }

    def describe(self) -> dict[str, object]:
        """What was read and how it is modelled (rows, dates, fill counts, season, normalisation)."""
        return {**self.data.describe(), "features": list(self.features), "season": self.season,
                "window": self.window, "horizon": self.horizon, "normalize": self.normalize}  # fmt: skip

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready, with the resolved choices and the training statistics."""
        return {
            "csv_file": self.csv_file,
            "target": self.target,
            "features": list(self.features[1:]),
            "window": self.window,
            "horizon": self.horizon,
            "date_column": self.date_column,
            "fill": self.fill,
            "normalize": self.normalize,
            "season": self.season,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "stats": {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "scale": self.scale},
        }
