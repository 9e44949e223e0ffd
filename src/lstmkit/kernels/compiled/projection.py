"""The compiled kernel's input projection ``zx = x W_ih^T + b`` through oneDNN where it is faster.

On CPU float32 the GEMMs of the input projection run through oneDNN
(``torch.ops.mkldnn._linear_pointwise``), which on the machines measured is about 2x faster than
``torch.mm``'s sgemm for these shapes (see benchmarks/README.md). Forward and backward both use it:

- forward   ``Z  = X W^T + b``          X (N, I), W (G*H, I), Z (N, G*H), N = T*B
- backward  ``dX = dZ W``               = linear(dZ, W^T)
            ``dW = dZ^T X``             = the kernel's oneDNN matmul on the transposed view
            ``db = sum_n dZ``

Everywhere else (float64, not CPU, oneDNN missing, and while torch.compile / torch.export capture a
graph, so that graphs stay plain ``aten.linear``) it is ``F.linear``, exactly as before.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _onednn_op() -> Any:
    """``torch.ops.mkldnn._linear_pointwise`` or None where this torch build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_OP = _onednn_op()


def _capturing() -> bool:
    return bool(torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing())


def uses_onednn(x: Tensor, weight: Tensor) -> bool:
    """True when :func:`linear` runs through oneDNN for these tensors (CPU float32, op present, eager)."""
    return (
        _OP is not None
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not _capturing()
    )


def _mm(a: Tensor, b_t: Tensor) -> Tensor:
    """``a @ b_t^T`` with oneDNN: a (M, K), b_t (N, K) -> (M, N)."""
    return _OP(a.contiguous(), b_t.contiguous(), None, "none", [], "")


def _weight_grad(dz: Tensor, x: Tensor) -> Tensor:
    """``dz^T x`` (O, I) for dz (N, O), x (N, I): the compiled kernel's oneDNN matmul reads the
    transposed views in place."""
    from . import extension  # the kernel module that runs this projection: its extension is loaded

    return extension().mm(dz.t(), x)


class _OneDnnLinear(torch.autograd.Function):
    """Z = X W^T (+ b) with forward and backward GEMMs through oneDNN; X (N, I), W (O, I)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _OP(x, weight, bias, "none", [], "")

    @staticmethod
    def backward(ctx: Any, dz: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the same products in differentiable ops
            dx = dz @ weight if ctx.needs_input_grad[0] else None
            dw = dz.t() @ x if ctx.needs_input_grad[1] else None
            db = dz.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
            return dx, dw, db
        dz = dz.contiguous()
        dx = _mm(dz, weight.t()) if ctx.needs_input_grad[0] else None  # (N, O) @ (O, I)
        dw = _weight_grad(dz, x) if ctx.needs_input_grad[1] else None  # (O, N) @ (N, I)
        db = dz.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` for x (..., I), weight (O, I), bias (O,) -> (..., O); oneDNN when it can."""
    if not uses_onednn(x, weight) or (bias is not None and bias.dtype != torch.float32):
        return F.linear(x, weight, bias)
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    if not torch.is_grad_enabled():  # no graph to record: the product alone
        return _OP(rows, weight.contiguous(), bias, "none", [], "").reshape(*lead, weight.shape[0])
    z = _OneDnnLinear.apply(rows, weight.contiguous(), bias)
    return z.reshape(*lead, weight.shape[0])
