"""The compiled kernel equals the reference loop: outputs, states, recorded gates and every gradient."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import kernels
from lstmkit.functional import LayerWeights
from lstmkit.functional import lstm_layer as reference_layer
from lstmkit.kernels import compiled
from lstmkit.modules import base
from lstmkit.spec import PRESETS, CellSpec

T, B, I, H, P = 6, 3, 4, 5, 3
LENGTHS = (6, 3, 1)


def test_extension_builds(compiled_kernel: Any) -> None:
    # CI has a compiler and ninja: the kernel must build, never silently fall back.
    assert compiled_kernel.isa() in ("avx512", "avx2", "generic")


@pytest.mark.parametrize(
    "name", ["preset-vanilla", "projection+peephole+layernorm", "layernorm+clip+zoneout+recurrent_mask"]
)
def test_custom_op_passes_opcheck(name: str, compiled_kernel: Any) -> None:
    """torch.library.opcheck: schema, fake implementation (shapes of every output), autograd
    registration and its gradients against the eager op, on the arguments the layer would pass."""
    case = CASES[name]
    spec, proj = case["spec"], case.get("proj", 0)
    R = proj or H
    gen = torch.Generator().manual_seed(1)
    w = make_weights(spec, proj, torch.float64, gen)
    zx = torch.randn(T, B, len(spec.gates) * H, generator=gen, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, R, generator=gen, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, generator=gen, dtype=torch.float64, requires_grad=True)
    masked = case.get("zoneout") == "mask"
    zc = (torch.rand(T, B, H, generator=gen) > 0.5).double() if masked else None
    rec = (torch.rand(B, R, generator=gen) > 0.3).double() / 0.7 if case.get("recurrent_mask") else None
    lengths = torch.tensor([6, 3, 1])
    n = spec.layer_norm
    tensors = (
        zx, h0, c0, w.weight_hh.requires_grad_(), w.weight_hr, w.weight_ch if spec.peephole else None, None,
        w.ln_hh_weight if n else None, w.ln_cell_weight if n else None, w.ln_cell_bias if n else None,
        rec, zc, None, lengths,
    )  # fmt: skip
    options = (compiled._config(spec, H), -1.0 if spec.cell_clip is None else float(spec.cell_clip), -1.0, -1.0)
    torch.library.opcheck(torch.ops.lstmkit.recurrence.default, (*tensors, *options))


@pytest.fixture(params=["default", "avx2", "generic"])
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the instruction set and GEMMs the kernel picks, on the AVX2 loops where the CPU
    has more, and on the baseline loops with plain ``at::mm`` (no oneDNN, no packed weights)."""
    assert compiled.is_available(), compiled._state["error"]
    ext = compiled.extension()
    before = ext.isa()
    if request.param == "avx2" and before != "avx512":
        pytest.skip("the default loops are already AVX2 or lower")
    if request.param != "default":
        ext.set_isa(request.param)
    if request.param == "generic":
        ext.set_gemm("aten")
    try:
        yield ext.isa()
    finally:
        ext.set_isa(before)
        ext.set_gemm("auto")


def make_weights(spec: CellSpec, proj: int, dtype: torch.dtype, gen: torch.Generator) -> LayerWeights:
    shapes = base.param_shapes(spec, I, H, proj, True)
    values = {k: (torch.rand(s, generator=gen, dtype=dtype) * 2 - 1) * 0.6 for k, s in shapes.items()}
    if spec.layer_norm:
        for k in ("ln_ih_weight", "ln_hh_weight", "ln_cell_weight"):
            values[k] = 1 + 0.3 * torch.randn(shapes[k], generator=gen, dtype=dtype)
        values["ln_cell_bias"] = 0.3 * torch.randn(shapes["ln_cell_bias"], generator=gen, dtype=dtype)
    return LayerWeights(**values)


