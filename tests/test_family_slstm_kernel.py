"""The compiled sLSTM kernel (``lstmkit.kernels.families``) against the reference loop (the oracle):
outputs, final state and every gradient for each gate choice, with padding and a carried state;
gradcheck of the op; the stabilizer's ties; the op's registration (opcheck, fake tensors); dispatch.
Tiny shapes; float64 at 1e-10 unless said."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lstmkit
from family_checks import close
from lstmkit.families import SLSTMSpec, SLSTMState, slstm_layer
from lstmkit.kernels import KernelUnavailable, families
from lstmkit.kernels.families import slstm as compiled_slstm

pytestmark = pytest.mark.skipif(not families.is_available(), reason="the sLSTM C++ kernel cannot be built here")

D64 = torch.float64
SPECS = [
    SLSTMSpec(),
    SLSTMSpec(input_gate="sigmoid"),
    SLSTMSpec(forget_gate="exp"),
    SLSTMSpec(input_gate="sigmoid", forget_gate="exp"),
    SLSTMSpec(soft_cap=2.0),
    SLSTMSpec(input_gate="sigmoid", forget_gate="exp", soft_cap=3.0),
    SLSTMSpec(stabilizer=False),
    SLSTMSpec(forget_gate="exp", stabilizer=False, soft_cap=2.0),
]


def run_both(model: lstmkit.SLSTM, x: Tensor, state: tuple[Tensor, ...], **kw: object) -> list[tuple[Tensor, ...]]:
    """(output, *final state, *gradients of x, state and parameters) with the compiled kernel and the reference,
    for one loss that reads the output and every final state tensor."""
    results = []
    for kernel in ("compiled", "reference"):
        model.kernel = kernel
        out, final = model(x, state, **kw)
        g = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
        for s in final:
            loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
        inputs = [x, *state, *model.parameters()]
        grads = torch.autograd.grad(loss, inputs)
        results.append((out, *final, *grads))
    model.kernel = "auto"
    return results


def initial_state(L: int, B: int, H: int, dtype: torch.dtype) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(2)
    h, c, m = (torch.randn(L, B, H, generator=g, dtype=dtype) for _ in range(3))
    n = torch.rand(L, B, H, generator=g, dtype=dtype) + 0.5
    return tuple(t.requires_grad_() for t in (h, c, n, m))


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("heads", [1, 2])
def test_compiled_equals_reference(spec: SLSTMSpec, heads: int) -> None:
    torch.manual_seed(0)
    model = lstmkit.SLSTM(3, 4, num_layers=2, num_heads=heads, spec=spec, batch_first=True, dtype=D64)
    with torch.no_grad():
        model.weight_hh_l0.mul_(3.0)  # the head blocks matter
    x = (torch.randn(3, 6, 3, dtype=D64) * 2).requires_grad_()
    state = initial_state(2, 3, 4, D64)
    compiled, reference = run_both(model, x, state, lengths=torch.tensor([6, 2, 4]))
    for a, b in zip(compiled, reference, strict=True):
        close(a, b, 1e-10)
    assert compiled[0][1, 2:].abs().max() == 0  # padded steps output zeros


@pytest.mark.parametrize("spec", [SLSTMSpec(), SLSTMSpec(input_gate="sigmoid", forget_gate="exp", soft_cap=5.0)])
def test_float32_equals_reference(spec: SLSTMSpec) -> None:
    torch.manual_seed(0)
    model = lstmkit.SLSTM(5, 8, num_heads=2, spec=spec, dtype=torch.float32)
    x = torch.randn(9, 4, 5).requires_grad_()
    compiled, reference = run_both(model, x, initial_state(1, 4, 8, torch.float32))
    for a, b in zip(compiled, reference, strict=True):
        close(a, b, 1e-5)


def test_large_inputs_stay_finite_and_equal() -> None:
    """Pre-activations of order 100 (exp of them overflows float64 only through the stabilizer's absence)."""
    torch.manual_seed(0)
    model = lstmkit.SLSTM(3, 4, num_heads=2, dtype=D64)
    x = (torch.randn(8, 2, 3, dtype=D64) * 100).requires_grad_()
    compiled, reference = run_both(model, x, initial_state(1, 2, 4, D64))
    assert all(torch.isfinite(t).all() for t in compiled)
    for a, b in zip(compiled, reference, strict=True):
        close(a, b, 1e-10 * max(1.0, b.abs().max().item()))  # relative where gradients are large


def test_stabilizer_tie_splits_the_gradient_as_torch_maximum() -> None:
    """m_1 = max(log f + m_0, log i) with both equal: torch.maximum sends half the adjoint each way."""
    spec = SLSTMSpec(forget_gate="exp")
    H = 3
    zx = torch.randn(2, 2, 4 * H, dtype=D64)
    zx[0, :, :H] = zx[0, :, H : 2 * H]  # log i = i~ = f~ = log f, m_0 = 0: a tie at the first step
    w_hh = torch.zeros(4 * H, H, dtype=D64)
    state = [torch.zeros(2, H, dtype=D64) for _ in range(4)]
    state[2] = state[2] + 1.0
    grads = []
    for fn in ("compiled", "reference"):
        args = [
            zx.clone().requires_grad_(),
            *(s.clone().requires_grad_() for s in state),
            w_hh.clone().requires_grad_(),
        ]
        st = SLSTMState(*args[1:5])
        if fn == "compiled":
            out, final = compiled_slstm.slstm_layer(args[0], st, args[5], 1, spec)
        else:
            out, final, _ = slstm_layer(args[0], st, args[5], 1, spec)
        (out.sum() + final.stabilizer.sum() * 0.7 + final.cell.sum()).backward()
        grads.append([a.grad for a in args])
    for a, b in zip(*grads, strict=True):
        close(a, b, 1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_gradcheck_op(spec: SLSTMSpec) -> None:
    torch.manual_seed(0)
    zx = torch.randn(4, 3, 8, dtype=D64, requires_grad=True)
    state = initial_state(1, 3, 2, D64)
    w_hh = torch.randn(8, 1, dtype=D64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])

    def f(zx: Tensor, w: Tensor, *s: Tensor) -> Tensor:
        out, final = compiled_slstm.slstm_layer(zx, SLSTMState(*s), w, 2, spec, lengths)
        return torch.cat([out.flatten(), *(t.flatten() for t in final)])

    assert torch.autograd.gradcheck(f, (zx, w_hh, *(s[0].detach().requires_grad_() for s in state)))


def test_opcheck() -> None:
    """The op's schema, fake (meta) kernel and autograd registration agree with its CPU kernel."""
    zx = torch.randn(3, 2, 8, dtype=D64, requires_grad=True)
    s = [torch.randn(2, 2, dtype=D64) for _ in range(4)]
    s[2] = s[2].abs() + 0.5
    w_hh = torch.randn(8, 1, dtype=D64, requires_grad=True)
    torch.library.opcheck(compiled_slstm.slstm_recurrence, (zx, *s, w_hh, torch.tensor([3, 1]), [1, 0, 1, 2], -1.0))
    torch.library.opcheck(compiled_slstm.slstm_recurrence, (zx, *s, w_hh, None, [0, 1, 0, 2], 2.0))


def test_dispatch() -> None:
    model = lstmkit.SLSTM(3, 4, dtype=D64)
    x = torch.randn(5, 2, 3, dtype=D64)
    assert families.choose("auto", "slstm", record=False, tensors=(x,)) == "compiled"
    assert families.choose("auto", "slstm", record=True, tensors=(x,)) == "reference"
    assert families.choose("auto", "slstm", record=False, tensors=(x.half(),)) == "reference"
    with lstmkit.kernels.use("reference"):
        assert families.choose("auto", "slstm", record=False, tensors=(x,)) == "reference"
        assert families.choose("compiled", "slstm", record=False, tensors=(x,)) == "compiled"  # the module's own wins
    with pytest.raises(KernelUnavailable, match="recorded gates"):
        lstmkit.SLSTM(3, 4, kernel="compiled")(x.float(), return_gates=True)
    with pytest.raises(KernelUnavailable, match="float32, float64"):
        lstmkit.SLSTM(3, 4, kernel="compiled", dtype=torch.bfloat16)(x.bfloat16())
    with lstmkit.kernels.use("native"), pytest.raises(KernelUnavailable, match="no slstm implementation"):
        model(x)
    with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'compiled', 'reference'\); got 'fast'"):
        lstmkit.SLSTM(3, 4, kernel="fast")
    _, _, trace = model(x, return_gates=True)  # auto records on the reference
    close(trace.get("hidden").transpose(0, 1), model(x)[0], 1e-10)
    assert "kernel='reference'" in repr(lstmkit.SLSTM(3, 4, kernel="reference"))


def test_second_derivative_asks_for_the_reference() -> None:
    model = lstmkit.SLSTM(3, 4, dtype=D64)
    x = torch.randn(5, 2, 3, dtype=D64, requires_grad=True)
    with pytest.raises(RuntimeError, match='kernel="reference"'):
        torch.autograd.grad(model(x)[0].sum(), x, create_graph=True)
    model.kernel = "reference"
    (g,) = torch.autograd.grad(model(x)[0].sum(), x, create_graph=True)
    g.sum().backward()  # the reference differentiates twice


def test_batch_split_over_threads_equals_reference() -> None:
    """A batch large enough to be split over threads (tiny H, many rows, ragged lengths)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        model = lstmkit.SLSTM(2, 4, num_heads=2, dtype=D64)
        x = torch.randn(3, 700, 2, dtype=D64, requires_grad=True)
        lengths = torch.randint(0, 4, (700,))
        compiled, reference = run_both(model, x, initial_state(1, 700, 4, D64), lengths=lengths)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(compiled, reference, strict=True):
        close(a, b, 1e-10)
