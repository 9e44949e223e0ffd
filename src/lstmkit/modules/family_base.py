"""Plumbing shared by the sLSTM, mLSTM and minLSTM modules: arguments, the check of the input and
of the state at the boundary, padded / packed / unbatched layouts, the stack of layers with dropout
between them, and gate records. Each family's file adds its parameters and its layer maths.

Shape legend: T time, B batch, I input, H hidden, L layers.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..families.common import FamilyTrace, batch_major
from . import validate


def check_heads(hidden_size: int, num_heads: object) -> int:
    """``num_heads`` must be a positive int dividing ``hidden_size``."""
    heads = validate.positive_int("num_heads", num_heads)
    if hidden_size % heads:
        raise ValueError(f"num_heads must divide hidden_size={hidden_size}; got num_heads={heads}")
    return heads


def init_choice(init: object, allowed: tuple[str, ...]) -> str:
    if init not in allowed:
        raise ValueError(f"init must be one of {allowed}; got {init!r}")
    return str(init)


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch's RNN initialisation: every parameter U(-1/sqrt(H), 1/sqrt(H)), in registration order."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.uniform_(-bound, bound)


def small_init_(weight: Tensor) -> None:
    """N(0, 2 / (5 fan_in)), the official xLSTM package's "small init" of projections."""
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / (5.0 * weight.shape[-1])))


def check_state_tuple(state: object, names: tuple[str, ...], family: str) -> tuple[Tensor, ...]:
    """A tuple of ``len(names)`` floating tensors."""
    if not isinstance(state, (tuple, list)) or len(state) != len(names):
        got = f"{type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else type(state)
        got = got if isinstance(got, str) else got.__name__
        raise validate.ArgumentTypeError(f"state must be a tuple ({', '.join(names)}) for {family}; got {got}")
    return tuple(validate.floating_tensor(f"state {n}", t) for n, t in zip(names, state, strict=True))


