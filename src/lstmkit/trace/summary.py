"""Numbers that describe a :class:`~lstmkit.trace.GateTrace`: gate statistics and memory horizons.

Pure torch (no plotting). Every statistic counts only the valid steps of each sequence
(``trace.lengths``); padded positions never enter a mean, a fraction or a horizon.

Shape legend: T time, B batch, H hidden, L layers, D directions.

**Gate statistics** (per layer, direction and gate, over all valid (b, t) and all units j):

    mean       = mean of a_{b,t,j}
    std        = standard deviation of a_{b,t,j}
    low, high  = fraction of values below 0.05 / above 0.95 of the gate's range
    saturated  = low + high

The range is [0, 1] for ``input``, ``forget`` and ``output``; for ``candidate`` it is
[-1, 1], so "low" is g < -0.9 and "high" is g > 0.9 (the same thresholds after mapping
[-1, 1] onto [0, 1]).

**Memory horizon** of the forget gate, for sequence b, unit j and a start step s (0 by
default), counting steps in the direction's own time order (a reverse direction starts at
the sequence's last valid step and walks back)::

    n_b           = L_b - s, the valid steps left after the start (L_b the length of b)
    P_{b,j}(k)    = prod_{u=0}^{k-1} f_{b, s+u, j}          (P(0) = 1)
    horizon_{b,j} = the smallest k in 1..n_b with P_{b,j}(k) < 1/e
                    (a memory started at step s is down to 1/e of its size after k steps)
    beyond_{b,j}  = True when no such k exists; horizon_{b,j} is then capped at n_b

Per unit, both are averaged over the sequences with n_b >= 1: ``horizon[j]`` is the mean of
the (capped) horizon_{b,j}, ``beyond_fraction[j]`` the fraction of sequences where unit j
still holds more than 1/e at the end. A unit is *beyond the sequence* when
``beyond_fraction[j] == 1`` (its memory outlasts every sequence); such units are counted in
``beyond_units`` and left out of the histogram, whose bins hold the other units.
``median`` is the median of ``horizon`` over all H units (a lower bound when some units are
beyond the sequence). A constant forget gate f gives horizon = ceil(1 / -ln f) steps, e.g.
10 for f = 0.9.

Example::

    >>> out, state, trace = lstm(x, return_gates=True)
    >>> s = trace.summary()
    >>> s.layers[0][0].gates["forget"].mean, s.layers[0][0].horizon.median
    >>> json_text = trace.summary_json()
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import torch
from torch import Tensor

from ..families import FamilyTrace
from ..functional import reverse_padded

if TYPE_CHECKING:
    from .family import FamilySummary
    from .record import GateTrace

GATES = ("input", "forget", "candidate", "output")
"""The gates a summary describes, in storage order."""

LOW, HIGH = 0.05, 0.95
"""Saturation thresholds, as fractions of a gate's range."""


def batch_major(trace: GateTrace | FamilyTrace, name: str, layer: int = -1, direction: int = 0) -> Tensor:
    """One recorded series as (B, T, H), whatever the trace's layout ((T, H) unbatched -> B = 1).
    A family trace (sLSTM, mLSTM, minLSTM) has one direction; its trailing axes are flattened.

    Example::

        >>> batch_major(trace, "forget", layer=0).shape      # (B, T, H)
    """
    if isinstance(trace, FamilyTrace):
        from .family import family_series

        return family_series(trace, name, layer)
    value = trace.get(name, layer, direction)
    if trace.unbatched:
        return value.unsqueeze(0)
    return value if trace.batch_first else value.transpose(0, 1)


def valid_mask(trace: GateTrace | FamilyTrace) -> Tensor:
    """(B, T) bool, True at each sequence's valid steps (all True without ``lengths``).

    Example::

        >>> valid_mask(trace).sum(1)        # equals trace.lengths
    """
    if isinstance(trace, FamilyTrace):
        from .family import family_mask

        return family_mask(trace)
    some = batch_major(trace, "cell", 0, 0)
    B, T = some.shape[0], some.shape[1]
    if trace.lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=some.device)
    steps = torch.arange(T, device=some.device).unsqueeze(0)  # (1, T)
    return steps < trace.lengths.to(some.device).unsqueeze(1)  # (B, T)


def sequence_lengths(trace: GateTrace | FamilyTrace) -> Tensor:
    """(B,) int64 valid length of each sequence (T for all when ``lengths`` is None)."""
    return valid_mask(trace).sum(1)


