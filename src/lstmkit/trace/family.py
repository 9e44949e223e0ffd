r"""Numbers that describe the trace of an sLSTM, mLSTM or minLSTM module
(:class:`~lstmkit.families.FamilyTrace`, from ``forward(..., return_gates=True)``).

Every statistic counts only the valid steps of each sequence (``trace.lengths``). Per layer:

**Gate statistics**: :func:`~lstmkit.trace.summary.gate_stats` of each recorded gate (mean, std,
fraction below 0.05 / above 0.95; the sLSTM candidate z on [-1, 1]):

    sLSTM    input i'_t and forget f'_t (stabilised), forget_raw f_t, candidate z_t, output o_t  (per unit)
    mLSTM    input i'_t, forget f'_t, forget_raw f_t (per head), output o_t (per unit, when the cell has one)
    minLSTM  input i'_t and forget f'_t (as applied: normalised by f_t + i_t unless normalize=False)

and for mLSTM the input and forget gates of each head apart (``heads``).

**Memory horizon** (:func:`~lstmkit.trace.summary.memory_horizon`: the smallest k with
prod_{u<k} f'_{s+u} < 1/e) from the forget gate the state is actually multiplied by: for sLSTM and
mLSTM the *stabilised* f'_t = exp(log f_t + m_{t-1} - m_t), which also counts how much a large new
input gate pushes old content down (one of f'_t, i'_t is 1 at every step), per unit for sLSTM and
per head for mLSTM; for minLSTM the applied f'_t.

**Normaliser growth** (sLSTM, mLSTM): the states are stored scaled by e^{-m}, so the log of a true
magnitude is g_t = log|x'_t| + m_t. With L_b the valid length of sequence b and u a unit or a head:

    first     = mean over (b, u) of g_{b,0,u}
    last      = mean over (b, u) of g_{b,L_b-1,u}
    per_step  = mean over (b, u) with L_b >= 2 of (g_{b,L_b-1,u} - g_{b,0,u}) / (L_b - 1)
    max       = max over valid (b, t, u) of g_{b,t,u}

for sLSTM's normaliser n_t (x' = n'_t); for mLSTM's normaliser (x' = ||n'_t||_2 per head), memory
(x' = ||C'_t||_F) and readout denominator (x' = max(|n'_t^T q_t|, floor e^{-m_t}) + eps, so
g_t >= log floor: a denominator at the floor means the memory holds almost nothing along q_t).

Example::

    >>> out, state, trace = lstmkit.SLSTM(4, 8)(x, return_gates=True)
    >>> s = summarize_family(trace)
    >>> s.layers[0][0].horizon.median, s.layers[0][0].growth["normalizer"].per_step
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..families import FamilyTrace
from .summary import GateStats, MemoryHorizon, _finite, gate_stats, memory_horizon

STAT_GATES = {
    "slstm": ("input", "forget", "forget_raw", "candidate", "output"),
    "mlstm": ("input", "forget", "forget_raw", "output"),
    "minlstm": ("input", "forget"),
}
"""The gates each family's summary describes (those a family's trace records, in this order)."""
HEAD_GATES = ("input", "forget")
"""mLSTM gates summarised head by head."""


def unbatched(trace: FamilyTrace) -> bool:
    """True when the trace came from an unbatched (T, I) input: records are (T, ...) without B."""
    return trace.get("hidden", 0).dim() == 2


def family_series(trace: FamilyTrace, name: str, layer: int = -1) -> Tensor:
    """One record as (B, T, U): batch first, trailing axes flattened (mLSTM's n (NH, DH) -> NH DH).

    Example::

        >>> family_series(mlstm_trace, "normalizer").shape      # NH = 2, DH = 4
        torch.Size([3, 6, 8])
    """
    value = trace.get(name, layer % trace.num_layers)
    if unbatched(trace):
        value = value.unsqueeze(0)
    return value.reshape(value.shape[0], value.shape[1], -1)


def family_mask(trace: FamilyTrace) -> Tensor:
    """(B, T) bool, True at each sequence's valid steps."""
    some = family_series(trace, "hidden", 0)
    B, T = some.shape[0], some.shape[1]
    if trace.lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=some.device)
    steps = torch.arange(T, device=some.device).unsqueeze(0)
    return steps < trace.lengths.to(some.device).view(-1, 1)


@dataclass(frozen=True)
class Growth:
    """How a log magnitude g_{b,t,u} moves over the valid steps (see the module docstring).

    Example::

        >>> log_growth(torch.tensor([[[0.0], [1.0], [2.0]]]), torch.tensor([3])).per_step
        1.0
    """

    first: float  # mean of g at step 0
    last: float  # mean of g at each sequence's last valid step
    per_step: float  # mean slope over sequences with at least two valid steps
    max: float  # largest g at any valid step

    def to_dict(self) -> dict[str, object]:
        values = {"first": self.first, "last": self.last, "per_step": self.per_step, "max": self.max}
        return {name: _finite(v) for name, v in values.items()}


