"""The recurrence registered with ``torch.library`` as custom ops, with fake implementations and autograd.

``lstmkit::triton_recurrence`` runs :func:`.recurrence.forward_loop`; its autograd calls
``lstmkit::triton_recurrence_backward`` (:func:`.bptt.bptt`). ``torch.compile`` and ``torch.export``
see one node per layer-direction, whose output shapes the fake implementation gives for any T.
The plan (spec and options) travels as a JSON string; absent optional results are empty tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .bptt import bptt
from .plan import compute_dtype, decode
from .recurrence import forward_loop

Opt = Tensor | None


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


@torch.library.custom_op("lstmkit::triton_recurrence", mutates_args=())
def recurrence(
    plan: str, zx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Opt, w_ch: Opt, w_gg: Opt,
    ln_hh: Opt, ln_cw: Opt, ln_cb: Opt, rec_mask: Opt, zc_mask: Opt, zh_mask: Opt, valid: Opt,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """hs (T+1, B, R), cs (T+1, B, H), acts (T, B, G*H), then ms, rec_hat, rstd for backward (empty
    when the plan does not use them)."""
    optional = (w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, rec_mask, zc_mask, zh_mask, valid)
    hs, cs, acts, *extra = forward_loop(  # kernels index densely
        decode(plan),
        zx.contiguous(),
        h0.contiguous(),
        c0.contiguous(),
        w_hh.contiguous(),
        *(t.contiguous() if t is not None else None for t in optional),
    )
    ms, rec_hat, rstd = (t if t is not None else _empty(zx) for t in extra)
    return hs, cs, acts, ms, rec_hat, rstd


@recurrence.register_fake
def _(plan: str, zx: Tensor, h0: Tensor, c0: Tensor, *rest: Opt) -> tuple[Tensor, ...]:
    p = decode(plan)
    T, B, GH = zx.shape
    cdt = compute_dtype(zx.dtype)
    hs = zx.new_empty(T + 1, B, h0.shape[1])
    cs = zx.new_empty(T + 1, B, p.H, dtype=cdt)
    acts = zx.new_empty(T, B, GH, dtype=cdt)
    ms = zx.new_empty(T, B, p.H) if p.proj else _empty(zx)
    rec_hat = zx.new_empty(T, B, GH, dtype=cdt) if p.spec.layer_norm else _empty(zx)
    rstd = zx.new_empty(T, B, dtype=cdt) if p.spec.layer_norm else _empty(zx)
    return hs, cs, acts, ms, rec_hat, rstd


@torch.library.custom_op("lstmkit::triton_recurrence_backward", mutates_args=())
def recurrence_backward(
    plan: str, saved: list[Tensor], masks: list[Tensor], d_hs: Opt, d_cs: Opt, d_acts: Opt,
) -> list[Tensor]:  # fmt: skip
    """Gradients of zx, h0, c0, W_hh, W_hr, w_ch, W_gg, ln_hh, ln_cell weight and bias (empty when
    the input was None). ``saved``/``masks``: as the forward, empty tensors for None."""
    p = decode(plan)
    as_opt = [t if t.numel() or t.dim() != 1 else None for t in (*saved, *masks)]
    d_acts = d_acts.contiguous() if d_acts is not None else None  # the kernel indexes it densely
    grads = bptt(p, tuple(as_opt[:13]), tuple(as_opt[13:]), d_hs, d_cs, d_acts)
    return [g if g is not None else _empty(saved[0]) for g in grads]


@recurrence_backward.register_fake
def _(plan: str, saved: list[Tensor], masks: list[Tensor], *grads: Opt) -> list[Tensor]:
    hs, cs, acts = saved[:3]
    like = [acts.to(hs.dtype), hs[0], cs[0], *saved[6:]]  # d_zx, d_h0 (B, R), d_c0 (B, H), d params
    return [torch.empty_like(t) for t in like]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    plan, zx, h0, c0, *params = inputs
    ctx.plan = plan
    ctx.dtypes = (h0.dtype, c0.dtype)
    weights = [t if t is not None else _empty(zx) for t in params[:7]]
    masks = [t if t is not None else _empty(zx) for t in params[7:]]
    ctx.present = [t is not None for t in params[:7]]
    ctx.save_for_backward(*output, *weights, *masks)


def _backward(ctx: Any, d_hs: Opt, d_cs: Opt, d_acts: Opt, *unused: Opt) -> tuple[Any, ...]:
    if torch.is_grad_enabled():  # create_graph=True: refuse rather than hand back a gradient cut from the graph
        raise RuntimeError(
            f"lstmkit's Triton kernel has no second derivative (spec {decode(ctx.plan).spec}): for a gradient "
            "taken with create_graph=True, run the model under lstmkit.kernels.use('reference') (or "
            "LSTMKIT_KERNEL=reference), whose backward is differentiable"
        )
    saved = ctx.saved_tensors
    grads = recurrence_backward(ctx.plan, list(saved[:13]), list(saved[13:]), d_hs, d_cs, d_acts)
    d_zx, d_h0, d_c0, *d_params = grads
    d_params = [g if present else None for g, present in zip(d_params, ctx.present, strict=True)]
    return (None, d_zx, d_h0.to(ctx.dtypes[0]), d_c0.to(ctx.dtypes[1]), *d_params, None, None, None, None)


recurrence.register_autograd(_backward, setup_context=_setup_context)
