"""The glass box for sLSTM, mLSTM and minLSTM: what ``return_gates=True`` records is what the paper's
equations (written out here) give, and the summaries, pictures and ``inspect_model`` read those
records: every number is recomputed by hand in the test from the recorded gates."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.families import MLSTMSpec, SLSTMSpec
from lstmkit.trace.family import log_growth, summarize_family
from lstmkit.trace.report import inspect_model, record_gates
from lstmkit.trace.summary import summarize

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = [6, 3, 5]


def _batch(I: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 6, I, generator=g, dtype=torch.float64), torch.tensor(LENGTHS)


def _seeded(module: nn.Module, seed: int, std: float = 0.6) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return module


def hand_horizon(forget: Tensor, lengths: list[int]) -> Tensor:
    """Per unit: mean over sequences of the first k with prod_{u<k} f_u < 1/e (capped at the length)."""
    forget = forget.detach()
    B, _, U = forget.shape
    out = torch.zeros(U, dtype=torch.float64)
    for j in range(U):
        total = 0.0
        for b in range(B):
            p, k = 1.0, lengths[b]
            for t in range(lengths[b]):
                p *= float(forget[b, t, j])
                if p < math.exp(-1):
                    k = t + 1
                    break
            total += k
        out[j] = total / B
    return out


def hand_mean(values: Tensor, lengths: list[int]) -> float:
    picked = [float(v) for b, n in enumerate(lengths) for v in values[b, :n].detach().flatten()]
    return sum(picked) / len(picked)


def hand_growth(g: Tensor, lengths: list[int]) -> tuple[float, float, float, float]:
    """first, last, per_step, max of the module docstring, with Python loops."""
    g = g.detach()
    U = g.shape[-1]
    first = sum(float(g[b, 0, u]) for b in range(len(lengths)) for u in range(U)) / (len(lengths) * U)
    last = sum(float(g[b, n - 1, u]) for b, n in enumerate(lengths) for u in range(U)) / (len(lengths) * U)
    slopes = [float(g[b, n - 1, u] - g[b, 0, u]) / (n - 1) for b, n in enumerate(lengths) if n >= 2 for u in range(U)]
    top = max(float(g[b, t, u]) for b, n in enumerate(lengths) for t in range(n) for u in range(U))
    return first, last, sum(slopes) / len(slopes), top


# ---------------------------------------------------------------- sLSTM


def slstm_by_hand(model: lstmkit.SLSTM, x: Tensor, n: int) -> dict[str, list[Tensor]]:
    """Layer 0 of an sLSTM on one sequence x (T, I) for n steps, the paper's stabilised equations:

    i~, f~, z~, o~ = W x_t + R h_{t-1} + b     (R block-diagonal over heads)
    m_t  = max(log sigmoid(f~) + m_{t-1}, i~)          (exponential input gate, sigmoid forget gate)
    i'_t = exp(i~ - m_t)    f'_t = exp(log sigmoid(f~) + m_{t-1} - m_t)
    c_t = f'_t c_{t-1} + i'_t tanh(z~)    n_t = f'_t n_{t-1} + i'_t    h_t = sigmoid(o~) c_t / n_t
    """
    H, NH = model.hidden_size, model.num_heads
    DH = H // NH
    W, R, b = model.weight_ih_l0, model.weight_hh_l0, model.bias_l0
    h, c, nn_, m = (torch.zeros(H, dtype=x.dtype) for _ in range(4))
    out: dict[str, list[Tensor]] = {k: [] for k in ("input", "forget", "forget_raw", "cell", "normalizer", "hidden")}
    out["stabilizer"] = []
    for t in range(n):
        rec = torch.zeros(4 * H, dtype=x.dtype)
        for g in range(4):
            for k in range(NH):
                rows = slice(g * H + k * DH, g * H + (k + 1) * DH)
                rec[rows] = R[rows] @ h[k * DH : (k + 1) * DH]
        pre = W @ x[t] + rec + b
        i_t, f_t, z_t, o_t = pre[:H], pre[H : 2 * H], pre[2 * H : 3 * H], pre[3 * H :]
        log_f = torch.log(torch.sigmoid(f_t))
        m_new = torch.maximum(log_f + m, i_t)
        i_s, f_s = torch.exp(i_t - m_new), torch.exp(log_f + m - m_new)
        c = f_s * c + i_s * torch.tanh(z_t)
        nn_ = f_s * nn_ + i_s
        h = torch.sigmoid(o_t) * c / nn_
        m = m_new
        for name, v in (("input", i_s), ("forget", f_s), ("forget_raw", torch.sigmoid(f_t))):
            out[name].append(v)
        for name, v in (("cell", c), ("normalizer", nn_), ("stabilizer", m), ("hidden", h)):
            out[name].append(v)
    return out


def test_slstm_records_are_the_papers_stabilised_gates_and_states() -> None:
    model = _seeded(lstmkit.SLSTM(3, 4, num_heads=2, batch_first=True, dtype=torch.float64), 1)
    x, lengths = _batch(3)
    _, _, trace = model(x, return_gates=True, lengths=lengths)
    for b, n in enumerate(LENGTHS):
        hand = slstm_by_hand(model, x[b], n)
        for name, steps in hand.items():
            torch.testing.assert_close(trace.get(name)[b, :n], torch.stack(steps), rtol=0, atol=1e-12)
        assert not trace.get("forget")[b, n:].any()  # padded steps hold zeros


def test_slstm_summary_numbers_from_the_recorded_gates() -> None:
    model = _seeded(lstmkit.SLSTM(3, 4, num_layers=2, num_heads=2, batch_first=True, dtype=torch.float64), 2)
    x, lengths = _batch(3, 1)
    _, _, trace = model(x, return_gates=True, lengths=lengths)
    s = summarize(trace)
    assert s.family == "slstm" and s.lengths == LENGTHS and len(s.layers) == 2
    for k in range(2):
        layer = s.layers[k][0]
        assert list(layer.gates) == ["input", "forget", "forget_raw", "candidate", "output"]
        for name in layer.gates:
            assert layer.gates[name].mean == pytest.approx(hand_mean(trace.get(name, k), LENGTHS), abs=1e-12)
        z = [float(v) for b, n in enumerate(LENGTHS) for v in trace.get("candidate", k)[b, :n].detach().flatten()]
        assert layer.gates["candidate"].high == pytest.approx(sum(v > 0.9 for v in z) / len(z))
        # the memory horizon reads the stabilised forget gate f', not the raw one
        torch.testing.assert_close(layer.horizon.horizon, hand_horizon(trace.get("forget", k), LENGTHS))
        g = trace.get("normalizer", k).log() + trace.get("stabilizer", k)  # log n_t = log n'_t + m_t
        got = layer.growth["normalizer"]
        assert (got.first, got.last, got.per_step, got.max) == pytest.approx(hand_growth(g, LENGTHS), abs=1e-12)
    assert json.loads(s.to_json())["layers"][0][0]["log_growth"]["normalizer"]["per_step"] == pytest.approx(
        s.layers[0][0].growth["normalizer"].per_step
    )


def test_slstm_normaliser_growth_is_the_unstabilised_normalisers() -> None:
    """m is a gauge: log n'_t + m_t of the stabilised run is log n_t of a run without the stabiliser."""
    stab = _seeded(lstmkit.SLSTM(3, 4, batch_first=True, dtype=torch.float64, kernel="reference"), 3)
    plain = lstmkit.SLSTM(3, 4, batch_first=True, spec=SLSTMSpec(stabilizer=False), dtype=torch.float64)
    plain.load_state_dict(stab.state_dict())
    x, lengths = _batch(3, 2)
    _, _, t1 = stab(x, return_gates=True, lengths=lengths)
    _, _, t2 = plain(x, return_gates=True, lengths=lengths)
    assert not t2.get("stabilizer").any()
    g1 = summarize_family(t1).layers[0][0].growth["normalizer"]
    g2 = summarize_family(t2).layers[0][0].growth["normalizer"]
    assert (g1.first, g1.last, g1.per_step, g1.max) == pytest.approx((g2.first, g2.last, g2.per_step, g2.max))