class FamilyRNN(nn.Module):
    """Base of :class:`SLSTM`, :class:`MLSTM`, :class:`MinLSTM`: a stack of ``num_layers`` layers.

    Subclasses set ``family`` and ``state_names``, register their parameters, and define
    ``state_shapes()`` (per-layer shape of each state tensor after the batch axis) and
    ``run_layer(k, seq, state, lengths, record)``.
    """

    family = ""
    state_names: tuple[str, ...] = ()
    weight_ih_l0: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.input_size = validate.positive_int("input_size", input_size)
        self.hidden_size = validate.positive_int("hidden_size", hidden_size)
        self.num_layers = validate.positive_int("num_layers", num_layers)
        self.bias = validate.flag("bias", bias)
        self.batch_first = validate.flag("batch_first", batch_first)
        self.dropout = validate.probability("dropout", dropout)
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout={dropout} acts between layers, so it has no effect with num_layers=1", stacklevel=3)
        validate.is_float_dtype(dtype)

    def state_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def run_layer(
        self, k: int, seq: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, record: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
        raise NotImplementedError

    # ---------------------------------------------------------------- boundary
    def _check_input(self, input: Any) -> tuple[Tensor, bool]:
        name = type(self).__name__
        if isinstance(input, PackedSequence):
            data = validate.floating_tensor("PackedSequence data", input.data)
            if data.dim() != 2 or data.shape[1] != self.input_size:
                raise validate.ShapeError(
                    f"{name}: PackedSequence data must be (N, {self.input_size}); got {tuple(data.shape)}"
                )
            validate.matches_parameters("input", data, self.weight_ih_l0)
            return data, True
        x = validate.floating_tensor("input", input)
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        expected = f"{layout.replace('I', str(self.input_size))} or (T, {self.input_size}) unbatched"
        if x.dim() not in (2, 3):
            raise ValueError(f"{name} input must be {expected}; got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise validate.ShapeError(f"{name} input must be {expected}; got shape {tuple(x.shape)}")
        if x.shape[1 if (self.batch_first and x.dim() == 3) else 0] == 0:
            raise validate.ShapeError(f"{name} input must have at least one time step; got shape {tuple(x.shape)}")
        validate.matches_parameters("input", x, self.weight_ih_l0)
        return x, x.dim() == 3

    def _check_state(self, state: Any, batch: int, batched: bool, like: Tensor) -> tuple[Tensor, ...]:
        L = self.num_layers
        if state is None:
            return tuple(like.new_zeros(L, batch, *shape) for shape in self.state_shapes())
        tensors = check_state_tuple(state, self.state_names, type(self).__name__)
        out = []
        for name, t, shape in zip(self.state_names, tensors, self.state_shapes(), strict=True):
            want = (L, batch, *shape) if batched else (L, *shape)
            note = "num_layers, batch of the input, ..." if batched else "unbatched input: num_layers, ..."
            validate.expect_shape(f"state {name}", t, want, note)
            validate.matches_parameters(f"state {name}", t, self.weight_ih_l0)
            out.append(t if batched else t.unsqueeze(1))
        return tuple(out)

    # ---------------------------------------------------------------- forward
    def forward(
        self, input: Any, state: Any = None, return_gates: bool = False, *, lengths: Tensor | None = None
    ) -> Any:
        """Run the stack. Returns ``(output, state)``, plus a :class:`~lstmkit.families.FamilyTrace`
        when ``return_gates`` is True. ``lengths`` (B,) marks the valid steps of a padded batch."""
        if not isinstance(return_gates, bool):
            raise TypeError(f"return_gates must be a bool; got {type(return_gates).__name__} {return_gates!r}")
        x, batched = self._check_input(input)
        packed = isinstance(input, PackedSequence)
        if packed and lengths is not None:
            raise ValueError("lengths is for padded input; a PackedSequence carries its own")
        sorted_idx = input.sorted_indices if packed else None
        unsorted_idx = input.unsorted_indices if packed else None
        packed_lengths = None
        if packed:
            seq, packed_lengths = pad_packed_sequence(PackedSequence(x, input.batch_sizes))  # (T, B, I), sorted
            lengths = packed_lengths
        else:
            seq = x if batched else x.unsqueeze(1)
            seq = seq.transpose(0, 1) if (self.batch_first and batched) else seq
        B = seq.shape[1]
        if lengths is not None and not packed and not batched:
            raise ValueError("lengths needs batched input")
        states = self._check_state(state, B, batched, x)
        if sorted_idx is not None:
            states = tuple(s.index_select(1, sorted_idx) for s in states)

        layer_input, finals, records = seq, [], []
        for k in range(self.num_layers):
            out, final, rec = self.run_layer(k, layer_input, tuple(s[k] for s in states), lengths, return_gates)
            finals.append(final)
            records.append(batch_major(rec, not (batched or packed), unsorted_idx))
            layer_input = out
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
        new_state = tuple(torch.stack(parts) for parts in zip(*finals, strict=True))  # each (L, B, ...)

        output: Any
        if packed_lengths is not None:
            data = pack_padded_sequence(layer_input, packed_lengths, enforce_sorted=True).data
            output = PackedSequence(data, input.batch_sizes, sorted_idx, unsorted_idx)
            if unsorted_idx is not None:
                new_state = tuple(s.index_select(1, unsorted_idx) for s in new_state)
                lengths = packed_lengths.index_select(0, unsorted_idx.to(packed_lengths.device))
        elif not batched:
            output, new_state = layer_input.squeeze(1), tuple(s.squeeze(1) for s in new_state)
        else:
            output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if return_gates:
            return output, new_state, FamilyTrace(self.family, records, lengths)
        return output, new_state

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            f"torch.jit.script cannot compile lstmkit.{type(self).__name__}; "
            "use torch.jit.trace or torch.export.export on the module in eval mode"
        )


class FamilyCell(nn.Module):
    """Base of the one-step cells: checks x (B, I) or (I,) and the state tuple."""

    family = ""
    state_names: tuple[str, ...] = ()
    weight_ih: Tensor
    input_size: int
    hidden_size: int
    spec: Any  # the family's spec dataclass (each cell names its type)

    def state_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _adopt(self, layer: FamilyRNN, device: Any) -> None:
        """Take the sizes, spec and parameters (suffix ``_l0`` dropped) of a one-layer ``layer`` built
        with the cell's arguments, so that a cell and a layer initialise alike."""
        self.input_size, self.hidden_size, self.spec = layer.input_size, layer.hidden_size, layer.spec
        for attr in ("num_heads", "init"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))
        for name, p in layer.named_parameters():
            self.register_parameter(name[: -len("_l0")], nn.Parameter(p.detach().to(device)))

    def _prepare(self, input: Any, state: Any) -> tuple[Tensor, tuple[Tensor, ...], bool]:
        name = type(self).__name__
        x = validate.floating_tensor("input", input)
        I = self.weight_ih.shape[1]
        if x.dim() not in (1, 2) or x.shape[-1] != I:
            raise validate.ShapeError(f"{name} input must be (B, {I}) or ({I},); got shape {tuple(x.shape)}")
        validate.matches_parameters("input", x, self.weight_ih)
        batched = x.dim() == 2
        x = x if batched else x.unsqueeze(0)
        B = x.shape[0]
        if state is None:
            return x, tuple(x.new_zeros(B, *shape) for shape in self.state_shapes()), batched
        tensors = check_state_tuple(state, self.state_names, name)
        out = []
        for n, t, shape in zip(self.state_names, tensors, self.state_shapes(), strict=True):
            validate.expect_shape(f"state {n}", t, (B, *shape) if batched else tuple(shape))
            validate.matches_parameters(f"state {n}", t, self.weight_ih)
            out.append(t if batched else t.unsqueeze(0))
        return x, tuple(out), batched
