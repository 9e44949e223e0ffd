"""sLSTM (Beck et al. 2024, xLSTM §2.2): the paper's equations written out here, the stabilizer as a
gauge, the official ``xlstm`` package's sLSTM layer (vanilla PyTorch backend) with copied weights,
gradcheck, streaming, padding and errors. Tiny shapes; float64 unless said."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import lstmkit
from family_checks import (
    boundary_errors,
    cell_equals_layer,
    chunked_equals_whole,
    close,
    padding_and_packing,
    recorded_hidden_is_output,
    unbatched_equals_batch_of_one,
)
from lstmkit.families import SLSTMSpec, SLSTMState, slstm_layer

D64 = torch.float64


def paper_slstm(model: lstmkit.SLSTM, x: Tensor) -> Tensor:
    """The unstabilised sLSTM of the paper, one layer, (B, T, I) -> (B, T, H), from zero state:
    R_u is block-diagonal, block k = rows (u, head k) of weight_hh."""
    spec, NH, H = model.spec, model.num_heads, model.hidden_size
    W, b = model.weight_ih_l0, model.bias_l0
    blocks = model.weight_hh_l0.view(4, NH, H // NH, H // NH)
    R = [torch.block_diag(*blocks[u]) for u in range(4)]  # each (H, H)
    B, T, _ = x.shape
    h = c = n = torch.zeros(B, H, dtype=x.dtype)
    outs = []
    for t in range(T):
        pre = [x[:, t] @ W[u * H : (u + 1) * H].T + h @ R[u].T + b[u * H : (u + 1) * H] for u in range(4)]
        cap = (lambda v: v) if spec.soft_cap is None else (lambda v: spec.soft_cap * torch.tanh(v / spec.soft_cap))
        i = torch.exp(cap(pre[0])) if spec.input_gate == "exp" else torch.sigmoid(cap(pre[0]))
        f = torch.sigmoid(cap(pre[1])) if spec.forget_gate == "sigmoid" else torch.exp(cap(pre[1]))
        z, o = torch.tanh(pre[2]), torch.sigmoid(pre[3])
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
        outs.append(h)
    return torch.stack(outs, dim=1)


def make(I: int = 3, H: int = 4, **kw: object) -> lstmkit.SLSTM:
    torch.manual_seed(0)
    kw.setdefault("batch_first", True)
    return lstmkit.SLSTM(I, H, dtype=D64, **kw)  # type: ignore[arg-type]


SPECS = [
    SLSTMSpec(),
    SLSTMSpec(input_gate="sigmoid"),
    SLSTMSpec(forget_gate="exp"),
    SLSTMSpec(input_gate="sigmoid", forget_gate="exp"),
    SLSTMSpec(soft_cap=2.0),
    SLSTMSpec(stabilizer=False),
]


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("heads", [1, 2])
def test_equals_the_papers_equations(spec: SLSTMSpec, heads: int) -> None:
    model = make(3, 4, num_heads=heads, spec=spec)
    with torch.no_grad():
        model.weight_hh_l0.mul_(3.0)  # make the head blocks matter
    x = torch.randn(2, 6, 3, dtype=D64)
    close(model(x)[0], paper_slstm(model, x), 1e-12)


def test_stabilizer_is_a_gauge() -> None:
    """On and off: the same outputs, and c e^m, n e^m (the unscaled states) the same."""
    on, off = make(spec=SLSTMSpec()), make(spec=SLSTMSpec(stabilizer=False))
    x = torch.randn(3, 7, 3, dtype=D64) * 3
    o1, (_, c1, n1, m1) = on(x)
    o2, (_, c2, n2, m2) = off(x)
    close(o1, o2, 1e-12)
    assert torch.equal(m2, torch.zeros_like(m2)) and m1.abs().max() > 0.5  # the gauge did move
    close(c1 * m1.exp(), c2, 1e-12)
    close(n1 * m1.exp(), n2, 1e-12)


def test_stabilizer_keeps_large_inputs_finite() -> None:
    """With i~ of order 1000 the unstabilised exp overflows; the stabilised layer stays finite."""
    model = make(spec=SLSTMSpec())
    x = torch.full((1, 4, 3), 400.0, dtype=D64)
    with torch.no_grad():
        model.weight_ih_l0.fill_(1.0)
    out, state = model(x)
    assert torch.isfinite(out).all() and all(torch.isfinite(s).all() for s in state)
    off = make(spec=SLSTMSpec(stabilizer=False))
    off.load_state_dict(model.state_dict())
    assert not torch.isfinite(off(x)[1][1]).all()  # c overflows without it


def test_records_follow_the_equations() -> None:
    model = make(num_heads=2)
    x = torch.randn(2, 5, 3, dtype=D64)
    _, _, trace = model(x, return_gates=True)
    g = {k: trace.get(k) for k in trace.names}
    m_prev = torch.cat([torch.zeros_like(g["stabilizer"][:, :1]), g["stabilizer"][:, :-1]], dim=1)
    close(g["forget"], g["forget_raw"] * torch.exp(m_prev - g["stabilizer"]), 1e-12)  # f' = f e^{m_{t-1} - m_t}
    close(g["hidden"], g["output"] * g["cell"] / g["normalizer"], 1e-12)
    assert (g["stabilizer"] >= torch.log(g["forget_raw"]) + m_prev - 1e-12).all()
    assert g["input"].max() <= 1 + 1e-12 and g["forget"].max() <= 1 + 1e-12  # stabilised gates never exceed 1


def test_gradcheck_float64() -> None:
    model = make(2, 4, num_heads=2)
    x = torch.randn(2, 3, 2, dtype=D64, requires_grad=True)
    h0 = tuple(torch.rand(1, 2, 4, dtype=D64) + 0.5 for _ in range(4))
    params = [model.weight_ih_l0, model.weight_hh_l0, model.bias_l0]

    def f(x: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor, *state: Tensor) -> Tensor:
        proj = torch.nn.functional.linear(x.transpose(0, 1), w_ih, b)
        out, final, _ = slstm_layer(proj, SLSTMState(*(s[0] for s in state)), w_hh, 2, SLSTMSpec())
        return torch.cat([out.flatten(), *(s.flatten() for s in final)])

    inputs = (x, *(p.detach().clone().requires_grad_() for p in params), *(s.requires_grad_() for s in h0))
    assert torch.autograd.gradcheck(f, inputs)


def test_streaming_padding_unbatched_cell() -> None:
    model = make(3, 4, num_layers=2, num_heads=2)
    x = torch.randn(3, 6, 3, dtype=D64)
    chunked_equals_whole(model, x, 4)
    padding_and_packing(model, x, [6, 2, 4])
    unbatched_equals_batch_of_one(model, x)
    recorded_hidden_is_output(model, x)
    cell_equals_layer(lstmkit.SLSTMCell(3, 4, num_heads=2, dtype=D64), make(3, 4, num_heads=2), x)


def test_errors() -> None:
    boundary_errors(lambda i, h: lstmkit.SLSTM(i, h, dtype=D64), 4)
    with pytest.raises(ValueError, match="num_heads must divide hidden_size=6; got num_heads=4"):
        lstmkit.SLSTM(3, 6, num_heads=4)
    with pytest.raises(ValueError, match=r"input_gate must be one of \('exp', 'sigmoid'\); got 'tanh'"):
        SLSTMSpec(input_gate="tanh")
    with pytest.raises(ValueError, match="soft_cap"):
        SLSTMSpec(soft_cap=-1.0)


def test_xlstm_init() -> None:
    model = lstmkit.SLSTM(3, 8, num_heads=2, init="xlstm")
    assert torch.equal(model.weight_hh_l0, torch.zeros_like(model.weight_hh_l0))
    forget = model.bias_l0.detach()[8:16].view(2, 4)
    assert torch.allclose(forget[0], forget[1]) and float(forget[0, 0]) == 5.0
    assert math.isclose(float(forget[0, -1]), -7.0)


# ------------------------------------------------------------------ the official package
def _official_layer(E: int, NH: int, dtype: torch.dtype):  # -> xlstm sLSTMLayer
    xlstm_layer = pytest.importorskip("xlstm.blocks.slstm.layer", reason="xlstm (a test dependency) not installed")
    cfg = xlstm_layer.sLSTMLayerConfig(
        embedding_dim=E, num_heads=NH, conv1d_kernel_size=0, backend="vanilla", dtype="float32"
    )
    torch.manual_seed(1)
    layer = xlstm_layer.sLSTMLayer(cfg).to(dtype)
    with torch.no_grad():  # its init has zero recurrent weights: make them count
        for p in layer.parameters():
            p.normal_(0.0, 0.5)
    return layer


def _copy_from_official(layer, E: int, NH: int, dtype: torch.dtype) -> lstmkit.SLSTM:  # type: ignore[no-untyped-def]
    """Its i slot is fed by its ``fgate`` projection and its f slot by ``igate`` (wired that way in
    sLSTMLayer.forward); both are head-wise (block-diagonal). Its recurrent kernel is stored
    (NH, 4*DH, DH) with rows (gate, unit); its bias (4, NH, DH) flattened, as lstmkit's."""
    ours = lstmkit.SLSTM(E, E, num_heads=NH, batch_first=True, dtype=dtype)
    DH = E // NH
    with torch.no_grad():
        proj = [layer.fgate, layer.igate, layer.zgate, layer.ogate]  # feeding i, f, z, o
        ours.weight_ih_l0.copy_(torch.cat([torch.block_diag(*p.weight) for p in proj]))
        R = layer.slstm_cell._recurrent_kernel  # (NH, 4*DH, DH)
        ours.weight_hh_l0.copy_(R.view(NH, 4, DH, DH).transpose(0, 1).reshape(4 * E, DH))
        ours.bias_l0.copy_(layer.slstm_cell._bias)
    return ours


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_equals_official_slstm_layer(dtype: torch.dtype, tol: float) -> None:
    """Output of the official sLSTMLayer (vanilla backend, no conv) = lstmkit's hidden states put
    through the layer's own group norm; gradients of input and every weight equal too."""
    E, NH, B, T = 8, 2, 3, 7
    layer = _official_layer(E, NH, dtype)
    ours = _copy_from_official(layer, E, NH, dtype)
    x = torch.randn(B, T, E, dtype=dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = layer(x1)
    h, _ = ours(x2)
    out = layer.group_norm(h.view(B, T, NH, E // NH).transpose(1, 2)).transpose(1, 2).reshape(B, T, E)
    close(out, ref, tol)
    weight = torch.randn_like(ref)
    (ref * weight).sum().backward()
    (out * weight).sum().backward()
    close(x2.grad, x1.grad, 10 * tol)
    proj = (layer.fgate, layer.igate, layer.zgate, layer.ogate)
    g_ih = torch.cat([torch.block_diag(*p.weight.grad) for p in proj])
    in_blocks = torch.cat([torch.block_diag(*torch.ones_like(p.weight)) for p in proj]).bool()
    close(ours.weight_ih_l0.grad[in_blocks], g_ih[in_blocks], 10 * tol)  # lstmkit's W is dense: the head blocks
    R_grad = layer.slstm_cell._recurrent_kernel_.grad.view(NH, 4, E // NH, E // NH).transpose(0, 1).reshape(4 * E, -1)
    close(ours.weight_hh_l0.grad, R_grad, 10 * tol)
    close(ours.bias_l0.grad, layer.slstm_cell._bias_.grad, 10 * tol)


def test_equals_official_slstm_cell_states() -> None:
    """The official cell's final (y, c, n, m): from a fresh state its first step picks the gauge
    m_1 = i~_1, so c and n are compared unscaled (c e^m, n e^m); from a given state (n > 0) the
    gauges agree and every state tensor is equal."""
    E, NH, B, T = 8, 2, 2, 6
    layer = _official_layer(E, NH, D64)
    ours = _copy_from_official(layer, E, NH, D64)
    x = torch.randn(B, T, E, dtype=D64)
    gates_in = torch.cat([p(x) for p in (layer.fgate, layer.igate, layer.zgate, layer.ogate)], dim=-1)
    _, ref = layer.slstm_cell(gates_in)  # (4, B, H): y, c, n, m
    _, (h, c, n, m) = ours(x)
    close(h[0], ref[0], 1e-12)
    close(c[0] * m[0].exp(), ref[1] * ref[3].exp(), 1e-10)
    close(n[0] * m[0].exp(), ref[2] * ref[3].exp(), 1e-10)
    start = torch.stack([torch.randn(B, E), torch.randn(B, E), torch.rand(B, E) + 0.5, torch.randn(B, E)]).to(D64)
    _, ref = layer.slstm_cell(gates_in, state=start.clone())
    _, mine = ours(x, tuple(s.unsqueeze(0) for s in start))
    for a, b in zip(mine, ref, strict=True):
        close(a[0], b, 1e-12)