def run(
    fn: Any,
    spec: CellSpec,
    w: LayerWeights,
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    options: dict[str, Any],
) -> tuple[Any, tuple[torch.Tensor, ...]]:
    """Forward, then gradients of a loss touching output, h_n, c_n and every recorded gate."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, h0, c0, *(t for t in w if t is not None))]
    rest = iter(leaves[3:])
    w2 = LayerWeights(*[next(rest) if t is not None else None for t in w])
    res = fn(leaves[0], leaves[1], leaves[2], w2, spec, **options)
    gen = torch.Generator().manual_seed(7)
    loss = (res.output * torch.randn(res.output.shape, generator=gen, dtype=x.dtype)).sum()
    loss = loss + (res.h_n**2).sum() + 0.7 * res.c_n.sum()
    for value in (res.gates or {}).values():
        loss = loss + (value * torch.randn(value.shape, generator=gen, dtype=x.dtype)).sum()
    return res, torch.autograd.grad(loss, leaves)


CASES: dict[str, dict[str, Any]] = {f"preset-{name}": {"spec": spec} for name, spec in PRESETS.items()}
CASES.update(
    {
        "cell_clip": {"spec": CellSpec(cell_clip=0.4)},
        "hard_sigmoid": {"spec": CellSpec(gate_activation="hard_sigmoid")},
        "peephole+cifg": {"spec": CellSpec(peephole=True, coupled=True)},
        "relu+softsign": {"spec": CellSpec(candidate_activation="relu", cell_activation="softsign")},
        "tanh-gates": {"spec": CellSpec(gate_activation="tanh", cell_activation="identity")},
        "nig+nog+peephole": {"spec": CellSpec(input_gate=False, output_gate=False, peephole=True)},
        "nfg+peephole+clip": {"spec": CellSpec(forget_gate=False, peephole=True, cell_clip=0.5)},
        "fgr+cifg+peephole": {"spec": CellSpec(full_gate_recurrence=True, coupled=True, peephole=True)},
        "projection": {"spec": CellSpec(), "proj": P},
        "projection+peephole+layernorm": {"spec": CellSpec(peephole=True, layer_norm=True), "proj": P},
        "lengths": {"spec": CellSpec(peephole=True), "lengths": LENGTHS},
        "reverse": {"spec": CellSpec(), "reverse": True},
        "lengths+reverse": {"spec": CellSpec(peephole=True), "lengths": LENGTHS, "reverse": True},
        "lengths+reverse+fgr": {"spec": CellSpec(full_gate_recurrence=True), "lengths": LENGTHS, "reverse": True},
        "recurrent_mask": {"spec": CellSpec(), "recurrent_mask": True},
        "zoneout-masks": {"spec": CellSpec(peephole=True), "zoneout": "mask"},
        "zoneout-expectation": {"spec": CellSpec(), "zoneout": (0.3, 0.2)},
        "zoneout+projection+lengths+reverse": {
            "spec": CellSpec(),
            "zoneout": "mask",
            "proj": P,
            "lengths": LENGTHS,
            "reverse": True,
        },
        "layernorm+clip+zoneout+recurrent_mask": {
            "spec": CellSpec(layer_norm=True, cell_clip=1.0),
            "zoneout": "mask",
            "recurrent_mask": True,
        },
    }
)


def compare(case: dict[str, Any], dtype: torch.dtype, record: bool = True, T: int = T) -> None:
    spec: CellSpec = case["spec"]
    proj = case.get("proj", 0)
    R = proj or H
    gen = torch.Generator().manual_seed(0)
    w = make_weights(spec, proj, dtype, gen)
    x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    h0 = torch.randn(B, R, generator=gen, dtype=dtype)
    c0 = torch.randn(B, H, generator=gen, dtype=dtype)
    options: dict[str, Any] = {"reverse": case.get("reverse", False), "record": record}
    if "lengths" in case:
        options["lengths"] = torch.tensor(case["lengths"])
    if case.get("recurrent_mask"):
        options["recurrent_mask"] = (torch.rand(B, R, generator=gen) > 0.3).to(dtype) / 0.7
    zoneout = case.get("zoneout")
    if zoneout == "mask":
        options["zoneout_cell"] = (torch.rand(T, B, H, generator=gen) > 0.5).to(dtype)
        options["zoneout_hidden"] = (torch.rand(T, B, R, generator=gen) > 0.5).to(dtype)
    elif zoneout is not None:
        options["zoneout_cell"], options["zoneout_hidden"] = zoneout

    ref, ref_grads = run(reference_layer, spec, w, x, h0, c0, options)
    out, out_grads = run(compiled.lstm_layer, spec, w, x, h0, c0, options)
    if dtype == torch.float64:
        tol = {"atol": 1e-10, "rtol": 1e-10}
    else:  # layer norm divides by a small spread over H = 5 units, which scales float32 rounding up
        tol = {"atol": 1e-4, "rtol": 1e-4} if spec.layer_norm else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(out.output, ref.output, **tol)
    torch.testing.assert_close(out.h_n, ref.h_n, **tol)
    torch.testing.assert_close(out.c_n, ref.c_n, **tol)
    if record:
        assert list(out.gates) == list(ref.gates)
        for name in ref.gates:
            torch.testing.assert_close(out.gates[name], ref.gates[name], **tol, msg=f"gate {name}")
    else:
        assert out.gates is None
    names = ["x", "h0", "c0", *(f for f, t in zip(LayerWeights._fields, w, strict=True) if t is not None)]
    assert len(out_grads) == len(names)
    for name, got, want in zip(names, out_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, **tol, msg=f"gradient of {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_equals_reference(name: str, dtype: torch.dtype, isa: str) -> None:
    compare(CASES[name], dtype)


@pytest.mark.parametrize("lib", ["avx512", "onednn", "mkl", "aten"])
@pytest.mark.parametrize(
    "name", ["fgr+cifg+peephole", "projection+peephole+layernorm", "zoneout+projection+lengths+reverse"]
)
def test_every_gemm_library_equals_reference(name: str, lib: str) -> None:
    # every per-step product (W_hh, W_gg, W_hr and their adjoints) and weight gradient, on each library
    ext = compiled.extension()
    available = {
        "avx512": ext.avx512(),
        "onednn": torch.backends.mkldnn.is_available(),
        "mkl": ext.set_gemm("mkl") and ext.step_gemm(1, 16) == "mkl",
        "aten": True,
    }
    ext.set_gemm("auto")
    if not available[lib]:
        pytest.skip(f"this torch build has no {lib} GEMM")
    before = ext.set_gemm(lib)
    try:
        assert ext.step_gemm(B, 4 * H * H) == lib  # the library really runs
        compare(CASES[name], torch.float32)
    finally:
        ext.set_gemm(before)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("lib", ["avx512", "onednn", "mkl"])
def test_long_sequences_equal_reference(lib: str) -> None:
    # from 32 steps on, oneDNN runs on a weight reordered into its blocked layout (layer norm is left
    # out: over 40 steps its float32 rounding alone grows past the tolerance, on either kernel)
    ext = compiled.extension()
    before = ext.set_gemm(lib)
    try:
        for name in ("fgr+cifg+peephole", "zoneout+projection+lengths+reverse", "peephole+cifg"):
            compare(CASES[name], torch.float32, T=40)
    finally:
        ext.set_gemm(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("H", [40, 48])
@pytest.mark.parametrize(
    "spec,proj,extra",
    [
        (CellSpec(peephole=True, full_gate_recurrence=True), 0, False),
        (CellSpec(), 24, False),
        (CellSpec(peephole=True, coupled=True), 0, True),
    ],
    ids=["peephole+fgr", "projection", "cifg+zoneout+lengths+mask"],
)
def test_avx512_panels_with_every_remainder(spec: CellSpec, proj: int, extra: bool, H: int, threads: int) -> None:
    # B = 11 rows: a full 8-row tile and a 3-row one; panels in pairs and alone, the last one masked
    # (H = 40); at two threads with H = 48 (3 panels per gate block) the forward splits each step
    # over the panels of the hidden units
    ext = compiled.extension()
    if not ext.avx512():
        pytest.skip("this CPU has no AVX-512")
    gen = torch.Generator().manual_seed(9)
    shapes = base.param_shapes(spec, 7, H, proj, True)
    w = LayerWeights(**{k: (torch.rand(s, generator=gen) - 0.5) * 0.4 for k, s in shapes.items()})
    x = torch.randn(12, 11, 7, generator=gen)
    h0, c0 = torch.randn(11, proj or H, generator=gen), torch.randn(11, H, generator=gen)
    options: dict[str, Any] = {"record": True}
    if extra:
        options["zoneout_cell"] = (torch.rand(12, 11, H, generator=gen) > 0.5).float()
        options["zoneout_hidden"] = 0.2
        options["lengths"] = torch.tensor([12, 3, 7, 1, 12, 9, 2, 12, 5, 6, 11])
        options["recurrent_mask"] = (torch.rand(11, H, generator=gen) > 0.3).float()
    before = ext.set_gemm("avx512")
    try:
        with _threads(threads):
            out, out_grads = run(compiled.lstm_layer, spec, w, x, h0, c0, options)
    finally:
        ext.set_gemm(before)
    ref, ref_grads = run(reference_layer, spec, w, x, h0, c0, options)
    torch.testing.assert_close(out.output, ref.output, atol=1e-5, rtol=1e-5)
    for name in ref.gates:
        torch.testing.assert_close(out.gates[name], ref.gates[name], atol=1e-5, rtol=1e-5)
    for got, want in zip(out_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_gemm_library_follows_torch_the_threads_and_the_size() -> None:
    ext = compiled.extension()
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    panels = "avx512" if ext.avx512() else None
    small, large = 4 * 128 * 128, 4 * 512 * 512  # weight values of H = 128 and H = 512
    with _threads(1):  # one thread: the panel GEMM at every size; without AVX-512 oneDNN, MKL for one row
        assert ext.step_gemm(64, large) == (panels or "onednn")
        assert ext.step_gemm(1, large) in ((panels,) if panels else ("mkl", "aten"))
    with _threads(2):  # several threads: the panels for small products, oneDNN beyond
        assert ext.step_gemm(16, small) == (panels or "onednn")
        assert ext.step_gemm(16, 4 * 256 * 256) == "onednn"
        assert ext.step_gemm(1, large) == "onednn"  # oneDNN shares one row's large weight over the threads
        # the user switched oneDNN off: the kernel leaves it off (the flags() context, which works after
        # torch.testing's import has frozen the global flags)
        with torch.backends.mkldnn.flags(enabled=False):
            assert ext.step_gemm(16, large) in ("mkl", "aten")
            compare(CASES["projection"], torch.float32)
        assert ext.step_gemm(16, large) == "onednn"
    with pytest.raises(RuntimeError, match="gemm must be"):
        ext.set_gemm("cublas")


@pytest.mark.parametrize("steps", [T, 9])
@pytest.mark.parametrize("record", [True, False], ids=["record", "no-record"])
@pytest.mark.parametrize("name", list(CASES))
def test_inference_equals_reference(name: str, record: bool, steps: int) -> None:
    # no gradient needed: the kernel keeps one step of the saved tensors (two of c and FGR's gates)
    case = CASES[name]
    spec: CellSpec = case["spec"]
    proj = case.get("proj", 0)
    gen = torch.Generator().manual_seed(3)
    w = make_weights(spec, proj, torch.float64, gen)
    x = torch.randn(steps, B, I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, proj or H, generator=gen, dtype=torch.float64)
    c0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    options: dict[str, Any] = {"reverse": case.get("reverse", False), "record": record}
    if "lengths" in case:
        options["lengths"] = torch.tensor(case["lengths"])
    if case.get("zoneout") == "mask":
        options["zoneout_cell"] = (torch.rand(steps, B, H, generator=gen) > 0.5).double()
        options["zoneout_hidden"] = (torch.rand(steps, B, proj or H, generator=gen) > 0.5).double()
    elif case.get("zoneout") is not None:
        options["zoneout_cell"], options["zoneout_hidden"] = case["zoneout"]
    want = reference_layer(x, h0, c0, w, spec, **options)
    with torch.no_grad():
        got = compiled.lstm_layer(x, h0, c0, w, spec, **options)
    for field in ("output", "h_n", "c_n"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), atol=1e-12, rtol=1e-12)
    assert (got.gates is None) == (not record)
    for gate in want.gates or {}:
        torch.testing.assert_close(got.gates[gate], want.gates[gate], atol=1e-12, rtol=1e-12)


def test_inference_keeps_no_step_tensors() -> None:
    gen = torch.Generator().manual_seed(4)
    spec = CellSpec(peephole=True)
    w = make_weights(spec, 0, torch.float32, gen)
    zx = torch.randn(50, B, 4 * H, generator=gen)
    state = torch.zeros(B, H)
    args = (zx, state, state, w.weight_hh, None, w.weight_ch, None, None, None, None, None, None, None, None)
    hs, cs, acts = compiled.extension().infer(*args, compiled._config(spec, H), -1.0, -1.0, -1.0, False)
    assert hs.shape == (51, B, H) and cs.shape == (2, B, H) and acts.shape == (1, B, 4 * H)
    hs, cs, acts = compiled.extension().infer(*args, compiled._config(spec, H), -1.0, -1.0, -1.0, True)
    assert cs.shape == (51, B, H) and acts.shape == (50, B, 4 * H)


@pytest.mark.parametrize("name", ["preset-vanilla", "preset-layernorm", "lengths+reverse"])
def test_compiled_without_recording(name: str) -> None:
    compare(CASES[name], torch.float64, record=False)


@pytest.mark.parametrize(
    "spec",
    [
        CellSpec(),
        CellSpec(peephole=True, cell_clip=2.0),
        CellSpec(coupled=True, full_gate_recurrence=True),
        CellSpec(layer_norm=True, output_gate=False),
    ],
    ids=["plain", "peephole+clip", "cifg+fgr", "layernorm+nog"],
)
def test_gradcheck(spec: CellSpec) -> None:
    gen = torch.Generator().manual_seed(3)
    w = make_weights(spec, 2, torch.float64, gen)
    x = torch.randn(4, 2, I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    c0 = torch.randn(2, H, generator=gen, dtype=torch.float64)
    zc = (torch.rand(4, 2, H, generator=gen) > 0.5).double()
    present = [(f, t) for f, t in zip(LayerWeights._fields, w, strict=True) if t is not None]
    inputs = tuple(t.requires_grad_() for t in (x, h0, c0, *(t for _, t in present)))

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = LayerWeights(**{f: a for (f, _), a in zip(present, args[3:], strict=True)})
        res = compiled.lstm_layer(
            args[0], args[1], args[2], weights, spec, lengths=torch.tensor([4, 2]), zoneout_cell=zc, record=True
        )
        return (res.output, res.h_n, res.c_n, res.gates["candidate"])

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_dispatch_picks_compiled() -> None:
    assert kernels.choose(CellSpec(peephole=True), record=False, per_step_regularised=False) == "compiled"
    assert kernels.choose(CellSpec(), record=True, per_step_regularised=False) == "compiled"
    assert kernels.choose(CellSpec(), record=False, per_step_regularised=False) == "native"


def _module_run(
    model: lstmkit.LSTM, data: Any, kernel: str, seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    model.zero_grad()
    model.generator = torch.Generator().manual_seed(seed)
    with kernels.use(kernel):
        out, (h, c), trace = model(data, return_gates=True)
    out_t = out.data if hasattr(out, "batch_sizes") else out
    loss = (out_t**2).sum() + h.sum() + (c * 0.5).sum() + trace.get("forget", layer=0, direction=1).sum()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    values = [out_t, h, c, *(v for layer in trace.layers for d in layer for v in d.values())]
    return values, grads


@pytest.mark.parametrize(
    "spec,kwargs",
    [
        ("peephole", {"proj_size": 3}),
        ("layernorm", {"zoneout": (0.2, 0.1), "recurrent_dropout": 0.3}),
        ("cifg", {"batch_first": True}),
    ],
)
def test_module_compiled_equals_reference(spec: str, kwargs: dict[str, Any]) -> None:
    torch.manual_seed(4)
    model = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, spec=spec, dtype=torch.float64, **kwargs)
    model.train()
    shape = (B, T, I) if kwargs.get("batch_first") else (T, B, I)
    x = torch.randn(*shape, dtype=torch.float64)
    data: Any = x
    if not kwargs.get("batch_first"):
        data = pack_padded_sequence(x, torch.tensor([6, 4, 2]), enforce_sorted=False)
    got, got_grads = _module_run(model, data, "compiled", seed=11)
    want, want_grads = _module_run(model, data, "reference", seed=11)
    assert len(got) == len(want) and len(got_grads) == len(want_grads)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_other_dtypes_and_empty_batches(compiled_kernel: object) -> None:
    """bfloat16 on the reference loop lands near the compiled kernel's float64
    result (two implementations); asked for by name, the compiled kernel takes bfloat16 too
    (tests/test_kernel_bf16.py holds it to its stated tolerance); an empty batch gives empty outputs
    of the right shapes."""
    torch.manual_seed(5)
    model = lstmkit.LSTM(I, H, spec="peephole", dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    with kernels.use("compiled"):
        exact, _ = model(x)
        fast, _ = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.double(), exact, atol=3e-2, rtol=0)
    with kernels.use("reference"):
        low, _ = model(x.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), exact, atol=3e-2, rtol=0)
    model.double()
    with kernels.use("compiled"):
        out, (h, c) = model(x[:, :0])
    assert out.shape == (T, 0, H) and h.shape == c.shape == (1, 0, H)


def test_shape_errors_name_expected_and_actual() -> None:
    gen = torch.Generator().manual_seed(6)
    spec = CellSpec(peephole=True)
    w = make_weights(spec, 0, torch.float64, gen)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"weight_ch must have shape \(15,\); got \(10,\)"):
        compiled.lstm_layer(x, h0, h0, w._replace(weight_ch=w.weight_ch[:10]), spec)
    with pytest.raises(ValueError, match=r"weight_ch of shape \(15,\) is required by this spec; got None"):
        compiled.lstm_layer(x, h0, h0, w._replace(weight_ch=None), spec)  # the check the GPU kernel shares
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\); got \(2,\)"):
        compiled.lstm_layer(x, h0, h0, w, spec, lengths=torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="zoneout_cell must broadcast"):
        compiled.lstm_layer(x, h0, h0, w, spec, zoneout_cell=torch.ones(2, 2, 2, dtype=torch.float64))


# ------------------------------------------------------------------ benchmark harness plumbing
def test_bench_cli_rejects_bad_repetitions(capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.cli import main

    assert main(["bench", "--reps", "0"]) == 2
    assert "--reps must be at least 1; got 0" in capsys.readouterr().err


def test_benchmark_helpers() -> None:
    from benchmarks.contenders import lstm_flops
    from benchmarks.timing import interleaved_medians

    calls: list[str] = []
    medians = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, reps=3, warmup=1)
    assert set(medians) == {"a", "b"} and all(v >= 0 for v in medians.values())
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotating order
    assert lstm_flops(10, 2, 3, 4) == 2.0 * 10 * 2 * 16 * 7
    assert lstm_flops(10, 2, 3, 4, layers=2, directions=2) == 2 * 2.0 * 10 * 2 * 16 * 7 + 2 * 2.0 * 10 * 2 * 16 * 12


def test_batch_split_across_threads() -> None:
    # a batch large enough for at::parallel_for to split the rows into chunks (grain = 16384 / (G*H) rows)
    spec = CellSpec(peephole=True, layer_norm=True, full_gate_recurrence=True)
    gen = torch.Generator().manual_seed(8)
    shapes = base.param_shapes(spec, 3, 4, 0, True)
    w = LayerWeights(**{k: torch.rand(s, generator=gen, dtype=torch.float64) - 0.5 for k, s in shapes.items()})
    x = torch.randn(3, 2100, 3, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2100, 4, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, 4, (2100,), generator=gen)
    zc = (torch.rand(3, 2100, 4, generator=gen) > 0.5).double()
    options = {"lengths": lengths, "zoneout_cell": zc, "record": True}
    ref, ref_grads = run(reference_layer, spec, w, x, h0, h0, options)
    out, out_grads = run(compiled.lstm_layer, spec, w, x, h0, h0, options)
    torch.testing.assert_close(out.output, ref.output, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out.gates["forget"], ref.gates["forget"], atol=1e-10, rtol=1e-10)
    for got, want in zip(out_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_docstring_examples_run() -> None:
    import doctest

    result = doctest.testmod(compiled, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_build_failure_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch, compiled_kernel: object) -> None:
    torch.manual_seed(9)
    model = lstmkit.LSTM(I, H, spec="peephole", dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    with kernels.use("compiled"):
        built, _ = model(x)  # while the kernel works

    def broken() -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(compiled, "_build", broken)
    monkeypatch.setattr(compiled, "_state", {"ext": None, "error": None})
    with pytest.warns(RuntimeWarning, match="no compiler here") as record:
        assert compiled.is_available() is False
        assert compiled.is_available() is False
    assert len(record) == 1
    assert kernels.choose(CellSpec(peephole=True), record=False, per_step_regularised=False) == "reference"
    torch.testing.assert_close(model(x)[0], built, atol=1e-12, rtol=0)  # "auto" falls back: the same numbers
    with kernels.use("compiled"), pytest.raises(kernels.KernelUnavailable, match="could not be built: no compiler"):
        model(x)
    with pytest.raises(RuntimeError, match="not available: no compiler here"):
        compiled.extension()
