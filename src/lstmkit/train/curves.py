"""The learning curve of a run, drawn from its ``metrics.jsonl`` (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

from ..fileio import save_png


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON lines of a ``metrics.jsonl`` (missing file: empty list); errors name the file.

    Example::

        >>> read_metrics("runs/adding/metrics.jsonl")[-1]["step"]   # doctest: +SKIP
        1900
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {n} is not JSON: {err}") from None
    return rows


def plot_curve(rows: list[dict[str, Any]], out: str | os.PathLike[str], metric: str, title: str = "") -> None:
    """Two panels against sequences seen: train loss (log scale) and the test ``metric``.

    ``rows`` are metrics.jsonl lines (``sequences``, ``train_loss``, optional ``test`` dict). When the
    test metric is ``bpc`` (bits per character) the train loss, a cross-entropy in nats, is drawn in
    bits too, so the two panels share a unit. A long ``title`` is wrapped, never cut.

    Example::

        >>> plot_curve(read_metrics("runs/adding/metrics.jsonl"), "curve.png", "accuracy")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_test = fig.subplots(1, 2)
    scale, unit = (1 / math.log(2), " (bits per character)") if metric == "bpc" else (1.0, "")
    xs = [r["sequences"] for r in rows if r.get("train_loss") is not None]
    ys = [r["train_loss"] * scale for r in rows if r.get("train_loss") is not None]
    ax_loss.plot(xs, ys, lw=1)
    if ys and min(ys) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("training sequences")
    ax_loss.set_ylabel(f"train loss{unit}")
    tests = [(r["sequences"], r["test"][metric]) for r in rows if metric in (r.get("test") or {})]
    if tests:
        ax_test.plot([x for x, _ in tests], [y for _, y in tests], marker="o", ms=3, lw=1)
    ax_test.set_xlabel("training sequences")
    ax_test.set_ylabel(f"test {metric}")
    for ax in (ax_loss, ax_test):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, width=100)), fontsize=10)
    fig.tight_layout()
    save_png(fig, out)
