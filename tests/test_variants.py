"""Each variant against its paper's equations, written out here in plain tensor maths.

Every test runs a multi-step sequence through ``lstmkit.LSTM`` with the variant's spec and
through the equations below (using the module's own parameter tensors), then compares outputs,
final states and the gradients of every parameter, of the input and of the initial state, in
float64. The equations here are the papers', not a copy of lstmkit's code.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import lstmkit
from lstmkit import CellSpec, kernels

T, B, I, H = 6, 3, 4, 5
DT = torch.float64
sig, tanh = torch.sigmoid, torch.tanh


def blocks(w: Tensor, names: str) -> dict[str, Tensor]:
    """Split a (G*H, ...) tensor into its gate blocks, named by the letters of ``names``."""
    return dict(zip(names, w.chunk(len(names)), strict=True))


def params(model: lstmkit.LSTM, names: str) -> dict[str, dict[str, Tensor]]:
    sd = dict(model.named_parameters())
    return {
        "W": blocks(sd["weight_ih_l0"], names),
        "R": blocks(sd["weight_hh_l0"], names),
        "b": blocks(sd["bias_ih_l0"] + sd["bias_hh_l0"], names),
        "sd": sd,  # type: ignore[dict-item]
    }


def z(p: dict, gate: str, x: Tensor, h: Tensor) -> Tensor:
    """W_gate x + R_gate h + b_gate."""
    return x @ p["W"][gate].T + h @ p["R"][gate].T + p["b"][gate]


# ------------------------------------------------------------------ the papers' steps
def vanilla(p, x, h, c, _):
    i, f = sig(z(p, "i", x, h)), sig(z(p, "f", x, h))
    g, o = tanh(z(p, "g", x, h)), sig(z(p, "o", x, h))
    c = f * c + i * g
    return o * tanh(c), c, None


def peephole(p, x, h, c, _):
    """Gers, Schraudolph & Schmidhuber 2002: i, f look at c_{t-1}; o looks at c_t."""
    pi, pf, po = p["sd"]["weight_ch_l0"].chunk(3)
    i = sig(z(p, "i", x, h) + pi * c)
    f = sig(z(p, "f", x, h) + pf * c)
    g = tanh(z(p, "g", x, h))
    c = f * c + i * g
    o = sig(z(p, "o", x, h) + po * c)
    return o * tanh(c), c, None


def cifg(p, x, h, c, _):
    """Coupled input-forget gate (Greff et al. 2017): f = 1 - i."""
    i = sig(z(p, "i", x, h))
    c = (1 - i) * c + i * tanh(z(p, "g", x, h))
    return sig(z(p, "o", x, h)) * tanh(c), c, None


def peephole_cifg(p, x, h, c, _):
    pi, po = p["sd"]["weight_ch_l0"].chunk(2)
    i = sig(z(p, "i", x, h) + pi * c)
    c = (1 - i) * c + i * tanh(z(p, "g", x, h))
    o = sig(z(p, "o", x, h) + po * c)
    return o * tanh(c), c, None


def nig(p, x, h, c, _):
    """No input gate: i = 1."""
    c = sig(z(p, "f", x, h)) * c + tanh(z(p, "g", x, h))
    return sig(z(p, "o", x, h)) * tanh(c), c, None


def nfg(p, x, h, c, _):
    """No forget gate: f = 1."""
    c = c + sig(z(p, "i", x, h)) * tanh(z(p, "g", x, h))
    return sig(z(p, "o", x, h)) * tanh(c), c, None


def nog(p, x, h, c, _):
    """No output gate: o = 1."""
    c = sig(z(p, "f", x, h)) * c + sig(z(p, "i", x, h)) * tanh(z(p, "g", x, h))
    return tanh(c), c, None


def niaf(p, x, h, c, _):
    """No input activation function: g = z_g."""
    c = sig(z(p, "f", x, h)) * c + sig(z(p, "i", x, h)) * z(p, "g", x, h)
    return sig(z(p, "o", x, h)) * tanh(c), c, None


def noaf(p, x, h, c, _):
    """No output activation function: h = o * c."""
    c = sig(z(p, "f", x, h)) * c + sig(z(p, "i", x, h)) * tanh(z(p, "g", x, h))
    return sig(z(p, "o", x, h)) * c, c, None


def hard(p, x, h, c, _):
    """Hard sigmoid gates: clamp((x + 3) / 6, 0, 1)."""
    hs = lambda v: ((v + 3) / 6).clamp(0, 1)  # noqa: E731
    c = hs(z(p, "f", x, h)) * c + hs(z(p, "i", x, h)) * tanh(z(p, "g", x, h))
    return hs(z(p, "o", x, h)) * tanh(c), c, None


def clipped(p, x, h, c, _):
    """Cell clipping at 0.5."""
    c = sig(z(p, "f", x, h)) * c + sig(z(p, "i", x, h)) * tanh(z(p, "g", x, h))
    c = torch.clamp(c, -0.5, 0.5)
    return sig(z(p, "o", x, h)) * tanh(c), c, None


def fgr(p, x, h, c, prev):
    """Full gate recurrence (Greff et al. 2017): i, f, o see i_{t-1}, f_{t-1}, o_{t-1}."""
    Wg = p["sd"]["weight_gg_l0"]  # (3H, 3H): rows target i, f, o; columns source i, f, o
    ip, fp, op = prev if prev is not None else (torch.zeros_like(c),) * 3
    extra = {}
    for row, name in enumerate("ifo"):
        blk = Wg[row * H : (row + 1) * H]
        extra[name] = ip @ blk[:, :H].T + fp @ blk[:, H : 2 * H].T + op @ blk[:, 2 * H :].T
    i = sig(z(p, "i", x, h) + extra["i"])
    f = sig(z(p, "f", x, h) + extra["f"])
    o = sig(z(p, "o", x, h) + extra["o"])
    c = f * c + i * tanh(z(p, "g", x, h))
    return o * tanh(c), c, (i, f, o)


def layer_norm(p, x, h, c, _):
    """Ba, Kiros & Hinton 2016: LN(W x) + LN(R h) + b over all 4H; h = o * tanh(LN(c))."""
    sd = p["sd"]

    def ln(v, gain, shift=None):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        out = gain * (v - mu) / torch.sqrt(var + 1e-5)
        return out if shift is None else out + shift

    W, R = sd["weight_ih_l0"], sd["weight_hh_l0"]
    pre = ln(x @ W.T, sd["ln_ih_weight_l0"]) + ln(h @ R.T, sd["ln_hh_weight_l0"])
    pre = pre + sd["bias_ih_l0"] + sd["bias_hh_l0"]
    zi, zf, zg, zo = pre.chunk(4, dim=-1)
    c = sig(zf) * c + sig(zi) * tanh(zg)
    h = sig(zo) * tanh(ln(c, sd["ln_cell_weight_l0"], sd["ln_cell_bias_l0"]))
    return h, c, None


CASES = {
    "vanilla": (CellSpec(), "ifgo", vanilla),
    "peephole": (CellSpec(peephole=True), "ifgo", peephole),
    "cifg": (CellSpec(coupled=True), "igo", cifg),
    "peephole+cifg": (CellSpec(peephole=True, coupled=True), "igo", peephole_cifg),
    "nig": (CellSpec(input_gate=False), "fgo", nig),
    "nfg": (CellSpec(forget_gate=False), "igo", nfg),
    "nog": (CellSpec(output_gate=False), "ifg", nog),
    "niaf": (CellSpec(candidate_activation="identity"), "ifgo", niaf),
    "noaf": (CellSpec(cell_activation="identity"), "ifgo", noaf),
    "hard_sigmoid": (CellSpec(gate_activation="hard_sigmoid"), "ifgo", hard),
    "cell_clip": (CellSpec(cell_clip=0.5), "ifgo", clipped),
    "fgr": (CellSpec(full_gate_recurrence=True), "ifgo", fgr),
    "layernorm": (CellSpec(layer_norm=True), "ifgo", layer_norm),
}


def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial values for every parameter (layer-norm gains away from 1, etc.)."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.6)


@pytest.mark.parametrize("kernel", ["auto", "reference"])
@pytest.mark.parametrize("name", list(CASES))
def test_variant_equals_paper_equations(name: str, kernel: str) -> None:
    spec, gate_names, paper_step = CASES[name]
    model = lstmkit.LSTM(I, H, spec=spec, dtype=DT)
    _randomise(model)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, dtype=DT, generator=gen, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=DT, generator=gen, requires_grad=True)
    c0 = torch.randn(1, B, H, dtype=DT, generator=gen, requires_grad=True)
    weights = torch.randn(T, B, H, dtype=DT, generator=gen)
    state = (h0, c0)
    prev = None
    if spec.full_gate_recurrence:  # the previous call's last gates i, f, o, carried as the state's g_0
        g0 = torch.rand(1, B, 3 * H, dtype=DT, generator=gen, requires_grad=True)
        state, prev = (h0, c0, g0), tuple(g0[0].split(H, dim=1))

    with kernels.use(kernel):
        out, final = model(x, state)
    h_n, c_n = final[0], final[1]
    p = params(model, gate_names)
    h, c, outs = h0[0], c0[0], []
    for t in range(T):
        h, c, prev = paper_step(p, x[t], h, c, prev)
        outs.append(h)
    ref = torch.stack(outs)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(h_n[0], h, atol=1e-10, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-10, rtol=0)
    if spec.full_gate_recurrence:  # g_n: the last step's i, f, o
        assert len(final) == 3
        torch.testing.assert_close(final[2][0], torch.cat(prev, dim=1), atol=1e-10, rtol=0)

    leaves = [x, *state, *model.parameters()]
    ours = torch.autograd.grad((out * weights).sum() + h_n.sum() - 2 * c_n.sum(), leaves, allow_unused=True)
    theirs = torch.autograd.grad((ref * weights).sum() + h.sum() - 2 * c.sum(), leaves, allow_unused=True)
    labels = ["x", "h0", "c0", *(["g0"] if len(state) == 3 else []), *[n for n, _ in model.named_parameters()]]
    for label, a, b in zip(labels, ours, theirs, strict=True):
        assert a is not None, f"{name}: no gradient for {label}"
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg=lambda m, label=label: f"{name} d/d{label}: {m}")


@pytest.mark.parametrize("name", list(CASES))
def test_cell_gates_follow_the_spec(name: str) -> None:
    """LSTMCell with the spec computes the same step as the layer."""
    spec, _, paper_step = CASES[name]
    layer = lstmkit.LSTM(I, H, spec=spec, dtype=DT)
    _randomise(layer)
    cell = lstmkit.LSTMCell(I, H, spec=spec, dtype=DT)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x, h, c = (torch.randn(B, n, dtype=DT) for n in (I, H, H))
    state: tuple[torch.Tensor, ...] = (h, c)
    prev = None
    if spec.full_gate_recurrence:
        g = torch.rand(B, 3 * H, dtype=DT)
        state, prev = (h, c, g), tuple(g.split(H, dim=1))
    step = cell.gates(x, state)
    h_ref, c_ref, g_ref = paper_step(params(layer, CASES[name][1]), x, h, c, prev)
    torch.testing.assert_close(step.hidden, h_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(step.cell, c_ref, atol=1e-12, rtol=0)
    h1, c1, *g1 = cell(x, state)
    if spec.full_gate_recurrence:  # the cell returns the state its next step takes
        torch.testing.assert_close(g1[0], torch.cat(g_ref, dim=1), atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, h_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(c1, c_ref, atol=1e-12, rtol=0)
    removed = {"nig": "input", "nfg": "forget", "nog": "output"}.get(name)
    if removed:
        assert getattr(step, removed) is None
    if spec.coupled:
        torch.testing.assert_close(step.forget, 1 - step.input, atol=1e-15, rtol=0)


def test_presets() -> None:
    assert lstmkit.PRESETS["vanilla"] == CellSpec() == lstmkit.PRESETS["np"]
    expected_gates = {
        "vanilla": 4,
        "np": 4,
        "peephole": 4,
        "nig": 3,
        "nfg": 3,
        "nog": 3,
        "niaf": 4,
        "noaf": 4,
        "cifg": 3,
        "fgr": 4,
        "layernorm": 4,
    }
    assert set(lstmkit.PRESETS) == set(expected_gates)
    for name, g in expected_gates.items():
        spec = CellSpec.preset(name)
        assert spec.num_gates == g, name
        assert lstmkit.LSTM(2, 3, spec=name).spec == spec
        assert CellSpec(**spec.to_dict()) == spec


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(lstmkit.PRESETS))
def test_parameter_count_formula(name: str) -> None:
    """Per layer-direction: G*H*(I + R) + 2*G*H + n*H (peephole) + (n*H)^2 (FGR) + 2*G*H + 2*H (LN)."""
    spec = CellSpec.preset(name)
    Ii, Hh = 7, 5
    G, n = spec.num_gates, len(spec.sigmoid_gates)
    formula = G * Hh * (Ii + Hh) + 2 * G * Hh
    formula += n * Hh if spec.peephole else 0
    formula += (n * Hh) ** 2 if spec.full_gate_recurrence else 0
    formula += 2 * G * Hh + 2 * Hh if spec.layer_norm else 0
    assert _count(lstmkit.LSTM(Ii, Hh, spec=spec)) == formula
    if name == "cifg":
        plain = lstmkit.LSTM(Ii, Hh)
        assert plain.weight_ih_l0.numel() * 3 == lstmkit.LSTM(Ii, Hh, spec="cifg").weight_ih_l0.numel() * 4


def _spec_ids() -> list[str]:
    return [*sorted(CASES), "peephole+layernorm+clip"]


def _spec(name: str) -> CellSpec:
    if name == "peephole+layernorm+clip":
        return CellSpec(peephole=True, layer_norm=True, cell_clip=1.0)
    return CASES[name][0]


@pytest.mark.parametrize("name", _spec_ids())
def test_every_spec_with_every_layer_feature(name: str) -> None:
    """Packed input equals running each sequence alone; the reverse direction equals the forward
    direction on reversed sequences; layers, projection and batch_first compose."""
    spec = _spec(name)
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=3, batch_first=True, spec=spec, dtype=DT)
    _randomise(model)
    lengths = torch.tensor([4, 6, 2])
    x = torch.randn(3, 6, I, dtype=DT)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final, trace = model(packed, return_gates=True)
    h_n, c_n = final[0], final[1]
    padded, out_lengths = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    assert torch.equal(out_lengths, lengths)
    assert padded.shape == (3, 6, 6) and h_n.shape == (4, 3, 3) and c_n.shape == (4, 3, H)
    assert len(final) == (3 if spec.full_gate_recurrence else 2)
    for b in range(3):
        L = int(lengths[b])
        alone, final_b = model(x[b : b + 1, :L])
        torch.testing.assert_close(padded[b, :L], alone[0], atol=1e-10, rtol=0)
        for t_all, t_b in zip(final, final_b, strict=True):  # h_n, c_n and FGR's g_n
            torch.testing.assert_close(t_all[:, b], t_b[:, 0], atol=1e-10, rtol=0)
        assert torch.all(trace.get("forget", layer=1, direction=1)[b, L:] == 0)
    # reverse direction of layer 0 == forward weights run on the reversed sequence
    fwd = lstmkit.LSTM(I, H, proj_size=3, batch_first=True, spec=spec, dtype=DT)
    reverse = {k.replace("_l0_reverse", "_l0"): v for k, v in model.state_dict().items() if "_l0_reverse" in k}
    fwd.load_state_dict(reverse)
    seq = x[1:2]  # full length
    rev_out, _ = fwd(seq.flip(1))
    full = model(seq, return_gates=True)[2]
    torch.testing.assert_close(full.get("hidden", layer=0, direction=1), rev_out.flip(1), atol=1e-10, rtol=0)


# ------------------------------------------------------------------ regularisers
def _capture_options(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    seen: list[dict] = []
    real = kernels.run_layer

    def spy(kernel, x, h0, c0, w, spec, **options):
        seen.append({"w": w, **options})
        return real(kernel, x, h0, c0, w, spec, **options)

    monkeypatch.setattr(kernels, "run_layer", spy)
    return seen


def test_recurrent_dropout_one_mask_per_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gal & Ghahramani 2016: h_{t-1} * m with the same m at every step, training only."""
    p = 0.3
    model = lstmkit.LSTM(I, H, recurrent_dropout=p, dtype=DT, generator=torch.Generator().manual_seed(0))
    seen = _capture_options(monkeypatch)
    x = torch.randn(T, 400, I, dtype=DT)
    _, (h_n, _) = model(x)
    mask = seen[-1]["recurrent_mask"]
    assert mask.shape == (400, H)
    values = set(mask.unique().tolist())
    assert values == {0.0, 1.0 / (1 - p)}
    assert abs((mask == 0).double().mean().item() - p) < 0.05
    # the paper's equation with that one mask at every step
    prm = params(model, "ifgo")
    h, c = torch.zeros(400, H, dtype=DT), torch.zeros(400, H, dtype=DT)
    for t in range(T):
        h, c, _ = vanilla(prm, x[t], h * mask, c, None)
    torch.testing.assert_close(h_n[0], h, atol=1e-10, rtol=0)
    model(x)
    assert not torch.equal(seen[-1]["recurrent_mask"], mask), "a fresh mask per forward call"
    model.eval()
    calls = len(seen)
    a, _ = model(x)
    b, _ = model(x)
    assert torch.equal(a, b)
    assert all("recurrent_mask" not in options for options in seen[calls:])
    torch.testing.assert_close(a, model.to_torch()(x)[0], atol=1e-10, rtol=0)


