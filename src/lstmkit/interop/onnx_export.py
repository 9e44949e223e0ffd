"""Export an :class:`~lstmkit.LSTM` to an ONNX file, checked and (with onnxruntime) verified.

``onnx`` and ``onnxruntime`` are optional extras (``pip install 'lstmkit[onnx]'``): this module
imports them only inside :func:`export_onnx`, so ``import lstmkit`` never loads them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from ..fileio import atomic_write
from ..modules import base
from ..modules.lstm import LSTM

DEFAULT_OPSET = 17
"""Opset written when none is asked for; 17 is the first with ``LayerNormalization``."""
MIN_OPSET = 17
TOLERANCE = 1e-5
"""Largest absolute difference allowed between onnxruntime's outputs and PyTorch's."""
OUTPUT_NAMES = ("output", "h_n", "c_n")


class OnnxExport(NamedTuple):
    """What :func:`export_onnx` wrote.

    ``graph`` is ``"lstm-op"`` (one ONNX ``LSTM`` node per layer) or ``"scan"`` (a ``Scan`` over
    time per layer-direction); ``max_abs_diff`` is the largest difference between onnxruntime's
    outputs and PyTorch's on the example input (the int8 PyTorch model's for an int8 graph), or None when
    onnxruntime is not installed; ``float_diff`` the int8 graph's difference to the float model (None for a
    float graph); ``size`` the file's bytes (None where not counted).
    """

    path: Path
    graph: str
    opset: int
    max_abs_diff: float | None
    float_diff: float | None = None
    size: int | None = None


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"export_onnx needs the {module!r} package: pip install 'lstmkit[onnx]'") from None


def unexportable_reasons(model: LSTM) -> list[str]:
    """Why ``model`` in its current mode cannot become a deterministic ONNX graph (empty if it can).

    Every regulariser draws random masks in training mode; in evaluation mode they are off, except
    zoneout, whose expectation ``c_t = z c_{t-1} + (1 - z) c_t`` is exported.
    """
    reasons = []
    if model.training:
        if model.dropout > 0 and model.num_layers > 1:
            reasons.append(f"dropout={model.dropout} between layers is random in training mode")
        if model.recurrent_dropout > 0:
            reasons.append(f"recurrent_dropout={model.recurrent_dropout} draws random masks in training mode")
        if model.zoneout != (0.0, 0.0):
            reasons.append(f"zoneout={model.zoneout} draws random per-step masks in training mode")
        if model.weight_drop > 0:
            reasons.append(f"weight_drop={model.weight_drop} draws random masks in training mode")
    return reasons


def _split_example(example_input: object) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """``x`` or ``(x,)`` or ``(x, (h0, c0))`` or ``(x, None)`` -> (x, states or None)."""
    hx = None
    if isinstance(example_input, (tuple, list)) and not isinstance(example_input, PackedSequence):
        if len(example_input) not in (1, 2):
            raise ValueError(
                f"example_input must be x or (x, (h_0, c_0)); got a {type(example_input).__name__} "
                f"of length {len(example_input)}"
            )
        x = example_input[0]
        hx = example_input[1] if len(example_input) == 2 else None
    else:
        x = example_input
    if isinstance(x, PackedSequence):
        raise ValueError(
            "cannot export a PackedSequence input to ONNX: the graph takes a padded tensor and has no "
            "per-sequence lengths; pass a padded (T, B, I) (or (B, T, I) with batch_first) example"
        )
    if not isinstance(x, Tensor):
        raise TypeError(f"example_input must be a torch.Tensor or (tensor, (h_0, c_0)); got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"example_input must be batched and 3-D ((T, B, I), or (B, T, I) with batch_first); "
            f"got shape {tuple(x.shape)}"
        )
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"export_onnx supports float32 and float64; example_input has dtype {x.dtype}")
    if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
        raise TypeError(f"initial states must be a pair (h_0, c_0); got {type(hx).__name__}")
    return x, (tuple(hx) if hx is not None else None)


def _ir_version(onnx: Any, opset: int) -> int:
    """The oldest IR version that carries ``opset`` (what runtimes of that era read)."""
    for _release, ir, op, *_ in onnx.helper.VERSION_TABLE:
        if op >= opset:
            return int(ir)
    return int(onnx.IR_VERSION)


def export_onnx(
    model: LSTM,
    path: str | os.PathLike[str],
    example_input: Tensor | tuple[Any, ...],
    *,
    opset: int | None = None,
    dynamic: bool = True,
    use_lstm_op: bool | None = None,
    atol: float | None = None,
) -> OnnxExport:
    """Write ``model`` as an ONNX graph to ``path``, check it, and verify it with onnxruntime.

    The graph computes, for every layer and direction, the cell of ``model.spec`` (see
    :mod:`lstmkit.spec`), e.g. for the default spec ``c_t = f_t * c_{t-1} + i_t * g_t``,
    ``h_t = o_t * tanh(c_t)``. Cells the ONNX ``LSTM`` operator computes (default, peepholes,
    CIFG; no projection, no zoneout) become one ``LSTM`` node per layer when ``use_lstm_op`` is
    True, or None (the default) and the model is float32 (onnxruntime's ``LSTM`` has no float64);
    every other spec becomes a ``Scan`` over time per layer-direction.

    Graph inputs: ``input`` (T, B, I) ((B, T, I) with batch_first); ``h0`` (L*D, B, R) and
    ``c0`` (L*D, B, H) only when ``example_input`` carries states (``(x, (h0, c0))``): export
    with ``x`` alone for a graph that starts from zeros. Outputs: ``output`` (T, B, D*R) (batch
    first if the model is), ``h_n`` (L*D, B, R), ``c_n`` (L*D, B, H). With ``dynamic`` the T and B
    axes are symbolic (``time``, ``batch``).

    Raises ValueError when the model cannot be expressed (random regularisers in training mode,
    packed input), ImportError without onnx, RuntimeError when onnxruntime's outputs differ from
    PyTorch's by more than ``atol`` (default 1e-5; layer norm in float32 over long sequences
    rounds differently in any two implementations: export in float64 or pass a larger ``atol``).

    Example::

        >>> model = lstmkit.LSTM(8, 16, num_layers=2, spec="layernorm").eval()
        >>> lstmkit.export_onnx(model, "model.onnx", torch.randn(5, 3, 8)).graph
        'scan'
    """
    if not isinstance(model, LSTM):
        raise TypeError(f"export_onnx expects a lstmkit.LSTM; got {type(model).__name__}")
    if atol is not None and (isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0):
        raise ValueError(f"atol must be a non-negative number or None; got {atol!r}")
    x, hx = _split_example(example_input)
    reasons = unexportable_reasons(model)
    if reasons:
        raise ValueError("cannot export this model to ONNX: " + "; ".join(reasons) + "; call model.eval() first")
    onnx = _require("onnx")
    max_opset = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {max_opset}]; got {opset!r}")
    with torch.no_grad():
        expected_out, (expected_h, expected_c, *_) = model(x, hx)  # also validates shapes and dtypes

    from .onnx_graph import GraphBuilder, lstm_op_expresses

    if use_lstm_op is None:
        use_lstm_op = x.dtype == torch.float32
    op_path = use_lstm_op and lstm_op_expresses(model.spec) and model.proj_size == 0 and model.zoneout == (0.0, 0.0)
    dtype = np.dtype(np.float64 if x.dtype == torch.float64 else np.float32)
    g = GraphBuilder(dtype, [], {})
    graph_inputs, graph_outputs = _build(g, model, x, hx is not None, dynamic, op_path)
    graph = onnx.helper.make_graph(g.nodes, "lstmkit_LSTM", graph_inputs, graph_outputs, initializer=g.initializers)
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        ir_version=_ir_version(onnx, opset),
        producer_name="lstmkit",
        doc_string=f"lstmkit.LSTM {model.extra_repr()}",
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, proto.SerializeToString())
    onnx.checker.check_model(str(path))

    feeds = {"input": x}
    if hx is not None:
        feeds.update(h0=hx[0], c0=hx[1])
    tolerance = TOLERANCE if atol is None else float(atol)
    expected = dict(zip(OUTPUT_NAMES, (expected_out, expected_h, expected_c), strict=True))
    diffs = compare_in_onnxruntime(path, feeds, expected, dict.fromkeys(OUTPUT_NAMES, tolerance))
    return OnnxExport(path, "lstm-op" if op_path else "scan", opset, None if diffs is None else max(diffs.values()))


def _build(
    g: Any, model: LSTM, x: Tensor, with_states: bool, dynamic: bool, op_path: bool
) -> tuple[list[Any], list[Any]]:
    """Add every node to ``g``; returns the graph's input and output value infos."""
    L, D, H, R = model.num_layers, model.num_directions, model.hidden_size, model.state_size
    T, B = (x.shape[1], x.shape[0]) if model.batch_first else (x.shape[0], x.shape[1])
    t_dim, b_dim = ("time", "batch") if dynamic else (T, B)
    seq_shape = [b_dim, t_dim] if model.batch_first else [t_dim, b_dim]
    inputs = [g.value_info("input", [*seq_shape, model.input_size])]
    if with_states:
        inputs += [g.value_info("h0", [L * D, b_dim, R]), g.value_info("c0", [L * D, b_dim, H])]
    outputs = [
        g.value_info("output", [*seq_shape, D * R]),
        g.value_info("h_n", [L * D, b_dim, R]),
        g.value_info("c_n", [L * D, b_dim, H]),
    ]

    h0, c0 = ("h0", "c0") if with_states else (None, None)
    out, h_n, c_n, _ = core_nodes(g, model, "input", h0, c0, op_path)
    for src, name in ((out, "output"), (h_n, "h_n"), (c_n, "c_n")):
        g.nodes.append(_identity(src, name))
    return inputs, outputs


