"""``lstmkit::recurrence`` written in standard ops: the lowering for runtimes without the op.

``torch.compile`` and ``torch.export`` see one opaque node per layer-direction (T symbolic). A
runtime that has no kernel for it (ExecuTorch's portable kernels, XNNPACK) needs the same function
in ATen ops; that function is :func:`recurrence_steps`, built from the reference step
:func:`lstmkit.functional.lstm_step` and registered as the op's ``CompositeImplicitAutograd``
kernel. Eager calls and graph capture never reach it: the op's CPU and autograd kernels come first.
``ExportedProgram.run_decompositions()`` with torch's default table (which ExecuTorch's ``to_edge``
and ``to_edge_transform_and_lower`` use) does, and the node becomes T unrolled steps of ATen ops::

    ep = torch.export.export(model.eval(), (x, (h0, c0)))            # one lstmkit::recurrence node
    ep.run_decompositions()                                         # T steps of addmm, sigmoid, ...

Time is dynamic up to the decomposition and static after it: the unrolled graph has exactly the
T of the exported example, so export a step or chunk model (T = K) with static shapes for the
edge; a program exported with a symbolic T refuses to decompose with a one-line error.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from ...functional import LayerWeights, lstm_step, sigmoid_gate_state
from ...spec import CellSpec


def spec_from_config(cfg: list[int], clip: float) -> CellSpec:
    """The :class:`CellSpec` that ``lstmkit.kernels.compiled._config`` encoded as ``cfg`` (and ``clip``,
    -1 for none): the inverse of that encoding, so the lowering computes the step the op was given."""
    from . import ACTIVATION_CODES

    names = {code: name for name, code in ACTIVATION_CODES.items()}
    i_off, f_off, _g_off, o_off, coupled, gate_act, cand_act, cell_act, peephole, fgr, layer_norm = cfg[:11]
    return CellSpec(
        peephole=bool(peephole),
        coupled=bool(coupled),
        input_gate=i_off >= 0,
        forget_gate=f_off >= 0 or bool(coupled),
        output_gate=o_off >= 0,
        gate_activation=names[gate_act],
        candidate_activation=names[cand_act],
        cell_activation=names[cell_act],
        full_gate_recurrence=bool(fgr),
        layer_norm=bool(layer_norm),
        cell_clip=None if clip < 0 else float(clip),
    )


def _static_length(zx: Tensor) -> int:
    T = zx.shape[0]
    if isinstance(T, torch.SymInt):
        hint = T.node.maybe_as_int()
        if hint is None:
            raise RuntimeError(
                "lstmkit::recurrence decomposes into one block of ops per time step and needs a static T; "
                f"got a symbolic T ({T}): export with static shapes (a fixed T, e.g. one chunk of K steps)"
            )
        return int(hint)
    return int(T)


def _keep(prev: Tensor, new: Tensor, mask: Tensor | None, prob: float, t: int) -> Tensor:
    """Zoneout: ``k * prev + (1 - k) * new`` with k the step's mask or the keep probability."""
    if mask is not None:
        return mask[t] * prev + (1.0 - mask[t]) * new
    if prob >= 0:
        return prob * prev + (1.0 - prob) * new
    return new


