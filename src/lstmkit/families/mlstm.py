r"""mLSTM, the matrix-memory cell of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory", NeurIPS, §2.3), as plain differentiable PyTorch, in three forms of one function:
recurrent (the oracle, and the streaming step), parallel (quadratic in T) and chunkwise.

Per head (NH heads of size DH = H / NH), from the input x_t only (no hidden-state recurrence)::

    q_t = W_q x_t + b_q      k_t = (W_k x_t + b_k) / sqrt(DH)      v_t = W_v x_t + b_v
    i_t = exp(i~_t) or sigmoid(i~_t)   f_t = sigmoid(f~_t) or exp(f~_t)   (scalars per head)
    o_t = sigmoid(W_o x_t + b_o)                                          (a vector, H)
    C_t = f_t C_{t-1} + i_t k_t v_t^T                   memory (DH, DH)
    n_t = f_t n_{t-1} + i_t k_t                         normalizer (DH)
    h~_t = C_t^T q_t / max(|n_t^T q_t|, 1)              readout
    h_t = o_t * h~_t                                    hidden state

The paper writes C_t = v_t k_t^T and reads C_t q_t; the memory here is stored transposed, as
k_t v_t^T (the layout of the official ``xlstm`` package), which reads the same h~_t. The lower
bound 1 of the readout denominator is ``normalizer_floor``; ``eps`` is added to it (the official
package adds 1e-6).

As in sLSTM a stabilizer m keeps the exponentials in range, with C, n stored scaled by e^{-m}::

    m_t = max(log f_t + m_{t-1}, log i_t)
    i'_t = exp(log i_t - m_t)     f'_t = exp(log f_t + m_{t-1} - m_t)
    denominator_t = max(|n_t^T q_t|, floor * e^{-m_t}) + eps

With ``stabilizer=False`` m stays as given (0 from a fresh state). With eps = 0 the readout does
not depend on m at all; with eps > 0 it does, by about eps e^{m} relative.

Parallel form: with F_t = sum_{s<=t} log f_s and the initial state as a term of its own,

    D_tj = exp(F_t - F_j + log i_j - m_t) for j <= t, 0 otherwise      g_t = exp(F_t + m_0 - m_t)
    m_t = max(F_t + m_0, max_{j<=t} (F_t - F_j + log i_j))
    h~_t = (sum_j D_tj (q_t.k_j) v_j + g_t C_0^T q_t)
           / (max(|sum_j D_tj (q_t.k_j) + g_t n_0.q_t|, floor e^{-m_t}) + eps)

which is the recurrence unrolled, so it returns the same m_t and the same h~_t. The chunkwise form
runs the parallel form on chunks of L steps and carries (C, n, m) from chunk to chunk: memory
O(T L) instead of O(T^2).

State: (C (B, NH, DH, DH), n (B, NH, DH), m (B, NH)). Shapes: T time, B batch, H hidden, NH heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .common import FORGET_GATES, INPUT_GATES, check_choice, check_soft_cap, log_gate, scan, soft_cap, valid_mask

FORMS = ("chunkwise", "parallel", "recurrent")
"""Ways to compute a layer; all return the same outputs and final state."""
RECORDS = (
    "input",
    "forget",
    "forget_raw",
    "output",
    "normalizer",
    "denominator",
    "memory_norm",
    "stabilizer",
    "hidden",
)
"""What a recorded step holds: per head (B, NH) i', f', the raw f, the readout denominator, the
Frobenius norm of C and m; n (B, NH, DH); o and h (B, H)."""


@dataclass(frozen=True)
class MLSTMSpec:
    """The gate choices of one mLSTM step (Beck et al. 2024, §2.3).

    Example::

        >>> MLSTMSpec(eps=1e-6).normalizer_floor
        1.0
    """

    # i_t = exp(i~_t) (the paper's choice) or sigmoid(i~_t).
    input_gate: str = "exp"
    # f_t = sigmoid(f~_t) (the official package's choice) or exp(f~_t).
    forget_gate: str = "sigmoid"
    # Carry the stabilizer m_t = max(log f_t + m_{t-1}, log i_t); False keeps m fixed.
    stabilizer: bool = True
    # Lower bound of the readout denominator max(|n_t^T q_t|, floor) (the paper: 1).
    normalizer_floor: float = 1.0
    # Added to the stabilised denominator (the official package: 1e-6; the paper: none).
    eps: float = 0.0
    # Bound the i and f pre-activations by cap * tanh(x / cap) (xLSTM-7B uses 15); None: off.
    soft_cap: float | None = None
    # h_t = o_t * h~_t with o_t = sigmoid(W_o x_t + b_o); False: h_t = h~_t, no output-gate rows
    # (the official mLSTM cell, whose block gates outside the cell).
    output_gate: bool = True

    def __post_init__(self) -> None:
        check_choice("input_gate", self.input_gate, INPUT_GATES)
        check_choice("forget_gate", self.forget_gate, FORGET_GATES)
        check_soft_cap(self.soft_cap)
        if not (self.normalizer_floor >= 0 and self.eps >= 0 and self.normalizer_floor + self.eps > 0):
            raise ValueError(
                f"normalizer_floor and eps must be >= 0 and not both 0; got {self.normalizer_floor}, {self.eps}"
            )


class MLSTMState(NamedTuple):
    """The whole mLSTM state of one layer."""

    memory: Tensor  # C (B, NH, DH, DH), scaled by e^{-m}
    normalizer: Tensor  # n (B, NH, DH), scaled by e^{-m}
    stabilizer: Tensor  # m (B, NH)


def projection_size(hidden_size: int, num_heads: int, spec: MLSTMSpec) -> int:
    """Rows of ``weight_ih``: q, k, v (H each), i, f (NH each), then o (H) with an output gate."""
    return (4 if spec.output_gate else 3) * hidden_size + 2 * num_heads


def _log_gates(i_pre: Tensor, f_pre: Tensor, spec: MLSTMSpec) -> tuple[Tensor, Tensor]:
    log_i = log_gate(soft_cap(i_pre, spec.soft_cap), spec.input_gate)
    log_f = log_gate(soft_cap(f_pre, spec.soft_cap), spec.forget_gate)
    return log_i, log_f


def _denominator(qn: Tensor, m: Tensor, spec: MLSTMSpec) -> Tensor:
    """max(|n^T q|, floor e^{-m}) + eps."""
    return torch.maximum(qn.abs(), spec.normalizer_floor * torch.exp(-m)) + spec.eps


def mlstm_step(
    q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, state: MLSTMState, spec: MLSTMSpec
) -> tuple[Tensor, MLSTMState, dict[str, Tensor]]:
    """One recurrent mLSTM step (the oracle).

    Args:
        q, k, v: (B, NH, DH) query, key (not yet divided by sqrt(DH)) and value.
        i_pre, f_pre: (B, NH) input and forget pre-activations.
        state: (C, n, m).

    Returns the readout h~ (B, NH, DH) (before the output gate), the new state and the records
    (without ``output`` and ``hidden``, which the layer adds).
    """
    C, n, m = state
    k = k / math.sqrt(k.shape[-1])
    log_i, log_f = _log_gates(i_pre, f_pre, spec)
    m_new = torch.maximum(log_f + m, log_i) if spec.stabilizer else m
    i = torch.exp(log_i - m_new)  # (B, NH)
    f = torch.exp(log_f + m - m_new)
    C_new = f[..., None, None] * C + i[..., None, None] * (k.unsqueeze(-1) * v.unsqueeze(-2))
    n_new = f[..., None] * n + i[..., None] * k
    den = _denominator((q * n_new).sum(-1), m_new, spec)  # (B, NH)
    h = torch.einsum("bhd,bhde->bhe", q, C_new) / den[..., None]
    records = {
        "input": i,
        "forget": f,
        "forget_raw": torch.exp(log_f),
        "normalizer": n_new,
        "denominator": den,
        "memory_norm": torch.linalg.vector_norm(C_new, dim=(-2, -1)),
        "stabilizer": m_new,
    }
    return h, MLSTMState(C_new, n_new, m_new), records


def mlstm_parallel(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i_pre: Tensor,
    f_pre: Tensor,
    state: MLSTMState,
    spec: MLSTMSpec,
    valid: Tensor | None = None,
) -> tuple[Tensor, MLSTMState]:
    """The mLSTM over a whole sequence at once (the parallel form of the module docstring).

    Args:
        q, k, v: (B, NH, T, DH); k not yet divided by sqrt(DH).
        i_pre, f_pre: (B, NH, T).
        state: (C, n, m) before the first step.
        valid: (B, T) bool, False at padded steps (they neither write nor decay), or None.

    Returns h~ (B, NH, T, DH) (zeros where not valid) and the state after the last valid step.
    """
    C0, n0, m0 = state
    T = q.shape[2]
    k = k / math.sqrt(k.shape[-1])
    log_i, log_f = _log_gates(i_pre, f_pre, spec)  # (B, NH, T)
    if valid is not None:
        keep = valid.unsqueeze(1)  # (B, 1, T)
        log_i = torch.where(keep, log_i, torch.full_like(log_i, -math.inf))
        log_f = torch.where(keep, log_f, torch.zeros_like(log_f))
    F = torch.cumsum(log_f, dim=-1)  # (B, NH, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    log_D = F.unsqueeze(-1) - F.unsqueeze(-2) + log_i.unsqueeze(-2)  # (B, NH, T, T): [t, j]
    log_D = torch.where(causal, log_D, torch.full_like(log_D, -math.inf))
    log_g = F + m0.unsqueeze(-1)  # weight of the initial state, (B, NH, T)
    m = torch.maximum(log_g, log_D.amax(dim=-1)) if spec.stabilizer else m0.unsqueeze(-1).expand_as(F)
    D = torch.exp(log_D - m.unsqueeze(-1))  # (B, NH, T, T)
    g = torch.exp(log_g - m)  # (B, NH, T)
    S = (q @ k.transpose(-1, -2)) * D  # (B, NH, T, T)
    num = S @ v + g.unsqueeze(-1) * (q @ C0)  # (B, NH, T, DH)
    qn = S.sum(-1) + g * (q @ n0.unsqueeze(-1)).squeeze(-1)  # (B, NH, T)
    h = num / _denominator(qn, m, spec).unsqueeze(-1)
    w = D[..., -1, :].unsqueeze(-1)  # (B, NH, T, 1): weights of every step in the last state
    C_T = (k * w).transpose(-1, -2) @ v + g[..., -1, None, None] * C0
    n_T = (k * w).sum(-2) + g[..., -1, None] * n0
    if valid is not None:
        h = h * valid[:, None, :, None].to(h.dtype)
    return h, MLSTMState(C_T, n_T, m[..., -1])


def mlstm_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i_pre: Tensor,
    f_pre: Tensor,
    state: MLSTMState,
    spec: MLSTMSpec,
    valid: Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[Tensor, MLSTMState]:
    """:func:`mlstm_parallel` on chunks of ``chunk_size`` steps, the state carried between them
    (same arguments and returns; memory O(T * chunk_size))."""
    T = q.shape[2]
    outs = []
    for s in range(0, T, chunk_size):
        e = min(T, s + chunk_size)
        part = valid[:, s:e] if valid is not None else None
        h, state = mlstm_parallel(
            q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], i_pre[..., s:e], f_pre[..., s:e], state, spec, part
        )
        outs.append(h)
    return torch.cat(outs, dim=2), state


def split_projection(
    x_proj: Tensor, num_heads: int, spec: MLSTMSpec
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """(..., P) -> q, k, v (..., H), i, f (..., NH), o (..., H) or None (row order of ``weight_ih``)."""
    NH = num_heads
    H = (x_proj.shape[-1] - 2 * NH) // (4 if spec.output_gate else 3)
    sizes = [H, H, H, NH, NH] + ([H] if spec.output_gate else [])
    parts = x_proj.split(sizes, dim=-1)
    return parts[0], parts[1], parts[2], parts[3], parts[4], (parts[5] if spec.output_gate else None)


def mlstm_layer(
    x_proj: Tensor,
    state: MLSTMState,
    num_heads: int,
    spec: MLSTMSpec,
    lengths: Tensor | None = None,
    record: bool = False,
    form: str = "chunkwise",
    chunk_size: int = 64,
) -> tuple[Tensor, MLSTMState, dict[str, Tensor] | None]:
    """One mLSTM layer over time.

    Args:
        x_proj: (T, B, P) W x_t + b for every step, rows as :func:`projection_size` says.
        state: (C, n, m) before the first step.
        lengths: (B,) valid lengths in [0, T] or None; padded steps keep the state and output zeros.
        record: return every step's records (name -> (T, B, ...)); runs the recurrent form.
        form: "chunkwise" (default), "parallel" or "recurrent"; all compute the same function.
        chunk_size: steps per chunk of the chunkwise form.

    Returns the hidden states (T, B, H), the final state and the records (or None).
    """
    check_choice("form", form, FORMS)
    T, B = x_proj.shape[0], x_proj.shape[1]
    if record or form == "recurrent":

        def step(x: Tensor, s: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]]:
            q, k, v, i, f, o = split_projection(x, num_heads, spec)
            heads = (B, num_heads, -1)
            h, new, rec = mlstm_step(q.view(heads), k.view(heads), v.view(heads), i, f, MLSTMState(*s), spec)
            h = h.reshape(B, -1)
            if o is not None:
                o = torch.sigmoid(o)
                h = o * h
                rec["output"] = o
            rec["hidden"] = h
            return h, tuple(new), rec

        out, final, records = scan(step, x_proj, tuple(state), lengths, record)
        return out, MLSTMState(*final), records
    valid = valid_mask(lengths, T, B, x_proj.device)
    q, k, v, i, f, o = split_projection(x_proj, num_heads, spec)

    def heads(t: Tensor) -> Tensor:  # (T, B, H) -> (B, NH, T, DH)
        return t.reshape(T, B, num_heads, -1).permute(1, 2, 0, 3)

    gates = (heads(q), heads(k), heads(v), i.permute(1, 2, 0), f.permute(1, 2, 0))  # i, f: (B, NH, T)
    vt = valid.t() if valid is not None else None  # (B, T)
    if form == "parallel":
        h, final = mlstm_parallel(*gates, state, spec, vt)
    else:
        h, final = mlstm_chunkwise(*gates, state, spec, vt, chunk_size)
    out = h.permute(2, 0, 1, 3).reshape(T, B, -1)  # (T, B, H)
    if o is not None:
        out = torch.sigmoid(o) * out
    return out, final, None
