"""The reference maths: one LSTM step, and one layer-direction looped over time.

Everything here is plain differentiable PyTorch, written to be read next to the equations of
:mod:`lstmkit.spec`. The fast kernels (:mod:`lstmkit.kernels`) honour the same contract and
are tested against these functions.

Shape legend: T time, B batch, I input, H hidden, P projection (R = P if projecting else H, the
size of h), G gate blocks, n sigmoid gates among i, f, o.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .spec import CellSpec

LN_EPS = 1e-5
"""Epsilon of every layer norm of the ``layer_norm`` spec."""


class LayerWeights(NamedTuple):
    """The parameters of one layer-direction; fields a spec does not use are None."""

    weight_ih: Tensor  # (G*H, I)
    weight_hh: Tensor  # (G*H, R)
    bias_ih: Tensor | None = None  # (G*H,)
    bias_hh: Tensor | None = None  # (G*H,)
    weight_hr: Tensor | None = None  # (P, H), projection
    weight_ch: Tensor | None = None  # (n*H,), peepholes in order i, f, o
    weight_gg: Tensor | None = None  # (n*H, n*H), full gate recurrence
    ln_ih_weight: Tensor | None = None  # (G*H,)
    ln_hh_weight: Tensor | None = None  # (G*H,)
    ln_cell_weight: Tensor | None = None  # (H,)
    ln_cell_bias: Tensor | None = None  # (H,)


class CellGates(NamedTuple):
    """One step's gate activations and new states, each (B, H) (``hidden`` is (B, R)).

    A gate that the spec removes is None: it is the constant 1 (NIG, NFG, NOG).
    """

    input: Tensor | None
    forget: Tensor | None
    candidate: Tensor
    output: Tensor | None
    cell: Tensor
    hidden: Tensor


class LayerResult(NamedTuple):
    """What a layer-direction returns.

    ``output`` (T, B, R); ``h_n`` (B, R); ``c_n`` (B, H); ``gates`` maps each recorded
    name of :class:`CellGates` to a (T, B, ·) tensor (zeros at padded steps), or is None;
    ``g_n`` (B, n*H) the sigmoid gates i, f, o of each sequence's last valid step under
    ``full_gate_recurrence`` (the third element of its state), else None.
    """

    output: Tensor
    h_n: Tensor
    c_n: Tensor
    gates: dict[str, Tensor] | None
    g_n: Tensor | None = None


def activation(name: str, x: Tensor) -> Tensor:
    """Apply the activation named in a :class:`CellSpec` field."""
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "hard_sigmoid":  # relu6(x + 3) / 6, exact in float64 (F.hardsigmoid is not)
        return ((x + 3.0) / 6.0).clamp(0.0, 1.0)
    if name == "identity":
        return x
    if name == "relu":
        return torch.relu(x)
    if name == "softsign":
        return F.softsign(x)
    raise ValueError(f"unknown activation {name!r}")


def _need(weight: Tensor | None, field: str) -> Tensor:
    """Return a weight the spec requires; a clear error if the given LayerWeights lacks it."""
    if weight is None:
        raise ValueError(f"LayerWeights.{field}: expected a tensor (the spec uses it), got None")
    return weight


def _layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None = None) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)


def lstm_step(
    x_proj: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    prev_gates: Tensor | None = None,
) -> CellGates:
    """One step of the cell described by ``spec``.

    ``x_proj`` (B, G*H) is ``W x_t`` without bias (the layer computes it for all steps at
    once); ``h_prev`` (B, R), ``c_prev`` (B, H); ``prev_gates`` (B, n*H) holds i, f, o of the
    previous step for ``full_gate_recurrence`` (zeros at the first step). The default spec::

        z = W x_t + R h_{t-1} + b_ih + b_hh           split into blocks i, f, g, o
        c_t = sigmoid(z_f) * c_{t-1} + sigmoid(z_i) * tanh(z_g)
        h_t = sigmoid(z_o) * tanh(c_t)
    """
    rec = F.linear(h_prev, w.weight_hh)  # (B, G*H)
    if spec.layer_norm:
        x_proj = _layer_norm(x_proj, w.ln_ih_weight)
        rec = _layer_norm(rec, w.ln_hh_weight)
    z = x_proj + rec
    if w.bias_ih is not None and w.bias_hh is not None:
        z = z + w.bias_ih + w.bias_hh
    blocks = dict(zip(spec.gates, z.chunk(spec.num_gates, dim=1), strict=True))

    sig = spec.sigmoid_gates  # gates that peepholes and FGR connect, in order i, f, o
    if spec.full_gate_recurrence:
        if prev_gates is None:
            prev_gates = z.new_zeros(z.shape[0], len(sig) * c_prev.shape[1])
        fgr = F.linear(prev_gates, _need(w.weight_gg, "weight_gg")).chunk(len(sig), dim=1)  # n x (B, H)
        for name, extra in zip(sig, fgr, strict=True):
            blocks[name] = blocks[name] + extra
    peep = dict(zip(sig, _need(w.weight_ch, "weight_ch").chunk(len(sig)), strict=True)) if spec.peephole else {}

    def gate(name: str, c: Tensor) -> Tensor:
        pre = blocks[name]
        if name in peep:
            pre = pre + peep[name] * c
        return activation(spec.gate_activation, pre)

    i = gate("input", c_prev) if spec.input_gate else None
    f: Tensor | None
    if spec.coupled:
        assert i is not None  # CellSpec refuses coupled without input_gate
        f = 1.0 - i
    else:
        f = gate("forget", c_prev) if spec.forget_gate else None
    g = activation(spec.candidate_activation, blocks["candidate"])
    c = (c_prev if f is None else f * c_prev) + (g if i is None else i * g)
    if spec.cell_clip is not None:
        c = c.clamp(-spec.cell_clip, spec.cell_clip)
    o = gate("output", c) if spec.output_gate else None
    c_out = _layer_norm(c, w.ln_cell_weight, w.ln_cell_bias) if spec.layer_norm else c
    h = activation(spec.cell_activation, c_out)
    if o is not None:
        h = o * h
    if w.weight_hr is not None:
        h = F.linear(h, w.weight_hr)
    return CellGates(i, f, g, o, c, h)


def sigmoid_gate_state(gates: CellGates, spec: CellSpec) -> Tensor:
    """The (B, n*H) previous-gate input of ``full_gate_recurrence``: i, f, o concatenated."""
    return torch.cat([getattr(gates, name) for name in spec.sigmoid_gates], dim=1)


def fgr_entry(g0: Tensor, w: LayerWeights, spec: CellSpec) -> Tensor:
    """``W_gg g0`` laid on the sigmoid-gate blocks of a (B, G*H) pre-activation (zeros on the others):
    what the carried gates ``g0`` (B, n*H) add to the first step of a call under ``full_gate_recurrence``.
    The fast kernels add it to their first step's input projection, so a call that starts from carried
    gates equals the same steps run inside one longer call."""
    n = len(spec.sigmoid_gates)
    extra = dict(zip(spec.sigmoid_gates, F.linear(g0, _need(w.weight_gg, "weight_gg")).chunk(n, 1), strict=True))
    H = g0.shape[1] // n
    return torch.cat([extra[name] if name in extra else g0.new_zeros(g0.shape[0], H) for name in spec.gates], dim=1)


def with_fgr_entry(zx: Tensor, g0: Tensor | None, w: LayerWeights, spec: CellSpec) -> Tensor:
    """zx (T, B, G*H) with :func:`fgr_entry` added to its first step (unchanged when g0 is None or the
    spec has no full gate recurrence)."""
    if g0 is None or not spec.full_gate_recurrence or zx.shape[0] == 0:
        return zx
    first = torch.zeros(1, dtype=torch.int64, device=zx.device)  # index_add: no slice of a symbolic T
    return zx.index_add(0, first, fgr_entry(g0, w, spec).unsqueeze(0).to(zx.dtype))


def last_gates(acts: Tensor, spec: CellSpec, H: int, lengths: Tensor | None, g0: Tensor | None) -> Tensor:
    """The (B, n*H) sigmoid gates i, f, o of each sequence's last valid step, read from a kernel's
    gate activations ``acts`` (T, B, G*H) in processing order; a sequence of length 0 keeps ``g0``
    (zeros when None)."""
    T, B = acts.shape[0], acts.shape[1]
    blocks = [spec.gates.index(name) for name in spec.sigmoid_gates]
    sig = torch.cat([acts[..., k * H : (k + 1) * H] for k in blocks], dim=-1)  # (T, B, n*H)
    prev = g0 if g0 is not None else sig.new_zeros(B, sig.shape[-1])
    if T == 0:
        return prev
    if lengths is None:
        return sig[T - 1]
    lens = lengths.to(sig.device)
    idx = (lens - 1).clamp(min=0).view(1, B, 1).expand(1, B, sig.shape[-1])
    last = sig.gather(0, idx).squeeze(0)
    return torch.where((lens > 0).unsqueeze(1), last, prev.to(last.dtype))


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of a (T, B, ·) tensor within its length; padding stays in place."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    lens = lengths.to(x.device).unsqueeze(0)  # (1, B)
    idx = torch.where(t < lens, lens - 1 - t, t)  # (T, B)
    return x.gather(0, idx.unsqueeze(-1).expand_as(x))


def expect_shape(name: str, t: Tensor | None, shape: tuple[int, ...]) -> None:
    """``t`` must be given and of ``shape``; else a ValueError naming it, the shape expected and the one that came."""
    if t is None:
        raise ValueError(f"{name} of shape {shape} is required by this spec; got None")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}; got {tuple(t.shape)}")


def check_layer_shapes(
    x: Tensor, h0: Tensor, c0: Tensor, w: LayerWeights, spec: CellSpec, g0: Tensor | None = None
) -> None:
    """For x (T, B, I): h0 (B, R), c0 (B, H), g0 (B, n*H) when given, and every parameter ``spec`` needs,
    of its shape (a ValueError naming the tensor, the shape expected and the one that came). The kernels
    check this before running; the reference loop meets the same shapes in its own arithmetic."""
    B, I = x.shape[1], x.shape[2]
    H, R, G, n = c0.shape[-1], h0.shape[-1], spec.num_gates, len(spec.sigmoid_gates)
    expect_shape("h0", h0, (B, R))
    expect_shape("c0", c0, (B, H))
    expect_shape("weight_ih", w.weight_ih, (G * H, I))
    expect_shape("weight_hh", w.weight_hh, (G * H, R))
    if w.weight_hr is not None:
        expect_shape("weight_hr", w.weight_hr, (R, H))
    elif R != H:
        raise ValueError(f"h0 has size {R} but c0 has {H}: a projection needs weight_hr of shape ({R}, {H})")
    if spec.peephole:
        expect_shape("weight_ch", w.weight_ch, (n * H,))
    if spec.full_gate_recurrence:
        expect_shape("weight_gg", w.weight_gg, (n * H, n * H))
    if g0 is not None:
        if not spec.full_gate_recurrence:
            raise ValueError(f"g0 (previous gates) is a state of full_gate_recurrence only; spec {spec} has none")
        expect_shape("g0", g0, (B, n * H))
    if spec.layer_norm:
        for name, size in {
            "ln_ih_weight": G * H,
            "ln_hh_weight": G * H,
            "ln_cell_weight": H,
            "ln_cell_bias": H,
        }.items():
            expect_shape(name, getattr(w, name), (size,))


def check_lengths(lengths: Tensor | None, T: int, B: int) -> None:
    """``lengths`` must be None or a (B,) integer tensor with every value in [0, T].

    The values are checked in eager mode only: while a graph is captured they are data the
    graph does not know yet.
    """
    if lengths is None:
        return
    if not isinstance(lengths, Tensor) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        got = lengths.dtype if isinstance(lengths, Tensor) else type(lengths).__name__
        raise TypeError(f"lengths must be an integer tensor of shape ({B},); got {got}")
    if tuple(lengths.shape) != (B,):
        raise ValueError(f"lengths must have shape ({B},); got {tuple(lengths.shape)}: one length per sequence")
    if B and not torch.compiler.is_compiling():
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > T:
            raise ValueError(f"lengths must lie in [0, T={T}]; got values from {low} to {high}")


def _zone(keep: Tensor | float | None, t: int, prev: Tensor, new: Tensor) -> Tensor:
    if keep is None:
        return new
    k = keep if isinstance(keep, float) else keep[t]
    return k * prev + (1.0 - k) * new


def lstm_layer(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    recurrent_mask: Tensor | None = None,
    zoneout_cell: Tensor | float | None = None,
    zoneout_hidden: Tensor | float | None = None,
    record: bool = False,
    g0: Tensor | None = None,
) -> LayerResult:
    """Run one layer-direction over a padded sequence, step by step (the reference loop).

    Args:
        x: (T, B, I) input, padded after each sequence's length.
        h0: (B, R) initial hidden state.
        c0: (B, H) initial cell state.
        w: the layer's parameters.
        spec: what each step computes.
        lengths: (B,) integer valid lengths in [0, T], or None when every sequence has length T.
            Steps past a length leave the state unchanged and output zeros.
        reverse: run each sequence from its last valid step back to its first.
        recurrent_mask: (B, R) variational dropout mask for h_{t-1} (scaled by 1/(1-p)),
            the same at every step.
        zoneout_cell: per-step keep-previous mask (T, B, H) in training, or the keep
            probability k (a float) for the expectation at evaluation:
            ``c_t = k * c_{t-1} + (1 - k) * c_t``.
        zoneout_hidden: the same for the hidden state, (T, B, R) or a float.
        record: also return every step's gates.
        g0: (B, n*H) the sigmoid gates i, f, o of the step before the first (``full_gate_recurrence``
            only; zeros when None): the third element of a carried state.
    """
    check_lengths(lengths, x.shape[0], x.shape[1])
    if g0 is not None:
        check_layer_shapes(x, h0, c0, w, spec, g0)
    if reverse:
        x = reverse_padded(x, lengths)
        if isinstance(zoneout_cell, Tensor):
            zoneout_cell = reverse_padded(zoneout_cell, lengths)
        if isinstance(zoneout_hidden, Tensor):
            zoneout_hidden = reverse_padded(zoneout_hidden, lengths)
    T = x.shape[0]
    x_proj = F.linear(x, w.weight_ih)  # (T, B, G*H)
    valid = None
    if lengths is not None:
        steps = torch.arange(T, device=x.device).unsqueeze(1)
        valid = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)

    h, c = h0, c0
    prev_gates = None
    if spec.full_gate_recurrence:  # zeros before the first step unless carried in
        prev_gates = g0 if g0 is not None else x.new_zeros(x.shape[1], len(spec.sigmoid_gates) * c0.shape[1])
    outputs: list[Tensor] = []
    trace: dict[str, list[Tensor]] = {}
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        step = lstm_step(x_proj[t], h_in, c, w, spec, prev_gates)
        c_new = _zone(zoneout_cell, t, c, step.cell)
        h_new = _zone(zoneout_hidden, t, h, step.hidden)
        if prev_gates is not None:  # full gate recurrence: i, f, o feed the next step
            g_new = sigmoid_gate_state(step, spec)
            prev_gates = g_new if valid is None else torch.where(valid[t], g_new, prev_gates)
        if valid is not None:
            c_new = torch.where(valid[t], c_new, c)
            h_new = torch.where(valid[t], h_new, h)
            outputs.append(h_new * valid[t])
        else:
            outputs.append(h_new)
        h, c = h_new, c_new
        if record:
            values = step._replace(cell=c, hidden=h)._asdict()
            for name, value in values.items():
                if value is not None:
                    if valid is not None:
                        value = value * valid[t]
                    trace.setdefault(name, []).append(value)

    output = torch.stack(outputs) if outputs else x.new_zeros(0, *h0.shape)
    gates = {k: torch.stack(v) for k, v in trace.items()} if record else None
    if reverse:
        output = reverse_padded(output, lengths)
        if gates is not None:
            gates = {k: reverse_padded(v, lengths) for k, v in gates.items()}
    return LayerResult(output, h, c, gates, prev_gates)
