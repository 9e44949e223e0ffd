"""Trace pictures: the PNGs exist, decode, have the asked pixel size and show something."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.trace.plots import plot_gate_means, plot_gates, plot_memory_horizon
from lstmkit.trace.report import inspect_model, record_gates


def assert_picture(path, width: int, height: int) -> None:
    image = imread(path)  # (height, width, 4) floats in [0, 1]
    assert image.shape[:2] == (height, width), image.shape
    pixels = image[..., :3].reshape(-1, 3)
    assert float(pixels.var()) > 0.0
    assert len(np.unique(pixels, axis=0)) > 20  # more than a background and a few lines


@pytest.fixture(scope="module")
def trace():
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True, spec="cifg")
    x = torch.randn(5, 12, 3)
    packed = pack_padded_sequence(x, torch.tensor([12, 4, 9, 1, 12]), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        return model(packed, return_gates=True)[2]


def test_gate_heatmaps(trace, tmp_path) -> None:
    path = tmp_path / "sub" / "gates.png"
    fig = plot_gates(trace, 2, layer=1, direction=1, path=path, figsize=(6.0, 5.0), dpi=50)
    assert_picture(path, 300, 250)
    heatmaps = [ax for ax in fig.axes if ax.images]
    titles = [ax.get_title(loc="left").split()[0] for ax in heatmaps]
    assert titles == ["input", "forget", "candidate", "output", "cell"]
    assert "1 - input" in heatmaps[1].get_title(loc="left")  # CIFG's forget gate
    assert [ax.images[0].get_clim() for ax in heatmaps[:4]] == [(0.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (0.0, 1.0)]
    lo, hi = heatmaps[4].images[0].get_clim()
    cell = trace.get("cell", 1, 1)[2, :9]
    assert lo == pytest.approx(-hi) and hi == pytest.approx(float(cell.abs().max()))
    assert heatmaps[0].images[0].get_array().shape == (8, 9)  # units x valid steps of sequence 2
    assert heatmaps[-1].get_xlabel() == "time step" and heatmaps[0].get_ylabel() == "unit"
    with pytest.raises(ValueError, match="sequence"):
        plot_gates(trace, 5)


def test_memory_horizon_plot(trace, tmp_path) -> None:
    path = tmp_path / "horizon.png"
    fig = plot_memory_horizon(trace, layer=0, path=path, figsize=(4.0, 3.0), dpi=60)
    assert_picture(path, 240, 180)
    ax = fig.axes[0]
    median = trace.summary().layers[0][0].horizon.median
    assert any(line.get_xdata()[0] == pytest.approx(median) for line in ax.lines)  # the median line
    assert "median" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_gate_mean_curves(trace, tmp_path) -> None:
    path = tmp_path / "means.png"
    fig = plot_gate_means(trace, layer=0, direction=0, path=path, figsize=(5.0, 4.0), dpi=40)
    assert_picture(path, 200, 160)
    top = fig.axes[0]
    curves = {line.get_label(): line.get_ydata() for line in top.lines}
    assert set(curves) == {"input", "forget", "output"}
    # at the last step only sequences 0 and 4 (length 12) count
    f = trace.get("forget", 0, 0)
    assert curves["forget"][-1] == pytest.approx(float(f[[0, 4], -1].mean()), rel=1e-6)
    assert curves["forget"][0] == pytest.approx(float(f[:, 0].mean()), rel=1e-6)


def test_no_figure_without_path_writes_nothing(trace, tmp_path) -> None:
    fig = plot_gates(trace, 0, layer=0)
    assert fig.get_size_inches().tolist() == [9.0, 9.0] and not list(tmp_path.iterdir())


def test_inspect_model_writes_everything(tmp_path) -> None:
    torch.manual_seed(1)
    model = lstmkit.LSTM(2, 6, num_layers=2, bidirectional=True)  # time-major model, batch-major inputs
    x = torch.randn(3, 10, 2)
    paths = inspect_model(model, x, torch.tensor([10, 4, 7]), tmp_path / "out", sequence=1, dpi=30)
    expected = {
        f"{kind}_l{k}{rev}" for kind in ("gates", "horizon", "means") for k in (0, 1) for rev in ("", "_reverse")
    } | {"summary"}
    assert set(paths) == expected
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths.values())
    assert_picture(paths["gates_l1_reverse"], 270, 270)
    data = json.loads(paths["summary"].read_text())
    assert data["lengths"] == [10, 4, 7] and data["inputs"]["shown_sequence"] == 1
    assert model.training  # mode restored
    trace = record_gates(model, x[0])  # one (T, I) sequence
    assert trace.get("forget", 0).shape == (1, 10, 6)


def test_inspect_model_validates(tmp_path) -> None:
    model = lstmkit.LSTM(2, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"\(B, T, 2\)"):
        inspect_model(model, torch.randn(3, 5, 4), None, tmp_path)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\]"):
        inspect_model(model, torch.randn(2, 5, 2), torch.tensor([0, 5]), tmp_path)
    with pytest.raises(TypeError, match="lstmkit.LSTM"):
        record_gates(torch.nn.LSTM(2, 4), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="sequence"):
        inspect_model(model, torch.randn(2, 5, 2), None, tmp_path, sequence=2)


def test_example_script_writes_the_readme_pictures(tmp_path, capsys) -> None:
    from lstmkit.trace import example

    x, y = example.marked_sign_batch(6, 20, torch.Generator().manual_seed(0))
    assert x.shape == (6, 20, 2) and x[..., 1].sum(1).tolist() == [1.0] * 6
    marked = x[..., 0][x[..., 1] == 1.0]
    assert torch.equal(y, (marked > 0).float())
    assert example.main(["--out", str(tmp_path), "--steps", "3", "--seq-len", "12"]) == 0
    assert "test accuracy after 3 steps" in capsys.readouterr().out
    assert_picture(tmp_path / "gates_l0.png", 900, 900)
    assert json.loads((tmp_path / "summary.json").read_text())["max_steps"] == 12