def core_nodes(
    g: Any, model: LSTM, x: str, h0_all: str | None, c0_all: str | None, op_path: bool, g0_all: str | None = None
) -> tuple[str, str, str, str | None]:
    """Add the nodes of ``model`` reading the value ``x`` ((B, T, I) with batch_first, else (T, B, I));
    ``h0_all`` (L*D, B, R) / ``c0_all`` (L*D, B, H) or None for zeros, and under FGR ``g0_all``
    (L*D, B, n*H), the gates before the first step (None: zeros). Returns the names of output (same
    layout as ``x``, D*R wide), h_n (L*D, B, R), c_n (L*D, B, H) and FGR's g_n (L*D, B, n*H) (None
    without FGR); ``op_path``: one ONNX ``LSTM`` node per layer, else a ``Scan`` per layer-direction."""
    from .onnx_graph import lstm_op_layer, scan_layer

    L, D, H, R = model.num_layers, model.num_directions, model.hidden_size, model.state_size
    with_states = h0_all is not None
    seq = g.op("Transpose", [x], perm=[1, 0, 2]) if model.batch_first else x  # (T, B, I)
    zeros: dict[int, str] = {}

    def zeros_of(size: int) -> str:  # (B, size) zeros, B read from the input at run time
        if size not in zeros:
            batch = g.op("Gather", [g.op("Shape", [seq]), g.const("axis1", [1], np.int64)], axis=0)
            shape = g.op("Concat", [batch, g.const("size", [size], np.int64)], axis=0)
            value = _zero_value(g)
            zeros[size] = g.op("ConstantOfShape", [shape], "zeros", value=value)
        return zeros[size]

    h_parts, c_parts, g_parts = [], [], []
    n_gates = len(model.spec.sigmoid_gates) * H
    for k in range(L):
        weights = [base.layer_weights(model, base.direction_suffix(k, d)) for d in range(D)]
        if op_path:
            h0 = c0 = None
            if with_states:
                bounds = [g.const("start", [k * D], np.int64), g.const("end", [(k + 1) * D], np.int64)]
                h0 = g.op("Slice", [h0_all, *bounds])
                c0 = g.op("Slice", [c0_all, *bounds])
            seq, h_n, c_n = lstm_op_layer(g, seq, weights, model.spec, H, h0, c0)
            h_parts.append(h_n)
            c_parts.append(c_n)
            continue
        outs = []
        for d in range(D):
            idx = k * D + d
            index = g.const("index", idx, np.int64)
            if with_states:
                h0, c0 = g.op("Gather", [h0_all, index], axis=0), g.op("Gather", [c0_all, index], axis=0)
            else:
                h0, c0 = zeros_of(R), zeros_of(H)
            gates0 = None
            if model.spec.full_gate_recurrence:
                gates0 = zeros_of(n_gates) if g0_all is None else g.op("Gather", [g0_all, index], axis=0)
            y, h_n, c_n, g_n = scan_layer(
                g, seq, weights[d], model.spec, H, h0, c0, gates0, reverse=d == 1, zoneout=model.zoneout
            )
            outs.append(y)
            axes = g.const("axes", [0], np.int64)
            h_parts.append(g.op("Unsqueeze", [h_n, axes]))
            c_parts.append(g.op("Unsqueeze", [c_n, axes]))
            if g_n is not None:
                g_parts.append(g.op("Unsqueeze", [g_n, axes]))
        seq = g.op("Concat", outs, axis=2) if D == 2 else outs[0]  # (T, B, D*R)

    out = g.op("Transpose", [seq], perm=[1, 0, 2]) if model.batch_first else seq
    h_all, c_all = (g.op("Concat", parts, axis=0) if len(parts) > 1 else parts[0] for parts in (h_parts, c_parts))
    g_all = (g.op("Concat", g_parts, axis=0) if len(g_parts) > 1 else g_parts[0]) if g_parts else None
    return out, h_all, c_all, g_all


