"""The fused pointwise part of one step, in Triton: pre-activation, gates, cell update, output.

One program handles one batch row ``b``; a block of ``BLOCK_H >= H`` columns covers a gate block, so
the row reductions of layer norm (over G*H for the recurrent projection, over H for the cell) stay
inside the program. The parts mirror :func:`lstmkit.functional.lstm_step` in its order and names::

    z_k   = zx_k + LN(rec)_k [+ fgr_k]              pre-activation of gate block k (bias is in zx)
    i     = act_gate(z_i [+ p_i * c_prev])          gates (absent gate: the constant 1)
    f     = 1 - i (coupled) | act_gate(z_f [+ p_f * c_prev])
    g     = act_cand(z_g)
    c     = f * c_prev + i * g  [clamped]           cell update
    o     = act_gate(z_o [+ p_o * c])
    m     = o * act_cell(LN(c))                     output (before projection)

then zoneout and padding of the carried states. All maths runs in ``CDT`` (float32, or float64 for
float64 inputs); states are loaded from and stored to tensors of any float dtype.

Activation codes (constexpr): 0 sigmoid, 1 hard_sigmoid, 2 tanh, 3 identity, 4 relu, 5 softsign.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tanh(x):
    """tanh from exp(-2|x|), accurate near 0 and saturating without overflow."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def row_sum(x):
    """Sum of a block. Our own reduction rather than ``tl.sum``: Triton's standard-library functions
    are compiled at ``import triton``, so under TRITON_INTERPRET=1 set after that import they would not
    run in the interpreter, while functions defined here are decorated when this module is imported."""
    return tl.reduce(x, 0, _add)


@triton.jit
def activation(x, KIND: tl.constexpr):
    """The activation of a :class:`~lstmkit.CellSpec` field, by code."""
    if KIND == 0:
        y = 1.0 / (1.0 + tl.exp(-x))
    elif KIND == 1:
        y = tl.minimum(tl.maximum((x + 3.0) / 6.0, 0.0), 1.0)
    elif KIND == 2:
        y = tanh(x)
    elif KIND == 3:
        y = x
    elif KIND == 4:
        y = tl.maximum(x, 0.0)
    else:
        y = x / (1.0 + tl.abs(x))
    return y


@triton.jit
def activation_grad(y, KIND: tl.constexpr):
    """d act / d x written with the activation's output ``y`` (all six are invertible enough)."""
    if KIND == 0:
        d = y * (1.0 - y)
    elif KIND == 1:
        d = tl.where((y > 0.0) & (y < 1.0), (y * 0.0 + 1.0) / 6.0, 0.0)  # 1/6 in y's dtype
    elif KIND == 2:
        d = 1.0 - y * y
    elif KIND == 3:
        d = y * 0.0 + 1.0
    elif KIND == 4:
        d = tl.where(y > 0.0, 1.0, 0.0)
    else:
        d = (1.0 - tl.abs(y)) * (1.0 - tl.abs(y))
    return d


@triton.jit
def row_stats(ptr, N, H, G: tl.constexpr, cols, mask, eps, CDT: tl.constexpr):
    """Mean and 1/std of one row of N = G*H values stored as G blocks of H."""
    s = row_sum(tl.load(ptr + cols, mask=mask, other=0.0).to(CDT))
    for k in tl.static_range(1, G):
        s += row_sum(tl.load(ptr + k * H + cols, mask=mask, other=0.0).to(CDT))
    mean = s / N
    d = tl.where(mask, tl.load(ptr + cols, mask=mask, other=0.0).to(CDT) - mean, 0.0)
    ss = row_sum(d * d)
    for k in tl.static_range(1, G):
        d = tl.where(mask, tl.load(ptr + k * H + cols, mask=mask, other=0.0).to(CDT) - mean, 0.0)
        ss += row_sum(d * d)
    return mean, 1.0 / tl.sqrt(ss / N + eps)


