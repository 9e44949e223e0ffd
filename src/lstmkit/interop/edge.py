"""A whole trained sequence model as one ExecuTorch program (``.pte``), float32 or int8, checked in
``executorch.runtime`` against PyTorch.

``executorch`` is an optional extra (``pip install 'lstmkit[edge]'``), imported only inside these
functions. The model is duck-typed as in :mod:`.onnx_model`: ``.embedding`` (or None), ``.lstm`` (an
:class:`~lstmkit.LSTM`, batch first), ``.head`` and ``.config.readout``; streaming uses its
``forward_state(inputs, state) -> (per-step predictions, state)``. Shapes (B batch, T time, K frames per
call, I input, O outputs, C raw rows, F features):

    program                     inputs                                  outputs
    whole                       tokens (B, T) int64 or input (B, T, I)  prediction (B, O) or (B, T, O)
    whole, forecaster           values (B, C, F) float64                prediction (B, H), forecast (B, H)
    streaming (K frames)        frames (B, K) or (B, K, I), *state      prediction (B, K, O), *state

The state is the core's own tuple ((h, c), or (h, c, g) under FGR), each (L, B, ·). An ExecuTorch
program has static shapes: B, T (or K) are those of the example. The LSTM's recurrence reaches the
program as T (or K) unrolled steps of standard ops (:mod:`lstmkit.kernels.compiled.lowering`),
delegated to XNNPACK. With ``int8``, XNNPACK's quantiser makes every linear product (input
projections, each step's recurrent product, the head) int8 per output channel with dynamic int8
activations; it is checked against :func:`lstmkit.quantize` of the same model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..fileio import atomic_write
from ..modules.lstm import LSTM
from .onnx_export import unexportable_reasons
from .onnx_model import SeriesNormalization

TOLERANCE = 1e-5
"""Largest |runtime - PyTorch| accepted for a float32 program (ExecuTorch, onnxruntime), times
max(1, max |prediction|)."""
INT8_TOLERANCE = 0.05
"""Largest |runtime int8 - lstmkit.quantize| accepted, relative to max(1, max |prediction|): two int8
schemes (XNNPACK and onnxruntime round activations per tensor, XNNPACK each step's h too; lstmkit per row,
h kept float)."""


class EdgeExport(NamedTuple):
    """What :func:`export_model_executorch` wrote: ``max_abs_diff`` is the largest |ExecuTorch - PyTorch|
    on the example (against the int8 PyTorch model for ``int8``); ``float_diff`` the one against the float
    model; ``size`` the file's bytes."""

    path: Path
    max_abs_diff: float
    float_diff: float
    size: int


def _require_executorch() -> Any:
    try:
        import executorch.exir as exir
    except ImportError:
        raise ImportError("ExecuTorch export needs the executorch package: pip install 'lstmkit[edge]'") from None
    return exir


class WholeModel(nn.Module):
    """``model`` on full-length sequences (no ``lengths``), with a forecaster's normalisation when given:
    raw rows (B, C, F) float64 in, (prediction, forecast) out, as :class:`.onnx_model.SeriesNormalization`."""

    def __init__(self, model: nn.Module, normalization: SeriesNormalization | None = None) -> None:
        super().__init__()
        self.model, self.norm = model, normalization

    def predict(self, inputs: Tensor) -> Tensor:
        """The model's prediction for full-length sequences: embedding, core, head by the readout."""
        m: Any = self.model
        x = inputs if m.embedding is None else m.embedding(inputs)  # (B, T, I)
        out, state = m.lstm(x)  # (B, T, D*R)
        if m.config.readout == "all":
            return m.head(out)
        if m.lstm.bidirectional:  # forward direction at T-1, reverse at 0: the last layer's h_n
            return m.head(state[0][-2:].permute(1, 0, 2).reshape(x.shape[0], -1))
        return m.head(out[:, -1])

    def forward(self, inputs: Tensor) -> Any:
        if self.norm is None:
            return self.predict(inputs)
        n = self.norm
        y = inputs[:, :, 0]  # (B, C) target in the CSV's units
        if n.normalize == "diff":
            t = (y[:, 1:] - y[:, :-1]) / n.scale
        elif n.normalize == "level":
            t = (y - y[:, -1:]) / n.scale
        else:
            t = (y - n.mean[0]) / n.scale
        parts = [t.unsqueeze(2)]
        if inputs.shape[2] > 1:
            rows = inputs[:, 1:, 1:] if n.normalize == "diff" else inputs[:, :, 1:]
            mean = torch.tensor(n.mean[1:], dtype=inputs.dtype)
            std = torch.tensor(n.std[1:], dtype=inputs.dtype)
            parts.append((rows - mean) / std)
        weight = getattr(self.model.lstm, "weight_ih_l0", None)  # an int8 core computes in float32
        dtype = weight.dtype if isinstance(weight, Tensor) else torch.float32
        pred = self.predict(torch.cat(parts, dim=2).to(dtype))
        z = pred.to(inputs.dtype) * n.scale
        if n.normalize == "global":
            return pred, z + n.mean[0]
        return pred, y[:, -1:] + (z.cumsum(1) if n.normalize == "diff" else z)


