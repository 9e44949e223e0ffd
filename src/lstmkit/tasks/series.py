"""Reading a time series from a CSV file with pandas, the way forecasters expect.

- A date column becomes the index, never a feature unless named in ``features``. It is the
  column given as ``date_column``, else the first whose name is one of :data:`DATE_NAMES`
  (any case). A whole-number column named like ``year`` (e.g. ``1700.0``) reads as yearly dates;
  another all-number column found by its name (``day``: 0, 1, 2, ...) is a row counter, not dates.
- ``features`` chooses the inputs; by default only the target. The target is always first.
- Missing cells are filled by a stated rule (:data:`FILL_RULES`) and counted:
  ``interpolate`` (linear in time; cells before the first or after the last value take the
  nearest value), ``ffill`` (the last value seen; leading rows with no earlier value are
  dropped), ``drop`` (rows with any missing cell are dropped).
- The frequency is inferred from the dates (``pandas.infer_freq``); irregular, repeated or
  unsorted dates are refused. The season (steps per cycle) follows from it (:func:`season_of`).

Every problem is a one-line ``ValueError`` naming the file, what was expected and what came.
pandas is imported only here, and only when a file is read.

Example::

    >>> s = read_series("co2.csv", target="co2")          # doctest: +SKIP
    >>> s.freq, season_of(s.freq), s.filled                # doctest: +SKIP
    ('W-SAT', 52, {'co2': 59})
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FILL_RULES = ("interpolate", "ffill", "drop")
"""How missing cells are handled (see the module docstring)."""

DATE_NAMES = ("date", "datetime", "time", "timestamp", "ds", "period", "month", "week", "day", "year")
"""Column names recognised as the date column when none is given (compared in lower case)."""

_SEASONS = {"W": 52, "D": 7, "B": 5, "H": 24, "BH": 8, "MIN": 60, "T": 60, "S": 60}
_SEASONS.update({k: 12 for k in ("M", "ME", "MS", "BM", "BME", "BMS", "SM", "SMS")})
_SEASONS.update({k: 4 for k in ("Q", "QE", "QS", "BQ", "BQE", "BQS")})
_SEASONS.update({k: 1 for k in ("A", "Y", "YE", "YS", "AS", "BA", "BY", "BYE", "BYS")})


@dataclass(frozen=True)
class Series:
    """A series read from a CSV file (N rows after the fill rule, F features, target first)."""

    values: np.ndarray  # (N, F) float64, no missing values, columns in `features` order
    features: list[str]  # column names of `values`; features[0] is the target
    dates: Any  # pandas.DatetimeIndex (N,) or None when the file has no date column
    date_column: str | None  # the column the dates came from, or None
    freq: str | None  # pandas frequency string inferred from the dates, or None
    rows_read: int  # data rows in the file
    filled: dict[str, int] = field(default_factory=dict)  # cells filled per feature (interpolate, ffill)
    dropped: int = 0  # rows dropped by the fill rule (drop; leading rows for ffill)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary: rows, dates, frequency and what the fill rule did."""
        out: dict[str, object] = {"rows_read": self.rows_read, "rows_used": len(self.values)}
        if self.dates is not None:
            out.update(
                date_column=self.date_column,
                first=str(self.dates[0].date()),
                last=str(self.dates[-1].date()),
                freq=self.freq,
            )
        out.update(filled=dict(self.filled), dropped=self.dropped)
        return out


def season_of(freq: str | None) -> int:
    """Steps per seasonal cycle for a pandas frequency: weekly 52, daily 7, monthly 12, quarterly 4,
    hourly 24, yearly and unknown 1 (no season); a multiple (``2W``) divides it.

    Example::

        >>> season_of("W-SAT"), season_of("MS"), season_of("YS-JAN"), season_of(None)
        (52, 12, 1, 1)
    """
    if not freq:
        return 1
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(freq)
    base = str(offset.rule_code).split("-")[0].upper()
    season = _SEASONS.get(base, 1)
    n = max(1, int(getattr(offset, "n", 1)))
    return max(1, round(season / n))


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("reading a CSV series needs pandas: pip install 'lstmkit[forecast]'") from None
    return pandas