# ---------------------------------------------------------------- mLSTM


def test_mlstm_summary_per_head_gates_horizon_and_growths() -> None:
    model = _seeded(lstmkit.MLSTM(3, 8, num_heads=2, batch_first=True, dtype=torch.float64), 4, std=0.8)
    x, lengths = _batch(3, 3)
    _, _, trace = model(x, return_gates=True, lengths=lengths)
    layer = summarize(trace).layers[0][0]
    assert set(layer.gates) == {"input", "forget", "forget_raw", "output"}
    for name in ("input", "forget"):
        per_head = trace.get(name)  # (B, T, NH)
        for h in range(2):
            assert layer.heads[name][h].mean == pytest.approx(hand_mean(per_head[..., h], LENGTHS), abs=1e-12)
    torch.testing.assert_close(layer.horizon.horizon, hand_horizon(trace.get("forget"), LENGTHS))
    m = trace.get("stabilizer")
    n_norm = torch.linalg.vector_norm(trace.get("normalizer"), dim=-1)  # ||n'_t|| per head
    for name, g in (
        ("normalizer", n_norm.log() + m),
        ("memory", trace.get("memory_norm").log() + m),
        ("denominator", trace.get("denominator").log() + m),
    ):
        got = layer.growth[name]
        assert (got.first, got.last, got.per_step, got.max) == pytest.approx(hand_growth(g, LENGTHS), abs=1e-12)


