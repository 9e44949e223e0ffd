"""Whole-model ONNX export (embedding, LSTM, head, a forecaster's normalisation): onnxruntime
against PyTorch on each task's own inputs, for a forecaster, a character model and the adding
problem, through the function and through ``lstmkit export``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.interop.onnx_model import SeriesNormalization, export_model_onnx
from lstmkit.tasks import make_task
from lstmkit.train.checkpoint import save_checkpoint
from lstmkit.train.config import ModelConfig, RunConfig
from lstmkit.train.model import build_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pd = pytest.importorskip("pandas")


def run_onnx(path: Path, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(names, feeds)


def series_csv(tmp_path: Path, n: int = 160) -> str:
    dates = pd.date_range("2001-01-01", periods=n, freq="MS")
    i = np.arange(n)
    y = 50 + 0.3 * i + 4 * np.sin(2 * np.pi * i / 12)
    x = np.cos(i / 3.0)
    rows = [f"{d.date()},{float(a)!r},{float(b)!r}" for d, a, b in zip(dates, y, x, strict=True)]
    path = tmp_path / "s.csv"
    path.write_text("date,y,x\n" + "\n".join(rows) + "\n")
    return str(path)


def model_for(task, hidden: int = 8, **kw: object):
    config = ModelConfig(
        input_size=max(1, task.input_size or 1), output_size=task.output_size, vocab_size=task.vocab_size,
        readout=task.readout, hidden=hidden, **kw,
    )  # fmt: skip
    return build_model(config, seed=3).eval()


@pytest.mark.parametrize("normalize", ["level", "diff", "global"])
def test_forecaster_maps_raw_rows_to_forecasts(tmp_path: Path, normalize: str) -> None:
    task = make_task(
        "forecast", csv_file=series_csv(tmp_path), target="y", features=["x"], window=12, horizon=3, normalize=normalize
    )
    model = model_for(task)
    test = task.test_set()
    with torch.no_grad():
        pred = model(test.inputs, test.lengths)
    expected = {"prediction": pred, "forecast": task.decode(pred, test.extra["last"])}
    norm = SeriesNormalization(task.normalize, tuple(task.mean), tuple(task.std), task.scale)
    out = tmp_path / "f.onnx"
    result = export_model_onnx(model, out, task.raw(test.extra["origin"]), normalization=norm, expected=expected)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-5
    # other windows (validation, another batch size) through the file vs the task's own pipeline
    val = task.validation_set()
    with torch.no_grad():
        want = task.decode(model(val.inputs, val.lengths), val.extra["last"]).numpy()
    raw = task.raw(val.extra["origin"]).numpy()
    assert raw.shape == (len(val), task.context, 2) and task.context == 12 + (normalize == "diff")
    got = run_onnx(out, {"values": raw}, ["forecast"])[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * task.scale)
    assert np.abs(want - val.extra["truth"].numpy()).mean() > 0  # a real comparison, not an echo
    with pytest.raises(ValueError, match="needs `expected`"):
        export_model_onnx(model, tmp_path / "g.onnx", task.raw(test.extra["origin"]), normalization=norm)


def test_character_model_exports_embedding_and_logits(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    task = make_task("charlm", text_file=str(text), seq_len=16, test_size=4)
    model = model_for(task, embedding_dim=6)
    tokens = task.test_set().inputs
    result = export_model_onnx(model, tmp_path / "c.onnx", tokens[:2])
    assert result.max_abs_diff < 1e-5
    with torch.no_grad():
        want = model(tokens, torch.full((len(tokens),), tokens.shape[1])).numpy()  # (B, T, V) logits
    got = run_onnx(tmp_path / "c.onnx", {"tokens": tokens.numpy()}, ["prediction"])[0]
    assert got.shape == (len(tokens), 16, task.vocab_size)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "layers": 2}, {"spec": {"peephole": True}}])
def test_adding_model_last_readout(tmp_path: Path, kw: dict) -> None:
    task = make_task("adding", T=30, test_size=40)
    model = model_for(task, **kw)
    test = task.test_set()
    full = test.lengths == test.lengths.max()  # the graph takes unpadded sequences: pick the longest
    inputs, lengths = test.inputs[full][:, : int(test.lengths.max())], test.lengths[full]
    assert len(inputs) >= 2
    result = export_model_onnx(model, tmp_path / "a.onnx", inputs[:1])
    assert result.max_abs_diff < 1e-5
    with torch.no_grad():
        want = model(inputs, lengths).numpy()
    got = run_onnx(tmp_path / "a.onnx", {"input": inputs.numpy()}, ["prediction"])[0]
    assert got.shape == (len(inputs), 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def save_run(path: Path, task, **kw: object) -> Path:
    model = model_for(task, **kw)
    config = RunConfig(task=task.name, task_args=task.config(), model=model.config)
    save_checkpoint(path, model, None, config, {"step": 0})
    return path


def test_cli_exports_forecast_charlm_and_adding_runs(tmp_path: Path, capsys) -> None:
    forecast = make_task("forecast", csv_file=series_csv(tmp_path), target="y", window=12, horizon=2)
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    runs = {
        "forecast": (save_run(tmp_path / "f", forecast), "whole model with its normalisation (level)", "values"),
        "charlm": (
            save_run(tmp_path / "c", make_task("charlm", text_file=str(text), seq_len=12, test_size=4)),
            "whole model: embedding, LSTM, head",
            "tokens",
        ),
        "adding": (
            save_run(tmp_path / "a", make_task("adding", T=25, test_size=4)),
            "whole model: LSTM, head",
            "input",
        ),
    }
    for name, (run, what, first_input) in runs.items():
        out = tmp_path / f"{name}.onnx"
        assert main(["export", str(run), "--onnx", str(out)]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith(f"wrote {out} ({what}") and "onnxruntime max |diff|" in printed, printed
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].name == first_input
    meta = onnx.load(str(tmp_path / "forecast.onnx")).metadata_props
    props = {p.key: p.value for p in meta}
    assert "the last 12 rows of ['y']" in props["inputs"] and '"normalize": "level"' in props["lstmkit_task"]
