r"""The parts of the xLSTM paper's blocks around an sLSTM or mLSTM cell (Beck et al. 2024, "xLSTM",
§2.4 and Fig. 9-10), each a small optional module: a causal depthwise convolution, a layer norm per
head, and the two layers that put them around lstmkit's :class:`SLSTM` and :class:`MLSTM`.

Shape legend: T time, B batch, H hidden (the layer's width), NH heads, DH = H / NH, K kernel size,
E embedding (outer) width and Ei inner width of the mLSTM layer.

The head-wise projections of the paper's blocks (q, k, v and the sLSTM gate inputs, each
block-diagonal over small heads) and the linear maps of the mLSTM input and forget gates are linear
in the layer's input, so they live inside the cell's ``weight_ih``: the cell reads the concatenation
``[u_t, x_t]`` of the convolved and the plain input, and the rows that must not see one of them
hold zeros there. :func:`lstmkit.interop.from_xlstm` fills them from the official package's layers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families.mlstm import MLSTMSpec
from ..families.slstm import SLSTMSpec
from . import validate
from .family_base import check_heads
from .mlstm import MLSTM
from .slstm import SLSTM


class CausalConv1d(nn.Module):
    r"""Causal depthwise convolution over time, one kernel per channel:

    .. math:: y_t[c] = b[c] + \sum_{j=0}^{K-1} w[c, j]\, x_{t-K+1+j}[c]

    with x_s = 0 before the sequence (or the K - 1 inputs carried in ``state``).

    Args: channels C, kernel_size K (>= 1), bias; device, dtype.
    Parameters: ``weight`` (C, K) (column K - 1 weighs the current step), ``bias`` (C,).

    Shapes: x (B, T, C), state (B, K - 1, C) or None. Returns (y (B, T, C), state (B, K - 1, C)): the
    last K - 1 inputs, so that two calls carrying the state equal one call on the whole sequence.

    Example::

        >>> conv = CausalConv1d(8, kernel_size=4)
        >>> y, state = conv(torch.randn(2, 5, 8))
        >>> y.shape, state.shape
        (torch.Size([2, 5, 8]), torch.Size([2, 3, 8]))
    """

    def __init__(
        self, channels: int, kernel_size: int = 4, bias: bool = True, *, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.channels = validate.positive_int("channels", channels)
        self.kernel_size = validate.positive_int("kernel_size", kernel_size)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.channels, self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.zeros(self.channels, **factory)) if bias else None
        with torch.no_grad():
            bound = 1.0 / self.kernel_size**0.5  # torch's Conv1d default for one input channel per group
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, _, C = x.shape
        if C != self.channels:
            raise ValueError(f"CausalConv1d input must be (B, T, {self.channels}); got {tuple(x.shape)}")
        past = x.new_zeros(B, self.kernel_size - 1, C) if state is None else state
        if past.shape != (B, self.kernel_size - 1, C):
            raise ValueError(f"CausalConv1d state must be ({B}, {self.kernel_size - 1}, {C}); got {tuple(past.shape)}")
        full = torch.cat([past, x], dim=1)  # (B, K - 1 + T, C)
        y = F.conv1d(full.transpose(1, 2), self.weight.unsqueeze(1), self.bias, groups=C)  # (B, C, T)
        return y.transpose(1, 2), full[:, full.shape[1] - (self.kernel_size - 1) :]

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}"


class MultiHeadNorm(nn.Module):
    r"""Layer norm inside each head (a group norm with NH groups over the hidden units):

    .. math:: y = \frac{x - \mu_{head}}{\sqrt{\sigma^2_{head} + \epsilon}} \odot w + b

    Args: hidden_size H, num_heads NH (dividing H), weight (w, init 1), bias (b, init 0), eps.
    Shapes: x (..., H) -> (..., H).

    Example::

        >>> MultiHeadNorm(8, num_heads=2)(torch.randn(3, 8)).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        weight: bool = True,
        bias: bool = False,
        eps: float = 1e-5,
        *,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.hidden_size = validate.positive_int("hidden_size", hidden_size)
        self.num_heads = check_heads(self.hidden_size, num_heads)
        self.eps = float(eps)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(self.hidden_size, **factory)) if weight else None
        self.bias = nn.Parameter(torch.zeros(self.hidden_size, **factory)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        heads = x.reshape(*x.shape[:-1], self.num_heads, -1)  # (..., NH, DH)
        mean = heads.mean(-1, keepdim=True)
        var = heads.var(-1, unbiased=False, keepdim=True)
        y = ((heads - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, num_heads={self.num_heads}, eps={self.eps}"


class BlockState(NamedTuple):
    """The state of an xLSTM block layer: the convolution's last inputs and the cell's state."""

    conv: Tensor | None  # (B, K - 1, C), or None without a convolution
    cell: tuple[Tensor, ...]  # the cell's state tuple, each (1, B, ...)


def _split_state(layer: nn.Module, state: object) -> tuple[Tensor | None, tuple[Tensor, ...] | None]:
    """(conv, cell) of a :class:`BlockState` (or any pair), or (None, None) for a fresh start."""
    if state is None:
        return None, None
    if not isinstance(state, tuple) or len(state) != 2 or not isinstance(state[1], (tuple, list)):
        got = f"a {type(state).__name__} of length {len(state)}" if isinstance(state, tuple) else type(state).__name__
        raise TypeError(f"{type(layer).__name__} state must be a BlockState(conv, cell) or None; got {got}")
    return state[0], tuple(state[1])


def _fresh_cell_state(cell: SLSTM | MLSTM, batch: int, like: Tensor) -> tuple[Tensor, ...]:
    """Zeros, but the stabilizer m = -inf when the cell carries one: nothing has been written yet, so
    the first step sets m_1 = log i_1 (the official package's first step, and its parallel mLSTM
    form). Without the stabilizer m stays where it starts, so it starts at 0."""
    state = [like.new_zeros(1, batch, *shape) for shape in cell.state_shapes()]
    if cell.spec.stabilizer:
        state[cell.state_names.index("m")].fill_(-torch.inf)
    return tuple(state)


class SLSTMBlockLayer(nn.Module):
    r"""The sLSTM layer of an xLSTM block (Beck et al. 2024, Fig. 9) around an lstmkit :class:`SLSTM`:

    .. math::
        u_t = \mathrm{SiLU}(\mathrm{conv}(x)_t) \ (u_t = x_t \text{ without a convolution}) \qquad
        h_t = \mathrm{sLSTM}([u_t, x_t]) \qquad y_t = \mathrm{MultiHeadNorm}(h_t)

    The cell's ``weight_ih`` (4H, 2H) reads the input and forget gates from u_t and the candidate
    and output gate from x_t (head-wise blocks in the official package, zeros elsewhere).

    Args: hidden_size H (input and output width), num_heads NH; keyword-only conv_kernel_size K
        (0: no convolution), norm_weight, norm_eps, dropout (on h before the norm), spec
        (:class:`~lstmkit.families.SLSTMSpec`), kernel (of :class:`SLSTM`), device, dtype.

    Shapes: x (B, T, H); state a :class:`BlockState` or None (a fresh one: zeros and m = -inf).
    Returns (y (B, T, H), state); with ``return_gates=True`` also the cell's
    :class:`~lstmkit.families.FamilyTrace`.

    Example::

        >>> layer = SLSTMBlockLayer(16, num_heads=4)
        >>> y, state = layer(torch.randn(2, 7, 16))
        >>> y2, state = layer(torch.randn(2, 3, 16), state)   # carries on
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int = 4,
        *,
        conv_kernel_size: int = 4,
        norm_weight: bool = True,
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        spec: SLSTMSpec | None = None,
        kernel: str = "auto",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        H = validate.positive_int("hidden_size", hidden_size)
        K = _kernel_size(conv_kernel_size)
        factory = {"device": device, "dtype": dtype}
        self.conv = CausalConv1d(H, K, **factory) if K > 0 else None
        cell_input = 2 * H if K > 0 else H
        self.cell = SLSTM(cell_input, H, num_heads=num_heads, spec=spec, kernel=kernel, batch_first=True, **factory)
        self.norm = MultiHeadNorm(H, num_heads, weight=norm_weight, eps=norm_eps, **factory)
        self.dropout = nn.Dropout(validate.probability("dropout", dropout))

    def forward(self, x: Tensor, state: BlockState | None = None, return_gates: bool = False) -> Any:
        x = _check_block_input(self, x, self.norm.hidden_size)
        conv_state, s0 = _split_state(self, state)
        if self.conv is not None:
            u, conv_state = self.conv(x, conv_state)
            cell_in = torch.cat([F.silu(u), x], dim=-1)  # (B, T, 2H)
        else:
            cell_in = x
        if s0 is None:
            s0 = _fresh_cell_state(self.cell, x.shape[0], x)
        out, *rest = self.cell(cell_in, s0, return_gates)
        y = self.norm(self.dropout(out))
        new = BlockState(conv_state, tuple(rest[0]))
        return (y, new, rest[1]) if return_gates else (y, new)


class MLSTMBlockLayer(nn.Module):
    r"""The mLSTM layer of an xLSTM block (Beck et al. 2024, Fig. 10) around an lstmkit :class:`MLSTM`:

    .. math::
        [a_t, z_t] = W_{up} x_t + b_{up} \qquad u_t = \mathrm{SiLU}(\mathrm{conv}(a)_t) \qquad
        \tilde h_t = \mathrm{mLSTM}([u_t, a_t])

        y_t = W_{down}\big((\mathrm{MultiHeadNorm}(\tilde h_t) + s \odot u_t) \odot \mathrm{SiLU}(z_t)\big)
        + b_{down}

    The cell (no output gate of its own: the z branch gates) reads q and k from u_t and v from a_t;
    its input and forget gates are linear in [u_t, a_t] (in the official package, in [q, k, v]).

    Args: embedding_dim E, inner_size Ei, num_heads NH (dividing Ei); keyword-only conv_kernel_size
        K (0: u_t = a_t), bias (of the up and down projections), norm_eps, dropout (on y), spec
        (default ``MLSTMSpec(eps=1e-6, output_gate=False)``, the official readout), form, chunk_size
        (of :class:`MLSTM`), device, dtype.

    Shapes: x (B, T, E) -> y (B, T, E); state a :class:`BlockState` or None (a fresh one: zeros and
    m = -inf, which is the official parallel form's start). Any T: there is no context length.

    Example::

        >>> layer = MLSTMBlockLayer(16, 32, num_heads=4)
        >>> y, state = layer(torch.randn(2, 7, 16))
        >>> y.shape
        torch.Size([2, 7, 16])
    """

    def __init__(
        self,
        embedding_dim: int,
        inner_size: int,
        num_heads: int = 4,
        *,
        conv_kernel_size: int = 4,
        bias: bool = False,
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        spec: MLSTMSpec | None = None,
        form: str = "chunkwise",
        chunk_size: int = 64,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        E = validate.positive_int("embedding_dim", embedding_dim)
        Ei = validate.positive_int("inner_size", inner_size)
        K = _kernel_size(conv_kernel_size)
        factory = {"device": device, "dtype": dtype}
        spec = spec if spec is not None else MLSTMSpec(eps=1e-6, output_gate=False)
        self.inner_size = Ei
        self.proj_up = nn.Linear(E, 2 * Ei, bias=bias, **factory)
        self.conv = CausalConv1d(Ei, K, **factory) if K > 0 else None
        self.cell = MLSTM(
            2 * Ei, Ei, num_heads=num_heads, spec=spec, form=form, chunk_size=chunk_size, batch_first=True, **factory
        )
        self.norm = MultiHeadNorm(Ei, num_heads, weight=True, eps=norm_eps, **factory)
        self.skip = nn.Parameter(torch.ones(Ei, **factory))
        self.proj_down = nn.Linear(Ei, E, bias=bias, **factory)
        self.dropout = nn.Dropout(validate.probability("dropout", dropout))

    def forward(self, x: Tensor, state: BlockState | None = None, return_gates: bool = False) -> Any:
        x = _check_block_input(self, x, self.proj_up.in_features)
        a, z = self.proj_up(x).split(self.inner_size, dim=-1)  # each (B, T, Ei)
        conv_state, s0 = _split_state(self, state)
        if self.conv is not None:
            u, conv_state = self.conv(a, conv_state)
            u = F.silu(u)
        else:
            u = a
        if s0 is None:
            s0 = _fresh_cell_state(self.cell, x.shape[0], x)
        h, *rest = self.cell(torch.cat([u, a], dim=-1), s0, return_gates)
        h = (self.norm(h) + self.skip * u) * F.silu(z)
        y = self.dropout(self.proj_down(h))
        new = BlockState(conv_state, tuple(rest[0]))
        return (y, new, rest[1]) if return_gates else (y, new)


def _kernel_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"conv_kernel_size must be an int >= 0 (0: no convolution); got {value!r}")
    return value


def _check_block_input(layer: nn.Module, x: object, width: int) -> Tensor:
    t = validate.floating_tensor("input", x)
    if t.dim() != 3 or t.shape[-1] != width or t.shape[1] == 0:
        raise ValueError(f"{type(layer).__name__} input must be (B, T, {width}) with T >= 1; got {tuple(t.shape)}")
    return t
