"""The README pictures: train a small LSTM to remember one marked value, then draw its gates.

The toy task (self-contained, seeded): each sequence has T steps of two features, a value
v_t ~ N(0, 1) and a marker m_t in {0, 1} that is 1 at one step among the first ``T // 4``. The
model must output sign(v_s) of the marked step s after the last step, so some cell must keep
one bit for up to T steps: its forget gate has to stay near 1 while the input gate opens at
the marker. Trained with Adam on fresh batches; then :func:`lstmkit.trace.report.inspect_model`
writes the pictures and ``summary.json`` for a test batch.

Run::

    python -m lstmkit.trace.example --out docs/img

(about 15 s on one CPU core; the same seed gives the same pictures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn

from ..modules import LSTM
from .report import inspect_model


def marked_sign_batch(batch: int, steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Inputs (B, T, 2) and targets (B,) in {0, 1} (1 when the marked value is positive).

    Example::

        >>> x, y = marked_sign_batch(4, 20, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, x[..., 1].sum(1).tolist()
        (torch.Size([4, 20, 2]), torch.Size([4]), [1.0, 1.0, 1.0, 1.0])
    """
    values = torch.randn(batch, steps, generator=generator)
    where = torch.randint(0, max(1, steps // 4), (batch,), generator=generator)
    marker = torch.zeros(batch, steps)
    marker[torch.arange(batch), where] = 1.0
    targets = (values[torch.arange(batch), where] > 0).float()
    return torch.stack([values, marker], dim=2), targets


class MarkedSignModel(nn.Module):
    """An :class:`lstmkit.LSTM` (batch-first) and a linear readout of the last hidden state.

    Example::

        >>> MarkedSignModel(hidden=8)(torch.randn(3, 10, 2)).shape
        torch.Size([3])
    """

    def __init__(self, hidden: int = 12, forget_bias: float = 3.0) -> None:
        super().__init__()
        # a large forget bias (Jozefowicz et al. 2015) lets the gradient cross T steps early on
        self.lstm = LSTM(2, hidden, batch_first=True, forget_bias=forget_bias)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B,) from inputs (B, T, 2)."""
        out, _ = self.lstm(x)  # (B, T, H)
        return self.head(out[:, -1]).squeeze(1)


def train(steps: int = 600, seq_len: int = 40, hidden: int = 12, seed: int = 0) -> tuple[MarkedSignModel, float]:
    """Train on fresh batches of 64; returns the model and its accuracy on 512 test sequences.

    Example::

        >>> model, accuracy = train(steps=10)      # doctest: +SKIP
    """
    torch.manual_seed(seed)
    model = MarkedSignModel(hidden)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        x, y = marked_sign_batch(64, seq_len, generator)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    x, y = marked_sign_batch(512, seq_len, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        accuracy = float(((model(x) > 0).float() == y).float().mean())
    return model, accuracy


def main(argv: list[str] | None = None) -> int:
    """Train, report the accuracy, and write the pictures into ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m lstmkit.trace.example", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img", help="folder for the PNGs and summary.json (default: docs/img)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    parser.add_argument("--seq-len", type=int, default=40, help="sequence length T (default: 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small model: one thread is fastest and leaves the other core free
    try:
        model, accuracy = train(args.steps, args.seq_len, seed=args.seed)
    finally:
        torch.set_num_threads(threads)
    print(f"test accuracy after {args.steps} steps: {accuracy:.3f}")
    x, _ = marked_sign_batch(64, args.seq_len, torch.Generator().manual_seed(args.seed + 2))
    meta = {"source": f"marked-sign toy task, T={args.seq_len}, seed {args.seed}", "test_accuracy": accuracy}
    events = [row.nonzero().flatten().tolist() for row in x[:, :, 1] == 1.0]  # the marked step of each sequence
    paths = inspect_model(model.lstm, x, None, Path(args.out), meta=meta, events=events)
    for name in sorted(paths):
        print(paths[name])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
