"""The record of a forward pass: every gate and state of every layer and direction over time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..modules.lstm import register_trace_builder
from ..spec import CellSpec

if TYPE_CHECKING:
    from .summary import TraceSummary

TRACE_NAMES = ("input", "forget", "candidate", "output", "cell", "hidden")
"""What a :class:`GateTrace` holds for each layer and direction."""


@dataclass
class GateTrace:
    """Gate activations and states over time, as returned by ``model(x, return_gates=True)``.

    ``layers[k][d][name]`` is the time series of ``name`` (one of :data:`TRACE_NAMES`) for
    layer ``k`` and direction ``d`` (0 forward, 1 reverse): (B, T, H) with ``batch_first``,
    else (T, B, H); (T, H) for unbatched input. ``hidden`` has size P with a projection. Padded
    positions of packed input are zero, and ``lengths`` (B,) gives each sequence's length
    (None when all have length T). A gate the spec removes (NIG, NFG, NOG) is recorded as its
    constant value 1 at valid steps; CIFG's forget gate is recorded as 1 - input.

    Example::

        >>> out, (h, c), trace = model(x, return_gates=True)
        >>> trace.get("forget", layer=0).shape      # (T, B, H)
    """

    layers: list[list[dict[str, Tensor]]]
    spec: CellSpec
    batch_first: bool = False
    lengths: Tensor | None = None
    unbatched: bool = False
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        """L, the number of recorded layers."""
        return len(self.layers)

    @property
    def num_directions(self) -> int:
        """D, 2 for a bidirectional model, else 1."""
        return len(self.layers[0]) if self.layers else 0

    def get(self, name: str, layer: int = -1, direction: int = 0) -> Tensor:
        """The time series of one gate or state (see the class docstring for its shape)."""
        if name not in TRACE_NAMES:
            raise KeyError(f"unknown trace name {name!r}; expected one of {TRACE_NAMES}")
        try:
            return self.layers[layer][direction][name]
        except IndexError:
            raise IndexError(
                f"trace has {self.num_layers} layer(s) and {self.num_directions} direction(s); "
                f"got layer={layer}, direction={direction}"
            ) from None

    @property
    def time_dim(self) -> int:
        """Index of the time axis in every recorded tensor."""
        return 1 if (self.batch_first and not self.unbatched) else 0

    def summary(self, *, start: int = 0, bins: int = 20) -> TraceSummary:
        """Per layer, direction and gate: mean activation and saturation over valid steps, and
        the forget gate's memory horizon from step ``start`` (see :mod:`lstmkit.trace.summary`
        for the exact definitions).

        Example::

            >>> s = trace.summary()
            >>> s.layers[0][0].gates["forget"].mean, s.layers[0][0].horizon.median
        """
        from .summary import summarize

        return summarize(self, start=start, bins=bins)

    def summary_json(self, *, start: int = 0, bins: int = 20, indent: int | None = 2) -> str:
        """:meth:`summary` as JSON text (``json.loads`` gives ``summary().to_dict()``)."""
        return self.summary(start=start, bins=bins).to_json(indent=indent)


def assemble_trace(
    layers: list[list[dict[str, Tensor]]],
    spec: CellSpec,
    *,
    lengths: Tensor | None,
    batch_first: bool,
    unbatched: bool,
    unsorted_indices: Tensor | None,
) -> GateTrace:
    """Build a :class:`GateTrace` from the kernels' time-major (T, B, ·) records.

    Fills removed gates with ones at valid steps, restores the caller's batch order for packed
    input (``unsorted_indices``) and its layout (``batch_first``, unbatched).
    """
    valid = None
    if lengths is not None:
        some = next(iter(layers[0][0].values()))
        steps = torch.arange(some.shape[0], device=some.device).unsqueeze(1)
        valid = (steps < lengths.to(some.device).unsqueeze(0)).unsqueeze(-1).to(some.dtype)
    out_layers = []
    for layer in layers:
        out_dirs = []
        for record in layer:
            full: dict[str, Tensor] = {}
            for name in TRACE_NAMES:
                value = record.get(name)
                if value is None:  # a gate the spec removes: constant 1
                    value = torch.ones_like(record["cell"])
                    if valid is not None:
                        value = value * valid
                if unsorted_indices is not None:
                    value = value.index_select(1, unsorted_indices.to(value.device))
                if unbatched:
                    value = value.squeeze(1)
                elif batch_first:
                    value = value.transpose(0, 1)
                full[name] = value
            out_dirs.append(full)
        out_layers.append(out_dirs)
    if lengths is not None and unsorted_indices is not None:
        lengths = lengths.index_select(0, unsorted_indices.to(lengths.device))
    return GateTrace(out_layers, spec, batch_first, lengths, unbatched)


# ``LSTM.forward(..., return_gates=True)`` builds its GateTrace with this (modules do not import trace)
register_trace_builder(assemble_trace)
