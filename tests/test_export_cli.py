"""``lstmkit export CHECKPOINT --onnx PATH`` end to end on saved checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.train.checkpoint import save_checkpoint
from lstmkit.train.config import ModelConfig, RunConfig
from lstmkit.train.model import build_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run(path: Path, **model: object) -> Path:
    config = RunConfig(task="adding", model=ModelConfig(input_size=2, output_size=1, hidden=6, **model))  # type: ignore[arg-type]
    save_checkpoint(path, build_model(config.model, seed=0), None, config, {"step": 0})
    return path


def _onnx_output(path: Path, x: torch.Tensor, **states: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"input": x.numpy(), **{k: v.numpy() for k, v in states.items()}}
    return session.run(["output"], feeds)[0]


@pytest.mark.parametrize(
    ("model", "kind"),
    [({"layers": 2, "bidirectional": True}, "lstm-op"), ({"spec": {"layer_norm": True}, "zoneout": 0.1}, "scan")],
)
def test_export_writes_a_file_that_matches_the_run(model: dict, kind: str, tmp_path: Path, capsys) -> None:
    run = _run(tmp_path / "run", **model)
    out = tmp_path / "model.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--core-only"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (recurrent core only; graph {kind}, opset 17, onnxruntime max |diff|")
    from lstmkit.train.checkpoint import load_run

    seq_model, _ = load_run(run)
    x = torch.randn(3, 11, 2, generator=torch.Generator().manual_seed(4))  # other batch and length
    with torch.no_grad():
        want = seq_model.lstm(x)[0].numpy()
    np.testing.assert_allclose(_onnx_output(out, x), want, atol=1e-5, rtol=0)


def test_export_options(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path / "run")
    out = tmp_path / "m.onnx"
    args = [
        "export",
        str(run / "checkpoint.safetensors"),
        "--onnx",
        str(out),
        "--core-only",
        "--scan",
        "--with-states",
        "--static",
        "--batch",
        "3",
        "--time",
        "4",
        "--opset",
        "18",
    ]
    assert main(args) == 0
    assert "(recurrent core only; graph scan, opset 18," in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "h0", "c0"]
    assert session.get_inputs()[0].shape == [3, 4, 2]


def test_export_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "missing"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit export: error: no checkpoint at") and err.count("\n") == 1
    run = _run(tmp_path / "gru", baseline="gru")
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "only lstmkit.LSTM cores export to ONNX; this run's core is GRU" in capsys.readouterr().err
    run = _run(tmp_path / "run")
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx"), "--opset", "3"]) == 2
    assert "opset must be an int in [17," in capsys.readouterr().err
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx"), "--batch", "0"]) == 2
    assert "--batch must be a positive int; got 0" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    # a target that cannot be written is named as given, not as the temporary file beside it
    assert main(["export", str(run), "--onnx", "/proc/m.onnx"]) == 2
    assert capsys.readouterr().err == "lstmkit export: error: cannot write /proc/m.onnx: No such file or directory\n"


def test_a_torch_pickle_is_named_as_such(tmp_path: Path, capsys) -> None:
    import torch

    torch.save({"weight": torch.zeros(2)}, tmp_path / "model.pt")
    assert main(["eval", str(tmp_path / "model.pt")]) == 2
    err = capsys.readouterr().err
    assert "model.pt is a PyTorch pickle (torch.save), not an lstmkit checkpoint" in err and err.count("\n") == 1