class StreamingModel(nn.Module):
    """``model.forward_state`` with the state as inputs and outputs: (frames, *state) -> (prediction, *state)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        pred, new_state = self.model.forward_state(frames, tuple(state))  # type: ignore[operator]
        return (pred, *new_state)


def lower(module: nn.Module, example: tuple[Tensor, ...], *, int8: bool = False) -> bytes:
    """``module`` (evaluation mode) exported at the example's static shapes and lowered to XNNPACK:
    the bytes of a ``.pte``. With ``int8``: XNNPACK's quantiser, dynamic int8 activations and int8
    weights per output channel on every linear product, the recurrence unrolled first."""
    exir = _require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    program = torch.export.export(module, example)
    if int8:
        import executorch.kernels.quantized  # noqa: F401  (out variants of the quantised ops left outside XNNPACK)
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from ..kernels.compiled.lowering import decomposition_table

        quantizer = XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
        )
        graph = prepare_pt2e(program.run_decompositions(decomposition_table()).module(), quantizer)
        graph(*example)
        program = torch.export.export(convert_pt2e(graph), example)
    edge = exir.to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return bytes(edge.to_executorch().buffer)


class LoadedProgram:
    """A ``.pte``'s ``forward`` loaded in ``executorch.runtime``: ``execute(inputs) -> outputs``. It keeps the
    program's bytes and the loaded program alive as long as the method (the runtime reads them in place)."""

    def __init__(self, program: bytes) -> None:
        _require_executorch()
        from executorch.runtime import Runtime

        self.data = bytes(program)
        self.program = Runtime.get().load_program(self.data)
        self.method = self.program.load_method("forward")

    def execute(self, inputs: list[Tensor]) -> list[Tensor]:
        return list(self.method.execute(inputs))


def load_method(program: bytes) -> LoadedProgram:
    """:class:`LoadedProgram` of ``program`` (the bytes of a ``.pte``)."""
    return LoadedProgram(program)


def run_program(program: bytes, inputs: list[Tensor]) -> list[Tensor]:
    """Run a ``.pte``'s ``forward`` once in ``executorch.runtime``; returns its outputs."""
    return list(load_method(program).execute(inputs))


def check_exportable(model: nn.Module) -> LSTM:
    """The model's core, or a ValueError/TypeError naming what stops an ExecuTorch export."""
    core = getattr(model, "lstm", None)
    if not isinstance(core, LSTM) or not core.batch_first:
        raise ValueError(
            f"only batch-first lstmkit.LSTM cores export to ExecuTorch; this core is {type(core).__name__}"
        )
    reasons = unexportable_reasons(core)
    if model.training and (reasons or any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())):
        raise ValueError("cannot export a model in training mode (random regularisers): call model.eval() first")
    dtype = core.weight_ih_l0.dtype
    if dtype != torch.float32:
        raise TypeError(f"ExecuTorch's XNNPACK backend runs float32; this model is {dtype}: call model.float() first")
    return core


def checked_diffs(
    got: list[Tensor], want: list[Tensor], want_float: list[Tensor], *, int8: bool, atol: float | None, runtime: str
) -> tuple[float, float]:
    """(max |got - want|, max |got - want_float|) of a runtime's outputs against PyTorch's (``want`` is the
    int8 model's for ``int8``); a RuntimeError naming ``runtime`` when the first exceeds ``atol`` (default
    :data:`TOLERANCE`, :data:`INT8_TOLERANCE` for ``int8``) x max(1, max |prediction|): float32 rounding
    grows with the outputs' size (logits of ~10 differ in the 6th digit)."""
    diff, float_diff = max_abs_diff(got, want), max_abs_diff(got, want_float)
    default = INT8_TOLERANCE if int8 else TOLERANCE
    limit = (default if atol is None else float(atol)) * max(1.0, float(want[0].abs().max()))
    if not diff <= limit:
        raise RuntimeError(
            f"{runtime}'s outputs differ from PyTorch's by {diff:.3g} (more than {limit:.3g}); nothing written"
        )
    return diff, float_diff


