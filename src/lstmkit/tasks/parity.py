"""Parity: is the number of ones in a bit string even? Trained on short strings, tested on long ones.

The formal-language test of state tracking in Beck et al. (2024), xLSTM: Extended Long Short-Term
Memory, Section 4.1 and Appendix B.1.1 (after Delétang et al. 2023, Neural Networks and the Chomsky
Hierarchy). A string of ``n`` bits b_1 .. b_n (uniform, independent) is read one bit per step; at
its last bit the model answers

    y = (b_1 + ... + b_n) mod 2          (0: even number of ones, 1: odd)

Training strings have lengths uniform on ``min_len .. max_len`` (the paper: up to 40; we start at
3), test strings lengths uniform on ``test_min .. test_max`` (the paper: 40 .. 256), so the test
measures length generalisation: a model that tracks the running parity as a two-state automaton
is right at every length; one that fits the training lengths only is at chance (0.5) beyond them.
The paper reports accuracy rescaled so that chance is 0 and perfect is 1: ``(acc - 0.5) / 0.5``.

The paper scores the answer after the last bit only, and trains for 100k steps of 256 strings.
``running=True`` (our default, for CPU budgets of minutes; False is the paper's form) also trains
on the parity of every prefix, one target per bit, so each string is a curriculum of lengths 1..n;
the test scores the last bit either way.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction, uniform_int
from .base import Batch, Task

CHANCE = 0.5
"""Accuracy of a guess: two classes, equally likely."""


def scaled_accuracy(accuracy: float, chance: float = CHANCE) -> float:
    """The xLSTM paper's rescaling, 0 at chance and 1 when perfect: ``(acc - chance) / (1 - chance)``.

    Example::

        >>> scaled_accuracy(0.75)
        0.5
    """
    return (accuracy - chance) / (1.0 - chance)


class ParityTask(Task):
    """Parity of a bit string (Beck et al. 2024, App. B.1.1): train on lengths 3..40, test on 40..256.

    Inputs (B, T) int64 bits 0/1, zero-padded past each length (T the longest in the batch);
    targets (B, T) int64 parity of each prefix, ``targets[b, t] = (bits[b, 0] + .. + bits[b, t]) % 2``;
    mask (B, T) True at each string's last bit (at every bit of it for training batches when
    ``running``); readout "all": the model emits (B, T, 2) logits. ``lengths`` (B,) holds each length.

    Loss: cross-entropy at the masked steps. Metrics (at each string's last bit): ``accuracy``,
    ``scaled_accuracy`` (the paper's (acc - 0.5) / 0.5) and ``long_accuracy`` (strings in the
    longest quarter of the test range). The paper gives no
    success criterion; ``solved`` is our convention: test accuracy >= 0.99.

    Example::

        >>> task = ParityTask(max_len=10)
        >>> batch = task.sample(4, torch.Generator().manual_seed(0))
        >>> last = batch.targets.gather(1, (batch.lengths - 1).unsqueeze(1)).squeeze(1)
        >>> bool((last == batch.inputs.sum(1) % 2).all())
        True
    """

    name: ClassVar[str] = "parity"
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "Beck et al. 2024, xLSTM: Extended Long Short-Term Memory, Figure 4 and Appendix B.1.1",
        "criterion": "none in the paper; it reports accuracy on lengths 40..256 rescaled to (acc - 0.5) / 0.5",
        "note": "paper: LSTM and sLSTM (xLSTM[0:1]) generalise (scaled accuracy 1.0), mLSTM alone does not; "
        "`solved` is our convention: test accuracy >= 0.99",
    }

    def __init__(
        self,
        min_len: int = 3,
        max_len: int = 40,
        test_min: int = 40,
        test_max: int = 256,
        running: bool = True,
        test_size: int = 512,
        test_seed: int = 11,
    ) -> None:
        if not isinstance(running, bool):
            raise TypeError(f"running must be a bool; got {running!r}")
        self.running = running
        self.min_len = check_int("min_len", min_len, 1)
        self.max_len = check_int("max_len", max_len, self.min_len)
        self.test_min = check_int("test_min", test_min, 1)
        self.test_max = check_int("test_max", test_max, self.test_min)
        self.test_size = check_int("test_size", test_size, 1)
        self.test_seed = check_int("test_seed", test_seed, 0)
        self.vocab_size = 2
        self.input_size = 1
        self.output_size = 2

    @property
    def max_lag(self) -> int:
        """The longest string a model is tested on (the first bit still counts at the last)."""
        return max(self.max_len, self.test_max)

    def strings(self, batch_size: int, low: int, high: int, generator: torch.Generator, every: bool = False) -> Batch:
        """``batch_size`` strings with lengths uniform on ``low .. high`` drawn from ``generator``;
        the mask marks every valid bit when ``every``, else the last one."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        lengths = uniform_int(low, high, b, gen)  # (B,)
        T = int(lengths.max())
        bits = torch.randint(0, 2, (b, T), generator=gen)  # (B, T)
        valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        bits = bits * valid
        targets = bits.cumsum(dim=1) % 2  # (B, T) parity of each prefix
        last = torch.arange(T).unsqueeze(0) == (lengths - 1).unsqueeze(1)  # (B, T)
        return Batch(bits, targets, lengths, valid if every else last)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A training batch: lengths uniform on ``min_len .. max_len``."""
        return self.strings(batch_size, self.min_len, self.max_len, generator, every=self.running)

    def make_test_set(self) -> Batch:
        """``test_size`` strings with lengths uniform on ``test_min .. test_max`` (seed ``test_seed``)."""
        gen = torch.Generator().manual_seed(self.test_seed)
        return self.strings(self.test_size, self.test_min, self.test_max, gen)

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy of the (B, T, 2) logits against the parity at the masked steps."""
        check_prediction(prediction, (len(batch), batch.inputs.shape[1], 2), self.name)
        assert batch.mask is not None  # every parity batch has one
        mask = batch.mask.to(prediction.device)
        return F.cross_entropy(prediction[mask], batch.targets.to(prediction.device)[mask])

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, then at each string's last bit ``accuracy``, ``scaled_accuracy`` and
        ``long_accuracy`` (strings in the longest quarter of the lengths)."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            lengths = batch.lengths.cpu()
            last = (lengths - 1).unsqueeze(1)  # (B, 1)
            guess = prediction.detach().argmax(dim=-1).cpu().gather(1, last).squeeze(1)  # (B,)
            right = (guess == batch.targets.gather(1, last).squeeze(1)).to(torch.float64)
            lo, hi = int(lengths.min()), int(lengths.max())
            long = lengths >= lo + 0.75 * (hi - lo)
        accuracy = float(right.mean())
        return {
            "loss": loss,
            "accuracy": accuracy,
            "scaled_accuracy": scaled_accuracy(accuracy),
            "long_accuracy": float(right[long].mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """Our convention (none in the paper): accuracy >= 0.99 on the long test strings."""
        return metrics["accuracy"] >= 0.99

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready."""
        return {
            "min_len": self.min_len,
            "max_len": self.max_len,
            "test_min": self.test_min,
            "test_max": self.test_max,
            "running": self.running,
            "test_size": self.test_size,
            "test_seed": self.test_seed,
        }
