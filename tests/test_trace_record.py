"""Recorded gates against a hand-stepped recomputation, and recording never changes outputs.

The oracle below writes the cell equations out with exp and matrix products, one sequence at a
time and only over its valid steps; it never calls lstmkit.functional.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstmkit
from lstmkit import kernels

NAMES = ("input", "forget", "candidate", "output", "cell", "hidden")


def sig(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def tanh(x: torch.Tensor) -> torch.Tensor:
    return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))


def hand_direction(sd: dict, suffix: str, spec: str, xs: torch.Tensor, H: int) -> dict[str, torch.Tensor]:
    """One layer-direction over one sequence xs (L, I), stepped forward; returns (L, H) per name."""
    W, R = sd["weight_ih" + suffix], sd["weight_hh" + suffix]
    b = sd["bias_ih" + suffix] + sd["bias_hh" + suffix]
    h, c = torch.zeros(H, dtype=xs.dtype), torch.zeros(H, dtype=xs.dtype)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in NAMES}
    for x in xs:
        z = W @ x + R @ h + b
        if spec == "cifg":  # rows i, g, o; f = 1 - i (Greff et al. 2017)
            zi, zg, zo = z[:H], z[H : 2 * H], z[2 * H :]
            i = sig(zi)
            f = 1.0 - i
        else:  # rows i, f, g, o
            zi, zf, zg, zo = z[:H], z[H : 2 * H], z[2 * H : 3 * H], z[3 * H :]
            if spec == "peephole":  # i, f look at c_{t-1} (Gers et al. 2002)
                p = sd["weight_ch" + suffix]
                zi, zf = zi + p[:H] * c, zf + p[H : 2 * H] * c
            i, f = sig(zi), sig(zf)
        g = tanh(zg)
        c = f * c + i * g
        if spec == "peephole":  # o looks at the new c_t
            zo = zo + sd["weight_ch" + suffix][2 * H :] * c
        o = sig(zo)
        h = o * tanh(c)
        for name, value in zip(NAMES, (i, f, g, o, c, h), strict=True):
            out[name].append(value)
    return {n: torch.stack(v) for n, v in out.items()}


def hand_model(model: lstmkit.LSTM, spec: str, x: torch.Tensor, lengths: list[int]) -> list[list[list[dict]]]:
    """Per sequence b: gates[b][k][d] = {name: (L_b, H)}; x is (B, T, I)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    H, D = model.hidden_size, model.num_directions
    result = []
    for bi, L in enumerate(lengths):
        layer_in = x[bi, :L]  # (L, I)
        per_layer = []
        for k in range(model.num_layers):
            dirs, outs = [], []
            for d in range(D):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                seq = layer_in.flip(0) if d else layer_in
                g = hand_direction(sd, suffix, spec, seq, H)
                if d:
                    g = {n: v.flip(0) for n, v in g.items()}
                dirs.append(g)
                outs.append(g["hidden"])
            per_layer.append(dirs)
            layer_in = torch.cat(outs, dim=1)
        result.append(per_layer)
    return result


STEP_KERNELS = ["reference"] + (["compiled"] if kernels.available()["compiled"] else [])


@pytest.mark.parametrize("kernel", STEP_KERNELS)
@pytest.mark.parametrize("spec", ["vanilla", "peephole", "cifg"])
def test_packed_bidirectional_two_layers_match_hand_stepped(spec: str, kernel: str) -> None:
    torch.manual_seed(1)
    model = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, spec=spec, dtype=torch.float64)
    if spec == "peephole":
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("weight_ch"):
                    p.uniform_(-0.8, 0.8)  # make the peepholes matter
    lengths = [3, 6, 1, 5]  # unsorted on purpose
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    with kernels.use(kernel):
        out, (h_n, c_n), trace = model(packed, return_gates=True)
    expected = hand_model(model, spec, x, lengths)

    assert torch.equal(trace.lengths, torch.tensor(lengths))  # the caller's batch order
    assert trace.num_layers == 2 and trace.num_directions == 2
    for k in range(2):
        for d in range(2):
            for name in NAMES:
                got = trace.get(name, layer=k, direction=d)
                assert got.shape == (4, 6, 4), (name, got.shape)
                for bi, L in enumerate(lengths):
                    torch.testing.assert_close(got[bi, :L], expected[bi][k][d][name], rtol=1e-10, atol=1e-12)
                    assert torch.count_nonzero(got[bi, L:]) == 0, f"padding of {name} not zero"
    # the last layer's hidden trace is the output
    padded, _ = pad_packed_sequence(out, batch_first=True)
    hidden = torch.cat([trace.get("hidden", 1, 0), trace.get("hidden", 1, 1)], dim=2)
    torch.testing.assert_close(padded, hidden, rtol=0, atol=0)
    for bi, L in enumerate(lengths):  # final states: forward at the last valid step, reverse at step 0
        torch.testing.assert_close(h_n[2, bi], trace.get("hidden", 1, 0)[bi, L - 1], rtol=0, atol=0)
        torch.testing.assert_close(c_n[3, bi], trace.get("cell", 1, 1)[bi, 0], rtol=0, atol=0)


