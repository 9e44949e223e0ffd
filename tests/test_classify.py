"""Sequence classification: .ts and .npz reading (unequal lengths, missing values), the archive sets
shipped in aeon/sktime read against their raw text, per-channel scaling from the training split,
padding and lengths, metrics written out, a short training that beats chance, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.tasks.sequence_files import archive_sets, read_sequences
from lstmkit.train.checkpoint import load_run
from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
from lstmkit.train.loop import evaluate, train

ARCHIVE = archive_sets()
needs_archive = pytest.mark.skipif(
    not ARCHIVE, reason="no aeon or sktime installed: the UCR/UEA sets ship inside them (pip install sktime)"
)


TS_TEXT = """# a comment
% another comment
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:10,20,30:up
4,?,6,7:40,50:down
8:80,90:up
"""


def write_ts(path: Path, text: str = TS_TEXT) -> str:
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------- reading
def test_ts_unequal_lengths_and_missing_values(tmp_path: Path) -> None:
    seqs = read_sequences(write_ts(tmp_path / "tiny.ts"))
    nan = np.nan
    expected = np.array(
        [
            [[1, 10], [2, 20], [3, 30], [nan, nan]],
            [[4, 40], [nan, 50], [6, nan], [7, nan]],
            [[8, 80], [nan, 90], [nan, nan], [nan, nan]],
        ]
    )
    np.testing.assert_array_equal(seqs.values, expected)  # NaN == NaN for this comparison
    assert seqs.lengths.tolist() == [3, 4, 2] and seqs.labels.tolist() == ["up", "down", "up"]


def test_npz_lengths_from_the_nan_padding(tmp_path: Path) -> None:
    X = np.full((3, 5, 2), np.nan)
    X[0, :5] = 1.0
    X[1, :2] = 2.0
    X[2, :3, 0] = 3.0  # channel 1 missing throughout; length still 3
    X[2, 1, 0] = np.nan  # a hole inside the case does not end it
    np.savez(tmp_path / "d.npz", X=X, y=np.array([7, 8, 7]))
    seqs = read_sequences(tmp_path / "d.npz")
    assert seqs.lengths.tolist() == [5, 2, 3] and seqs.labels.tolist() == ["7", "8", "7"]
    np.savez(tmp_path / "uni.npz", X=np.ones((4, 6)), y=np.arange(4))
    assert read_sequences(tmp_path / "uni.npz").values.shape == (4, 6, 1)


def raw_ts(path: Path) -> tuple[list[list[list[float]]], list[str]]:
    """The cases of a .ts file as written: per case, per channel, the list of numbers; and labels."""
    text = path.read_text().splitlines()
    body = text[next(i for i, line in enumerate(text) if line.strip().lower() == "@data") + 1 :]
    cases, labels = [], []
    for line in filter(str.strip, body):
        *chans, label = line.strip().split(":")
        cases.append([[float(v) for v in ch.split(",")] for ch in chans])
        labels.append(label)
    return cases, labels


@needs_archive
@pytest.mark.parametrize("name", ["JapaneseVowels", "GunPoint", "BasicMotions"])
def test_archive_sets_read_as_their_raw_text(name: str) -> None:
    for path in ARCHIVE[name]:
        cases, labels = raw_ts(path)
        seqs = read_sequences(path)
        longest = max(len(ch) for case in cases for ch in case)
        assert seqs.values.shape == (len(cases), longest, len(cases[0]))
        assert seqs.labels.tolist() == labels
        assert seqs.lengths.tolist() == [max(len(ch) for ch in case) for case in cases]
        for n in (0, len(cases) // 2, len(cases) - 1):
            for k, ch in enumerate(cases[n]):
                np.testing.assert_array_equal(seqs.values[n, : len(ch), k], ch)
                assert np.isnan(seqs.values[n, len(ch) :, k]).all()


@needs_archive
def test_japanese_vowels_as_published() -> None:
    task = make_task("classify", dataset="japanesevowels")  # names match case-insensitively
    d = task.describe()
    assert (d["train_cases"], d["test_cases"], d["channels"], d["classes"]) == (270, 370, 12, 9)
    assert (d["min_length"], d["max_length"]) == (7, 29) and task.classes == [str(k) for k in range(1, 10)]


# ----------------------------------------------------------------------------- the task
def npz_pair(tmp_path: Path, n: int = 60, seed: int = 0) -> tuple[str, str]:
    """Two classes told apart by the sign of channel 0's mean, lengths 5..12, channel 1 on another scale."""
    rng = np.random.default_rng(seed)
    paths = []
    for split in ("train", "test"):
        X = np.full((n, 12, 2), np.nan)
        y = rng.integers(0, 2, n)
        for i in range(n):
            L = int(rng.integers(5, 13))
            X[i, :L, 0] = rng.normal(1.0 if y[i] else -1.0, 1.0, L)
            X[i, :L, 1] = rng.normal(100.0, 10.0, L)
        np.savez(tmp_path / f"{split}.npz", X=X, y=np.where(y == 1, "b", "a"))
        paths.append(str(tmp_path / f"{split}.npz"))
    return paths[0], paths[1]