def recurrence_steps(
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
    """The op's function, step by step in standard ops (same arguments and results as the op).

    ``zx`` (T, B, G*H) is the input projection with both biases (layer-normed first under
    ``layer_norm``); returns hs (T+1, B, R) and cs (T+1, B, H), the states carried after each step
    (``hs[0] = h0``; a step past a sequence's length carries the state unchanged), and acts
    (T, B, G*H), the gate activations in storage order.
    """
    spec = spec_from_config(list(cfg), clip)
    T = _static_length(zx)
    # zx already holds LN(W x) + b: lstm_step must not normalise it again. Under layer_norm it goes in
    # as the bias (added after the normalisations) with a zero input projection, whose LN is zero.
    zero = zx.new_zeros(zx.shape[1:]) if spec.layer_norm else None
    weights = LayerWeights(
        weight_ih=w_hh, weight_hh=w_hh, weight_hr=w_hr, weight_ch=w_ch, weight_gg=w_gg,
        ln_hh_weight=ln_hh, ln_cell_weight=ln_cw, ln_cell_bias=ln_cb,
    )  # fmt: skip
    valid = None
    if lengths is not None:
        valid = (torch.arange(T, device=zx.device).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
    h, c, prev_gates = h0, c0, None
    hs, cs, acts = [h0], [c0], []
    for t in range(T):
        h_in = h if rec_mask is None else h * rec_mask
        if zero is None:
            step = lstm_step(zx[t], h_in, c, weights, spec, prev_gates)
        else:
            w_t = weights._replace(bias_ih=zx[t], bias_hh=torch.zeros_like(zx[t]))
            step = lstm_step(zero, h_in, c, w_t, spec, prev_gates)
        c_new = _keep(c, step.cell, zc_mask, zc, t)
        h_new = _keep(h, step.hidden, zh_mask, zh, t)
        if valid is not None:
            c_new = torch.where(valid[t], c_new, c)
            h_new = torch.where(valid[t], h_new, h)
        if spec.full_gate_recurrence:
            prev_gates = sigmoid_gate_state(step, spec)
        h, c = h_new, c_new
        hs.append(h)
        cs.append(c)
        acts.append(torch.cat([getattr(step, name) for name in spec.gates], dim=1))
    acts_t = torch.stack(acts) if acts else zx.new_zeros(zx.shape)
    return torch.stack(hs), torch.stack(cs), acts_t


def _symbolic(T: Any) -> bool:
    return isinstance(T, torch.SymInt) and T.node.maybe_as_int() is None


def register(custom_op: Any) -> None:
    """Make :func:`recurrence_steps` the decomposition of ``custom_op`` (``lstmkit::recurrence``) in
    ``ExportedProgram.run_decompositions``, and nowhere else.

    The op gets a Python ``CompositeImplicitAutograd`` kernel, so that torch's default decomposition
    table (:func:`torch.export.default_decompositions`, which ExecuTorch's ``to_edge`` uses) lists it,
    and a rule under functionalization that applies it. Both act only inside ``run_decompositions``
    with a table that keeps the op's entry: torch then lays the entry over the op's Python kernels and
    adds one for the CPU key (a table without the entry, such as ``run_decompositions({})`` or
    ExecuTorch's ``preserve_ops``, lays a marker instead). Eager calls, ``torch.compile`` and
    ``torch.export`` keep the op's own kernels and one node per layer-direction with T symbolic; a
    program whose T is symbolic keeps the node too, with a warning. Inductor's decomposition table is
    built before the kernel is added, so Inductor keeps calling the op (its fallback).
    """
    import torch._inductor.decomposition  # its table, built now, must not list the op
    from torch._subclasses.functional_tensor import FunctionalTensorMode

    op = custom_op._opoverload
    cia = torch._C.DispatchKey.CompositeImplicitAutograd

    def entry() -> Any:
        """Inside run_decompositions with the op's entry in the table: the entry (this module's
        decomposition, or a callable the table gave); None outside it or for the preserve marker."""
        value = op.py_kernels.get(cia)
        inside = torch._C.DispatchKey.CPU in op.py_kernels
        if not inside or value is None or getattr(value, "__name__", "") == "_special_op_to_preserve_cia":
            return None
        return recurrence_steps if value is decomposition else value

    def decomposition(*args: Any, **kwargs: Any) -> Any:
        fn = entry()
        if fn is None or _symbolic(args[0].shape[0]):
            return NotImplemented  # keep the op: its own (fake) kernel runs
        return fn(*args, **kwargs)

    def functional_rule(mode: Any, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        fn = entry()
        if fn is not None:
            if not _symbolic(args[0].shape[0]):
                with mode:
                    return fn(*args, **kwargs)
            warnings.warn(
                "lstmkit::recurrence stays one node: T is symbolic and its decomposition unrolls T steps; "
                "export with a static T for runtimes without lstmkit (ExecuTorch)",
                stacklevel=2,
            )
        return mode.__torch_dispatch__(func, types, args, kwargs)

    op.py_impl(cia)(decomposition)
    custom_op.register_torch_dispatch(FunctionalTensorMode, functional_rule)


def decomposition_table() -> dict[Any, Any]:
    """``{lstmkit::recurrence: recurrence_steps}``: for ``ep.run_decompositions(decomposition_table())``,
    which unrolls the recurrence (static T) and keeps every other op as it is (``aten.linear`` stays
    ``aten.linear``, as quantisers such as XNNPACK's expect)."""
    return {torch.ops.lstmkit.recurrence.default: recurrence_steps}
