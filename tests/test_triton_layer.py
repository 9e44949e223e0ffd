"""The GPU (Triton) kernel equals the reference loop: outputs, states, recorded gates and every gradient.

Without a GPU the Triton kernels run on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1, set
by a fixture); with one, the same tests run them on CUDA.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lstmkit.functional import LayerWeights
from lstmkit.functional import lstm_layer as reference_layer
from lstmkit.kernels import gpu
from lstmkit.modules import base
from lstmkit.spec import PRESETS, CellSpec

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


pytestmark = pytest.mark.usefixtures("triton_interpreter")


T, B, I, H, P = 4, 3, 3, 4, 2
LENGTHS = (4, 2, 1)


def make_weights(spec: CellSpec, proj: int, dtype: torch.dtype, gen: torch.Generator) -> LayerWeights:
    """Random parameters of one layer-direction (layer-norm gains near 1)."""
    shapes = base.param_shapes(spec, I, H, proj, True)
    values = {k: (torch.rand(s, generator=gen, dtype=dtype) * 2 - 1) * 0.6 for k, s in shapes.items()}
    if spec.layer_norm:
        for k in ("ln_ih_weight", "ln_hh_weight", "ln_cell_weight"):
            values[k] = 1 + 0.3 * torch.randn(shapes[k], generator=gen, dtype=dtype)
        values["ln_cell_bias"] = 0.3 * torch.randn(shapes["ln_cell_bias"], generator=gen, dtype=dtype)
    return LayerWeights(**{k: v.to(DEVICE) for k, v in values.items()})


def make_inputs(proj: int, dtype: torch.dtype, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    R = proj or H
    x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    return (
        x.to(DEVICE),
        torch.randn(B, R, generator=gen, dtype=dtype).to(DEVICE),
        torch.randn(B, H, generator=gen, dtype=dtype).to(DEVICE),
    )


def outputs_and_grads(fn: Any, spec: CellSpec, w: LayerWeights, inputs: tuple, cot: dict, **options: Any) -> tuple:
    """Run ``fn`` with recording on fresh leaves; return its results and the gradients of every
    input and parameter for the fixed cotangents ``cot``."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    params = {k: v.detach().clone().requires_grad_() for k, v in w._asdict().items() if v is not None}
    res = fn(*leaves, LayerWeights(**params), spec, record=True, **options)
    loss = (res.output * cot["output"]).sum() + (res.h_n * cot["h_n"]).sum() + (res.c_n * cot["c_n"]).sum()
    loss = loss + sum((res.gates[k] * cot[f"gate_{k}"]).sum() for k in res.gates)
    grads = torch.autograd.grad(loss, [*leaves, *params.values()])
    names = ["x", "h0", "c0", *params]
    return res, dict(zip(names, grads, strict=True))


def assert_matches(spec: CellSpec, proj: int = 0, dtype: torch.dtype = torch.float64, tol: float = 1e-10, **options):
    gen = torch.Generator().manual_seed(7)
    w = make_weights(spec, proj, dtype, gen)
    inputs = make_inputs(proj, dtype, gen)
    shapes = reference_layer(*inputs, w, spec, record=True, **options)  # for the cotangents' shapes
    named = {"output": shapes.output, "h_n": shapes.h_n, "c_n": shapes.c_n}
    named.update({f"gate_{k}": v for k, v in shapes.gates.items()})
    cot = {k: torch.randn(v.shape, generator=gen, dtype=dtype).to(DEVICE) for k, v in named.items()}
    ref, ref_grads = outputs_and_grads(reference_layer, spec, w, inputs, cot, **options)
    got, got_grads = outputs_and_grads(gpu.lstm_layer, spec, w, inputs, cot, **options)
    for name in ("output", "h_n", "c_n"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), atol=tol, rtol=tol, msg=name)
    assert set(got.gates) == set(ref.gates)
    for name in ref.gates:
        torch.testing.assert_close(got.gates[name], ref.gates[name], atol=tol, rtol=tol, msg=f"gate {name}")
    assert set(got_grads) == set(ref_grads)
    for name in ref_grads:
        torch.testing.assert_close(got_grads[name], ref_grads[name], atol=tol, rtol=tol, msg=f"d {name}")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_matches_reference(preset: str) -> None:
    assert_matches(PRESETS[preset], lengths=torch.tensor(LENGTHS))


