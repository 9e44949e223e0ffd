"""lstmkit.interop.from_xlstm against the official xLSTM package (Beck et al. 2024): its sLSTMLayer
(vanilla backend) and mLSTMLayer forwards, its sLSTM pointwise step and vanilla recurrence, and
mlstm_kernels' native parallel, recurrent and chunkwise functions; float32 to 1e-5, float64 to 1e-10.
Small shapes; xlstm is a test-only dependency (skipped without it)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("xlstm", reason="the official xlstm package is a test-only dependency")
pytest.importorskip("mlstm_kernels", reason="the official mlstm_kernels package is a test-only dependency")

from mlstm_kernels.torch.chunkwise.native import mlstm_chunkwise__native_autograd
from mlstm_kernels.torch.parallel.native import mlstm_parallel__native_autograd
from mlstm_kernels.torch.recurrent.native_sequence import mlstm_recurrent_sequence__native_fw
from xlstm.blocks.mlstm.layer import mLSTMLayer, mLSTMLayerConfig
from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig
from xlstm.blocks.slstm.src.vanilla import slstm_forward
from xlstm.blocks.slstm.src.vanilla.slstm import slstm_forward_pointwise

from lstmkit.families import MLSTMSpec, MLSTMState, SLSTMSpec, SLSTMState
from lstmkit.families.mlstm import mlstm_chunkwise, mlstm_parallel, mlstm_step
from lstmkit.families.slstm import slstm_layer, slstm_step
from lstmkit.interop import from_xlstm
from lstmkit.modules import MLSTMBlockLayer, SLSTMBlockLayer

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = (torch.float32, torch.float64)


def close(a: Tensor, b: Tensor, tol: float) -> None:
    err = (a - b).abs().max().item()
    assert err <= tol, f"max abs difference {err:.3g} > {tol:g}"


def close_grad(a: Tensor, b: Tensor, tol: float) -> None:
    """Gradients sum over every output they reach: the tolerance scales with the largest entry when above 1."""
    close(a, b, tol * max(1.0, b.abs().max().item()))


def randomize_(module: nn.Module, std: float, seed: int) -> None:
    """Every parameter N(0, std^2): the official inits leave gates and recurrent weights at zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)


def official_slstm(H: int, NH: int, K: int, dtype: torch.dtype, seed: int = 0) -> sLSTMLayer:
    torch.manual_seed(seed)
    layer = sLSTMLayer(sLSTMLayerConfig(embedding_dim=H, num_heads=NH, backend="vanilla", conv1d_kernel_size=K))
    layer = layer.to(dtype).eval()
    randomize_(layer, 0.4, seed)
    return layer


def official_mlstm(E: int, NH: int, K: int, ctx: int, dtype: torch.dtype, bias: bool = False) -> mLSTMLayer:
    torch.manual_seed(0)
    cfg = mLSTMLayerConfig(
        embedding_dim=E,
        num_heads=NH,
        context_length=ctx,
        conv1d_kernel_size=K,
        qkv_proj_blocksize=4,
        proj_factor=2.0,
        round_proj_up_to_multiple_of=8,
        bias=bias,
    )
    layer = mLSTMLayer(cfg).to(dtype).eval()
    randomize_(layer, 0.3, 1)
    return layer


# ---------------------------------------------------------------- sLSTM layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("H", "NH", "K"), [(8, 2, 4), (6, 1, 0), (12, 3, 2)])
def test_slstm_layer_equals_the_official_forward_state_and_input_gradient(
    dtype: torch.dtype, H: int, NH: int, K: int
) -> None:
    theirs = official_slstm(H, NH, K, dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, SLSTMBlockLayer)
    x = torch.randn(3, 9, H, dtype=dtype, requires_grad=True)
    y, state = theirs(x, return_last_state=True)
    (gx,) = torch.autograd.grad((y * torch.cos(y)).sum(), x)
    y2, ours_state = ours(x)
    (gx2,) = torch.autograd.grad((y2 * torch.cos(y2)).sum(), x)
    tol = TOL[dtype]
    close(y2, y, tol)
    close_grad(gx2, gx, tol)
    for mine, official in zip(ours_state.cell, state["slstm_state"], strict=True):  # h, c, n, m
        close(mine[0], official, tol)
    if K > 0:
        close(ours_state.conv, state["conv_state"], 0.0)
    y3, _, trace = ours(x, return_gates=True)  # the recording (reference) path computes the same
    close(y3, y, tol)
    assert trace.get("forget").shape == (3, 9, H)


