"""``lstmkit export RUN --executorch`` and ``--onnx --streaming``, float and int8, end to end on saved runs.

Each written file is run again here, outside the exporter, and compared with PyTorch computed in the
test (the model's own ``forward_state`` over the whole sequence, or the forecaster's task pipeline), so
a wrong check inside the exporter cannot hide a wrong file. Bad input: one-line errors, no file left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.train.checkpoint import load_run, save_checkpoint
from lstmkit.train.config import ModelConfig, RunConfig
from lstmkit.train.model import build_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _save(path: Path, task, **kw: object) -> Path:
    config = ModelConfig(
        input_size=max(1, task.input_size or 1), output_size=task.output_size, vocab_size=task.vocab_size,
        readout=task.readout, hidden=8, **kw,
    )  # fmt: skip
    model = build_model(config, seed=3)
    save_checkpoint(path, model, None, RunConfig(task=task.name, task_args=task.config(), model=config), {"step": 0})
    return path


@pytest.fixture(scope="module")
def charlm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("charlm")
    text = tmp / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    task = make_task("charlm", text_file=str(text), seq_len=12, test_size=4)
    return _save(tmp / "run", task, embedding_dim=6, layers=2), task


def _stream_reference(run: Path, inputs: torch.Tensor) -> list[torch.Tensor]:
    model, _ = load_run(run)
    with torch.no_grad():
        pred, state = model.eval().forward_state(inputs)
    return [pred, *state]


def test_executorch_streaming_charlm(charlm, tmp_path: Path, capsys) -> None:
    pytest.importorskip("executorch", reason="the ExecuTorch extra (pip install 'lstmkit[edge]')")
    from executorch.runtime import Runtime

    run, task = charlm
    out = tmp_path / "c.pte"
    assert main(["export", str(run), "--executorch", str(out), "--streaming", "--chunk", "4", "--batch", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (streaming, 4 frames per call: embedding, LSTM, head; float32")
    assert "executorch.runtime max |diff|" in printed
    tokens = task.test_set().inputs[:2, :12]
    data = out.read_bytes()  # the runtime reads the program in place: keep it alive
    program = Runtime.get().load_program(data)
    method = program.load_method("forward")
    state = [torch.zeros(2, 2, 8), torch.zeros(2, 2, 8)]
    preds = []
    for k in range(3):
        pred, *state = method.execute([tokens[:, 4 * k : 4 * k + 4].contiguous(), *state])
        preds.append(pred)
    for a, b in zip([torch.cat(preds, 1), *state], _stream_reference(run, tokens), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_executorch_int8_streaming_charlm(charlm, tmp_path: Path, capsys) -> None:
    pytest.importorskip("executorch", reason="the ExecuTorch extra (pip install 'lstmkit[edge]')")
    run, _ = charlm
    out = tmp_path / "q.pte"
    assert main(["export", str(run), "--executorch", str(out), "--streaming", "--chunk", "4", "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "; int8;" in printed and "vs the int8 PyTorch model (lstmkit.quantize)" in printed and "vs float" in printed
    assert out.stat().st_size > 0


def test_executorch_whole_forecaster(tmp_path: Path, capsys) -> None:
    pytest.importorskip("executorch", reason="the ExecuTorch extra (pip install 'lstmkit[edge]')")
    pd = pytest.importorskip("pandas")
    from executorch.runtime import Runtime

    i = np.arange(120)
    dates = pd.date_range("2001-01-01", periods=120, freq="MS")
    csv = tmp_path / "s.csv"
    values = 50 + 0.3 * i + 4 * np.sin(i / 2)
    csv.write_text("date,y\n" + "\n".join(f"{d.date()},{float(v)!r}" for d, v in zip(dates, values, strict=True)))
    task = make_task("forecast", csv_file=str(csv), target="y", window=8, horizon=2)
    run = _save(tmp_path / "run", task)
    out = tmp_path / "f.pte"
    assert main(["export", str(run), "--executorch", str(out), "--batch", "3"]) == 0
    assert "whole model with its normalisation" in capsys.readouterr().out
    test = task.test_set().slice(0, 3)
    model, _ = load_run(run)
    with torch.no_grad():
        want = task.decode(model.eval()(test.inputs, test.lengths), test.extra["last"])
    data = out.read_bytes()
    program = Runtime.get().load_program(data)
    _, forecast = program.load_method("forward").execute([task.raw(test.extra["origin"]).contiguous()])
    torch.testing.assert_close(forecast, want, atol=1e-5 * task.scale, rtol=0)


@pytest.mark.parametrize("spec", [{}, {"layer_norm": True}])
def test_onnx_streaming_adding_float_and_int8(spec: dict, tmp_path: Path, capsys) -> None:
    task = make_task("adding", T=24, test_size=6)
    run = _save(tmp_path / "run", task, spec=spec, layers=2)
    out, q = tmp_path / "a.onnx", tmp_path / "q.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--streaming", "--chunk", "5"]) == 0
    assert main(["export", str(run), "--onnx", str(q), "--streaming", "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime max |diff|" in printed and "; int8;" in printed
    test = task.test_set()
    inputs = test.inputs[test.lengths == test.lengths.max()][:3, :20]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    h = c = np.zeros((2, len(inputs), 8), np.float32)
    preds = []
    for k in range(0, 20, 10):  # another chunk size than the export's: the axes are dynamic
        pred, h, c = session.run(None, {"input": inputs[:, k : k + 10].numpy(), "h0": h, "c0": c})
        preds.append(pred)
    want = _stream_reference(run, inputs)
    np.testing.assert_allclose(np.concatenate(preds, 1), want[0].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(c, want[2].numpy(), atol=1e-5, rtol=0)
    int8 = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    zeros = np.zeros((2, len(inputs), 8), np.float32)
    got = int8.run(["prediction"], {"input": inputs.numpy(), "h0": zeros, "c0": zeros})[0]
    assert 0 < np.abs(got - want[0].numpy()).max() < 0.05, "int8 differs from float, but only by rounding"


def _error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_onnx_whole_model_int8_token_and_forecast(charlm, tmp_path: Path, capsys) -> None:
    """The whole model as an int8 graph (onnxruntime's quantisation): run here against lstmkit.quantize's model."""
    pd = pytest.importorskip("pandas")
    from lstmkit.interop.edge import INT8_TOLERANCE
    from lstmkit.interop.quantize import quantize

    run, task = charlm
    out = tmp_path / "c.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--int8", "--batch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "int8; onnxruntime max |diff|" in printed and "vs float" in printed
    tokens = task.test_set().inputs[:3]
    model, _ = load_run(run)
    with torch.no_grad():
        want = quantize(model.eval())(tokens)
        exact = model(tokens)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"tokens": tokens.numpy()})[0]
    assert np.abs(got - want.numpy()).max() <= INT8_TOLERANCE * max(1.0, float(want.abs().max()))
    assert np.abs(got - exact.numpy()).max() > 0, "the graph is int8, not the float one"
    import onnx

    kinds = {init.data_type for init in onnx.load(str(out)).graph.initializer}
    assert onnx.TensorProto.INT8 in kinds, "the weights are stored int8"

    i = np.arange(100)
    dates = pd.date_range("2001-01-01", periods=100, freq="MS")
    csv = tmp_path / "s.csv"
    values = 50 + 0.3 * i + 4 * np.sin(i / 2)
    csv.write_text("date,y\n" + "\n".join(f"{d.date()},{float(v)!r}" for d, v in zip(dates, values, strict=True)))
    forecast_task = make_task("forecast", csv_file=str(csv), target="y", window=8, horizon=2)
    frun = _save(tmp_path / "frun", forecast_task)
    fout = tmp_path / "f.onnx"
    assert main(["export", str(frun), "--onnx", str(fout), "--int8", "--batch", "3"]) == 0
    assert "whole model with its normalisation" in capsys.readouterr().out
    test = forecast_task.test_set().slice(0, 3)
    fmodel, _ = load_run(frun)
    with torch.no_grad():
        want_forecast = forecast_task.decode(fmodel.eval()(test.inputs, test.lengths), test.extra["last"])
    session = ort.InferenceSession(str(fout), providers=["CPUExecutionProvider"])
    raw = forecast_task.raw(test.extra["origin"]).numpy()
    forecast = session.run(["forecast"], {"values": raw})[0]
    assert np.abs(forecast - want_forecast.numpy()).max() < 0.1 * forecast_task.scale


def test_bad_input_is_one_line_and_leaves_no_file(charlm, tmp_path: Path, capsys, monkeypatch) -> None:
    run, _ = charlm
    out = tmp_path / "x.pte"
    base = ["export", str(run), "--executorch", str(out)]
    assert "--chunk sets the frames per call" in _error([*base, "--chunk", "4"], capsys)
    assert "--core-only exports the LSTM alone" in _error([*base, "--core-only"], capsys)
    kept = tmp_path / "kept.onnx"
    kept.write_bytes(b"an earlier export")
    assert "differs from PyTorch's" in _error(
        ["export", str(run), "--onnx", str(kept), "--int8", "--atol", "0"], capsys
    )
    assert kept.read_bytes() == b"an earlier export", "a failing export keeps the file that was there"
    blocked = tmp_path / "file"
    blocked.write_text("")
    err = _error(["export", str(run), "--onnx", str(blocked / "x.onnx"), "--streaming"], capsys)
    assert str(blocked) in err
    assert "needs onnxruntime's quantisation" not in err
    assert "differ from PyTorch's" in _error(
        ["export", str(run), "--onnx", str(tmp_path / "y.onnx"), "--streaming", "--int8", "--atol", "0"], capsys
    )
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    assert "pip install 'lstmkit[edge]'" in _error([*base, "--int8"], capsys)
    assert not out.exists() and not (tmp_path / "y.onnx").exists() and not list(tmp_path.glob("*.tmp"))


def test_function_level_refusals(charlm, tmp_path: Path) -> None:
    from lstmkit.interop.edge import export_model_executorch
    from lstmkit.interop.onnx_stream import export_stream_onnx

    run, task = charlm
    model, _ = load_run(run)
    tokens = task.test_set().inputs[:2]
    model.lstm.recurrent_dropout = 0.3
    with pytest.raises(ValueError, match=r"training mode .* call model.eval\(\)"):
        export_model_executorch(model.train(), tmp_path / "m.pte", tokens)
    model.eval()
    with pytest.raises(ValueError, match=r"\(B, T\) tokens or \(B, T, I\) inputs, batched"):
        export_model_executorch(model, tmp_path / "m.pte", tokens[0])
    with pytest.raises(TypeError, match="float32; this model is torch.float64"):
        export_stream_onnx(model.double(), tmp_path / "m.onnx", tokens)
    bi = build_model(ModelConfig(input_size=2, output_size=1, hidden=4, bidirectional=True))
    with pytest.raises(ValueError, match="a bidirectional model cannot stream"):
        export_stream_onnx(bi.eval(), tmp_path / "f.onnx", torch.randn(2, 5, 2))
    assert not list(tmp_path.iterdir())
