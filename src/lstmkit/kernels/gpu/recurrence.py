"""The forward time loop of one layer-direction on the GPU backend (backward: :mod:`.bptt`).

Per step: one GEMM ``(h_{t-1} * mask) W_hh^T`` (cuBLAS on CUDA; ``W_gg`` for FGR and ``W_hr`` for a
projection likewise), then one launch of :func:`~.pointwise.step_forward`. Backward walks the steps in
reverse with one launch of :func:`~.adjoint.step_backward` and one GEMM ``drec W_hh`` per step; the
weight gradients are one GEMM each over all steps at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .plan import Plan, compute_dtype
from .pointwise import step_forward


def _step(t: Tensor | None, i: int, dummy: Tensor) -> Tensor:
    return dummy if t is None else t[i]


def _hidden_update(h_prev: Tensor, h_new: Tensor, keep: Tensor | float | None, valid: Tensor | None) -> Tensor:
    """Zoneout and padding of the projected hidden state (the kernel does it when R = H)."""
    if keep is not None:
        h_new = keep * h_prev + (1.0 - keep) * h_new
    if valid is not None:
        h_new = torch.where(valid.unsqueeze(1) != 0, h_new, h_prev)
    return h_new


def forward_loop(
    plan: Plan,
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
    valid: Tensor | None,
) -> tuple[Tensor, ...]:
    """zx (T, B, G*H) and the recurrent parameters -> hs (T+1, B, R), cs (T+1, B, H), acts (T, B, G*H),
    and what backward needs: ms (T, B, H) before the projection, rec_hat (T, B, G*H) and rstd (T, B)
    of the recurrent layer norm (None when unused).

    ``hs[t]``/``cs[t]`` are the carried states after step t (``hs[0] = h0``); ``acts`` the gate
    activations in storage order; cs and acts in the compute dtype (float32 for half inputs).
    """
    spec, H = plan.spec, plan.H
    T, B, GH = zx.shape
    R, dt, cdt = h0.shape[1], zx.dtype, compute_dtype(zx.dtype)
    dummy = zx.new_zeros(1, dtype=cdt)
    hs = zx.new_empty(T + 1, B, R)
    hs[0] = h0
    cs = zx.new_empty(T + 1, B, H, dtype=cdt)
    cs[0] = c0
    acts = zx.new_empty(T, B, GH, dtype=cdt)
    ms = zx.new_empty(T, B, H) if plan.proj else None
    rec_hat = zx.new_empty(T, B, GH, dtype=cdt) if spec.layer_norm else None
    rstd = zx.new_empty(T, B, dtype=cdt) if spec.layer_norm else None
    consts = plan.constexprs(cdt, zc_mask is not None, zh_mask is not None)
    scalars = plan.scalars(zx)
    prev = zx.new_zeros(B, len(spec.sigmoid_gates) * H) if spec.full_gate_recurrence else None
    for t in range(T):
        h_in = hs[t] if rec_mask is None else hs[t] * rec_mask
        rec = torch.mm(h_in, w_hh.t())  # (B, G*H)
        fgr = torch.mm(prev, w_gg.t()) if prev is not None else dummy  # type: ignore[union-attr]
        # fmt: off
        step_forward[(B,)](
            zx[t], rec, fgr, cs[t], hs[t],
            w_ch if w_ch is not None else dummy, ln_hh if ln_hh is not None else dummy,
            ln_cw if ln_cw is not None else dummy, ln_cb if ln_cb is not None else dummy,
            _step(zc_mask, t, dummy), _step(zh_mask, t, dummy), _step(valid, t, dummy),
            acts[t], cs[t + 1], hs[t + 1], _step(ms, t, dummy), _step(rec_hat, t, dummy), _step(rstd, t, dummy),
            H, scalars, FGR=spec.full_gate_recurrence, **consts,
        )
        # fmt: on
        if ms is not None:
            keep = zh_mask[t] if zh_mask is not None else plan.zh_keep
            h_raw = torch.mm(ms[t], w_hr.t())  # type: ignore[union-attr]  # (B, R)
            hs[t + 1] = _hidden_update(hs[t], h_raw, keep, _step(valid, t, None))  # type: ignore[arg-type]
        if prev is not None:
            prev = acts[t].view(B, -1, H)[:, plan.sig_blocks].reshape(B, -1).to(dt)
    return hs, cs, acts, ms, rec_hat, rstd
