"""The compiled kernel's input projection: oneDNN path equals F.linear forward and backward; fallback elsewhere."""

import pytest
import torch
import torch.nn.functional as F

from lstmkit.kernels.compiled import projection


def _grads(fn, x, w, b, g):
    x, w, b = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    z = fn(x, w, b)
    z.backward(g)
    return z.detach(), x.grad, w.grad, b.grad


def _graph_names(z):
    """Names of every autograd node behind z, joined."""
    names, todo = [], [z.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None:
            names.append(type(node).__name__)
            todo.extend(n for n, _ in node.next_functions)
    return " ".join(names)


@pytest.mark.skipif(projection._OP is None, reason="this torch build has no oneDNN linear op")
def test_onednn_projection_matches_f_linear_forward_and_backward():
    torch.manual_seed(0)
    x, w, b = torch.randn(7, 3, 24), torch.randn(40, 24), torch.randn(40)  # (T, B, I), (G*H, I), (G*H,)
    g = torch.randn(7, 3, 40)
    assert projection.uses_onednn(x, w)
    got = _grads(projection.linear, x, w, b, g)
    want = _grads(F.linear, x, w, b, g)
    for name, a, e in zip(("z", "dx", "dw", "db"), got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5 * float(e.abs().max()), msg=name)
    assert "_OneDnnLinear" in _graph_names(projection.linear(x.requires_grad_(True), w, b))


def test_float64_uses_the_f_linear_path():
    x, w, b = torch.randn(4, 2, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64), None
    assert not projection.uses_onednn(x, w)
    z = projection.linear(x.requires_grad_(True), w, b)
    assert "_OneDnnLinear" not in _graph_names(z)
    torch.testing.assert_close(z, F.linear(x, w), rtol=0, atol=0)
