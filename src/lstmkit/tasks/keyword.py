"""Keyword in a stream: at every step, name the last keyword heard, however long ago.

An endless stream of token ids: ``noise`` filler symbols (ids ``0 .. noise - 1``) with, every
``min_gap`` to ``max_gap`` steps (uniform), one of ``keywords`` keyword symbols (ids
``noise .. noise + keywords - 1``). The target at step t is the index of the last keyword at or
before t::

    x_t = keyword k           (when one falls at step t)       y_t = k
    x_t = a filler symbol     (otherwise)                      y_t = y_{t-1}

so a prediction depends on an event up to ``max_gap`` steps back, far longer than a training
window of ``seq_len`` steps. Two ways to train on it:

- stateless (``lstmkit train keyword``): independent windows of ``seq_len`` steps cut from the
  stream at random places, each started from a zero state (the keyword before the window is drawn
  uniformly, so the first steps of a window cannot be known from the window alone);
- stateful (``lstmkit train keyword --tbptt K``): B streams of sequences of ``episode_min`` to
  ``episode_max`` steps (each starting with a keyword), read K steps at a time with the state
  carried; a stream whose sequence ends pads the rest of its segment and starts a new one.

The test set is ONE stream of ``test_len`` steps, run from a zero state to its end (the state
carried over the whole stream), so it measures what a deployed streaming model does. Metrics:
``accuracy`` over every step, and ``far_accuracy`` over the steps whose last keyword lies more
than ``seq_len`` steps back (where only a state carried beyond one window can be right). Solved
at accuracy >= 0.99.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction, fixed_generator
from .base import Batch, Segment, Streams, Task

ENDLESS = -1
"""Steps left in a stream's sequence when it never ends (stateless windows, the test stream)."""


