"""Selective copying: pick the symbols out of a noisy stretch and write them back in order.

Gu & Dao (2023), Mamba, Section 4.1.1; the test of Feng et al. (2024), Were RNNs All We Needed?,
Section 4 (Table 1: minLSTM and minGRU accuracy by number of layers). A sequence has ``T`` steps of
context, then ``tokens`` marker steps. The context holds ``tokens`` data symbols (uniform on
``1 .. symbols``) at random distinct steps, in order, and blanks (0) elsewhere; at the j-th marker
step the model must emit the j-th data symbol:

    input : 0 3 0 0 7 0 1 0 0 0 5 0 | M M M M
    target:                          | 3 7 1 5      (scored at the marker steps only)

Unlike the copy-memory task the symbols' places vary, so a model with time-invariant dynamics cannot
solve it: the gates must depend on the input ("selectivity"). Mamba's setting is 4096 context steps,
16 symbols to copy from a vocabulary of 16; ours defaults to 64 and 8 so it trains in minutes on a CPU.
Chance is ``1 / symbols`` per symbol.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task


class SelectiveCopyTask(Task):
    """Selective copying (Gu & Dao 2023; Feng et al. 2024, Table 1): ``tokens`` symbols among ``T`` steps.

    Inputs (B, T + tokens) int64: blank 0, symbols 1..``symbols``, marker ``symbols + 1``; targets
    (B, T + tokens) int64 symbol index (symbol - 1) at the marker steps, 0 elsewhere; mask True at
    the marker steps only; readout "all": the model emits (B, T + tokens, symbols) logits.
    ``batch.extra["steps"]`` (B, tokens) holds where each symbol was placed.

    Loss: cross-entropy at the marker steps. Metrics: ``accuracy`` (symbols right) and
    ``sequence_accuracy`` (all of a sequence right). ``solved`` is our convention: accuracy >= 0.99.

    Example::

        >>> task = SelectiveCopyTask(T=16, tokens=4)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape, int(batch.mask.sum())
        (torch.Size([2, 20]), 8)
    """

    name: ClassVar[str] = "selcopy"
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "Feng et al. 2024, Were RNNs All We Needed?, Table 1 (task: Gu & Dao 2023, Mamba, 4.1.1)",
        "criterion": "none in the paper; it reports test accuracy by number of layers",
        "note": "paper (4096 steps, 16 symbols): minLSTM 37.6% with 1 layer, 85.7% with 2, 96.0% with 3; "
        "`solved` is our convention: >= 99% of the symbols right",
    }

    def __init__(
        self, T: int = 64, tokens: int = 8, symbols: int = 8, test_size: int = 512, test_seed: int = 17
    ) -> None:
        self.T = check_int("T", T, 1)
        self.tokens = check_int("tokens", tokens, 1)
        self.symbols = check_int("symbols", symbols, 2)
        self.test_size = check_int("test_size", test_size, 1)
        self.test_seed = check_int("test_seed", test_seed, 0)
        if self.tokens > self.T:
            raise ValueError(f"tokens must fit in the T = {self.T} context steps; got tokens={tokens}")
        self.vocab_size = self.symbols + 2
        self.input_size = 1
        self.output_size = self.symbols

    @property
    def length(self) -> int:
        """Steps per sequence: ``T + tokens``."""
        return self.T + self.tokens

    @property
    def marker(self) -> int:
        """The token of the answer steps: ``symbols + 1``."""
        return self.symbols + 1

    @property
    def max_lag(self) -> int:
        """The longest lag: a symbol at step 0 written back at the last step."""
        return self.length

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch of ``batch_size`` sequences drawn from ``generator``."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        n, T, L = self.tokens, self.T, self.length
        data = torch.randint(0, self.symbols, (b, n), generator=gen)  # (B, n) symbol index
        steps = torch.rand(b, T, generator=gen).argsort(dim=1)[:, :n].sort(dim=1).values  # (B, n)
        inputs = torch.zeros(b, L, dtype=torch.int64)
        inputs.scatter_(1, steps, data + 1)
        inputs[:, T:] = self.marker
        targets = torch.zeros(b, L, dtype=torch.int64)
        targets[:, T:] = data
        mask = torch.zeros(b, L, dtype=torch.bool)
        mask[:, T:] = True
        lengths = torch.full((b,), L, dtype=torch.int64)
        return Batch(inputs, targets, lengths, mask, {"steps": steps})

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy at the marker steps; prediction (B, T + tokens, symbols) logits."""
        check_prediction(prediction, (len(batch), self.length, self.symbols), self.name)
        answer = prediction[:, self.T :]  # (B, n, S)
        target = batch.targets[:, self.T :].to(prediction.device)
        return F.cross_entropy(answer.reshape(-1, self.symbols), target.reshape(-1))

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``accuracy`` (symbols right) and ``sequence_accuracy`` (all symbols of a sequence)."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            guess = prediction.detach()[:, self.T :].argmax(dim=-1).cpu()  # (B, n)
            right = guess == batch.targets[:, self.T :]
        return {
            "loss": loss,
            "accuracy": float(right.to(torch.float64).mean()),
            "sequence_accuracy": float(right.all(dim=1).to(torch.float64).mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """Our convention (none in the paper): >= 99% of the symbols right."""
        return metrics["accuracy"] >= 0.99

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready."""
        return {
            "T": self.T,
            "tokens": self.tokens,
            "symbols": self.symbols,
            "test_size": self.test_size,
            "test_seed": self.test_seed,
        }