def max_abs_diff(got: list[Tensor], want: list[Tensor]) -> float:
    """The largest |got - want| over matching tensors (a RuntimeError when counts or shapes differ)."""
    if len(got) != len(want):
        raise RuntimeError(f"the program returned {len(got)} outputs; PyTorch {len(want)}")
    diffs = []
    for a, b in zip(got, want, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            raise RuntimeError(f"the program returned shape {tuple(a.shape)}; PyTorch {tuple(b.shape)}")
        diffs.append(float((a.double() - b.double()).abs().max()) if a.numel() else 0.0)
    return max(diffs)


def _stream(run: Any, inputs: Tensor, state: tuple[Tensor, ...], K: int) -> list[Tensor]:
    """Feed ``inputs`` (B, n*K, ·) K frames per call, carrying the state; returns the predictions
    joined over time and the final state."""
    preds = []
    for start in range(0, inputs.shape[1], K):
        out = run([inputs[:, start : start + K].contiguous(), *state])
        preds.append(out[0])
        state = tuple(out[1:])
    return [torch.cat(preds, dim=1), *state]


def export_model_executorch(
    model: nn.Module,
    path: str | os.PathLike[str],
    example: Tensor,
    *,
    streaming: bool = False,
    chunk: int = 1,
    int8: bool = False,
    normalization: SeriesNormalization | None = None,
    expected: dict[str, Tensor] | None = None,
    atol: float | None = None,
) -> EdgeExport:
    """Write ``model`` as a ``.pte`` (see the module docstring) after running it in ExecuTorch on
    ``example`` and comparing with PyTorch; nothing is written when a check fails.

    ``example``: tokens (B, T) int64, inputs (B, T, I) float32, or a forecaster's raw rows (B, C, F)
    float64 (with ``normalization`` and ``expected``, PyTorch's ``prediction`` and ``forecast`` from the
    task's own pipeline). With ``streaming`` the program takes ``chunk`` = K frames and the state; it is
    checked by feeding the first ``(T // K) * K`` steps K at a time against one PyTorch call. Raises
    ValueError / TypeError for what cannot be exported, ImportError without executorch, RuntimeError when
    the program disagrees by more than ``atol`` x max(1, max |prediction|) (default :data:`TOLERANCE`,
    :data:`INT8_TOLERANCE` for ``int8``).
    """
    check_exportable(model)
    if not isinstance(example, Tensor) or example.dim() not in (2, 3):
        raise ValueError(f"example must be (B, T) tokens or (B, T, I) inputs, batched; got {type(example).__name__}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int; got {chunk!r}")
    from .quantize import quantize

    model = model.eval()
    reference = quantize(model) if int8 else model
    if streaming:
        if normalization is not None:
            raise ValueError(
                "a forecaster maps a window of raw rows to a forecast and does not stream; export it whole"
            )
        if example.shape[1] < chunk:
            raise ValueError(
                f"streaming checks need test sequences of at least --chunk={chunk} steps; got {example.shape[1]}"
            )
        n = (example.shape[1] // chunk) * chunk
        inputs = example[:, :n]
        with torch.no_grad():
            _, state0 = model.forward_state(inputs[:, :1])  # type: ignore[operator]
            zeros = tuple(torch.zeros_like(t) for t in state0)
            want_float = list(_flat(model.forward_state(inputs, zeros)))  # type: ignore[operator]
            want = list(_flat(reference.forward_state(inputs, zeros))) if int8 else want_float  # type: ignore[operator]
        module: nn.Module = StreamingModel(model).eval()
        buffer = lower(module, (inputs[:, :chunk].contiguous(), *zeros), int8=int8)
        method = load_method(buffer)
        got = _stream(method.execute, inputs, zeros, chunk)
    else:
        module = WholeModel(model, normalization).eval()
        with torch.no_grad():
            want_float = list(_flat(expected.values() if expected else module(example)))
            want = list(_flat(WholeModel(reference, normalization)(example))) if int8 else want_float
        buffer = lower(module, (example,), int8=int8)
        got = run_program(buffer, [example])
    diff, float_diff = checked_diffs(got, want, want_float, int8=int8, atol=atol, runtime="ExecuTorch")
    path = Path(path)
    atomic_write(path, buffer)
    return EdgeExport(path, diff, float_diff, len(buffer))


def _flat(out: Any) -> tuple[Tensor, ...]:
    """(prediction, (s1, s2, ...)) or a tensor or tensors -> a flat tuple of tensors."""
    if isinstance(out, Tensor):
        return (out,)
    flat: list[Tensor] = []
    for item in out:
        flat.extend(_flat(item))
    return tuple(flat)
