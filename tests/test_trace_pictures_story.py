"""The gate pictures tell the story: the input strip and task events, an honest horizon median, NaN-safe JSON."""

from __future__ import annotations

import json

import torch

import lstmkit
from lstmkit.tasks import make_task
from lstmkit.trace.plots import plot_gates, plot_memory_horizon
from lstmkit.trace.summary import MemoryHorizon


def _trace(model, x):
    with torch.no_grad():
        return model(x, return_gates=True)[2]


def test_gate_heatmaps_show_the_inputs_and_mark_the_events() -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(2, 6, batch_first=True)
    x = torch.randn(3, 15, 2)
    fig = plot_gates(_trace(model, x), 1, layer=0, inputs=x, events=[3, 9])
    strip = fig.axes[0]
    assert strip.get_title(loc="left").startswith("inputs (2 features)")
    # the strip draws the shown sequence's features, one row per feature, time on x
    assert torch.allclose(torch.from_numpy(strip.images[0].get_array().data).float(), x[1].T)
    dashed = [ax for ax in fig.axes[:6] if {round(line.get_xdata()[0]) for line in ax.lines} == {3, 9}]
    assert len(dashed) == 6  # the input strip and every heatmap
    assert "events at steps 3, 9" in fig._suptitle.get_text()


def test_gate_heatmaps_reject_inputs_shorter_than_the_trace() -> None:
    model = lstmkit.LSTM(2, 4, batch_first=True)
    x = torch.randn(2, 8, 2)
    try:
        plot_gates(_trace(model, x), 0, layer=0, inputs=x[:, :5])
    except ValueError as err:
        assert "T >= 8" in str(err)
    else:
        raise AssertionError("short inputs were accepted")


def test_adding_task_events_are_its_two_marked_steps() -> None:
    task = make_task("adding", T=30, test_size=16)
    batch = task.test_set()
    events = task.events(batch)
    assert len(events) == 16
    for row, steps in zip(batch.inputs, events, strict=True):
        assert len(steps) == 2
        assert all(float(row[s, 1]) == 1.0 for s in steps)


def test_horizon_median_says_it_is_a_bound_when_units_never_fell() -> None:
    # 3 of 4 units still hold more than 1/e at the end of every sequence: their horizon is capped at 50
    horizon = MemoryHorizon(
        horizon=torch.tensor([7.0, 50.0, 50.0, 50.0], dtype=torch.float64),
        beyond_fraction=torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64),
        start=0,
        max_steps=50,
        counts=[1],
        edges=[0.0, 10.0],
    )
    fig = plot_memory_horizon(horizon)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("median ≥ 50.0 steps; 3 of 4 units never fell below 1/e") for label in labels), labels


def test_summary_json_of_a_trace_with_nan_is_valid_json() -> None:
    model = lstmkit.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    x[0, 0, 0] = float("nan")
    text = _trace(model, x).summary_json()
    data = json.loads(text)  # strict JSON: NaN is written as null
    assert data["layers"][0][0]["gates"]["input"]["mean"] is None


def test_learning_curve_puts_charlm_train_loss_in_bits_and_wraps_a_long_title(tmp_path, monkeypatch) -> None:
    import math

    import lstmkit.train.curves as curves

    rows = [
        {"sequences": 32, "train_loss": 2.0},
        {"sequences": 64, "train_loss": 1.0, "test": {"bpc": 1.5, "loss": 1.5 * math.log(2)}},
    ]
    captured = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi=100: captured.setdefault("fig", fig))
    curves.plot_curve(rows, tmp_path / "c.png", "bpc", title="forecast " + "csv_file=/a/very/long/path.csv " * 6)
    loss_ax, test_ax = captured["fig"].axes
    assert loss_ax.get_ylabel() == "train loss (bits per character)" and test_ax.get_ylabel() == "test bpc"
    assert list(loss_ax.lines[0].get_ydata()) == [2.0 / math.log(2), 1.0 / math.log(2)]
    title = captured["fig"]._suptitle.get_text()
    assert "\n" in title and all(len(line) <= 100 for line in title.splitlines())