@pytest.mark.parametrize("dtype", DTYPES)
def test_slstm_layer_carries_its_state_like_the_official_one(dtype: torch.dtype) -> None:
    theirs, x = official_slstm(8, 2, 3, dtype), torch.randn(2, 11, 8, dtype=dtype)
    ours = from_xlstm(theirs)
    y, _ = theirs(x, return_last_state=True)
    y1, s1 = theirs(x[:, :4], return_last_state=True)
    y2, _ = theirs(x[:, 4:], conv_state=s1["conv_state"], slstm_state=s1["slstm_state"], return_last_state=True)
    o1, t1 = ours(x[:, :4])
    o2, _ = ours(x[:, 4:], t1)
    close(torch.cat([o1, o2], 1), y, TOL[dtype])
    close(torch.cat([y1, y2], 1), y, TOL[dtype])


def test_slstm_input_gate_reads_the_layer_named_fgate() -> None:
    """The official layer computes (i, f, z, o) = (fgate(u), igate(u), zgate(x), ogate(x))."""
    theirs = official_slstm(8, 2, 4, torch.float64)
    ours = from_xlstm(theirs)
    w = ours.cell.weight_ih_l0  # (4H, 2H): columns u then x
    H = 8
    assert torch.equal(w[:H, :H], torch.block_diag(*theirs.fgate.weight.detach()))
    assert torch.equal(w[H : 2 * H, :H], torch.block_diag(*theirs.igate.weight.detach()))
    assert torch.equal(w[2 * H : 3 * H, H:], torch.block_diag(*theirs.zgate.weight.detach()))
    assert not w[:H, H:].any() and not w[2 * H :, :H].any()
    with torch.no_grad():  # and swapping the two official projections changes the function
        theirs.fgate.weight.mul_(3.0)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    assert (ours(x)[0] - theirs(x)).abs().max() > 1e-3


# ---------------------------------------------------------------- sLSTM step and recurrence


