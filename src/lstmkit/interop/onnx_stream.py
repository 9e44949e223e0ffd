"""A trained sequence model as a streaming ONNX graph: K frames and the state in, per-frame predictions
and the state out; float32, or int8 through onnxruntime's dynamic quantisation. Checked in onnxruntime
chunk by chunk against one PyTorch call over the whole sequence.

The model is duck-typed as in :mod:`.onnx_model` (``.embedding``, ``.lstm``, ``.head``) and must have
``forward_state`` (:meth:`lstmkit.train.model.SequenceModel.forward_state`), the PyTorch reference.
Graph (B batch, K frames per call, dynamic; L layers, R = P or H)::

    inputs   tokens (B, K) int64 or input (B, K, I), h0 (L, B, R), c0 (L, B, H) [, g0 (L, B, n*H)]
    outputs  prediction (B, K, O) (the head at every frame), h_n (L, B, R), c_n (L, B, H) [, g_n (L, B, n*H)]

Feed each call's ``h_n, c_n`` back as the next call's ``h0, c0`` (zeros to start a stream). Under FGR
(full gate recurrence) the state has a third part, the last step's sigmoid gates (n of i, f, o): ``g0``
in, ``g_n`` out, the same ``g`` as :class:`lstmkit.LSTM`'s state tuple.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..fileio import atomic_write
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, _ir_version, _require, core_nodes


class OnnxStreamExport(NamedTuple):
    """What :func:`export_stream_onnx` wrote: differences to the PyTorch model the graph stands for
    (:func:`lstmkit.quantize`'s for int8) and to the float model, and the file's bytes."""

    path: Path
    graph: str
    max_abs_diff: float
    float_diff: float
    size: int


def _build(model: Any, opset: int, op_path: bool) -> bytes:
    from onnx import TensorProto, helper

    from .onnx_graph import GraphBuilder

    onnx = _require("onnx")
    core = model.lstm
    L, H, R = core.num_layers, core.hidden_size, core.state_size
    g = GraphBuilder(np.dtype(np.float32), [], {})
    if getattr(model, "embedding", None) is not None:
        first = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])
        x = g.op("Gather", [g.const("embedding", model.embedding.weight.detach().cpu().numpy()), "tokens"], axis=0)
    else:
        first = g.value_info("input", ["batch", "time", core.input_size])
        x = "input"
    inputs = [first, g.value_info("h0", [L, "batch", R]), g.value_info("c0", [L, "batch", H])]
    fgr = core.spec.full_gate_recurrence
    n = len(core.spec.sigmoid_gates) * H
    if fgr:
        inputs.append(g.value_info("g0", [L, "batch", n]))
    out, h_n, c_n, g_n = core_nodes(g, core, x, "h0", "c0", op_path, "g0" if fgr else None)  # out (B, K, R)
    head_w = g.const("head_W_T", model.head.weight.detach().cpu().numpy().T)
    pred = g.op("Add", [g.op("MatMul", [out, head_w]), g.const("head_b", model.head.bias.detach().cpu().numpy())])
    named = [(pred, "prediction"), (h_n, "h_n"), (c_n, "c_n")] + ([(g_n, "g_n")] if g_n is not None else [])
    for src, name in named:
        g.nodes.append(helper.make_node("Identity", [src], [name]))
    O = model.head.out_features
    outputs = [
        g.value_info("prediction", ["batch", "time", O]),
        g.value_info("h_n", [L, "batch", R]),
        g.value_info("c_n", [L, "batch", H]),
    ]
    if fgr:
        outputs.append(g.value_info("g_n", [L, "batch", n]))
    graph = helper.make_graph(g.nodes, "lstmkit_stream", inputs, outputs, initializer=g.initializers)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=_ir_version(onnx, opset),
        producer_name="lstmkit",
        doc_string="lstmkit streaming model: feed h_n, c_n (and FGR's g_n) back as h0, c0 (g0); prediction is the "
        "head at every frame",
    )
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def int8_graph(data: bytes) -> bytes:
    """onnxruntime's dynamic quantisation: int8 weights per output channel, dynamic uint8 activations."""
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        options = {"EnableSubgraph": True}  # the MatMuls inside Scan bodies too
        logging.disable(logging.WARNING)  # its advice to pre-process (shape inference) is for vision models
        try:
            quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8, extra_options=options)
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()


