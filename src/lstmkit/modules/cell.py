"""``LSTMCell``: one step, a drop-in for ``torch.nn.LSTMCell`` with every gate visible."""

from __future__ import annotations

from typing import Any

import torch
from torch import _VF, Tensor, nn

from ..functional import CellGates, lstm_step, sigmoid_gate_state
from ..init import apply_init, module_init
from ..spec import CellSpec, resolve_spec
from . import base, validate


class LSTMCell(nn.Module):
    r"""One LSTM step, with the parameters and call of ``torch.nn.LSTMCell``.

    .. math::
        f_t = \sigma(W_f x_t + R_f h_{t-1} + b_f) \quad
        i_t = \sigma(W_i x_t + R_i h_{t-1} + b_i) \quad
        g_t = \tanh(W_g x_t + R_g h_{t-1} + b_g)

        c_t = f_t \odot c_{t-1} + i_t \odot g_t \quad
        o_t = \sigma(W_o x_t + R_o h_{t-1} + b_o) \quad
        h_t = o_t \odot \tanh(c_t)

    ``spec`` (a :class:`~lstmkit.CellSpec` or preset name) changes these equations; the
    default is exactly torch's cell.

    Args:
        input_size: I. hidden_size: H. bias: use ``bias_ih`` and ``bias_hh``.
        spec: the cell variant. forget_bias: constant added to the forget-gate bias at init
            (Jozefowicz et al. 2015 recommend 1.0). init, t_max: "torch" or "chrono" with its
            longest dependency (:mod:`lstmkit.init`). zoneout: keep probability of the previous
            cell / hidden value per unit, a float or (z_cell, z_hidden) (Krueger et al. 2016):
            fresh masks at every call in training, the expectation in evaluation.
        generator: the ``torch.Generator`` that zoneout masks are drawn from (default: global).

    Parameters: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), ``bias_ih``/``bias_hh`` (G*H,),
    gate rows in order i, f, g, o, and the spec's extras (see :mod:`lstmkit.modules.base`).

    Shapes: input (B, I) or (I,); ``hx`` = (h, c), each (B, H) or (H,), zeros when omitted.
    With ``full_gate_recurrence`` ``hx`` carries a third tensor g (B, n*H): the previous step's
    i, f, o. Returns (h_1, c_1), or (h_1, c_1, g_1) with ``full_gate_recurrence``: the state the
    next step takes. ``cell_from_torch`` /
    ``cell_to_torch`` of :mod:`lstmkit.interop` convert (also ``LSTMCell.from_torch``, ``cell.to_torch()``).

    Example::

        >>> cell = LSTMCell(10, 20)
        >>> x, h, c = torch.randn(3, 10), torch.zeros(3, 20), torch.zeros(3, 20)
        >>> h, c = cell(x, (h, c))
        >>> g = cell.gates(x, (h, c)); g.forget.shape
        torch.Size([3, 20])
    """

    # parameters registered by base.register (nn.Module types attribute access as Tensor | Module)
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        spec: CellSpec | str | None = None,
        forget_bias: float = 0.0,
        init: str = "torch",
        t_max: float | None = None,
        zoneout: float | tuple[float, float] = 0.0,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.input_size = validate.positive_int("input_size", input_size)
        self.hidden_size = validate.positive_int("hidden_size", hidden_size)
        self.bias = bias = validate.flag("bias", bias)  # torch's LSTMCell takes 0 / 1 too
        self.spec = resolve_spec(spec)
        self.forget_bias = validate.forget_bias(forget_bias, self.spec, bias)
        self.init, self.t_max = module_init(init, t_max, forget_bias, bias)
        self.zoneout = validate.zoneout_pair(zoneout)
        self.generator = generator
        validate.is_float_dtype(dtype)
        shapes = base.param_shapes(self.spec, input_size, hidden_size, 0, bias)
        base.register(self, shapes, "", {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation (see :func:`lstmkit.modules.base.reset`)."""
        base.reset(self, self.spec, self.hidden_size, [""], self.forget_bias)
        apply_init(self, self.init, self.t_max)  # chrono: Tallec & Ollivier 2018 (lstmkit.init)

    def __prepare_scriptable__(self) -> nn.Module:
        """Called by ``torch.jit.script`` before compiling: refuses with the reason and what to use."""
        why = "batched or unbatched input, optional states with previous gates"
        raise base.script_unsupported(type(self).__name__, why)

    def stream(self, batch_size: int) -> Any:
        """A :class:`~lstmkit.Stream` of ``batch_size`` independent streams through this module: the
        state carried from call to call, frames or chunks in, chosen streams reset by a mask."""
        from .stream import Stream  # stream.py builds on this module

        return Stream(self, batch_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.spec.is_plain:
            s += f", spec={self.spec}"
        return s

    # ---------------------------------------------------------------- boundary
    def _prepare(self, input: Tensor, hx: Any) -> tuple[Tensor, Tensor, Tensor, Tensor | None, bool]:
        x = validate.floating_tensor("input", input)
        validate.cell_input(x, self.input_size)
        validate.matches_parameters("input", x, self.weight_ih)
        batched = x.dim() == 2
        if not batched:
            x = x.unsqueeze(0)
        B, H = x.shape[0], self.hidden_size
        prev_gates = None
        if hx is None:
            h = x.new_zeros(B, H)
            c = x.new_zeros(B, H)
        else:
            state = validate.state_tuple(hx, "LSTMCell", self.spec)
            h, c = state[0], state[1]
            prev_gates = state[2] if len(state) == 3 else None
            validate.cell_state((h, c), B, H, batched)
            validate.matches_parameters("h_0", h, self.weight_ih)
            validate.matches_parameters("c_0", c, self.weight_ih)
            if not batched:
                h, c = h.unsqueeze(0), c.unsqueeze(0)
            if prev_gates is not None:
                n = len(self.spec.sigmoid_gates) * H
                validate.expect_shape("g_0 (previous gates)", prev_gates, (B, n) if batched else (n,))
                validate.matches_parameters("g_0", prev_gates, self.weight_ih)
                if not batched:
                    prev_gates = prev_gates.unsqueeze(0)
        return x, h, c, prev_gates, batched

    def _step(self, x: Tensor, h: Tensor, c: Tensor, prev_gates: Tensor | None) -> CellGates:
        w = base.layer_weights(self, "")
        step = lstm_step(nn.functional.linear(x, w.weight_ih), h, c, w, self.spec, prev_gates)
        zc, zh = self.zoneout
        if zc or zh:
            new_c = _zone(zc, c, step.cell, self.training, self.generator)
            new_h = _zone(zh, h, step.hidden, self.training, self.generator)
            step = step._replace(cell=new_c, hidden=new_h)
        return step

    # ---------------------------------------------------------------- calls
    def forward(self, input: Tensor, hx: Any = None, return_gates: bool = False) -> Any:
        """One step: returns (h_1, c_1), shaped like ``hx``; with ``return_gates=True`` returns
        (h_1, c_1, gates), ``gates`` the step's :class:`CellGates` (as :meth:`gates`)."""
        if not isinstance(return_gates, bool):
            raise TypeError(f"return_gates must be a bool; got {type(return_gates).__name__} {return_gates!r}")
        x, h, c, prev_gates, batched = self._prepare(input, hx)
        if return_gates:
            step = self._step(x, h, c, prev_gates)
            if not batched:
                step = _unbatch(step)
            return step.hidden, step.cell, step
        if self.spec.is_plain and self.zoneout == (0.0, 0.0):
            b_ih = self.bias_ih if self.bias else None
            b_hh = self.bias_hh if self.bias else None
            state: tuple[Tensor, ...] = tuple(_VF.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, b_ih, b_hh))
        else:
            step = self._step(x, h, c, prev_gates)
            state = (step.hidden, step.cell)
            if self.spec.full_gate_recurrence:  # the next step's g_0
                state = (*state, sigmoid_gate_state(step, self.spec))
        if not batched:
            state = tuple(t.squeeze(0) for t in state)
        return state

    def gates(self, input: Tensor, hx: Any = None) -> CellGates:
        """One step, returning every gate and the new states as a :class:`CellGates`
        (``input``, ``forget``, ``candidate``, ``output``, ``cell``, ``hidden``); a gate the spec
        removes is None."""
        x, h, c, prev_gates, batched = self._prepare(input, hx)
        step = self._step(x, h, c, prev_gates)
        if not batched:
            step = _unbatch(step)
        return step

    # ---------------------------------------------------------------- conversions
    @classmethod
    def from_seed(cls, module: nn.Module) -> LSTMCell:
        """The cell computing the same function as a founding-document cell (four
        ``nn.Linear(I + H, H)`` named ``forget_gate``, ``input_gate``, ``cell_candidate``,
        ``output_gate`` applied to ``cat((x, h_prev), 1)``)."""
        from .seed import seed_to_state_dict

        state, input_size, hidden_size = seed_to_state_dict(module)
        p = state["weight_ih"]
        cell = cls(input_size, hidden_size, device=p.device, dtype=p.dtype)
        cell.load_state_dict(state)
        return cell

    def to_seed(self) -> nn.Module:
        """This cell as a founding-document cell (:class:`lstmkit.modules.seed.SeedLSTMCell`)."""
        from .seed import SeedLSTMCell

        if not self.spec.is_plain:
            raise ValueError(f"only the default spec converts to the four-Linear cell; this cell has {self.spec}")
        if self.zoneout != (0.0, 0.0):
            raise ValueError(f"the four-Linear cell has no zoneout; this cell has zoneout={self.zoneout}")
        return SeedLSTMCell.from_state_dict(self.state_dict(), self.input_size, self.hidden_size)


def _zone(z: float, prev: Tensor, new: Tensor, training: bool, generator: torch.Generator | None) -> Tensor:
    if z == 0.0:
        return new
    keep: Tensor | float = base.bernoulli_mask(tuple(new.shape), z, new, generator) if training else z
    return keep * prev + (1.0 - keep) * new


def _unbatch(step: CellGates) -> CellGates:
    """Drop the batch dimension of 1 from every tensor of ``step`` (None stays None)."""

    def squeeze(v: Tensor | None) -> Tensor | None:
        return None if v is None else v.squeeze(0)

    return CellGates(
        squeeze(step.input),
        squeeze(step.forget),
        step.candidate.squeeze(0),
        squeeze(step.output),
        step.cell.squeeze(0),
        step.hidden.squeeze(0),
    )
