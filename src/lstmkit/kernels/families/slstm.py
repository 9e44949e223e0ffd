"""The compiled sLSTM recurrence as ``torch.library`` custom ops, and the layer built on them.

One layer's recurrence is one node, so ``torch.compile`` and ``torch.export`` capture it with T
symbolic::

    lstmkit::slstm_recurrence(zx (T, B, 4H), h0, c0, n0, m0 (B, H), w_hh (4H, DH), lengths (B,)?,
        cfg [input_exp, forget_exp, stabilizer, NH], cap) -> S (T+1, 4, B, H), acts (T, B, 7H)

    lstmkit::slstm_recurrence_backward(dS, S, acts, w_hh, lengths, cfg, cap)
        -> d_zx (T, B, 4H), d_state0 (4, B, H), d_w_hh (4H, DH)

``S[t]`` is the state (h, c, n, m) after t steps (``S[0]`` the initial state; a padded row carries
its state), ``acts`` what the backward reads per step: the gates i', f', z, o, the slopes of log i and
log f, and the share of the stabilizer's adjoint that goes to the forget path. The autograd
formula saves the op's outputs, so a captured graph keeps exactly what it sees. ``cap`` is the soft
cap of the i and f pre-activations (-1 when off). Second derivatives are not implemented here: a
``create_graph`` backward needs ``kernel="reference"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...families.common import valid_mask
from ...families.slstm import SLSTMSpec, SLSTMState
from . import extension


@torch.library.custom_op("lstmkit::slstm_recurrence", mutates_args=(), device_types="cpu")
def slstm_recurrence(
    zx: Tensor,
    h0: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    w_hh: Tensor,
    lengths: Tensor | None,
    cfg: list[int],
    cap: float,
) -> tuple[Tensor, Tensor]:
    """S (T+1, 4, B, H) and acts (T, B, 7H) of one sLSTM layer (see the module docstring)."""
    S, acts = extension().slstm_forward(zx, h0, c0, n0, m0, w_hh, lengths, cfg, cap)
    return S, acts


@slstm_recurrence.register_fake
def _forward_fake(zx: Tensor, h0: Tensor, *rest: Any) -> tuple[Tensor, Tensor]:
    T, B, G = zx.shape
    return zx.new_empty(T + 1, 4, B, G // 4), zx.new_empty(T, B, 7 * (G // 4))


@torch.library.custom_op("lstmkit::slstm_recurrence_backward", mutates_args=(), device_types="cpu")
def slstm_recurrence_backward(
    dS: Tensor | None, S: Tensor, acts: Tensor, w_hh: Tensor, lengths: Tensor | None, cfg: list[int], cap: float
) -> tuple[Tensor, Tensor, Tensor]:
    """BPTT of :func:`slstm_recurrence`: d zx (T, B, 4H), d state0 (4, B, H), d w_hh (4H, DH)."""
    d_zx, d0, d_w = extension().slstm_backward(dS, S, acts, w_hh, lengths, cfg, cap)
    return d_zx, d0, d_w


@slstm_recurrence_backward.register_fake
def _backward_fake(dS: Any, S: Tensor, acts: Tensor, w_hh: Tensor, *rest: Any) -> tuple[Tensor, Tensor, Tensor]:
    T, B, H = S.shape[0] - 1, S.shape[2], S.shape[3]
    return S.new_empty(T, B, 4 * H), S.new_empty(S.shape[1:]), torch.empty_like(w_hh)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(output[0], output[1], inputs[5], inputs[6])
    ctx.cfg, ctx.cap = inputs[7], inputs[8]


def _backward(ctx: Any, dS: Tensor | None, d_acts: Tensor | None) -> tuple[Any, ...]:
    if torch.is_grad_enabled():
        raise RuntimeError(
            "lstmkit's compiled sLSTM kernel has no second derivative (backward with create_graph=True); "
            'run the module with kernel="reference" or inside lstmkit.kernels.use("reference")'
        )
    S, acts, w_hh, lengths = ctx.saved_tensors
    d_zx, d0, d_w = slstm_recurrence_backward(dS, S, acts, w_hh, lengths, ctx.cfg, ctx.cap)
    d_h0, d_c0, d_n0, d_m0 = d0.unbind(0)
    return d_zx, d_h0, d_c0, d_n0, d_m0, d_w, None, None, None


slstm_recurrence.register_autograd(_backward, setup_context=_setup_context)


def config(spec: SLSTMSpec, num_heads: int) -> tuple[list[int], float]:
    """The (cfg, cap) that ``csrc/slstm.cpp`` reads for ``spec`` with ``num_heads`` heads."""
    cfg = [int(spec.input_gate == "exp"), int(spec.forget_gate == "exp"), int(spec.stabilizer), num_heads]
    return cfg, -1.0 if spec.soft_cap is None else float(spec.soft_cap)


def slstm_layer(
    x_proj: Tensor,
    state: SLSTMState,
    weight_hh: Tensor,
    num_heads: int,
    spec: SLSTMSpec,
    lengths: Tensor | None = None,
) -> tuple[Tensor, SLSTMState]:
    """:func:`lstmkit.families.slstm_layer` (without records) on the compiled kernel.

    Args: x_proj (T, B, 4H), state (h, c, n, m) each (B, H), weight_hh (4H, DH), lengths (B,) or None.
    Returns the hidden states (T, B, H) (zeros on padded steps) and the final state.
    """
    T, B = x_proj.shape[0], x_proj.shape[1]
    mask = valid_mask(lengths, T, B, x_proj.device)  # checks lengths; None when every row has length T
    cfg, cap = config(spec, num_heads)
    S, _ = slstm_recurrence(x_proj, *state, weight_hh, None if lengths is None else lengths.long(), cfg, cap)
    out = S[1:, 0]  # (T, B, H)
    if mask is not None:
        out = torch.where(mask.unsqueeze(-1), out, torch.zeros_like(out))
    return out, SLSTMState(*S[-1].unbind(0))
