"""mLSTM (Beck et al. 2024, xLSTM §2.3): the paper's equations written out here, recurrent ==
parallel == chunkwise, the stabilizer as a gauge, the official ``xlstm`` package's mLSTM cell and
its pure-PyTorch parallel and recurrent functions with copied weights, gradcheck, streaming,
padding and errors. Tiny shapes; float64 unless said."""

from __future__ import annotations

import dataclasses
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
    states_close,
    unbatched_equals_batch_of_one,
)
from lstmkit.families import MLSTMSpec, MLSTMState, mlstm_chunkwise, mlstm_layer, mlstm_parallel

D64 = torch.float64


def paper_mlstm(model: lstmkit.MLSTM, x: Tensor) -> Tensor:
    """The unstabilised mLSTM of the paper, one layer, (B, T, I) -> (B, T, H), from zero state:
    C_t = f C + i v k^T, n_t = f n + i k, h = o * C q / max(|n^T q|, 1), k divided by sqrt(DH)."""
    spec, NH, H = model.spec, model.num_heads, model.hidden_size
    DH = H // NH
    W, b = model.weight_ih_l0, model.bias_l0
    B, T, _ = x.shape
    out = torch.zeros(B, T, H, dtype=x.dtype)
    for bi in range(B):
        C = [torch.zeros(DH, DH, dtype=x.dtype) for _ in range(NH)]
        n = [torch.zeros(DH, dtype=x.dtype) for _ in range(NH)]
        for t in range(T):
            p = W @ x[bi, t] + b
            q, k, v = p[:H], p[H : 2 * H], p[2 * H : 3 * H]
            i_pre, f_pre, o = p[3 * H : 3 * H + NH], p[3 * H + NH : 3 * H + 2 * NH], torch.sigmoid(p[3 * H + 2 * NH :])
            for h in range(NH):
                cut = slice(h * DH, (h + 1) * DH)
                qh, kh, vh = q[cut], k[cut] / math.sqrt(DH), v[cut]
                i = torch.exp(i_pre[h]) if spec.input_gate == "exp" else torch.sigmoid(i_pre[h])
                f = torch.sigmoid(f_pre[h]) if spec.forget_gate == "sigmoid" else torch.exp(f_pre[h])
                C[h] = f * C[h] + i * torch.outer(vh, kh)
                n[h] = f * n[h] + i * kh
                out[bi, t, cut] = o[cut] * (C[h] @ qh) / torch.clamp((n[h] @ qh).abs(), min=1.0)
    return out


def make(I: int = 3, H: int = 4, **kw: object) -> lstmkit.MLSTM:
    torch.manual_seed(0)
    kw.setdefault("batch_first", True)
    kw.setdefault("chunk_size", 3)
    return lstmkit.MLSTM(I, H, dtype=D64, **kw)  # type: ignore[arg-type]


SPECS = [
    MLSTMSpec(),
    MLSTMSpec(input_gate="sigmoid"),
    MLSTMSpec(forget_gate="exp"),
    MLSTMSpec(stabilizer=False),
]


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("form", ["chunkwise", "parallel", "recurrent"])
def test_equals_the_papers_equations(spec: MLSTMSpec, form: str) -> None:
    model = make(3, 4, num_heads=2, spec=spec, form=form)
    x = torch.randn(2, 7, 3, dtype=D64) * 2
    close(model(x)[0], paper_mlstm(model, x), 1e-12)


def _random_case(seed: int, B: int = 2, NH: int = 2, T: int = 8, DH: int = 3):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=D64) * scale

    qkv = (r(B, NH, T, DH), r(B, NH, T, DH), r(B, NH, T, DH))
    gates = (r(B, NH, T, scale=2.0), r(B, NH, T, scale=2.0) + 1.0)
    state = MLSTMState(r(B, NH, DH, DH, scale=0.5), r(B, NH, DH, scale=0.5), r(B, NH, scale=0.5))
    return qkv, gates, state


@pytest.mark.parametrize("spec", [MLSTMSpec(), MLSTMSpec(eps=1e-6, normalizer_floor=0.5), MLSTMSpec(soft_cap=1.5)])
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_parallel_and_chunkwise_equal_recurrent(spec: MLSTMSpec, chunk: int) -> None:
    """Outputs and final (C, n, m) of the three forms, from a non-zero state, with padded steps."""
    (q, k, v), (i, f), state = _random_case(chunk)
    spec = dataclasses.replace(spec, output_gate=False)
    lengths = torch.tensor([8, 5])
    heads = [t.permute(2, 0, 1, 3).flatten(2) for t in (q, k, v)]  # (T, B, H) each
    x_proj = torch.cat([*heads, i.permute(2, 0, 1), f.permute(2, 0, 1)], dim=-1)
    ref, ref_state, _ = mlstm_layer(x_proj, state, 2, spec, lengths, form="recurrent")
    valid = torch.arange(8).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    for h, final in (
        mlstm_parallel(q, k, v, i, f, state, spec, valid),
        mlstm_chunkwise(q, k, v, i, f, state, spec, valid, chunk_size=chunk),
    ):
        close(h.permute(2, 0, 1, 3).flatten(2), ref, 1e-12)
        states_close(final, ref_state, 1e-12)


