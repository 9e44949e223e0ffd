"""``MLSTM`` and ``MLSTMCell``: the xLSTM paper's mLSTM with the arguments and returns of ``lstmkit.LSTM``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..families.common import check_choice
from ..families.mlstm import FORMS, MLSTMSpec, MLSTMState, mlstm_layer, mlstm_step, projection_size, split_projection
from . import validate
from .family_base import FamilyCell, FamilyRNN, check_heads, init_choice, small_init_, uniform_

INITS = ("torch", "xlstm")


def _xlstm_init_(weight_ih: Tensor, bias: Tensor | None, hidden_size: int, num_heads: int) -> None:
    """The official package's defaults: q, k, v (and o) small-init; the i and f rows 0; forget
    biases spread linearly over the heads from 3 to 6, input biases N(0, 0.1^2), other biases 0."""
    H, NH = hidden_size, num_heads
    with torch.no_grad():
        small_init_(weight_ih)
        weight_ih[3 * H : 3 * H + 2 * NH].zero_()
        if bias is not None:
            bias.zero_()
            bias[3 * H : 3 * H + NH].normal_(0.0, 0.1)
            bias[3 * H + NH : 3 * H + 2 * NH] = torch.linspace(3.0, 6.0, NH, dtype=torch.float64).to(bias)


class MLSTM(FamilyRNN):
    r"""A stack of mLSTM layers (Beck et al. 2024, "xLSTM", §2.3), shaped like :class:`lstmkit.LSTM`.

    Layer k computes per head (NH heads of size DH = H / NH), from its input x_t only,

    .. math::
        q_t = W_q x_t + b_q \quad k_t = (W_k x_t + b_k)/\sqrt{DH} \quad v_t = W_v x_t + b_v \quad
        o_t = \sigma(W_o x_t + b_o)

        C_t = f_t C_{t-1} + i_t k_t v_t^\top \quad n_t = f_t n_{t-1} + i_t k_t \quad
        h_t = o_t \odot \frac{C_t^\top q_t}{\max(|n_t^\top q_t|, 1)}

    with scalar gates per head :math:`i_t = \exp(\tilde i_t)`, :math:`f_t = \sigma(\tilde f_t)`
    (stabilised as in sLSTM; ``spec`` changes gates, floor, eps, soft cap, output gate: see
    :class:`~lstmkit.families.MLSTMSpec`), and feeds h_t to layer k + 1 through dropout in training.

    Args: input_size I, hidden_size H, num_layers L, bias, batch_first, dropout (between layers).
    Keyword-only: num_heads NH (dividing H), spec, form ("chunkwise" (default, memory O(T
        chunk_size)), "parallel" (O(T^2)) or "recurrent"; all compute the same function, and
        ``return_gates=True`` runs the recurrent one), chunk_size, init ("torch" or "xlstm"),
        device, dtype.

    Parameters per layer: ``weight_ih_l{k}`` (P, I) and ``bias_l{k}`` (P,), rows q (H), k (H),
    v (H), i (NH), f (NH), then o (H) with the output gate: P = 4H + 2NH (3H + 2NH without).

    Shapes: input (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
    ``lengths=`` (B,) for a padded batch. state = (C (L, B, NH, DH, DH), n (L, B, NH, DH),
    m (L, B, NH)) (no B unbatched), zeros when omitted. Returns (output (T, B, H) or packed, state);
    with ``return_gates=True`` also a :class:`~lstmkit.families.FamilyTrace` of input, forget,
    forget_raw, denominator, memory_norm, stabilizer (B, T, NH), normalizer (B, T, NH, DH),
    output, hidden (B, T, H).

    Example::

        >>> m = MLSTM(10, 16, num_heads=2, batch_first=True)
        >>> out, (C, n, m_) = m(torch.randn(3, 7, 10))
        >>> out.shape, C.shape
        (torch.Size([3, 7, 16]), torch.Size([1, 3, 2, 8, 8]))
    """

    family = "mlstm"
    state_names = ("C", "n", "m")

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
        spec: MLSTMSpec | None = None,
        form: str = "chunkwise",
        chunk_size: int = 64,
        init: str = "torch",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, dtype)
        self.num_heads = check_heads(self.hidden_size, num_heads)
        self.spec = spec if spec is not None else MLSTMSpec()
        if not isinstance(self.spec, MLSTMSpec):
            raise TypeError(f"spec must be an MLSTMSpec; got {type(spec).__name__}")
        check_choice("form", form, FORMS)
        self.form = form
        self.chunk_size = validate.positive_int("chunk_size", chunk_size)
        self.init = init_choice(init, INITS)
        P = projection_size(self.hidden_size, self.num_heads, self.spec)
        factory = {"device": device, "dtype": dtype}
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else self.hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(P, layer_input, **factory)))
            if self.bias:
                self.register_parameter(f"bias_l{k}", nn.Parameter(torch.empty(P, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_(self, self.hidden_size)
        if self.init == "xlstm":
            for k in range(self.num_layers):
                w, b = getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_l{k}", None)
                _xlstm_init_(w, b, self.hidden_size, self.num_heads)

    def state_shapes(self) -> list[tuple[int, ...]]:
        NH, DH = self.num_heads, self.hidden_size // self.num_heads
        return [(NH, DH, DH), (NH, DH), (NH,)]

    def run_layer(
        self, k: int, seq: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, record: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor] | None]:
        x_proj = nn.functional.linear(seq, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_l{k}", None))
        out, final, rec = mlstm_layer(
            x_proj, MLSTMState(*state), self.num_heads, self.spec, lengths, record, self.form, self.chunk_size
        )
        return out, tuple(final), rec

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, num_heads={self.num_heads}"
        s += f", form={self.form!r}"
        return s + ("" if self.spec == MLSTMSpec() else f", spec={self.spec}")


class MLSTMCell(FamilyCell):
    r"""One recurrent mLSTM step (Beck et al. 2024, §2.3): the equations of :class:`MLSTM` for one t.

    Args: input_size I, hidden_size H, bias; keyword-only num_heads, spec, init, device, dtype.
    Parameters ``weight_ih`` (P, I) and ``bias`` (P,), rows as :class:`MLSTM`'s.

    Shapes: input (B, I) or (I,); state (C (B, NH, DH, DH), n (B, NH, DH), m (B, NH)) (no B
    unbatched), zeros when omitted. Returns (h (B, H), state); with ``return_gates=True`` also the
    step's records.

    Example::

        >>> cell = MLSTMCell(10, 16, num_heads=2)
        >>> h, state = cell(torch.randn(3, 10))
        >>> h, state = cell(torch.randn(3, 10), state)
    """

    spec: MLSTMSpec
    num_heads: int
    init: str
    family = "mlstm"
    state_names = ("C", "n", "m")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        num_heads: int = 1,
        spec: MLSTMSpec | None = None,
        init: str = "torch",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        layer = MLSTM(input_size, hidden_size, 1, bias, num_heads=num_heads, spec=spec, init=init, dtype=dtype)
        self._adopt(layer, device)

    def state_shapes(self) -> list[tuple[int, ...]]:
        NH, DH = self.num_heads, self.hidden_size // self.num_heads
        return [(NH, DH, DH), (NH, DH), (NH,)]

    def forward(self, input: Any, state: Any = None, return_gates: bool = False) -> Any:
        x, s, batched = self._prepare(input, state)
        B, NH = x.shape[0], self.num_heads
        x_proj = nn.functional.linear(x, self.weight_ih, getattr(self, "bias", None))
        q, k, v, i, f, o = split_projection(x_proj, NH, self.spec)
        h, new, rec = mlstm_step(
            q.view(B, NH, -1), k.view(B, NH, -1), v.view(B, NH, -1), i, f, MLSTMState(*s), self.spec
        )
        h = h.reshape(B, -1)
        if o is not None:
            rec["output"] = o = torch.sigmoid(o)
            h = o * h
        rec["hidden"] = h
        squeeze = (lambda t: t) if batched else (lambda t: t.squeeze(0))
        result = (squeeze(h), tuple(squeeze(t) for t in new))
        if return_gates:
            return (*result, {name: squeeze(t) for name, t in rec.items()})
        return result
