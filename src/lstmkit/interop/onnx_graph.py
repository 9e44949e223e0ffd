"""The ONNX graph of an :class:`~lstmkit.LSTM`, built node by node with ``onnx.helper``.

Two ways to run one layer (shape legend: T time, B batch, I input, H hidden, R size of h,
G gate blocks, n sigmoid gates among i, f, o, D directions):

- :func:`lstm_op_layer`: one ONNX ``LSTM`` node for both directions of a layer, for the cells
  that operator computes (default cell, peepholes, CIFG). Weights go from lstmkit's row order
  i, f, g, o to ONNX's i, o, f, c; ``B`` is ``[W_b, R_b]``; peepholes ``P`` are in order i, o, f.
- :func:`scan_layer`: one ONNX ``Scan`` per direction whose body is the step of
  :func:`lstmkit.functional.lstm_step` written in standard operators, for every other spec
  (layer norm, FGR, projection, NIG/NFG/NOG, other activations, cell clip, zoneout's expectation).

This module imports ``onnx`` at import time; :mod:`lstmkit.interop.onnx_export` imports it lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from onnx import GraphProto, NodeProto, TensorProto, ValueInfoProto, helper, numpy_helper

from ..functional import LN_EPS, LayerWeights
from ..spec import CellSpec

ONNX_GATE_ORDER = ("input", "output", "forget", "candidate")
"""Row blocks of the ONNX ``LSTM`` operator's W, R and B (its i, o, f, c)."""

_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    # relu6(x + 3) / 6 = clamp(x / 6 + 1 / 2, 0, 1)
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "identity": ("Identity", {}),
    "relu": ("Relu", {}),
    "softsign": ("Softsign", {}),
}


def lstm_op_expresses(spec: CellSpec) -> bool:
    """True when the ONNX ``LSTM`` operator computes this cell exactly (clip aside: ONNX's
    ``clip`` attribute bounds the gates' inputs, not the cell state, so ``cell_clip`` is out)."""
    return spec.replace(peephole=False, coupled=False).is_plain


class GraphBuilder:
    """Collects nodes of one (sub)graph; constants go to the shared ``initializers`` list,
    which only the main graph holds (a subgraph reads them from the outer scope)."""

    def __init__(self, dtype: np.dtype, initializers: list[TensorProto], names: dict[str, int]) -> None:
        self.dtype = dtype
        self.elem_type = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
        self.initializers = initializers
        self.nodes: list[NodeProto] = []
        self._names = names  # shared counter so names are unique across subgraphs

    def fresh(self, hint: str) -> str:
        n = self._names.get(hint, 0)
        self._names[hint] = n + 1
        return f"{hint}_{n}"

    def child(self) -> GraphBuilder:
        """A builder for a subgraph (same constants and name counter)."""
        return GraphBuilder(self.dtype, self.initializers, self._names)

    def const(self, hint: str, value: ArrayLike, dtype: DTypeLike | None = None) -> str:
        """Add a constant; floats take the model's dtype unless ``dtype`` says otherwise."""
        array = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        """Add a node with one output; returns its name."""
        return self.op_multi(op_type, inputs, 1, hint, **attrs)[0]

    def op_multi(self, op_type: str, inputs: list[str], n_out: int, hint: str | None = None, **attrs: Any) -> list[str]:
        outputs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs

    def activation(self, name: str, x: str) -> str:
        op_type, attrs = _ACTIVATIONS[name]
        return self.op(op_type, [x], None, **attrs)

    def value_info(self, name: str, shape: list[int | str | None]) -> ValueInfoProto:
        return helper.make_tensor_value_info(name, self.elem_type, shape)


def _np(t: object) -> np.ndarray:
    return t.detach().cpu().numpy()  # type: ignore[attr-defined]


def _blocks(t: np.ndarray, spec: CellSpec, H: int) -> dict[str, np.ndarray]:
    """Split the G*H leading axis of a weight or bias into named gate blocks."""
    return {name: t[k * H : (k + 1) * H] for k, name in enumerate(spec.gates)}


def _to_onnx_order(t: np.ndarray, spec: CellSpec, H: int) -> np.ndarray:
    """Reorder gate blocks to ONNX's i, o, f, c; a gate the spec lacks (CIFG's f) is zero."""
    blocks = _blocks(t, spec, H)
    zero = np.zeros((H, *t.shape[1:]), dtype=t.dtype)
    return np.concatenate([blocks.get(name, zero) for name in ONNX_GATE_ORDER], axis=0)


