"""``lstmkit sample`` and ``lstmkit forecast`` on tiny runs, and one-line errors for bad input files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.train import load_run
from lstmkit.train.generate import sample_tokens

FAST = ["--quiet", "--threads", "1", "--eval-every", "10", "--log-every", "5"]


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    """300 days from 2021-01-01 with a weekly season; two empty temp cells."""
    import datetime

    path = tmp_path / "series.csv"
    start = datetime.date(2021, 1, 1)
    rows = []
    for i in range(300):
        temp = "" if i in (40, 41) else f"{10 + 0.02 * i + 3 * math.sin(2 * math.pi * i / 7):.4f}"
        rows.append(f"{start + datetime.timedelta(days=i)},{temp},{i % 7}")
    path.write_text("date,temp,weekday\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. " * 60)
    return path


def test_forecast_plot_errors_and_future(tmp_path: Path, series_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas")
    run = tmp_path / "f"
    argv = ["train", "forecast", "--csv", str(series_csv), "--target", "temp", "--horizon", "2", "--hidden", "16"]
    argv += ["--steps", "60", "--fill", "ffill", "--out", str(run), *FAST]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    data = report["data"]
    assert data["filled"] == {"temp": 2} and data["freq"] == "D" and data["season"] == 7
    assert data["features"] == ["temp"] and data["window"] == 24 and data["normalize"] == "level"
    assert '"filled": {"temp": 2}' in captured.err  # the fill counts are reported as the run starts
    best = report["best"]
    png, future = tmp_path / "fc.png", tmp_path / "future.csv"
    assert main(["forecast", str(run), "--out", str(png), "--future", "5", "--future-csv", str(future)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shown["windows"] == 300 - int(300 * 0.85) - 1  # test origins whose two targets lie in the data
    assert shown["weights"] == f"best validation, step {best['step']}"
    for key in ("mae", "rmse", "smape", "mase", "naive_mae", "snaive_mae", "snaive_mase"):
        assert shown[key] == pytest.approx(best["test"][key], rel=1e-6), key
    lines = future.read_text().splitlines()
    assert lines[0] == "date,temp_forecast" and len(lines) == 6
    # by default the plot and the future CSV go into the run folder; missing folders are created
    assert main(["forecast", str(run), "--future", "2"]) == 0
    assert (run / "forecast.png").is_file() and (run / "future.csv").is_file()
    assert main(["forecast", str(run), "--out", str(tmp_path / "new" / "deep" / "fc.png")]) == 0
    assert (tmp_path / "new" / "deep" / "fc.png").is_file()
    capsys.readouterr()
    assert [line.split(",")[0] for line in lines[1:]] == [f"2021-10-{d:02d}" for d in range(28, 32)] + ["2021-11-01"]
    assert all(math.isfinite(float(line.split(",")[1])) for line in lines[1:])


def test_forecast_future_needs_target_only_beyond_horizon(
    tmp_path: Path, series_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pandas")
    run = tmp_path / "f"
    argv = ["train", "forecast", "--csv", str(series_csv), "--target", "temp", "--features", "weekday"]
    assert main([*argv, "--hidden", "4", "--steps", "3", "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    code = main(["forecast", str(run), "--out", str(tmp_path / "p.png"), "--future", "3"])
    one_line_error(capsys, code, "also reads ['weekday']", "at most horizon=1 steps; got 3")


def test_sample_continues_the_prime(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "c"
    argv = [
        "train",
        "charlm",
        "--text",
        str(text_file),
        "--seq-len",
        "16",
        "--test-size",
        "8",
        "--hidden",
        "16",
        "--steps",
        "20",
        "--out",
        str(run),
        *FAST,
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--length", "30", "--prime", "the c", "--seed", "1"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("the c") and len(text) == 35
    assert set(text) <= set("the cat sat on the mat. ")
    assert main(["sample", str(run), "--length", "30", "--prime", "the c", "--seed", "1"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == text  # same seed, same text
    model, config = load_run(run)
    task = make_task(config.task, **config.task_args)
    greedy = sample_tokens(model, task.encode("the "), 10, temperature=0.0)
    assert greedy.shape == (10,) and torch.equal(greedy, sample_tokens(model, task.encode("the "), 10, 0.0))
    assert main(["sample", str(run), "--temperature", "-1"]) == 2
    one_line_error(capsys, 2, "--temperature must be >= 0")
    # characters the model never saw are named, once each, in one warning line
    assert main(["sample", str(run), "--length", "5", "--prime", "Zürich ☃ the"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "lstmkit sample: warning: the prime holds characters this model never saw, read as unknown: "
        "'Z', 'i', 'r', 'ü', '☃'\n"
    )


def test_sample_and_forecast_refuse_other_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "a"
    assert (
        main(
            [
                "train",
                "adding",
                "--modern",
                "--seq-len",
                "6",
                "--test-size",
                "16",
                "--hidden",
                "4",
                "--steps",
                "2",
                "--out",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    capsys.readouterr()
    one_line_error(capsys, main(["sample", str(run)]), "sample needs a character model")
    one_line_error(capsys, main(["forecast", str(run)]), "forecast needs a forecasting run")


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("day,temp\n1,abc\n2,3\n", ["data row 2", "'abc' is not a number"]),
        ("day,other\n1,2\n", ["no column 'temp'"]),
        ("day,temp\n1,2\n2,3\n", ["too few rows"]),
        (None, ["no such file"]),
        ("date,temp\n2020-01-01,1\n2020-01-02,2\n2020-01-04,3\n2020-01-05,4\n", ["irregular"]),
        ("date,temp,z\n2020-01-01,1,\n2020-01-02,2,\n2020-01-03,3,\n", ["column 'z' holds no numbers"]),
    ],
)
def test_bad_csv_gives_one_line(
    tmp_path: Path, content: str | None, needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    argv = ["train", "forecast", "--csv", str(path), "--target", "temp", "--out", str(tmp_path / "r"), *FAST]
    if content and ",z" in content:
        argv += ["--features", "z"]
    one_line_error(capsys, main(argv), "task 'forecast'", *needles)


def test_missing_date_column_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.csv"
    path.write_text("t,temp\n1,2\n2,3\n")
    argv = ["train", "forecast", "--csv", str(path), "--target", "temp", "--date", "when", *FAST]
    one_line_error(capsys, main(argv), "no date column 'when'; columns are ['t', 'temp']")


@pytest.mark.parametrize(
    ("content", "needles"),
    [(b"\xff\xfe\x00 not utf-8", ["not UTF-8"]), (b"too short", ["too short"]), (None, ["text_file"])],
)
def test_bad_text_gives_one_line(
    tmp_path: Path, content: bytes | None, needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    if content is not None:
        path.write_bytes(content)
    code = main(["train", "charlm", "--text", str(path), "--out", str(tmp_path / "r"), *FAST])
    one_line_error(capsys, code, "task 'charlm'", *needles)
