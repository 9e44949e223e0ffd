"""Backpropagation through time for :class:`~.recurrence.Recurrence`: one adjoint launch and one GEMM per step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .adjoint import step_backward
from .plan import Plan, compute_dtype


def _sig(t: Tensor, plan: Plan) -> Tensor:
    """The i, f, o blocks of a (..., G*H) tensor, concatenated: (..., n*H)."""
    lead = t.shape[:-1]
    return t.reshape(*lead, -1, plan.H)[..., plan.sig_blocks, :].reshape(*lead, -1)


def bptt(
    plan: Plan,
    saved: tuple[Tensor | None, ...],
    masks: tuple[Tensor | None, ...],
    d_hs: Tensor | None,
    d_cs: Tensor | None,
    d_acts: Tensor | None,
) -> tuple[Tensor | None, ...]:
    """Gradients of zx, h0, c0, W_hh, W_hr, w_ch, W_gg, ln_hh, ln_cell weight and bias."""
    hs, cs, acts, _, rec_hat, rstd, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb = saved
    rec_mask, zc_mask, zh_mask, valid = masks
    spec, H = plan.spec, plan.H
    T, B, GH = acts.shape  # type: ignore[union-attr]
    R, dt, cdt = hs.shape[2], hs.dtype, compute_dtype(hs.dtype)  # type: ignore[union-attr]
    nH = len(spec.sigmoid_gates) * H
    dummy = acts.new_zeros(1)  # type: ignore[union-attr]
    consts = plan.constexprs(cdt, zc_mask is not None, zh_mask is not None)
    scalars = plan.scalars(acts)

    dh = acts.new_zeros(B, R)  # type: ignore[union-attr]
    dc = acts.new_zeros(B, H)  # type: ignore[union-attr]
    dz = acts.new_empty(T, B, GH)  # type: ignore[union-attr]
    drec = acts.new_empty(T, B, GH) if spec.layer_norm else dz  # type: ignore[union-attr]
    dh_raw = acts.new_empty(T, B, R) if plan.proj else None  # type: ignore[union-attr]
    acc = {
        "dw_ch": acts.new_zeros(B, nH) if spec.peephole else dummy,  # type: ignore[union-attr]
        "dln_hh": acts.new_zeros(B, GH) if spec.layer_norm else dummy,  # type: ignore[union-attr]
        "dln_cw": acts.new_zeros(B, H) if spec.layer_norm else dummy,  # type: ignore[union-attr]
        "dln_cb": acts.new_zeros(B, H) if spec.layer_norm else dummy,  # type: ignore[union-attr]
    }
    d_prev = None  # gradient of the previous step's i, f, o through W_gg (FGR)
    for t in reversed(range(T)):
        if d_hs is not None:
            dh = dh + d_hs[t + 1]
        if d_cs is not None:
            dc = dc + d_cs[t + 1]
        da = d_acts[t] if d_acts is not None else None
        if d_prev is not None:
            da = da.clone() if da is not None else acts.new_zeros(B, GH)  # type: ignore[union-attr]
            da.view(B, -1, H)[:, plan.sig_blocks] += d_prev.view(B, -1, H)
        v = valid[t] if valid is not None else None
        if dh_raw is not None:
            keep = zh_mask[t] if zh_mask is not None else (plan.zh_keep or 0.0)
            scale = (1.0 - keep) if v is None else (1.0 - keep) * (v != 0).unsqueeze(1).to(dh.dtype)
            dh_raw[t] = scale * dh
            dout = torch.mm(dh_raw[t].to(dt), w_hr).to(cdt)  # type: ignore[arg-type]  # dm (B, H)
            dh_skip = dh - dh_raw[t]
        else:
            dout = dh.contiguous()
            dh_skip = torch.empty_like(dh)
        dc_prev = torch.empty_like(dc)
        # fmt: off
        step_backward[(B,)](
            acts[t], cs[t], rec_hat[t] if rec_hat is not None else dummy, rstd[t] if rstd is not None else dummy,  # type: ignore[index]
            dout, dc.contiguous(), da if da is not None else dummy,
            w_ch if w_ch is not None else dummy, ln_hh if ln_hh is not None else dummy,
            ln_cw if ln_cw is not None else dummy, ln_cb if ln_cb is not None else dummy,
            zc_mask[t] if zc_mask is not None else dummy, zh_mask[t] if zh_mask is not None else dummy,
            v if v is not None else dummy,
            dz[t], drec[t], dc_prev, dh_skip, acc["dw_ch"], acc["dln_hh"], acc["dln_cw"], acc["dln_cb"],
            H, scalars, HAS_DACTS=da is not None, **consts,
        )
        # fmt: on
        dc = dc_prev
        dh_rec = torch.mm(drec[t].to(dt), w_hh).to(cdt)  # type: ignore[arg-type]  # (B, R)
        dh = dh_skip + (dh_rec if rec_mask is None else dh_rec * rec_mask)
        if spec.full_gate_recurrence and t > 0:
            d_prev = torch.mm(_sig(dz[t], plan).to(dt), w_gg).to(cdt)  # type: ignore[arg-type]

    return _weight_grads(plan, saved, rec_mask, dz, drec, dh_raw, acc, dh.to(hs.dtype), dc)  # type: ignore[union-attr]


def _weight_grads(
    plan: Plan,
    saved: tuple[Any, ...],
    rec_mask: Tensor | None,
    dz: Tensor,
    drec: Tensor,
    dh_raw: Tensor | None,
    acc: dict[str, Tensor],
    d_h0: Tensor,
    d_c0: Tensor,
) -> tuple[Tensor | None, ...]:
    """One GEMM over all steps for each matrix; sums over the batch for the per-row partials."""
    hs, _, acts, ms, *_, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb = saved
    spec = plan.spec
    T, B, GH = dz.shape
    cdt = dz.dtype
    h_in = hs[:-1] if rec_mask is None else hs[:-1] * rec_mask  # (T, B, R)
    d_w_hh = (drec.reshape(T * B, GH).t() @ h_in.reshape(T * B, -1).to(cdt)).to(w_hh.dtype)
    d_w_hr = None
    if dh_raw is not None:
        d_w_hr = (dh_raw.reshape(T * B, -1).t() @ ms.reshape(T * B, -1).to(cdt)).to(w_hr.dtype)
    d_w_gg = None
    if spec.full_gate_recurrence:
        prev = torch.cat([acts.new_zeros(1, B, w_gg.shape[1]), _sig(acts[:-1], plan)])  # (T, B, n*H)
        d_w_gg = (_sig(dz, plan).reshape(T * B, -1).t() @ prev.reshape(T * B, -1)).to(w_gg.dtype)
    d_w_ch = acc["dw_ch"].sum(0).to(w_ch.dtype) if spec.peephole else None
    ln = spec.layer_norm
    d_ln_hh = acc["dln_hh"].sum(0).to(ln_hh.dtype) if ln else None
    d_ln_cw = acc["dln_cw"].sum(0).to(ln_cw.dtype) if ln else None
    d_ln_cb = acc["dln_cb"].sum(0).to(ln_cb.dtype) if ln else None
    return (dz.to(hs.dtype), d_h0, d_c0, d_w_hh, d_w_hr, d_w_ch, d_w_gg, d_ln_hh, d_ln_cw, d_ln_cb)
