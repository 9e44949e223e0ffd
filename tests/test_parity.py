"""Parity with torch.nn.LSTM / nn.LSTMCell: outputs, final states and every gradient.

The same grid runs on every path lstmkit has for the default spec: the native fused kernel,
the explicit step kernel (compiled when available, else the reference loop), and the reference
loop forced. Weights are copied from the torch module, so torch is the independent oracle.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit import kernels

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
I, H, P, T, B = 5, 6, 3, 7, 4
LENGTHS = torch.tensor([4, 7, 2, 5])  # unsorted on purpose

AXES = (
    (1, 2, 3),  # num_layers
    (False, True),  # bidirectional
    (False, True),  # batch_first
    (0, P),  # proj_size
    (True, False),  # bias
    ("padded", "packed-unsorted", "packed-sorted", "unbatched"),
)


def _pairwise(axes: tuple[tuple, ...]) -> list[tuple]:
    """A small grid in which every pair of values of any two axes occurs at least once (greedy, deterministic)."""
    todo = {(a, i, b, j) for a in range(len(axes)) for b in range(a + 1, len(axes)) for i in axes[a] for j in axes[b]}
    grid = []
    while todo:
        best = max(
            itertools.product(*axes),
            key=lambda case: sum(
                (a, case[a], b, case[b]) in todo for a in range(len(axes)) for b in range(a + 1, len(axes))
            ),
        )
        todo -= {(a, best[a], b, best[b]) for a in range(len(axes)) for b in range(a + 1, len(axes))}
        grid.append(best)
    return grid


GRID = _pairwise(AXES)


def _grid_id(case: tuple) -> str:
    layers, bidir, bf, proj, bias, kind = case
    return f"L{layers}-{'bi' if bidir else 'uni'}-{'bf' if bf else 'tm'}-P{proj}-{'b' if bias else 'nob'}-{kind}"


def _make_input(kind: str, batch_first: bool, dtype: torch.dtype, gen: torch.Generator):
    """The leaf tensor to differentiate, and what is fed to the module."""
    if kind == "unbatched":
        x = torch.randn(T, I, dtype=dtype, generator=gen).requires_grad_()
        return x, x
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, dtype=dtype, generator=gen).requires_grad_()
    if kind == "packed-unsorted":
        return x, pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
    if kind == "packed-sorted":  # pack_padded_sequence's default: no permutation in the PackedSequence
        return x, pack_padded_sequence(x, LENGTHS.sort(descending=True).values, batch_first=batch_first)
    return x, x


def _state_shape(kind: str, layers: int, dirs: int, size: int) -> tuple[int, ...]:
    return (layers * dirs, size) if kind == "unbatched" else (layers * dirs, B, size)


def _run(module, feed, h0, c0):
    out, (h, c) = module(feed, (h0, c0))
    data = out.data if isinstance(out, PackedSequence) else out
    return data, h, c


def _check_pair(case: tuple, dtype: torch.dtype, kernel: str) -> None:
    layers, bidir, bf, proj, bias, kind = case
    torch.manual_seed(1)
    ref = torch.nn.LSTM(I, H, layers, bias, bf, 0.0, bidir, proj, dtype=dtype)
    ours = lstmkit.LSTM(I, H, layers, bias, bf, 0.0, bidir, proj, dtype=dtype)
    ours.load_state_dict(ref.state_dict(), strict=True)
    dirs = 2 if bidir else 1
    R = proj or H
    results = []
    for module in (ref, ours):
        x, feed = _make_input(kind, bf, dtype, torch.Generator().manual_seed(7))
        h0 = torch.randn(_state_shape(kind, layers, dirs, R), dtype=dtype, generator=torch.Generator().manual_seed(8))
        c0 = torch.randn(_state_shape(kind, layers, dirs, H), dtype=dtype, generator=torch.Generator().manual_seed(9))
        h0.requires_grad_()
        c0.requires_grad_()
        with kernels.use(kernel):
            out, h, c = _run(module, feed, h0, c0)
        # a loss touching every output with distinct weights
        w_out = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(10))
        loss = (out * w_out).sum() + (h * 1.5).sum() + (c * -0.5).sum()
        params = list(module.parameters())
        grads = torch.autograd.grad(loss, [x, h0, c0, *params])
        results.append((out.detach(), h.detach(), c.detach(), grads))
    tol = TOL[dtype]
    (o1, h1, c1, g1), (o2, h2, c2, g2) = results
    torch.testing.assert_close(o2, o1, atol=tol, rtol=0)
    torch.testing.assert_close(h2, h1, atol=tol, rtol=0)
    torch.testing.assert_close(c2, c1, atol=tol, rtol=0)
    names = ["input", "h0", "c0", *[n for n, _ in ref.named_parameters()]]
    assert len(g1) == len(g2)
    for name, a, b in zip(names, g1, g2, strict=True):
        torch.testing.assert_close(b, a, atol=tol, rtol=0, msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kernel", ["native", "compiled", "reference"])
@pytest.mark.parametrize("case", GRID, ids=_grid_id)
def test_every_kernel_matches_torch(case: tuple, kernel: str, dtype: torch.dtype, compiled_kernel: object) -> None:
    """lstmkit's plumbing (layouts, packing and its permutations, state checks, flat weights) on
    torch's fused kernel, and lstmkit's own recurrences (compiled, reference) for the plain cell."""
    _check_pair(case, dtype, kernel)


@pytest.mark.parametrize("case", GRID[::2], ids=_grid_id)
def test_gate_path_matches_torch(case: tuple) -> None:
    """Asking for gates uses the explicit kernel (compiled when built); outputs stay torch's."""
    layers, bidir, bf, proj, bias, kind = case
    torch.manual_seed(2)
    ref = torch.nn.LSTM(I, H, layers, bias, bf, 0.0, bidir, proj, dtype=torch.float64)
    ours = lstmkit.LSTM.from_torch(ref)
    x, feed = _make_input(kind, bf, torch.float64, torch.Generator().manual_seed(3))
    out_ref, (h_ref, c_ref) = ref(feed)
    out, (h, c), trace = ours(feed, return_gates=True)
    data = out.data if isinstance(out, PackedSequence) else out
    data_ref = out_ref.data if isinstance(out_ref, PackedSequence) else out_ref
    torch.testing.assert_close(data, data_ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(c, c_ref, atol=1e-10, rtol=0)
    assert trace.num_layers == layers and trace.num_directions == (2 if bidir else 1)
    g_ref = torch.autograd.grad(data_ref.sum() + h_ref.sum() + c_ref.sum(), [x, *ref.parameters()])
    x2, feed2 = _make_input(kind, bf, torch.float64, torch.Generator().manual_seed(3))
    out2, (h2, c2), _ = ours(feed2, return_gates=True)
    data2 = out2.data if isinstance(out2, PackedSequence) else out2
    g = torch.autograd.grad(data2.sum() + h2.sum() + c2.sum(), [x2, *ours.parameters()])
    for a, b in zip(g_ref, g, strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(dtype: torch.dtype, bias: bool, batched: bool) -> None:
    torch.manual_seed(4)
    ref = torch.nn.LSTMCell(I, H, bias, dtype=dtype)
    ours = lstmkit.LSTMCell.from_torch(ref)
    shape = (B, I) if batched else (I,)
    sshape = (B, H) if batched else (H,)
    tol = TOL[dtype]
    for call in ("forward", "gates"):
        outs = []
        for module in (ref, ours):
            gen = torch.Generator().manual_seed(5)
            x = torch.randn(shape, dtype=dtype, generator=gen, requires_grad=True)
            h0 = torch.randn(sshape, dtype=dtype, generator=gen, requires_grad=True)
            c0 = torch.randn(sshape, dtype=dtype, generator=gen, requires_grad=True)
            if module is ours and call == "gates":
                step = ours.gates(x, (h0, c0))
                h, c = step.hidden, step.cell
            else:
                h, c = module(x, (h0, c0))
            loss = (h * 2.0).sum() + (c * -1.0).sum()
            outs.append((h, c, torch.autograd.grad(loss, [x, h0, c0, *module.parameters()])))
        (h1, c1, g1), (h2, c2, g2) = outs
        torch.testing.assert_close(h2, h1, atol=tol, rtol=0)
        torch.testing.assert_close(c2, c1, atol=tol, rtol=0)
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(b, a, atol=tol, rtol=0)


def test_cell_without_state_starts_from_zeros() -> None:
    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(I, H)
    ours = lstmkit.LSTMCell.from_torch(ref)
    x = torch.randn(B, I)
    for a, b in zip(ref(x), ours(x), strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


def test_same_seed_same_initialisation_as_torch() -> None:
    for kwargs in ({}, {"num_layers": 2, "bidirectional": True, "proj_size": 2}, {"bias": False}):
        torch.manual_seed(11)
        ref = torch.nn.LSTM(I, H, **kwargs)
        torch.manual_seed(11)
        ours = lstmkit.LSTM(I, H, **kwargs)
        assert list(ours.state_dict()) == list(ref.state_dict())
        for (name, a), b in zip(ref.state_dict().items(), ours.state_dict().values(), strict=True):
            assert a.shape == b.shape, name
            assert torch.equal(a, b), name
    torch.manual_seed(3)
    ref_cell = torch.nn.LSTMCell(I, H)
    torch.manual_seed(3)
    ours_cell = lstmkit.LSTMCell(I, H)
    for a, b in zip(ref_cell.state_dict().values(), ours_cell.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_state_dict_moves_both_ways_strict() -> None:
    ours = lstmkit.LSTM(I, H, 2, bidirectional=True, proj_size=P)
    ref = torch.nn.LSTM(I, H, 2, bidirectional=True, proj_size=P)
    ref.load_state_dict(ours.state_dict(), strict=True)
    back = ours.to_torch()
    assert isinstance(back, torch.nn.LSTM)
    for a, b in zip(back.state_dict().values(), ours.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    again = lstmkit.LSTM.from_torch(back)
    x = torch.randn(T, B, I)
    torch.testing.assert_close(again(x)[0], ref(x)[0], atol=1e-6, rtol=0)
    cell = lstmkit.LSTMCell(I, H)
    torch.nn.LSTMCell(I, H).load_state_dict(cell.state_dict(), strict=True)
    assert isinstance(cell.to_torch(), torch.nn.LSTMCell)


def test_dropout_between_layers_only_in_training() -> None:
    torch.manual_seed(0)
    ours = lstmkit.LSTM(I, H, 3, dropout=0.5)
    x = torch.randn(T, B, I)
    ours.eval()
    ref = ours.to_torch().eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-6, rtol=0)
    ours.train()
    for kernel in ("native", "reference"):
        with kernels.use(kernel):
            a, _ = ours(x)
            b, _ = ours(x)
        assert not torch.allclose(a, b), f"{kernel}: dropout must change outputs in training"
    single = lstmkit.LSTM(I, H, 1)
    single.train()
    with kernels.use("reference"):
        torch.testing.assert_close(single(x)[0], single.to_torch()(x)[0], atol=1e-6, rtol=0)


def test_default_spec_uses_native_kernel() -> None:
    spec = lstmkit.CellSpec()
    assert kernels.choose(spec, record=False, per_step_regularised=False) == "native"
    assert kernels.choose(spec, record=True, per_step_regularised=False) in ("compiled", "reference")
    with kernels.use("reference"):
        assert kernels.choose(spec, record=False, per_step_regularised=False) == "reference"


def test_drop_in_helpers() -> None:
    ours = lstmkit.LSTM(I, H, 2, bidirectional=True, proj_size=P)
    ref = torch.nn.LSTM(I, H, 2, bidirectional=True, proj_size=P)
    ref.load_state_dict(ours.state_dict())
    ours.flatten_parameters()
    assert [[w.shape for w in group] for group in ours.all_weights] == [
        [w.shape for w in group] for group in ref.all_weights
    ]
    assert "num_layers=2" in repr(ours) and "proj_size=3" in repr(ours)
