"""From the official ``xlstm`` package (Beck et al. 2024) to lstmkit: :func:`from_xlstm` turns its
``sLSTMLayer`` (vanilla backend) and ``mLSTMLayer`` into :class:`~lstmkit.modules.xlstm_blocks.SLSTMBlockLayer`
and :class:`~lstmkit.modules.xlstm_blocks.MLSTMBlockLayer` that compute the same function, with
lstmkit's state in and out, any sequence length and ``return_gates=True``.

``xlstm`` is imported only when called with one of its objects; lstmkit does not depend on it.

What maps to what (H hidden, NH heads, DH = H / NH; Ei the mLSTM layer's inner width):

=================================  ========================================================
official                           lstmkit
=================================  ========================================================
sLSTMLayer.conv1d (+ SiLU)         SLSTMBlockLayer.conv: CausalConv1d, weight (H, K)
sLSTMLayer.fgate (head-wise)       rows i of cell.weight_ih_l0, columns of u (the quirk:
                                   the official layer feeds ``fgate`` to the input gate)
sLSTMLayer.igate (head-wise)       rows f of cell.weight_ih_l0, columns of u
sLSTMLayer.zgate / ogate           rows z / o of cell.weight_ih_l0, columns of x
slstm_cell recurrent kernel, bias  cell.weight_hh_l0 (4H, DH), cell.bias_l0 (4H,)
sLSTMLayer.group_norm              norm: MultiHeadNorm, weight = 1 + official weight
mLSTMLayer.proj_up / proj_down     proj_up / proj_down (nn.Linear, copied)
mLSTMLayer.conv1d (+ SiLU)         conv: CausalConv1d, weight (Ei, K)
q_proj, k_proj, v_proj             rows q, k, v of cell.weight_ih_l0 (block-diagonal)
mlstm_cell.igate / fgate           rows i, f of cell.weight_ih_l0 and bias_l0: the linear
                                   map of [q, k, v] composed with the q, k, v projections
mlstm_cell.outnorm                 norm: MultiHeadNorm, weight = 1 + official weight
learnable_skip                     skip
=================================  ========================================================
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..families.mlstm import MLSTMSpec
from ..families.slstm import SLSTMSpec
from ..modules.xlstm_blocks import CausalConv1d, MLSTMBlockLayer, MultiHeadNorm, SLSTMBlockLayer

EXPECTED = "an xlstm sLSTMLayer (backend='vanilla', function='slstm') or mLSTMLayer"


def from_xlstm(layer: Any) -> SLSTMBlockLayer | MLSTMBlockLayer:
    """An lstmkit block layer computing what the official ``layer`` computes.

    Args:
        layer: ``xlstm.blocks.slstm.layer.sLSTMLayer`` with the vanilla backend, or
            ``xlstm.blocks.mlstm.layer.mLSTMLayer``.

    Returns an :class:`SLSTMBlockLayer` or :class:`MLSTMBlockLayer` on the layer's device and dtype,
    in its training mode, with copies of its parameters. Outputs equal the official ``forward``
    (batch first, (B, T, H)); the returned module also takes and returns its state and runs any T
    (the official mLSTM layer stops at its ``context_length``).

    Example::

        >>> cfg = sLSTMLayerConfig(embedding_dim=16, num_heads=4, backend="vanilla")  # doctest: +SKIP
        >>> ours = from_xlstm(sLSTMLayer(cfg))                                        # doctest: +SKIP
        >>> y, state = ours(torch.randn(2, 10, 16))                                   # doctest: +SKIP
    """
    module = type(layer).__module__
    if not module.startswith("xlstm."):
        raise TypeError(f"from_xlstm expects {EXPECTED}; got {module}.{type(layer).__name__}")
    from xlstm.blocks.mlstm.layer import mLSTMLayer  # type: ignore[import-untyped]
    from xlstm.blocks.slstm.layer import sLSTMLayer  # type: ignore[import-untyped]

    if isinstance(layer, sLSTMLayer):
        ours: SLSTMBlockLayer | MLSTMBlockLayer = _from_slstm(layer)
    elif isinstance(layer, mLSTMLayer):
        ours = _from_mlstm(layer)
    else:
        inner = getattr(layer, "xlstm", None)  # an xLSTM block holds its layer as .xlstm
        hint = " (convert its layer: from_xlstm(block.xlstm))" if isinstance(inner, (sLSTMLayer, mLSTMLayer)) else ""
        raise TypeError(f"from_xlstm expects {EXPECTED}; got {module}.{type(layer).__name__}{hint}")
    return ours.train(layer.training)


def _dense(weight: Tensor) -> Tensor:
    """Head-wise weight (NH, out per head, in per head) -> the block-diagonal (NH out, NH in) matrix."""
    return torch.block_diag(*weight.detach().unbind(0))


def _bias(linear: Any, size: int, like: Tensor) -> Tensor:
    b = getattr(linear, "bias", None)
    return like.new_zeros(size) if b is None else b.detach()


def _copy_conv(ours: CausalConv1d | None, theirs: Any) -> None:
    if ours is None:
        return
    ours.weight.copy_(theirs.conv.weight[:, 0, :])
    if ours.bias is not None:
        if theirs.conv.bias is None:
            ours.bias.zero_()
        else:
            ours.bias.copy_(theirs.conv.bias)


def _copy_norm(ours: MultiHeadNorm, theirs: Any) -> None:
    """The official norm stores w with the scale 1 + w ("residual weight"); ours stores the scale."""
    if ours.weight is not None:
        scale = theirs.weight_proxy
        ours.weight.copy_(scale if scale is not None else torch.ones_like(ours.weight))


def _slstm_support(layer: Any) -> None:
    from xlstm.blocks.slstm.cell import sLSTMCell_vanilla  # type: ignore[import-untyped]

    cfg = layer.config
    if not isinstance(layer.slstm_cell, sLSTMCell_vanilla):
        raise ValueError(f"from_xlstm supports the sLSTMLayer with backend='vanilla'; got backend={cfg.backend!r}")
    if cfg.function != "slstm":
        raise ValueError(f"from_xlstm supports the sLSTMLayer with function='slstm'; got function={cfg.function!r}")
    if getattr(layer.group_norm, "bias", None) is not None:
        raise ValueError("from_xlstm supports the sLSTMLayer's group norm without a bias; got one with a bias")


def _from_slstm(layer: Any) -> SLSTMBlockLayer:
    _slstm_support(layer)
    cfg, cell = layer.config, layer.slstm_cell
    H, NH, K = cfg.embedding_dim, cfg.num_heads, cfg.conv1d_kernel_size
    DH = H // NH
    R = cell._recurrent_kernel.detach()  # (NH, 4 DH, DH): [head, gate * DH + out unit, in unit]
    ref = R
    ours = SLSTMBlockLayer(
        H,
        NH,
        conv_kernel_size=K,
        norm_weight=layer.group_norm.weight is not None,
        norm_eps=layer.group_norm.eps,
        dropout=cfg.dropout,
        spec=SLSTMSpec(input_gate="exp", forget_gate="sigmoid", stabilizer=True),
        device=ref.device,
        dtype=ref.dtype,
    )
    # The official layer computes (i, f, z, o) = (fgate(u), igate(u), zgate(x), ogate(x)).
    w_i, w_f = _dense(layer.fgate.weight), _dense(layer.igate.weight)
    w_z, w_o = _dense(layer.zgate.weight), _dense(layer.ogate.weight)
    with torch.no_grad():
        if K > 0:
            zero = torch.zeros_like(w_i)
            w_ih = torch.cat(
                [torch.cat([w, zero], 1) for w in (w_i, w_f)] + [torch.cat([zero, w], 1) for w in (w_z, w_o)]
            )
        else:
            w_ih = torch.cat([w_i, w_f, w_z, w_o])
        mine = dict(ours.cell.named_parameters())
        mine["weight_ih_l0"].copy_(w_ih)
        mine["weight_hh_l0"].copy_(R.view(NH, 4, DH, DH).permute(1, 0, 2, 3).reshape(4 * H, DH))
        mine["bias_l0"].copy_(cell._bias.detach())  # already gate-major (i, f, z, o), then head, unit
        _copy_conv(ours.conv, getattr(layer, "conv1d", None))
        _copy_norm(ours.norm, layer.group_norm)
    return ours


def _mlstm_support(layer: Any) -> None:
    from xlstm.blocks.mlstm.backends import parallel_stabilized_simple  # type: ignore[import-untyped]

    fn = getattr(layer.mlstm_cell, "backend_fn", None)
    if fn is not parallel_stabilized_simple:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ValueError(f"from_xlstm supports the mLSTMLayer with its parallel_stabilized_simple backend; got {name}")
    if getattr(layer.mlstm_cell.outnorm, "bias", None) is not None:
        raise ValueError("from_xlstm supports the mLSTM cell's norm without a bias; got one with a bias")


def _from_mlstm(layer: Any) -> MLSTMBlockLayer:
    _mlstm_support(layer)
    cfg, cell = layer.config, layer.mlstm_cell
    E, Ei, NH, K = cfg.embedding_dim, cfg._inner_embedding_dim, cfg.num_heads, cfg.conv1d_kernel_size
    ref = layer.proj_up.weight
    ours = MLSTMBlockLayer(
        E,
        Ei,
        NH,
        conv_kernel_size=K,
        bias=cfg.bias,
        norm_eps=cell.outnorm.eps,
        dropout=cfg.dropout,
        spec=MLSTMSpec(eps=1e-6, output_gate=False),
        device=ref.device,
        dtype=ref.dtype,
    )
    w_q, w_k, w_v = (_dense(p.weight) for p in (layer.q_proj, layer.k_proj, layer.v_proj))  # (Ei, Ei)
    b_q, b_k, b_v = (_bias(p, Ei, ref) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
    zero = torch.zeros_like(w_q)
    # The cell reads [u, a]: q and k from u (the convolved branch), v from a.
    rows_qkv = torch.cat([torch.cat([w_q, zero], 1), torch.cat([w_k, zero], 1), torch.cat([zero, w_v], 1)])
    bias_qkv = torch.cat([b_q, b_k, b_v])  # (3 Ei,)
    gate_rows, gate_bias = [], []
    for gate in (cell.igate, cell.fgate):  # i~ = W [q, k, v] + b: linear in [u, a] once q, k, v are
        W = gate.weight.detach()  # (NH, 3 Ei)
        gate_rows.append(W @ rows_qkv)  # (NH, 2 Ei)
        gate_bias.append(W @ bias_qkv + _bias(gate, NH, ref))
    with torch.no_grad():
        params = dict(ours.cell.named_parameters())
        params["weight_ih_l0"].copy_(torch.cat([rows_qkv, *gate_rows]))
        params["bias_l0"].copy_(torch.cat([bias_qkv, *gate_bias]))
        pairs: tuple[tuple[nn.Linear, Any], ...] = ((ours.proj_up, layer.proj_up), (ours.proj_down, layer.proj_down))
        for mine, theirs in pairs:
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                mine.bias.copy_(theirs.bias)
        _copy_conv(ours.conv, layer.conv1d)
        _copy_norm(ours.norm, cell.outnorm)
        ours.skip.copy_(layer.learnable_skip)
    return ours
