"""Export a whole trained sequence model to ONNX: embedding, LSTM core, head and, for a forecaster,
the normalisation of its inputs and outputs; verified with onnxruntime against PyTorch.

The model is duck-typed (this layer does not import :mod:`lstmkit.train`): it needs
``.embedding`` (``nn.Embedding`` or None), ``.lstm`` (an :class:`~lstmkit.LSTM`, batch first),
``.head`` (``nn.Linear``) and ``.config.readout`` (``"last"`` or ``"all"``), as
:class:`lstmkit.train.model.SequenceModel` has. Shapes (B batch, T time, I input, V vocabulary,
O outputs, C raw rows, F features, H horizon):

    graph input                              graph output
    tokens (B, T) int64      (embedding)     prediction (B, O) ("last") or (B, T, O) ("all")
    input  (B, T, I)         (features)      prediction as above
    values (B, C, F) float64 (forecaster)    prediction (B, H) normalised, forecast (B, H) float64

The graph has no ``lengths`` input: every sequence in a batch has the full length T (pad
nothing). For a forecaster, ``values`` are the last C rows of the features in the CSV's units,
target first, and ``forecast`` is in the CSV's units: the graph computes what
:meth:`lstmkit.tasks.ForecastTask.encode` and ``decode`` compute (see :class:`SeriesNormalization`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..fileio import atomic_write
from ..modules.lstm import LSTM
from .onnx_export import (
    DEFAULT_OPSET,
    MIN_OPSET,
    TOLERANCE,
    OnnxExport,
    _ir_version,
    _require,
    compare_in_onnxruntime,
    core_nodes,
)


@dataclass(frozen=True)
class SeriesNormalization:
    """How a forecaster's raw rows become model inputs and its outputs become forecasts.

    With ``y`` the target (column 0), ``y_e`` its last raw value, ``s = scale``::

        level   x = (y - y_e) / s,           forecast = y_e + s * z
        diff    x = (y_t - y_{t-1}) / s,     forecast = y_e + s * cumsum(z)     (C = window + 1)
        global  x = (y - mean[0]) / s,       forecast = mean[0] + s * z
        other features: (value - mean) / std
    """

    normalize: str  # "level", "diff" or "global"
    mean: tuple[float, ...]  # (F,) training mean of each feature (target first)
    std: tuple[float, ...]  # (F,) training std of each feature
    scale: float  # the target's scale s


def export_model_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    example: Tensor,
    *,
    normalization: SeriesNormalization | None = None,
    expected: dict[str, Tensor] | None = None,
    opset: int | None = None,
    atol: float | None = None,
    metadata: dict[str, str] | None = None,
    int8: bool = False,
) -> OnnxExport:
    """Write the whole ``model`` to ``path`` (see the module docstring), check it with
    ``onnx.checker`` and compare onnxruntime with PyTorch on ``example``; nothing is written (and a file
    already at ``path`` is kept) when a check fails.

    With ``int8`` the graph goes through onnxruntime's dynamic quantisation (int8 weights per output
    channel, dynamic uint8 activations) and is compared with :func:`lstmkit.quantize` of the model
    within :data:`lstmkit.interop.edge.INT8_TOLERANCE` x max(1, max |prediction|) (``atol`` replaces
    that factor); the difference to the float model is returned as ``float_diff``.

    ``example``: tokens (B, T) int64, inputs (B, T, I), or for a forecaster (``normalization``
    given) raw rows (B, C, F) float64. ``expected`` maps output names to PyTorch's values on the
    example: computed here when None, required for a forecaster (``prediction`` and ``forecast``
    from the task's own pipeline, e.g. :meth:`lstmkit.tasks.ForecastTask.windows` and ``decode``).
    ``prediction`` must agree within ``atol`` (default 1e-5),
    ``forecast`` within ``atol * scale``. Axes B and T (C) are dynamic. Raises ValueError for a
    core that is not an :class:`~lstmkit.LSTM` or a model in training mode with random
    regularisers, RuntimeError when onnxruntime disagrees. ``metadata`` goes into the file's
    ``metadata_props`` (e.g. the feature names and the window a forecaster needs).

    Example::

        >>> export_model_onnx(model, "charlm.onnx", task.test_set().inputs[:4]).max_abs_diff   # doctest: +SKIP
        3.1e-07
    """
    core = getattr(model, "lstm", None)
    if not isinstance(core, LSTM) or not core.batch_first:
        raise ValueError(f"only batch-first lstmkit.LSTM cores export to ONNX; this core is {type(core).__name__}")
    if model.training:
        raise ValueError("export the model in evaluation mode: call model.eval() first")
    onnx = _require("onnx")
    opset = DEFAULT_OPSET if opset is None else opset
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {top}]; got {opset!r}")
    if expected is None:
        if normalization is not None:
            raise ValueError("a forecaster's export needs `expected` (the task's own prediction and forecast)")
        expected = reference_outputs(model, example)
    from .onnx_graph import GraphBuilder, lstm_op_expresses

    dtype = core.weight_ih_l0.dtype
    op_path = dtype == torch.float32 and lstm_op_expresses(core.spec) and core.proj_size == 0
    op_path = op_path and core.zoneout == (0.0, 0.0)
    g = GraphBuilder(np.dtype(np.float64 if dtype == torch.float64 else np.float32), [], {})
    inputs, outputs = _graph(g, model, core, example, normalization, op_path)
    graph = onnx.helper.make_graph(g.nodes, "lstmkit_model", inputs, outputs, initializer=g.initializers)
    config: Any = model.config  # duck-typed: a SequenceModel's ModelConfig
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        ir_version=_ir_version(onnx, opset),
        producer_name="lstmkit",
        doc_string=f"lstmkit sequence model: readout {config.readout}; core lstmkit.LSTM {core.extra_repr()}",
    )
    onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in (metadata or {}).items()})
    data = proto.SerializeToString()
    feeds = {inputs[0].name: example}
    scale = max(1.0, normalization.scale if normalization else 1.0)
    float_diff = None
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        checked = Path(tmp) / path.name  # checked here first: a failing export leaves no file behind
        if int8:
            from .edge import INT8_TOLERANCE
            from .onnx_stream import int8_graph

            data = int8_graph(data)
            want, base = _int8_reference(model, example, normalization), INT8_TOLERANCE if atol is None else atol
            base *= max(1.0, float(want["prediction"].abs().max()))
        else:
            want, base = expected, TOLERANCE if atol is None else float(atol)
        checked.write_bytes(data)
        onnx.checker.check_model(str(checked))
        diff = verify(checked, feeds, want, {"prediction": base, "forecast": base * scale})
        if int8:
            loose = {name: float("inf") for name in expected}
            diffs = compare_in_onnxruntime(checked, feeds, expected, loose)
            float_diff = None if diffs is None else max(diffs.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return OnnxExport(path, "lstm-op" if op_path else "scan", opset, diff, float_diff, len(data))


def _int8_reference(model: Any, example: Tensor, normalization: SeriesNormalization | None) -> dict[str, Tensor]:
    """What the int8 graph stands for: :func:`lstmkit.quantize`'s model on ``example`` (with the
    forecaster's normalisation when given), named as the graph's outputs."""
    from .edge import WholeModel
    from .quantize import quantize

    whole = WholeModel(quantize(model), normalization).eval()
    with torch.no_grad():
        out = whole(example)
    if normalization is None:
        return {"prediction": out}
    return {"prediction": out[0], "forecast": out[1]}


def reference_outputs(model: Any, example: Tensor) -> dict[str, Tensor]:
    """PyTorch's ``prediction`` on ``example`` (full-length sequences), named as the graph's output."""
    with torch.no_grad():
        lengths = torch.full((example.shape[0],), example.shape[1], dtype=torch.int64)
        return {"prediction": model(example, lengths)}


def _graph(g: Any, model: Any, core: LSTM, example: Tensor, norm: SeriesNormalization | None, op_path: bool) -> Any:
    """Add the nodes; returns the graph's input and output value infos."""
    from onnx import TensorProto, helper

    readout = model.config.readout
    O = model.head.out_features
    if getattr(model, "embedding", None) is not None:
        first = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])
        x = g.op("Gather", [g.const("embedding", model.embedding.weight.detach().cpu().numpy()), "tokens"], axis=0)
    elif norm is not None:
        F = example.shape[-1]
        first = helper.make_tensor_value_info("values", TensorProto.DOUBLE, ["batch", "rows", F])
        x = _encode_nodes(g, norm, F)
    else:
        first = g.value_info("input", ["batch", "time", core.input_size])
        x = "input"
    out, h_n, _, _ = core_nodes(g, core, x, None, None, op_path)  # out (B, T, D*R)
    if readout == "all":
        pred_shape: list[Any] = ["batch", "time", O]
    else:
        pred_shape = ["batch", O]
        if core.bidirectional:  # forward at T-1 and reverse at 0: the last layer's h_n
            last2 = g.op("Slice", [h_n, g.const("s", [-2], np.int64), g.const("e", [2**62], np.int64)])
            out = g.op("Reshape", [g.op("Transpose", [last2], perm=[1, 0, 2]), g.const("sh", [0, -1], np.int64)])
        else:
            out = g.op("Gather", [out, g.const("t_last", -1, np.int64)], axis=1)  # (B, D*R)
    head_w = g.const("head_W_T", model.head.weight.detach().cpu().numpy().T)
    pred = g.op("Add", [g.op("MatMul", [out, head_w]), g.const("head_b", model.head.bias.detach().cpu().numpy())])
    g.nodes.append(helper.make_node("Identity", [pred], ["prediction"]))
    outputs = [g.value_info("prediction", pred_shape)]
    if norm is not None:
        g.nodes.append(helper.make_node("Identity", [_decode_nodes(g, norm, pred)], ["forecast"]))
        outputs.append(helper.make_tensor_value_info("forecast", TensorProto.DOUBLE, ["batch", O]))
    return [first], outputs