def log_growth(g: Tensor, lengths: Tensor) -> Growth:
    """:class:`Growth` of g (B, T, U) over valid lengths (B,) (sequences of length 0 are left out)."""
    g = g.detach().cpu().double()
    lens = lengths.detach().cpu().long()
    used = lens >= 1
    if not bool(used.any()):
        return Growth(math.nan, math.nan, math.nan, math.nan)
    g, lens = g[used], lens[used]
    first = g[:, 0]  # (B', U)
    last = g[torch.arange(g.shape[0]), lens - 1]  # (B', U)
    two = lens >= 2
    slope = ((last - first)[two] / (lens[two] - 1).double().unsqueeze(1)).mean() if two.any() else math.nan
    valid = torch.arange(g.shape[1]).unsqueeze(0) < lens.unsqueeze(1)  # (B', T)
    return Growth(float(first.mean()), float(last.mean()), float(slope), float(g[valid].max()))


def growth_series(trace: FamilyTrace, layer: int) -> dict[str, Tensor]:
    """The log magnitudes g = log|x'| + m a family's summary follows, each (B, T, U): sLSTM
    ``normalizer``; mLSTM ``normalizer`` (of ||n'||), ``memory`` (of ||C'||), ``denominator``; none for minLSTM.

    Example::

        >>> growth_series(slstm_trace, layer=0)["normalizer"].shape     # (B, T, H)
    """
    if trace.family not in ("slstm", "mlstm"):
        return {}
    m = family_series(trace, "stabilizer", layer)  # (B, T, H) sLSTM, (B, T, NH) mLSTM
    if trace.family == "slstm":
        return {"normalizer": family_series(trace, "normalizer", layer).log() + m}
    raw = trace.get("normalizer", layer % trace.num_layers)  # (B, T, NH, DH) or (T, NH, DH)
    n_norm = torch.linalg.vector_norm(raw, dim=-1)
    n_norm = n_norm.unsqueeze(0) if unbatched(trace) else n_norm
    return {
        "normalizer": n_norm.log() + m,
        "memory": family_series(trace, "memory_norm", layer).log() + m,
        "denominator": family_series(trace, "denominator", layer).log() + m,
    }


@dataclass(frozen=True)
class FamilyLayerSummary:
    """One layer of a family trace: gate statistics, the memory horizon, log growths, per-head gates."""

    layer: int
    gates: dict[str, GateStats]
    horizon: MemoryHorizon
    growth: dict[str, Growth]
    heads: dict[str, list[GateStats]] = field(default_factory=dict)
    direction: int = 0  # family modules run forward only

    def to_dict(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "direction": "forward",
            "gates": {name: s.to_dict() for name, s in self.gates.items()},
            "memory_horizon": self.horizon.to_dict(),
            "log_growth": {name: g.to_dict() for name, g in self.growth.items()},
            "heads": {name: [s.to_dict() for s in stats] for name, stats in self.heads.items()},
        }


@dataclass(frozen=True)
class FamilySummary:
    """The summary of a family trace: ``layers[k][0]`` is a :class:`FamilyLayerSummary` (one direction,
    indexed like :class:`~lstmkit.trace.summary.TraceSummary` so that pictures read both)."""

    family: str
    layers: list[list[FamilyLayerSummary]]
    sequences: int
    steps: int
    lengths: list[int]

    def to_dict(self) -> dict[str, object]:
        per = "per head" if self.family == "mlstm" else "per unit"
        source = "the applied forget gate f'" if self.family == "minlstm" else "the stabilised forget gate f'"
        return {
            "family": self.family,
            "memory_horizon_from": f"{source}, {per}",
            "sequences": self.sequences,
            "max_steps": self.steps,
            "lengths": self.lengths,
            "layers": [[d.to_dict() for d in layer] for layer in self.layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def summarize_family(trace: FamilyTrace, *, start: int = 0, bins: int = 20) -> FamilySummary:
    """Gate statistics, memory horizon and log growths of every layer of a family trace.

    ``start`` is the step the memory horizon starts at; ``bins`` the histogram size.

    Example::

        >>> out, state, trace = lstmkit.MLSTM(4, 8, num_heads=2)(x, return_gates=True)
        >>> summarize_family(trace).layers[0][0].heads["forget"][1].mean
    """
    if not isinstance(trace, FamilyTrace):
        raise TypeError(f"summarize_family reads a FamilyTrace (sLSTM, mLSTM, minLSTM); got {type(trace).__name__}")
    mask = family_mask(trace)
    lengths = mask.sum(1)
    layers = []
    for k in range(trace.num_layers):
        names = [n for n in STAT_GATES.get(trace.family, ()) if n in trace.records[k]]
        gates = {n: gate_stats(family_series(trace, n, k), mask, symmetric=n == "candidate") for n in names}
        heads: dict[str, list[GateStats]] = {}
        if trace.family == "mlstm":
            for n in HEAD_GATES:
                v = family_series(trace, n, k)  # (B, T, NH)
                heads[n] = [gate_stats(v[..., h : h + 1], mask) for h in range(v.shape[-1])]
        horizon = memory_horizon(family_series(trace, "forget", k), lengths, start=start, bins=bins)
        growth = {n: log_growth(g, lengths) for n, g in growth_series(trace, k).items()}
        layers.append([FamilyLayerSummary(k, gates, horizon, growth, heads)])
    return FamilySummary(
        trace.family, layers, int(mask.shape[0]), int(mask.shape[1]), [int(v) for v in lengths.tolist()]
    )
