r"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", §3.2) as plain differentiable PyTorch,
in two forms of one function: the sequential step (the oracle, and the streaming step) and the
log-space parallel scan over the whole sequence.

The gates see only the input, not h_{t-1}, so the recurrence is linear in h::

    f_t = sigmoid(W_f x_t + b_f)       i_t = sigmoid(W_i x_t + b_i)       forget, input
    h~_t = W_h x_t + b_h               (or g(W_h x_t + b_h))               candidate
    f'_t = f_t / (f_t + i_t)           i'_t = i_t / (f_t + i_t)            normalised gates
    h_t = f'_t h_{t-1} + i'_t h~_t                                          hidden state

``normalize=False`` keeps f_t and i_t as they are (the paper's ablation without the
length-independence scaling). ``candidate="g"`` uses the paper's positive candidate for its
log-space mode, g(x) = x + 1/2 for x >= 0 and sigmoid(x) otherwise.

Parallel form: with A_t = sum_{s<=t} log f'_s, the recurrence unrolls to
h_t = e^{A_t} h_0 + sum_{j<=t} e^{A_t - A_j} i'_j h~_j, computed in log space as
h_t = exp(A_t + logcumsumexp_j(log b_j - A_j)) with b_0 = h_0 and b_j = i'_j h~_j. The positive and
negative parts of b go through two such scans (the paper's scan needs b > 0; for the g candidate
and h_0 >= 0 the negative part is empty). log 0 is taken as log of the dtype's smallest normal
number, so the result is exact up to T times that number.

State: (h,), h (B, H). Shapes: T time, B batch, H hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import check_choice, scan, valid_mask

GATES = ("input", "forget", "candidate")
"""Row blocks of ``weight_ih`` / ``bias`` in storage order."""
RECORDS = ("input", "forget", "candidate", "hidden")
"""What a recorded step holds, each (B, H): the gates as applied (i', f' when normalised), h~, h."""
CANDIDATES = ("identity", "g")


@dataclass(frozen=True)
class MinLSTMSpec:
    """The choices of one minLSTM step (Feng et al. 2024, §3.2).

    Example::

        >>> MinLSTMSpec(candidate="g").normalize
        True
    """

    # h~_t = W_h x_t + b_h ("identity") or g(W_h x_t + b_h) ("g", positive: the paper's log-space mode).
    candidate: str = "identity"
    # Length-independence scaling f' = f / (f + i), i' = i / (f + i); False: f and i as they are.
    normalize: bool = True

    def __post_init__(self) -> None:
        check_choice("candidate", self.candidate, CANDIDATES)


class MinLSTMState(NamedTuple):
    """The whole minLSTM state: h (B, H)."""

    hidden: Tensor


