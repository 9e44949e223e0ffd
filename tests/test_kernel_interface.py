"""The compiled kernel's boundary checks every field of its positional config, and every spec's
forward and gradients pass float64 gradcheck (complementing tests/test_kernel.py's parity grid)."""

from __future__ import annotations

import pytest
import torch

from lstmkit.functional import LayerWeights
from lstmkit.kernels import compiled
from lstmkit.modules import base
from lstmkit.spec import PRESETS, CellSpec

H, B, T = 3, 2, 3


def _call(cfg: list[int], gates: int = 4) -> list[torch.Tensor]:
    """extension().forward on small valid tensors with the given positional config."""
    assert compiled.is_available(), compiled._state["error"]
    zx = torch.randn(T, B, gates * H, dtype=torch.float64)
    h0 = c0 = torch.zeros(B, H, dtype=torch.float64)
    w_hh = torch.randn(gates * H, H, dtype=torch.float64)
    nones = [None] * 10
    return compiled.extension().forward(zx, h0, c0, w_hh, *nones, cfg, -1.0, -1.0, -1.0)


def _plain_config() -> list[int]:
    return compiled._config(CellSpec(), H)


def test_valid_config_runs() -> None:
    hs, cs, acts = _call(_plain_config())[:3]
    assert hs.shape == (T + 1, B, H) and cs.shape == (T + 1, B, H) and acts.shape == (T, B, 4 * H)


@pytest.mark.parametrize("slot, which", [(5, "gate"), (6, "candidate"), (7, "cell")])
def test_unknown_activation_code_raises(slot: int, which: str) -> None:
    cfg = _plain_config()
    cfg[slot] = 9
    with pytest.raises(RuntimeError, match=f"{which} activation code must be 0..5 .*; got 9"):
        _call(cfg)


@pytest.mark.parametrize(
    "slot, name", [(4, "coupled"), (8, "peephole"), (9, "full_gate_recurrence"), (10, "layer_norm")]
)
def test_flags_must_be_0_or_1(slot: int, name: str) -> None:
    cfg = _plain_config()
    cfg[slot] = 2
    with pytest.raises(RuntimeError, match=f"{name} must be 0 or 1; got 2"):
        _call(cfg)


def test_config_length_is_checked() -> None:
    with pytest.raises(RuntimeError, match="config must have 11 entries; got 10"):
        _call(_plain_config()[:10])


def test_gate_layout_is_checked() -> None:
    cfg = _plain_config()
    cfg[1] = cfg[0]  # forget block on top of the input block
    with pytest.raises(RuntimeError, match="distinct multiples of H = 3"):
        _call(cfg)
    cfg = _plain_config()
    cfg[2] = -1  # no candidate
    with pytest.raises(RuntimeError, match="candidate block is required"):
        _call(cfg)
    with pytest.raises(RuntimeError, match="z has 15 columns but the spec has 4 gate blocks"):
        _call(_plain_config(), gates=5)


def test_backward_checks_the_saved_tensors() -> None:
    saved = _call(_plain_config())
    w_hh = torch.randn(4 * H, H, dtype=torch.float64)
    nones = [None] * 9
    with pytest.raises(RuntimeError, match="backward needs the 11 tensors forward returns; got 10"):
        compiled.extension().backward(None, None, None, saved[:10], w_hh, *nones, _plain_config(), -1.0, -1.0, -1.0)