STATE_NAMES = (("h0", "h_n"), ("c0", "c_n"), ("g0", "g_n"))
"""The graph's state inputs and outputs, in the order of the model's state tuple (g: FGR only)."""


def stream_in_onnxruntime(data: bytes, inputs: Tensor, state: tuple[Tensor, ...], K: int) -> list[Tensor]:
    """Run the streaming graph ``data`` on ``inputs`` (B, n*K, ·), K frames per call, carrying the state
    ((h, c), or (h, c, g) under FGR); returns the predictions joined over time (B, n*K, O) and the final
    state."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0].name
    names = STATE_NAMES[: len(state)]
    carried = [t.numpy() for t in state]
    preds = []
    for start in range(0, inputs.shape[1], K):
        feeds = {
            first: inputs[:, start : start + K].numpy(),
            **{i: v for (i, _), v in zip(names, carried, strict=True)},
        }
        pred, *carried = session.run(["prediction", *(o for _, o in names)], feeds)
        preds.append(pred)
    return [torch.from_numpy(np.concatenate(preds, axis=1)), *(torch.from_numpy(v) for v in carried)]


def export_stream_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    inputs: Tensor,
    *,
    chunk: int = 1,
    int8: bool = False,
    opset: int | None = None,
    atol: float | None = None,
) -> OnnxStreamExport:
    """Write ``model`` as a streaming ONNX graph (see the module docstring) after checking it in
    onnxruntime: ``inputs`` (B, T) tokens or (B, T, I) floats, the task's own test sequences, fed
    ``chunk`` frames per call (the first ``(T // chunk) * chunk`` steps) against one PyTorch
    ``forward_state`` call; nothing is written when a check fails. Raises ValueError for a model that
    cannot stream (bidirectional, not an lstmkit.LSTM core, training mode with random regularisers),
    TypeError for a dtype other than float32, ImportError without onnx/onnxruntime, RuntimeError when
    onnxruntime disagrees by more than ``atol`` x max(1, max |prediction|) (default 1e-5; for int8
    :data:`lstmkit.interop.edge.INT8_TOLERANCE`).
    """
    from .edge import check_exportable
    from .onnx_graph import lstm_op_expresses
    from .quantize import quantize

    core = check_exportable(model)
    if core.bidirectional:
        raise ValueError("a bidirectional model cannot stream (the reverse direction needs the whole sequence)")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int; got {chunk!r}")
    if inputs.dim() not in (2, 3) or inputs.shape[1] < chunk:
        raise ValueError(f"inputs must be (B, T) or (B, T, I) with T >= chunk={chunk}; got {tuple(inputs.shape)}")
    onnx = _require("onnx")
    opset = DEFAULT_OPSET if opset is None else opset
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version()
    ):
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}]; got {opset!r}")
    model = model.eval()
    op_path = lstm_op_expresses(core.spec) and core.proj_size == 0 and core.zoneout == (0.0, 0.0)
    data = _build(model, opset, op_path)
    if int8:
        data = int8_graph(data)
    n = (inputs.shape[1] // chunk) * chunk
    seq = inputs[:, :n].contiguous()
    L, B = core.num_layers, seq.shape[0]
    sizes = [core.state_size, core.hidden_size]
    if core.spec.full_gate_recurrence:
        sizes.append(len(core.spec.sigmoid_gates) * core.hidden_size)
    zeros = tuple(torch.zeros(L, B, size) for size in sizes)
    with torch.no_grad():
        pred, state = model.forward_state(seq, zeros)  # type: ignore[operator]
        want_float = [pred, *state]
        if int8:
            pred, state = quantize(model).forward_state(seq, zeros)  # type: ignore[operator]
        want = [pred, *state]
    got = stream_in_onnxruntime(data, seq, zeros, chunk)
    from .edge import checked_diffs

    diff, float_diff = checked_diffs(got, want, want_float, int8=int8, atol=atol, runtime="onnxruntime")
    path = Path(path)
    atomic_write(path, data)
    return OnnxStreamExport(path, "lstm-op" if op_path else "scan", diff, float_diff, len(data))