def _official_recurrent_kernel(weight_hh: Tensor, NH: int) -> Tensor:
    """lstmkit (4H, DH) [gate, head, out, in] -> the vanilla backend's (NH, 4 DH, DH)."""
    H4, DH = weight_hh.shape
    return weight_hh.view(4, NH, DH, DH).permute(1, 0, 2, 3).reshape(NH, H4 // NH, DH)


@pytest.mark.parametrize("dtype", DTYPES)
def test_slstm_step_equals_the_official_pointwise_step_from_a_running_state(dtype: torch.dtype) -> None:
    B, H = 4, 6
    g = torch.Generator().manual_seed(3)
    x_proj, b = torch.randn(B, 4 * H, generator=g, dtype=dtype), torch.randn(4 * H, generator=g, dtype=dtype)
    h, c = torch.randn(2, B, H, generator=g, dtype=dtype)
    n = torch.rand(B, H, generator=g, dtype=dtype) + 0.5
    m = torch.randn(B, H, generator=g, dtype=dtype)
    weight_hh = torch.zeros(4 * H, H, dtype=dtype)  # the recurrence is checked below; here Ry = 0
    new, gates = slstm_step(x_proj + b, SLSTMState(h, c, n, m), weight_hh, 1, SLSTMSpec())
    states, official_gates = slstm_forward_pointwise(x_proj, torch.zeros_like(x_proj), b, torch.stack([h, c, n, m]), {})
    for mine, theirs in zip(new, states, strict=True):
        close(mine, theirs, TOL[dtype])
    i, f, _, o = official_gates
    close(gates["input"], i, TOL[dtype])
    close(gates["forget"], f, TOL[dtype])
    close(gates["output"], o, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_slstm_recurrence_equals_the_official_vanilla_forward(dtype: torch.dtype) -> None:
    """From a fresh state the official step sets m_1 = log i_1 (it tests n == 0); lstmkit does the
    same from m_0 = -inf, and from m_0 = 0 gives the same outputs with (c, n) in another gauge."""
    T, B, H, NH = 7, 3, 8, 2
    g = torch.Generator().manual_seed(4)
    x = torch.randn(T, B, 4 * H, generator=g, dtype=dtype)
    b = torch.randn(4 * H, generator=g, dtype=dtype)
    weight_hh = torch.randn(4 * H, H // NH, generator=g, dtype=dtype) * 0.5
    all_states, _, _ = slstm_forward(
        x, torch.zeros(4, B, H, dtype=dtype), _official_recurrent_kernel(weight_hh, NH), b, slstm_forward_pointwise
    )
    zeros = torch.zeros(B, H, dtype=dtype)
    fresh = SLSTMState(zeros, zeros, zeros, torch.full_like(zeros, -math.inf))
    out, final, _ = slstm_layer(x + b, fresh, weight_hh, NH, SLSTMSpec())
    close(out, all_states[0, 1:], TOL[dtype])
    for mine, theirs in zip(final, all_states[:, -1], strict=True):
        close(mine, theirs, TOL[dtype])
    out0, final0, _ = slstm_layer(x + b, SLSTMState(zeros, zeros, zeros, zeros), weight_hh, NH, SLSTMSpec())
    close(out0, all_states[0, 1:], TOL[dtype])
    m, m_theirs = final0.stabilizer, all_states[3, -1]
    close(final0.cell * torch.exp(m - m_theirs), all_states[1, -1], TOL[dtype])  # c e^{m}: the same cell
    close(final0.normalizer * torch.exp(m - m_theirs), all_states[2, -1], TOL[dtype])


# ---------------------------------------------------------------- mLSTM layer


def _official_layer_with(layer: mLSTMLayer, x: Tensor, core) -> Tensor:  # type: ignore[no-untyped-def]
    """The official mLSTMLayer.forward, step by step, with its cell's h~ computed by ``core(q, k, v, i, f)``
    ((B, NH, T, DH) and (B, NH, T)): lets mlstm_kernels' functions run past ``context_length``."""
    cfg, cell = layer.config, layer.mlstm_cell
    B, T, _ = x.shape
    a, z = layer.proj_up(x).split(cfg._inner_embedding_dim, dim=-1)
    u = layer.conv_act_fn(layer.conv1d(a))
    q, k, v = layer.q_proj(u), layer.k_proj(u), layer.v_proj(a)
    qkv = torch.cat([q, k, v], -1)
    i, f = cell.igate(qkv).transpose(1, 2), cell.fgate(qkv).transpose(1, 2)  # (B, NH, T)

    def heads(t: Tensor) -> Tensor:
        return t.view(B, T, cfg.num_heads, -1).transpose(1, 2)

    h = core(heads(q), heads(k), heads(v), i, f)  # (B, NH, T, DH)
    h = cell.outnorm(h).transpose(1, 2).reshape(B, T, -1)
    h = (h + layer.learnable_skip * u) * layer.ogate_act_fn(z)
    return layer.proj_down(h)


def _kernel_cores(B: int, NH: int, DH: int, dtype: torch.dtype, chunk_size: int) -> dict[str, Any]:
    """mlstm_kernels' native functions as ``core(q, k, v, i, f)``, each from nothing (m_0 = -inf)."""
    fresh_m = torch.full((B, NH, 1), -math.inf, dtype=dtype)
    C0, n0 = torch.zeros(B, NH, DH, DH, dtype=dtype), torch.zeros(B, NH, DH, dtype=dtype)

    def parallel(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor) -> Tensor:
        return mlstm_parallel__native_autograd(q, k, v, i, f)

    def chunkwise(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor) -> Tensor:
        return mlstm_chunkwise__native_autograd(q, k, v, i, f, m_initial=fresh_m[..., 0], chunk_size=chunk_size)

    def recurrent(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor) -> Tensor:
        return mlstm_recurrent_sequence__native_fw(q, k, v, i, f, C0, n0, fresh_m, dtype_state=dtype)

    return {"parallel": parallel, "chunkwise": chunkwise, "recurrent": recurrent}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["chunkwise", "parallel", "recurrent"])
def test_mlstm_layer_equals_the_official_forward_and_input_gradient(dtype: torch.dtype, form: str) -> None:
    theirs = official_mlstm(8, 2, 3, ctx=10, dtype=dtype, bias=form == "parallel")
    ours = from_xlstm(theirs)
    assert isinstance(ours, MLSTMBlockLayer)
    ours.cell.form, ours.cell.chunk_size = form, 4
    for T in (10, 7):  # the official buffer's length, and shorter
        x = torch.randn(2, T, 8, dtype=dtype, requires_grad=True)
        y = theirs(x)
        (gx,) = torch.autograd.grad((y * torch.cos(y)).sum(), x)
        y2, _ = ours(x)
        (gx2,) = torch.autograd.grad((y2 * torch.cos(y2)).sum(), x)
        close(y2, y, TOL[dtype])
        close_grad(gx2, gx, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlstm_layer_runs_past_the_official_context_length(dtype: torch.dtype) -> None:
    theirs = official_mlstm(8, 2, 4, ctx=8, dtype=dtype)
    ours = from_xlstm(theirs)
    ours.cell.chunk_size = 8
    x = torch.randn(2, 24, 8, dtype=dtype)
    with pytest.raises(RuntimeError):  # the official layer's causal mask has context_length rows
        theirs(x)
    y, _ = ours(x)
    with torch.no_grad():
        for core in _kernel_cores(2, 2, 8, dtype, chunk_size=8).values():  # each from m_0 = -inf
            close(y, _official_layer_with(theirs, x, core), TOL[dtype])
        o1, s1 = ours(x[:, :13])  # and in two calls carrying the state
        o2, _ = ours(x[:, 13:], s1)
        close(torch.cat([o1, o2], 1), y, TOL[dtype])


# ---------------------------------------------------------------- mLSTM cell forms vs mlstm_kernels


def _qkvif(B: int, NH: int, T: int, DH: int, dtype: torch.dtype, seed: int) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, NH, T, DH, generator=g, dtype=dtype) * 0.5 for _ in range(3))
    i = torch.randn(B, NH, T, generator=g, dtype=dtype) * 2
    f = torch.randn(B, NH, T, generator=g, dtype=dtype) * 2 + 2
    return q, k, v, i, f


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlstm_forms_equal_mlstm_kernels_native_functions(dtype: torch.dtype) -> None:
    """mlstm_kernels keeps C = sum i k v^T with the raw k and scales q; lstmkit scales k by 1/sqrt(DH):
    the states differ by that factor, the outputs not at all."""
    B, NH, T, DH = 2, 2, 24, 4
    spec, tol = MLSTMSpec(eps=1e-6, output_gate=False), TOL[dtype]
    q, k, v, i, f = _qkvif(B, NH, T, DH, dtype, 5)
    g = torch.Generator().manual_seed(6)
    C0 = torch.randn(B, NH, DH, DH, generator=g, dtype=dtype) * 0.5
    n0 = torch.randn(B, NH, DH, generator=g, dtype=dtype)
    m0 = torch.randn(B, NH, generator=g, dtype=dtype)
    root = math.sqrt(DH)
    ours_start = MLSTMState(C0 / root, n0 / root, m0)

    # from nothing (m_0 = -inf): the official parallel form
    fresh = MLSTMState(torch.zeros_like(C0), torch.zeros_like(n0), torch.full_like(m0, -math.inf))
    h_par, _ = mlstm_parallel(q, k, v, i, f, fresh, spec)
    close(h_par, mlstm_parallel__native_autograd(q, k, v, i, f), tol)

    # from a given state: the recurrent and chunkwise native functions, outputs and last states
    h_rec, (C_r, n_r, m_r) = mlstm_recurrent_sequence__native_fw(
        q, k, v, i, f, C0, n0, m0[..., None], return_last_states=True, dtype_state=dtype
    )
    h_chk, (C_c, n_c, m_c) = mlstm_chunkwise__native_autograd(
        q, k, v, i, f, C0, n0, m0[..., None], return_last_states=True, chunk_size=8
    )
    close(h_chk, h_rec, tol)
    h_ours, last = mlstm_chunkwise(q, k, v, i, f, ours_start, spec, chunk_size=5)
    h_ours_par, _ = mlstm_parallel(q, k, v, i, f, ours_start, spec)
    close(h_ours, h_rec, tol)
    close(h_ours_par, h_rec, tol)
    close(last.memory * root, C_r, tol)
    close(last.normalizer * root, n_r, tol)
    close(last.stabilizer, m_r[..., 0], tol)
    close(last.memory * root, C_c, tol)
    close(last.normalizer * root, n_c, tol)
    close(last.stabilizer, m_c.reshape(B, NH), tol)
    state, steps = ours_start, []  # and the recurrent step, one t at a time
    for t in range(T):
        h, state, _ = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], state, spec)
        steps.append(h)
    close(torch.stack(steps, 2), h_rec, tol)