def test_time_major_and_unbatched_layouts() -> None:
    torch.manual_seed(2)
    model = lstmkit.LSTM(3, 5, dtype=torch.float64)  # batch_first=False
    x = torch.randn(7, 2, 3, dtype=torch.float64)  # (T, B, I)
    _, _, trace = model(x, return_gates=True)
    expected = hand_model(model, "vanilla", x.transpose(0, 1), [7, 7])
    assert trace.get("forget").shape == (7, 2, 5) and trace.time_dim == 0 and trace.lengths is None
    for bi in range(2):
        torch.testing.assert_close(trace.get("forget")[:, bi], expected[bi][0][0]["forget"], rtol=1e-10, atol=1e-12)
    _, _, single = model(x[:, 1], return_gates=True)  # (T, I) unbatched
    assert single.get("cell").shape == (7, 5) and single.unbatched
    torch.testing.assert_close(single.get("cell"), expected[1][0][0]["cell"], rtol=1e-10, atol=1e-12)


def test_removed_gate_recorded_as_ones_at_valid_steps() -> None:
    torch.manual_seed(3)
    model = lstmkit.LSTM(2, 3, batch_first=True, spec="nfg")
    x = torch.randn(2, 4, 2)
    packed = pack_padded_sequence(x, torch.tensor([2, 4]), batch_first=True, enforce_sorted=False)
    _, _, trace = model(packed, return_gates=True)
    f = trace.get("forget")
    assert torch.equal(f[0, :2], torch.ones(2, 3)) and torch.equal(f[0, 2:], torch.zeros(2, 3))
    assert torch.equal(f[1], torch.ones(4, 3))


@pytest.mark.parametrize("spec", ["vanilla", "peephole", "cifg"])
def test_recording_leaves_outputs_bitwise_identical_on_reference(spec: str) -> None:
    torch.manual_seed(4)
    model = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, spec=spec)
    x = torch.randn(3, 5, 3)
    packed = pack_padded_sequence(x, torch.tensor([2, 5, 4]), batch_first=True, enforce_sorted=False)
    with kernels.use("reference"):
        for inp in (x, packed):
            out_a, (h_a, c_a) = model(inp)
            out_b, (h_b, c_b), _ = model(inp, return_gates=True)
            data_a = out_a.data if isinstance(out_a, PackedSequence) else out_a
            data_b = out_b.data if isinstance(out_b, PackedSequence) else out_b
            assert torch.equal(data_a, data_b) and torch.equal(h_a, h_b) and torch.equal(c_a, c_b)


def test_recorded_path_matches_native_kernel() -> None:
    torch.manual_seed(5)
    model = lstmkit.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 7, 3)
    packed = pack_padded_sequence(x, torch.tensor([7, 3, 5, 1]), batch_first=True, enforce_sorted=False)
    for inp in (x, packed):
        with kernels.use("native"):
            out_a, (h_a, c_a) = model(inp)
        out_b, (h_b, c_b), _ = model(inp, return_gates=True)  # cannot run on the native kernel
        data_a = out_a.data if isinstance(out_a, PackedSequence) else out_a
        data_b = out_b.data if isinstance(out_b, PackedSequence) else out_b
        torch.testing.assert_close(data_a, data_b, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close((h_a, c_a), (h_b, c_b), rtol=1e-5, atol=1e-6)


def test_cell_return_gates() -> None:
    torch.manual_seed(6)
    cell = lstmkit.LSTMCell(3, 4, dtype=torch.float64)
    x, h0, c0 = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    h, c = cell(x, (h0, c0))
    h_g, c_g, gates = cell(x, (h0, c0), return_gates=True)
    torch.testing.assert_close((h_g, c_g), (h, c), rtol=1e-12, atol=1e-12)
    z = x @ cell.weight_ih.T + h0 @ cell.weight_hh.T + cell.bias_ih + cell.bias_hh
    zi, zf, zg, zo = z.detach().chunk(4, dim=1)
    torch.testing.assert_close(gates.forget, sig(zf), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gates.candidate, tanh(zg), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gates.cell, sig(zf) * c0 + sig(zi) * tanh(zg), rtol=1e-12, atol=1e-12)
    assert gates.hidden is h_g and gates.cell is c_g
    h1, c1, g1 = cell(x[0], (h0[0], c0[0]), return_gates=True)  # unbatched
    assert h1.shape == (4,) and g1.output.shape == (4,) and torch.equal(c1, g1.cell)
    torch.testing.assert_close(g1.output, sig(zo[0]), rtol=1e-12, atol=1e-12)
    cifg = lstmkit.LSTMCell(3, 4, spec="cifg")
    _, _, g2 = cifg(x.float(), return_gates=True)
    torch.testing.assert_close(g2.forget, 1.0 - g2.input)
    torch.testing.assert_close(g2.hidden, g2.output * torch.tanh(g2.cell))