def _f64(g: Any, hint: str, value: object) -> str:
    return g.const(hint, value, np.float64)


def _encode_nodes(g: Any, norm: SeriesNormalization, F: int) -> str:
    """``values`` (B, C, F) float64 -> model input (B, T, F) in the model's dtype."""
    i64 = np.int64
    y = g.op("Gather", ["values", g.const("col0", 0, i64)], axis=2)  # (B, C)
    scale = _f64(g, "scale", norm.scale)
    if norm.normalize == "diff":
        ax1 = g.const("ax1", [1], i64)
        later = g.op("Slice", [y, g.const("s1", [1], i64), g.const("end", [2**62], i64), ax1])
        earlier = g.op("Slice", [y, g.const("s0", [0], i64), g.const("e1", [-1], i64), ax1])
        t = g.op("Div", [g.op("Sub", [later, earlier]), scale])
    elif norm.normalize == "level":
        last = g.op("Slice", [y, g.const("sl", [-1], i64), g.const("end", [2**62], i64), g.const("ax1", [1], i64)])
        t = g.op("Div", [g.op("Sub", [y, last]), scale])
    else:
        t = g.op("Div", [g.op("Sub", [y, _f64(g, "mean0", norm.mean[0])]), scale])
    parts = [g.op("Unsqueeze", [t, g.const("ax2", [2], i64)])]  # (B, T, 1)
    if F > 1:
        rows = [1 if norm.normalize == "diff" else 0, 2**62]
        others = g.op(
            "Slice",
            ["values", g.const("st", [rows[0], 1], i64), g.const("en", [rows[1], F], i64), g.const("ax", [1, 2], i64)],
        )
        mean, std = _f64(g, "mean", np.asarray(norm.mean[1:])), _f64(g, "std", np.asarray(norm.std[1:]))
        parts.append(g.op("Div", [g.op("Sub", [others, mean]), std]))
    x = g.op("Concat", parts, axis=2) if len(parts) > 1 else parts[0]
    from onnx import TensorProto

    return g.op("Cast", [x], to=int(g.elem_type)) if g.elem_type != TensorProto.DOUBLE else x