def test_block_layers_gradcheck_from_a_fresh_state() -> None:
    """A fresh state starts at m_0 = -inf: the gradients through it are finite and right (float64)."""
    slstm = from_xlstm(official_slstm(4, 2, 2, torch.float64))
    mlstm = from_xlstm(official_mlstm(4, 2, 2, ctx=8, dtype=torch.float64))
    mlstm.cell.chunk_size = 3
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    for layer in (slstm, mlstm):
        assert torch.autograd.gradcheck(lambda t, layer=layer: layer(t)[0], (x,))
        layer(x)[0].square().sum().backward()
        assert all(p.grad is not None and bool(p.grad.isfinite().all()) for p in layer.parameters())


def test_block_layers_without_the_stabilizer_start_at_m_0() -> None:
    """m = -inf would stay -inf without the stabilizer (i = e^{log i - m} = inf): a fresh state starts at 0."""
    torch.manual_seed(0)
    slstm = SLSTMBlockLayer(8, 2, spec=SLSTMSpec(stabilizer=False), dtype=torch.float64)
    mlstm = MLSTMBlockLayer(8, 16, 2, spec=MLSTMSpec(stabilizer=False, output_gate=False), dtype=torch.float64)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    for layer in (slstm, mlstm):
        y, state = layer(x)
        assert bool(y.isfinite().all()) and not state.cell[-1].any()  # m: zeros throughout