def test_mlstm_memory_growth_is_the_unstabilised_memorys_and_the_denominator_floor() -> None:
    """With eps = 0: log ||C'|| + m is log ||C|| of the unstabilised run, and the denominator is at least
    the floor 1 in the unscaled frame (log >= 0)."""
    spec = MLSTMSpec(eps=0.0)
    stab = _seeded(lstmkit.MLSTM(3, 8, num_heads=2, batch_first=True, spec=spec, dtype=torch.float64), 5)
    plain = lstmkit.MLSTM(
        3, 8, num_heads=2, batch_first=True, spec=MLSTMSpec(eps=0.0, stabilizer=False), dtype=torch.float64
    )
    plain.load_state_dict(stab.state_dict())
    x, lengths = _batch(3, 4)
    l1 = summarize(stab(x, return_gates=True, lengths=lengths)[2]).layers[0][0]
    l2 = summarize(plain(x, return_gates=True, lengths=lengths)[2]).layers[0][0]
    for name in ("memory", "normalizer", "denominator"):
        a, b = l1.growth[name], l2.growth[name]
        assert (a.first, a.last, a.per_step, a.max) == pytest.approx((b.first, b.last, b.per_step, b.max))
    _, _, trace = stab(x, return_gates=True, lengths=lengths)
    g = (trace.get("denominator").log() + trace.get("stabilizer")).detach()
    assert min(float(v) for b, n in enumerate(LENGTHS) for v in g[b, :n].flatten()) >= -1e-12


# ---------------------------------------------------------------- minLSTM and growth


def test_minlstm_horizon_reads_the_applied_forget_gate() -> None:
    model = _seeded(lstmkit.MinLSTM(3, 4, batch_first=True, dtype=torch.float64), 6)
    x, lengths = _batch(3, 5)
    _, _, trace = model(x, return_gates=True, lengths=lengths)
    f, i = trace.get("forget"), trace.get("input")
    for b, n in enumerate(LENGTHS):  # f'_t = f_t / (f_t + i_t) with f, i sigmoids: f' + i' = 1
        torch.testing.assert_close(f[b, :n] + i[b, :n], torch.ones_like(f[b, :n]))
    layer = summarize(trace).layers[0][0]
    torch.testing.assert_close(layer.horizon.horizon, hand_horizon(f, LENGTHS))
    assert layer.growth == {} and set(layer.gates) == {"input", "forget"}


def test_log_growth_by_its_definition() -> None:
    g = torch.tensor([[[0.0], [1.0], [2.0], [9.0]], [[1.0], [0.0], [5.0], [5.0]]], dtype=torch.float64)
    got = log_growth(g, torch.tensor([3, 1]))  # sequence 1 has one step: no slope, but first and last
    assert (got.first, got.last, got.per_step, got.max) == pytest.approx((0.5, 1.5, 1.0, 2.0))


