"""Reading a forecasting CSV: dates as the index, feature selection, fill rules, frequency and
season, and bad files refused with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from lstmkit.tasks.series import read_series, season_of  # noqa: E402


def write(tmp_path: Path, text: str, name: str = "s.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def weekly(n: int, start: str = "2020-01-04") -> list[str]:
    return [d.date().isoformat() for d in pd.date_range(start, periods=n, freq="W-SAT")]


def test_iso_dates_become_the_index_not_a_feature(tmp_path: Path) -> None:
    days = weekly(6)
    rows = [f"{d},{i * 1.5},{10 - i}" for i, d in enumerate(days)]
    s = read_series(write(tmp_path, "date,y,x\n" + "\n".join(rows) + "\n"), "y")
    assert s.features == ["y"] and s.values.shape == (6, 1)
    assert s.date_column == "date" and s.freq == "W-SAT" and season_of(s.freq) == 52
    assert [d.date().isoformat() for d in s.dates] == days
    np.testing.assert_array_equal(s.values[:, 0], [0.0, 1.5, 3.0, 4.5, 6.0, 7.5])


def test_year_column_of_floats_reads_as_yearly_dates(tmp_path: Path) -> None:
    rows = [f"{1700 + i}.0,{i * 2}.0" for i in range(5)]
    s = read_series(write(tmp_path, "YEAR,SUNACTIVITY\n" + "\n".join(rows) + "\n"), "SUNACTIVITY")
    assert s.date_column == "YEAR" and s.features == ["SUNACTIVITY"]
    assert [d.year for d in s.dates] == [1700, 1701, 1702, 1703, 1704]
    assert season_of(s.freq) == 1  # yearly: no season


def test_explicit_date_column_monthly_and_counters(tmp_path: Path) -> None:
    months = [d.strftime("%Y-%m") for d in pd.date_range("2001-01-01", periods=5, freq="MS")]
    path = write(tmp_path, "when,v\n" + "\n".join(f"{m},{i}" for i, m in enumerate(months)) + "\n")
    assert read_series(path, "v").dates is None  # "when" is not a recognised name
    s = read_series(path, "v", date_column="when")
    assert s.freq == "MS" and season_of(s.freq) == 12 and s.dates[1].month == 2
    counter = write(tmp_path, "day,v\n" + "\n".join(f"{i},{i * 3}" for i in range(5)) + "\n", "c.csv")
    plain = read_series(counter, "v")  # a recognised name holding 0, 1, 2, ...: a counter, no dates
    assert plain.dates is None and plain.freq is None and plain.features == ["v"]


def test_season_of_frequencies() -> None:
    assert [season_of(f) for f in ("W-SUN", "D", "h", "MS", "ME", "QS-OCT", "YS-JAN", "2W")] == [
        52,
        7,
        24,
        12,
        12,
        4,
        1,
        26,
    ]


def test_features_chosen_and_the_date_only_when_asked(tmp_path: Path) -> None:
    days = weekly(5)
    rows = [f"{d},{i},{i * 10},{i * 100}" for i, d in enumerate(days)]
    path = write(tmp_path, "date,a,y,b\n" + "\n".join(rows) + "\n")
    s = read_series(path, "y", ["b", "a", "b"])
    assert s.features == ["y", "b", "a"]  # target first, repeats dropped, order kept
    np.testing.assert_array_equal(s.values[2], [20.0, 200.0, 2.0])
    with_date = read_series(path, "y", ["date"])
    assert with_date.features == ["y", "date"]
    assert with_date.values[0, 1] == pytest.approx(2020 + 3 / 365.25)  # 2020-01-04 as a decimal year


def holes_csv(tmp_path: Path) -> str:
    days = weekly(8)
    y = ["", "2", "", "4", "5", "", "", "8"]  # a leading hole, inner holes
    x = ["1", "1", "1", "", "1", "1", "1", "1"]
    return write(tmp_path, "date,y,x\n" + "\n".join(f"{d},{a},{b}" for d, a, b in zip(days, y, x, strict=True)) + "\n")


def test_fill_interpolate_counts_and_values(tmp_path: Path) -> None:
    s = read_series(holes_csv(tmp_path), "y", ["x"], fill="interpolate")
    assert s.filled == {"y": 4, "x": 1} and s.dropped == 0 and len(s.values) == 8
    # linear in time between neighbours; the leading hole takes the first value
    np.testing.assert_allclose(s.values[:, 0], [2, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_allclose(s.values[:, 1], 1.0)


def test_fill_ffill_drops_rows_before_the_first_value(tmp_path: Path) -> None:
    s = read_series(holes_csv(tmp_path), "y", ["x"], fill="ffill")
    assert s.dropped == 1 and s.filled == {"y": 3, "x": 1}
    np.testing.assert_allclose(s.values[:, 0], [2, 2, 4, 5, 5, 5, 8])
    assert s.dates[0].date().isoformat() == "2020-01-11"


def test_fill_drop_removes_incomplete_rows(tmp_path: Path) -> None:
    s = read_series(holes_csv(tmp_path), "y", ["x"], fill="drop")
    assert s.dropped == 5 and len(s.values) == 3 and s.freq == "W-SAT"  # frequency from the full file
    np.testing.assert_allclose(s.values[:, 0], [2, 5, 8])
    assert s.describe()["rows_used"] == 3 and s.describe()["rows_read"] == 8


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    days = weekly(6)
    good = "\n".join(f"{d},{i}" for i, d in enumerate(days))
    path = write(tmp_path, "date,y\n" + good + "\n")
    with pytest.raises(ValueError, match=r"no date column 'when'; columns are \['date', 'y'\]") as err:
        read_series(path, "y", date_column="when")
    one_line(err)
    empty = write(tmp_path, "date,y,z\n" + "\n".join(f"{d},{i}," for i, d in enumerate(days)) + "\n", "e.csv")
    with pytest.raises(ValueError, match=r"column 'z' holds no numbers \(all 6 cells empty\)") as err:
        read_series(empty, "y", ["z"])
    one_line(err)
    gappy = [*days[:3], "2020-02-01", *days[5:]]  # one week missing
    irregular = write(tmp_path, "date,y\n" + "\n".join(f"{d},{i}" for i, d in enumerate(gappy)) + "\n", "i.csv")
    with pytest.raises(ValueError, match=r"date column 'date' is irregular .* expected evenly spaced dates") as err:
        read_series(irregular, "y")
    one_line(err)
    repeated = write(tmp_path, "date,y\n" + "\n".join(f"{days[min(i, 2)]},{i}" for i in range(5)) + "\n", "r.csv")
    with pytest.raises(ValueError, match=r"repeats at data row 5 .* expected increasing dates"):
        read_series(repeated, "y")
    bad_date = write(tmp_path, "date,y\n" + good.replace(days[2], "someday") + "\n", "b.csv")
    with pytest.raises(ValueError, match=r"date column 'date', data row 4: 'someday' is not a date"):
        read_series(bad_date, "y")
    word = write(tmp_path, "date,y\n" + good.replace(f"{days[1]},1", f"{days[1]},abc") + "\n", "w.csv")
    with pytest.raises(ValueError, match=r"data row 3, column 'y': 'abc' is not a number"):
        read_series(word, "y")
    with pytest.raises(ValueError, match=r"no column 'price'; columns are \['date', 'y'\]"):
        read_series(path, "price")
    with pytest.raises(ValueError, match=r"no column\(s\) \['q'\]"):
        read_series(path, "y", ["q"])
    with pytest.raises(ValueError, match=r"fill must be one of \('interpolate', 'ffill', 'drop'\); got 'mean'"):
        read_series(path, "y", fill="mean")
    with pytest.raises(ValueError, match="no such file"):
        read_series(tmp_path / "none.csv", "y")
    dup = write(tmp_path, "date,y,y\n" + "\n".join(f"{d},1,2" for d in days) + "\n", "d.csv")
    with pytest.raises(ValueError, match="repeated column names"):
        read_series(dup, "y")


def test_statsmodels_co2_and_sunspots_read_as_a_user_writes_them(tmp_path: Path) -> None:
    datasets = pytest.importorskip("statsmodels.datasets")
    co2 = tmp_path / "co2.csv"
    datasets.co2.load_pandas().data.to_csv(co2, index_label="date")
    s = read_series(co2, "co2")
    assert (len(s.values), s.freq, season_of(s.freq), s.filled) == (2284, "W-SAT", 52, {"co2": 59})
    assert not np.isnan(s.values).any() and s.features == ["co2"]
    sun = tmp_path / "sunspots.csv"
    datasets.sunspots.load_pandas().data.to_csv(sun, index=False)
    s = read_series(sun, "SUNACTIVITY")
    assert (len(s.values), s.date_column, season_of(s.freq), s.features) == (309, "YEAR", 1, ["SUNACTIVITY"])
    assert s.dates[0].year == 1700 and s.dates[-1].year == 2008
