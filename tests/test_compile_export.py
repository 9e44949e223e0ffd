"""torch.compile and torch.export capture every preset as one custom-op node per layer-direction, T symbolic.

Each case compares the captured model with the eager model (outputs and gradients) at a sequence
length other than the one it was captured at, and counts the ``lstmkit::recurrence`` nodes: one
per layer and direction whatever T is (time is not unrolled into the graph).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch.export import Dim

import lstmkit
from lstmkit import PRESETS

SPECS = sorted({spec: name for name, spec in PRESETS.items()}.values())  # one name per distinct spec
I, H, B = 3, 4, 2
RECURRENCE = torch.ops.lstmkit.recurrence.default


def _model(spec: str, **kwargs: Any) -> lstmkit.LSTM:
    torch.manual_seed(0)
    return lstmkit.LSTM(I, H, num_layers=2, spec=spec, dtype=torch.float64, **kwargs)


def _count(graphs: list[torch.fx.GraphModule]) -> int:
    return sum(1 for g in graphs for n in g.graph.nodes if n.target in (RECURRENCE, torch.ops.lstmkit.recurrence))


class EveryPreset(torch.nn.Module):
    """One LSTM per distinct preset (the plain one 2-layer bidirectional), all run on the same input:
    compiling this once costs far less than compiling each preset on its own."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.models = torch.nn.ModuleDict(
            {
                s: lstmkit.LSTM(
                    I,
                    H,
                    num_layers=2 if s == "vanilla" else 1,
                    bidirectional=s == "vanilla",
                    spec=s,
                    dtype=torch.float64,
                )
                for s in SPECS
            }
        )

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        return [model(x) for model in self.models.values()]


def _loss(results: list[Any]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for out, (h, c, *_) in results:  # FGR's state also holds its last gates
        total = total + (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + h.sum() + 0.5 * c.sum()
    return total


@pytest.mark.parametrize("mode", ["eval-no-grad", "train-input-grad"])
def test_compile_every_preset(mode: str, compiled_kernel: object) -> None:
    """Every preset, in evaluation without grad (the reported failure), and in training with and
    without the input's grad: outputs and gradients equal eager ones at two lengths, one graph."""
    torch._dynamo.reset()
    model = EveryPreset().train(mode.startswith("train"))
    # inference: dynamo alone (fake tensors through the fake impl); training: AOTAutograd as well
    counter = CompileCounterWithBackend("eager" if mode == "eval-no-grad" else "aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    frames = []
    for T in (5, 8):  # neither equals I (equal sizes share one symbol)
        frames.append(counter.frame_count)
        x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=mode == "train-input-grad")
        with torch.set_grad_enabled(mode != "eval-no-grad"):
            got, want = compiled(x), model(x)
        for name, a, b in zip(SPECS, got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
        if mode == "eval-no-grad":
            continue
        wrt = [t for t in (x, *model.parameters()) if t.requires_grad]
        for a, b in zip(torch.autograd.grad(_loss(got), wrt), torch.autograd.grad(_loss(want), wrt), strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert frames[1] == counter.frame_count, "T must stay symbolic: no recompilation for another length"
    nodes = sum(m.num_layers * m.num_directions for m in model.models.values())
    assert _count(counter.graphs) == nodes, "one recurrence node per layer-direction: time is not unrolled"


def test_compile_plain_model_with_state_batch_first_and_dropout(compiled_kernel: object) -> None:
    """The plain spec in training with states, batch_first, dropout between layers and the per-step
    regularisers (their masks are graph inputs of the op); the input needs no grad (the weights do)."""
    torch._dynamo.reset()
    model = _model("vanilla", batch_first=True, dropout=0.5, zoneout=0.1, recurrent_dropout=0.2).train()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=True)
    x = torch.randn(B, 5, I, dtype=torch.float64)
    hx = (torch.randn(2, B, H, dtype=torch.float64), torch.randn(2, B, H, dtype=torch.float64))
    out = compiled(x, hx)[0]
    out.sum().backward()
    assert model.weight_ih_l0.grad is not None and model.weight_ih_l0.grad.abs().sum() > 0
    assert not torch.equal(out, compiled(x, hx)[0]), "dropout draws fresh masks in training"
    model.eval()
    torch.testing.assert_close(compiled(x, hx), model(x, hx), atol=1e-10, rtol=0)


def test_compile_with_inductor_as_in_the_report(compiled_kernel: object) -> None:
    """The report's call, with the default backend: a plain model whose input needs no grad."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = lstmkit.LSTM(10, 20, num_layers=2)
    x = torch.randn(7, 3, 10)
    out, (h, c) = torch.compile(model)(x)
    want = torch.nn.LSTM(10, 20, num_layers=2)
    want.load_state_dict(model.state_dict())
    ref_out, (ref_h, ref_c) = want(x)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, ref_c, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", SPECS)
def test_export_every_preset_with_dynamic_length(spec: str, compiled_kernel: object) -> None:
    model = _model(spec, bidirectional=True, batch_first=True).eval()
    x = torch.randn(B, 4, I, dtype=torch.float64)
    sizes = (H, H, 3 * H) if model.spec.full_gate_recurrence else (H, H)  # FGR carries its last gates too
    hx = tuple(torch.randn(4, B, n, dtype=torch.float64) for n in sizes)
    program = torch.export.export(model, (x, hx), dynamic_shapes=({1: Dim("T", min=2)}, (None,) * len(hx)))
    assert _count([program.graph_module]) == 4
    for T in (2, 9):
        x2 = torch.randn(B, T, I, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x2, hx), model(x2, hx), atol=1e-10, rtol=0)
