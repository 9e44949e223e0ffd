"""The copy-memory problem: read ten symbols, wait, and write them back after a delimiter.

Arjovsky, Shah & Bengio (2016), Unitary Evolution Recurrent Neural Networks, Section 4.1. There
are 10 categories: 0 is the blank, 1..8 are data symbols, 9 is the delimiter. A sequence has
length ``T + 20``::

    input : s_1 .. s_10 (uniform on 1..8), 0 x (T - 1), 9, 0 x 10
    target: 0 x (T + 10), s_1 .. s_10

The loss is the cross-entropy averaged over every step. Knowing nothing but the blank/answer
layout, the best one can do is predict the blank with certainty for the first ``T + 10`` steps
and a uniform guess over the 8 symbols for the last 10, which scores::

    baseline = 10 ln 8 / (T + 20)
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task

NUM_CATEGORIES = 10
"""Blank (0), data symbols (1..8) and delimiter (9)."""

COPY_LENGTH = 10
"""Number of symbols to remember and reproduce."""

BLANK, DELIMITER = 0, 9


def copy_baseline(T: int) -> float:
    """Cross-entropy per step of the memoryless strategy: ``10 ln 8 / (T + 20)`` nats.

    Example::

        >>> round(copy_baseline(100), 4)
        0.1733
    """
    return COPY_LENGTH * math.log(8) / (T + 2 * COPY_LENGTH)


class CopyTask(Task):
    """Copy memory (Arjovsky et al. 2016): reproduce 10 symbols after a gap of ``T`` blanks.

    Inputs (B, T + 20, 10) one-hot float; targets (B, T + 20) int64 categories; mask (B, T + 20)
    all True; readout "all": the model emits (B, T + 20, 10) logits. ``batch.extra["symbols"]``
    (B, 10) holds the symbols to copy.

    Loss: cross-entropy averaged over all steps (``loss``; ``baseline_loss`` is ``10 ln 8 / (T + 20)``).
    Metrics also report ``accuracy`` (per symbol, over the last 10 steps) and ``sequence_accuracy``
    (all 10 right). The paper gives no success criterion; ``solved`` is our convention: accuracy on
    the last 10 steps of the test set >= 0.99.

    Example::

        >>> task = CopyTask(T=50)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape, batch.targets.shape
        (torch.Size([2, 70, 10]), torch.Size([2, 70]))
    """

    name: ClassVar[str] = "copy"
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "Arjovsky, Shah & Bengio 2016, Unitary Evolution Recurrent Neural Networks, Section 4.1",
        "criterion": "none in the paper; compared against the memoryless baseline 10 ln 8 / (T + 20)",
        "note": "`solved` is our convention: >= 99% of the copied symbols right on the test set",
    }

    def __init__(self, T: int = 100, test_size: int = 2560, test_seed: int = 5) -> None:
        self.T = check_int("T", T, 1)
        self.test_size = check_int("test_size", test_size, 1)
        self.test_seed = check_int("test_seed", test_seed, 0)
        self.input_size = NUM_CATEGORIES
        self.output_size = NUM_CATEGORIES

    @property
    def length(self) -> int:
        """Steps per sequence: ``T + 20``."""
        return self.T + 2 * COPY_LENGTH

    @property
    def max_lag(self) -> int:
        """The longest lag: ``T + 20`` (the first symbol is read at step 0 and written back at the end)."""
        return self.length

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy of the memoryless strategy, ``10 ln 8 / (T + 20)``."""
        return copy_baseline(self.T)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch of ``batch_size`` sequences drawn from ``generator``."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        L, n = self.length, COPY_LENGTH
        symbols = torch.randint(1, 9, (b, n), generator=gen)  # (B, 10), uniform on 1..8
        tokens = torch.full((b, L), BLANK, dtype=torch.int64)
        tokens[:, :n] = symbols
        tokens[:, L - n - 1] = DELIMITER  # after T - 1 blanks
        targets = torch.full((b, L), BLANK, dtype=torch.int64)
        targets[:, L - n :] = symbols
        inputs = F.one_hot(tokens, NUM_CATEGORIES).to(torch.float32)  # (B, L, 10)
        lengths = torch.full((b,), L, dtype=torch.int64)
        mask = torch.ones(b, L, dtype=torch.bool)
        return Batch(inputs, targets, lengths, mask, {"symbols": symbols})

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy over all (sequence, step) pairs; prediction (B, T + 20, 10) logits."""
        check_prediction(prediction, (len(batch), self.length, NUM_CATEGORIES), self.name)
        target = batch.targets.to(prediction.device)
        return F.cross_entropy(prediction.reshape(-1, NUM_CATEGORIES), target.reshape(-1))

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``baseline_loss``, ``accuracy`` and ``sequence_accuracy`` on the last 10 steps."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            guess = prediction.detach()[:, -COPY_LENGTH:].argmax(dim=-1)  # (B, 10)
            right = guess == batch.targets[:, -COPY_LENGTH:].to(guess.device)
        return {
            "loss": loss,
            "baseline_loss": self.baseline_loss,
            "accuracy": float(right.to(torch.float64).mean()),
            "sequence_accuracy": float(right.all(dim=1).to(torch.float64).mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """Our convention (none in the paper): copied-symbol accuracy >= 0.99."""
        return metrics["accuracy"] >= 0.99

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready."""
        return {"T": self.T, "test_size": self.test_size, "test_seed": self.test_seed}
