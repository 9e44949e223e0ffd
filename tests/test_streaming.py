"""Streams: the state a layer returns carries everything the next call needs, for every spec, so a
sequence fed chunk by chunk (or one step at a time) equals one call on the whole of it; and the
Stream object that holds B independent streams, resets some of them and refuses what cannot stream."""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmkit
from lstmkit import kernels
from lstmkit.spec import PRESETS

I, H, B, T = 3, 5, 3, 9
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}

# every preset once, each with another layout: layers 1-3, projection, batch_first, zoneout and
# recurrent dropout (evaluation mode: zoneout acts there as its expectation)
LAYOUTS = [
    {"num_layers": 1},
    {"num_layers": 2, "batch_first": True, "proj_size": 2},
    {"num_layers": 3, "zoneout": (0.3, 0.2)},
    {"num_layers": 2, "recurrent_dropout": 0.25, "batch_first": True},
]
CASES = [(name, LAYOUTS[k % len(LAYOUTS)]) for k, name in enumerate(sorted(PRESETS))]


def _model(name: str, dtype: torch.dtype, **kw: object) -> lstmkit.LSTM:
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, spec=name, dtype=dtype, **kw).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # weights beyond torch's small init so that the gates saturate now and then
        for p in model.parameters():
            p.mul_(1.5)
    return model


def _chunks(x: torch.Tensor, cuts: list[int], batch_first: bool) -> list[torch.Tensor]:
    bounds = [0, *cuts, x.shape[1 if batch_first else 0]]
    return [x[:, a:b] if batch_first else x[a:b] for a, b in itertools.pairwise(bounds)]


def _run_chunked(model: lstmkit.LSTM, x: torch.Tensor, cuts: list[int]) -> tuple[torch.Tensor, tuple]:
    state, outs = None, []
    for chunk in _chunks(x, cuts, model.batch_first):
        out, state = model(chunk, state)
        outs.append(out)
    return torch.cat(outs, dim=1 if model.batch_first else 0), state


@pytest.mark.parametrize("kernel", ["auto", "reference"])
@pytest.mark.parametrize(("name", "layout"), CASES, ids=[n for n, _ in CASES])
def test_chunked_and_stepped_equal_one_call(name: str, layout: dict, kernel: str) -> None:
    """Outputs and final states of random chunkings and of T = 1 steps equal one whole call: float32
    within 1e-6 and float64 within 1e-12 on the kernels a model runs on by default; the reference
    loop (the oracle, and the fallback) in float64, since in float32 its BLAS products round with
    the memory alignment of each call's operands, which layer norm and depth then amplify (measured
    up to 1.4e-5 for three layer-norm layers)."""
    gen = torch.Generator().manual_seed(len(name))
    for dtype in (torch.float32, torch.float64) if kernel == "auto" else (torch.float64,):
        model = _model(name, dtype, **layout)
        shape = (B, T, I) if model.batch_first else (T, B, I)
        x = torch.randn(shape, generator=gen, dtype=dtype)
        cuts = sorted(torch.randperm(T - 1, generator=gen)[:3].add(1).tolist())  # a random chunking
        with torch.no_grad(), kernels.use(kernel):
            whole, final = model(x)
            assert len(final) == (3 if model.spec.full_gate_recurrence else 2)
            for split in (cuts, list(range(1, T))):  # random chunks, then T = 1 steps
                got, state = _run_chunked(model, x, split)
                torch.testing.assert_close(got, whole, atol=TOL[dtype], rtol=0)
                assert len(state) == len(final)
                for a, b in zip(state, final, strict=True):
                    torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=0)


def test_fgr_state_holds_the_last_gates() -> None:
    """The third element of FGR's state is the last step's i, f, o, as the recorded gates show it."""
    model = _model("fgr", torch.float64, num_layers=2)
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        _, (_, _, g), trace = model(x, return_gates=True)
    for layer in range(2):
        last = torch.cat([trace.get(n, layer=layer)[-1] for n in ("input", "forget", "output")], dim=1)  # (T, B, H)
        torch.testing.assert_close(g[layer], last, atol=1e-12, rtol=0)