def test_zoneout_fresh_masks_and_eval_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Krueger et al. 2016: c_t = d * c_{t-1} + (1 - d) * c~_t, d ~ Bernoulli(z) per step and unit;
    in evaluation d is replaced by its expectation z."""
    zc, zh = 0.25, 0.1
    model = lstmkit.LSTM(I, H, zoneout=(zc, zh), dtype=DT, generator=torch.Generator().manual_seed(0))
    seen = _capture_options(monkeypatch)
    x = torch.randn(T, 300, I, dtype=DT)
    _, (h_n, c_n) = model(x)
    dc, dh = seen[-1]["zoneout_cell"], seen[-1]["zoneout_hidden"]
    assert dc.shape == (T, 300, H) and dh.shape == (T, 300, H)
    assert abs(dc.mean().item() - zc) < 0.03 and abs(dh.mean().item() - zh) < 0.03
    assert not torch.equal(dc[0], dc[1]), "masks must be fresh at every step"
    prm = params(model, "ifgo")
    h, c = torch.zeros(300, H, dtype=DT), torch.zeros(300, H, dtype=DT)
    for t in range(T):
        h_new, c_new, _ = vanilla(prm, x[t], h, c, None)
        c = dc[t] * c + (1 - dc[t]) * c_new
        h = dh[t] * h + (1 - dh[t]) * h_new
    torch.testing.assert_close(h_n[0], h, atol=1e-10, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-10, rtol=0)

    model.eval()
    a, (h_e, _) = model(x)
    b, _ = model(x)
    assert torch.equal(a, b), "evaluation is deterministic"
    h, c = torch.zeros(300, H, dtype=DT), torch.zeros(300, H, dtype=DT)
    for t in range(T):
        h_new, c_new, _ = vanilla(prm, x[t], h, c, None)
        c = zc * c + (1 - zc) * c_new
        h = zh * h + (1 - zh) * h_new
    torch.testing.assert_close(h_e[0], h, atol=1e-10, rtol=0)


def test_weight_drop_one_mask_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merity et al. 2017: DropConnect on W_hh, one mask for the whole forward call."""
    p = 0.4
    model = lstmkit.LSTM(I, 50, weight_drop=p, dtype=DT, generator=torch.Generator().manual_seed(0))
    dropped = []
    real = lstmkit.modules.base.drop_recurrent_weight

    def spy(*args, **kwargs):
        w = real(*args, **kwargs)
        dropped.append(w.weight_hh.detach())
        return w

    monkeypatch.setattr(lstmkit.modules.base, "drop_recurrent_weight", spy)
    x = torch.randn(T, B, I, dtype=DT)
    out, _ = model(x)
    w_used = dropped[-1]
    w_orig = model.weight_hh_l0.detach()
    kept = w_used != 0
    assert abs((~kept).double().mean().item() - p) < 0.05
    torch.testing.assert_close(w_used[kept], w_orig[kept] / (1 - p), atol=1e-12, rtol=0)
    ref = torch.nn.LSTM(I, 50, dtype=DT)  # to_torch() refuses weight_drop in training mode
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        ref.weight_hh_l0.copy_(w_used)
    torch.testing.assert_close(out, ref(x)[0], atol=1e-10, rtol=0)  # same mask at every step
    model(x)
    assert not torch.equal(dropped[-1], w_used)
    model.eval()
    torch.testing.assert_close(model(x)[0], model.to_torch()(x)[0], atol=1e-10, rtol=0)