def _read(path: str) -> Any:
    pd = _pandas()
    where = f"csv_file {path!r}"
    if not os.path.exists(path):
        raise ValueError(f"{where}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"{where}: not a regular file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = [c.strip() for c in next(csv.reader(fh), [])]
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{where}: empty (expected a header row and data rows)") from None
    except (pd.errors.ParserError, csv.Error) as err:
        first = str(err).strip().splitlines()[-1]
        raise ValueError(f"{where}: not valid CSV ({first})") from None
    if len(set(header)) != len(header):
        raise ValueError(f"{where}: repeated column names in the header {header}")
    frame.columns = header
    if len(frame) == 0:
        raise ValueError(f"{where}: no data rows (expected a header row and data rows)")
    frame = frame.fillna("")
    return frame.apply(lambda col: col.str.strip())


def _numbers(frame: Any, name: str, where: str) -> np.ndarray:
    """A column as float64 with NaN for empty cells; a non-number names its row."""
    pd = _pandas()
    text = frame[name]
    values = np.array(pd.to_numeric(text.where(text != ""), errors="coerce"), dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & (text != "").to_numpy())
    bad = bad[~text.iloc[bad].str.lower().isin(["nan", "na", "n/a", "null", "none"]).to_numpy()]
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{where}: data row {i + 2}, column {name!r}: {text.iloc[i]!r} is not a number")
    values[~np.isfinite(values)] = np.nan
    if np.isnan(values).all():
        raise ValueError(f"{where}: column {name!r} holds no numbers (all {len(values)} cells empty)")
    return values


def _find_date_column(columns: list[str], date_column: str | None, where: str) -> str | None:
    if date_column is not None:
        if date_column not in columns:
            raise ValueError(f"{where}: no date column {date_column!r}; columns are {columns}")
        return date_column
    return next((c for c in columns if c.lower() in DATE_NAMES), None)


def _parse_dates(frame: Any, name: str, where: str, explicit: bool) -> Any:
    """The column as a DatetimeIndex; None for a recognised name holding plain counters (0, 1, 2, ...)
    when the column was not named explicitly."""
    pd = _pandas()
    text = frame[name]
    empty = np.flatnonzero((text == "").to_numpy())
    if len(empty):
        raise ValueError(f"{where}: date column {name!r} is empty at data row {int(empty[0]) + 2}")
    numeric = pd.to_numeric(text, errors="coerce")
    if "year" in name.lower() and numeric.notna().all() and (numeric == numeric.round()).all():
        return pd.DatetimeIndex(pd.to_datetime(numeric.astype(int).astype(str), format="%Y"), name=name)
    if not explicit and numeric.notna().all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{where}: date column {name!r}, data row {i + 2}: {text.iloc[i]!r} is not a date")
    return pd.DatetimeIndex(dates, name=name)


def _infer_freq(dates: Any, name: str, where: str) -> str:
    """The dates' frequency; repeated, unsorted or unevenly spaced dates raise one line."""
    pd = _pandas()
    steps = np.diff(dates.asi8)
    if len(steps) and (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        what = "repeats" if steps[i] == 0 else "goes back in time"
        raise ValueError(
            f"{where}: date column {name!r} {what} at data row {i + 3} ({dates[i + 1].date()} after "
            f"{dates[i].date()}); expected increasing dates"
        )
    if len(dates) < 3:
        raise ValueError(f"{where}: {len(dates)} dates are too few to infer a frequency (need at least 3)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(dates)
    if freq is None:
        gaps = pd.Series(dates[1:] - dates[:-1])
        first = gaps.iloc[0]
        i = int(np.flatnonzero((gaps != first).to_numpy())[0])
        raise ValueError(
            f"{where}: date column {name!r} is irregular (no single frequency): a step of {first} at first, "
            f"{gaps.iloc[i]} before data row {i + 3} ({dates[i + 1].date()}); expected evenly spaced dates"
        )
    return str(getattr(freq, "freqstr", freq))


def read_series(
    path: str | os.PathLike[str],
    target: str,
    features: list[str] | None = None,
    date_column: str | None = None,
    fill: str = "interpolate",
) -> Series:
    """Read ``target`` (and ``features``) from the CSV file at ``path``; see the module docstring.

    Returns a :class:`Series` with values (N, F), target first. Raises a one-line ValueError for
    a missing file or column, a non-number, an all-empty column, bad or irregular dates, or a
    ``fill`` rule outside :data:`FILL_RULES`.
    """
    path = os.fspath(path)
    where = f"csv_file {path!r}"
    if fill not in FILL_RULES:
        raise ValueError(f"fill must be one of {FILL_RULES}; got {fill!r}")
    frame = _read(path)
    columns = list(frame.columns)
    date_name = _find_date_column(columns, date_column, where)
    if not isinstance(target, str) or target not in columns:
        raise ValueError(f"{where}: no column {target!r}; columns are {columns}")
    if features is None:
        features = []
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        raise TypeError(f"features must be a list of column names; got {features!r}")
    missing = [f for f in features if f not in columns]
    if missing:
        raise ValueError(f"{where}: no column(s) {missing}; columns are {columns}")
    names = list(dict.fromkeys([target, *features]))
    dates = _parse_dates(frame, date_name, where, date_column is not None) if date_name is not None else None
    date_name = date_name if dates is not None else None
    freq = _infer_freq(dates, date_name, where) if dates is not None and date_name is not None else None
    columns_data = []
    for name in names:
        if name == date_name and dates is not None:  # the date asked for as a feature: decimal years
            columns_data.append((dates.year + (dates.day_of_year - 1) / 365.25).to_numpy(dtype=np.float64))
        else:
            columns_data.append(_numbers(frame, name, where))
    values = np.stack(columns_data, axis=1)  # (N, F)
    values, dates, filled, dropped = _fill(values, dates, names, fill)
    if len(values) == 0:
        raise ValueError(f"{where}: no rows left after fill={fill!r}")
    return Series(values, names, dates, date_name, freq, len(frame), filled, dropped)


def _fill(values: np.ndarray, dates: Any, names: list[str], rule: str) -> tuple[np.ndarray, Any, dict[str, int], int]:
    pd = _pandas()
    holes = np.isnan(values)  # (N, F)
    counts = {n: int(holes[:, k].sum()) for k, n in enumerate(names)}
    if not holes.any():
        return values, dates, {n: 0 for n in names}, 0
    if rule == "drop":
        keep = ~holes.any(axis=1)
        return values[keep], (dates[keep] if dates is not None else None), {n: 0 for n in names}, int((~keep).sum())
    frame = pd.DataFrame(values, index=dates)
    if rule == "interpolate":
        method = "time" if dates is not None else "linear"
        out = np.array(frame.interpolate(method=method, limit_direction="both"), dtype=np.float64)
        return out, dates, counts, 0
    out = np.array(frame.ffill(), dtype=np.float64)
    lead = int(np.isnan(out).any(axis=1).argmin())  # rows before every column has a value
    filled = {n: int(holes[lead:, k].sum()) for k, n in enumerate(names)}
    return out[lead:], (dates[lead:] if dates is not None else None), filled, lead