def lstm_op_layer(
    g: GraphBuilder,
    x: str,
    weights: list[LayerWeights],
    spec: CellSpec,
    hidden_size: int,
    h0: str | None,
    c0: str | None,
) -> tuple[str, str, str]:
    """One ONNX ``LSTM`` node for a layer; ``x`` (T, B, I) -> output (T, B, D*H), h_n and c_n (D, B, H).

    ``weights`` holds one :class:`LayerWeights` per direction; ``h0``/``c0`` (D, B, H) or None
    (the operator starts from zeros).
    """
    H, D = hidden_size, len(weights)
    W = np.stack([_to_onnx_order(_np(w.weight_ih), spec, H) for w in weights])  # (D, 4H, I)
    R = np.stack([_to_onnx_order(_np(w.weight_hh), spec, H) for w in weights])  # (D, 4H, H)
    inputs = [x, g.const("W", W), g.const("R", R)]
    if weights[0].bias_ih is not None:
        B = np.stack(
            [
                np.concatenate([_to_onnx_order(_np(w.bias_ih), spec, H), _to_onnx_order(_np(w.bias_hh), spec, H)])
                for w in weights
            ]
        )  # (D, 8H)
        inputs.append(g.const("B", B))
    else:
        inputs.append("")
    inputs += ["", h0 or "", c0 or ""]
    if spec.peephole:
        P = []
        for w in weights:
            p = dict(zip(spec.sigmoid_gates, np.split(_np(w.weight_ch), len(spec.sigmoid_gates)), strict=True))
            zero = np.zeros(H, dtype=W.dtype)
            P.append(np.concatenate([p.get(name, zero) for name in ("input", "output", "forget")]))
        inputs.append(g.const("P", np.stack(P)))  # (D, 3H), order i, o, f
    while inputs[-1] == "":
        inputs.pop()
    attrs: dict[str, object] = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if spec.coupled:
        attrs["input_forget"] = 1
    y, h_n, c_n = g.op_multi("LSTM", inputs, 3, "lstm", **attrs)
    # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
    y = g.op("Reshape", [y, g.const("shape", [0, 0, -1], np.int64)])
    return y, h_n, c_n


def scan_layer(
    g: GraphBuilder,
    x: str,
    w: LayerWeights,
    spec: CellSpec,
    hidden_size: int,
    h0: str,
    c0: str,
    gates0: str | None,
    *,
    reverse: bool,
    zoneout: tuple[float, float],
) -> tuple[str, str, str, str | None]:
    """One layer-direction as an ONNX ``Scan`` over time: ``x`` (T, B, I), ``h0`` (B, R),
    ``c0`` (B, H), ``gates0`` (B, n*H) FGR's gates before the first step (zeros, or a stream's carried g)
    -> output (T, B, R), h_n, c_n and FGR's last gates g_n (None without FGR).

    The input projection (and its layer norm, or the bias) is one MatMul for all steps; the body
    computes :func:`lstmkit.functional.lstm_step` from it and the carried states.
    """
    H = hidden_size
    xp = g.op("MatMul", [x, g.const("W_ih_T", _np(w.weight_ih).T)])  # (T, B, G*H)
    b_sum = None
    if w.bias_ih is not None:
        b_sum = g.const("b", _np(w.bias_ih) + _np(w.bias_hh))
    if spec.layer_norm:
        xp = _layer_norm(g, xp, g.const("ln_ih", _np(w.ln_ih_weight)), None)
    elif b_sum is not None:
        xp = g.op("Add", [xp, b_sum])

    body = g.child()
    h_prev, c_prev, gates_prev, x_t = (body.fresh(n) for n in ("h_prev", "c_prev", "gates_prev", "xp_t"))
    h, c, gates = _step_nodes(body, spec, w, H, x_t, h_prev, c_prev, gates_prev, b_sum)
    zc, zh = zoneout
    if zc:  # evaluation-mode zoneout: the expectation z * prev + (1 - z) * new
        c = _mix(body, zc, c_prev, c)
    if zh:
        h = _mix(body, zh, h_prev, h)
    y_t = body.op("Identity", [h], "y_t")

    R = int(w.weight_hh.shape[1])
    n = len(spec.sigmoid_gates) * H
    fgr = spec.full_gate_recurrence
    in_infos = [body.value_info(h_prev, ["batch", R]), body.value_info(c_prev, ["batch", H])]
    out_infos = [body.value_info(h, ["batch", R]), body.value_info(c, ["batch", H])]
    if fgr:
        in_infos.append(body.value_info(gates_prev, ["batch", n]))
        out_infos.append(body.value_info(gates, ["batch", n]))  # type: ignore[arg-type]
    in_infos.append(body.value_info(x_t, ["batch", spec.num_gates * H]))
    out_infos.append(body.value_info(y_t, ["batch", R]))
    graph: GraphProto = helper.make_graph(body.nodes, g.fresh("step"), in_infos, out_infos)

    states = [h0, c0]
    if fgr:
        assert gates0 is not None  # the caller gives the first step's previous gates for FGR
        states.append(gates0)
    direction = [1 if reverse else 0]
    outs = g.op_multi(
        "Scan",
        [*states, xp],
        len(states) + 1,
        "scan",
        body=graph,
        num_scan_inputs=1,
        scan_input_directions=direction,
        scan_output_directions=direction,
    )
    return outs[-1], outs[0], outs[1], outs[2] if fgr else None