def test_stabilizer_is_a_gauge() -> None:
    """With eps = 0, on and off give the same outputs and the same unscaled C e^m, n e^m."""
    on, off = make(num_heads=2, spec=MLSTMSpec()), make(num_heads=2, spec=MLSTMSpec(stabilizer=False))
    x = torch.randn(3, 7, 3, dtype=D64) * 2
    o1, (C1, n1, m1) = on(x)
    o2, (C2, n2, m2) = off(x)
    close(o1, o2, 1e-12)
    assert torch.equal(m2, torch.zeros_like(m2)) and m1.abs().max() > 0.5
    close(C1 * m1.exp()[..., None, None], C2, 1e-12)
    close(n1 * m1.exp()[..., None], n2, 1e-12)


def test_records_follow_the_equations() -> None:
    model = make(num_heads=2, form="recurrent")
    _, _, trace = model(torch.randn(2, 5, 3, dtype=D64), return_gates=True)
    g = {k: trace.get(k) for k in trace.names}
    assert g["normalizer"].shape == (2, 5, 2, 2) and g["denominator"].shape == (2, 5, 2)
    m_prev = torch.cat([torch.zeros_like(g["stabilizer"][:, :1]), g["stabilizer"][:, :-1]], dim=1)
    close(g["forget"], g["forget_raw"] * torch.exp(m_prev - g["stabilizer"]), 1e-12)
    assert (g["denominator"] >= torch.exp(-g["stabilizer"]) - 1e-15).all()
    assert (g["memory_norm"] > 0).all()


@pytest.mark.parametrize("form", ["parallel", "chunkwise", "recurrent"])
def test_gradcheck_float64(form: str) -> None:
    B, T, NH, DH = 2, 3, 1, 2
    spec = MLSTMSpec()
    x = torch.randn(T, B, 4 * NH * DH + 2 * NH, dtype=D64, requires_grad=True)
    st = [torch.randn(B, NH, DH, DH, dtype=D64), torch.randn(B, NH, DH, dtype=D64), torch.randn(B, NH, dtype=D64)]

    def f(x: Tensor, C: Tensor, n: Tensor, m: Tensor) -> Tensor:
        out, final, _ = mlstm_layer(x, MLSTMState(C, n, m), NH, spec, torch.tensor([3, 2]), form=form, chunk_size=2)
        return torch.cat([out.flatten(), final.memory.flatten(), final.normalizer.flatten()])

    assert torch.autograd.gradcheck(f, (x, *(s.requires_grad_() for s in st)))


def test_streaming_padding_unbatched_cell() -> None:
    model = make(3, 4, num_layers=2, num_heads=2)
    x = torch.randn(3, 6, 3, dtype=D64)
    chunked_equals_whole(model, x, 4)
    padding_and_packing(model, x, [6, 2, 4])
    unbatched_equals_batch_of_one(model, x)
    recorded_hidden_is_output(model, x)
    cell_equals_layer(lstmkit.MLSTMCell(3, 4, num_heads=2, dtype=D64), make(3, 4, num_heads=2), x)


def test_errors() -> None:
    boundary_errors(lambda i, h: lstmkit.MLSTM(i, h, dtype=D64), 3)
    with pytest.raises(ValueError, match="num_heads must divide hidden_size=6; got num_heads=4"):
        lstmkit.MLSTM(3, 6, num_heads=4)
    with pytest.raises(ValueError, match="form must be one of"):
        lstmkit.MLSTM(3, 4, form="fast")
    with pytest.raises(ValueError, match="not both 0"):
        MLSTMSpec(normalizer_floor=0.0)


def test_xlstm_init() -> None:
    model = lstmkit.MLSTM(3, 8, num_heads=4, init="xlstm")
    f_bias = model.bias_l0.detach()[3 * 8 + 4 : 3 * 8 + 8]
    close(f_bias.double(), torch.linspace(3.0, 6.0, 4, dtype=D64), 1e-6)
    assert torch.count_nonzero(model.weight_ih_l0[24:32]) == 0


# ------------------------------------------------------------------ the official package
def _official():  # type: ignore[no-untyped-def]
    return pytest.importorskip("xlstm.blocks.mlstm.backends", reason="xlstm (a test dependency) not installed")


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_parallel_equals_official_parallel(dtype: torch.dtype, tol: float) -> None:
    """xlstm's parallel_stabilized_simple (eps = 0) and lstmkit's parallel form from a fresh state:
    outputs and the gradients of q, k, v and both gate pre-activations."""
    backends = _official()
    (q, k, v), (i, f), _ = _random_case(7, T=8)
    a = [t.to(dtype).requires_grad_() for t in (q, k, v, i, f)]
    b = [t.to(dtype).requires_grad_() for t in (q, k, v, i, f)]
    ref = backends.parallel_stabilized_simple(a[0], a[1], a[2], a[3].unsqueeze(-1), a[4].unsqueeze(-1), eps=0.0)
    zero = MLSTMState(
        torch.zeros(2, 2, 3, 3, dtype=dtype), torch.zeros(2, 2, 3, dtype=dtype), torch.zeros(2, 2, dtype=dtype)
    )
    ours, _ = mlstm_parallel(*b, zero, MLSTMSpec(output_gate=False))
    close(ours, ref, tol)
    w = torch.randn_like(ref)
    (ref * w).sum().backward()
    (ours * w).sum().backward()
    for x, y in zip(b, a, strict=True):
        close(x.grad, y.grad, 10 * tol)