def _decode_nodes(g: Any, norm: SeriesNormalization, pred: str) -> str:
    """prediction (B, H) -> forecast (B, H) float64."""
    from onnx import TensorProto

    i64 = np.int64
    z = g.op("Mul", [g.op("Cast", [pred], to=int(TensorProto.DOUBLE)), _f64(g, "scale", norm.scale)])
    if norm.normalize == "global":
        return g.op("Add", [z, _f64(g, "mean0", norm.mean[0])])
    y = g.op("Gather", ["values", g.const("col0", 0, i64)], axis=2)  # (B, C)
    last = g.op("Slice", [y, g.const("sl", [-1], i64), g.const("end", [2**62], i64), g.const("ax1", [1], i64)])
    if norm.normalize == "diff":
        z = g.op("CumSum", [z, g.const("axis", 1, i64)])
    return g.op("Add", [last, z])


def verify(
    path: Path, feeds: dict[str, Tensor], expected: dict[str, Tensor], tolerances: dict[str, float]
) -> float | None:
    """Run ``path`` in onnxruntime on ``feeds`` and compare each expected output within its
    tolerance; returns the largest difference in ``prediction``, None without onnxruntime."""
    diffs = compare_in_onnxruntime(path, feeds, expected, {name: tolerances.get(name, TOLERANCE) for name in expected})
    return None if diffs is None else diffs.get("prediction", 0.0)
