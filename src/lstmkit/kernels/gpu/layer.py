"""One layer-direction on the GPU backend, with the contract of :func:`lstmkit.functional.lstm_layer`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...functional import (
    LN_EPS,
    LayerResult,
    LayerWeights,
    check_layer_shapes,
    expect_shape,
    last_gates,
    reverse_padded,
    with_fgr_entry,
)
from ...functional import lstm_layer as reference_layer
from ...spec import CellSpec
from .op import recurrence
from .plan import Plan, compute_dtype

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _mask(name: str, value: Tensor | float | None, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """A per-step mask as a contiguous tensor of the compute dtype, broadcast to ``shape``."""
    if not isinstance(value, Tensor):
        return None
    try:
        return value.to(device=like.device, dtype=compute_dtype(like.dtype)).expand(shape).contiguous()
    except RuntimeError:
        raise ValueError(f"{name} must broadcast to {shape}; got {tuple(value.shape)}") from None


def check(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    lengths: Tensor | None,
    g0: Tensor | None = None,
) -> None:
    """Shapes, dtypes and devices the kernels need; errors name what was expected and what came."""
    if x.dim() != 3:
        raise ValueError(f"x must be (T, B, I); got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise TypeError(f"x must have a dtype in {DTYPES}; got {x.dtype}")
    check_layer_shapes(x, h0, c0, w, spec, g0)
    B = x.shape[1]
    if lengths is not None:
        expect_shape("lengths", lengths, (B,))
    for name, t in (("h0", h0), *w._asdict().items()):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{name} must have x's dtype {x.dtype}; got {t.dtype}")
    for name, t in (("h0", h0), ("c0", c0), *w._asdict().items()):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on x's device {x.device}; got {t.device}")


def lstm_layer(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    recurrent_mask: Tensor | None = None,
    zoneout_cell: Tensor | float | None = None,
    zoneout_hidden: Tensor | float | None = None,
    record: bool = False,
    g0: Tensor | None = None,
) -> LayerResult:
    """One layer-direction on the Triton kernels; arguments and result as :func:`lstmkit.functional.lstm_layer`.

    Per step (default spec; every :class:`CellSpec` field, a projection and every option are supported)::

        z_t = W_ih x_t + b_ih + b_hh + W_hh (h_{t-1} * recurrent_mask)      (B, G*H)  torch GEMMs
        c_t = sigmoid(z_f) * c_{t-1} + sigmoid(z_i) * tanh(z_g)            (B, H)    one Triton launch
        h_t = sigmoid(z_o) * tanh(c_t)                                      (B, R)

    x (T, B, I), h0 (B, R), c0 (B, H). float16/bfloat16 inputs keep the cell state, gates and all
    pointwise maths in float32; outputs come back in x's dtype (``c_n`` and the recorded cell in c0's).

    Example::

        >>> import torch
        >>> from lstmkit import CellSpec, LayerWeights
        >>> from lstmkit.kernels import gpu
        >>> w = LayerWeights(torch.randn(16, 3), torch.randn(16, 4))  # G*H = 16, I = 3, H = 4
        >>> x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
        >>> gpu.lstm_layer(x.cuda(), h0.cuda(), h0.cuda(), w.cuda(), CellSpec()).output.shape  # doctest: +SKIP
        torch.Size([5, 2, 4])
    """
    check(x, h0, c0, w, spec, lengths, g0)
    T, B = x.shape[0], x.shape[1]
    if T == 0 or B == 0:  # nothing for a kernel to launch on
        return reference_layer(
            x,
            h0,
            c0,
            w,
            spec,
            lengths=lengths,
            reverse=reverse,
            recurrent_mask=recurrent_mask,
            zoneout_cell=zoneout_cell,
            zoneout_hidden=zoneout_hidden,
            record=record,
            g0=g0,
        )
    H, R = c0.shape[-1], h0.shape[-1]
    if lengths is not None:
        lengths = lengths.to(device=x.device, dtype=torch.int64)
    if reverse:
        x = reverse_padded(x, lengths)
        if isinstance(zoneout_cell, Tensor):
            zoneout_cell = reverse_padded(zoneout_cell.expand(T, B, H), lengths)
        if isinstance(zoneout_hidden, Tensor):
            zoneout_hidden = reverse_padded(zoneout_hidden.expand(T, B, R), lengths)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)).to(torch.int8)  # (T, B)
    plan = Plan(
        spec,
        H,
        proj=w.weight_hr is not None,
        zc_keep=None if zoneout_cell is None or isinstance(zoneout_cell, Tensor) else float(zoneout_cell),
        zh_keep=None if zoneout_hidden is None or isinstance(zoneout_hidden, Tensor) else float(zoneout_hidden),
        padded=valid is not None,
    )
    bias = w.bias_ih + w.bias_hh if (w.bias_ih is not None and w.bias_hh is not None) else None
    if spec.layer_norm:
        zx = F.layer_norm(F.linear(x, w.weight_ih), (w.weight_ih.shape[0],), w.ln_ih_weight, bias, LN_EPS)
    else:
        zx = F.linear(x, w.weight_ih, bias)  # (T, B, G*H)
    zx = with_fgr_entry(zx, g0, w, spec)  # carried gates of full_gate_recurrence enter the first step
    rec_mask = _mask("recurrent_mask", recurrent_mask, (B, R), x)
    hs, cs, acts, *_ = recurrence(
        plan.encode(),
        zx.contiguous(),
        h0.contiguous(),
        c0,
        w.weight_hh.contiguous(),
        w.weight_hr.contiguous() if w.weight_hr is not None else None,
        w.weight_ch.contiguous() if spec.peephole else None,  # type: ignore[union-attr]
        w.weight_gg.contiguous() if spec.full_gate_recurrence else None,  # type: ignore[union-attr]
        w.ln_hh_weight.contiguous() if spec.layer_norm else None,  # type: ignore[union-attr]
        w.ln_cell_weight.contiguous() if spec.layer_norm else None,  # type: ignore[union-attr]
        w.ln_cell_bias.contiguous() if spec.layer_norm else None,  # type: ignore[union-attr]
        rec_mask if rec_mask is None else rec_mask.to(x.dtype),
        _mask("zoneout_cell", zoneout_cell, (T, B, H), x),
        _mask("zoneout_hidden", zoneout_hidden, (T, B, R), x),
        valid,
    )
    result = _result(spec, hs, cs, acts, c0.dtype, valid, lengths, reverse, record, H)
    if spec.full_gate_recurrence:
        result = result._replace(g_n=last_gates(acts, spec, H, lengths, g0).to(x.dtype))
    return result


def _result(
    spec: CellSpec,
    hs: Tensor,
    cs: Tensor,
    acts: Tensor,
    c_dtype: torch.dtype,
    valid: Tensor | None,
    lengths: Tensor | None,
    reverse: bool,
    record: bool,
    H: int,
) -> LayerResult:
    T = acts.shape[0]
    v = None if valid is None else valid.unsqueeze(-1)  # (T, B, 1)
    output = hs[1:] if v is None else hs[1:] * v.to(hs.dtype)
    gates: dict[str, Any] | None = None
    if record:
        block = {name: acts[..., k * H : (k + 1) * H] for k, name in enumerate(spec.gates)}
        if spec.coupled:
            block["forget"] = 1.0 - block["input"]
        gates = {name: block[name].to(hs.dtype) for name in ("input", "forget", "candidate", "output") if name in block}
        gates["cell"] = cs[1:].to(c_dtype)
        if v is not None:
            gates = {k: g * v.to(g.dtype) for k, g in gates.items()}
        gates["hidden"] = output
        if reverse:
            gates = {k: reverse_padded(g, lengths) for k, g in gates.items()}
    if reverse:
        output = reverse_padded(output, lengths)
    return LayerResult(output, hs[T], cs[T].to(c_dtype), gates)
