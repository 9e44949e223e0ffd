"""Pictures of a :class:`~lstmkit.trace.GateTrace` (matplotlib, drawn off screen with Agg).

Every function builds a ``matplotlib.figure.Figure`` on an Agg canvas directly (no ``pyplot``:
no window, no global backend change, no global figure list), returns it, and writes a PNG when
given ``path``. The figure size in pixels is ``figsize * dpi`` exactly. Only this module imports
matplotlib; ``import lstmkit`` does not load it.

- :func:`plot_gates`: one sequence; heatmaps of the four gates and the cell state, time on x,
  units on y; fixed colour scales: [0, 1] for input, forget, output, [-1, 1] for the
  candidate, symmetric [-m, m] for the cell with m = max |c| over the shown steps.
- :func:`plot_memory_horizon`: histogram of the forget gate's per-unit memory horizon (see
  :mod:`lstmkit.trace.summary`), its median, and the units beyond the sequence as a separate bar.
- :func:`plot_gate_means`: for a batch, the mean of each gate over units and valid sequences at
  every step.

Each also draws the trace of an sLSTM, mLSTM or minLSTM module (a
:class:`~lstmkit.families.FamilyTrace`): the heatmaps then show the family's records
(:data:`FAMILY_ROWS`; sLSTM: i', f', z, o, c, n, m, h), the memory horizon comes from the stabilised
forget gate, and the means add the log growth of the normaliser (see :mod:`lstmkit.trace.family`).

Example::

    >>> from lstmkit.trace.plots import plot_gates
    >>> out, state, trace = lstm(x, return_gates=True)
    >>> fig = plot_gates(trace, sequence=0, layer=0, path="gates.png")
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from ..families import FamilyTrace
from ..fileio import save_png
from .family import FamilySummary, growth_series
from .summary import GATES, MemoryHorizon, TraceSummary, batch_major, sequence_lengths, summarize, valid_mask

if TYPE_CHECKING:
    from .record import GateTrace

HEATMAP_ROWS = (*GATES, "cell")
"""Rows of :func:`plot_gates`, top to bottom."""
FAMILY_ROWS = {
    "slstm": ("input", "forget", "candidate", "output", "cell", "normalizer", "stabilizer", "hidden"),
    "mlstm": ("input", "forget", "output", "denominator", "memory_norm", "stabilizer", "hidden"),
    "minlstm": ("input", "forget", "candidate", "hidden"),
}
"""Rows of :func:`plot_gates` for a family trace (a row the trace lacks, e.g. an mLSTM without output
gate, is left out). Scales: [0, 1] for the gates (i' and f' are the stabilised gates, at most 1),
[-1, 1] for the sLSTM candidate, [-m, m] for cell, hidden and the minLSTM candidate, [min, max] of the
shown steps for the normaliser, stabilizer, denominator and memory norm."""

_GATE_CMAP = "viridis"
_SIGNED_CMAP = "RdBu_r"


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: str | Path | None, dpi: int) -> Figure:
    if path is not None:
        save_png(fig, path, dpi)
    return fig


def _where(trace: GateTrace | FamilyTrace, layer: int, direction: int) -> str:
    k = layer % trace.num_layers if trace.num_layers else layer
    return f"layer {k}, {'reverse (runs right to left)' if direction == 1 else 'forward'}"


def _check_sequence(trace: GateTrace | FamilyTrace, sequence: int) -> int:
    B = valid_mask(trace).shape[0]
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not -B <= sequence < B:
        raise ValueError(f"sequence must be an int in [-{B}, {B}) for a batch of {B}; got {sequence!r}")
    return sequence % B


def plot_gates(
    trace: GateTrace | FamilyTrace,
    sequence: int = 0,
    *,
    layer: int = -1,
    direction: int = 0,
    inputs: Tensor | None = None,
    events: Sequence[int] = (),
    path: str | Path | None = None,
    figsize: tuple[float, float] = (9.0, 9.0),
    dpi: int = 100,
) -> Figure:
    """Heatmaps of input, forget, candidate, output and cell over the valid steps of one sequence.

    Each panel is (H units) x (L_b steps) of ``trace`` at ``layer``, ``direction`` and batch
    index ``sequence``; colour scales are fixed per gate (see the module docstring) so that
    pictures of different models compare. A gate the spec removes shows its constant 1.
    ``inputs`` (B, T, I) batch-major or (T, I) for the shown sequence adds a strip on top with
    the features the layer read (so the gates can be read against what came in), and
    ``events`` (steps of the shown sequence, e.g. the adding problem's marked steps) are drawn
    as dashed lines across every panel.

    Example::

        >>> fig = plot_gates(trace, sequence=3, layer=0, inputs=x, events=[4, 17], path="out/gates.png")
        >>> len(fig.axes)       # input strip, 5 heatmaps and 6 colour bars
        12
    """
    if isinstance(trace, FamilyTrace):
        return _plot_family_gates(trace, sequence, layer, inputs, events, path, figsize, dpi)
    b = _check_sequence(trace, sequence)
    L = int(sequence_lengths(trace)[b])
    shown = _shown_inputs(inputs, b, L)
    fig = _new_figure(figsize)
    rows: tuple[str, ...] = (("inputs",) if shown is not None else ()) + HEATMAP_ROWS
    ratios = [0.6 if r == "inputs" else 1.0 for r in rows]
    axes = fig.subplots(len(rows), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    if shown is not None:
        _draw_inputs(fig, axes[0], shown, L)
        axes = axes[1:]
    cell = batch_major(trace, "cell", layer, direction)[b, :L].detach().cpu().float()  # (L, H)
    m = float(cell.abs().max()) if cell.numel() else 1.0
    m = m if m > 0 else 1.0
    for ax, name in zip(axes, HEATMAP_ROWS, strict=True):
        values = batch_major(trace, name, layer, direction)[b, :L].detach().cpu().float()  # (L, H)
        if name in ("input", "forget", "output"):
            lo, hi, cmap = 0.0, 1.0, _GATE_CMAP
        elif name == "candidate":
            lo, hi, cmap = -1.0, 1.0, _SIGNED_CMAP
        else:
            lo, hi, cmap = -m, m, _SIGNED_CMAP
        image = ax.imshow(
            values.T.numpy(),
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            vmin=lo,
            vmax=hi,
            cmap=cmap,
            extent=(-0.5, L - 0.5, -0.5, values.shape[1] - 0.5),
        )
        note = ""
        if name not in trace.spec.gates and name != "cell":
            note = " (1 - input, CIFG)" if (name == "forget" and trace.spec.coupled) else " (removed: constant 1)"
        ax.set_title(f"{name}{note}  [{lo:.3g}, {hi:.3g}]", fontsize=10, loc="left")
        ax.set_ylabel("unit")
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
    axes[-1].set_xlabel("time step")
    for ax in fig.axes[: len(rows)]:
        for step in events:
            if 0 <= step < L:
                ax.axvline(step, color="red", linestyle="--", linewidth=0.8)
    marked = f"; dashed: events at steps {', '.join(str(s) for s in events)}" if len(events) else ""
    fig.suptitle(f"Gates and cell state: {_where(trace, layer, direction)}, sequence {b} ({L} steps){marked}")
    return _finish(fig, path, dpi)


def _family_scale(trace: FamilyTrace, name: str, values: Tensor) -> tuple[float, float, str]:
    """Colour range and map of one family row (see :data:`FAMILY_ROWS`)."""
    if name in ("input", "forget", "output"):
        return 0.0, 1.0, _GATE_CMAP
    if name == "candidate" and trace.family == "slstm":
        return -1.0, 1.0, _SIGNED_CMAP
    if name in ("cell", "hidden", "candidate"):
        m = float(values.abs().max()) if values.numel() else 1.0
        m = m if m > 0 else 1.0
        return -m, m, _SIGNED_CMAP
    finite = values[values.isfinite()]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
    return lo, (hi if hi > lo else lo + 1.0), _GATE_CMAP


def _plot_family_gates(
    trace: FamilyTrace,
    sequence: int,
    layer: int,
    inputs: Tensor | None,
    events: Sequence[int],
    path: str | Path | None,
    figsize: tuple[float, float],
    dpi: int,
) -> Figure:
    """:func:`plot_gates` for an sLSTM, mLSTM or minLSTM trace: one heatmap per record of :data:`FAMILY_ROWS`."""
    b = _check_sequence(trace, sequence)
    L = int(sequence_lengths(trace)[b])
    shown = _shown_inputs(inputs, b, L)
    k = layer % trace.num_layers
    names = tuple(n for n in FAMILY_ROWS.get(trace.family, ()) if n in trace.records[k])
    rows: tuple[str, ...] = (("inputs",) if shown is not None else ()) + names
    fig = _new_figure(figsize)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    if shown is not None:
        _draw_inputs(fig, axes[0], shown, L)
        axes = axes[1:]
    for ax, name in zip(axes, names, strict=True):
        values = batch_major(trace, name, k)[b, :L].detach().cpu().float()  # (L, units or heads)
        lo, hi, cmap = _family_scale(trace, name, values)
        image = ax.imshow(
            values.T.numpy(),
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            vmin=lo,
            vmax=hi,
            cmap=cmap,
            extent=(-0.5, L - 0.5, -0.5, values.shape[1] - 0.5),
        )
        stabilised = " (stabilised)" if name in ("input", "forget") and trace.family != "minlstm" else ""
        ax.set_title(f"{name}{stabilised}  [{lo:.3g}, {hi:.3g}]", fontsize=10, loc="left")
        per_head = trace.family == "mlstm" and name not in ("output", "hidden")
        ax.set_ylabel("head" if per_head else "unit")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
    axes[-1].set_xlabel("time step")
    for ax in fig.axes[: len(rows)]:
        for step in events:
            if 0 <= step < L:
                ax.axvline(step, color="red", linestyle="--", linewidth=0.8)
    fig.suptitle(f"{trace.family} gates and states: layer {k}, sequence {b} ({L} steps)")
    return _finish(fig, path, dpi)


def _shown_inputs(inputs: Tensor | None, b: int, L: int) -> Tensor | None:
    """The (L, I) inputs of batch index ``b`` (or None), checked against the trace."""
    if inputs is None:
        return None
    x = inputs if inputs.dim() == 2 else inputs[b] if inputs.dim() == 3 else None
    if x is None or x.shape[0] < L:
        raise ValueError(f"inputs must be (B, T, I) or (T, I) with T >= {L} steps; got {tuple(inputs.shape)}")
    return x[:L].detach().cpu().float()


def _draw_inputs(fig: Figure, ax: Any, x: Tensor, L: int) -> None:
    """One row per input feature, on a symmetric colour scale."""
    m = float(x.abs().max()) if x.numel() else 1.0
    m = m if m > 0 else 1.0
    image = ax.imshow(
        x.T.numpy(),
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        vmin=-m,
        vmax=m,
        cmap=_SIGNED_CMAP,
        extent=(-0.5, L - 0.5, -0.5, x.shape[1] - 0.5),
    )
    ax.set_title(
        f"inputs ({x.shape[1]} feature{'s' if x.shape[1] != 1 else ''})  [{-m:.3g}, {m:.3g}]", fontsize=10, loc="left"
    )
    ax.set_ylabel("feature")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)


def plot_memory_horizon(
    source: GateTrace | FamilyTrace | MemoryHorizon,
    *,
    layer: int = -1,
    direction: int = 0,
    start: int = 0,
    summary: TraceSummary | FamilySummary | None = None,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (7.0, 4.0),
    dpi: int = 100,
) -> Figure:
    """Histogram of the per-unit forget-gate memory horizon with its median.

    ``source`` is a trace (the horizon is computed at ``layer``, ``direction`` from step
    ``start``, or taken from ``summary`` when given) or a ready
    :class:`~lstmkit.trace.summary.MemoryHorizon`. Units whose memory outlasts every sequence
    are drawn as a separate bar right of the histogram.

    Example::

        >>> fig = plot_memory_horizon(trace, layer=0, path="out/horizon.png")
    """
    if isinstance(source, MemoryHorizon):
        horizon, title = source, "Forget-gate memory horizon"
    else:
        if summary is None:
            summary = summarize(source, start=start)
        horizon = summary.layers[layer][direction].horizon
        title = f"Forget-gate memory horizon: {_where(source, layer, direction)}"
        if isinstance(source, FamilyTrace) and source.family != "minlstm":
            title = f"Stabilised forget-gate memory horizon ({source.family}): {_where(source, layer, direction)}"
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    edges, counts = horizon.edges, horizon.counts
    widths = [hi - lo for lo, hi in itertools.pairwise(edges)]
    ax.bar(
        edges[:-1],
        counts,
        width=widths,
        align="edge",
        color="tab:blue",
        edgecolor="white",
        label=f"units within the sequence ({sum(counts)})",
    )
    top = edges[-1]
    if horizon.beyond_units:
        w = max(widths) if widths else 1.0
        ax.bar(
            [top + w],
            [horizon.beyond_units],
            width=w,
            align="edge",
            color="tab:orange",
            edgecolor="white",
            label=f"beyond the sequence ({horizon.beyond_units})",
        )
    median = horizon.median
    if median == median:  # not NaN
        # a unit still above 1/e at the end of some sequence has a capped horizon: the median is then a bound
        capped = int((horizon.beyond_fraction > 0).sum())
        bound = "≥ " if capped else ""
        H = horizon.horizon.numel()
        never = f"; {horizon.beyond_units} of {H} units never fell below 1/e" if horizon.beyond_units else ""
        ax.axvline(median, color="black", linestyle="--", label=f"median {bound}{median:.1f} steps{never}")
    ax.set_xlabel(f"steps until the product of forget gates from step {horizon.start} falls below 1/e")
    ax.set_ylabel("units")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9)
    return _finish(fig, path, dpi)


def plot_gate_means(
    trace: GateTrace | FamilyTrace,
    *,
    layer: int = -1,
    direction: int = 0,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (8.0, 5.0),
    dpi: int = 100,
) -> Figure:
    """Mean of each gate over units and valid sequences at every time step, for a batch.

    Top: input, forget, output on [0, 1]; bottom: candidate on [-1, 1] and the mean cell state.
    At step t only the sequences with length > t count.

    Example::

        >>> fig = plot_gate_means(trace, layer=0, path="out/means.png")
    """
    mask = valid_mask(trace).cpu()  # (B, T)
    active = mask.sum(0).clamp(min=1).double()  # (T,)
    steps = list(range(mask.shape[1]))

    def mean_curve(name: str) -> list[float]:
        values = batch_major(trace, name, layer, direction).detach().cpu().double()  # (B, T, H)
        return ((values.mean(2) * mask).sum(0) / active).tolist()

    if isinstance(trace, FamilyTrace):
        return _plot_family_means(trace, layer, mask, mean_curve, path, figsize, dpi)

    fig = _new_figure(figsize)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, colour in zip(("input", "forget", "output"), ("tab:green", "tab:blue", "tab:purple"), strict=True):
        top.plot(steps, mean_curve(name), color=colour, label=name)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("mean gate")
    top.legend(fontsize=9, ncol=3, loc="lower right")
    bottom.plot(steps, mean_curve("candidate"), color="tab:red", label="candidate")
    bottom.plot(steps, mean_curve("cell"), color="black", label="cell")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_ylabel("mean value")
    bottom.set_xlabel("time step")
    bottom.legend(fontsize=9, ncol=2, loc="lower right")
    B = mask.shape[0]
    fig.suptitle(f"Gate means over {B} sequence{'s' if B != 1 else ''}: {_where(trace, layer, direction)}")
    return _finish(fig, path, dpi)


def _plot_family_means(
    trace: FamilyTrace,
    layer: int,
    mask: Tensor,
    mean_curve: Any,
    path: str | Path | None,
    figsize: tuple[float, float],
    dpi: int,
) -> Figure:
    """:func:`plot_gate_means` for a family trace: the gates on top, the log growths (or h) below."""
    k = layer % trace.num_layers
    active = mask.sum(0).clamp(min=1).double()  # (T,)
    steps = list(range(mask.shape[1]))
    fig = _new_figure(figsize)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, colour in zip(("input", "forget", "output"), ("tab:green", "tab:blue", "tab:purple"), strict=True):
        if name in trace.records[k]:
            top.plot(steps, mean_curve(name), color=colour, label=name)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("mean gate")
    top.legend(fontsize=9, ncol=3, loc="lower right")
    growth = growth_series(trace, k)
    for name, g in growth.items():  # log|x'| + m, the true magnitude's log
        g = torch.where(mask.unsqueeze(-1), g.detach().cpu().double(), torch.zeros((), dtype=torch.float64))
        bottom.plot(steps, (g.mean(2).sum(0) / active).tolist(), label=f"log {name}")
    if not growth:
        bottom.plot(steps, mean_curve("hidden"), color="black", label="hidden")
    bottom.set_ylabel("mean log magnitude" if growth else "mean value")
    bottom.set_xlabel("time step")
    bottom.legend(fontsize=9, ncol=3, loc="best")
    B = mask.shape[0]
    fig.suptitle(f"{trace.family} gate means over {B} sequence{'s' if B != 1 else ''}: layer {k}")
    return _finish(fig, path, dpi)
