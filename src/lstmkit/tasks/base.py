"""The contract every task honours: data, loss and metric; nothing about training loops.

A task generates batches from an explicit ``torch.Generator`` (same seed, same data), has a
fixed held-out test set, a loss to train on, metrics to report, and the success criterion of
its paper where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ._common import fixed_generator


@dataclass
class Batch:
    """One batch, batch-first and zero-padded.

    inputs: (B, T, I) float, or (B, T) int64 token ids when the task has a ``vocab_size``.
    targets: task-defined: (B, O) for a readout at the last valid step, (B, T) / (B, T, O) per step.
    lengths: (B,) int64 valid length of each sequence.
    mask: (B, T) bool, True at steps that count in a per-step loss; None for last-step readouts.
    """

    inputs: Tensor
    targets: Tensor
    lengths: Tensor
    mask: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def slice(self, start: int, stop: int) -> Batch:
        """Sequences ``start:stop`` (for evaluation in chunks and per-rank shards)."""
        return Batch(
            self.inputs[start:stop],
            self.targets[start:stop],
            self.lengths[start:stop],
            None if self.mask is None else self.mask[start:stop],
            {k: v[start:stop] for k, v in self.extra.items()},
        )


class Task:
    """Base class of the tasks. Subclasses set the class attributes and implement the methods.

    ``readout`` says what the model emits: "last" -> (B, output_size) from the hidden state at
    each sequence's last valid step; "all" -> (B, T, output_size) at every step.
    """

    name: ClassVar[str] = ""
    readout: ClassVar[str] = "last"
    input_size: int = 0  # features per step (ignored when vocab_size is set)
    output_size: int = 0  # model outputs per readout
    vocab_size: int | None = None  # token-id input, embedded by the model, when set
    test_size: int = 2560  # size of the fixed held-out test set
    test_seed: int = 0  # seed of the generator that draws it (each task sets its own)

    @property
    def max_lag(self) -> int | None:
        """The longest time lag, in steps, the task may ask a model to bridge (None when unknown).

        ``lstmkit train`` uses it as chrono's ``T_max`` (:func:`lstmkit.init.chrono_`).
        """
        return None

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh training batch drawn from ``generator``."""
        raise NotImplementedError

    def test_set(self) -> Batch:
        """The fixed held-out test set: made once by :meth:`make_test_set`, then the same object every call."""
        cached: Batch | None = self.__dict__.get("_test_set")
        if cached is None:
            cached = self.__dict__["_test_set"] = self.make_test_set()
        return cached

    def make_test_set(self) -> Batch:
        """``test_size`` sequences drawn by :meth:`sample` from a generator seeded with ``test_seed``."""
        return self.sample(self.test_size, fixed_generator(self.test_seed))

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Scalar training loss of the model's prediction."""
        raise NotImplementedError

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """Named metrics (including ``loss``), computed without gradients."""
        raise NotImplementedError

    def solved(self, metrics: dict[str, float]) -> bool:
        """The paper's success criterion on test metrics (False where the task has none)."""
        return False

    def config(self) -> dict[str, object]:
        """JSON-ready constructor arguments, so ``make_task(name, **config)`` rebuilds the task."""
        return {}

    def events(self, batch: Batch) -> list[list[int]]:
        """For each sequence, the steps that carry the information the target depends on (marked
        in gate pictures); empty lists where a task has no such steps."""
        return [[] for _ in range(len(batch))]

    # What the paper reports, for the results table: {"source": ..., "criterion": ..., ...}.
    paper: ClassVar[dict[str, object]] = {}
