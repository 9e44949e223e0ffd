"""The keyword-in-stream task, the streams of charlm and keyword, and ``lstmkit predict --stream``
(frame by frame equals the whole sequence)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks import make_task, stream_tasks
from lstmkit.tasks.charlm import CharLMTask, TextColumns
from lstmkit.tasks.keyword import KeywordTask
from lstmkit.train import ModelConfig, OptimConfig, RunConfig, load_run, train

SMALL = {"seq_len": 6, "keywords": 3, "noise": 4, "min_gap": 3, "max_gap": 9, "episode_min": 15, "episode_max": 25}


pytestmark = pytest.mark.usefixtures("one_thread")


def scan_labels(ids: list[int], noise: int, before: int) -> list[int]:
    """The last keyword at or before each step, read off the symbols (``before``: the one before)."""
    out, label = [], before
    for x in ids:
        if x >= noise:
            label = x - noise
        out.append(label)
    return out


def keyword_steps(ids: list[int], noise: int) -> list[int]:
    return [t for t, x in enumerate(ids) if x >= noise]


# ---------------------------------------------------------------- the keyword task
def test_the_test_stream_is_one_sequence_whose_targets_are_the_last_keyword() -> None:
    task = KeywordTask(test_len=600, **SMALL)
    test = task.test_set()
    assert test.inputs.shape == (1, 600) and test.mask is not None and bool(test.mask.all())
    ids = test.inputs[0].tolist()
    assert ids[0] >= task.noise  # every sequence opens with a keyword
    assert test.targets[0].tolist() == scan_labels(ids, task.noise, before=-1)
    gaps = np.diff(keyword_steps(ids, task.noise))
    assert gaps.min() >= task.min_gap and gaps.max() <= task.max_gap
    age = test.extra["age"][0].tolist()
    assert all(a == t - max(k for k in keyword_steps(ids, task.noise) if k <= t) for t, a in enumerate(age))


def test_stateless_windows_start_mid_stream() -> None:
    task = KeywordTask(**SMALL)
    batch = task.sample(64, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (64, 6)
    openers = 0
    for ids, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
        first = keyword_steps(ids, task.noise)
        start = first[0] if first else len(ids)
        assert len(set(targets[:start])) <= 1  # before the first keyword: the one drawn for before the window
        assert targets[start:] == scan_labels(ids, task.noise, before=-1)[start:]
        openers += bool(first) and first[0] == 0
    assert openers < 32  # windows are not sequence starts


def test_keyword_streams_continue_across_segments_end_and_reset() -> None:
    task = KeywordTask(**SMALL)
    streams = task.streams(4)
    segs = [streams.next(6, torch.Generator().manual_seed(n)) for n in range(12)]
    assert segs[0].reset.all()
    resets = 0
    for b in range(4):
        ids: list[int] = []
        targets: list[int] = []
        for seg in segs:
            if bool(seg.reset[b]) and ids:  # the previous sequence is complete: check it, start anew
                resets += 1
                assert 15 <= len(ids) <= 25
                assert targets == scan_labels(ids, task.noise, before=-1)
                ids, targets = [], []
            assert seg.batch.mask is not None
            valid = seg.batch.mask[b]
            assert not valid[int(valid.sum()) :].any()  # padding only after the end
            ids += seg.batch.inputs[b][valid].tolist()
            targets += seg.batch.targets[b][valid].tolist()
        assert ids[0] >= task.noise
        gaps = np.diff(keyword_steps(ids, task.noise))
        assert gaps.size == 0 or (gaps.min() >= task.min_gap and gaps.max() <= task.max_gap)
    assert resets >= 4  # sequences of 15-25 steps in 72: every stream reset at least once


def test_stream_positions_round_trip_and_bad_ones_are_refused() -> None:
    task = KeywordTask(**SMALL)
    a = task.streams(3)
    for n in range(5):
        a.next(6, torch.Generator().manual_seed(n))
    b = task.streams(3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # positions survive JSON
    sa, sb = a.next(6, torch.Generator().manual_seed(9)), b.next(6, torch.Generator().manual_seed(9))
    assert torch.equal(sa.batch.inputs, sb.batch.inputs) and torch.equal(sa.reset, sb.reset)
    with pytest.raises(ValueError, match="must hold 2 carries of 3 ints; got 3"):
        task.streams(2).load_state_dict(a.state_dict())


def test_far_accuracy_counts_only_steps_beyond_one_window() -> None:
    task = KeywordTask(test_len=400, **SMALL)
    test = task.test_set()
    perfect = torch.nn.functional.one_hot(test.targets, task.keywords).float() * 10
    near_only = perfect.clone()
    far = test.extra["age"] > task.seq_len
    near_only[far] = torch.roll(near_only[far], 1, dims=-1)  # wrong wherever the keyword is far back
    assert task.metrics(perfect, test)["accuracy"] == 1.0 and task.metrics(perfect, test)["far_accuracy"] == 1.0
    m = task.metrics(near_only, test)
    assert m["far_accuracy"] == 0.0 and m["accuracy"] == pytest.approx(1 - float(far.float().mean()))
    assert task.solved({"accuracy": 0.995}) and not task.solved({"accuracy": 0.9})


def test_tasks_with_streams() -> None:
    assert stream_tasks() == ["charlm", "keyword"]
    with pytest.raises(ValueError, match="task 'adding' has no streams"):
        make_task("adding").streams(4)


# ---------------------------------------------------------------- charlm as B columns
def test_charlm_columns_are_read_in_consecutive_windows() -> None:
    ids = torch.arange(100)
    cols = TextColumns(ids, 4)  # columns of 25: [0..24], [25..49], ...
    gen = torch.Generator()
    first, second, third = (cols.next(10, gen) for _ in range(3))
    assert first.batch.inputs[2].tolist() == list(range(50, 60)) and first.batch.targets[2].tolist() == list(
        range(51, 61)
    )
    assert second.batch.inputs[2].tolist() == list(range(60, 70)) and not second.reset.any()
    assert third.reset.all() and third.batch.inputs[3].tolist() == list(range(75, 85))  # 5 left < 11: start again
    with pytest.raises(ValueError, match="expected 4 streams over columns of 25; got 2 over 25"):
        cols.load_state_dict({"positions": [0, 0], "started": [True, True], "column": 25})
    with pytest.raises(ValueError, match="segments of 30 steps need columns of 31 characters; got 25"):
        cols.next(30, gen)


# ---------------------------------------------------------------- predict --stream
def tiny_run(tmp_path: Path, task: str, task_args: dict[str, object], model: ModelConfig) -> Path:
    cfg = RunConfig(
        task=task,
        task_args=task_args,
        model=model,
        optim=OptimConfig(lr=1e-2, batch_size=4, steps=3, eval_every=3, log_every=3, stop_when_solved=False),
        seed=1,
    )
    train(cfg, tmp_path / task, quiet=True)
    return tmp_path / task


def read_rows(path: Path) -> torch.Tensor:
    with open(path) as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "step" and [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1))
    return torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]])


def test_predict_stream_of_token_ids_equals_the_whole_sequence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = KeywordTask(test_len=50, **SMALL)
    model_cfg = ModelConfig(1, task.keywords, vocab_size=task.vocab_size, readout="all", hidden=8, layers=2)
    run = tiny_run(tmp_path, "keyword", task.config(), model_cfg)
    ids = task.test_set().inputs[0, :40]
    np.save(tmp_path / "ids.npy", ids.numpy())
    assert main(["predict", str(run), "--stream", str(tmp_path / "ids.npy"), "--out", str(tmp_path / "o.csv")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 40
    model, _ = load_run(run)
    with torch.no_grad():
        whole, _ = model.forward_state(ids.unsqueeze(0))
    torch.testing.assert_close(read_rows(tmp_path / "o.csv"), whole[0], atol=1e-6, rtol=0)


def test_predict_stream_of_float_frames_with_a_last_readout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path, "adding", {"T": 30, "test_size": 8}, ModelConfig(2, 1, hidden=8))
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.savetxt(tmp_path / "frames.csv", x.numpy(), delimiter=",")
    assert main(["predict", str(run), "--stream", str(tmp_path / "frames.csv")]) == 0
    capsys.readouterr()
    rows = read_rows(run / "stream.csv")
    model, _ = load_run(run)
    frames = x.float().unsqueeze(0)
    with torch.no_grad():
        for t in (0, 11, 29):  # row t: the prediction for the sequence cut after step t
            torch.testing.assert_close(rows[t], model(frames[:, : t + 1])[0], atol=1e-6, rtol=0)


def test_predict_stream_of_text_for_a_character_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 30)
    task = CharLMTask(text_file=str(text), seq_len=8, test_size=4)
    model_cfg = ModelConfig(1, task.output_size, vocab_size=task.vocab_size, readout="all", hidden=8)
    run = tiny_run(tmp_path, "charlm", task.config(), model_cfg)
    (tmp_path / "in.txt").write_text("the mat sat")
    assert main(["predict", str(run), "--stream", str(tmp_path / "in.txt")]) == 0
    capsys.readouterr()
    model, _ = load_run(run)
    with torch.no_grad():
        whole, _ = model.forward_state(task.encode("the mat sat").unsqueeze(0))
    torch.testing.assert_close(read_rows(run / "stream.csv"), whole[0], atol=1e-6, rtol=0)


def test_predict_stream_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_run(tmp_path, "adding", {"T": 30, "test_size": 8}, ModelConfig(2, 1, hidden=8))
    np.save(tmp_path / "three.npy", np.zeros((5, 3)))
    cases = [
        (tmp_path / "three.npy", "expected frames shaped (T, 2); got (5, 3)"),
        (tmp_path / "missing.npy", "--stream file not found"),
    ]
    for path, needle in cases:
        code = main(["predict", str(run), "--stream", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (run / "stream.csv").exists()
    bi = tiny_run(tmp_path / "bi", "adding", {"T": 30, "test_size": 8}, ModelConfig(2, 1, hidden=8, bidirectional=True))
    np.save(tmp_path / "two.npy", np.zeros((5, 2)))
    code = main(["predict", str(bi), "--stream", str(tmp_path / "two.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "is bidirectional: it cannot stream" in err and len(err.strip().splitlines()) == 1
