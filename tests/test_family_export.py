"""Export of the recurrent families in eval mode, state in and out: ``torch.export`` (static T, and a
symbolic T where the form allows it), ONNX through torch's TorchScript-based exporter run in
onnxruntime, and ``torch.compile`` capturing the sLSTM kernel's custom op. Every exported program is
compared with the eager module on the example and on another input. Tiny shapes, float32."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import Tensor, nn
from torch.export import Dim

import lstmkit
from family_checks import close
from lstmkit.kernels import families

TOL = 1e-5


def make(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "slstm":
        return lstmkit.SLSTM(3, 8, num_layers=2, num_heads=2, batch_first=True).eval()
    if name.startswith("mlstm"):
        form = name.split("-")[1] if "-" in name else "chunkwise"
        return lstmkit.MLSTM(3, 8, num_heads=2, batch_first=True, form=form, chunk_size=4).eval()
    form = name.split("-")[1] if "-" in name else "scan"
    return lstmkit.MinLSTM(3, 8, batch_first=True, form=form).eval()


def example(model: nn.Module, T: int = 7) -> tuple[Tensor, tuple[Tensor, ...]]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, T, 3, generator=g)
    with torch.no_grad():
        _, state = model(torch.randn(2, 5, 3, generator=g))  # a state that is not zeros
    return x, state


def same(a: tuple[Tensor, tuple[Tensor, ...]], b: tuple[Tensor, tuple[Tensor, ...]], tol: float = TOL) -> None:
    close(a[0], b[0], tol)
    assert len(a[1]) == len(b[1])
    for s, t in zip(a[1], b[1], strict=True):
        close(s, t, tol)


@pytest.mark.parametrize("name", ["slstm", "mlstm", "minlstm"])
def test_export_static_equals_eager(name: str) -> None:
    model = make(name)
    x, state = example(model)
    ep = torch.export.export(model, (x, state))
    with torch.no_grad():
        same(ep.module()(x, state), model(x, state))
    if name == "slstm" and families.is_available():  # one custom-op node per layer, no unrolled steps
        nodes = [n for n in ep.graph.nodes if n.op == "call_function"]
        assert sum("slstm_recurrence" in str(n.target) for n in nodes) == 2
        assert len(nodes) < 60


@pytest.mark.parametrize("name", ["slstm", "mlstm-parallel", "minlstm"])
def test_export_dynamic_time(name: str) -> None:
    model = make(name)
    x, state = example(model)
    T = Dim("T", min=2, max=512)
    ep = torch.export.export(model, (x, state), dynamic_shapes=({1: T}, tuple(None for _ in state)))
    for steps in (3, 12):
        x2, _ = example(model, steps)
        with torch.no_grad():
            same(ep.module()(x2, state), model(x2, state))


class Flat(nn.Module):
    """(x, *state) -> (output, *state): the flat signature ONNX graphs have."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        out, new = self.model(x, state)
        return (out, *new)


@pytest.mark.parametrize("name", ["slstm", "mlstm", "mlstm-recurrent", "minlstm-sequential"])
def test_onnx_equals_eager(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = make(name)
    x, state = example(model)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values in the loop
        torch.onnx.export(Flat(model), (x, *state), f, dynamo=False)
    session = ort.InferenceSession(f.getvalue())
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), (x, *state), strict=True)}
    got = [torch.from_numpy(a) for a in session.run(None, feeds)]
    with torch.no_grad():
        same((got[0], tuple(got[1:])), model(x, state))


@pytest.mark.skipif(not families.is_available(), reason="the sLSTM C++ kernel cannot be built here")
def test_compile_captures_the_slstm_op_and_trains_equal() -> None:
    model = make("slstm").train()
    x, state = example(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=True)
    grads = []
    for m in (model, compiled):
        out, new = m(x, state)
        loss = out.sum() + sum(s.sum() for s in new)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads, strict=True):
        close(a, b, TOL)
    seen: list[str] = []

    def backend(gm: torch.fx.GraphModule, inputs: list[Tensor]) -> object:
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    torch.compile(model, backend=backend, fullgraph=True)(x, state)
    assert sum("slstm_recurrence" in t for t in seen) == 2  # one node per layer, T steps inside
