"""``LSTM``: a multi-layer, bidirectional, variable-length LSTM, drop-in for ``torch.nn.LSTM``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import kernels
from ..functional import LayerResult, LayerWeights
from ..init import apply_init, module_init
from ..kernels.native import native_lstm
from ..spec import CellSpec, resolve_spec
from . import base, validate

LSTMState = tuple[Tensor, ...]
"""(h, c), or (h, c, g) under ``full_gate_recurrence``: each (L*D, B, ·)."""

_trace_builder: list[Callable[..., Any]] = []
"""Turns the kernels' raw per-layer records into a GateTrace; :mod:`lstmkit.trace` registers it
(modules sit below trace and do not import it)."""


def register_trace_builder(build: Callable[..., Any]) -> None:
    """Set the function ``build(records, spec, *, lengths, batch_first, unbatched, unsorted_indices)``
    that ``forward(..., return_gates=True)`` returns the result of."""
    _trace_builder[:] = [build]


class LSTM(nn.Module):
    r"""A stack of LSTM layers with the arguments, returns and ``state_dict`` of ``torch.nn.LSTM``.

    Each layer k and direction runs, for t = 1..T (reverse: T..1),

    .. math::
        f_t = \sigma(W_f x_t + R_f h_{t-1} + b_f) \quad
        i_t = \sigma(W_i x_t + R_i h_{t-1} + b_i) \quad
        g_t = \tanh(W_g x_t + R_g h_{t-1} + b_g)

        c_t = f_t \odot c_{t-1} + i_t \odot g_t \quad
        o_t = \sigma(W_o x_t + R_o h_{t-1} + b_o) \quad
        h_t = o_t \odot \tanh(c_t)\ (\text{then } h_t = W_{hr} h_t \text{ if proj\_size} > 0)

    and feeds its h_t (both directions concatenated) to layer k + 1, through dropout in training.
    ``spec`` changes the cell (:class:`~lstmkit.CellSpec`); the default is torch's cell and runs
    on torch's fused kernel.

    Args (as ``torch.nn.LSTM``): input_size I, hidden_size H, num_layers L, bias, batch_first,
        dropout (between layers), bidirectional (D = 2), proj_size P (0: none).
    Keyword-only:
        spec: a :class:`CellSpec` or a preset name ("peephole", "cifg", "layernorm", ...).
        forget_bias: constant added to the forget-gate bias at init (Jozefowicz et al. 2015).
        init, t_max: gate-bias initialisation, "torch" (default) or "chrono" with its longest
            dependency ``t_max``: b_f ~ log U[1, t_max - 1], b_i = -b_f (:mod:`lstmkit.init`).
        recurrent_dropout: variational dropout on h_{t-1}: one mask per sequence and
            layer-direction, the same at every step, training only (Gal & Ghahramani 2016).
        zoneout: float or (z_cell, z_hidden): each unit keeps its previous value with that
            probability, fresh masks per step in training, the expectation in evaluation
            (Krueger et al. 2016).
        weight_drop: DropConnect on ``weight_hh``, one mask per forward call, training only
            (Merity et al. 2017).
        generator: ``torch.Generator`` for the masks of these regularisers (default: global).

    Shapes: input (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
    hx = (h_0 (L*D, B, R), c_0 (L*D, B, H)) with R = P or H, zeros when omitted; under
    ``full_gate_recurrence`` a third tensor g_0 (L*D, B, n*H), the previous step's sigmoid gates
    i, f, o, so that the state is everything the next call needs.
    Returns output (T, B, D*R) (or packed) and (h_n, c_n) (FGR: (h_n, c_n, g_n)) shaped like hx, so
    chunk after chunk, ``out, hx = lstm(chunk, hx)`` equals one call on the whole sequence
    (unidirectional layers: a reverse direction reads each chunk backwards on its own). With
    ``return_gates=True`` also a :class:`~lstmkit.trace.GateTrace`. Errors are instances of the
    class ``torch.nn.LSTM`` raises for the same input (see :mod:`lstmkit.modules.validate`).

    Conversions are functions of :mod:`lstmkit.interop` (``lstm_from_torch``, ``lstm_to_torch``,
    ``lstm_from_keras``, ``keras_weights``), also reachable as ``LSTM.from_torch``,
    ``model.to_torch()``, ``LSTM.from_keras`` and ``model.to_keras_weights()``.

    Example::

        >>> lstm = LSTM(10, 20, num_layers=2, batch_first=True)
        >>> out, (h, c) = lstm(torch.randn(4, 7, 10))
        >>> out.shape, h.shape
        (torch.Size([4, 7, 20]), torch.Size([2, 4, 20]))
        >>> out, (h, c), gates = lstm(torch.randn(4, 7, 10), return_gates=True)
        >>> gates.get("forget", layer=0).shape
        torch.Size([4, 7, 20])
    """

    # first layer's input weight, always registered (nn.Module types attribute access as Tensor | Module)
    weight_ih_l0: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        spec: CellSpec | str | None = None,
        forget_bias: float = 0.0,
        init: str = "torch",
        t_max: float | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        weight_drop: float = 0.0,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.input_size = validate.positive_int("input_size", input_size)
        self.hidden_size = validate.positive_int("hidden_size", hidden_size)
        self.num_layers = validate.positive_int("num_layers", num_layers)
        self.bias = bias = validate.flag("bias", bias, ints=False)
        self.batch_first = validate.flag("batch_first", batch_first, ints=False)
        self.bidirectional = bidirectional = validate.flag("bidirectional", bidirectional)
        self.dropout = validate.probability("dropout", dropout)
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}: it has no effect",
                stacklevel=2,
            )
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise TypeError(f"proj_size must be an int; got {type(proj_size).__name__} {proj_size!r}")
        if proj_size < 0:
            raise ValueError(f"proj_size should be a positive integer or zero to disable projections; got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size has to be smaller than hidden_size; got proj_size={proj_size}, hidden_size={hidden_size}"
            )
        self.proj_size = proj_size
        self.spec = resolve_spec(spec)
        self.forget_bias = validate.forget_bias(forget_bias, self.spec, bias)
        self.init, self.t_max = module_init(init, t_max, forget_bias, bias)
        self.recurrent_dropout = validate.probability("recurrent_dropout", recurrent_dropout, closed=False)
        self.zoneout = validate.zoneout_pair(zoneout)
        self.weight_drop = validate.probability("weight_drop", weight_drop, closed=False)
        self.generator = generator
        validate.is_float_dtype(dtype)

        D = 2 if bidirectional else 1
        self._suffixes = [base.direction_suffix(k, d) for k in range(num_layers) for d in range(D)]
        factory: base.Factory = {"device": device, "dtype": dtype}
        for k in range(num_layers):
            layer_input = input_size if k == 0 else D * self.state_size
            shapes = base.param_shapes(self.spec, layer_input, hidden_size, proj_size, bias)
            for d in range(D):
                base.register(self, shapes, base.direction_suffix(k, d), factory)
        self.reset_parameters()

    # ---------------------------------------------------------------- layout
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """R, the size of h: proj_size if projecting, else hidden_size."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def reset_parameters(self) -> None:
        """torch's initialisation (see :func:`lstmkit.modules.base.reset`)."""
        base.reset(self, self.spec, self.hidden_size, self._suffixes, self.forget_bias)
        apply_init(self, self.init, self.t_max)  # chrono: Tallec & Ollivier 2018 (lstmkit.init)

    def __prepare_scriptable__(self) -> nn.Module:
        """Called by ``torch.jit.script`` before compiling: refuses with the reason and what to use."""
        why = "a PackedSequence or tensor input, optional states, the kernel choice"
        raise base.script_unsupported(type(self).__name__, why)

    def stream(self, batch_size: int) -> Any:
        """A :class:`~lstmkit.Stream` of ``batch_size`` independent streams through this module: the
        state carried from call to call, frames or chunks in, chosen streams reset by a mask."""
        from .stream import Stream  # stream.py builds on this module

        return Stream(self, batch_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "num_layers": 1,
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "proj_size": 0,
            "forget_bias": 0.0,
            "init": "torch",
            "t_max": None,
            "recurrent_dropout": 0.0,
            "zoneout": (0.0, 0.0),
            "weight_drop": 0.0,
        }
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if not self.spec.is_plain:
            s += f", spec={self.spec}"
        return s

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Parameters grouped per layer-direction, as ``torch.nn.LSTM.all_weights``."""
        return [[p for p in base.layer_weights(self, suffix) if p is not None] for suffix in self._suffixes]

    def flatten_parameters(self) -> None:
        """Kept for drop-in compatibility with ``torch.nn.LSTM``; lstmkit needs no flat buffer."""

    def _weights(self, suffix: str) -> LayerWeights:
        """One layer-direction's parameters, DropConnect applied in training."""
        w = base.layer_weights(self, suffix)
        return base.drop_recurrent_weight(w, self.weight_drop, self.training, self.generator)

    def _flat_weights(self) -> list[Tensor]:
        """Weights in ``torch.nn.LSTM``'s flat order, DropConnect applied in training."""
        flat: list[Tensor] = []
        for suffix in self._suffixes:
            w = self._weights(suffix)
            flat.extend(t for t in (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, w.weight_hr) if t is not None)
        return flat

    def _regulariser_options(self, T: int, B: int, like: Tensor) -> dict[str, Any]:
        """Fresh masks of the per-step regularisers for one layer-direction and call."""
        options: dict[str, Any] = {}
        if self.training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            mask = base.bernoulli_mask((B, self.state_size), keep, like, self.generator)
            options["recurrent_mask"] = mask / keep
        for key, z, size in (
            ("zoneout_cell", self.zoneout[0], self.hidden_size),
            ("zoneout_hidden", self.zoneout[1], self.state_size),
        ):
            if z:
                options[key] = base.bernoulli_mask((T, B, size), z, like, self.generator) if self.training else z
        return options

    # ---------------------------------------------------------------- boundary
    def _check_input(self, input: Any) -> tuple[Tensor, bool]:
        if isinstance(input, PackedSequence):
            data = validate.floating_tensor("PackedSequence data", input.data)
            if data.dim() != 2:
                raise validate.ShapeError(
                    f"input must have 2 dimensions, got {data.dim()}: PackedSequence data must be "
                    f"(N, {self.input_size}); got {tuple(data.shape)}"
                )
            if data.shape[1] != self.input_size:
                raise validate.ShapeError(
                    f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {data.shape[1]}: "
                    f"PackedSequence data must be (N, {self.input_size}); got {tuple(data.shape)}"
                )
            validate.matches_parameters("input", data, self.weight_ih_l0)
            return data, True
        x = validate.floating_tensor("input", input, self.weight_ih_l0)
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        expected = f"{layout.replace('I', str(self.input_size))} or (T, {self.input_size}) unbatched"
        if x.dim() not in (2, 3):
            raise ValueError(
                f"LSTM: Expected input to be 2D or 3D, got {x.dim()}D instead: input must be {expected}; "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise validate.ShapeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}: "
                f"LSTM input must be {expected}; got shape {tuple(x.shape)}"
            )
        time_axis = 1 if (self.batch_first and x.dim() == 3) else 0
        if x.shape[time_axis] == 0:
            raise validate.ShapeError(
                "Expected sequence length to be larger than 0 in RNN: LSTM input must have at least one time "
                f"step; got shape {tuple(x.shape)}"
            )
        validate.matches_parameters("input", x, self.weight_ih_l0)
        return x, x.dim() == 3

    def _state_sizes(self) -> tuple[tuple[str, int, str], ...]:
        """(name, last dimension, what sets it) of each tensor of the state, in order."""
        R, H = self.state_size, self.hidden_size
        sizes = [("h_0", R, "proj_size" if self.proj_size else "hidden_size"), ("c_0", H, "hidden_size")]
        if self.spec.full_gate_recurrence:
            n = len(self.spec.sigmoid_gates)
            sizes.append(("g_0", n * H, f"{n} * hidden_size: the previous step's gates {self.spec.sigmoid_gates}"))
        return tuple(sizes)

    def _check_state(self, hx: Any, batch: int, batched: bool, like: Tensor) -> tuple[Tensor, ...]:
        """The state as (L*D, B, ·) tensors: zeros when ``hx`` is None, else ``hx`` checked."""
        LD = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        if hx is None:
            return tuple(like.new_zeros(LD, batch, size) for _, size, _ in sizes)
        state = validate.state_tuple(hx, "LSTM", self.spec)
        validate.state_dims(state, batched)
        for index, ((name, size, last), t) in enumerate(zip(sizes, state, strict=True)):
            want: tuple[int, ...]
            if batched:
                want, note = (LD, batch, size), f"num_layers * num_directions, batch of the input, {last}"
            else:
                want, note = (LD, size), f"unbatched input: num_layers * num_directions, {last}"
            validate.hidden_size(index, name, t, want, note)
            validate.matches_parameters(name, t, self.weight_ih_l0)
        if not batched:
            state = tuple(t.unsqueeze(1) for t in state)
        return state

    # ---------------------------------------------------------------- forward
    def forward(self, input: Any, hx: Any = None, return_gates: bool = False) -> Any:
        """Run the stack; see the class docstring for shapes. Returns ``(output, (h_n, c_n))``,
        plus a :class:`GateTrace` when ``return_gates`` is True."""
        if not isinstance(return_gates, bool):
            raise TypeError(f"return_gates must be a bool; got {type(return_gates).__name__} {return_gates!r}")
        x, batched = self._check_input(input)
        packed = isinstance(input, PackedSequence)
        sorted_idx = input.sorted_indices if packed else None
        if packed:
            validate.packed_batch_sizes(input.batch_sizes, input.data.shape[0])
            batch = int(input.batch_sizes[0])
        elif batched:
            batch = x.shape[0] if self.batch_first else x.shape[1]
        else:
            batch = 1
        state = self._check_state(hx, batch, batched, x)
        if sorted_idx is not None:
            state = tuple(t.index_select(1, sorted_idx) for t in state)
        return self._run(x, state, return_gates, batched=batched, packed=input if packed else None)

    def _run(
        self, x: Tensor, state: tuple[Tensor, ...], return_gates: bool, *, batched: bool, packed: PackedSequence | None
    ) -> Any:
        """``forward`` after the boundary: ``x`` checked (the data of ``packed`` when given), ``state``
        checked (L*D, B, ·) tensors in ``x``'s batch order. A :class:`~lstmkit.Stream` calls this directly
        with the state this module returned on its previous call, which needs no second check."""
        sorted_idx = packed.sorted_indices if packed is not None else None
        unsorted_idx = packed.unsorted_indices if packed is not None else None
        # zoneout acts at every step in evaluation too (as its expectation)
        per_step = (self.training and self.recurrent_dropout > 0) or self.zoneout != (0.0, 0.0)
        kernel = kernels.choose(self.spec, record=return_gates, per_step_regularised=per_step)
        trace = None
        final: tuple[Tensor, ...]
        if kernel == "native":
            data = x if (batched or packed is not None) else x.unsqueeze(1 if not self.batch_first else 0)
            out, h_n, c_n = native_lstm(
                data,
                (state[0], state[1]),
                self._flat_weights(),
                bias=self.bias,
                num_layers=self.num_layers,
                dropout=self.dropout,
                training=self.training,
                bidirectional=self.bidirectional,
                batch_first=self.batch_first and packed is None,
                batch_sizes=packed.batch_sizes if packed is not None else None,
            )
            if not (batched or packed is not None):
                out = out.squeeze(0 if self.batch_first else 1)
            final = (h_n, c_n)
        else:
            if packed is not None:
                seq, lengths = pad_packed_sequence(PackedSequence(x, packed.batch_sizes))  # (T, B, I), sorted order
            else:
                seq = x if batched else x.unsqueeze(1)
                seq = seq.transpose(0, 1) if (self.batch_first and batched) else seq
                lengths = None
            out, final, records = self._explicit(kernel, seq, state, lengths, return_gates)
            if records is not None:
                trace = _trace_builder[0](
                    records,
                    self.spec,
                    lengths=lengths,
                    batch_first=self.batch_first,
                    unbatched=not batched,
                    unsorted_indices=unsorted_idx,
                )
            if lengths is not None:  # packed input (lengths is None otherwise)
                out = pack_padded_sequence(out, lengths, enforce_sorted=True).data
            elif not batched:
                out = out.squeeze(1)
            elif self.batch_first:
                out = out.transpose(0, 1)

        if packed is not None:
            output: Any = PackedSequence(out, packed.batch_sizes, sorted_idx, unsorted_idx)
            if unsorted_idx is not None:  # None when packed with enforce_sorted=True: already in order
                final = tuple(t.index_select(1, unsorted_idx) for t in final)
        else:
            output = out
            if not batched:
                final = tuple(t.squeeze(1) for t in final)
        if return_gates:
            return output, final, trace
        return output, final

    def _explicit(
        self, kernel: str, seq: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, record: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], list[list[dict[str, Tensor]]] | None]:
        """Layer by layer on a step kernel; ``seq`` (T, B, I) time-major, ``state`` (L*D, B, ·) tensors
        with the batch as h0's. Returns the last layer's output, the final state and the records."""
        T, B = seq.shape[0], seq.shape[1]
        finals: list[list[Tensor]] = [[] for _ in state]
        records = []
        layer_input = seq
        for k in range(self.num_layers):
            outs, layer_records = [], []
            for d in range(self.num_directions):
                idx = k * self.num_directions + d
                w = self._weights(base.direction_suffix(k, d))
                options = self._regulariser_options(T, B, seq)
                options.update(lengths=lengths, reverse=d == 1, record=record)
                if len(state) == 3:  # full gate recurrence: the previous step's gates
                    options["g0"] = state[2][idx]
                res: LayerResult = kernels.run_layer(
                    kernel, layer_input, state[0][idx], state[1][idx], w, self.spec, **options
                )
                outs.append(res.output)
                for slot, t in zip(finals, (res.h_n, res.c_n, res.g_n), strict=False):
                    assert t is not None  # g_n is set by every kernel under full_gate_recurrence
                    slot.append(t)
                if res.gates is not None:
                    layer_records.append(res.gates)
            layer_input = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
            records.append(layer_records)
        return layer_input, tuple(torch.stack(f) for f in finals), (records if record else None)