# ---------------------------------------------------------------- bad input


def test_from_xlstm_rejects_other_objects_and_unsupported_configs() -> None:
    for bad in (nn.LSTM(4, 4), "sLSTMLayer", None):
        with pytest.raises(TypeError, match=r"^from_xlstm expects an xlstm sLSTMLayer .* or mLSTMLayer; got [^\n]*$"):
            from_xlstm(bad)
    lstm_fn = sLSTMLayer(sLSTMLayerConfig(embedding_dim=8, num_heads=2, backend="vanilla", function="lstm"))
    with pytest.raises(
        ValueError, match=r"^from_xlstm supports the sLSTMLayer with function='slstm'; got function='lstm'$"
    ):
        from_xlstm(lstm_fn)
    other_backend = official_slstm(8, 2, 0, torch.float32)
    other_backend.slstm_cell = nn.Identity()
    other_backend.config.backend = "cuda"
    with pytest.raises(
        ValueError, match=r"^from_xlstm supports the sLSTMLayer with backend='vanilla'; got backend='cuda'$"
    ):
        from_xlstm(other_backend)
    other_fn = official_mlstm(8, 2, 4, ctx=8, dtype=torch.float32)
    other_fn.mlstm_cell.backend_fn = mlstm_chunkwise__native_autograd
    with pytest.raises(ValueError, match=r"^from_xlstm supports the mLSTMLayer with .*; got mlstm_chunkwise"):
        from_xlstm(other_fn)


def test_from_xlstm_points_a_block_to_its_layer() -> None:
    from xlstm.blocks.slstm.block import sLSTMBlock, sLSTMBlockConfig

    cfg = sLSTMLayerConfig(embedding_dim=8, num_heads=2, backend="vanilla")
    block = sLSTMBlock(sLSTMBlockConfig(slstm=cfg, feedforward=None, _num_blocks=1, _block_idx=0))
    with pytest.raises(TypeError, match=r"sLSTMBlock \(convert its layer: from_xlstm\(block\.xlstm\)\)$"):
        from_xlstm(block)
    assert isinstance(from_xlstm(block.xlstm), SLSTMBlockLayer)


