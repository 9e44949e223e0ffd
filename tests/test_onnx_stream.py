"""The streaming ONNX graph for every preset (plus projection and two layers): K frames and the state in,
the predictions and the state out, run in onnxruntime chunk by chunk and compared here with one PyTorch
``forward_state`` call over the whole sequence (the state's every part included: FGR's carried gates g).
int8 graphs against ``lstmkit.quantize`` of the same model within the documented tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit import PRESETS
from lstmkit.interop.edge import INT8_TOLERANCE
from lstmkit.interop.onnx_stream import export_stream_onnx, stream_in_onnxruntime
from lstmkit.interop.quantize import quantize
from lstmkit.train.config import ModelConfig
from lstmkit.train.model import build_model

ort = pytest.importorskip("onnxruntime", reason="the streaming graph runs in onnxruntime (the edge extra)")
pytest.importorskip("onnx", reason="the streaming graph is written with onnx (the edge extra)")

SPECS = sorted({spec: name for name, spec in PRESETS.items()}.values())
CASES = [(name, {}) for name in SPECS] + [
    ("vanilla", {"proj_size": 3}),
    ("fgr", {"layers": 2}),
    ("cifg", {"layers": 2}),
]


def _model(spec: str, **kw: object) -> torch.nn.Module:
    fields = {k: v for k, v in PRESETS[spec].to_dict().items() if v != PRESETS["vanilla"].to_dict()[k]}
    config = ModelConfig(input_size=3, output_size=2, readout="all", hidden=5, spec=fields, **kw)  # type: ignore[arg-type]
    return build_model(config, seed=11).eval()


def _zeros(model: torch.nn.Module, B: int) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        _, state = model.forward_state(torch.zeros(B, 1, 3))
    return tuple(torch.zeros_like(t) for t in state)


@pytest.mark.parametrize(("spec", "kw"), CASES, ids=[f"{s}-{'-'.join(map(str, k.items())) or 'one'}" for s, k in CASES])
def test_every_preset_streams_chunk_by_chunk_equal_to_one_pytorch_call(spec: str, kw: dict, tmp_path: Path) -> None:
    model = _model(spec, **kw)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 12, 3, generator=g)
    out = export_stream_onnx(model, tmp_path / "m.onnx", x, chunk=4)
    assert out.max_abs_diff <= 1e-5
    zeros = _zeros(model, 2)
    n_state = 3 if model.lstm.spec.full_gate_recurrence else 2
    assert len(zeros) == n_state
    data = (tmp_path / "m.onnx").read_bytes()
    # another chunk size than the export's (the time axis is dynamic), from a non-zero state
    with torch.no_grad():
        _, start = model.forward_state(x[:, :2], zeros)
        pred, state = model.forward_state(x[:, 2:], start)
    got = stream_in_onnxruntime(data, x[:, 2:], tuple(start), 5)
    assert len(got) == 1 + n_state
    for a, b in zip(got, [pred, *state], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", ["vanilla", "fgr"])
def test_int8_stream_is_close_to_the_int8_pytorch_model(spec: str, tmp_path: Path) -> None:
    model = _model(spec, layers=2)
    x = torch.randn(3, 8, 3, generator=torch.Generator().manual_seed(4))
    out = export_stream_onnx(model, tmp_path / "q.onnx", x, chunk=2, int8=True)
    zeros = _zeros(model, 3)
    with torch.no_grad():
        want, _ = quantize(model).forward_state(x, zeros)
        exact, exact_state = model.forward_state(x, zeros)
    got = stream_in_onnxruntime((tmp_path / "q.onnx").read_bytes(), x, zeros, 2)
    scale = max(1.0, float(want.abs().max()))
    assert float((got[0] - want).abs().max()) <= INT8_TOLERANCE * scale
    float_diff = max(float((a - b).abs().max()) for a, b in zip(got, [exact, *exact_state], strict=True))
    assert out.float_diff == pytest.approx(float_diff, abs=1e-6)
    assert out.float_diff > 0, "the int8 graph is not the float one"
