"""The compiled recurrence as a ``torch.library`` custom op, so graphs capture it as one node.

``torch.compile`` and ``torch.export`` cannot look inside a C++ extension call, and unrolling
the reference loop fixes T and makes graphs T times larger. Registered as ops with a fake
(meta) implementation, one layer-direction's recurrence is one node whose output shapes are
functions of the input shapes, so T stays symbolic::

    lstmkit::recurrence(zx (T, B, G*H), h0 (B, R), c0 (B, H), w_hh (G*H, R), [w_hr, w_ch, w_gg,
        ln_hh, ln_cw, ln_cb, rec_mask, zc_mask, zh_mask, lengths], cfg, clip, zc, zh)
        -> hs (T+1, B, R), cs (T+1, B, H), acts (T, B, G*H)

    lstmkit::recurrence_backward(d_hs, d_cs, d_acts, <the inputs above>)
        -> d_zx, d_h0, d_c0, d_w_hh, d_w_hr, d_w_ch, d_w_gg, d_ln_hh, d_ln_cw, d_ln_cb

Optional tensors are ``Tensor?`` arguments; a gradient of an absent tensor comes back as an empty
tensor (an op returns tensors only) and autograd receives None for it. The backward op recomputes
the forward's saved tensors (how many the C++ BPTT keeps, and their shapes, is the extension's
own business), so a captured graph stores only what it sees: the op's inputs and outputs. In
eager mode :mod:`lstmkit.kernels.compiled` uses an ``autograd.Function`` that keeps them instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import lowering

OPTIONAL = ("w_hr", "w_ch", "w_gg", "ln_hh", "ln_cw", "ln_cb", "rec_mask", "zc_mask", "zh_mask", "lengths")
"""The optional tensor arguments, in signature order after zx, h0, c0, w_hh."""
GRAD_OF = ("zx", "h0", "c0", "w_hh", "w_hr", "w_ch", "w_gg", "ln_hh", "ln_cw", "ln_cb")
"""The differentiable arguments, in the order the backward op returns their gradients."""


def _extension() -> Any:
    from . import extension

    return extension()


@torch.library.custom_op("lstmkit::recurrence", mutates_args=(), device_types="cpu")
def recurrence(
    zx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None,
    w_ch: Tensor | None,
    w_gg: Tensor | None,
    ln_hh: Tensor | None,
    ln_cw: Tensor | None,
    ln_cb: Tensor | None,
    rec_mask: Tensor | None,
    zc_mask: Tensor | None,
    zh_mask: Tensor | None,
    lengths: Tensor | None,
    cfg: list[int],
    clip: float,
    zc: float,
    zh: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """hs (T+1, B, R), cs (T+1, B, H), acts (T, B, G*H) of one layer-direction (see the module docstring)."""
    args = (zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, rec_mask, zc_mask, zh_mask, lengths)
    out = _extension().forward(*args, cfg, clip, zc, zh)
    return out[0], out[1], out[2]


@recurrence.register_fake
def _recurrence_fake(zx: Tensor, h0: Tensor, c0: Tensor, *rest: Any) -> tuple[Tensor, Tensor, Tensor]:
    T, B, GH = zx.shape
    return zx.new_empty(T + 1, B, h0.shape[1]), zx.new_empty(T + 1, B, c0.shape[1]), zx.new_empty(T, B, GH)


@torch.library.custom_op("lstmkit::recurrence_backward", mutates_args=(), device_types="cpu")
def recurrence_backward(
    d_hs: Tensor | None,
    d_cs: Tensor | None,
    d_acts: Tensor | None,
    zx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None,
    w_ch: Tensor | None,
    w_gg: Tensor | None,
    ln_hh: Tensor | None,
    ln_cw: Tensor | None,
    ln_cb: Tensor | None,
    rec_mask: Tensor | None,
    zc_mask: Tensor | None,
    zh_mask: Tensor | None,
    lengths: Tensor | None,
    cfg: list[int],
    clip: float,
    zc: float,
    zh: float,
) -> list[Tensor]:
    """BPTT of :func:`recurrence`: the gradients of :data:`GRAD_OF` (empty for an absent tensor)."""
    ext = _extension()
    masks = (rec_mask, zc_mask, zh_mask, lengths)
    saved = ext.forward(zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, *masks, cfg, clip, zc, zh)
    weights = (w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw)
    grads = ext.backward(d_hs, d_cs, d_acts, list(saved), *weights, *masks, cfg, clip, zc, zh)
    return [zx.new_empty(0) if g is None else g for g in grads]


@recurrence_backward.register_fake
def _backward_fake(d_hs: Any, d_cs: Any, d_acts: Any, *args: Any) -> list[Tensor]:
    inputs = args[: len(GRAD_OF)]
    zx = inputs[0]
    return [zx.new_empty(0) if t is None else torch.empty_like(t) for t in inputs]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    tensors = inputs[:14]
    ctx.absent = tuple(t is None for t in tensors)
    ctx.save_for_backward(*(t for t in tensors if t is not None))
    ctx.options = inputs[14:]


def _backward(ctx: Any, d_hs: Tensor | None, d_cs: Tensor | None, d_acts: Tensor | None) -> tuple[Any, ...]:
    saved = iter(ctx.saved_tensors)
    tensors = [None if absent else next(saved) for absent in ctx.absent]
    if torch.is_grad_enabled():  # create_graph=True: the reference recurrence's VJP, itself differentiable
        from . import _recomputed_vjp

        needed = tuple(ctx.needs_input_grad[: len(GRAD_OF)])
        vjp = _recomputed_vjp(
            tuple(tensors[: len(GRAD_OF)]), tuple(tensors[len(GRAD_OF) :]), ctx.options, (d_hs, d_cs, d_acts), needed
        )
        return (*vjp, *(None for _ in range(len(tensors) - len(GRAD_OF))), None, None, None, None)
    grads = recurrence_backward(d_hs, d_cs, d_acts, *tensors, *ctx.options)
    out: list[Tensor | None] = []
    for k in range(len(GRAD_OF)):
        out.append(None if tensors[k] is None or not ctx.needs_input_grad[k] else grads[k])
    return (*out, *(None for _ in range(len(tensors) - len(GRAD_OF))), None, None, None, None)


recurrence.register_autograd(_backward, setup_context=_setup_context)


def apply(options: tuple[list[int], float, float, float], *tensors: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`recurrence` with the arguments in the order of ``_Recurrence.apply`` (options first)."""
    return recurrence(*tensors, *options)


lowering.register(recurrence)  # standard ops for run_decompositions (ExecuTorch); eager and capture never use it
