"""The adjoint of :func:`~lstmkit.kernels.gpu.pointwise.step_forward`, in Triton (one step of BPTT).

Same layout (one program per batch row, a block covers H). Given the gradient of the carried
states after the step, it recomputes the cell from the stored gates and walks the forward parts
backwards, each the adjoint of the line of ``lstm_step`` it is named after::

    output      dz_o = dm * act_cell(c_out) * act_gate'(o);  dc_out = dm * o * act_cell'
    cell LN     dc  += LN'(dc_out)                         (gain and shift gradients accumulated)
    peephole o  dc  += p_o * dz_o
    clip        dc   = dc * [-clip <= c <= clip]
    cell update di = dc * g, dg = dc * i, df = dc * c_prev, dc_prev = dc * f
    gates       dz_k = d gate_k * act'(gate_k);  dc_prev += p_i dz_i + p_f dz_f
    rec LN      drec = LN'(dz * ln_hh)                     (over the G*H row)

``dz`` is the gradient of every pre-activation block (it flows to ``zx`` and, through ``drec``,
to the recurrent GEMM); per-row partial sums of the peephole and layer-norm parameter gradients
are accumulated in (B, ·) buffers owned by the row's program.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .pointwise import activation, activation_grad, row_start, row_sum


@triton.jit
def gate_grad(d, y, dacts_ptr, row, BLK: tl.constexpr, H, cols, mask, KIND: tl.constexpr,
              HAS_DACTS: tl.constexpr, CDT: tl.constexpr):  # fmt: skip
    """dz of one gate block: (d + recorded-gate gradient) * act'(y)."""
    if HAS_DACTS:
        d += tl.load(dacts_ptr + row + BLK * H + cols, mask=mask, other=0.0).to(CDT)
    return d * activation_grad(y, KIND)


@triton.jit
def accumulate(ptr, value, mask):
    """ptr += value (a per-row partial sum; the row's program is its only writer)."""
    tl.store(ptr, tl.load(ptr, mask=mask, other=0.0) + value, mask=mask)