def _zero_value(g: Any) -> Any:
    from onnx import helper

    return helper.make_tensor("value", g.elem_type, [1], [0.0])


def _identity(src: str, dst: str) -> Any:
    from onnx import helper

    return helper.make_node("Identity", [src], [dst])


def compare_in_onnxruntime(
    path: Path, feeds: dict[str, Tensor], expected: dict[str, Tensor], tolerances: dict[str, float]
) -> dict[str, float] | None:
    """Run ``path`` in onnxruntime on ``feeds`` and compare each expected output with PyTorch's
    within its tolerance; returns each output's largest difference, None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(list(expected), {k: v.detach().cpu().numpy() for k, v in feeds.items()})
    except Exception as err:  # onnxruntime raises its own exception types
        raise RuntimeError(f"onnxruntime could not run {path}: {err}") from err
    diffs: dict[str, float] = {}
    for (name, ours), theirs in zip(expected.items(), got, strict=True):
        ours_np = ours.detach().cpu().numpy()
        if ours_np.shape != theirs.shape:
            raise RuntimeError(f"onnxruntime's {name} has shape {theirs.shape}, PyTorch's {ours_np.shape} ({path})")
        diff = float(np.max(np.abs(ours_np - theirs))) if ours_np.size else 0.0
        tolerance = tolerances[name]
        if not diff <= tolerance:
            hint = " (float32 rounding? export in float64 or pass a larger atol)" if ours.dtype == torch.float32 else ""
            raise RuntimeError(
                f"onnxruntime's {name} differs from PyTorch's by {diff:.3g} (more than atol={tolerance}) "
                f"in {path}{hint}"
            )
        diffs[name] = diff
    return diffs