@dataclass(frozen=True)
class GateStats:
    """Statistics of one gate over valid steps, units and sequences (see the module docstring).

    Example::

        >>> GateStats(mean=0.5, std=0.1, low=0.0, high=0.0).saturated
        0.0
    """

    mean: float  # mean activation
    std: float  # standard deviation of the activation
    low: float  # fraction below 0.05 of the range
    high: float  # fraction above 0.95 of the range
    kind: str = "computed"  # "computed", "coupled" (CIFG forget = 1 - input) or "removed" (constant 1)

    @property
    def saturated(self) -> float:
        """Fraction of values in either saturated zone: ``low + high``."""
        return self.low + self.high

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (a non-finite value, e.g. from a NaN input, is written as null)."""
        return {
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "saturated": _finite(self.saturated),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "kind": self.kind,
        }


@dataclass(frozen=True)
class MemoryHorizon:
    """Forget-gate memory horizon of every unit of one layer-direction (see the module docstring).

    ``horizon`` (H,) mean capped horizon per unit, in steps; ``beyond_fraction`` (H,);
    ``counts`` and ``edges`` the histogram of ``horizon`` over units not beyond the sequence:
    bins of a whole number of steps, bin i holding ``edges[i] <= horizon < edges[i + 1]``
    (``len(edges) == len(counts) + 1``; at most ``bins + 1`` bins).

    Example::

        >>> h = trace.summary().layers[0][0].horizon
        >>> h.median, h.beyond_units, h.counts
    """

    horizon: Tensor  # (H,) float64
    beyond_fraction: Tensor  # (H,) float64
    start: int  # the start step s
    max_steps: int  # the longest n_b: no horizon can exceed it
    counts: list[int]
    edges: list[float]

    @property
    def median(self) -> float:
        """Median of ``horizon`` over all units (NaN when no sequence reaches the start step)."""
        if self.horizon.numel() == 0 or torch.isnan(self.horizon).all():
            return math.nan
        return float(self.horizon.median())

    @property
    def beyond(self) -> Tensor:
        """(H,) bool, the units whose memory outlasts every sequence."""
        return self.beyond_fraction >= 1.0

    @property
    def beyond_units(self) -> int:
        """How many units are beyond the sequence."""
        return int(self.beyond.sum())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (per-unit lists included)."""
        return {
            "definition": "smallest k with prod of k forget gates from the start step < 1/e, "
            "capped at the steps left; mean over sequences per unit",
            "start": self.start,
            "max_steps": self.max_steps,
            "median": _finite(self.median),
            "beyond_units": self.beyond_units,
            "units": int(self.horizon.numel()),
            "histogram": {"counts": self.counts, "edges": self.edges},
            "per_unit": [_finite(v) for v in self.horizon.tolist()],
            "beyond_fraction": [_finite(v) for v in self.beyond_fraction.tolist()],
        }


@dataclass(frozen=True)
class DirectionSummary:
    """Summary of one layer-direction: one :class:`GateStats` per gate and the memory horizon."""

    layer: int
    direction: int
    gates: dict[str, GateStats]
    horizon: MemoryHorizon

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "layer": self.layer,
            "direction": "reverse" if self.direction else "forward",
            "gates": {name: stats.to_dict() for name, stats in self.gates.items()},
            "memory_horizon": self.horizon.to_dict(),
        }


