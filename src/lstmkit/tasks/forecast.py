"""Forecasting a column of a CSV time series, ``horizon`` steps ahead (default: the next row).

Rows are time steps in file order. The first ``1 - val_fraction - test_fraction`` of the rows
train, the next ``val_fraction`` validate, the last ``test_fraction`` test (chronological, no
shuffling across the split). Every feature is normalised with the mean and standard deviation of
the training rows only. A window of ``window`` rows predicts the target ``horizon`` rows after
its last row (h = horizon, w = window)::

    inputs  z[r - h - w + 1 .. r - h, features]     z = (value - mean) / std   (training stats)
    target  z[r, target]                            r in the split's rows, r >= w + h - 1

Metrics are reported in the CSV's own units, next to the naive forecast "the future equals the
last value seen" (the target's last value in the window) on the same windows.
"""

from __future__ import annotations

import csv
import math
import os
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file, or a one-line ValueError naming the file and problem."""
    if not os.path.exists(path):
        raise ValueError(f"csv_file {path!r}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"csv_file {path!r}: not a regular file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise ValueError(f"csv_file {path!r}: not UTF-8 text") from None
    except csv.Error as err:
        raise ValueError(f"csv_file {path!r}: not valid CSV ({err})") from None
    if not rows:
        raise ValueError(f"csv_file {path!r}: empty (expected a header row and data rows)")
    header = [name.strip() for name in rows[0]]
    if len(set(header)) != len(header):
        raise ValueError(f"csv_file {path!r}: repeated column names in the header {header}")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"csv_file {path!r}: data row {line} has {len(row)} fields; the header has {len(header)}")
    return header, rows[1:]


class ForecastTask(Task):
    """Predict ``target`` ``horizon`` rows ahead from the last ``window`` rows of a CSV time series.

    Inputs (B, window, F) float32, normalised features (the target is always one of them);
    targets (B, 1) the normalised next target value; readout "last": the model emits (B, 1).
    ``batch.extra`` holds ``row`` (B,) the 0-based data row of each target, ``truth`` (B,) its
    value and ``last`` (B,) the target's last value in the window (both float64, original units).

    Loss: MSE in normalised units. Metrics (original units): ``mae``, ``rmse``, and the naive
    last-value forecast's ``naive_mae``, ``naive_rmse`` on the same windows. No success
    criterion. :meth:`validation_set` gives the validation windows; :meth:`series` returns numpy
    arrays (row, truth, prediction, naive) for plotting.

    ``config()`` stores the resolved feature list and the training mean/std, so a reload
    normalises exactly as training did.

    Example::

        >>> task = ForecastTask("prices.csv", target="close", window=24)  # doctest: +SKIP
        >>> task.sample(32, torch.Generator().manual_seed(0)).inputs.shape  # doctest: +SKIP
        torch.Size([32, 24, 5])
    """

    name: ClassVar[str] = "forecast"
    readout: ClassVar[str] = "last"
    paper: ClassVar[dict[str, object]] = {
        "source": "one-step-ahead time-series forecasting; compared with the naive last-value forecast",
        "criterion": "none; beat the naive forecast's MAE/RMSE on the test windows",
    }

    def __init__(
        self,
        csv_file: str,
        target: str,
        features: list[str] | None = None,
        window: int = 24,
        horizon: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        if not isinstance(csv_file, (str, os.PathLike)):
            raise TypeError(f"csv_file must be a path; got {csv_file!r}")
        self.csv_file = os.fspath(csv_file)
        self.window = check_int("window", window, 1)
        self.horizon = check_int("horizon", horizon, 1)
        self._first = self.window + self.horizon - 1  # first row that can be a target
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < frac < 1.0:
                raise ValueError(f"{name} must be a number in (0, 1); got {frac!r}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1; got {val_fraction} + {test_fraction}")
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        where = f"csv_file {self.csv_file!r}"

        header, rows = _read_csv(self.csv_file)
        if not isinstance(target, str) or target not in header:
            raise ValueError(f"{where}: no column {target!r}; columns are {header}")
        self.target = target
        if features is None:
            numeric = [c for j, c in enumerate(header) if all(_number(r[j]) is not None for r in rows)]
            features = numeric if target in numeric else [target, *numeric]
        else:
            if isinstance(features, str) or not all(isinstance(f, str) for f in features):
                raise TypeError(f"features must be a list of column names; got {features!r}")
            missing = [f for f in features if f not in header]
            if missing:
                raise ValueError(f"{where}: no column(s) {missing}; columns are {header}")
            features = list(dict.fromkeys(features))
            if target not in features:
                features = [target, *features]
        self.features = features
        cols = [header.index(f) for f in features]
        data = np.empty((len(rows), len(features)), dtype=np.float64)  # (N, F)
        for i, row in enumerate(rows):
            for k, j in enumerate(cols):
                value = _number(row[j])
                if value is None:
                    raise ValueError(f"{where}: data row {i + 2}, column {header[j]!r}: {row[j]!r} is not a number")
                data[i, k] = value
        self.data = data
        self.target_index = features.index(target)

        n = len(rows)
        self.n_train = int(n * (1.0 - self.val_fraction - self.test_fraction))
        self.n_val_end = int(n * (1.0 - self.test_fraction))
        # every split needs one window: the first target row of the train split is `window + horizon - 1`
        if self.n_train <= self._first or self.n_val_end <= self.n_train or n <= self.n_val_end:
            need = math.ceil((self._first + 1) / (1.0 - self.val_fraction - self.test_fraction))
            raise ValueError(
                f"{where}: too few rows for window={self.window}, horizon={self.horizon}: {n} data rows; "
                "need at least about "
                f"{max(need, 3)} so that train, validation and test each hold a window"
            )

        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (as stored by config()) or both left out")
        if mean is None:
            train = data[: self.n_train]
            mean_a, std_a = train.mean(axis=0), train.std(axis=0)
        else:
            mean_a, std_a = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
            if mean_a.shape != (len(features),) or std_a.shape != (len(features),):
                raise ValueError(f"mean and std must each have {len(features)} values (one per feature)")
        std_a = np.where(std_a > 0, std_a, 1.0)  # a constant training column stays centred, unscaled
        self.mean, self.std = mean_a, std_a
        self._z = torch.from_numpy((data - mean_a) / std_a).to(torch.float32)  # (N, F)
        self.input_size = len(features)
        self.output_size = 1
        self._test: Batch | None = None
        self._val: Batch | None = None

    # ------------------------------------------------------------------ data
    def _windows(self, rows: Tensor) -> Batch:
        end = rows - self.horizon  # last input row of each window
        offsets = end.unsqueeze(1) - self.window + 1 + torch.arange(self.window)  # (B, window)
        inputs = self._z[offsets]  # (B, window, F)
        targets = self._z[rows, self.target_index].unsqueeze(1)  # (B, 1)
        index = rows.numpy()
        last = torch.from_numpy(self.data[index - self.horizon, self.target_index])  # (B,) float64, original units
        truth = torch.from_numpy(self.data[index, self.target_index])
        lengths = torch.full((len(rows),), self.window, dtype=torch.int64)
        return Batch(inputs, targets, lengths, None, {"row": rows, "last": last, "truth": truth})

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` random training windows (target rows ``window + horizon - 1 .. n_train - 1``)."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        return self._windows(torch.randint(self._first, self.n_train, (b,), generator=gen))

    def validation_set(self) -> Batch:
        """Every window whose target row lies in the validation split, in time order."""
        if self._val is None:
            self._val = self._windows(torch.arange(self.n_train, self.n_val_end))
        return self._val

    def test_set(self) -> Batch:
        """Every window whose target row lies in the test split, in time order."""
        if self._test is None:
            self._test = self._windows(torch.arange(self.n_val_end, len(self.data)))
        return self._test

    # ------------------------------------------------------------------ loss, metrics, plotting
    def denormalize(self, values: Tensor) -> np.ndarray:
        """Normalised target values (any shape) back to the CSV's units: ``z * std + mean``."""
        z = values.detach().to("cpu", torch.float64).numpy()
        return z * self.std[self.target_index] + self.mean[self.target_index]

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean squared error in normalised units; prediction (B, 1)."""
        check_prediction(prediction, (len(batch), 1), self.name)
        return torch.mean((prediction - batch.targets.to(prediction.device, prediction.dtype)) ** 2)

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss`` (normalised MSE); ``mae``, ``rmse``, ``naive_mae``, ``naive_rmse`` in original units."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
        s = self.series(prediction, batch)
        err, naive = s["prediction"] - s["truth"], s["naive"] - s["truth"]
        return {
            "loss": loss,
            "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())),
            "naive_mae": float(np.abs(naive).mean()),
            "naive_rmse": float(np.sqrt((naive**2).mean())),
        }

    def series(self, prediction: Tensor, batch: Batch) -> dict[str, np.ndarray]:
        """Arrays for a plot, original units, one entry per window: ``row``, ``truth``, ``prediction``, ``naive``."""
        check_prediction(prediction, (len(batch), 1), self.name)
        return {
            "row": batch.extra["row"].numpy().copy(),
            "truth": batch.extra["truth"].numpy().astype(np.float64),
            "prediction": self.denormalize(prediction[:, 0]),
            "naive": batch.extra["last"].numpy().astype(np.float64),
        }

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready, with the resolved features and the training mean/std."""
        return {
            "csv_file": self.csv_file,
            "target": self.target,
            "features": list(self.features),
            "window": self.window,
            "horizon": self.horizon,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }
