"""``SLSTM`` and ``SLSTMCell``: the xLSTM paper's sLSTM with the arguments and returns of ``lstmkit.LSTM``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..families.slstm import SLSTMSpec, SLSTMState, slstm_layer, slstm_step
from ..kernels import families as family_kernels
from ..kernels.families import slstm as compiled_slstm
from .family_base import FamilyCell, FamilyRNN, check_heads, init_choice, small_init_, uniform_

INITS = ("torch", "xlstm")


def _shapes(input_size: int, hidden_size: int, num_heads: int, bias: bool) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (4 * hidden_size, input_size),
        "weight_hh": (4 * hidden_size, hidden_size // num_heads),
    }
    if bias:
        shapes["bias"] = (4 * hidden_size,)
    return shapes


def _xlstm_init_(weight_ih: Tensor, weight_hh: Tensor, bias: Tensor | None, num_heads: int) -> None:
    """The official package's defaults: input weights small-init, recurrent weights 0, biases 0 but
    the forget gate's, which falls in each head as a power law from 5 to -7 ("powerlaw_blockdependent")."""
    small_init_(weight_ih)
    with torch.no_grad():
        weight_hh.zero_()
        if bias is not None:
            H = bias.shape[0] // 4
            DH = H // num_heads
            ramp = torch.arange(DH, dtype=torch.float64) / max(DH - 1, 1)
            forget = 5.0 - 12.0 * ramp**0.3  # (DH,)
            bias.zero_()
            bias[H : 2 * H] = forget.repeat(num_heads).to(bias)