@triton.jit
def row_start(scalars_ptr, H, G: tl.constexpr, CDT: tl.constexpr, BLOCK_H: tl.constexpr):
    """What a step kernel (forward or backward) starts from: its batch row ``program_id(0)``, the
    unit columns and their mask, the row's offset into (B, G*H), and the scalars clip, zoneout keep of
    c and h and layer-norm eps in the compute dtype (a float argument would be float32)."""
    b = tl.program_id(0)
    cols = tl.arange(0, BLOCK_H)
    clip = tl.load(scalars_ptr).to(CDT)
    zc_keep = tl.load(scalars_ptr + 1).to(CDT)
    zh_keep = tl.load(scalars_ptr + 2).to(CDT)
    eps = tl.load(scalars_ptr + 3).to(CDT)
    return b, cols, cols < H, b * G * H, clip, zc_keep, zh_keep, eps


@triton.jit
def pre_activation(
    zx_ptr, rec_ptr, rec_hat_ptr, ln_hh_ptr, row, k, H, cols, mask, mean, rstd,
    LAYER_NORM: tl.constexpr, CDT: tl.constexpr,
):  # fmt: skip
    """z_k = zx_k + rec_k, with rec layer-normed (and its normalised value stored) under LAYER_NORM."""
    zx = tl.load(zx_ptr + row + k * H + cols, mask=mask, other=0.0).to(CDT)
    rec = tl.load(rec_ptr + row + k * H + cols, mask=mask, other=0.0).to(CDT)
    if LAYER_NORM:
        rec = (rec - mean) * rstd
        tl.store(rec_hat_ptr + row + k * H + cols, rec, mask=mask)
        rec = rec * tl.load(ln_hh_ptr + k * H + cols, mask=mask, other=0.0).to(CDT)
    return zx + rec


@triton.jit
def sigmoid_gate(z, c, w_ch_ptr, fgr_ptr, b, SIG: tl.constexpr, N_SIG: tl.constexpr, H, cols, mask,
                 PEEPHOLE: tl.constexpr, FGR: tl.constexpr, GATE_ACT: tl.constexpr, CDT: tl.constexpr):  # fmt: skip
    """act_gate(z + fgr + p * c) for the sigmoid gate at position SIG among i, f, o."""
    if FGR:
        z += tl.load(fgr_ptr + b * N_SIG * H + SIG * H + cols, mask=mask, other=0.0).to(CDT)
    if PEEPHOLE:
        z += tl.load(w_ch_ptr + SIG * H + cols, mask=mask, other=0.0).to(CDT) * c
    return activation(z, GATE_ACT)


