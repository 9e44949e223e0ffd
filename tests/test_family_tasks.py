"""The modern-family tasks (parity, mqar, selcopy) and ``lstmkit train --cell``: generators checked
against the rule written out here, family runs trained, resumed, evaluated and streamed, and the
one-line errors for what a family cell does not support."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.modules import MLSTM, SLSTM, MinLSTM
from lstmkit.tasks import make_task
from lstmkit.train.checkpoint import load_run
from lstmkit.train.config import ModelConfig
from lstmkit.train.model import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- generators


def test_parity_strings_lengths_and_labels() -> None:
    task = make_task("parity", min_len=3, max_len=12, test_min=20, test_max=30, test_size=64)
    for batch, (lo, hi) in ((task.sample(200, gen(1)), (3, 12)), (task.test_set(), (20, 30))):
        lengths = batch.lengths.tolist()
        assert min(lengths) >= lo and max(lengths) <= hi and batch.inputs.shape[1] == max(lengths)
        assert len(set(lengths)) > 3  # lengths vary
        for row, n, target in zip(batch.inputs.tolist(), lengths, batch.targets.tolist(), strict=True):
            bits = row[:n]
            assert set(bits) <= {0, 1} and all(b == 0 for b in row[n:])
            ones = 0
            for t, bit in enumerate(bits):  # the parity of every prefix, counted here one bit at a time
                ones += bit
                assert target[t] == ones % 2
            assert target[n - 1] == sum(bits) % 2
    train, test = task.sample(50, gen(2)), task.test_set()
    assert torch.equal(train.mask, torch.arange(train.inputs.shape[1]) < train.lengths[:, None])  # running
    assert test.mask.sum(1).eq(1).all() and test.mask.gather(1, test.lengths[:, None] - 1).all()  # last bit only
    final = make_task("parity", running=False).sample(50, gen(2))
    assert final.mask.sum(1).eq(1).all()
    assert torch.equal(task.sample(8, gen(5)).inputs, task.sample(8, gen(5)).inputs)  # same seed, same data


def test_parity_metrics_from_a_perfect_and_a_wrong_answer() -> None:
    task = make_task("parity", test_min=40, test_max=80, test_size=32)
    batch = task.test_set()
    right = torch.nn.functional.one_hot(batch.targets, 2).float() * 10  # (B, T, 2)
    m = task.metrics(right, batch)
    assert m["accuracy"] == 1.0 and m["scaled_accuracy"] == 1.0 and m["long_accuracy"] == 1.0 and task.solved(m)
    wrong = task.metrics(right.flip(-1), batch)
    assert wrong["accuracy"] == 0.0 and wrong["scaled_accuracy"] == -1.0 and not task.solved(wrong)


def test_mqar_pairs_and_queries() -> None:
    task = make_task("mqar", context=64, pairs=6, vocab=32)
    K = task.keys
    batch = task.sample(40, gen(3))
    assert batch.inputs.shape == (40, 64) and task.output_size == K
    for row, target, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist(), strict=True):
        table = {}
        for i in range(6):  # k_1 v_1 ... k_6 v_6 at the start, written out again here
            key, value = row[2 * i], row[2 * i + 1]
            assert 1 <= key <= K and K + 1 <= value <= 2 * K and key not in table
            table[key] = value
        queried = []
        for t in range(12, 64):
            if row[t] == 0:
                assert not mask[t]
                continue
            assert mask[t] and target[t] == table[row[t]] - K - 1
            queried.append(row[t])
        assert sorted(queried) == sorted(table)  # every key asked once
        assert not any(mask[:12])


def test_selcopy_symbols_in_order() -> None:
    task = make_task("selcopy", T=30, tokens=5, symbols=6)
    batch = task.sample(40, gen(4))
    assert batch.inputs.shape == (40, 35) and task.vocab_size == 8 and task.output_size == 6
    for row, target, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist(), strict=True):
        symbols = [tok for tok in row[:30] if tok != 0]
        assert len(symbols) == 5 and all(1 <= s <= 6 for s in symbols)
        assert row[30:] == [7] * 5 and mask == [False] * 30 + [True] * 5
        assert target[30:] == [s - 1 for s in symbols]
    oracle = torch.nn.functional.one_hot(batch.targets, 6).float()
    assert task.metrics(oracle, batch)["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        ("parity", {"min_len": 5, "max_len": 4}, "max_len must be >= 5; got 4"),
        ("mqar", {"context": 20, "pairs": 8}, "context must hold the pairs"),
        ("mqar", {"pairs": 40, "vocab": 64}, "pairs must be <= vocab // 2 - 1 = 31"),
        ("mqar", {"vocab": 33}, "vocab must be even"),
        ("selcopy", {"T": 4, "tokens": 5}, "tokens must fit in the T = 4"),
    ],
)
def test_bad_task_arguments(name: str, kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make_task(name, **kwargs)


# ---------------------------------------------------------------- models


@pytest.mark.parametrize(("cell", "core"), [("slstm", SLSTM), ("mlstm", MLSTM), ("minlstm", MinLSTM)])
def test_family_core_streams_chunked_as_whole(cell: str, core: type) -> None:
    heads = 2 if cell != "minlstm" else 1
    config = ModelConfig(
        input_size=1, output_size=3, vocab_size=5, readout="all", hidden=8, cell=cell, heads=heads, token_shift=True
    )
    model = build_model(config, seed=0).eval()
    assert isinstance(model.lstm, core)
    x = torch.randint(0, 5, (3, 11))
    whole, _ = model.forward_state(x)
    first, state = model.forward_state(x[:, :4])
    rest, _ = model.forward_state(x[:, 4:], state)
    assert torch.allclose(torch.cat([first, rest], 1), whole, atol=1e-5)
    assert torch.allclose(model(x), whole, atol=1e-5)


# ---------------------------------------------------------------- the CLI

TINY = ["--hidden", "8", "--steps", "3", "--eval-every", "3", "--batch-size", "8", "--quiet", "--threads", "1"]
PARITY = ["parity", "--task-arg", "max_len=8", "--task-arg", "test_min=8", "--task-arg", "test_max=12",
          "--test-size", "16"]  # fmt: skip


def last_line(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


@pytest.mark.parametrize(("cell", "core"), [("lstm", None), ("slstm", SLSTM), ("mlstm", MLSTM), ("minlstm", MinLSTM)])
def test_train_each_cell_end_to_end(cell: str, core: type | None, tmp_path: Path, capsys) -> None:
    out = tmp_path / cell
    assert main(["train", *PARITY, "--cell", cell, "--out", str(out), *TINY]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 3 and "scaled_accuracy" in report["test"]
    model, config = load_run(out)
    assert config.model.cell == cell
    if core is not None:
        assert isinstance(model.lstm, core) and config.model.init in ("xlstm", "torch")
    assert main(["eval", str(out), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] == report["test"]["accuracy"]


def test_resume_a_family_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["mqar", "--task-arg", "context=16", "--task-arg", "pairs=2", "--test-size", "8", "--cell", "mlstm",
            "--heads", "2", "--out", str(out)]  # fmt: skip
    assert main(["train", *args, *TINY]) == 0
    first = (out / "config.json").read_text()
    assert main(["train", "--resume", str(out), "--steps", "6", "--eval-every", "3", "--quiet", "--threads", "1"]) == 0
    assert last_line(out / "metrics.jsonl")["step"] == 6
    assert json.loads((out / "config.json").read_text())["model"] == json.loads(first)["model"]
    # the same six steps in one go give the same weights
    again = tmp_path / "again"
    whole = [*args[:-1], str(again), *TINY]
    whole[whole.index("--steps") + 1] = "6"
    assert main(["train", *whole]) == 0
    capsys.readouterr()
    a, _ = load_run(out)
    b, _ = load_run(again)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_predict_streams_a_family_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", *PARITY, "--cell", "slstm", "--out", str(out), *TINY]) == 0
    frames = tmp_path / "bits.npy"
    np.save(frames, np.array([1, 0, 1, 1, 0], dtype=np.int64))
    assert main(["predict", str(out), "--stream", str(frames), "--out", str(tmp_path / "s.csv")]) == 0
    capsys.readouterr()
    rows = (tmp_path / "s.csv").read_text().strip().splitlines()
    assert len(rows) == 6  # header and one row per frame


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--cell", "slstm", "--spec", "peephole"], "cell='slstm' does not support spec yet"),
        (["--cell", "mlstm", "--proj-size", "4"], "cell='mlstm' does not support proj_size yet"),
        (["--cell", "slstm", "--bidirectional"], "cell='slstm' does not support bidirectional yet"),
        (["--cell", "slstm", "--heads", "3"], "heads must divide hidden for cell 'slstm'; got hidden=8, heads=3"),
        (["--cell", "minlstm", "--heads", "2"], "cell 'minlstm' has no heads; expected heads=1, got 2"),
        (["--heads", "2"], "heads is for the slstm and mlstm cells"),
        (["--cell", "mlstm", "--form", "scan"], "form 'scan' is not one of cell 'mlstm'"),
        (["--cell", "minlstm", "--init", "chrono"], "init must be one of ('torch',); got 'chrono'"),
        (["--cell", "slstm", "--baseline", "gru"], "it needs baseline 'lstm', got 'gru'"),
    ],
)
def test_unsupported_settings_are_one_line_errors(flags: list[str], words: str, tmp_path: Path, capsys) -> None:
    assert main(["train", *PARITY, *flags, "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r").exists()


def test_tbptt_and_export_refuse_a_family_cell(tmp_path: Path, capsys) -> None:
    assert main(["train", "keyword", "--tbptt", "5", "--cell", "slstm", "--out", str(tmp_path / "k"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tbptt with cell 'slstm' is not supported yet" in err
    out = tmp_path / "run"
    assert main(["train", *PARITY, "--cell", "minlstm", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["export", str(out), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only lstmkit.LSTM cores export" in err and "MinLSTM" in err
