"""Second derivatives through the compiled kernel: a gradient taken with ``create_graph=True`` is
itself differentiable (gradient penalties, MAML, Hessian-vector products), checked by float64
``gradgradcheck`` for every preset and against the reference loop for a gradient-penalty step."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.kernels.compiled import ops
from lstmkit.spec import PRESETS

T, B, I, H, P = 3, 2, 2, 3, 2


def _model(spec: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> lstmkit.LSTM:
    torch.manual_seed(seed)
    return lstmkit.LSTM(I, H, num_layers=2, proj_size=P, spec=spec, dtype=dtype)


@pytest.mark.parametrize("spec", sorted(PRESETS))
def test_gradgradcheck_every_preset_on_the_compiled_kernel(spec: str, compiled_kernel: object) -> None:
    model = _model(spec)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, B, P, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, B, H, dtype=torch.float64, requires_grad=True)

    def run(x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, carried = model(x, tuple(state)) if state else model(x)
        return out, carried[1]

    # full_gate_recurrence carries a third state tensor: its state is left to the module's own tests
    inputs = (x,) if PRESETS[spec].full_gate_recurrence else (x, h0, c0)
    with lstmkit.kernels.use("compiled"):
        assert torch.autograd.gradgradcheck(run, inputs, eps=1e-6, atol=1e-5)


def test_second_derivative_is_not_cut(compiled_kernel: object) -> None:
    """The reported failure: grad of a gradient raised 'appears to not have been used in the graph'."""
    model = _model("peephole", torch.float32)
    x = torch.randn(T, B, I, requires_grad=True)
    with lstmkit.kernels.use("compiled"):
        (g,) = torch.autograd.grad(model(x)[0].pow(2).sum(), x, create_graph=True)
        assert g.requires_grad
        (gg,) = torch.autograd.grad(g.sum(), x)
    with lstmkit.kernels.use("reference"):
        (g_ref,) = torch.autograd.grad(model(x)[0].pow(2).sum(), x, create_graph=True)
        (gg_ref,) = torch.autograd.grad(g_ref.sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gg, gg_ref, rtol=1e-5, atol=1e-6)
    assert gg.abs().max() > 5e-4  # a real second-order term, not zeros


def _penalty_step(spec: str, kernel: str) -> dict[str, torch.Tensor]:
    """One SGD step on loss + 0.5 * |d loss / d x|^2 (the penalty's gradient is second order)."""
    model = _model(spec, seed=3)
    torch.manual_seed(4)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    target = torch.randn(T, B, P, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with lstmkit.kernels.use(kernel):
        loss = (model(x)[0] - target).pow(2).mean()
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        (loss + 0.5 * g.pow(2).sum()).backward()
    optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("spec", ["peephole", "layernorm", "fgr"])
def test_gradient_penalty_step_equals_the_reference(spec: str, compiled_kernel: object) -> None:
    got, want = _penalty_step(spec, "compiled"), _penalty_step(spec, "reference")
    start = {name: p.detach() for name, p in _model(spec, seed=3).named_parameters()}
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-12, msg=name)
    assert any(not torch.equal(got[n], start[n]) for n in got)  # the step moved the weights


def test_custom_op_gradgradcheck(compiled_kernel: object) -> None:
    """The op torch.compile and torch.export capture, called eagerly, has a second derivative too."""
    from lstmkit.kernels.compiled import _config

    spec = PRESETS["peephole"]
    zx, h0, c0, w_hh, w_ch = (
        torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        for shape in ((T, B, 4 * H), (B, H), (B, H), (4 * H, H), (3 * H,))
    )
    options = (_config(spec, H), -1.0, -1.0, -1.0)

    def run(
        zx: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh: torch.Tensor, w_ch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hs, cs, _ = ops.apply(options, zx, h0, c0, w_hh, None, w_ch, *([None] * 8))
        return hs, cs

    assert torch.autograd.gradgradcheck(run, (zx, h0, c0, w_hh, w_ch), eps=1e-6, atol=1e-5)


@pytest.mark.usefixtures("triton_interpreter")
def test_triton_kernel_refuses_a_create_graph_backward() -> None:
    """The Triton op has no second derivative: a backward with create_graph=True is a one-line
    RuntimeError naming the spec and the reference kernel, never a gradient cut from the graph."""
    pytest.importorskip("triton")
    torch.manual_seed(0)
    model = lstmkit.LSTM(2, 3, spec="peephole")
    x = torch.randn(2, 1, 2, requires_grad=True)
    with lstmkit.kernels.use("triton"):
        out, _ = model(x)
    loss = out.pow(2).sum()
    with pytest.raises(
        RuntimeError, match=r"no second derivative \(spec .*peephole.*\).*kernels.use\('reference'\)"
    ) as err:
        torch.autograd.grad(loss, x, create_graph=True)
    assert "\n" not in str(err.value)
    with lstmkit.kernels.use("triton"):  # a first-order backward still works
        (g,) = torch.autograd.grad(model(x)[0].pow(2).sum(), x)
    assert g.shape == x.shape
