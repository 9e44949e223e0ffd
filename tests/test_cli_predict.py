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
    path = tmp_path / "series.csv"
    rows = [f"{i},{10 + 5 * math.sin(i / 8):.4f},{i % 7}" for i in range(300)]
    path.write_text("day,temp,weekday\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. " * 60)
    return path


def test_forecast_plot_and_errors_vs_naive(
    tmp_path: Path, series_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "f"
    argv = [
        "train",
        "forecast",
        "--csv",
        str(series_csv),
        "--target",
        "temp",
        "--window",
        "12",
        "--hidden",
        "16",
        "--steps",
        "60",
        "--out",
        str(run),
        *FAST,
    ]
    assert main(argv) == 0
    trained = json.loads(capsys.readouterr().out)["test"]
    png = tmp_path / "fc.png"
    assert main(["forecast", str(run), "--out", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["windows"] == 45  # the last 15% of 300 rows
    assert report["mae"] == pytest.approx(trained["mae"], rel=1e-6)
    assert report["naive_mae"] == pytest.approx(trained["naive_mae"], rel=1e-12)
    assert report["rmse"] >= report["mae"]


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
    ],
)
def test_bad_csv_gives_one_line(
    tmp_path: Path, content: str | None, needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    code = main(["train", "forecast", "--csv", str(path), "--target", "temp", "--out", str(tmp_path / "r"), *FAST])
    one_line_error(capsys, code, "task 'forecast'", *needles)


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