class KeywordTask(Task):
    """Keyword in a stream: at every step, the index of the last keyword seen, however long ago.

    See the module docstring for the stream, the stateless windows and the stateful streams.

    Inputs (B, seq_len) int64 symbol ids (``vocab_size`` = noise + keywords, embedded by the model);
    targets (B, seq_len) int64 keyword indices; mask (B, seq_len) True at real steps; readout "all":
    the model emits (B, seq_len, keywords) logits. Loss: cross-entropy over the masked steps.

    Example::

        >>> task = KeywordTask(seq_len=20)
        >>> batch = task.sample(3, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape, task.test_set().inputs.shape
        (torch.Size([3, 20]), torch.Size([1, 20000]))
    """

    name: ClassVar[str] = "keyword"
    readout: ClassVar[str] = "all"
    has_streams: ClassVar[bool] = True
    vocab_size: int
    paper: ClassVar[dict[str, object]] = {
        "source": "keyword-in-stream, a lstmkit task for stateful training (after streaming keyword spotting)",
        "criterion": "accuracy >= 0.99 on one test stream run from a zero state",
    }

    def __init__(
        self,
        seq_len: int = 50,
        keywords: int = 4,
        noise: int = 8,
        min_gap: int = 100,
        max_gap: int = 400,
        episode_min: int = 1000,
        episode_max: int = 5000,
        test_len: int = 20000,
        test_seed: int = 2121,
    ) -> None:
        self.seq_len = check_int("seq_len", seq_len, 1)
        self.keywords = check_int("keywords", keywords, 2)
        self.noise = check_int("noise", noise, 1)
        self.min_gap = check_int("min_gap", min_gap, 1)
        self.max_gap = check_int("max_gap", max_gap, self.min_gap)
        self.episode_min = check_int("episode_min", episode_min, 1)
        self.episode_max = check_int("episode_max", episode_max, self.episode_min)
        self.test_len = check_int("test_len", test_len, 1)
        self.test_seed = int(test_seed)
        self.vocab_size = self.noise + self.keywords
        self.output_size = self.keywords
        self.input_size = 0
        self.test_size = 1

    @property
    def max_lag(self) -> int:
        """The longest gap between keywords."""
        return self.max_gap

    # ------------------------------------------------------------------ data
    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Stateless windows: the keyword before the window and the steps to the next one drawn at random."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        label = torch.randint(0, self.keywords, (b,), generator=gen).tolist()
        until = torch.randint(1, self.max_gap + 1, (b,), generator=gen).tolist()
        carry = [[label[i], until[i], ENDLESS] for i in range(b)]
        return self.generate(carry, self.seq_len, gen)

    def make_test_set(self) -> Batch:
        """One stream of ``test_len`` steps from a keyword at step 0 (fixed generator)."""
        return self.generate([[0, 0, ENDLESS]], self.test_len, fixed_generator(self.test_seed))

    def streams(self, batch_size: int) -> Streams:
        """``batch_size`` streams of sequences of ``episode_min`` to ``episode_max`` steps."""
        return KeywordStreams(self, check_batch_size(batch_size))

    def generate(self, carry: list[list[int]], length: int, generator: torch.Generator) -> Batch:
        """``length`` steps of each stream from its carry ``[label, steps to the next keyword, steps
        left]`` (updated in place); steps past a sequence's end are padding (mask False).

        Every random number is drawn up front in a fixed order, so the result depends only on the
        carry and the generator.
        """
        b = len(carry)
        filler = torch.randint(0, self.noise, (b, length), generator=generator).tolist()
        key = torch.randint(0, self.keywords, (b, length), generator=generator).tolist()
        gap = torch.randint(self.min_gap, self.max_gap + 1, (b, length), generator=generator).tolist()
        inputs = torch.zeros(b, length, dtype=torch.int64)
        targets = torch.zeros(b, length, dtype=torch.int64)
        age = torch.zeros(b, length, dtype=torch.int64)  # steps since the last keyword
        mask = torch.zeros(b, length, dtype=torch.bool)
        for i, (label, until, left) in enumerate(carry):
            x, y, a, since = [0] * length, [0] * length, [0] * length, self.max_gap
            steps = length if left == ENDLESS else min(length, left)
            for t in range(steps):
                if until == 0:
                    label, until, since = key[i][t], gap[i][t], 0
                    x[t] = self.noise + label
                else:
                    x[t] = filler[i][t]
                y[t], a[t] = label, since
                until, since = until - 1, since + 1
            inputs[i], targets[i], age[i] = torch.tensor(x), torch.tensor(y), torch.tensor(a)
            mask[i, :steps] = True
            carry[i] = [label, until, left if left == ENDLESS else left - steps]
        lengths = mask.sum(1)
        return Batch(inputs, targets, lengths, mask, {"age": age})

    # ------------------------------------------------------------------ loss and metrics
    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy over the masked steps; prediction (B, T, keywords) logits."""
        check_prediction(prediction, (*batch.targets.shape, self.keywords), self.name)
        mask = batch.mask.to(prediction.device) if batch.mask is not None else None
        target = batch.targets.to(prediction.device)
        if mask is None:
            return F.cross_entropy(prediction.reshape(-1, self.keywords), target.reshape(-1))
        return F.cross_entropy(prediction[mask], target[mask])

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``accuracy`` over every step and ``far_accuracy`` where the last keyword is
        more than ``seq_len`` steps back."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            right = prediction.detach().argmax(-1) == batch.targets.to(prediction.device)
            mask = batch.mask if batch.mask is not None else torch.ones_like(right)
            far = mask & (batch.extra["age"] > self.seq_len)
            out = {"loss": loss, "accuracy": float(right[mask].to(torch.float64).mean())}
            if bool(far.any()):
                out["far_accuracy"] = float(right[far].to(torch.float64).mean())
        return out

    def solved(self, metrics: dict[str, float]) -> bool:
        """Accuracy >= 0.99 on the test stream."""
        return metrics.get("accuracy", 0.0) >= 0.99

    def config(self) -> dict[str, object]:
        return {
            "seq_len": self.seq_len,
            "keywords": self.keywords,
            "noise": self.noise,
            "min_gap": self.min_gap,
            "max_gap": self.max_gap,
            "episode_min": self.episode_min,
            "episode_max": self.episode_max,
            "test_len": self.test_len,
            "test_seed": self.test_seed,
        }

    def events(self, batch: Batch) -> list[list[int]]:
        """The steps where a keyword falls."""
        return [torch.nonzero(row >= self.noise).flatten().tolist() for row in batch.inputs]


class KeywordStreams(Streams):
    """B streams of :class:`KeywordTask` sequences; a stream whose sequence ended starts a new one
    (drawn from the step's generator) at the next segment, with ``reset`` True.

    Example::

        >>> streams = KeywordTask().streams(2)
        >>> seg = streams.next(50, torch.Generator().manual_seed(0))
        >>> seg.reset.tolist(), seg.batch.inputs.shape
        ([True, True], torch.Size([2, 50]))
    """

    def __init__(self, task: KeywordTask, batch_size: int) -> None:
        self.task, self.batch_size = task, batch_size
        self._carry = [[0, 0, 0] for _ in range(batch_size)]  # [label, until, left]: left 0 -> new sequence

    def next(self, length: int, generator: torch.Generator) -> Segment:
        check_int("length", length, 1)
        t = self.task
        episode = torch.randint(t.episode_min, t.episode_max + 1, (self.batch_size,), generator=generator).tolist()
        reset = torch.tensor([c[2] == 0 for c in self._carry], dtype=torch.bool)
        for i, c in enumerate(self._carry):
            if c[2] == 0:
                self._carry[i] = [0, 0, episode[i]]  # a keyword at the first step of every sequence
        return Segment(t.generate(self._carry, length, generator), reset)

    def state_dict(self) -> dict[str, Any]:
        return {"carry": [list(c) for c in self._carry]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        carry = state.get("carry")
        if not isinstance(carry, list) or len(carry) != self.batch_size or any(len(c) != 3 for c in carry):
            got = len(carry) if isinstance(carry, list) else type(carry).__name__
            raise ValueError(f"keyword stream state must hold {self.batch_size} carries of 3 ints; got {got}")
        self._carry = [[int(v) for v in c] for c in carry]
