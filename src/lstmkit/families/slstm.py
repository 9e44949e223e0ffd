r"""sLSTM, the scalar-memory cell of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term
Memory", NeurIPS, §2.2), as plain differentiable PyTorch: the reference the modules run on.

With pre-activations :math:`\tilde{u}_t = W_u x_t + R_u h_{t-1} + b_u` for u in i, f, z, o (the
recurrent matrices R block-diagonal over NH heads: "memory mixing" only inside a head)::

    z_t = tanh(z~_t)                        candidate (cell input)
    i_t = exp(i~_t)        or sigmoid(i~_t)  input gate
    f_t = sigmoid(f~_t)    or exp(f~_t)      forget gate
    o_t = sigmoid(o~_t)                      output gate
    c_t = f_t c_{t-1} + i_t z_t              cell state
    n_t = f_t n_{t-1} + i_t                  normalizer state
    h_t = o_t c_t / n_t                      hidden state

Exponential gates overflow, so the paper carries a stabilizer state m and scaled states
c' = c e^{-m}, n' = n e^{-m}::

    m_t  = max(log f_t + m_{t-1}, log i_t)
    i'_t = exp(log i_t - m_t)      f'_t = exp(log f_t + m_{t-1} - m_t)
    c'_t = f'_t c'_{t-1} + i'_t z_t      n'_t = f'_t n'_{t-1} + i'_t      h_t = o_t c'_t / n'_t

m is a gauge: it rescales c and n together, so h does not depend on it. With ``stabilizer=False``
m is carried unchanged (m_t = m_{t-1}; 0 from a fresh state, which gives the unstabilised equations
above) and the outputs are the same wherever nothing overflows.

State: (h, c, n, m), each (B, H). Shapes: T time, B batch, H hidden, NH heads, DH = H / NH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .common import FORGET_GATES, INPUT_GATES, check_choice, check_soft_cap, log_gate, scan, soft_cap

GATES = ("input", "forget", "candidate", "output")
"""Row blocks of ``weight_ih`` / ``weight_hh`` / ``bias`` in storage order (i, f, z, o)."""
RECORDS = ("input", "forget", "forget_raw", "candidate", "output", "cell", "normalizer", "stabilizer", "hidden")
"""What a recorded step holds, each (B, H): stabilised i', f', the raw f, z, o and the new states."""


@dataclass(frozen=True)
class SLSTMSpec:
    """The gate choices of one sLSTM step (Beck et al. 2024, §2.2).

    Example::

        >>> SLSTMSpec(input_gate="sigmoid").input_gate
        'sigmoid'
    """

    # i_t = exp(i~_t) (the paper's choice) or sigmoid(i~_t).
    input_gate: str = "exp"
    # f_t = sigmoid(f~_t) (the official package's choice) or exp(f~_t).
    forget_gate: str = "sigmoid"
    # Carry the stabilizer m_t = max(log f_t + m_{t-1}, log i_t); False keeps m fixed (no rescaling).
    stabilizer: bool = True
    # Bound the i and f pre-activations to (-cap, cap) by cap * tanh(x / cap) (xLSTM-7B uses 15); None: off.
    soft_cap: float | None = None

    def __post_init__(self) -> None:
        check_choice("input_gate", self.input_gate, INPUT_GATES)
        check_choice("forget_gate", self.forget_gate, FORGET_GATES)
        check_soft_cap(self.soft_cap)


class SLSTMState(NamedTuple):
    """The whole sLSTM state; each (B, H)."""

    hidden: Tensor  # h
    cell: Tensor  # c (scaled by e^{-m})
    normalizer: Tensor  # n (scaled by e^{-m})
    stabilizer: Tensor  # m


def head_recurrence(h: Tensor, weight_hh: Tensor, num_heads: int) -> Tensor:
    """R h_{t-1} with block-diagonal R: (B, H) x (4H, DH) -> (B, 4H).

    Row (g, k, j) of ``weight_hh`` (gate g, head k, unit j of the head) holds the weights from the
    DH units of head k; with NH = 1 it is ``torch.nn.LSTM``'s (4H, H) layout.
    """
    B, H = h.shape
    DH = H // num_heads
    R = weight_hh.view(4, num_heads, DH, DH)  # (gate, head, out unit, in unit)
    return torch.einsum("bkd,gkjd->bgkj", h.view(B, num_heads, DH), R).reshape(B, 4 * H)


def slstm_step(
    x_proj: Tensor, state: SLSTMState, weight_hh: Tensor, num_heads: int, spec: SLSTMSpec
) -> tuple[SLSTMState, dict[str, Tensor]]:
    """One sLSTM step (the oracle).

    Args:
        x_proj: (B, 4H) input part of the pre-activations, W x_t + b, blocks i, f, z, o.
        state: (h, c, n, m), each (B, H).
        weight_hh: (4H, DH) head-wise recurrent weights (see :func:`head_recurrence`).
        num_heads: NH, dividing H.
        spec: gate choices.

    Returns the new state and the step's gates (names of :data:`RECORDS`, each (B, H)).
    """
    h, c, n, m = state
    pre = x_proj + head_recurrence(h, weight_hh, num_heads)
    i_pre, f_pre, z_pre, o_pre = pre.chunk(4, dim=1)  # each (B, H)
    log_i = log_gate(soft_cap(i_pre, spec.soft_cap), spec.input_gate)
    log_f = log_gate(soft_cap(f_pre, spec.soft_cap), spec.forget_gate)
    m_new = torch.maximum(log_f + m, log_i) if spec.stabilizer else m
    i = torch.exp(log_i - m_new)
    f = torch.exp(log_f + m - m_new)
    z = torch.tanh(z_pre)
    o = torch.sigmoid(o_pre)
    c_new = f * c + i * z
    n_new = f * n + i
    h_new = o * c_new / n_new
    gates = {
        "input": i,
        "forget": f,
        "forget_raw": torch.exp(log_f),
        "candidate": z,
        "output": o,
        "cell": c_new,
        "normalizer": n_new,
        "stabilizer": m_new,
        "hidden": h_new,
    }
    return SLSTMState(h_new, c_new, n_new, m_new), gates


def slstm_layer(
    x_proj: Tensor,
    state: SLSTMState,
    weight_hh: Tensor,
    num_heads: int,
    spec: SLSTMSpec,
    lengths: Tensor | None = None,
    record: bool = False,
) -> tuple[Tensor, SLSTMState, dict[str, Tensor] | None]:
    """:func:`slstm_step` over time.

    Args:
        x_proj: (T, B, 4H) W x_t + b for every step.
        state: (h, c, n, m) before the first step, each (B, H).
        lengths: (B,) valid lengths in [0, T], or None: sequence b keeps its state after
            ``lengths[b]`` steps and outputs zeros there.
        record: also return every step's gates, name -> (T, B, H).

    Returns the hidden states (T, B, H), the final state and the records (or None).
    """

    def step(x: Tensor, s: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]]:
        new, gates = slstm_step(x, SLSTMState(*s), weight_hh, num_heads, spec)
        return new.hidden, tuple(new), gates

    out, final, records = scan(step, x_proj, tuple(state), lengths, record)
    return out, SLSTMState(*final), records