def test_channels_scaled_by_the_training_split_and_batches_padded(tmp_path: Path) -> None:
    train_path, test_path = npz_pair(tmp_path)
    task = make_task("classify", data_file=train_path, test_file=test_path)
    raw = read_sequences(train_path).values.reshape(-1, 2)
    raw = raw[np.isfinite(raw).all(axis=1)]
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    test_raw = read_sequences(test_path)
    got = task.test_set()
    want = (test_raw.values - mean) / std
    inside = np.isfinite(want)
    np.testing.assert_allclose(got.inputs.numpy()[inside], want[inside], rtol=1e-5, atol=1e-5)
    assert (got.inputs.numpy()[~inside] == 0).all()
    assert got.targets.tolist() == [int(v == "b") for v in test_raw.labels]
    batch = task.sample(16, torch.Generator().manual_seed(3))
    assert batch.inputs.shape == (16, int(batch.lengths.max()), 2)
    steps = torch.arange(batch.inputs.shape[1])
    assert (batch.inputs[steps[None, :] >= batch.lengths[:, None]] == 0).all()
    again = make_task("classify", **json.loads(json.dumps(task.config())))
    assert torch.equal(again.test_set().inputs, got.inputs)


def test_metrics_and_confusion_written_out(tmp_path: Path) -> None:
    task = make_task("classify", data_file=npz_pair(tmp_path)[0], test_file=npz_pair(tmp_path)[1])
    test = task.test_set()
    truth = test.targets.numpy()
    guess = np.zeros_like(truth)  # always class 0 ("a")
    logits = torch.nn.functional.one_hot(torch.from_numpy(guess), 2).float() * 5
    m = task.metrics(logits, test)
    assert m["accuracy"] == pytest.approx(np.mean(truth == 0))
    assert m["balanced_accuracy"] == pytest.approx(0.5)  # recall 1 for class a, 0 for class b
    expected_loss = np.mean(np.log1p(np.exp(-5.0)) + 5.0 * (truth == 1))
    assert m["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert task.confusion(logits, test) == [[int(np.sum(truth == 0)), 0], [int(np.sum(truth == 1)), 0]]


def test_validation_holds_out_part_of_each_class(tmp_path: Path) -> None:
    train_path, test_path = npz_pair(tmp_path)
    task = make_task("classify", data_file=train_path, test_file=test_path, validation=0.25)
    val = task.validation_set()
    assert val is not None and task.validation_metric == "loss"
    labels = read_sequences(train_path).labels
    for k, c in enumerate(("a", "b")):
        assert int((val.targets == k).sum()) == round(0.25 * int(np.sum(labels == c)))
    assert task.describe()["train_cases"] + len(val) == 60


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    train_path, test_path = npz_pair(tmp_path)
    with pytest.raises(ValueError, match="x.npz: no such file"):
        make_task("classify", data_file=str(tmp_path / "x.npz"), test_file=test_path)
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"expected a \.ts .* got '\.csv'"):
        make_task("classify", data_file=str(tmp_path / "x.csv"), test_file=test_path)
    np.savez(tmp_path / "noy.npz", X=np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        make_task("classify", data_file=str(tmp_path / "noy.npz"), test_file=test_path)
    np.savez(tmp_path / "c.npz", X=np.ones((3, 4, 2)), y=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"test labels \['c'\] never appear"):
        make_task("classify", data_file=train_path, test_file=str(tmp_path / "c.npz"))
    stamped = TS_TEXT.replace("@timeStamps false", "@timeStamps true")
    with pytest.raises(ValueError, match="time-stamped"):
        read_sequences(write_ts(tmp_path / "t.ts", stamped))
    with pytest.raises(ValueError, match=r"t2.ts:12: not a number: 'x'"):
        read_sequences(write_ts(tmp_path / "t2.ts", TS_TEXT.replace("4,?,6", "4,x,6")))
    with pytest.raises(ValueError, match="no @data"):
        read_sequences(write_ts(tmp_path / "t3.ts", "@problemName x\n"))
    with pytest.raises(ValueError, match="--dataset NAME"):
        make_task("classify")


@needs_archive
def test_unknown_dataset_names_the_installed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'Nope'; the installed ones are \[.*'GunPoint'"):
        make_task("classify", dataset="Nope")


# ----------------------------------------------------------------------------- training
@needs_archive
def test_short_training_beats_chance_on_japanese_vowels(tmp_path: Path, one_thread: None) -> None:
    task = make_task("classify", dataset="JapaneseVowels")
    majority = float(torch.bincount(task.test_set().targets).max()) / len(task.test_set())
    cfg = RunConfig(task="classify", task_args=task.config(), seed=0,
                    model=ModelConfig(input_size=12, output_size=9, hidden=32),
                    optim=OptimConfig(lr=1e-2, batch_size=32, steps=80, eval_every=80))  # fmt: skip
    train(cfg, tmp_path / "run", task=task, quiet=True)
    got = evaluate(load_run(tmp_path / "run")[0], task)
    assert got["accuracy"] > max(0.7, 3 * majority), got


def test_cli_trains_on_npz_files_and_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_path, test_path = npz_pair(tmp_path)
    argv = ["train", "classify", "--data", train_path, "--test", test_path, "--steps", "40", "--eval-every", "40",
            "--hidden", "8", "--lr", "0.03", "--out", str(tmp_path / "r"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["classes"] == 2 and report["test"]["accuracy"] > 0.8
    bad = ["train", "classify", "--data", str(tmp_path / "missing.ts"), "--test", test_path]
    assert main([*bad, "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "missing.ts: no such file" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "classify", "--dataset", "GunPoint", "--data", train_path]) == 2
    assert "not both" in capsys.readouterr().err
