"""``MinLSTM`` and ``MinLSTMCell``: minLSTM (Feng et al. 2024) with the arguments and returns of ``lstmkit.LSTM``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..families.common import check_choice
from ..families.minlstm import MinLSTMSpec, MinLSTMState, minlstm_layer, minlstm_step
from .family_base import FamilyCell, FamilyRNN, uniform_

FORMS = ("scan", "sequential")


class MinLSTM(FamilyRNN):
    r"""A stack of minLSTM layers (Feng et al. 2024, "Were RNNs All We Needed?", §3.2), shaped like
    :class:`lstmkit.LSTM`.

    Layer k runs, for t = 1..T (gates from the input only, so the layer is a linear recurrence),

    .. math::
        f_t = \sigma(W_f x_t + b_f) \quad i_t = \sigma(W_i x_t + b_i) \quad
        \tilde h_t = W_h x_t + b_h

        h_t = \frac{f_t}{f_t + i_t} h_{t-1} + \frac{i_t}{f_t + i_t} \tilde h_t

    (``spec``: the positive candidate g of the paper's log-space mode, or no normalisation; see
    :class:`~lstmkit.families.MinLSTMSpec`), and feeds h_t to layer k + 1 through dropout in training.

    Args: input_size I, hidden_size H, num_layers L, bias, batch_first, dropout (between layers).
    Keyword-only: spec, form ("scan": the log-space parallel scan, default; "sequential": the step
        loop; both compute the same function, and ``return_gates=True`` runs the sequential one),
        device, dtype. Every parameter starts U(-1/sqrt(H), 1/sqrt(H)).

    Parameters per layer: ``weight_ih_l{k}`` (3H, I), ``bias_l{k}`` (3H,), blocks i, f, h~.

    Shapes: input (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
    ``lengths=`` (B,) for a padded batch. state = (h,), h (L, B, H) ((L, H) unbatched), zeros when
    omitted. Returns (output (T, B, H) or packed, state); with ``return_gates=True`` also a
    :class:`~lstmkit.families.FamilyTrace` of input, forget (as applied), candidate, hidden.

    Example::

        >>> m = MinLSTM(10, 16, num_layers=2, batch_first=True)
        >>> out, (h,) = m(torch.randn(3, 7, 10))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 16]), torch.Size([2, 3, 16]))
    """

    family = "minlstm"
    state_names = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        spec: MinLSTMSpec | None = None,
        form: str = "scan",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, dtype)
        self.spec = spec if spec is not None else MinLSTMSpec()
        if not isinstance(self.spec, MinLSTMSpec):
            raise TypeError(f"spec must be a MinLSTMSpec; got {type(spec).__name__}")
        check_choice("form", form, FORMS)
        self.form = form
        factory = {"device": device, "dtype": dtype}
        H = self.hidden_size
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else H
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(3 * H, layer_input, **factory)))
            if self.bias:
                self.register_parameter(f"bias_l{k}", nn.Parameter(torch.empty(3 * H, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_(self, self.hidden_size)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden_size,)]

    def run_layer(
        self, k: int, seq: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, record: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
        x_proj = nn.functional.linear(seq, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_l{k}", None))
        out, final, rec = minlstm_layer(x_proj, MinLSTMState(*state), self.spec, lengths, record, self.form)
        return out, tuple(final), rec

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, form={self.form!r}"
        return s + ("" if self.spec == MinLSTMSpec() else f", spec={self.spec}")


class MinLSTMCell(FamilyCell):
    r"""One minLSTM step (Feng et al. 2024, §3.2): the equations of :class:`MinLSTM` for one t.

    Args: input_size I, hidden_size H, bias; keyword-only spec, device, dtype.
    Parameters ``weight_ih`` (3H, I) and ``bias`` (3H,), blocks i, f, h~.

    Shapes: input (B, I) or (I,); state (h,), h (B, H) or (H,), zeros when omitted.
    Returns (h, state); with ``return_gates=True`` also the step's records.

    Example::

        >>> cell = MinLSTMCell(10, 16)
        >>> h, state = cell(torch.randn(3, 10))
        >>> h, state = cell(torch.randn(3, 10), state)
    """

    spec: MinLSTMSpec
    family = "minlstm"
    state_names = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        spec: MinLSTMSpec | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        layer = MinLSTM(input_size, hidden_size, 1, bias, spec=spec, dtype=dtype)
        self._adopt(layer, device)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden_size,)]

    def forward(self, input: Any, state: Any = None, return_gates: bool = False) -> Any:
        x, s, batched = self._prepare(input, state)
        x_proj = nn.functional.linear(x, self.weight_ih, getattr(self, "bias", None))
        new, rec = minlstm_step(x_proj, MinLSTMState(*s), self.spec)
        squeeze = (lambda t: t) if batched else (lambda t: t.squeeze(0))
        result = (squeeze(new.hidden), (squeeze(new.hidden),))
        if return_gates:
            return (*result, {k: squeeze(v) for k, v in rec.items()})
        return result
