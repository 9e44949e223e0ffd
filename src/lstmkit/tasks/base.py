"""The contract every task honours: data, loss and metric; nothing about training loops.

A task generates batches from an explicit ``torch.Generator`` (same seed, same data), has a
fixed held-out test set, a loss to train on, metrics to report, and the success criterion of
its paper where there is one.

A task may also offer *streams* for stateful training (truncated BPTT): :meth:`Task.streams`
returns a :class:`Streams` object that reads B long sequences in consecutive segments, says
which streams start anew, and hands its positions back as JSON so a resumed run continues them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

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


@dataclass
class Segment:
    """The next ``length`` steps of B streams.

    batch: a :class:`Batch` of B rows, row b the next steps of stream b; its ``mask`` (B, length) is
      False at steps past the end of a stream's sequence (padding; they count in no loss).
    reset: (B,) bool, True where stream b starts a new sequence at this segment's first step: the
      state carried into it must be zeroed (the other streams keep theirs).
    """

    batch: Batch
    reset: Tensor


class Streams:
    """B streams read as consecutive segments, the protocol of stateful training (truncated BPTT).

    A task that has streams returns one from :meth:`Task.streams`. The training loop calls
    :meth:`next` once per optimiser step with a per-step generator, carries the model's state from
    segment to segment (zeroing streams whose ``reset`` is True), and saves :meth:`state_dict` with
    each checkpoint; :meth:`load_state_dict` puts the positions back when a run resumes, so that
    the segments after a resume are the ones the uninterrupted run reads. A stream that reaches the
    end of its sequence pads the rest of that segment (``mask`` False) and resets at the next one.

    Example::

        >>> streams = make_task("charlm", seq_len=20).streams(4)        # doctest: +SKIP
        >>> seg = streams.next(20, torch.Generator().manual_seed(0))   # doctest: +SKIP
        >>> seg.batch.inputs.shape, seg.reset.tolist()                  # doctest: +SKIP
        (torch.Size([4, 20]), [True, True, True, True])
    """

    batch_size: int = 0  # B, the number of streams

    def next(self, length: int, generator: torch.Generator) -> Segment:
        """The next ``length`` steps of every stream (random choices drawn from ``generator`` only)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Every stream's position (and whatever else its next segment depends on), JSON-ready."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; ValueError naming the field when it does not fit."""
        raise NotImplementedError


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

    def streams(self, batch_size: int) -> Streams:
        """``batch_size`` streams of consecutive segments for stateful training (tasks that have them
        override this and :attr:`has_streams`; readout "all" only). Others raise ValueError."""
        raise ValueError(f"task {self.name!r} has no streams (stateful training needs a task that has them)")

    has_streams: ClassVar[bool] = False  # True when :meth:`streams` is implemented

    def events(self, batch: Batch) -> list[list[int]]:
        """For each sequence, the steps that carry the information the target depends on (marked
        in gate pictures); empty lists where a task has no such steps."""
        return [[] for _ in range(len(batch))]

    # What the paper reports, for the results table: {"source": ..., "criterion": ..., ...}.
    paper: ClassVar[dict[str, object]] = {}
