"""The embedded Reber grammar: predict the legal next symbols of a string, one step at a time.

Hochreiter & Schmidhuber (1997), Section 5.1, Experiment 1 (after Cleeremans et al. 1989 and
Fahlman 1991). The Reber grammar over the symbols B, T, P, S, X, V, E (Figure 3)::

    0 -B-> 1    1 -T-> 2   1 -P-> 3    2 -S-> 2   2 -X-> 4    3 -T-> 3   3 -V-> 5
    4 -X-> 3    4 -S-> 6   5 -P-> 4    5 -V-> 6   6 -E-> end

The embedded grammar (Figure 4) wraps a Reber string: ``B T <reber> T E`` or ``B P <reber> P E``.
Every choice is fair (probability 0.5). The net reads a string one symbol at a time and predicts
the next symbol at every step; the target at each step is the set of legal next symbols. To
predict the symbol before last it must remember the second symbol across the inner string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Task

SYMBOLS = "BTPSXVE"
"""Alphabet in one-hot order."""

REBER: dict[int, tuple[tuple[str, int], ...]] = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", -1),),
}
"""The Reber grammar: state -> (symbol, next state) edges; -1 is the end."""


def _embedded_edges(state: tuple[str, object]) -> tuple[tuple[str, tuple[str, object]], ...]:
    """Edges of the embedded grammar; states: ("start",), ("branch",), ("inner", k, s), ("exit", k), ("last",)."""
    kind = state[0]
    if kind == "start":
        return (("B", ("branch", None)),)
    if kind == "branch":
        return (("T", ("inner", ("T", 0))), ("P", ("inner", ("P", 0))))
    if kind == "inner":
        branch, s = cast("tuple[str, int]", state[1])
        return tuple((sym, ("exit", branch) if nxt == -1 else ("inner", (branch, nxt))) for sym, nxt in REBER[s])
    if kind == "exit":
        return ((str(state[1]), ("last", None)),)
    if kind == "last":
        return (("E", ("done", None)),)
    return ()


def embedded_reber_string(bits: list[int], more: Callable[[], list[int]]) -> tuple[str, list[frozenset[str]]]:
    """One string and, for each of its symbols but the last, the set of legal next symbols.

    ``bits`` are fair coin flips (0 takes the first edge, 1 the second), consumed from the end
    at each choice; ``more()`` returns further flips when they run out.

    Example::

        >>> text, legal = embedded_reber_string([1, 0, 1, 1, 0, 0], lambda: [1])
        >>> text, sorted(legal[0]), sorted(legal[-2])
        ('BTBTXSETE', ['P', 'T'], ['T'])
    """
    state: tuple[str, object] = ("start", None)
    out: list[str] = []
    legal: list[frozenset[str]] = []
    while True:
        edges = _embedded_edges(state)
        if not edges:
            break
        if out:
            legal.append(frozenset(sym for sym, _ in edges))
        if len(edges) == 1:
            sym, state = edges[0]
        else:
            if not bits:
                bits.extend(more())
            sym, state = edges[bits.pop()]
        out.append(sym)
    return "".join(out), legal


class ReberTask(Task):
    """Embedded Reber grammar, next-symbol prediction (H&S 1997 Experiment 1).

    Inputs (B, L, 7) one-hot float: every symbol of the string but the final E; targets
    (B, L, 7) multi-hot float: the legal next symbols after each input; mask (B, L) valid steps;
    lengths (B,) = string length - 1; L is the batch's longest. Readout "all": the model emits
    (B, L, 7) logits. ``batch.extra["branch"]`` (B,) is 1 for ``B T ... T E``, 0 for ``B P ... P E``.

    Loss: binary cross-entropy (one sigmoid unit per symbol) averaged over valid steps. Metrics:
    ``loss``; ``step_accuracy`` (steps where the k legal symbols are the k most active outputs,
    i.e. every legal output beats every illegal one); ``string_accuracy`` (strings right at
    every step); ``tp_accuracy`` (the long-lag step: predicting the T/P before the last E).

    ``solved`` is the paper's success criterion on our test set: every symbol of every test string
    predicted correctly (``string_accuracy == 1``). The paper uses 256 training and 256 test strings
    and also requires the training set to be right; here training strings are fresh every batch.

    Example::

        >>> task = ReberTask()
        >>> batch = task.sample(4, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape[2], batch.targets.shape == batch.inputs.shape
        (7, True)
    """

    name: ClassVar[str] = "reber"
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "Hochreiter & Schmidhuber 1997, Long Short-Term Memory, Section 5.1 (Experiment 1), Table 1",
        "criterion": "all symbols of all training and test strings predicted correctly (the legal next "
        "symbols are always the most active outputs); 256 training and 256 test strings",
        # Table 1, LSTM, 3 blocks of size 2, learning rate 0.5: 100% of 30 trials successful,
        # mean number of sequence presentations until success
        "training_sequences_to_solve": 8_440,
        "success_percent": 100,
        "note": "our test set is larger (2560) and training strings are drawn fresh each batch",
    }

    def __init__(self, test_size: int = 2560, test_seed: int = 7) -> None:
        self.test_size = check_int("test_size", test_size, 1)
        self.test_seed = check_int("test_seed", test_seed, 0)
        self.input_size = len(SYMBOLS)
        self.output_size = len(SYMBOLS)

    @property
    def max_lag(self) -> int:
        """The longest lag: the steps of the longest test string (its second symbol is needed at its end)."""
        return int(self.test_set().lengths.max())

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A fresh batch of ``batch_size`` strings drawn from ``generator``."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        flips = torch.randint(0, 2, (b, 48), generator=gen).tolist()  # enough for almost every string

        def more() -> list[int]:
            return torch.randint(0, 2, (48,), generator=gen).tolist()

        return self.encode([embedded_reber_string(row, more) for row in flips])

    def encode(self, strings: list[tuple[str, list[frozenset[str]]]]) -> Batch:
        """A batch from ``(string, legal next sets)`` pairs as returned by :func:`embedded_reber_string`."""
        lengths = torch.tensor([len(s) - 1 for s, _ in strings], dtype=torch.int64)
        steps = int(lengths.max())
        blank = [0.0] * len(SYMBOLS)
        token_rows, target_rows = [], []
        for text, legal in strings:
            pad = steps - (len(text) - 1)
            token_rows.append([SYMBOLS.index(c) for c in text[:-1]] + [0] * pad)
            target_rows.append([[1.0 if c in allowed else 0.0 for c in SYMBOLS] for allowed in legal] + [blank] * pad)
        tokens = torch.tensor(token_rows, dtype=torch.int64)  # (B, L)
        targets = torch.tensor(target_rows, dtype=torch.float32)  # (B, L, 7)
        mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
        inputs = F.one_hot(tokens, len(SYMBOLS)).to(torch.float32) * mask.unsqueeze(2)
        branch = torch.tensor([1 if s[1] == "T" else 0 for s, _ in strings], dtype=torch.int64)
        return Batch(inputs, targets, lengths, mask, {"branch": branch})

    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Binary cross-entropy of ``sigmoid(prediction)`` against the legal-next targets, valid steps only."""
        check_prediction(prediction, tuple(batch.targets.shape), self.name)
        target = batch.targets.to(prediction.device, prediction.dtype)
        mask = batch.mask.to(prediction.device)  # type: ignore[union-attr]
        per = F.binary_cross_entropy_with_logits(prediction, target, reduction="none").mean(dim=2)  # (B, L)
        return (per * mask).sum() / mask.sum()

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``step_accuracy``, ``string_accuracy`` and ``tp_accuracy`` (see the class docstring)."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            pred = prediction.detach()
            legal = batch.targets.to(pred.device) > 0.5
            mask = batch.mask.to(pred.device)  # type: ignore[union-attr]
            inf = torch.finfo(pred.dtype).max
            lowest_legal = pred.masked_fill(~legal, inf).amin(dim=2)  # (B, L)
            highest_illegal = pred.masked_fill(legal, -inf).amax(dim=2)
            ok = (lowest_legal > highest_illegal) | ~mask
            rows = torch.arange(len(batch), device=pred.device)
            tp_step = batch.lengths.to(pred.device) - 2  # input: inner E; target: the T/P
            tp = ok[rows, tp_step]
        return {
            "loss": loss,
            "step_accuracy": float(ok[mask].to(torch.float64).mean()),
            "string_accuracy": float(ok.all(dim=1).to(torch.float64).mean()),
            "tp_accuracy": float(tp.to(torch.float64).mean()),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        """The paper's criterion on the test set: every step of every string right."""
        return metrics["string_accuracy"] == 1.0

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready."""
        return {"test_size": self.test_size, "test_seed": self.test_seed}