SPECS = {
    **{f"preset-{name}": spec for name, spec in PRESETS.items()},
    "hard_sigmoid+clip": CellSpec(gate_activation="hard_sigmoid", cell_clip=0.8),
    "softsign+peephole+nfg": CellSpec(cell_activation="softsign", peephole=True, forget_gate=False),
    "layernorm+fgr+peephole": CellSpec(layer_norm=True, full_gate_recurrence=True, peephole=True),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_gradcheck_every_spec_with_projection_and_regularisers(name: str) -> None:
    spec = SPECS[name]
    gen = torch.Generator().manual_seed(11)
    shapes = base.param_shapes(spec, 2, H, 2, True)
    w = LayerWeights(**{k: (torch.rand(s, generator=gen, dtype=torch.float64) - 0.5) for k, s in shapes.items()})
    if spec.layer_norm:
        w = w._replace(
            ln_ih_weight=w.ln_ih_weight + 1, ln_hh_weight=w.ln_hh_weight + 1, ln_cell_weight=w.ln_cell_weight + 1
        )
    present = [(f, t) for f, t in zip(LayerWeights._fields, w, strict=True) if t is not None]
    x = torch.randn(T, B, 2, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, 2, generator=gen, dtype=torch.float64)
    c0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (x, h0, c0, *(t for _, t in present)))
    mask = (torch.rand(B, 2, generator=gen) > 0.3).double()

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = LayerWeights(**{f: a for (f, _), a in zip(present, args[3:], strict=True)})
        res = compiled.lstm_layer(
            *args[:3], weights, spec, recurrent_mask=mask, zoneout_cell=0.3, zoneout_hidden=0.2, record=True
        )
        return (res.output, res.h_n, res.c_n, *res.gates.values())

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


UNIT_SPLIT_CASES = {
    "plain": (CellSpec(), {}),
    "peephole+clip": (CellSpec(peephole=True, cell_clip=0.7), {}),
    "cifg+hard_sigmoid": (CellSpec(coupled=True, gate_activation="hard_sigmoid"), {}),
    "nig+nog": (CellSpec(input_gate=False, output_gate=False), {}),
    "zoneout+mask+lengths": (CellSpec(peephole=True), {"zoneout": True, "mask": True, "lengths": True}),
    "projection": (CellSpec(forget_gate=False), {"proj": 6}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(UNIT_SPLIT_CASES))
def test_work_split_over_hidden_units_equals_reference(name: str, dtype: torch.dtype) -> None:
    # H = 32 and B = 3 at two threads on at::mm (float64, or float32 with oneDNN and MKL switched off):
    # the forward splits each step over hidden units (gate columns).
    from lstmkit.functional import lstm_layer as reference_layer

    spec, opts = UNIT_SPLIT_CASES[name]
    Hs, Bs, Ts, proj = 32, 3, 5, opts.get("proj", 0)
    R = proj or Hs
    gen = torch.Generator().manual_seed(5)
    shapes = base.param_shapes(spec, 4, Hs, proj, True)
    w = LayerWeights(**{k: (torch.rand(s, generator=gen, dtype=dtype) - 0.5) * 0.6 for k, s in shapes.items()})
    x = torch.randn(Ts, Bs, 4, generator=gen, dtype=dtype)
    h0, c0 = torch.randn(Bs, R, generator=gen, dtype=dtype), torch.randn(Bs, Hs, generator=gen, dtype=dtype)
    kwargs: dict[str, object] = {"record": True}
    if opts.get("zoneout"):
        kwargs["zoneout_cell"] = (torch.rand(Ts, Bs, Hs, generator=gen) > 0.5).to(dtype)
        kwargs["zoneout_hidden"] = 0.25
    if opts.get("mask"):
        kwargs["recurrent_mask"] = (torch.rand(Bs, R, generator=gen) > 0.3).to(dtype)
    if opts.get("lengths"):
        kwargs["lengths"] = torch.tensor([5, 2, 4])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    gemm = compiled.extension().set_gemm("aten")
    try:
        got = compiled.lstm_layer(x, h0, c0, w, spec, **kwargs)
    finally:
        torch.set_num_threads(threads)
        compiled.extension().set_gemm(gemm)
    want = reference_layer(x, h0, c0, w, spec, **kwargs)
    tol = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(got.output, want.output, **tol)
    torch.testing.assert_close(got.c_n, want.c_n, **tol)
    for gate in want.gates:
        torch.testing.assert_close(got.gates[gate], want.gates[gate], **tol, msg=f"gate {gate}")