def test_forget_bias_shifts_forget_rows_only() -> None:
    torch.manual_seed(5)
    plain = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True)
    torch.manual_seed(5)
    biased = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, p in plain.named_parameters():
        q = getattr(biased, name)
        if name.startswith("bias_ih"):
            torch.testing.assert_close(q[H : 2 * H], p[H : 2 * H] + 1.0)
            assert torch.equal(q[:H], p[:H]) and torch.equal(q[2 * H :], p[2 * H :])
        else:
            assert torch.equal(p, q), name
    for spec in ("nfg", "cifg"):  # no forget rows: refused, never dropped silently
        with pytest.raises(ValueError, match="forget_bias=1.0 needs a forget gate"):
            lstmkit.LSTM(I, H, spec=spec, forget_bias=1.0)


def test_plain_spec_takes_the_native_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = lstmkit.modules.lstm.native_lstm

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lstmkit.modules.lstm, "native_lstm", spy)
    model = lstmkit.LSTM(I, H, forget_bias=1.0, weight_drop=0.2)
    model(torch.randn(T, B, I))
    assert len(calls) == 1
    lstmkit.LSTM(I, H, spec="peephole")(torch.randn(T, B, I))
    lstmkit.LSTM(I, H, zoneout=0.1)(torch.randn(T, B, I))
    assert len(calls) == 1


def test_hard_sigmoid_definition() -> None:
    v = torch.linspace(-5, 5, 101, dtype=DT)
    from lstmkit.functional import activation

    torch.testing.assert_close(activation("hard_sigmoid", v), torch.clamp(v / 6 + 0.5, 0, 1))
    assert math.isclose(float(activation("softsign", torch.tensor(1.0))), 0.5)
    assert torch.equal(activation("relu", v), F.relu(v))