def _mix(g: GraphBuilder, z: float, prev: str, new: str) -> str:
    """z * prev + (1 - z) * new."""
    return g.op("Add", [g.op("Mul", [g.const("z", z), prev]), g.op("Mul", [g.const("1-z", 1.0 - z), new])])


def _layer_norm(g: GraphBuilder, x: str, scale: str, bias: str | None) -> str:
    inputs = [x, scale] + ([bias] if bias is not None else [])
    return g.op("LayerNormalization", inputs, axis=-1, epsilon=LN_EPS)


def _step_nodes(
    g: GraphBuilder,
    spec: CellSpec,
    w: LayerWeights,
    H: int,
    x_t: str,
    h_prev: str,
    c_prev: str,
    gates_prev: str,
    b_sum: str | None,
) -> tuple[str, str, str | None]:
    """The nodes of one step (see :func:`lstmkit.functional.lstm_step`); returns h, c and,
    with FGR, the (B, n*H) concatenation of this step's i, f, o."""
    rec = g.op("MatMul", [h_prev, g.const("W_hh_T", _np(w.weight_hh).T)])  # (B, G*H)
    if spec.layer_norm:
        rec = _layer_norm(g, rec, g.const("ln_hh", _np(w.ln_hh_weight)), None)
    z = g.op("Add", [x_t, rec])
    if spec.layer_norm and b_sum is not None:
        z = g.op("Add", [z, b_sum])
    if spec.num_gates == 1:
        parts = [z]
    else:
        parts = g.op_multi("Split", [z, g.const("split", [H] * spec.num_gates, np.int64)], spec.num_gates, axis=1)
    blocks = dict(zip(spec.gates, parts, strict=True))

    sig = spec.sigmoid_gates
    if spec.full_gate_recurrence:
        extra = g.op("MatMul", [gates_prev, g.const("W_gg_T", _np(w.weight_gg).T)])  # (B, n*H)
        if len(sig) > 1:
            extras = g.op_multi("Split", [extra, g.const("split", [H] * len(sig), np.int64)], len(sig), axis=1)
        else:
            extras = [extra]
        for name, e in zip(sig, extras, strict=True):
            blocks[name] = g.op("Add", [blocks[name], e])
    peep: dict[str, str] = {}
    if spec.peephole:
        for name, p in zip(sig, np.split(_np(w.weight_ch), len(sig)), strict=True):
            peep[name] = g.const(f"peep_{name}", p)

    def gate(name: str, c: str) -> str:
        pre = blocks[name]
        if name in peep:
            pre = g.op("Add", [pre, g.op("Mul", [peep[name], c])])
        return g.activation(spec.gate_activation, pre)

    i = gate("input", c_prev) if spec.input_gate else None
    f: str | None
    if spec.coupled:
        assert i is not None  # CellSpec refuses coupled without input_gate
        f = g.op("Sub", [g.const("one", 1.0), i])
    else:
        f = gate("forget", c_prev) if spec.forget_gate else None
    cand = g.activation(spec.candidate_activation, blocks["candidate"])
    kept = c_prev if f is None else g.op("Mul", [f, c_prev])
    added = cand if i is None else g.op("Mul", [i, cand])
    c = g.op("Add", [kept, added], "c")
    if spec.cell_clip is not None:
        c = g.op("Clip", [c, g.const("clip_lo", -spec.cell_clip), g.const("clip_hi", spec.cell_clip)], "c")
    o = gate("output", c) if spec.output_gate else None
    c_out = c
    if spec.layer_norm:
        gain, shift = g.const("ln_cell_w", _np(w.ln_cell_weight)), g.const("ln_cell_b", _np(w.ln_cell_bias))
        c_out = _layer_norm(g, c, gain, shift)
    h = g.activation(spec.cell_activation, c_out)
    if o is not None:
        h = g.op("Mul", [o, h])
    if w.weight_hr is not None:
        h = g.op("MatMul", [h, g.const("W_hr_T", _np(w.weight_hr).T)])  # (B, P)
    gates = None
    if spec.full_gate_recurrence:
        values = {"input": i, "forget": f, "output": o}
        gates = g.op("Concat", [values[name] for name in sig], axis=1)  # type: ignore[misc]
    return h, c, gates