@dataclass(frozen=True)
class TraceSummary:
    """The summary of a whole trace: ``layers[k][d]`` is a :class:`DirectionSummary`.

    Example::

        >>> s = trace.summary()
        >>> s.layers[-1][0].gates["output"].saturated
        >>> open("summary.json", "w").write(s.to_json())
    """

    layers: list[list[DirectionSummary]]
    spec: dict[str, object]
    sequences: int
    steps: int
    lengths: list[int]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "spec": self.spec,
            "sequences": self.sequences,
            "max_steps": self.steps,
            "lengths": self.lengths,
            "layers": [[d.to_dict() for d in layer] for layer in self.layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The JSON text of :meth:`to_dict` (NaN written as null)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _finite(value: float) -> float | None:
    return None if (value is None or not math.isfinite(value)) else float(value)


def gate_stats(values: Tensor, mask: Tensor, *, symmetric: bool = False, kind: str = "computed") -> GateStats:
    """Mean, spread and saturation of one gate over the valid steps.

    ``values`` (B, T, H); ``mask`` (B, T) bool; ``symmetric`` for a [-1, 1] gate (candidate),
    whose thresholds become -0.9 and 0.9. Empty selections give NaN.

    Example::

        >>> v = torch.tensor([[[0.0], [1.0]]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> gate_stats(v, m).saturated
        1.0
    """
    picked = values.detach()[mask.to(values.device)].double()  # (N, H)
    if picked.numel() == 0:
        return GateStats(math.nan, math.nan, math.nan, math.nan, kind)
    lo, hi = (2 * LOW - 1, 2 * HIGH - 1) if symmetric else (LOW, HIGH)
    return GateStats(
        mean=float(picked.mean()),
        std=float(picked.std(unbiased=False)),
        low=float((picked < lo).double().mean()),
        high=float((picked > hi).double().mean()),
        kind=kind,
    )


def memory_horizon(forget: Tensor, lengths: Tensor | None = None, *, start: int = 0, bins: int = 20) -> MemoryHorizon:
    """The memory horizon of each unit from forget gates (B, T, H) in the direction's time order.

    ``lengths`` (B,) valid lengths (None: all T); ``start`` the step s the memory starts at;
    ``bins`` the rough number of histogram bins (each a whole number of steps wide). See the
    module docstring for the definition.

    Example::

        >>> f = torch.full((2, 30, 4), 0.9)
        >>> memory_horizon(f).horizon
        tensor([10., 10., 10., 10.], dtype=torch.float64)
    """
    if forget.dim() != 3:
        raise ValueError(f"forget gates must be (B, T, H); got shape {tuple(forget.shape)}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0; got {start!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1; got {bins!r}")
    B, T, H = forget.shape
    lens = torch.full((B,), T, dtype=torch.long) if lengths is None else lengths.detach().cpu().long()
    if lens.shape != (B,):
        raise ValueError(f"lengths must be ({B},); got shape {tuple(lens.shape)}")
    left = (lens - start).clamp(min=0)  # (B,) n_b
    f = forget.detach().cpu().double()[:, start:]  # (B, T - s, H)
    steps = f.shape[1]
    k = torch.arange(1, steps + 1).view(1, steps, 1)  # (1, T - s, 1), k counts steps taken
    within = k <= left.view(B, 1, 1)  # (B, T - s, 1)
    log_p = torch.where(within, f.clamp(min=0).log(), torch.zeros_like(f)).cumsum(1)  # log P(k)
    fallen = (log_p < -1.0) & within  # (B, T - s, H)
    beyond = ~fallen.any(1)  # (B, H)
    first = torch.where(fallen.any(1), fallen.double().argmax(1) + 1.0, left.view(B, 1).double())  # (B, H)
    used = left >= 1  # sequences that reach the start step
    if used.any():
        horizon = first[used].mean(0)
        beyond_fraction = beyond[used].double().mean(0)
    else:
        horizon = torch.full((H,), math.nan, dtype=torch.float64)
        beyond_fraction = torch.full((H,), math.nan, dtype=torch.float64)
    max_steps = int(left.max()) if B else 0
    inside = horizon[~(beyond_fraction >= 1.0) & ~torch.isnan(horizon)]
    width = max(1, math.ceil(max_steps / bins))  # whole steps per bin
    n_bins = max_steps // width + 1  # bin i holds [i * width, (i + 1) * width)
    index = (inside // width).long().clamp(0, n_bins - 1)
    counts = torch.bincount(index, minlength=n_bins)
    edges = [float(i * width) for i in range(n_bins + 1)]
    return MemoryHorizon(horizon, beyond_fraction, start, max_steps, [int(c) for c in counts.tolist()], edges)


def _gate_kind(trace: GateTrace, name: str) -> str:
    if name in trace.spec.gates:
        return "computed"
    return "coupled" if (name == "forget" and trace.spec.coupled) else "removed"


@overload
def summarize(trace: GateTrace, *, start: int = 0, bins: int = 20) -> TraceSummary: ...
@overload
def summarize(trace: FamilyTrace, *, start: int = 0, bins: int = 20) -> FamilySummary: ...
def summarize(trace: GateTrace | FamilyTrace, *, start: int = 0, bins: int = 20) -> TraceSummary | FamilySummary:
    """Gate statistics and memory horizon of every layer and direction of a trace.

    ``start`` is the step the memory horizon starts at (in each direction's own time order);
    ``bins`` the histogram size. Same as ``trace.summary(start=..., bins=...)``. The trace of an
    sLSTM, mLSTM or minLSTM module gives a :class:`~lstmkit.trace.family.FamilySummary`
    (:func:`~lstmkit.trace.family.summarize_family`).

    Example::

        >>> s = summarize(trace)
        >>> [d.gates["forget"].mean for layer in s.layers for d in layer]
    """
    if isinstance(trace, FamilyTrace):
        from .family import summarize_family

        return summarize_family(trace, start=start, bins=bins)
    mask = valid_mask(trace)  # (B, T)
    lengths = mask.sum(1)  # (B,)
    layers = []
    for k in range(trace.num_layers):
        dirs = []
        for d in range(trace.num_directions):
            stats = {
                name: gate_stats(
                    batch_major(trace, name, k, d), mask, symmetric=name == "candidate", kind=_gate_kind(trace, name)
                )
                for name in GATES
            }
            forget = batch_major(trace, "forget", k, d)  # (B, T, H)
            if d == 1:  # walk the reverse direction in its own time order
                forget = reverse_padded(forget.transpose(0, 1), lengths.to(forget.device)).transpose(0, 1)
            dirs.append(DirectionSummary(k, d, stats, memory_horizon(forget, lengths, start=start, bins=bins)))
        layers.append(dirs)
    return TraceSummary(
        layers, trace.spec.to_dict(), int(mask.shape[0]), int(mask.shape[1]), [int(v) for v in lengths.tolist()]
    )