def test_recurrent_equals_official_recurrent_steps() -> None:
    """xlstm's recurrent_step_stabilized_simple (eps = 1e-6) stepped over T from zeros, and
    lstmkit's chunkwise form with eps = 1e-6: the same gauge, so outputs and every state equal."""
    backends = _official()
    (q, k, v), (i, f), _ = _random_case(3, T=8)
    B, NH, T, DH = q.shape
    C, n, m = (
        torch.zeros(B, NH, DH, DH, dtype=D64),
        torch.zeros(B, NH, DH, 1, dtype=D64),
        torch.zeros(B, NH, 1, 1, dtype=D64),
    )
    outs = []
    for t in range(T):
        one = lambda z: z[:, :, t : t + 1].clone()  # noqa: E731, B023
        h, (C, n, m) = backends.recurrent_step_stabilized_simple(
            C, n, m, one(q), one(k), one(v), i[:, :, t, None, None], f[:, :, t, None, None]
        )
        outs.append(h)
    ref = torch.cat(outs, dim=2)
    zero = MLSTMState(torch.zeros_like(C), torch.zeros(B, NH, DH, dtype=D64), torch.zeros(B, NH, dtype=D64))
    ours, final = mlstm_chunkwise(q, k, v, i, f, zero, MLSTMSpec(eps=1e-6, output_gate=False), chunk_size=3)
    close(ours, ref, 1e-12)
    states_close(final, (C, n.squeeze(-1), m.flatten(2).squeeze(-1)), 1e-12)


def test_module_equals_official_mlstm_cell() -> None:
    """The official mLSTMCell (gates from cat(q, k, v), group norm after) against an lstmkit MLSTM
    without output gate whose i, f rows are the composition of its gate weights with the q, k, v rows;
    outputs through the official cell's own norm. Its parallel form keeps no initial-state term, so
    with eps = 1e-6 the two gauges differ: equal within 1e-7 here."""
    cell_mod = pytest.importorskip("xlstm.blocks.mlstm.cell", reason="xlstm (a test dependency) not installed")
    I, E, NH, B, T = 3, 8, 2, 2, 7
    torch.manual_seed(2)
    official = cell_mod.mLSTMCell(cell_mod.mLSTMCellConfig(context_length=T, embedding_dim=E, num_heads=NH)).double()
    with torch.no_grad():
        for p in (official.igate.weight, official.fgate.weight):
            p.normal_(0.0, 0.3)
    ours = lstmkit.MLSTM(I, E, num_heads=NH, batch_first=True, spec=MLSTMSpec(eps=1e-6, output_gate=False), dtype=D64)
    W, b = ours.weight_ih_l0, ours.bias_l0
    with torch.no_grad():
        for rows, gate in (
            (slice(3 * E, 3 * E + NH), official.igate),
            (slice(3 * E + NH, 3 * E + 2 * NH), official.fgate),
        ):
            W[rows] = gate.weight @ W[: 3 * E]
            b[rows] = gate.weight @ b[: 3 * E] + gate.bias
    x = torch.randn(B, T, I, dtype=D64) * 2
    qkv = torch.nn.functional.linear(x, W[: 3 * E], b[: 3 * E])
    ref = official(*qkv.split(E, dim=-1))
    h, _ = ours(x)
    out = official.outnorm(h.view(B, T, NH, E // NH).transpose(1, 2)).transpose(1, 2).reshape(B, T, E)
    close(out, ref, 1e-7)
    step_state, steps = None, []  # its step() runs the recurrent form, whose gauge is lstmkit's
    for t in range(T):
        y, step_state = official.step(*(z[:, t : t + 1].clone() for z in qkv.split(E, dim=-1)), mlstm_state=step_state)
        steps.append(y)
    close(out, torch.cat(steps, dim=1), 1e-7)
    recurrent = lstmkit.MLSTM(I, E, num_heads=NH, batch_first=True, spec=ours.spec, form="recurrent", dtype=D64)
    recurrent.load_state_dict(ours.state_dict())
    h_rec, (C, n, m) = recurrent(x)
    out_rec = official.outnorm(h_rec.view(B, T, NH, E // NH).transpose(1, 2)).transpose(1, 2).reshape(B, T, E)
    close(out_rec, torch.cat(steps, dim=1), 1e-12)
    close(C[0], step_state[0], 1e-12)
    close(n[0], step_state[1].squeeze(-1), 1e-12)
    close(m[0], step_state[2].flatten(1), 1e-12)