def g(x: Tensor) -> Tensor:
    """The paper's positive candidate: x + 1/2 for x >= 0, sigmoid(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_gates(i_pre: Tensor, f_pre: Tensor, spec: MinLSTMSpec) -> tuple[Tensor, Tensor]:
    """log i', log f' from the pre-activations, without forming f + i.

    Normalised: log f' = -softplus(d), log i' = -softplus(-d) with d = softplus(-f~) - softplus(-i~)
    = log(i / f); otherwise logsigmoid of each.
    """
    if not spec.normalize:
        return F.logsigmoid(i_pre), F.logsigmoid(f_pre)
    d = F.softplus(-f_pre) - F.softplus(-i_pre)
    return -F.softplus(-d), -F.softplus(d)


def candidate(h_pre: Tensor, spec: MinLSTMSpec) -> Tensor:
    return g(h_pre) if spec.candidate == "g" else h_pre


def minlstm_step(x_proj: Tensor, state: MinLSTMState, spec: MinLSTMSpec) -> tuple[MinLSTMState, dict[str, Tensor]]:
    """One sequential minLSTM step (the oracle).

    Args:
        x_proj: (B, 3H) W x_t + b, blocks input, forget, candidate.
        state: (h,), h (B, H).

    Returns the new state and the step's records (:data:`RECORDS`, each (B, H)).
    """
    i_pre, f_pre, h_pre = x_proj.chunk(3, dim=-1)
    i, f = torch.sigmoid(i_pre), torch.sigmoid(f_pre)
    if spec.normalize:
        i, f = i / (f + i), f / (f + i)
    h_tilde = candidate(h_pre, spec)
    h = f * state.hidden + i * h_tilde
    return MinLSTMState(h), {"input": i, "forget": f, "candidate": h_tilde, "hidden": h}


def _log_abs_part(x: Tensor, sign: float) -> Tensor:
    """log(max(sign * x, tiny)): the log of the positive (sign 1) or negative (sign -1) part."""
    return torch.log((sign * x).clamp_min(torch.finfo(x.dtype).tiny))


def minlstm_scan(
    x_proj: Tensor, state: MinLSTMState, spec: MinLSTMSpec, valid: Tensor | None = None
) -> tuple[Tensor, MinLSTMState]:
    """The minLSTM over a whole sequence by the log-space parallel scan (module docstring).

    Args:
        x_proj: (T, B, 3H) W x_t + b for every step.
        state: (h_0,), (B, H).
        valid: (T, B) bool, False at padded steps (they keep h and output zeros), or None.

    Returns the hidden states (T, B, H) and the state after the last valid step.
    """
    i_pre, f_pre, h_pre = x_proj.chunk(3, dim=-1)
    log_i, log_f = log_gates(i_pre, f_pre, spec)  # (T, B, H)
    b = torch.exp(log_i) * candidate(h_pre, spec)
    if valid is not None:
        keep = valid.unsqueeze(-1)
        log_f = torch.where(keep, log_f, torch.zeros_like(log_f))
        b = torch.where(keep, b, torch.zeros_like(b))
    A = torch.cumsum(log_f, dim=0)  # (T, B, H)
    h0 = state.hidden.unsqueeze(0)  # (1, B, H)
    h = torch.zeros_like(b)
    for sign in (1.0, -1.0):
        log_b = torch.cat([_log_abs_part(h0, sign), _log_abs_part(b, sign) - A], dim=0)  # (T+1, B, H)
        h = h + sign * torch.exp(A + torch.logcumsumexp(log_b, dim=0)[1:])
    if valid is not None:
        last = valid.sum(0)  # (B,) valid steps per sequence
        h = h * valid.unsqueeze(-1).to(h.dtype)
        idx = (last - 1).clamp_min(0).view(1, -1, 1).expand(1, *h.shape[1:])
        h_T = torch.where((last > 0).view(-1, 1), h.gather(0, idx).squeeze(0), state.hidden)
    else:
        h_T = h[-1]
    return h, MinLSTMState(h_T)


def minlstm_layer(
    x_proj: Tensor,
    state: MinLSTMState,
    spec: MinLSTMSpec,
    lengths: Tensor | None = None,
    record: bool = False,
    form: str = "scan",
) -> tuple[Tensor, MinLSTMState, dict[str, Tensor] | None]:
    """One minLSTM layer over time.

    Args:
        x_proj: (T, B, 3H) W x_t + b for every step.
        state: (h_0,), (B, H).
        lengths: (B,) valid lengths in [0, T] or None; padded steps keep h and output zeros.
        record: return every step's records (name -> (T, B, H)); runs the sequential form.
        form: "scan" (log-space parallel scan, the default) or "sequential"; both compute the same.

    Returns the hidden states (T, B, H), the final state and the records (or None).
    """
    check_choice("form", form, ("scan", "sequential"))
    if record or form == "sequential":

        def step(x: Tensor, s: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]]:
            new, rec = minlstm_step(x, MinLSTMState(*s), spec)
            return new.hidden, tuple(new), rec

        out, final, records = scan(step, x_proj, tuple(state), lengths, record)
        return out, MinLSTMState(*final), records
    valid = valid_mask(lengths, x_proj.shape[0], x_proj.shape[1], x_proj.device)
    out, final = minlstm_scan(x_proj, state, spec, valid)
    return out, final, None
