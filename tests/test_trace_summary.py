"""Trace summaries: gate statistics on constructed traces, the memory horizon by its definition."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.spec import CellSpec
from lstmkit.trace.record import TRACE_NAMES, GateTrace
from lstmkit.trace.summary import gate_stats, memory_horizon


def constructed_trace(values: dict[str, torch.Tensor], lengths: torch.Tensor | None) -> GateTrace:
    """A one-layer, one-direction batch-first trace from given (B, T, H) series (zeros elsewhere)."""
    some = next(iter(values.values()))
    record = {name: values.get(name, torch.zeros_like(some)) for name in TRACE_NAMES}
    return GateTrace([[record]], CellSpec(), batch_first=True, lengths=lengths)


def test_gate_means_and_saturation_respect_lengths() -> None:
    # sequence 0 has 2 valid steps, sequence 1 has 3; H = 2; padded steps hold junk that must not count
    inp = torch.tensor([[[0.0, 1.0], [0.5, 0.5], [9.0, 9.0]], [[0.02, 0.97], [0.5, 0.5], [0.5, 0.5]]])
    cand = torch.tensor([[[-1.0, 0.95], [0.0, 0.0], [9.0, 9.0]], [[0.5, -0.5], [0.0, 0.0], [0.0, 0.0]]])
    trace = constructed_trace(
        {"input": inp, "candidate": cand, "forget": torch.full_like(inp, 0.5)}, torch.tensor([2, 3])
    )
    s = trace.summary().layers[0][0].gates
    valid_inp = [0.0, 1.0, 0.5, 0.5, 0.02, 0.97, 0.5, 0.5, 0.5, 0.5]
    assert s["input"].mean == pytest.approx(sum(valid_inp) / 10)
    assert s["input"].low == pytest.approx(2 / 10) and s["input"].high == pytest.approx(2 / 10)
    assert s["input"].saturated == pytest.approx(4 / 10)
    # candidate: thresholds -0.9 / 0.9 on [-1, 1]
    assert s["candidate"].mean == pytest.approx((-1.0 + 0.95 + 0.5 - 0.5) / 10)
    assert s["candidate"].low == pytest.approx(1 / 10) and s["candidate"].high == pytest.approx(1 / 10)
    assert s["forget"].mean == pytest.approx(0.5) and s["forget"].saturated == 0.0
    assert s["forget"].std == pytest.approx(0.0)


def test_gate_stats_without_lengths_and_empty() -> None:
    v = torch.tensor([[[0.01], [0.99], [0.5], [0.5]]])
    stats = gate_stats(v, torch.ones(1, 4, dtype=torch.bool))
    assert stats.mean == pytest.approx(0.5) and stats.saturated == pytest.approx(0.5)
    empty = gate_stats(v, torch.zeros(1, 4, dtype=torch.bool))
    assert math.isnan(empty.mean)


def test_memory_horizon_constant_forget_gate_from_the_model() -> None:
    # zero weights and forget bias logit(0.9): f = 0.9 at every step, 0.9^k < 1/e first at k = 10
    model = lstmkit.LSTM(2, 3, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.bias_ih_l0[3:6] = math.log(0.9 / 0.1)
    _, _, trace = model(torch.randn(2, 25, 2, dtype=torch.float64), return_gates=True)
    torch.testing.assert_close(trace.get("forget"), torch.full((2, 25, 3), 0.9, dtype=torch.float64))
    expected = next(k for k in range(1, 100) if 0.9**k < math.exp(-1))
    assert expected == 10 == math.ceil(1 / -math.log(0.9))
    h = trace.summary().layers[0][0].horizon
    assert h.horizon.tolist() == [10.0, 10.0, 10.0]
    assert h.median == 10.0 and h.beyond_units == 0
    assert sum(h.counts) == 3 and h.edges[0] <= 10.0 < h.edges[-1]


def test_memory_horizon_lengths_start_and_beyond() -> None:
    f = torch.full((3, 12, 2), 0.9, dtype=torch.float64)
    f[:, :, 1] = 0.99  # unit 1: 0.99^k < 1/e only at k = 100, beyond every sequence
    lengths = torch.tensor([12, 5, 11])
    h = memory_horizon(f, lengths)
    # unit 0: sequence 1 (5 steps) never falls -> capped at 5 and beyond; others reach 10
    assert h.horizon[0].item() == pytest.approx((10 + 5 + 10) / 3)
    assert h.beyond_fraction[0].item() == pytest.approx(1 / 3)
    assert h.horizon[1].item() == pytest.approx((12 + 5 + 11) / 3)
    assert h.beyond_fraction[1].item() == 1.0 and h.beyond.tolist() == [False, True]
    assert h.beyond_units == 1 and sum(h.counts) == 1 and h.max_steps == 12
    # start at step 3: sequence 1 has 2 steps left, sequences 0, 2 have 9 and 8 (< 10): all beyond
    later = memory_horizon(f, lengths, start=3)
    assert later.horizon[0].item() == pytest.approx((9 + 2 + 8) / 3) and later.beyond_units == 2
    # a sharp drop: f = 0.3 at step 2 makes 0.9 * 0.9 * 0.3 < 1/e -> horizon 3
    g = torch.full((1, 6, 1), 0.9)
    g[0, 2, 0] = 0.3
    assert memory_horizon(g).horizon.item() == 3.0
    assert memory_horizon(g, start=3).horizon.item() == 3.0  # 0.9^3 = 0.729: capped, beyond
    assert memory_horizon(g, start=3).beyond_units == 1


def test_memory_horizon_reverse_direction_walks_backwards() -> None:
    # reverse direction: its first step is each sequence's last valid step
    f = torch.full((1, 8, 1), 0.99)
    f[0, 5, 0] = 0.1  # the reverse walk of a length-6 sequence meets it first
    values = {"forget": f}
    record = {name: values.get(name, torch.zeros_like(f)) for name in TRACE_NAMES}
    trace = GateTrace([[record, record]], CellSpec(), batch_first=True, lengths=torch.tensor([6]))
    s = trace.summary()
    assert s.layers[0][1].horizon.horizon.item() == 1.0  # reverse: 0.1 at its step 0
    assert s.layers[0][0].horizon.horizon.item() == 6.0  # forward: 0.99^5 * 0.1 < 1/e at k = 6


def test_memory_horizon_validates() -> None:
    with pytest.raises(ValueError, match=r"\(B, T, H\)"):
        memory_horizon(torch.ones(3, 4))
    with pytest.raises(ValueError, match="start"):
        memory_horizon(torch.ones(1, 3, 2), start=-1)
    with pytest.raises(ValueError, match="lengths"):
        memory_horizon(torch.ones(2, 3, 2), torch.tensor([3]))


def test_summary_json_round_trip_on_a_real_model() -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, spec="cifg")
    x = torch.randn(4, 9, 3)
    packed = pack_padded_sequence(x, torch.tensor([9, 2, 5, 7]), batch_first=True, enforce_sorted=False)
    _, _, trace = model(packed, return_gates=True)
    data = json.loads(trace.summary_json())
    assert data == trace.summary().to_dict()
    assert data["lengths"] == [9, 2, 5, 7] and data["sequences"] == 4
    assert len(data["layers"]) == 2 and len(data["layers"][1]) == 2
    d = data["layers"][1][1]
    assert d["direction"] == "reverse"
    assert d["gates"]["forget"]["kind"] == "coupled" and d["gates"]["input"]["kind"] == "computed"
    assert 0.0 < d["gates"]["input"]["mean"] < 1.0
    assert d["gates"]["forget"]["mean"] == pytest.approx(1.0 - d["gates"]["input"]["mean"])
    assert len(d["memory_horizon"]["per_unit"]) == 5


def test_import_lstmkit_does_not_import_matplotlib() -> None:
    code = "import sys, lstmkit, lstmkit.trace.summary; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
