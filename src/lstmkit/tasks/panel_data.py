"""Reading many time series (a panel) from one CSV file: long or wide format, with pandas.

- **Long format** (one row per series and date, as the forecasting libraries write it:
  ``unique_id, ds, y``): ``id_columns`` name the series (several columns are joined with
  ``" / "``), ``date_column`` the dates, ``target`` the value. Series may have unequal lengths and
  their own start dates. Rows need not be sorted: each series is put in date order and the number
  of series that were not is reported (``reordered``). A repeated (id, date) pair is an error.
- **Wide format** (one column per series): no ``id_columns`` and ``target`` a list of columns;
  each column becomes one series named after it.
- **Dates** parse as pandas does, plus ``1998 Q1`` / ``1998Q1`` quarters. The frequency is
  ``freq`` when given, else the one pandas infers for most series. Each series is put on that
  grid from its first to its last date: missing dates become missing rows (``dates_added``).
  A date off the grid is an error naming the series and the date.
- **Missing values** (and added dates) follow ``fill`` per series, as for one series
  (:mod:`lstmkit.tasks.series`): ``interpolate`` (linear; the ends take the nearest value),
  ``ffill`` (leading rows with no value dropped), ``drop`` (rows with a missing cell dropped).
- **Static columns** (``static``) must hold one value per series; their values become integer
  codes (1, 2, ...; 0 is kept for a value unseen in training) for learned embeddings. The series
  id is always the first static code.

Every problem is a one-line ValueError naming the file, the series and the date where it helps.

Example::

    >>> p = read_panel("tourism.csv", "Trips", ["Region", "Purpose"], "Quarter")   # doctest: +SKIP
    >>> len(p.ids), p.freq, p.report["dates_added"]                               # doctest: +SKIP
    (304, 'QS-OCT', 0)
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .series import FILL_RULES, _numbers, _pandas, _read

_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)


@dataclass(frozen=True)
class Panel:
    """S series stored end to end: series ``i`` is ``values[starts[i]:starts[i+1]]``."""

    ids: list[str]  # series names, in order
    values: np.ndarray  # (N, F) float64, columns in `columns` order, no missing values
    starts: np.ndarray  # (S + 1,) int64 offsets of each series in `values`
    dates: Any  # (N,) datetime64[ns] numpy array, or None when the file has no date column
    columns: list[str]  # target first, then the past-only features, then the future-known ones
    static: np.ndarray  # (S, K) int64 codes: the series id first, then one per static column
    static_names: list[str]  # names of the K static codes ("id" first)
    freq: str | None  # pandas frequency of the grid, or None without dates
    report: dict[str, Any] = field(default_factory=dict)  # rows, series, what was filled/added/dropped
    levels: list[list[str]] = field(default_factory=list)  # text of each static code (ids first), sorted

    def cut(self, ends: np.ndarray) -> Panel:
        """The panel with series i cut after its row ``ends[i]`` (0-based, >= 0): nothing later is kept."""
        ends = np.asarray(ends, dtype=np.int64)
        if ends.shape != (len(self.ids),) or (ends < 0).any() or (ends >= self.lengths).any():
            raise ValueError(f"ends must be (S,) = ({len(self.ids)},) rows within each series; got {ends.tolist()}")
        rows = np.concatenate([np.arange(s, s + e + 1) for s, e in zip(self.starts[:-1], ends, strict=True)])
        starts = np.concatenate([[0], np.cumsum(ends + 1)]).astype(np.int64)
        dates = self.dates[rows] if self.dates is not None else None
        return Panel(self.ids, self.values[rows], starts, dates, self.columns, self.static, self.static_names,
                     self.freq, dict(self.report), self.levels)  # fmt: skip

    @property
    def lengths(self) -> np.ndarray:
        """(S,) rows per series."""
        return np.diff(self.starts)


def day_text(date: Any) -> str:
    """A date as ISO text, without the time when it is midnight."""
    text = str(np.datetime64(date, "s")).replace("T", " ")
    return text[:10] if text.endswith("00:00:00") else text


def _parse_panel_dates(text: Any, name: str, where: str) -> np.ndarray:
    """(N,) datetime64[ns]; quarters like ``1998 Q1`` included; a bad cell names its data row."""
    pd = _pandas()
    quarter = text.str.extract(_QUARTER)
    is_q = quarter[0].notna().to_numpy()
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    if is_q.any():
        years = quarter[0][is_q].astype(int).to_numpy()
        months = (quarter[1][is_q].astype(int).to_numpy() - 1) * 3 + 1
        out[is_q] = pd.to_datetime({"year": years, "month": months, "day": 1}).to_numpy(dtype="datetime64[ns]")
    rest = ~is_q
    if rest.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(text[rest], errors="coerce", format="mixed", utc=True)
        out[rest] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    bad = np.flatnonzero(np.isnat(out))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{where}: date column {name!r}, data row {i + 2}: {text.iloc[i]!r} is not a date")
    return out


def _infer_panel_freq(dates: np.ndarray, starts: np.ndarray, ids: list[str], where: str) -> str:
    """The frequency pandas infers for most series (series with gaps infer none)."""
    pd = _pandas()
    found: dict[str, int] = {}
    for i in range(len(ids)):
        d = dates[starts[i] : starts[i + 1]]
        if len(d) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = pd.infer_freq(pd.DatetimeIndex(d))
            if f is not None:
                found[f] = found.get(f, 0) + 1
    if not found:
        raise ValueError(
            f"{where}: cannot infer a frequency (no series has 3 or more evenly spaced dates); "
            "give it, e.g. --task-arg freq=MS"
        )
    return max(found, key=lambda k: found[k])


def _static_codes(frame: Any, order: np.ndarray, starts: np.ndarray, ids: list[str], names: list[str],
                  where: str) -> tuple[np.ndarray, list[list[str]]]:  # fmt: skip
    """(S, K) codes 1.. per static column (sorted levels) and the levels; constant per series or error."""
    codes = np.zeros((len(ids), len(names)), dtype=np.int64)
    levels: list[list[str]] = []
    for k, name in enumerate(names):
        col = frame[name].to_numpy()[order]
        firsts = col[starts[:-1]]
        for i in range(len(ids)):
            vals = col[starts[i] : starts[i + 1]]
            if (vals != firsts[i]).any():
                other = vals[vals != firsts[i]][0]
                raise ValueError(
                    f"{where}: static column {name!r} changes within series {ids[i]!r} "
                    f"({firsts[i]!r} and {other!r}); expected one value per series"
                )
        lv = sorted(set(firsts.tolist()))
        index = {v: j + 1 for j, v in enumerate(lv)}
        codes[:, k] = [index[v] for v in firsts]
        levels.append(lv)
    return codes, levels


def read_panel(
    path: str | os.PathLike[str],
    target: str | list[str],
    id_columns: list[str] | None = None,
    date_column: str | None = None,
    features: list[str] | None = None,
    future_features: list[str] | None = None,
    static: list[str] | None = None,
    fill: str = "interpolate",
    freq: str | None = None,
) -> tuple[Panel, list[list[str]]]:
    """Read a panel from the CSV file at ``path`` (see the module docstring).

    Returns the :class:`Panel` and the levels of each static column (the id's levels first are
    the series names). Raises a one-line ValueError on any problem.
    """
    pd = _pandas()
    path = os.fspath(path)
    where = f"csv_file {path!r}"
    if fill not in FILL_RULES:
        raise ValueError(f"fill must be one of {FILL_RULES}; got {fill!r}")
    frame = _read(path)
    columns = list(frame.columns)
    targets = [target] if isinstance(target, str) else list(target)
    past, future, static = list(features or []), list(future_features or []), list(static or [])
    wanted = targets + past + future + static + list(id_columns or [])
    if date_column is not None:
        wanted.append(date_column)
    missing = [c for c in dict.fromkeys(wanted) if c not in columns]
    if missing:
        raise ValueError(f"{where}: no column(s) {missing}; columns are {columns}")
    if id_columns:
        if len(targets) != 1:
            raise ValueError(f"{where}: long format (--id) takes one target column; got {targets}")
        frame = frame.copy()
        frame["__id__"] = frame[list(id_columns)].agg(" / ".join, axis=1)
    else:
        if past or future or static:
            raise ValueError(f"{where}: wide format (one column per series) takes no features or static columns")
        keep = [date_column] if date_column is not None else []
        for t in targets:
            _numbers(frame, t, where)  # a non-number names its row before the reshape
        frame = frame.melt(id_vars=keep, value_vars=targets, var_name="__id__", value_name="__y__")
        targets = ["__y__"]
    ids_text = frame["__id__"].to_numpy()
    if date_column is not None:
        empty = np.flatnonzero((frame[date_column] == "").to_numpy())
        if len(empty):
            raise ValueError(f"{where}: date column {date_column!r} is empty at data row {int(empty[0]) + 2}")
        dates = _parse_panel_dates(frame[date_column], date_column, where)
    else:
        dates = None
    names = targets + past + future
    values = np.stack([_numbers(frame, c, where) for c in names], axis=1)  # (N, F) NaN where empty
    rows = np.arange(len(frame))
    # group by series (first appearance order kept stable, then sorted by name), dates ascending
    order = np.lexsort((dates, ids_text) if dates is not None else (rows, ids_text))
    reordered = 0
    sorted_ids = ids_text[order]
    cuts = np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1
    starts = np.concatenate([[0], cuts, [len(order)]]).astype(np.int64)
    id_list = [str(sorted_ids[s]) for s in starts[:-1]]
    if dates is not None:
        d = dates[order]
        for i, name in enumerate(id_list):
            seg_rows = order[starts[i] : starts[i + 1]]
            if (np.diff(seg_rows) < 0).any():
                reordered += 1
            ds = d[starts[i] : starts[i + 1]]
            rep = np.flatnonzero(ds[1:] == ds[:-1])
            if len(rep):
                j = int(rep[0])
                r1, r2 = sorted((int(seg_rows[j]) + 2, int(seg_rows[j + 1]) + 2))
                raise ValueError(
                    f"{where}: series {name!r} has two rows for date {day_text(ds[j])} (data rows {r1} and {r2}); "
                    "expected one row per series and date"
                )
    report: dict[str, Any] = {"rows_read": len(frame), "series_read": len(id_list), "reordered": reordered}
    pieces_v, pieces_d, counts = [], [], {"dates_added": 0, "dropped": 0}
    filled = {c: 0 for c in (names if id_columns else ["value"])}
    if dates is not None:
        freq = freq or _infer_panel_freq(dates[order], starts, id_list, where)
    for i, name in enumerate(id_list):
        sel = order[starts[i] : starts[i + 1]]
        v = values[sel]
        dd: Any = None
        if dates is not None:
            dd = dates[sel]
            grid = pd.date_range(dd[0], dd[-1], freq=freq).to_numpy(dtype="datetime64[ns]")
            pos = np.searchsorted(grid, dd)
            off = np.flatnonzero((pos >= len(grid)) | (grid[np.minimum(pos, len(grid) - 1)] != dd))
            if len(off):
                raise ValueError(
                    f"{where}: series {name!r}: date {day_text(dd[int(off[0])])} is not on the {freq} grid "
                    f"starting {str(dd[0])[:10]}; expected evenly spaced dates"
                )
            full = np.full((len(grid), v.shape[1]), np.nan)
            full[pos] = v
            counts["dates_added"] += len(grid) - len(dd)
            v, dd = full, grid
        v, dd, fcount, dropped = _fill_one(v, dd, fill)
        counts["dropped"] += dropped
        for k, c in enumerate(filled):
            filled[c] += fcount[k] if k < len(fcount) else 0
        pieces_v.append(v)
        pieces_d.append(dd)
    lengths = np.array([len(v) for v in pieces_v], dtype=np.int64)
    new_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes, levels = _static_codes(frame, order, starts, id_list, static, where)
    id_codes = np.arange(1, len(id_list) + 1, dtype=np.int64)[:, None]
    all_values = np.concatenate(pieces_v) if pieces_v else np.zeros((0, len(names)))
    all_dates = np.concatenate(pieces_d) if dates is not None else None
    report.update(counts, filled=filled)
    col_names = [target if isinstance(target, str) else "value", *past, *future]
    panel = Panel(id_list, all_values, new_starts, all_dates, col_names, np.concatenate([id_codes, codes], axis=1),
                  ["id", *static], freq, report, [id_list, *levels])  # fmt: skip
    return panel, [id_list, *levels]


def future_dates(last: Any, steps: int, freq: str) -> np.ndarray:
    """(steps,) datetime64[ns]: the ``steps`` dates after ``last`` on the ``freq`` grid."""
    pd = _pandas()
    return pd.date_range(last, periods=steps + 1, freq=freq)[1:].to_numpy(dtype="datetime64[ns]")


def read_future(path: str | os.PathLike[str], id_columns: list[str], date_column: str, columns: list[str],
                ids: list[str], dates: np.ndarray) -> np.ndarray:  # fmt: skip
    """(S, H, len(columns)) float64: the future-known ``columns`` of series ``ids`` at ``dates``
    (S, H) datetime64, from a long-format CSV with the training file's id and date columns.

    A series with a date missing from the file or an empty cell there is a one-line ValueError
    naming the series, the dates and how many other series lack some; so is a repeated
    (series, date) row.
    """
    path = os.fspath(path)
    where = f"future file {path!r}"
    try:
        frame = _read(path)
    except ValueError as err:
        raise ValueError(str(err).replace(f"csv_file {path!r}", where)) from None
    missing = [c for c in dict.fromkeys([*id_columns, date_column, *columns]) if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: no column(s) {missing}; columns are {list(frame.columns)}")
    names = frame[list(id_columns)].agg(" / ".join, axis=1).to_numpy()
    when = _parse_panel_dates(frame[date_column], date_column, where).view("int64")
    pd = _pandas()
    cells = np.stack(
        [np.array(pd.to_numeric(frame[c].where(frame[c] != ""), errors="coerce"), dtype=np.float64) for c in columns],
        axis=1,
    )  # (N, Fu) NaN where empty or not a number
    index: dict[tuple[str, int], int] = {}
    for r, key in enumerate(zip(names.tolist(), when.tolist(), strict=True)):
        if key in index:
            raise ValueError(
                f"{where}: series {key[0]!r} has two rows for date {day_text(np.datetime64(key[1], 'ns'))} "
                f"(data rows {index[key] + 2} and {r + 2}); expected one row per series and date"
            )
        index[key] = r
    out = np.full((len(ids), dates.shape[1], len(columns)), np.nan)
    lacking: list[tuple[int, list[str]]] = []
    for i, name in enumerate(ids):
        gaps = []
        for h, d in enumerate(dates[i].astype("datetime64[ns]").view("int64").tolist()):
            found = index.get((name, d))
            if found is not None:
                out[i, h] = cells[found]
            if found is None or np.isnan(out[i, h]).any():
                gaps.append(day_text(dates[i, h]))
        if gaps:
            lacking.append((i, gaps))
    if lacking:
        i, gaps = lacking[0]
        more = f"; {len(lacking) - 1} more series lack some" if len(lacking) > 1 else ""
        raise ValueError(
            f"{where}: series {ids[i]!r} has no value of {columns} for {', '.join(gaps)} (its {dates.shape[1]} "
            f"forecast dates run {day_text(dates[i, 0])} to {day_text(dates[i, -1])}){more}"
        )
    return out


def _fill_one(v: np.ndarray, dates: Any, rule: str) -> tuple[np.ndarray, Any, list[int], int]:
    """One series' missing cells by ``rule``: (values, dates, cells filled per column, rows dropped)."""
    holes = np.isnan(v)
    if not holes.any():
        return v, dates, [0] * v.shape[1], 0
    if rule == "drop":
        keep = ~holes.any(axis=1)
        return v[keep], (dates[keep] if dates is not None else None), [0] * v.shape[1], int((~keep).sum())
    out = v.copy()
    if rule == "interpolate":
        x = np.arange(len(v))
        for k in range(v.shape[1]):
            ok = ~holes[:, k]
            if ok.any():
                out[:, k] = np.interp(x, x[ok], v[ok, k])  # ends take the nearest value
        counts = [int(holes[:, k].sum()) if (~holes[:, k]).any() else 0 for k in range(v.shape[1])]
        keep = ~np.isnan(out).any(axis=1)  # a column with no value at all in this series: rows dropped
        return out[keep], (dates[keep] if dates is not None else None), counts, int((~keep).sum())
    for t in range(1, len(out)):  # ffill
        row = np.isnan(out[t])
        out[t, row] = out[t - 1, row]
    lead = int(np.argmax(~np.isnan(out).any(axis=1))) if (~np.isnan(out).any(axis=1)).any() else len(out)
    counts = [int(holes[lead:, k].sum()) for k in range(v.shape[1])]
    return out[lead:], (dates[lead:] if dates is not None else None), counts, lead
