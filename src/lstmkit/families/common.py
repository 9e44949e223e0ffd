"""Pieces every family shares: gate pre-activation helpers, the scan over time with padded
lengths, and :class:`FamilyTrace`, the per-step record a layer hands back.

Shape legend: T time, B batch, H hidden, NH heads, DH = H / NH head size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional import check_lengths

INPUT_GATES = ("exp", "sigmoid")
"""Activations the xLSTM paper allows for the input gate (Beck et al. 2024, §2.2)."""
FORGET_GATES = ("sigmoid", "exp")
"""Activations the xLSTM paper allows for the forget gate (Beck et al. 2024, §2.2)."""


def check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    """A spec field that must be one of a few names."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}; got {value!r}")


def check_soft_cap(value: float | None) -> None:
    """``soft_cap`` is None (off) or a positive float."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"soft_cap must be None or a positive float; got {value!r}")


def soft_cap(x: Tensor, cap: float | None) -> Tensor:
    """``cap * tanh(x / cap)``: bounds a pre-activation to (-cap, cap), identity near 0; None: x."""
    return x if cap is None else cap * torch.tanh(x / cap)


def log_gate(pre: Tensor, kind: str) -> Tensor:
    """log of an exponential or sigmoid gate from its pre-activation: ``pre`` or ``logsigmoid(pre)``."""
    return pre if kind == "exp" else F.logsigmoid(pre)


def valid_mask(lengths: Tensor | None, T: int, B: int, device: torch.device) -> Tensor | None:
    """(T, B) bool, True where step t < lengths[b]; None when every sequence has length T."""
    check_lengths(lengths, T, B)
    if lengths is None:
        return None
    steps = torch.arange(T, device=device).unsqueeze(1)  # (T, 1)
    return steps < lengths.to(device).unsqueeze(0)  # (T, B)


def expand_mask(mask: Tensor, like: Tensor) -> Tensor:
    """(B,) mask -> broadcastable against ``like`` (B, ...)."""
    return mask.view(mask.shape[0], *([1] * (like.dim() - 1)))


StepFn = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]]]
"""``step(x_t, state) -> (output_t, new_state, records_t)``: one step on (B, ...) tensors."""


def scan(
    step: StepFn, xs: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None = None, record: bool = False
) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
    """Run ``step`` over the time axis of ``xs`` (T, B, ...).

    A sequence b stops at ``lengths[b]``: from there on its state is kept, its outputs and records
    are zeros (the convention of ``torch.nn.LSTM`` on packed input). Returns the stacked outputs
    (T, B, ...), the final state, and the stacked records (name -> (T, B, ...)) or None.
    """
    T, B = xs.shape[0], xs.shape[1]
    mask = valid_mask(lengths, T, B, xs.device)
    outs: list[Tensor] = []
    recs: dict[str, list[Tensor]] = {}
    for t in range(T):
        out, new, rec = step(xs[t], state)
        if mask is not None:
            m = mask[t]
            new = tuple(torch.where(expand_mask(m, n), n, s) for n, s in zip(new, state, strict=True))
            out = torch.where(expand_mask(m, out), out, torch.zeros_like(out))
            if record:
                rec = {k: torch.where(expand_mask(m, v), v, torch.zeros_like(v)) for k, v in rec.items()}
        state = new
        outs.append(out)
        if record:
            for k, v in rec.items():
                recs.setdefault(k, []).append(v)
    stacked = {k: torch.stack(v) for k, v in recs.items()} if record else None
    return torch.stack(outs), state, stacked


class FamilyTrace:
    """What ``forward(..., return_gates=True)`` of a family module returns: per layer, each recorded
    gate or state over time, batch first: ``get(name, layer)`` is (B, T, ...) (no B when unbatched).

    Padded steps (beyond a sequence's length) hold zeros. ``names`` lists what was recorded.

    Example::

        >>> trace.get("forget", layer=0).shape   # sLSTM, B=4, T=7, H=20
        torch.Size([4, 7, 20])
    """

    def __init__(self, family: str, records: list[dict[str, Tensor]], lengths: Tensor | None) -> None:
        self.family = family  # "slstm", "mlstm" or "minlstm"
        self.records = records  # one dict per layer, name -> (B, T, ...)
        self.lengths = lengths  # (B,) valid lengths, or None when all are T

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.records[0]) if self.records else ()

    @property
    def num_layers(self) -> int:
        return len(self.records)

    def get(self, name: str, layer: int = 0) -> Tensor:
        if not 0 <= layer < len(self.records):
            raise IndexError(f"layer must be in [0, {len(self.records)}); got {layer}")
        if name not in self.records[layer]:
            raise KeyError(f"{self.family} records {self.names}; got {name!r}")
        return self.records[layer][name]

    def __repr__(self) -> str:
        return f"FamilyTrace({self.family!r}, layers={self.num_layers}, names={self.names})"


def batch_major(records: dict[str, Tensor] | None, unbatched: bool, order: Tensor | None) -> dict[str, Any]:
    """(T, B, ...) records -> (B, T, ...) (or (T, ...) unbatched), batch in ``order`` if given."""
    if records is None:
        return {}
    out = {}
    for k, v in records.items():
        v = v.transpose(0, 1)
        if order is not None:
            v = v.index_select(0, order)
        out[k] = v.squeeze(0) if unbatched else v
    return out