@triton.jit
def step_backward(
    acts_ptr, c_prev_ptr, rec_hat_ptr, rstd_ptr, dout_ptr, dc_ptr, dacts_ptr,
    w_ch_ptr, ln_hh_ptr, ln_cw_ptr, ln_cb_ptr, zc_ptr, zh_ptr, valid_ptr,
    dz_ptr, drec_ptr, dc_prev_ptr, dh_prev_ptr, dw_ch_ptr, dln_hh_ptr, dln_cw_ptr, dln_cb_ptr,
    H, scalars_ptr,
    G: tl.constexpr, BLK_I: tl.constexpr, BLK_F: tl.constexpr, BLK_G: tl.constexpr, BLK_O: tl.constexpr,
    SIG_I: tl.constexpr, SIG_F: tl.constexpr, SIG_O: tl.constexpr, N_SIG: tl.constexpr,
    COUPLED: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr, CELL_ACT: tl.constexpr,
    PEEPHOLE: tl.constexpr, LAYER_NORM: tl.constexpr, CLIP: tl.constexpr,
    ZC_MODE: tl.constexpr, ZH_MODE: tl.constexpr, PADDED: tl.constexpr, PROJ: tl.constexpr,
    HAS_DACTS: tl.constexpr, CDT: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    """Backward of one step for batch row ``program_id(0)``. ``dout`` is dm (B, H) with a projection
    (hidden zoneout and padding already applied by the caller), else the carried dh (B, H)."""
    b, cols, mask, row, clip, zc_keep, zh_keep, eps = row_start(scalars_ptr, H, G, CDT, BLOCK_H)
    v = 1.0
    if PADDED:
        v = tl.where(tl.load(valid_ptr + b) != 0, 1.0, 0.0)

    # recompute the cell update from the stored gates
    c_prev = tl.load(c_prev_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
    g = tl.load(acts_ptr + row + BLK_G * H + cols, mask=mask, other=0.0).to(CDT)
    if BLK_I >= 0:
        i = tl.load(acts_ptr + row + BLK_I * H + cols, mask=mask, other=0.0).to(CDT)
    if BLK_F >= 0:
        f = tl.load(acts_ptr + row + BLK_F * H + cols, mask=mask, other=0.0).to(CDT)
    if COUPLED:
        f = 1.0 - i
    c = c_prev
    if COUPLED or BLK_F >= 0:
        c = f * c_prev
    if BLK_I >= 0:
        c = c + i * g
    else:
        c = c + g
    c_raw = c
    if CLIP:
        c = tl.minimum(tl.maximum(c, -clip), clip)
    c_out = c
    if LAYER_NORM:
        c_mean = row_sum(tl.where(mask, c, 0.0)) / H
        c_dev = tl.where(mask, c - c_mean, 0.0)
        c_rstd = 1.0 / tl.sqrt(row_sum(c_dev * c_dev) / H + eps)
        c_hat = c_dev * c_rstd
        c_w = tl.load(ln_cw_ptr + cols, mask=mask, other=0.0).to(CDT)
        c_out = c_hat * c_w + tl.load(ln_cb_ptr + cols, mask=mask, other=0.0).to(CDT)
    a = activation(c_out, CELL_ACT)

    # hidden side: dm, and the part of dh that skips the step (padding, zoneout)
    dout = tl.load(dout_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
    if PROJ:
        dm = dout
    else:
        keep = 0.0
        if ZH_MODE == 1:
            keep = tl.load(zh_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
        elif ZH_MODE == 2:
            keep = zh_keep
        dm = v * (1.0 - keep) * dout
        tl.store(dh_prev_ptr + b * H + cols, dout - dm, mask=mask)

    # output
    da = dm
    if BLK_O >= 0:
        o = tl.load(acts_ptr + row + BLK_O * H + cols, mask=mask, other=0.0).to(CDT)
        dz_o = gate_grad(dm * a, o, dacts_ptr, row, BLK_O, H, cols, mask, GATE_ACT, HAS_DACTS, CDT)
        da = dm * o
    dc_out = da * activation_grad(a, CELL_ACT)
    dc = dc_out
    if LAYER_NORM:
        accumulate(dln_cw_ptr + b * H + cols, dc_out * c_hat, mask)
        accumulate(dln_cb_ptr + b * H + cols, dc_out, mask)
        dx_hat = tl.where(mask, dc_out * c_w, 0.0)
        mean_d = row_sum(dx_hat) / H
        mean_dx = row_sum(dx_hat * c_hat) / H
        dc = c_rstd * (dx_hat - mean_d - c_hat * mean_dx)

    # the carried cell: its gradient reaches this step's c through zoneout and padding
    dc_carried = tl.load(dc_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
    keep_c = 0.0
    if ZC_MODE == 1:
        keep_c = tl.load(zc_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
    elif ZC_MODE == 2:
        keep_c = zc_keep
    dc_step = v * (1.0 - keep_c) * dc_carried
    dc_prev = dc_carried - dc_step
    dc = dc + dc_step
    if PEEPHOLE and BLK_O >= 0:
        dc += tl.load(w_ch_ptr + SIG_O * H + cols, mask=mask, other=0.0).to(CDT) * dz_o
        accumulate(dw_ch_ptr + b * N_SIG * H + SIG_O * H + cols, dz_o * c, mask)
    if CLIP:
        dc = tl.where((c_raw >= -clip) & (c_raw <= clip), dc, 0.0)

    # cell update and gates
    dg = dc
    if BLK_I >= 0:
        di = dc * g
        dg = dc * i
    if COUPLED or BLK_F >= 0:
        df = dc * c_prev
        dc_prev += dc * f
    else:
        dc_prev += dc
    if BLK_F >= 0:
        dz_f = gate_grad(df, f, dacts_ptr, row, BLK_F, H, cols, mask, GATE_ACT, HAS_DACTS, CDT)
    if COUPLED:
        di = di - df
    if BLK_I >= 0:
        dz_i = gate_grad(di, i, dacts_ptr, row, BLK_I, H, cols, mask, GATE_ACT, HAS_DACTS, CDT)
    dz_g = gate_grad(dg, g, dacts_ptr, row, BLK_G, H, cols, mask, CAND_ACT, HAS_DACTS, CDT)
    if PEEPHOLE:
        if BLK_I >= 0:
            dc_prev += tl.load(w_ch_ptr + SIG_I * H + cols, mask=mask, other=0.0).to(CDT) * dz_i
            accumulate(dw_ch_ptr + b * N_SIG * H + SIG_I * H + cols, dz_i * c_prev, mask)
        if BLK_F >= 0:
            dc_prev += tl.load(w_ch_ptr + SIG_F * H + cols, mask=mask, other=0.0).to(CDT) * dz_f
            accumulate(dw_ch_ptr + b * N_SIG * H + SIG_F * H + cols, dz_f * c_prev, mask)
    tl.store(dc_prev_ptr + b * H + cols, dc_prev, mask=mask)

    tl.store(dz_ptr + row + BLK_G * H + cols, dz_g, mask=mask)
    if BLK_I >= 0:
        tl.store(dz_ptr + row + BLK_I * H + cols, dz_i, mask=mask)
    if BLK_F >= 0:
        tl.store(dz_ptr + row + BLK_F * H + cols, dz_f, mask=mask)
    if BLK_O >= 0:
        tl.store(dz_ptr + row + BLK_O * H + cols, dz_o, mask=mask)
    if LAYER_NORM:  # drec = rstd * (dx - mean(dx) - x_hat * mean(dx * x_hat)) over the G*H row, dx = dz * ln_hh
        dx_g, xh_g = rec_norm_terms(dz_g, rec_hat_ptr, ln_hh_ptr, dln_hh_ptr, row, BLK_G, H, cols, mask, CDT)
        s = row_sum(dx_g)
        s_x = row_sum(dx_g * xh_g)
        if BLK_I >= 0:
            dx_i, xh_i = rec_norm_terms(dz_i, rec_hat_ptr, ln_hh_ptr, dln_hh_ptr, row, BLK_I, H, cols, mask, CDT)
            s += row_sum(dx_i)
            s_x += row_sum(dx_i * xh_i)
        if BLK_F >= 0:
            dx_f, xh_f = rec_norm_terms(dz_f, rec_hat_ptr, ln_hh_ptr, dln_hh_ptr, row, BLK_F, H, cols, mask, CDT)
            s += row_sum(dx_f)
            s_x += row_sum(dx_f * xh_f)
        if BLK_O >= 0:
            dx_o, xh_o = rec_norm_terms(dz_o, rec_hat_ptr, ln_hh_ptr, dln_hh_ptr, row, BLK_O, H, cols, mask, CDT)
            s += row_sum(dx_o)
            s_x += row_sum(dx_o * xh_o)
        rstd = tl.load(rstd_ptr + b).to(CDT)
        mean_d = s / (G * H)
        mean_dx = s_x / (G * H)
        tl.store(drec_ptr + row + BLK_G * H + cols, rstd * (dx_g - mean_d - xh_g * mean_dx), mask=mask)
        if BLK_I >= 0:
            tl.store(drec_ptr + row + BLK_I * H + cols, rstd * (dx_i - mean_d - xh_i * mean_dx), mask=mask)
        if BLK_F >= 0:
            tl.store(drec_ptr + row + BLK_F * H + cols, rstd * (dx_f - mean_d - xh_f * mean_dx), mask=mask)
        if BLK_O >= 0:
            tl.store(drec_ptr + row + BLK_O * H + cols, rstd * (dx_o - mean_d - xh_o * mean_dx), mask=mask)


@triton.jit
def rec_norm_terms(dz, rec_hat_ptr, ln_hh_ptr, dln_hh_ptr, row, BLK: tl.constexpr, H, cols, mask, CDT: tl.constexpr):
    """For one gate block of the layer-normed recurrent projection: dx = dz * ln_hh (zero past H) and
    the normalised value x_hat; accumulates the gain's gradient dz * x_hat."""
    x_hat = tl.load(rec_hat_ptr + row + BLK * H + cols, mask=mask, other=0.0).to(CDT)
    accumulate(dln_hh_ptr + row + BLK * H + cols, dz * x_hat, mask)
    dx = tl.where(mask, dz * tl.load(ln_hh_ptr + BLK * H + cols, mask=mask, other=0.0).to(CDT), 0.0)
    return dx, x_hat
