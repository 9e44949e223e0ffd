"""lstmkit.LSTMCell against torch.nn.LSTMCell in the same test: outputs, and the class of every error."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import lstmkit

I, H, B = 3, 5, 4
F64 = torch.float64


def pair(**kwargs: Any) -> tuple[nn.LSTMCell, lstmkit.LSTMCell]:
    torch.manual_seed(0)
    ref = nn.LSTMCell(I, H, dtype=F64, **kwargs)
    ours = lstmkit.LSTMCell(I, H, dtype=F64, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def _h(batch: int = B, size: int = H) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, size, dtype=F64), torch.zeros(batch, size, dtype=F64)


CELL_ERRORS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "input size": lambda: (torch.randn(B, I + 1, dtype=F64),),
    "input rank 3": lambda: (torch.randn(1, B, I, dtype=F64),),
    "batch mismatch": lambda: (torch.randn(B, I, dtype=F64), _h(B + 1)),
    "hidden size": lambda: (torch.randn(B, I, dtype=F64), _h(size=H + 1)),
    "2-D state, unbatched input": lambda: (torch.randn(I, dtype=F64), _h(1)),
    "input dtype": lambda: (torch.randn(B, I),),
}


@pytest.mark.parametrize("case", list(CELL_ERRORS))
@pytest.mark.parametrize("spec", ["vanilla", "peephole"])
def test_cell_errors_have_torchs_class(case: str, spec: str) -> None:
    ref, _ = pair()
    ours = lstmkit.LSTMCell(I, H, spec=spec, dtype=F64)
    args = CELL_ERRORS[case]()
    try:
        ref(*args)
    except Exception as exc:
        want = type(exc)
    else:
        raise AssertionError(f"torch accepted {case}")
    with pytest.raises(want):
        ours(*args)


@pytest.mark.parametrize("bias", [True, False, 1, 0])
@pytest.mark.parametrize("layout", ["batched", "unbatched", "no-state", "batch-0", "non-contiguous"])
def test_cell_outputs(bias: Any, layout: str) -> None:
    ref, _ = pair(bias=bool(bias))
    ours = lstmkit.LSTMCell(I, H, bias, dtype=F64)  # torch accepts 0 / 1 for the cell's bias: so does lstmkit
    ours.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    state = (torch.randn(B, H, dtype=F64, generator=gen), torch.randn(B, H, dtype=F64, generator=gen))
    x = torch.randn(B, I, dtype=F64, generator=gen)
    args: tuple[Any, ...] = (x, state)
    if layout == "unbatched":
        args = (x[0], (state[0][0], state[1][0]))
    elif layout == "no-state":
        args = (x,)
    elif layout == "batch-0":
        args = (x[:0],)
    elif layout == "non-contiguous":
        args = (torch.randn(I, B, dtype=F64).t(), (state[0].t().contiguous().t(), state[1]))
        assert not args[0].is_contiguous()
    for a, b in zip(ref(*args), ours(*args), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


def test_cell_return_gates_must_be_a_bool() -> None:
    _, ours = pair()
    with pytest.raises(TypeError, match="return_gates must be a bool"):
        ours(torch.randn(B, I, dtype=F64), None, "yes")


@pytest.mark.parametrize("roundtrip", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["copy", "pickle"])
def test_cell_copies(roundtrip: Callable[[nn.Module], nn.Module]) -> None:
    ref, ours = pair()
    x = torch.randn(B, I, dtype=F64)
    for a, b in zip(ref(x), roundtrip(ours)(x), strict=True):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


def test_cell_conversions_refuse_what_torch_cannot_compute() -> None:
    cell = lstmkit.LSTMCell(I, H, zoneout=0.3).eval()
    with pytest.raises(ValueError, match=r"zoneout=\(0.3, 0.3\)"):
        cell.to_torch()
    with pytest.raises(ValueError, match="no zoneout"):
        cell.to_seed()
    with pytest.raises(ValueError, match="spec CellSpec"):
        lstmkit.LSTMCell(I, H, spec="cifg").to_torch()
    ref, ours = pair()
    back = ours.to_torch()
    x = torch.randn(B, I, dtype=F64)
    for a, b in zip(ref(x), back(x), strict=True):
        assert torch.equal(a, b)