RICH = CellSpec(peephole=True, full_gate_recurrence=True, layer_norm=True, cell_clip=0.5)
ODD = CellSpec(coupled=True, peephole=True, gate_activation="hard_sigmoid", candidate_activation="relu",
               cell_activation="softsign", cell_clip=0.3)  # fmt: skip
GATELESS = CellSpec(input_gate=False, output_gate=False, peephole=True, full_gate_recurrence=True)


def _bernoulli(shape: tuple[int, ...], p: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < p).to(torch.float64).to(DEVICE)


OPTIONS = {
    "lengths_reverse": {"lengths": LENGTHS, "reverse": True},
    "zoneout_masks": {"lengths": LENGTHS, "zoneout_cell": "c", "zoneout_hidden": "h", "recurrent_mask": "r"},
    "zoneout_masks_reverse": {"lengths": LENGTHS, "reverse": True, "zoneout_cell": "c", "zoneout_hidden": "h"},
    "zoneout_eval": {"lengths": LENGTHS, "zoneout_cell": 0.3, "zoneout_hidden": 0.2},
    "recurrent_dropout": {"recurrent_mask": "r"},
}
SPECS = {"default": CellSpec(), "rich": RICH, "odd": ODD, "gateless": GATELESS}
CASES = [  # every option with and without a projection, each spec family under several options
    ("default", "lengths_reverse", 0),
    ("default", "zoneout_masks_reverse", P),
    ("default", "zoneout_eval", P),
    ("rich", "zoneout_masks", 0),
    ("rich", "lengths_reverse", P),
    ("rich", "zoneout_eval", 0),
    ("rich", "recurrent_dropout", P),
    ("odd", "zoneout_masks_reverse", 0),
    ("odd", "zoneout_eval", P),
    ("odd", "recurrent_dropout", 0),
    ("gateless", "zoneout_masks", P),
    ("gateless", "zoneout_eval", 0),
]


@pytest.mark.parametrize(("spec", "option", "proj"), CASES, ids=[f"{s}-{o}-{p}" for s, o, p in CASES])
def test_options_match_reference(spec: str, option: str, proj: int) -> None:
    R = proj or H
    values = {
        "c": _bernoulli((T, B, H), 0.3, 1),
        "h": _bernoulli((T, B, R), 0.3, 2),
        "r": _bernoulli((B, R), 0.7, 3) / 0.7,
    }
    options: dict[str, Any] = {}
    for k, v in OPTIONS[option].items():
        if k == "lengths":
            v = torch.tensor(v)
        options[k] = values[v] if isinstance(v, str) else v
    assert_matches(SPECS[spec], proj, **options)


def test_gradcheck_float64() -> None:
    # torch's own numerical check of the custom backward (fast mode: random directions), with a
    # projection, lengths, reverse and zoneout masks, w.r.t. the inputs and the tensors the Triton
    # adjoint differentiates (the input projection's parameters go through torch's autograd).
    spec = CellSpec(peephole=True, full_gate_recurrence=True, layer_norm=True)
    gen = torch.Generator().manual_seed(3)
    w = make_weights(spec, P, torch.float64, gen)
    x, h0, c0 = make_inputs(P, torch.float64, gen)
    names = ["weight_hh", "weight_hr", "weight_ch", "weight_gg", "ln_hh_weight", "ln_cell_weight", "ln_cell_bias"]
    opts = {"lengths": torch.tensor(LENGTHS), "zoneout_cell": _bernoulli((T, B, H), 0.3, 4), "reverse": True}

    def f(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        res = gpu.lstm_layer(x, h0, c0, w._replace(**dict(zip(names, params, strict=True))), spec, **opts)
        return res.output, res.c_n

    leaves = [t.clone().requires_grad_() for t in (x, h0, c0, *(getattr(w, k) for k in names))]
    assert torch.autograd.gradcheck(f, leaves, fast_mode=True, check_undefined_grad=False)