def test_fgr_chunks_with_gradients_match_one_call() -> None:
    """Training through carried state: the gradients of chunked calls equal one call's (the carried
    gates are part of the graph)."""
    model = _model("fgr", torch.float64, num_layers=2)
    x = torch.randn(T, B, I, dtype=torch.float64)
    whole, _ = model(x)
    grads_whole = torch.autograd.grad(whole.square().sum(), list(model.parameters()))
    got, _ = _run_chunked(model, x, [2, 5])
    grads_chunked = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    for a, b in zip(grads_chunked, grads_whole, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.usefixtures("triton_interpreter")
def test_triton_layer_carries_fgr_state() -> None:
    pytest.importorskip("triton", reason="the Triton kernel needs the triton package")
    model = _model("fgr", torch.float32)
    x = torch.randn(4, 2, I)
    with torch.no_grad(), kernels.use("reference"):
        whole, final = model(x)
    with torch.no_grad(), kernels.use("triton"):
        got, state = _run_chunked(model, x, [1, 3])
    torch.testing.assert_close(got, whole, atol=1e-6, rtol=0)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------- Stream


@pytest.mark.parametrize("name", ["vanilla", "peephole", "fgr", "layernorm"])
def test_stream_reset_starts_one_stream_anew_and_leaves_the_others(name: str) -> None:
    model = _model(name, torch.float64, num_layers=2, batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    stream = lstmkit.Stream(model, batch_size=B)
    with torch.no_grad():
        first = stream(x[:, :4])
        before = stream.state
        assert before is not None
        stream.reset(torch.tensor([False, True, False]))
        after = stream.state
        assert after is not None
        for a, b in zip(after, before, strict=True):
            assert torch.equal(a[:, [0, 2]], b[:, [0, 2]])  # the others are untouched, bit for bit
            assert torch.all(a[:, 1] == 0)
        rest = stream(x[:, 4:])
        torch.testing.assert_close(torch.cat([first, rest], 1)[[0, 2]], model(x)[0][[0, 2]], atol=1e-12, rtol=0)
        torch.testing.assert_close(rest[1], model(x[1:2, 4:])[0][0], atol=1e-12, rtol=0)  # a fresh stream


def test_stream_frames_equal_one_call_and_record_gates() -> None:
    model = _model("peephole", torch.float64, num_layers=2)  # time-major
    x = torch.randn(T, B, I, dtype=torch.float64)
    stream = model.stream(B)
    with torch.no_grad():
        frames = torch.stack([stream(x[t]) for t in range(T)])
        whole, (h, _) = model(x)
        torch.testing.assert_close(frames, whole, atol=1e-12, rtol=0)
        state = stream.state
        assert state is not None
        torch.testing.assert_close(state[0], h, atol=1e-12, rtol=0)
        stream.reset()
        assert stream.state is None
        _, trace = stream(x[:3], return_gates=True)
        _, _, trace_whole = model(x[:3], return_gates=True)
    torch.testing.assert_close(trace.get("forget", layer=1), trace_whole.get("forget", layer=1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["vanilla", "cifg", "fgr"])
def test_stream_of_a_cell_equals_the_layer(name: str) -> None:
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(I, H, spec=name, dtype=torch.float64)
    layer = lstmkit.LSTM(I, H, spec=name, dtype=torch.float64)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(T, B, I, dtype=torch.float64)
    stream = cell.stream(B)
    with torch.no_grad():
        got = torch.cat([stream(x[:4]), stream(x[4])[None], stream(x[5:])])
        want, final = layer(x)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    state = stream.state
    assert state is not None and len(state) == len(final)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b[0], atol=1e-12, rtol=0)
    _, gates = stream(x[0], return_gates=True)
    assert gates.hidden.shape == (B, H)


@pytest.mark.parametrize("tokens", [False, True])
def test_stream_of_a_trained_model_equals_its_whole_sequence_prediction(tokens: bool) -> None:
    from lstmkit.train import ModelConfig, build_model

    config = ModelConfig(input_size=2, output_size=3, hidden=8, layers=2, vocab_size=7 if tokens else None)
    model = build_model(config, seed=1).double().eval()
    x = torch.randint(0, 7, (B, T)) if tokens else torch.randn(B, T, 2, dtype=torch.float64)
    stream = lstmkit.Stream(model, batch_size=B)
    with torch.no_grad():
        frames = torch.stack([stream(x[:, t]) for t in range(T)], dim=1)  # (B, T, O)
        torch.testing.assert_close(frames[:, -1], model(x), atol=1e-12, rtol=0)


def test_stream_detach_cuts_the_graph() -> None:
    model = _model("peephole", torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    stream = model.stream(B)
    stream(x[:4])
    stream.detach()
    state = stream.state
    assert state is not None and all(not t.requires_grad for t in state)
    out = stream(x[4:])
    # the gradient w.r.t. the first chunk's input is cut: only the second chunk's steps contribute
    x2 = x[4:].clone().requires_grad_(True)
    ref = lstmkit.LSTM(I, H, spec="peephole", dtype=torch.float64)
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(out, ref(x2, tuple(state))[0], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------- bad input


def test_bad_state_and_stream_input_get_one_line_errors() -> None:
    fgr = _model("fgr", torch.float32, num_layers=2)
    x = torch.randn(T, B, I)
    h, c = torch.zeros(2, B, H), torch.zeros(2, B, H)
    cases = [
        (lambda: fgr(x, (h, c)), TypeError, r"hx must be a tuple \(h_0, c_0, g_0\).*got tuple of length 2"),
        (lambda: fgr(x, (h, c, torch.zeros(2, B, 2 * H))), ValueError, r"g_0 must have shape \(2, 3, 15\)"),
        (lambda: fgr(x, (h, c, torch.zeros(2, B, 3 * H, dtype=torch.float64))), TypeError, r"g_0.* dtype"),
        (lambda: fgr(x, (h, c, torch.zeros(2, B, 3 * H, device="meta"))), RuntimeError, r"same device.*meta \(g_0\)"),
        (lambda: _model("peephole", torch.float32)(x, (h[:1], c[:1], h[:1])), TypeError, r"\(h_0, c_0\)"),
        (lambda: fgr.stream(B).reset(torch.ones(B + 1, dtype=torch.bool)), ValueError, r"shape \(3,\)"),
        (lambda: fgr.stream(B)(torch.randn(B + 1, I)), ValueError, "B = 3 streams"),
        (lambda: lstmkit.LSTM(I, H, bidirectional=True).stream(B), ValueError, "bidirectional LSTM cannot stream"),
        (lambda: lstmkit.Stream(torch.nn.Linear(2, 2), B), TypeError, "Stream takes an lstmkit.LSTM"),
        (lambda: lstmkit.Stream(fgr, 0), ValueError, "batch_size must be a positive int"),
    ]
    for call, cls, pattern in cases:
        with pytest.raises(cls, match=pattern) as err:
            call()
        assert "\n" not in str(err.value)
