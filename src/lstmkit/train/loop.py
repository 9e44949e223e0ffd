"""The one training loop every task uses.

Each step t (1-based) runs the same phases::

    batch_t  = task.sample(B, Generator(seed_of(seed, t)))        data from a per-step generator
    shard_t  = batch_t[rank * B/N : (rank + 1) * B/N]              this process's part
    torch.manual_seed(seed_of(seed, t, rank))                      dropout / zoneout masks
    loss     = task.loss(model(shard.inputs, shard.lengths), shard)
    backward; clip ||grad||_2 to `clip`; optimiser step
    log every `log_every`; evaluate on the test set every `eval_every` (and at the end);
    checkpoint at every evaluation, every `checkpoint_every`, at the end and on Ctrl-C

Because every batch and every mask depends only on (seed, step), a run resumed from a
checkpoint at step k replays steps k+1, ... exactly as the uninterrupted run does.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..tasks.base import Batch, Task
from . import distributed
from .best import BEST, BestKeeper, load_best
from .checkpoint import CHECKPOINT, METRICS, load_checkpoint, save_checkpoint
from .config import RunConfig
from .curves import plot_curve, read_metrics
from .model import SequenceModel, build_model

CURVE = "curve.png"
EVAL_CHUNK = 512
_MASK64 = (1 << 64) - 1


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C (SIGINT) once the checkpoint is saved; the CLI exits with status 130."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__(f"interrupted at step {result.step}; checkpoint saved in {result.run_dir}")
        self.result = result


@dataclass
class TrainResult:
    """What a run ended with."""

    run_dir: Path  # where the files are
    step: int  # optimiser steps done
    sequences: int  # training sequences seen
    test: dict[str, float] = field(default_factory=dict)  # last test metrics
    solved_at: int | None = None  # sequences seen at the first evaluation meeting the criterion
    elapsed: float = 0.0  # seconds of training, summed over resumes
    interrupted: bool = False  # True when stopped by SIGINT
    best: dict[str, Any] = field(default_factory=dict)  # best validation step, value and its test metrics


def seed_of(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed mixed from (seed, step, stream) (splitmix64 finaliser); distinct inputs give
    unrelated generators.

    Example::

        >>> seed_of(0, 1) != seed_of(0, 2) != seed_of(1, 1)
        True
    """
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def make_optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optim`` over ``model``'s parameters.

    Example::

        >>> make_optimizer(model, config)   # doctest: +SKIP
        Adam (...)
    """
    o = config.optim
    params = model.parameters()
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.RMSprop(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def check_fits(task: Task, config: RunConfig) -> None:
    """Refuse (ValueError naming both) a model config whose sizes or readout do not match the task's.

    Example::

        >>> check_fits(make_task("adding"), config)   # doctest: +SKIP
    """
    m = config.model
    want = {"readout": task.readout, "output_size": task.output_size, "vocab_size": task.vocab_size}
    if task.vocab_size is None:
        want["input_size"] = task.input_size
    bad = [f"{k}={getattr(m, k)!r} (task {config.task!r} needs {v!r})" for k, v in want.items() if getattr(m, k) != v]
    if bad:
        raise ValueError("model config does not fit the task: " + ", ".join(bad))


def evaluate(model: nn.Module, task: Task, batch: Batch | None = None, chunk: int = EVAL_CHUNK) -> dict[str, float]:
    """Task metrics of ``model`` on ``batch`` (default: the task's test set), in chunks, eval mode.

    Example::

        >>> evaluate(model, task)["accuracy"]   # doctest: +SKIP
        0.9961
    """
    batch = task.test_set() if batch is None else batch
    was_training = model.training
    model.eval()
    with torch.no_grad():
        preds = [
            model(part.inputs, part.lengths)
            for part in (batch.slice(i, i + chunk) for i in range(0, len(batch), chunk))
        ]
    model.train(was_training)
    return task.metrics(torch.cat(preds), batch)


def main_metric(metrics: dict[str, float]) -> str:
    """The metric shown in the progress bar and the curve (bits per character, accuracy, ...).

    Example::

        >>> main_metric({"loss": 0.1, "accuracy": 0.9})
        'accuracy'
    """
    for name in ("bpc", "string_accuracy", "correct", "accuracy", "mse", "mae"):
        if name in metrics:
            return name
    return "loss"


class _Interrupt:
    """Turns the first SIGINT into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.flag = False
        self._old: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C stops at once (files stay whole)

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    task: Task | None = None,
    resume: bool = False,
    quiet: bool = False,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` (see the module docstring for the phases).

    ``task`` defaults to ``make_task(config.task, **config.task_args)``. With ``resume`` the
    checkpoint in ``run_dir`` is restored (refused when its config differs) and training goes
    on to ``config.optim.steps``. Raises :class:`TrainingInterrupted` after Ctrl-C, once the
    checkpoint is saved. Under ``torchrun`` every process calls this; rank 0 writes.

    Example::

        >>> from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
        >>> cfg = RunConfig(task="adding", task_args={"T": 30}, model=ModelConfig(2, 1, hidden=16),
        ...                 optim=OptimConfig(lr=1e-2, steps=50))
        >>> train(cfg, "runs/tiny", quiet=True).step    # doctest: +SKIP
        50
    """
    run_dir = Path(run_dir)
    if task is None:
        from ..tasks import make_task

        task = make_task(config.task, **config.task_args)
    check_fits(task, config)
    info = distributed.init_from_env()
    try:
        return _run(config, run_dir, task, resume, quiet, on_log, info)
    finally:
        distributed.shutdown(info)


def _run(
    config: RunConfig,
    run_dir: Path,
    task: Task,
    resume: bool,
    quiet: bool,
    on_log: Callable[[dict[str, Any]], None] | None,
    info: distributed.DistInfo,
) -> TrainResult:
    o = config.optim
    if o.batch_size % info.world_size:
        raise ValueError(f"batch_size {o.batch_size} must divide evenly among {info.world_size} processes")
    shard = o.batch_size // info.world_size
    model: SequenceModel = build_model(config.model, config.seed)
    optimizer = make_optimizer(model, config)
    metrics_file = run_dir / METRICS
    state: dict[str, Any] = {
        "step": 0,
        "elapsed": 0.0,
        "window_loss": 0.0,
        "window_steps": 0,
        "solved_at": None,
        "test": {},
    }
    if resume:
        state.update(load_checkpoint(run_dir, model, optimizer, config))
        if info.is_main:  # drop log lines written after the checkpoint
            kept = [r for r in read_metrics(metrics_file) if r["step"] <= state["step"]]
            _write_lines(metrics_file, kept)
    else:
        if (run_dir / CHECKPOINT).exists():
            raise ValueError(f"{run_dir} already holds a run; resume it or choose another directory")
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_lines(metrics_file, [])
            (run_dir / BEST).unlink(missing_ok=True)  # best weights of an earlier run never carry over
    ddp_model = distributed.wrap(model, info)
    start, elapsed0, t0 = int(state["step"]), float(state["elapsed"]), time.perf_counter()
    window_loss, window_steps = float(state["window_loss"]), int(state["window_steps"])
    solved_at, test = state["solved_at"], dict(state["test"])
    metric = main_metric(test) if test else None
    keeper = BestKeeper(task, run_dir, o.patience, state.get("best"))

    def snapshot(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "sequences": step * o.batch_size,
            "elapsed": elapsed0 + time.perf_counter() - t0,
            "window_loss": window_loss,
            "window_steps": window_steps,
            "solved_at": solved_at,
            "test": test,
            "best": keeper.state(),
        }

    def save(step: int) -> None:
        if info.is_main:
            save_checkpoint(run_dir, model, optimizer, config, snapshot(step))

    bar = _progress(o.steps, start, quiet or not info.is_main)
    step, interrupted, stop, evaluating = start, False, False, False
    ddp_model.train()
    with _Interrupt() as sigint:
        while step < o.steps and not stop:
            step += 1
            batch = task.sample(o.batch_size, torch.Generator().manual_seed(seed_of(config.seed, step)))
            part = batch.slice(info.rank * shard, (info.rank + 1) * shard) if info.active else batch
            torch.manual_seed(seed_of(config.seed, step, 1 + info.rank))
            loss = task.loss(ddp_model(part.inputs, part.lengths), part)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if o.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), o.clip)
            optimizer.step()
            window_loss += float(loss.detach())
            window_steps += 1
            last = step == o.steps
            evaluating = step % o.eval_every == 0 or last
            row: dict[str, Any] | None = None
            if step % o.log_every == 0 or evaluating:
                mean_loss = distributed.mean_over_ranks(window_loss / window_steps, info)
                row = {"step": step, "sequences": step * o.batch_size, "train_loss": mean_loss}
                window_loss, window_steps = 0.0, 0
                if not math.isfinite(mean_loss):
                    row["diverged"] = True
                    stop = True
            if evaluating:
                test = evaluate(model, task)
                metric = main_metric(test)
                solved = bool(task.solved(test))
                if solved and solved_at is None:
                    solved_at = step * o.batch_size
                assert row is not None
                row.update(test=test, solved=solved)
                stop = stop or (solved and o.stop_when_solved)
                val, patience_out = keeper.update(model, step, evaluate, write=info.is_main)
                if val:
                    row.update(val=val, early_stop=patience_out)
                stop = stop or patience_out
            if row is not None:
                row["elapsed"] = round(elapsed0 + time.perf_counter() - t0, 3)
                if info.is_main:
                    with open(metrics_file, "a") as f:
                        f.write(json.dumps(row, sort_keys=True) + "\n")
                if on_log is not None:
                    on_log(row)
            interrupted = distributed.any_rank(sigint.flag, info)
            if evaluating or stop or interrupted or (o.checkpoint_every and step % o.checkpoint_every == 0):
                save(step)
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{float(loss.detach()):.4g}"}
                if metric:
                    post[metric] = f"{test[metric]:.4g}"
                bar.set_postfix(post, refresh=False)
            if interrupted:
                break
    if bar is not None:
        bar.close()
    if step == start:
        save(step)  # nothing new to train (the last step always checkpoints)
    result = TrainResult(
        run_dir, step, step * o.batch_size, test, solved_at, elapsed0 + time.perf_counter() - t0, interrupted
    )
    if keeper.step is not None and (run_dir / BEST).is_file():  # the test metrics of the kept weights
        best_model = build_model(config.model, config.seed)
        load_best(run_dir, best_model)
        result.best = {**keeper.state(), "test": evaluate(best_model, task)}
    if info.is_main:
        plot_curve(
            read_metrics(metrics_file),
            run_dir / CURVE,
            metric or "loss",
            title=f"{config.task} {_short(config.task_args)} - {config.model.baseline} H={config.model.hidden}",
        )
    if interrupted:
        raise TrainingInterrupted(result)
    return result


def _short(args: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in args.items() if len(repr(v)) <= 40 and k not in ("test_seed", "test_size"))


def _progress(total: int, initial: int, disable: bool) -> Any:
    if disable:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True, mininterval=0.5)


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..fileio import atomic_write

    atomic_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
