"""The GPU (Triton) kernel behind ``lstmkit.LSTM``, in half precision, and its errors.

Runs under Triton's interpreter on CPU tensors when no GPU is present (TRITON_INTERPRET=1, set by a
fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import kernels
from lstmkit.functional import LayerWeights
from lstmkit.functional import lstm_layer as reference_layer
from lstmkit.kernels import gpu
from lstmkit.modules import base
from lstmkit.spec import CellSpec

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


pytestmark = pytest.mark.usefixtures("triton_interpreter")


T, B, I, H = 4, 2, 3, 4


def run_module(kernel: str, training: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A 2-layer bidirectional layer-norm LSTM with projection, zoneout and recurrent dropout on a
    packed batch; returns its outputs and the gradient of every parameter and of the input."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2, spec="layernorm",
                         zoneout=(0.3, 0.2), recurrent_dropout=0.25, generator=gen)  # fmt: skip
    model = model.double().to(DEVICE).train(training)
    x = torch.randn(T, B, I, dtype=torch.float64, device=DEVICE, requires_grad=True)
    packed = pack_padded_sequence(x, torch.tensor([2, T]), enforce_sorted=False)
    with kernels.use(kernel):
        out, (h_n, c_n), trace = model(packed, return_gates=True)
    results = {"output": out.data, "h_n": h_n, "c_n": c_n}
    for k, layer in enumerate(trace.layers):
        for d, gates in enumerate(layer):
            results.update({f"l{k}d{d} {name}": v for name, v in gates.items()})
    loss = out.data.pow(2).sum() + h_n.sum() + c_n.pow(2).sum()
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    names = ["input", *(n for n, _ in model.named_parameters())]
    return results, dict(zip(names, grads, strict=True))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_module_on_triton_equals_reference(training: bool) -> None:
    ref, ref_grads = run_module("reference", training)
    got, got_grads = run_module("triton", training)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], atol=1e-10, rtol=1e-10, msg=name)
    for name in ref_grads:
        torch.testing.assert_close(got_grads[name], ref_grads[name], atol=1e-10, rtol=1e-10, msg=f"d {name}")


def test_dispatch_runs_triton_when_asked() -> None:
    with kernels.use("triton"):
        assert kernels.choose(CellSpec(), record=False, per_step_regularised=False) == "triton"
        assert kernels.choose(CellSpec(peephole=True), record=True, per_step_regularised=True) == "triton"


@pytest.mark.parametrize(("dtype", "tol"), [(torch.bfloat16, 3e-2), (torch.float16, 4e-3)], ids=["bf16", "fp16"])
def test_half_inputs_keep_float32_cell(dtype: torch.dtype, tol: float) -> None:
    # The same (rounded) numbers through the reference in float32: outputs in the half dtype, the
    # cell state in float32 (c0's dtype), gradients within half precision.
    spec = CellSpec(peephole=True, layer_norm=True)
    gen = torch.Generator().manual_seed(5)
    shapes = base.param_shapes(spec, I, H, 0, True)
    half = {k: ((torch.rand(s, generator=gen) * 2 - 1) * 0.6).to(dtype) for k, s in shapes.items()}
    x = torch.randn(T, B, I, generator=gen).to(dtype)
    h0 = torch.randn(B, H, generator=gen).to(dtype)
    c0 = torch.randn(B, H, generator=gen)  # float32
    lengths = torch.tensor([T, 2])

    def run(fn, cast: torch.dtype) -> tuple:
        leaves = [t.to(DEVICE, cast).requires_grad_() for t in (x, h0)]
        c = c0.to(DEVICE).requires_grad_()
        params = {k: v.to(DEVICE, cast).requires_grad_() for k, v in half.items()}
        res = fn(*leaves, c, LayerWeights(**params), spec, lengths=lengths, record=True)
        loss = res.output.float().pow(2).sum() + res.c_n.sum() + res.gates["forget"].float().sum()
        return res, torch.autograd.grad(loss, [*leaves, c, *params.values()])

    got, got_grads = run(gpu.lstm_layer, dtype)
    ref, ref_grads = run(reference_layer, torch.float32)
    assert got.output.dtype == dtype and got.h_n.dtype == dtype
    assert got.c_n.dtype == torch.float32 and got.gates["cell"].dtype == torch.float32
    torch.testing.assert_close(got.output.float(), ref.output, atol=tol, rtol=tol)
    torch.testing.assert_close(got.c_n, ref.c_n, atol=tol, rtol=tol)
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a.float(), b, atol=4 * tol, rtol=4 * tol)


def _layer(dtype: torch.dtype = torch.float32) -> tuple:
    w = LayerWeights(torch.randn(4 * H, I, dtype=dtype), torch.randn(4 * H, H, dtype=dtype))
    return torch.randn(T, B, I, dtype=dtype), torch.zeros(B, H, dtype=dtype), torch.zeros(B, H, dtype=dtype), w


def test_cpu_tensors_without_interpreter_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, h0, c0, w = _layer()
    with pytest.raises(RuntimeError, match="GPU kernel cannot run: Triton runs CUDA tensors .*got cpu tensors"):
        gpu.lstm_layer(x, h0, c0, w, CellSpec())


def test_bad_shapes_and_dtypes_name_expected_and_got() -> None:
    x, h0, c0, w = _layer()
    x, h0, c0, w = x.to(DEVICE), h0.to(DEVICE), c0.to(DEVICE), LayerWeights(*(t.to(DEVICE) for t in w[:2]))
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(16, 4\); got \(16, 3\)"):
        gpu.lstm_layer(x, h0, c0, w._replace(weight_hh=w.weight_hh[:, :3]), CellSpec())
    with pytest.raises(ValueError, match=r"weight_ch of shape \(12,\) is required by this spec; got None"):
        gpu.lstm_layer(x, h0, c0, w, CellSpec(peephole=True))
    with pytest.raises(TypeError, match="weight_ih must have x's dtype torch.float32; got torch.float64"):
        gpu.lstm_layer(x, h0, c0, w._replace(weight_ih=w.weight_ih.double()), CellSpec())
    with pytest.raises(TypeError, match="x must have a dtype in"):
        gpu.lstm_layer(x.int(), h0, c0, w, CellSpec())


def test_interpreter_works_when_triton_was_imported_first() -> None:
    # Other code (torch's compiler stack) may import triton before TRITON_INTERPRET=1 is set; the
    # kernels must still run interpreted (a layer-norm spec uses the row reductions).
    code = (
        "import os, triton, torch\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from lstmkit import LayerWeights, CellSpec\n"
        "from lstmkit.kernels import gpu\n"
        "from lstmkit.modules import base\n"
        "spec = CellSpec(layer_norm=True)\n"
        "w = LayerWeights(**{k: torch.rand(s) for k, s in base.param_shapes(spec, 3, 4, 0, True).items()})\n"
        "x = torch.randn(2, 2, 3, requires_grad=True)\n"
        "gpu.lstm_layer(x, torch.zeros(2, 4), torch.zeros(2, 4), w, spec).output.sum().backward()\n"
        "print(tuple(x.grad.shape))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(2,", "2,", "3)"]
