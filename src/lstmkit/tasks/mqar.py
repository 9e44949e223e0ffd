"""Multi-query associative recall (MQAR): read key-value pairs, then answer queries for the keys.

Arora et al. (2023), Zoology: Measuring and Improving Recall in Efficient Language Models; the
form the xLSTM paper uses (Beck et al. 2024, Section 4.1 and Appendix B.1.2, "MQAR-Experiment 1":
context length x key-value pairs in {(64, 4), (128, 8), (256, 16)}). Token 0 is blank, keys are the
tokens ``1 .. K_v`` and values ``K_v + 1 .. 2 K_v`` (``K_v = vocab // 2 - 1``). A sequence of length
``context`` starts with ``pairs`` pairs ``k_1 v_1 k_2 v_2 ...`` (distinct keys, values drawn with
replacement); every key is then queried once, in a random order, at random distinct positions in
the rest of the sequence (blanks elsewhere). At a query step the model must emit the value that was
paired with that key:

    input : k_1 v_1 ... k_P v_P  0 .. k_3 .. 0 .. k_1 .. 0 ..
    target:  -   -  ...  -   -   - .. v_3 .. - .. v_1 .. - ..      (scored at query steps only)

Queries are placed uniformly (Zoology draws their gaps from a power law; the xLSTM paper follows
it); the vocabulary is 64 here, 8192 in the xLSTM paper. Guessing among the values seen scores
about ``1 / pairs``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task


class MQARTask(Task):
    """Multi-query associative recall (Arora et al. 2023) at one point of the xLSTM paper's grid.

    Inputs (B, context) int64 tokens; targets (B, context) int64 value index (token - K_v - 1) at
    query steps, 0 elsewhere; mask (B, context) True at query steps only; readout "all": the model
    emits (B, context, K_v) logits over the values. ``batch.extra["query_keys"]`` (B, pairs) holds the
    key asked at each query, in order, and ``batch.extra["query_steps"]`` (B, pairs) its step.

    Loss: cross-entropy at the query steps. Metrics: ``accuracy`` (queries answered right) and
    ``sequence_accuracy`` (every query of a sequence right). The paper reports validation accuracy
    only; ``solved`` is our convention: accuracy >= 0.99.

    Example::

        >>> task = MQARTask(context=64, pairs=4)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape, int(batch.mask.sum())
        (torch.Size([2, 64]), 8)
    """

    name: ClassVar[str] = "mqar"
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "Beck et al. 2024, xLSTM, Figure 14 (MQAR-Experiment 1, Appendix B.1.2); task: Arora et al. 2023",
        "criterion": "none in the paper; it plots validation accuracy against model size",
        "note": "paper: mLSTM (xLSTM[1:0]) solves (64, 4), (128, 8), (256, 16) at every model size; the LSTM "
        "falls short as the pairs grow; `solved` is our convention: >= 99% of queries right",
    }

    def __init__(
        self, context: int = 128, pairs: int = 8, vocab: int = 64, test_size: int = 1024, test_seed: int = 13
    ) -> None:
        self.context = check_int("context", context, 4)
        self.pairs = check_int("pairs", pairs, 1)
        self.vocab = check_int("vocab", vocab, 4)
        self.test_size = check_int("test_size", test_size, 1)
        self.test_seed = check_int("test_seed", test_seed, 0)
        if self.vocab % 2:
            raise ValueError(f"vocab must be even (half keys, half values, plus the blank); got {vocab}")
        if self.pairs > self.keys:
            raise ValueError(f"pairs must be <= vocab // 2 - 1 = {self.keys} distinct keys; got {pairs}")
        if 3 * self.pairs > self.context:
            raise ValueError(
                f"context must hold the pairs and one query per key (>= 3 * pairs = {3 * self.pairs}); got {context}"
            )
        self.vocab_size = self.vocab
        self.input_size = 1
        self.output_size = self.keys

    @property
    def keys(self) -> int:
        """K_v: key tokens are ``1 .. K_v``, value tokens ``K_v + 1 .. 2 K_v`` (``vocab // 2 - 1`` each)."""
        return self.vocab // 2 - 1

    @property
    def max_lag(self) -> int:
        """The longest lag: a pair at the start queried at the last step."""
        return self.context

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch of ``batch_size`` sequences drawn from ``generator``."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        P, L, K = self.pairs, self.context, self.keys
        keys = torch.rand(b, K, generator=gen).argsort(dim=1)[:, :P] + 1  # (B, P) distinct, 1..K
        values = torch.randint(0, K, (b, P), generator=gen)  # (B, P) value index
        order = torch.rand(b, P, generator=gen).argsort(dim=1)  # (B, P) which pair each query asks
        free = L - 2 * P
        steps = torch.rand(b, free, generator=gen).argsort(dim=1)[:, :P].sort(dim=1).values + 2 * P  # (B, P)
        tokens = torch.zeros(b, L, dtype=torch.int64)
        tokens[:, 0 : 2 * P : 2] = keys
        tokens[:, 1 : 2 * P : 2] = values + K + 1
        asked = keys.gather(1, order)  # (B, P)
        tokens.scatter_(1, steps, asked)
        targets = torch.zeros(b, L, dtype=torch.int64)
        targets.scatter_(1, steps, values.gather(1, order))
        mask = torch.zeros(b, L, dtype=torch.bool)
        mask.scatter_(1, steps, True)
        lengths = torch.full((b,), L, dtype=torch.int64)
        return Batch(tokens, targets, lengths, mask, {"query_keys": asked, "query_steps": steps})

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy at the query steps; prediction (B, context, K_v) logits."""
        check_prediction(prediction, (len(batch), self.context, self.keys), self.name)
        assert batch.mask is not None  # every MQAR batch has one
        mask = batch.mask.to(prediction.device)
        return F.cross_entropy(prediction[mask], batch.targets.to(prediction.device)[mask])

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``accuracy`` (queries right) and ``sequence_accuracy`` (all queries of a sequence)."""
        assert batch.mask is not None
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            guess = prediction.detach().argmax(dim=-1).cpu()  # (B, L)
            right = (guess == batch.targets) | ~batch.mask  # True off the query steps
        return {
            "loss": loss,
            "accuracy": float(right[batch.mask].to(torch.float64).mean()),
            "sequence_accuracy": float(right.all(dim=1).to(torch.float64).mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """Our convention (none in the paper): >= 99% of the queries right."""
        return metrics["accuracy"] >= 0.99

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready."""
        return {
            "context": self.context,
            "pairs": self.pairs,
            "vocab": self.vocab,
            "test_size": self.test_size,
            "test_seed": self.test_seed,
        }
