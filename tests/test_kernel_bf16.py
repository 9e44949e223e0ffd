"""bfloat16 and float16 on the compiled CPU kernel, held against the float32 reference loop.

The kernel keeps the cell state, gates and sums in float32 and reads the GEMM weights in the low
precision. Its stated accuracy (``compiled.LOW_PRECISION_TOLERANCE``): on the same rounded inputs
and weights, every output, final state, recorded gate and gradient lies within ``tol * max|ref|``
of the float32 reference loop's (``ref``), for every preset and option, on tiny shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

import lstmkit
from lstmkit import kernels
from lstmkit.functional import LayerWeights
from lstmkit.functional import lstm_layer as reference_layer
from lstmkit.kernels import compiled
from lstmkit.modules import base
from lstmkit.spec import PRESETS, CellSpec

T, B, I, H, P = 6, 3, 4, 5, 3
LOW = [torch.bfloat16, torch.float16]

CASES: dict[str, dict[str, Any]] = {f"preset-{name}": {"spec": spec} for name, spec in PRESETS.items()}
CASES.update(
    {
        "clip+hard_sigmoid": {"spec": CellSpec(cell_clip=0.4, gate_activation="hard_sigmoid")},
        "projection+peephole": {"spec": CellSpec(peephole=True), "proj": P},
        "projection+layernorm": {"spec": CellSpec(layer_norm=True), "proj": P},
        "lengths+reverse+fgr": {"spec": CellSpec(full_gate_recurrence=True), "lengths": [6, 2, 4], "reverse": True},
        "zoneout-masks+recurrent_mask": {"spec": CellSpec(peephole=True), "zoneout": True, "recurrent_mask": True},
        "wide": {"spec": CellSpec(peephole=True), "H": 32},  # whole AVX-512 panels, split over units on 2 threads
    }
)


def _weights(spec: CellSpec, H: int, proj: int, gen: torch.Generator) -> LayerWeights:
    shapes = base.param_shapes(spec, I, H, proj, True)
    values = {k: (torch.rand(s, generator=gen) * 2 - 1) * 0.6 for k, s in shapes.items()}
    if spec.layer_norm:
        for k in ("ln_ih_weight", "ln_hh_weight", "ln_cell_weight"):
            values[k] = 1 + 0.3 * torch.randn(shapes[k], generator=gen)
        values["ln_cell_bias"] = 0.3 * torch.randn(shapes["ln_cell_bias"], generator=gen)
    return LayerWeights(**values)


def _map(w: LayerWeights, fn: Any) -> LayerWeights:
    """``w`` with ``fn`` applied to every present tensor."""
    return w._replace(**{k: fn(t) for k, t in w._asdict().items() if t is not None})


def _inputs(case: dict[str, Any], dtype: torch.dtype) -> tuple[Any, ...]:
    """x, h0, c0, weights and options of a case, rounded to ``dtype`` (options' masks stay float32)."""
    spec, proj, hidden = case["spec"], case.get("proj", 0), case.get("H", H)
    R = proj or hidden
    gen = torch.Generator().manual_seed(0)
    w = _map(_weights(spec, hidden, proj, gen), lambda t: t.to(dtype))
    x, h0, c0 = (torch.randn(s, generator=gen).to(dtype) for s in ((T, B, I), (B, R), (B, hidden)))
    options: dict[str, Any] = {"reverse": case.get("reverse", False), "record": True}
    if "lengths" in case:
        options["lengths"] = torch.tensor(case["lengths"])
    if case.get("recurrent_mask"):
        options["recurrent_mask"] = (torch.rand(B, R, generator=gen) > 0.25).float() / 0.75
    if case.get("zoneout"):
        options["zoneout_cell"] = (torch.rand(T, B, hidden, generator=gen) > 0.5).float()
        options["zoneout_hidden"] = (torch.rand(T, B, R, generator=gen) > 0.5).float()
    return spec, x, h0, c0, w, options


def _run(fn: Any, spec: CellSpec, x: Any, h0: Any, c0: Any, w: LayerWeights, options: dict[str, Any]) -> Any:
    """Results (output, h_n, c_n, gates) and the gradients of every input of a loss touching all of them."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, h0, c0, *(t for t in w if t is not None))]
    rest = iter(leaves[3:])
    res = fn(*leaves[:3], _map(w, lambda t: next(rest)), spec, **options)
    outs = {"output": res.output, "h_n": res.h_n, "c_n": res.c_n, **{f"gate {k}": v for k, v in res.gates.items()}}
    gen = torch.Generator().manual_seed(7)
    loss = sum((v.float() * torch.randn(v.shape, generator=gen)).sum() for v in outs.values())
    grads = torch.autograd.grad(loss, leaves)
    names = ["x", "h0", "c0", *(f for f, t in zip(LayerWeights._fields, w, strict=True) if t is not None)]
    return outs, dict(zip((f"gradient of {n}" for n in names), grads, strict=True))


def _within(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], dtype: torch.dtype, tol: float) -> None:
    assert list(got) == list(want)
    for name, ref in want.items():
        assert got[name].dtype == dtype, f"{name}: {got[name].dtype}"
        err = (got[name].float() - ref).abs().max().item()
        scale = max(ref.abs().max().item(), 1e-3)
        assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol} * {scale:.3g}"


@pytest.fixture
def fast_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the compiled layer falls back to the reference loop (so the kernel itself is measured)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the compiled kernel fell back to the reference loop")

    monkeypatch.setattr(compiled, "reference_layer", refuse)


@pytest.fixture(params=["default", "float32-gemms"])
def gemms(request: pytest.FixtureRequest, compiled_kernel: Any) -> Iterator[str]:
    """The kernel's own choice (bfloat16 panels where the CPU has AVX512-BF16), and float32 GEMMs of
    the up-cast weights (what a CPU without it, and every float16 call, runs)."""
    before = compiled_kernel.set_gemm("auto" if request.param == "default" else "aten")
    try:
        yield request.param
    finally:
        compiled_kernel.set_gemm(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
@pytest.mark.parametrize("name", list(CASES))
def test_low_precision_within_stated_tolerance(
    name: str, dtype: torch.dtype, threads: int, gemms: str, fast_path_only: None
) -> None:
    spec, x, h0, c0, w, options = _inputs(CASES[name], dtype)
    assert compiled.unsupported_reason(x, h0, c0, w) is None
    up = _map(w, lambda t: t.float())
    want = _run(reference_layer, spec, x.float(), h0.float(), c0.float(), up, options)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _run(compiled.lstm_layer, spec, x, h0, c0, w, options)
    finally:
        torch.set_num_threads(before)
    tol = compiled.low_precision_tolerance(dtype, spec)
    _within(got[0], want[0], dtype, tol)
    _within(got[1], want[1], dtype, tol)


def test_tolerance_is_tighter_than_a_low_precision_loop(compiled_kernel: Any) -> None:
    """The stated bfloat16 tolerance is not loose: the reference loop run in bfloat16 itself (every
    sum and state rounded) misses it on a longer sequence, while the kernel meets it there."""
    spec = CellSpec(peephole=True)
    gen = torch.Generator().manual_seed(3)
    w = _map(_weights(spec, 64, 0, gen), lambda t: t.bfloat16())
    x = torch.randn(200, 4, I, generator=gen).bfloat16()
    h0 = c0 = torch.zeros(4, 64, dtype=torch.bfloat16)
    up = _map(w, lambda t: t.float())
    with torch.no_grad():
        ref = reference_layer(x.float(), h0.float(), c0.float(), up, spec).c_n
        fast = compiled.lstm_layer(x, h0, c0, w, spec).c_n.float()
        naive = reference_layer(x, h0, c0, w, spec).c_n.float()
    tol = compiled.low_precision_tolerance(torch.bfloat16, spec) * ref.abs().max().item()
    assert (fast - ref).abs().max().item() <= tol
    assert (naive - ref).abs().max().item() > (fast - ref).abs().max().item()


@pytest.mark.parametrize("spec", ["peephole", "layernorm", "vanilla"])
def test_autocast_follows_nn_lstm(spec: str, compiled_kernel: Any) -> None:
    """Under torch.autocast("cpu", dtype=bfloat16) output, h_n and c_n come back in bfloat16 as from
    nn.LSTM, near the float32 model, and the float32 parameters get float32 gradients."""
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, num_layers=2, spec=spec)
    x = torch.randn(T, B, I)
    ref_model = torch.nn.LSTM(I, H, num_layers=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_dtypes = [t.dtype for t in (ref_model(x)[0], *ref_model(x)[1])]
        with kernels.use("auto"):
            out, (h, c) = model(x)
    assert [out.dtype, h.dtype, c.dtype] == want_dtypes == [torch.bfloat16] * 3
    exact, _ = model(x)
    tol = compiled.low_precision_tolerance(torch.bfloat16, model.spec)
    assert (out.float() - exact).abs().max().item() <= tol * exact.abs().max().item()
    out.float().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name


def test_low_precision_module_runs_the_kernel(compiled_kernel: Any) -> None:
    """Asked for by name, the compiled kernel takes a bfloat16 model (no refusal, no fallback), and
    its custom op (what torch.compile captures) returns states and gates in the call's dtype."""
    torch.manual_seed(1)
    model = lstmkit.LSTM(I, H, spec="peephole", dtype=torch.bfloat16)
    x = torch.randn(T, B, I, dtype=torch.bfloat16)
    with kernels.use("compiled"):
        out, (h, c) = model(x)
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16
    spec = CellSpec(peephole=True)
    _, xl, h0, c0, w, _ = _inputs({"spec": spec}, torch.bfloat16)
    zx = torch.nn.functional.linear(xl, w.weight_ih, w.bias_ih + w.bias_hh)
    options = (compiled._config(spec, H), -1.0, -1.0, -1.0)
    hs, cs, acts = torch.ops.lstmkit.recurrence(zx, h0, c0, w.weight_hh, None, w.weight_ch, *[None] * 8, *options)
    assert hs.dtype == torch.bfloat16 and cs.dtype == acts.dtype == torch.float32  # as the GPU kernel
    eager = compiled.lstm_layer(xl, h0, c0, w, spec)
    torch.testing.assert_close(hs[1:], eager.output, atol=0, rtol=0)


def test_bench_times_every_spec_in_bfloat16(compiled_kernel: Any) -> None:
    """lstmkit bench's bfloat16 table: models built in bfloat16, ratios to nn.LSTM in bfloat16, and a
    training target per spec at B >= 16 in the checks and the markdown."""
    from lstmkit.bench import contenders, report, run

    built = contenders.build_in(contenders.by_name(["lstmkit peephole"])[0], torch.bfloat16, I, 8, 1, False)
    assert built(torch.randn(T, 16, I, dtype=torch.bfloat16), False).dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32
    names = [contenders.BASELINE, "lstmkit peephole", "lstmkit layernorm"]
    case = run.time_case(names, T, 16, 8, reps=1, I=I, dtype=torch.bfloat16)
    assert case["dtype"] == "bfloat16" and case["I"] == I and set(case["rows"]) == set(names)
    assert case["rows"][contenders.BASELINE]["train_ratio"] == 1.0
    env = {"started": "now", "torch": "x", "cpus": 2, "kernel_isa": "k", "load_before": "0", "load_after": "0"}
    one = {"threads": 1, "matmul_gflops": 1.0, "grid": [], "extra": [], "step": [], "bf16": [case]}
    result = {"quick": True, "reps": 1, "environment": {**env, "seconds": 1.0}, "runs": [one], "sweep": []}
    checks = [c for c in report.targets(result) if "bfloat16" in c["measure"]]
    assert {c["contender"] for c in checks} == set(names[1:])
    assert all(c["met"] == (c["value"] <= contenders.LOW_PRECISION_GOAL) for c in checks)
    result["targets"] = checks
    assert f"T={T} B=16 I={I} H=8" in report.markdown(result)
    assert set(contenders.LOW_PRECISION) >= {"lstmkit peephole", "lstmkit fgr", "lstmkit zoneout"}
