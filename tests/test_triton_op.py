"""The GPU recurrence as a ``torch.library`` custom op: schema, fake tensors, autograd registration and
the same gradients under AOTAutograd (``torch.library.opcheck``), on CPU under Triton's interpreter
when no GPU is present."""

from __future__ import annotations

import pytest
import torch

from lstmkit.spec import CellSpec

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


pytestmark = pytest.mark.usefixtures("triton_interpreter")


def test_plan_round_trips_through_its_string() -> None:
    from lstmkit.kernels.gpu.plan import Plan, decode

    plan = Plan(CellSpec(coupled=True, cell_clip=2.5), 7, proj=True, zc_keep=0.1, zh_keep=None, padded=True)
    assert decode(plan.encode()) == plan


def test_opcheck_rich_plan() -> None:
    # peephole, layer norm, FGR, projection, padding, a zoneout mask on c and the evaluation
    # expectation on h: every optional input of the op is present or exercised as absent.
    from lstmkit.kernels.gpu.op import recurrence  # imports the kernels: under the interpreter here
    from lstmkit.kernels.gpu.plan import Plan

    T, B, H, P, G = 3, 2, 4, 2, 4
    spec = CellSpec(peephole=True, layer_norm=True, full_gate_recurrence=True)
    plan = Plan(spec, H, proj=True, zc_keep=None, zh_keep=0.2, padded=True).encode()
    gen = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) - 0.5).to(DEVICE).requires_grad_()

    zc_mask = (torch.rand(T, B, H, generator=gen) < 0.3).double().to(DEVICE)
    valid = torch.tensor([[1, 1], [1, 1], [1, 0]], dtype=torch.int8, device=DEVICE)
    args = (plan, r(T, B, G * H), r(B, P), r(B, H), r(G * H, P), r(P, H), r(3 * H), r(3 * H, 3 * H), r(G * H),
            r(H), r(H), None, zc_mask, None, valid)  # fmt: skip
    result = torch.library.opcheck(recurrence, args)
    assert result == {name: "SUCCESS" for name in result} and len(result) == 4, result