class SLSTM(FamilyRNN):
    r"""A stack of sLSTM layers (Beck et al. 2024, "xLSTM", §2.2), shaped like :class:`lstmkit.LSTM`.

    Layer k runs, for t = 1..T, with R block-diagonal over ``num_heads`` heads,

    .. math::
        \tilde u_t = W_u x_t + R_u h_{t-1} + b_u \ (u = i, f, z, o) \qquad
        m_t = \max(\log f_t + m_{t-1}, \log i_t)

        i'_t = e^{\log i_t - m_t} \quad f'_t = e^{\log f_t + m_{t-1} - m_t} \quad
        z_t = \tanh \tilde z_t \quad o_t = \sigma(\tilde o_t)

        c_t = f'_t c_{t-1} + i'_t z_t \quad n_t = f'_t n_{t-1} + i'_t \quad h_t = o_t c_t / n_t

    with :math:`\log i_t = \tilde i_t` (exponential input gate) and
    :math:`\log f_t = \log\sigma(\tilde f_t)` by default (``spec`` changes these; see
    :class:`~lstmkit.families.SLSTMSpec`), and feeds h_t to layer k + 1 through dropout in training.

    Args: input_size I, hidden_size H, num_layers L, bias, batch_first, dropout (between layers).
    Keyword-only: num_heads NH (dividing H), spec (:class:`SLSTMSpec`), init ("torch": every parameter
        U(-1/sqrt(H), 1/sqrt(H)); "xlstm": the official package's defaults), kernel ("auto": the
        compiled C++ recurrence when it can run the call, else the reference loop; "compiled";
        "reference"; "auto" follows :func:`lstmkit.kernels.use`), device, dtype.

    Parameters per layer: ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H/NH) (row (g, head,
    unit), columns the units of that head), ``bias_l{k}`` (4H,); gate blocks in order i, f, z, o.

    Shapes: input (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
    ``lengths=`` (B,) for a padded batch. state = (h, c, n, m), each (L, B, H) ((L, H) unbatched),
    zeros when omitted. Returns (output (T, B, H) or packed, state); with ``return_gates=True`` also a
    :class:`~lstmkit.families.FamilyTrace` of input, forget (stabilised), forget_raw, candidate,
    output, cell, normalizer, stabilizer, hidden. Padded steps keep the state and output zeros.

    Example::

        >>> m = SLSTM(10, 16, num_layers=2, num_heads=4, batch_first=True)
        >>> out, (h, c, n, m_) = m(torch.randn(3, 7, 10))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 16]), torch.Size([2, 3, 16]))
    """

    family = "slstm"
    state_names = ("h", "c", "n", "m")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        num_heads: int = 1,
        spec: SLSTMSpec | None = None,
        init: str = "torch",
        kernel: str = "auto",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, dtype)
        self.kernel = family_kernels.check_kernel(kernel)
        self.num_heads = check_heads(self.hidden_size, num_heads)
        self.spec = spec if spec is not None else SLSTMSpec()
        if not isinstance(self.spec, SLSTMSpec):
            raise TypeError(f"spec must be an SLSTMSpec; got {type(spec).__name__}")
        self.init = init_choice(init, INITS)
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else self.hidden_size
            for name, shape in _shapes(layer_input, self.hidden_size, self.num_heads, self.bias).items():
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_(self, self.hidden_size)
        if self.init == "xlstm":
            for k in range(self.num_layers):
                w = self._layer(k)
                _xlstm_init_(w[0], w[1], w[2], self.num_heads)

    def _layer(self, k: int) -> tuple[Tensor, Tensor, Tensor | None]:
        return getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"), getattr(self, f"bias_l{k}", None)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden_size,)] * 4

    def run_layer(
        self, k: int, seq: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, record: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
        w_ih, w_hh, b = self._layer(k)
        x_proj = nn.functional.linear(seq, w_ih, b)  # (T, B, 4H)
        s0 = SLSTMState(*state)
        if family_kernels.choose(self.kernel, "slstm", record=record, tensors=(x_proj, w_hh, *s0)) == "compiled":
            out, final = compiled_slstm.slstm_layer(x_proj, s0, w_hh, self.num_heads, self.spec, lengths)
            return out, tuple(final), None
        out, final, rec = slstm_layer(x_proj, s0, w_hh, self.num_heads, self.spec, lengths, record)
        return out, tuple(final), rec

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, num_heads={self.num_heads}"
        s += "" if self.spec == SLSTMSpec() else f", spec={self.spec}"
        return s + ("" if self.kernel == "auto" else f", kernel={self.kernel!r}")


class SLSTMCell(FamilyCell):
    r"""One sLSTM step (Beck et al. 2024, §2.2): the equations of :class:`SLSTM` for one t.

    Args: input_size I, hidden_size H, bias; keyword-only num_heads, spec, init, device, dtype.
    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H/NH), ``bias`` (4H,).

    Shapes: input (B, I) or (I,); state (h, c, n, m), each (B, H) or (H,), zeros when omitted.
    Returns (h, state); with ``return_gates=True`` also the step's gates, name -> (B, H).

    Example::

        >>> cell = SLSTMCell(10, 16, num_heads=4)
        >>> h, state = cell(torch.randn(3, 10))
        >>> h, state = cell(torch.randn(3, 10), state)
    """

    spec: SLSTMSpec
    num_heads: int
    init: str
    family = "slstm"
    state_names = ("h", "c", "n", "m")
    weight_hh: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        num_heads: int = 1,
        spec: SLSTMSpec | None = None,
        init: str = "torch",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        layer = SLSTM(input_size, hidden_size, 1, bias, num_heads=num_heads, spec=spec, init=init, dtype=dtype)
        self._adopt(layer, device)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden_size,)] * 4

    def forward(self, input: Any, state: Any = None, return_gates: bool = False) -> Any:
        x, s, batched = self._prepare(input, state)
        x_proj = nn.functional.linear(x, self.weight_ih, getattr(self, "bias", None))
        new, gates = slstm_step(x_proj, SLSTMState(*s), self.weight_hh, self.num_heads, self.spec)
        squeeze = (lambda t: t) if batched else (lambda t: t.squeeze(0))
        result = (squeeze(new.hidden), tuple(squeeze(t) for t in new))
        if return_gates:
            return (*result, {k: squeeze(v) for k, v in gates.items()})
        return result