def test_block_layers_name_the_expected_input() -> None:
    with pytest.raises(ValueError, match=r"^SLSTMBlockLayer input must be \(B, T, 8\) with T >= 1; got \(2, 3, 5\)$"):
        SLSTMBlockLayer(8, 2)(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"^conv_kernel_size must be an int >= 0"):
        MLSTMBlockLayer(8, 16, 2, conv_kernel_size=-1)
    with pytest.raises(ValueError, match=r"num_heads must divide hidden_size=16; got num_heads=3"):
        MLSTMBlockLayer(8, 16, 3)
    layer, x = SLSTMBlockLayer(8, 2), torch.randn(2, 3, 8)
    with pytest.raises(
        TypeError, match=r"^SLSTMBlockLayer state must be a BlockState\(conv, cell\) or None; got Tensor$"
    ):
        layer(x, torch.zeros(2, 3, 8))
    _, state = layer(x)
    with pytest.raises(ValueError, match=r"^CausalConv1d state must be \(2, 3, 8\); got \(1, 3, 8\)$"):
        layer(x, (state.conv[:1], state.cell))
    with pytest.raises(ValueError, match=r"^state h must have shape \(1, 2, 8\)"):
        layer(x, (state.conv, tuple(t[:, :1] for t in state.cell)))


# ---------------------------------------------------------------- measured differences (not a test)


def measure() -> None:
    """Print the max abs differences at a larger size than the tests use: ``python tests/test_from_xlstm.py``."""

    def d(a: Tensor, b: Tensor) -> float:
        return (a - b).abs().max().item()

    torch.manual_seed(0)
    for dtype in DTYPES:
        theirs, x = official_slstm(16, 4, 4, dtype), torch.randn(4, 32, 16, dtype=dtype, requires_grad=True)
        ours = from_xlstm(theirs)
        y, st = theirs(x, return_last_state=True)
        (gx,) = torch.autograd.grad(y.sum(), x)
        y2, s2 = ours(x)
        (gx2,) = torch.autograd.grad(y2.sum(), x)
        state = max(d(a[0], b) for a, b in zip(s2.cell, st["slstm_state"], strict=True))
        where = "sLSTMLayer B=4 T=32 H=16 NH=4 K=4"
        print(f"{dtype} {where}: output {d(y2, y):.1e}, d/dx {d(gx2, gx):.1e}, state {state:.1e}")
        theirs_m = official_mlstm(16, 4, 4, ctx=32, dtype=dtype)
        ours_m = from_xlstm(theirs_m)
        ours_m.cell.chunk_size = 8
        y = theirs_m(x)
        (gx,) = torch.autograd.grad(y.sum(), x)
        for form in ("chunkwise", "parallel", "recurrent"):
            ours_m.cell.form = form
            y2, _ = ours_m(x)
            (gx2,) = torch.autograd.grad(y2.sum(), x)
            print(f"{dtype} mLSTMLayer E=16 Ei=32 NH=4 T=32 {form}: output {d(y2, y):.1e}, d/dx {d(gx2, gx):.1e}")
        ours_m.cell.form = "chunkwise"
        long = torch.randn(4, 96, 16, dtype=dtype)
        cores = _kernel_cores(4, 4, 8, dtype, chunk_size=32)
        with torch.no_grad():
            y, _ = ours_m(long)
            for name, core in cores.items():
                diff = d(y, _official_layer_with(theirs_m, long, core))
                print(f"{dtype} mLSTMLayer T=96 > context_length=32 vs mlstm_kernels {name}: output {diff:.1e}")

    theirs_32, theirs_64 = official_mlstm(16, 4, 4, 32, torch.float32), official_mlstm(16, 4, 4, 32, torch.float64)
    x = torch.randn(4, 32, 16, dtype=torch.float64)
    with torch.no_grad():
        truth = theirs_64(x)
        print(f"float32 mLSTMLayer, max |y| {truth.abs().max():.2g}, against the official float64 layer:")
        print(f"  the official float32 layer {d(theirs_32(x.float()).double(), truth):.1e}")
        print(f"  from_xlstm's float32 module {d(from_xlstm(theirs_32)(x.float())[0].double(), truth):.1e}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    measure()
