"""Training loop, model readouts, checkpoints and resume (small budgets, seconds each)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from lstmkit.tasks import make_task
from lstmkit.tasks.base import Batch, Task
from lstmkit.train import ModelConfig, OptimConfig, RunConfig, build_model, load_run
from lstmkit.train.checkpoint import CHECKPOINT, METRICS, load_checkpoint, read_state, save_checkpoint
from lstmkit.train.loop import TrainingInterrupted, evaluate, make_optimizer, seed_of, train

pytestmark = pytest.mark.usefixtures("one_thread")


TASK_ARGS = {"T": 8, "modern": True, "test_size": 64, "test_seed": 4}


def tiny_config(steps: int = 24, **optim: object) -> RunConfig:
    opt = {"lr": 1e-2, "batch_size": 8, "steps": steps, "eval_every": 8, "log_every": 4, "stop_when_solved": False}
    opt.update(optim)
    return RunConfig(
        task="adding",
        task_args=TASK_ARGS,
        model=ModelConfig(input_size=2, output_size=1, hidden=8),
        optim=OptimConfig(**opt),
        seed=3,
    )  # type: ignore[arg-type]


def rows_without_time(run_dir: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]
    for r in rows:
        r.pop("elapsed")
    return rows


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_run(run_dir)
    return model.state_dict()


# ---------------------------------------------------------------- config
def test_config_round_trip_and_differences() -> None:
    cfg = tiny_config().replace(model=ModelConfig(input_size=2, output_size=1, spec={"peephole": True}))
    back = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    diffs = cfg.differences(cfg.replace(seed=9))
    assert diffs == [("seed", 3, 9)]


def test_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of"):
        OptimConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="hidden must be a positive int; got 0"):
        ModelConfig(input_size=2, output_size=1, hidden=0)
    with pytest.raises(ValueError, match="no forget_bias"):
        ModelConfig(input_size=2, output_size=1, baseline="gru", forget_bias=1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        RunConfig.from_dict({"task": "adding", "model": {"input_size": 2, "output_size": 1, "width": 3}})


def test_seed_of_separates_streams() -> None:
    seeds = {seed_of(s, t, k) for s in range(3) for t in range(50) for k in range(3)}
    assert len(seeds) == 3 * 50 * 3
    assert all(0 <= s < 2**63 for s in seeds)


# ---------------------------------------------------------------- model readouts
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("baseline", ["lstm", "gru"])
def test_last_readout_equals_each_sequence_alone(bidirectional: bool, baseline: str) -> None:
    cfg = ModelConfig(input_size=3, output_size=2, hidden=5, bidirectional=bidirectional, baseline=baseline)
    model = build_model(cfg, seed=1).eval()
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([7, 3, 5, 1])
    batched = model(x, lengths)
    for b in range(4):
        n = int(lengths[b])
        alone = model(x[b : b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(batched[b : b + 1], alone, atol=1e-6, rtol=1e-5)


def test_all_readout_bidirectional_ignores_padding() -> None:
    cfg = ModelConfig(input_size=3, output_size=2, hidden=5, bidirectional=True, readout="all")
    model = build_model(cfg, seed=1).eval()
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    out = model(x, torch.tensor([6, 4]))
    assert out.shape == (2, 6, 2)
    alone = model(x[1:, :4], torch.tensor([4]))
    torch.testing.assert_close(out[1:, :4], alone, atol=1e-6, rtol=1e-5)


def test_token_model_embeds_and_refuses_float_input() -> None:
    model = build_model(ModelConfig(input_size=1, output_size=5, vocab_size=5, readout="all", embedding_dim=4))
    assert model(torch.zeros(2, 3, dtype=torch.int64), torch.tensor([3, 2])).shape == (2, 3, 5)
    with pytest.raises(ValueError, match=r"token inputs must be \(B, T\) int64"):
        model(torch.zeros(2, 3, 1), torch.tensor([3, 2]))


# ---------------------------------------------------------------- train -> checkpoint -> eval
def test_train_checkpoint_eval(tmp_path: Path) -> None:
    cfg = tiny_config()
    result = train(cfg, tmp_path, quiet=True)
    assert result.step == 24 and result.sequences == 24 * 8
    for name in (CHECKPOINT, "config.json", METRICS, "curve.png"):
        assert (tmp_path / name).is_file(), name
    rows = rows_without_time(tmp_path)
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]
    assert rows[0]["train_loss"] > rows[-1]["train_loss"]  # it learns something
    model, config = load_run(tmp_path)
    assert config == cfg and not model.training
    again = evaluate(model, make_task(config.task, **config.task_args))
    assert again == pytest.approx(rows[-1]["test"], rel=1e-6)
    assert load_run(tmp_path / CHECKPOINT)[1] == cfg


def test_new_run_refuses_existing_directory(tmp_path: Path) -> None:
    train(tiny_config(steps=4), tmp_path, quiet=True)
    with pytest.raises(ValueError, match="already holds a run"):
        train(tiny_config(steps=4), tmp_path, quiet=True)


def test_model_config_must_fit_task(tmp_path: Path) -> None:
    cfg = tiny_config().replace(model=ModelConfig(input_size=3, output_size=1))
    with pytest.raises(ValueError, match=r"input_size=3 \(task 'adding' needs 2\)"):
        train(cfg, tmp_path, quiet=True)


# ---------------------------------------------------------------- resume
def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    train(tiny_config(steps=24), full, quiet=True)
    train(tiny_config(steps=16), part, quiet=True)  # ends with a checkpoint at step 16
    train(tiny_config(steps=24), part, quiet=True, resume=True)
    assert rows_without_time(part) == rows_without_time(full)
    for name, value in weights(full).items():
        assert torch.equal(value, weights(part)[name]), name


class InterruptAt(Task):
    """Wraps a task and sends this process SIGINT while drawing the batch of a given step."""

    def __init__(self, inner: Task, at_call: int) -> None:
        self.inner, self.at_call, self.calls = inner, at_call, 0
        self.name, self.readout = inner.name, inner.readout  # type: ignore[misc]
        self.input_size, self.output_size, self.vocab_size = inner.input_size, inner.output_size, inner.vocab_size

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        self.calls += 1
        if self.calls == self.at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner.sample(batch_size, generator)

    def test_set(self) -> Batch:
        return self.inner.test_set()

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.inner.loss(prediction, batch)

    def metrics(self, prediction: torch.Tensor, batch: Batch) -> dict[str, float]:
        return self.inner.metrics(prediction, batch)


def test_sigint_mid_window_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when run as a background job
    cfg = tiny_config(steps=24)
    cfg = cfg.replace(model=ModelConfig(input_size=2, output_size=1, hidden=8, zoneout=0.1))  # masks replay too
    train(cfg, full, quiet=True)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, part, quiet=True, task=InterruptAt(make_task("adding", **TASK_ARGS), at_call=11))
    assert info.value.result.step == 11 and info.value.result.interrupted
    state = read_state(part)
    assert state["step"] == 11 and state["window_steps"] == 3  # mid log window (log_every=4)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored
    train(cfg, part, quiet=True, resume=True)
    assert rows_without_time(part) == rows_without_time(full)
    for name, value in weights(full).items():
        assert torch.equal(value, weights(part)[name]), name


def test_resume_refuses_different_config(tmp_path: Path) -> None:
    train(tiny_config(steps=8), tmp_path, quiet=True)
    other = tiny_config(steps=16).replace(model=ModelConfig(input_size=2, output_size=1, hidden=16))
    with pytest.raises(ValueError, match=r"model.hidden: checkpoint has 8, this run asks for 16"):
        train(other, tmp_path, quiet=True, resume=True)
    train(tiny_config(steps=16, eval_every=4), tmp_path, quiet=True, resume=True)  # budget/cadence may change
    assert read_state(tmp_path)["step"] == 16


def test_optimizer_state_round_trips(tmp_path: Path) -> None:
    for name in ("adam", "sgd", "rmsprop"):
        cfg = tiny_config(optimizer=name, momentum=0.0 if name == "adam" else 0.9)
        model = build_model(cfg.model, 0)
        opt = make_optimizer(model, cfg)
        x, lengths = torch.randn(4, 5, 2), torch.full((4,), 5)
        for _ in range(2):
            opt.zero_grad()
            model(x, lengths).pow(2).sum().backward()
            opt.step()
        save_checkpoint(tmp_path / name, model, opt, cfg, {"step": 2})
        model2 = build_model(cfg.model, 1)
        opt2 = make_optimizer(model2, cfg)
        assert load_checkpoint(tmp_path / name, model2, opt2, cfg)["step"] == 2
        a, b = opt.state_dict()["state"], opt2.state_dict()["state"]
        assert a.keys() == b.keys()
        for idx in a:
            for key, value in a[idx].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b[idx][key])), (name, key)


# ---------------------------------------------------------------- refused files
def test_corrupted_and_truncated_checkpoints_are_refused(tmp_path: Path) -> None:
    train(tiny_config(steps=4), tmp_path, quiet=True)
    file = tmp_path / CHECKPOINT
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint.safetensors is corrupted or truncated"):
        load_run(tmp_path)
    file.write_bytes(data[:5])
    with pytest.raises(ValueError, match="shorter than the 8-byte header"):
        load_run(tmp_path)
    file.write_bytes(data[:8] + b"#" * 40 + data[48:])
    with pytest.raises(ValueError, match="bad header"):
        load_run(tmp_path)
    flipped = bytearray(data)
    flipped[-3] ^= 0x01  # one bit inside the tensor data
    file.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        train(tiny_config(steps=8), tmp_path, quiet=True, resume=True)
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_run(tmp_path / "missing")
