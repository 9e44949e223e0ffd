"""Seeds, the optimiser, evaluation and the result of a run: the pieces the loop's phases share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..tasks.base import Batch, Task
from .config import RunConfig

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
    skipped: int = 0  # steps whose update was skipped for a non-finite loss or gradient (on_nan="skip")


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