@triton.jit
def step_forward(
    zx_ptr, rec_ptr, fgr_ptr, c_prev_ptr, h_prev_ptr,
    w_ch_ptr, ln_hh_ptr, ln_cw_ptr, ln_cb_ptr, zc_ptr, zh_ptr, valid_ptr,
    acts_ptr, c_ptr, h_ptr, m_ptr, rec_hat_ptr, rstd_ptr,
    H, scalars_ptr,
    G: tl.constexpr, BLK_I: tl.constexpr, BLK_F: tl.constexpr, BLK_G: tl.constexpr, BLK_O: tl.constexpr,
    SIG_I: tl.constexpr, SIG_F: tl.constexpr, SIG_O: tl.constexpr, N_SIG: tl.constexpr,
    COUPLED: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr, CELL_ACT: tl.constexpr,
    PEEPHOLE: tl.constexpr, FGR: tl.constexpr, LAYER_NORM: tl.constexpr, CLIP: tl.constexpr,
    ZC_MODE: tl.constexpr, ZH_MODE: tl.constexpr, PADDED: tl.constexpr, PROJ: tl.constexpr,
    CDT: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    """One step for batch row ``program_id(0)``; see the module docstring. ZC_MODE/ZH_MODE: 0 no
    zoneout, 1 a (B, H) keep mask, 2 the keep probability (evaluation expectation)."""
    b, cols, mask, row, clip, zc_keep, zh_keep, eps = row_start(scalars_ptr, H, G, CDT, BLOCK_H)
    mean = 0.0
    rstd = 1.0
    if LAYER_NORM:
        mean, rstd = row_stats(rec_ptr + row, G * H, H, G, cols, mask, eps, CDT)
        tl.store(rstd_ptr + b, rstd)
    c_prev = tl.load(c_prev_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)

    # gates
    if BLK_I >= 0:
        z_i = pre_activation(zx_ptr, rec_ptr, rec_hat_ptr, ln_hh_ptr, row, BLK_I, H, cols, mask, mean, rstd,
                             LAYER_NORM, CDT)  # fmt: skip
        i = sigmoid_gate(z_i, c_prev, w_ch_ptr, fgr_ptr, b, SIG_I, N_SIG, H, cols, mask, PEEPHOLE, FGR,
                         GATE_ACT, CDT)  # fmt: skip
        tl.store(acts_ptr + row + BLK_I * H + cols, i, mask=mask)
    if BLK_F >= 0:
        z_f = pre_activation(zx_ptr, rec_ptr, rec_hat_ptr, ln_hh_ptr, row, BLK_F, H, cols, mask, mean, rstd,
                             LAYER_NORM, CDT)  # fmt: skip
        f = sigmoid_gate(z_f, c_prev, w_ch_ptr, fgr_ptr, b, SIG_F, N_SIG, H, cols, mask, PEEPHOLE, FGR,
                         GATE_ACT, CDT)  # fmt: skip
        tl.store(acts_ptr + row + BLK_F * H + cols, f, mask=mask)
    z_g = pre_activation(zx_ptr, rec_ptr, rec_hat_ptr, ln_hh_ptr, row, BLK_G, H, cols, mask, mean, rstd,
                         LAYER_NORM, CDT)  # fmt: skip
    g = activation(z_g, CAND_ACT)
    tl.store(acts_ptr + row + BLK_G * H + cols, g, mask=mask)

    # cell update
    c = c_prev
    if COUPLED:
        c = (1.0 - i) * c_prev
    elif BLK_F >= 0:
        c = f * c_prev
    if BLK_I >= 0:
        c = c + i * g
    else:
        c = c + g
    if CLIP:
        c = tl.minimum(tl.maximum(c, -clip), clip)

    # output
    if BLK_O >= 0:
        z_o = pre_activation(zx_ptr, rec_ptr, rec_hat_ptr, ln_hh_ptr, row, BLK_O, H, cols, mask, mean, rstd,
                             LAYER_NORM, CDT)  # fmt: skip
        o = sigmoid_gate(z_o, c, w_ch_ptr, fgr_ptr, b, SIG_O, N_SIG, H, cols, mask, PEEPHOLE, FGR, GATE_ACT, CDT)
        tl.store(acts_ptr + row + BLK_O * H + cols, o, mask=mask)
    c_out = c
    if LAYER_NORM:
        c_mean = row_sum(tl.where(mask, c, 0.0)) / H
        c_dev = tl.where(mask, c - c_mean, 0.0)
        c_rstd = 1.0 / tl.sqrt(row_sum(c_dev * c_dev) / H + eps)
        c_w = tl.load(ln_cw_ptr + cols, mask=mask, other=0.0).to(CDT)
        c_b = tl.load(ln_cb_ptr + cols, mask=mask, other=0.0).to(CDT)
        c_out = c_dev * c_rstd * c_w + c_b
    m = activation(c_out, CELL_ACT)
    if BLK_O >= 0:
        m = o * m

    # zoneout (k * prev + (1 - k) * new) and padding (keep the state) of the carried states
    if ZC_MODE == 1:
        k_c = tl.load(zc_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
        c = k_c * c_prev + (1.0 - k_c) * c
    elif ZC_MODE == 2:
        c = zc_keep * c_prev + (1.0 - zc_keep) * c
    if PADDED:
        c = tl.where(tl.load(valid_ptr + b) != 0, c, c_prev)
    tl.store(c_ptr + b * H + cols, c, mask=mask)
    if PROJ:
        tl.store(m_ptr + b * H + cols, m.to(m_ptr.dtype.element_ty), mask=mask)
    else:
        h_prev = tl.load(h_prev_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
        if ZH_MODE == 1:
            k_h = tl.load(zh_ptr + b * H + cols, mask=mask, other=0.0).to(CDT)
            m = k_h * h_prev + (1.0 - k_h) * m
        elif ZH_MODE == 2:
            m = zh_keep * h_prev + (1.0 - zh_keep) * m
        if PADDED:
            m = tl.where(tl.load(valid_ptr + b) != 0, m, h_prev)
        tl.store(h_ptr + b * H + cols, m.to(h_ptr.dtype.element_ty), mask=mask)
