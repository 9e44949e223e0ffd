"""Checks every recurrent family module must pass (used by tests/test_family_*.py): streaming,
padding and packing, unbatched input, the cell against the layer, errors at the boundary.
Tiny shapes, float64, so that equal means equal to 1e-12."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TOL = 1e-12


def close(a: Tensor, b: Tensor, tol: float = TOL) -> None:
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= tol, f"max abs difference {err:.3g} > {tol:g}"


def states_close(a: tuple[Tensor, ...], b: tuple[Tensor, ...], tol: float = TOL) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        close(x, y, tol)


def chunked_equals_whole(model: nn.Module, x: Tensor, cut: int) -> None:
    """(B, T, I) batch_first: two calls carrying the state give the outputs and state of one."""
    out, state = model(x)
    o1, s1 = model(x[:, :cut])
    o2, s2 = model(x[:, cut:], s1)
    close(torch.cat([o1, o2], dim=1), out)
    states_close(s2, state)
    steps, s = [], None  # and one step at a time
    for t in range(x.shape[1]):
        o, s = model(x[:, t : t + 1], s)
        steps.append(o)
    close(torch.cat(steps, dim=1), out)
    states_close(s, state)


def padding_and_packing(model: nn.Module, x: Tensor, lengths: list[int]) -> None:
    """Padded with lengths, packed (unsorted) and each sequence alone give the same outputs and
    final states; padded steps output zeros."""
    lens = torch.tensor(lengths)
    out, state = model(x, lengths=lens)
    packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    pout, pstate = model(packed)
    padded, plens = pad_packed_sequence(pout, batch_first=True, total_length=x.shape[1])
    assert plens.tolist() == lengths
    close(padded, out)
    states_close(pstate, state)
    for b, n in enumerate(lengths):
        alone, s = model(x[b : b + 1, :n])
        close(alone[0], out[b, :n])
        close(out[b, n:], torch.zeros_like(out[b, n:]), 0.0)
        states_close(tuple(t[:, 0] for t in s), tuple(t[:, b] for t in state))


def unbatched_equals_batch_of_one(model: nn.Module, x: Tensor) -> None:
    out, state = model(x[0])
    bout, bstate = model(x[:1])
    close(out, bout[0])
    states_close(state, tuple(t[:, 0] for t in bstate))
    out2, _ = model(x[0], state)  # an unbatched state goes back in
    bout2, _ = model(x[:1], bstate)
    close(out2, bout2[0])


def cell_equals_layer(cell: nn.Module, layer: nn.Module, x: Tensor) -> None:
    """A one-layer module and its cell with the same weights agree step by step."""
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(layer, name + "_l0"))
    out, state = layer(x)
    s = None
    for t in range(x.shape[1]):
        h, s = cell(x[:, t], s)
        close(h, out[:, t])
    states_close(s, tuple(t[0] for t in state))
    h, _ = cell(x[0, 0])  # unbatched
    hb, _ = cell(x[:1, 0])
    close(h, hb[0])


def recorded_hidden_is_output(model: nn.Module, x: Tensor) -> None:
    out, _, trace = model(x, return_gates=True)
    out2, _ = model(x)
    close(out, out2, 1e-10)
    close(trace.get("hidden", layer=trace.num_layers - 1), out, 1e-10)
    with pytest.raises(KeyError, match="records"):
        trace.get("nonsense")


def boundary_errors(make: Callable[..., nn.Module], state_len: int) -> None:
    """One-line errors of the classes torch.nn.LSTM raises for the analogous mistake."""
    model = make(3, 4)
    with pytest.raises(ValueError, match=r"input must be \(T, B, 3\).*got shape \(5, 2, 7\)"):
        model(torch.randn(5, 2, 7, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="got shape"):  # torch raises RuntimeError for a wrong size
        model(torch.randn(5, 2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="must be"):
        model(torch.randn(5, dtype=torch.float64))
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    _, state = model(x)
    with pytest.raises(TypeError, match=f"state must be a tuple .* got tuple of length {state_len - 1}"):
        model(x, state[:-1])
    bad = (state[0][:, :1], *state[1:])
    with pytest.raises(RuntimeError, match=r"must have shape \(1, 2,.*got \(1, 1,"):
        model(x, bad)
    with pytest.raises(TypeError, match="dtype"):
        model(x.float())
    with pytest.raises(ValueError, match="hidden_size must be greater than zero; got 0"):
        make(3, 0)
    with pytest.raises(TypeError, match="return_gates must be a bool"):
        model(x, None, "yes")
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        model(x, lengths=torch.tensor([6, 1]))
