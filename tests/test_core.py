"""Core guarantees beyond parity: gradcheck, the founding document's cell, hand-stepped layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import kernels


class FoundingCell(nn.Module):
    """The cell exactly as the founding document writes it: four Linear on cat((x, h_prev), 1)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.forget_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.input_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.cell_candidate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.output_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.sigmoid = nn.Sigmoid()
        self.tanh = nn.Tanh()

    def forward(self, x, hidden):
        h_prev, c_prev = hidden
        combined = torch.cat((x, h_prev), 1)
        f_t = self.sigmoid(self.forget_gate(combined))
        i_t = self.sigmoid(self.input_gate(combined))
        c_hat_t = self.tanh(self.cell_candidate(combined))
        c_t = f_t * c_prev + i_t * c_hat_t
        o_t = self.sigmoid(self.output_gate(combined))
        h_t = o_t * self.tanh(c_t)
        return h_t, c_t


def test_from_seed_reproduces_founding_cell() -> None:
    torch.manual_seed(0)
    seed = FoundingCell(10, 20).double()
    cell = lstmkit.LSTMCell.from_seed(seed)
    assert cell.weight_ih.dtype == torch.float64
    x = torch.randn(3, 10, dtype=torch.float64)
    h = torch.randn(3, 20, dtype=torch.float64)
    c = torch.randn(3, 20, dtype=torch.float64)
    for _ in range(5):  # several steps, feeding the state back
        h_ref, c_ref = seed(x, (h, c))
        h_new, c_new = cell(x, (h, c))
        torch.testing.assert_close(h_new, h_ref, atol=1e-12, rtol=0)
        torch.testing.assert_close(c_new, c_ref, atol=1e-12, rtol=0)
        gates = cell.gates(x, (h, c))
        combined = torch.cat((x, h), 1)
        torch.testing.assert_close(gates.forget, torch.sigmoid(seed.forget_gate(combined)), atol=1e-12, rtol=0)
        torch.testing.assert_close(gates.candidate, torch.tanh(seed.cell_candidate(combined)), atol=1e-12, rtol=0)
        h, c = h_ref, c_ref
    assert torch.equal(cell.bias_hh, torch.zeros_like(cell.bias_hh))


def test_to_seed_round_trip() -> None:
    torch.manual_seed(1)
    cell = lstmkit.LSTMCell(4, 6)
    seed = cell.to_seed()
    assert isinstance(seed.forget_gate, nn.Linear) and seed.forget_gate.weight.shape == (6, 10)
    x, h, c = torch.randn(2, 4), torch.randn(2, 6), torch.randn(2, 6)
    for a, b in zip(seed(x, (h, c)), cell(x, (h, c)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    again = lstmkit.LSTMCell.from_seed(seed)
    for a, b in zip(again(x, (h, c)), cell(x, (h, c)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_from_seed_rejects_wrong_module() -> None:
    bad = nn.Module()
    with pytest.raises(TypeError, match="forget_gate"):
        lstmkit.LSTMCell.from_seed(bad)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("proj_size", [0, 2])
def test_gradcheck_explicit_path(bidirectional: bool, proj_size: int) -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4, 2, bidirectional=bidirectional, proj_size=proj_size, dtype=torch.float64)
    params = list(model.parameters())
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    D, R = (2 if bidirectional else 1), (proj_size or 4)
    h0 = torch.randn(2 * D, 2, R, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2 * D, 2, 4, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in model.named_parameters()]

    def fn(x, h0, c0, *flat):
        state = dict(zip(names, flat, strict=True))
        out, (h, c), _ = torch.func.functional_call(model, state, (x, (h0, c0)), {"return_gates": True})
        return out, h, c

    with kernels.use("reference"):
        assert torch.autograd.gradcheck(fn, (x, h0, c0, *params), eps=1e-6, atol=1e-7)


def test_gradcheck_packed_reference() -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4, bidirectional=True, dtype=torch.float64)
    x = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2, 5, 3])

    def fn(x):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = model(packed)
        return out.data, h, c

    with kernels.use("reference"):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7)


def test_layer_equals_hand_stepped_cell() -> None:
    """A one-layer LSTM equals LSTMCell stepped by hand with the same weights."""
    torch.manual_seed(2)
    layer = lstmkit.LSTM(5, 7, dtype=torch.float64)
    cell = lstmkit.LSTMCell(5, 7, dtype=torch.float64)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    h = torch.zeros(3, 7, dtype=torch.float64)
    c = torch.zeros(3, 7, dtype=torch.float64)
    outs = []
    for t in range(6):
        h, c = cell(x[t], (h, c))
        outs.append(h)
    out, (h_n, c_n) = layer(x)
    torch.testing.assert_close(out, torch.stack(outs), atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n[0], h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-12, rtol=0)


def test_cell_gates_named_fields() -> None:
    cell = lstmkit.LSTMCell(3, 4)
    g = cell.gates(torch.randn(3))
    assert g._fields == ("input", "forget", "candidate", "output", "cell", "hidden")
    assert all(v.shape == (4,) for v in g)
    for name in ("input", "forget", "output"):
        v = getattr(g, name)
        assert bool(((v > 0) & (v < 1)).all()), name