def test_an_unbatched_trace_summarises_as_a_batch_of_one() -> None:
    model = _seeded(lstmkit.MLSTM(3, 8, num_heads=2, dtype=torch.float64), 9)
    x = torch.randn(6, 3, dtype=torch.float64)
    one = summarize(model(x, return_gates=True)[2]).to_dict()  # (T, I) input: records without B
    batch = summarize(model(x.unsqueeze(1), return_gates=True)[2]).to_dict()  # (T, 1, I)
    assert one == batch and one["sequences"] == 1 and one["lengths"] == [6]


# ---------------------------------------------------------------- pictures and inspect


def test_slstm_heatmaps_show_each_record_of_the_shown_sequence() -> None:
    from lstmkit.trace.plots import plot_gate_means, plot_gates, plot_memory_horizon

    model = _seeded(lstmkit.SLSTM(3, 4, num_heads=2, batch_first=True, dtype=torch.float64), 7)
    x, lengths = _batch(3, 6)
    _, _, trace = model(x, return_gates=True, lengths=lengths)
    fig = plot_gates(trace, 1)
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title(loc="left")]
    titles = [ax.get_title(loc="left").split()[0] for ax in heatmaps]
    assert titles == ["input", "forget", "candidate", "output", "cell", "normalizer", "stabilizer", "hidden"]
    for ax, name in zip(heatmaps, titles, strict=True):
        shown = torch.as_tensor(ax.images[0].get_array().data)
        torch.testing.assert_close(shown, trace.get(name)[1, : LENGTHS[1]].T.float())
    assert "Stabilised" in plot_memory_horizon(trace).axes[0].get_title()
    means = plot_gate_means(trace)
    lines = {line.get_label(): line.get_ydata() for ax in means.axes for line in ax.get_lines()}
    g = trace.get("normalizer").log() + trace.get("stabilizer")
    active = [sum(t < n for n in LENGTHS) for t in range(6)]  # sequences still running at step t
    want = [sum(float(g[b, t].mean()) for b in range(3) if t < LENGTHS[b]) / active[t] for t in range(6)]
    assert list(lines["log normalizer"]) == pytest.approx(want)


def test_mlstm_heatmaps_are_per_head_and_skip_a_missing_output_gate() -> None:
    from lstmkit.trace.plots import plot_gates

    model = lstmkit.MLSTM(3, 8, num_heads=2, batch_first=True, spec=MLSTMSpec(output_gate=False))
    _, _, trace = model(torch.randn(2, 5, 3), return_gates=True)
    fig = plot_gates(trace, 0)
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title(loc="left")]
    assert [ax.get_title(loc="left").split()[0] for ax in heatmaps] == [
        "input",
        "forget",
        "denominator",
        "memory_norm",
        "stabilizer",
        "hidden",
    ]
    assert heatmaps[0].get_ylabel() == "head" and heatmaps[0].images[0].get_array().shape == (2, 5)


def test_inspect_model_writes_a_family_summary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _seeded(lstmkit.SLSTM(3, 4, num_layers=2, dtype=torch.float64), 8)
    x, lengths = _batch(3, 7)
    paths = inspect_model(model, x, lengths, tmp_path / "out", sequence=2)
    assert sorted(paths) == ["gates_l0", "gates_l1", "horizon_l0", "horizon_l1", "means_l0", "means_l1", "summary"]
    data = json.loads(paths["summary"].read_text())
    trace = record_gates(model, x, lengths)
    want = summarize(trace).layers[1][0].horizon.horizon.tolist()
    assert data["family"] == "slstm" and data["lengths"] == LENGTHS
    assert data["layers"][1][0]["memory_horizon"]["per_unit"] == pytest.approx(want)
    assert data["inputs"]["shown_sequence"] == 2


def test_bad_traces_and_models_name_what_is_expected() -> None:
    with pytest.raises(TypeError, match=r"^summarize_family reads a FamilyTrace \(sLSTM, mLSTM, minLSTM\); got dict$"):
        summarize_family({})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^gates are recorded from an lstmkit.LSTM, SLSTM, MLSTM or MinLSTM; got GRU$"):
        record_gates(nn.GRU(3, 4), torch.randn(2, 5, 3))  # type: ignore[arg-type]
