"""ONNX export: onnxruntime round trips for every graph kind, dynamic shapes, states, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import CellSpec
from lstmkit.interop import onnx_export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

I, H = 4, 5


def _model(seed: int = 0, **kwargs: object) -> lstmkit.LSTM:
    torch.manual_seed(seed)
    model = lstmkit.LSTM(I, H, **kwargs).eval()
    with torch.no_grad():  # nonzero layer-norm shifts and peepholes so that they matter
        for name, p in model.named_parameters():
            if name.startswith(("ln_", "weight_ch")):
                p.add_(0.3 * torch.randn_like(p))
    return model


def _x(model: lstmkit.LSTM, T: int, B: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, I) if model.batch_first else (T, B, I)
    return torch.randn(shape, generator=g)


def _states(model: lstmkit.LSTM, B: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    LD = model.num_layers * model.num_directions
    return torch.randn(LD, B, model.state_size, generator=g), torch.randn(LD, B, H, generator=g)


def _run_onnx(path: object, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"input": x.numpy()}
    if hx is not None:
        feeds.update(h0=hx[0].numpy(), c0=hx[1].numpy())
    return session.run(["output", "h_n", "c_n"], feeds)


def _assert_close(model: lstmkit.LSTM, got: list[np.ndarray], x: torch.Tensor, hx: object = None) -> None:
    if hx is not None and model.spec.full_gate_recurrence:  # the graph starts FGR's carried gates at zero
        L = hx[0].shape[0]  # type: ignore[index]
        hx = (*hx, torch.zeros(L, hx[0].shape[1], 3 * model.hidden_size))  # type: ignore[index]
    with torch.no_grad():
        out, (h, c, *_) = model(x, hx)
    for ours, theirs in zip((out, h, c), got, strict=True):
        assert theirs.shape == tuple(ours.shape)
        np.testing.assert_allclose(theirs, ours.numpy(), atol=1e-5, rtol=0)


CASES = {
    "plain-1": ({}, "lstm-op"),
    "plain-2": ({"num_layers": 2}, "lstm-op"),
    "plain-3": ({"num_layers": 3}, "lstm-op"),
    "bidirectional-2": ({"num_layers": 2, "bidirectional": True}, "lstm-op"),
    "batch_first": ({"batch_first": True, "num_layers": 2}, "lstm-op"),
    "no-bias": ({"bias": False}, "lstm-op"),
    "peephole": ({"spec": "peephole", "bidirectional": True}, "lstm-op"),
    "cifg": ({"spec": "cifg", "num_layers": 2}, "lstm-op"),
    "peephole-cifg": ({"spec": CellSpec(peephole=True, coupled=True)}, "lstm-op"),
    "cell_clip": ({"spec": CellSpec(cell_clip=0.2)}, "scan"),
    "layernorm": ({"spec": "layernorm", "num_layers": 2, "bidirectional": True}, "scan"),
    "layernorm-no-bias": ({"spec": "layernorm", "bias": False}, "scan"),
    "projection": ({"proj_size": 3, "num_layers": 2, "bidirectional": True}, "scan"),
    "fgr": ({"spec": "fgr", "bidirectional": True}, "scan"),
    "nig": ({"spec": "nig"}, "scan"),
    "nfg": ({"spec": "nfg"}, "scan"),
    "nog": ({"spec": "nog"}, "scan"),
    "activations": (
        {"spec": CellSpec(gate_activation="hard_sigmoid", candidate_activation="softsign", cell_activation="relu")},
        "scan",
    ),
    "niaf-noaf-peephole": (
        {"spec": CellSpec(peephole=True, candidate_activation="identity", cell_activation="identity")},
        "scan",
    ),
    "zoneout-eval": ({"zoneout": (0.3, 0.1), "batch_first": True}, "scan"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case: str, tmp_path: Path) -> None:
    kwargs, kind = CASES[case]
    model = _model(**kwargs)
    x = _x(model, T=6, B=3)
    result = lstmkit.export_onnx(model, tmp_path / "m.onnx", x)
    assert result.graph == kind
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-5
    onnx.checker.check_model(str(result.path))
    # the file itself, run again independently on a fresh input of another shape
    x2 = _x(model, T=4, B=2, seed=7)
    _assert_close(model, _run_onnx(result.path, x2), x2)


DYNAMIC_CASES = [{"num_layers": 2, "bidirectional": True}, {"spec": "peephole", "batch_first": True}]


@pytest.mark.parametrize("use_lstm_op", [True, False])
@pytest.mark.parametrize("kwargs", DYNAMIC_CASES)
def test_dynamic_batch_and_time(kwargs: dict, use_lstm_op: bool, tmp_path: Path) -> None:
    model = _model(**kwargs)
    path = tmp_path / "m.onnx"
    result = lstmkit.export_onnx(model, path, _x(model, T=5, B=3), use_lstm_op=use_lstm_op)
    assert result.graph == ("lstm-op" if use_lstm_op else "scan")
    for T in (2, 9):
        for B in (1, 4):
            x = _x(model, T=T, B=B, seed=T * 10 + B)
            _assert_close(model, _run_onnx(path, x), x)


def test_plain_scan_graph_equals_lstm_op_graph(tmp_path: Path) -> None:
    model = _model(num_layers=2, bidirectional=True, spec="peephole")
    x = _x(model, T=5, B=2)
    a = lstmkit.export_onnx(model, tmp_path / "a.onnx", x)
    b = lstmkit.export_onnx(model, tmp_path / "b.onnx", x, use_lstm_op=False)
    assert (a.graph, b.graph) == ("lstm-op", "scan")
    for ours, theirs in zip(_run_onnx(a.path, x), _run_onnx(b.path, x), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs", [{"num_layers": 2, "bidirectional": True}, {"spec": "layernorm", "proj_size": 2}])
def test_initial_states_are_optional_inputs(kwargs: dict, tmp_path: Path) -> None:
    model = _model(**kwargs)
    x = _x(model, T=5, B=3)
    hx = _states(model, B=3)
    with_states = lstmkit.export_onnx(model, tmp_path / "s.onnx", (x, hx))
    without = lstmkit.export_onnx(model, tmp_path / "z.onnx", x)
    names = [i.name for i in onnx.load(str(with_states.path)).graph.input]
    assert names == ["input", "h0", "c0"]
    assert [i.name for i in onnx.load(str(without.path)).graph.input] == ["input"]
    assert [o.name for o in onnx.load(str(without.path)).graph.output] == ["output", "h_n", "c_n"]
    x2, hx2 = _x(model, T=3, B=2, seed=5), _states(model, B=2, seed=6)
    _assert_close(model, _run_onnx(with_states.path, x2, hx2), x2, hx2)
    _assert_close(model, _run_onnx(without.path, x2), x2)
    # the states really enter the graph: the outputs differ from the zero-state ones
    assert not np.allclose(_run_onnx(with_states.path, x2, hx2)[0], _run_onnx(without.path, x2)[0])


def test_static_shapes_when_not_dynamic(tmp_path: Path) -> None:
    model = _model(batch_first=True)
    result = lstmkit.export_onnx(model, tmp_path / "m.onnx", _x(model, T=6, B=3), dynamic=False)
    graph = onnx.load(str(result.path)).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 6, I]
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["", "", ""]


def test_float64_takes_the_scan_form(tmp_path: Path) -> None:
    model = _model(spec="peephole", bidirectional=True).double()
    x = _x(model, T=4, B=2).double()
    result = lstmkit.export_onnx(model, tmp_path / "m.onnx", x)
    assert result.graph == "scan" and result.max_abs_diff is not None and result.max_abs_diff < 1e-10
    with pytest.raises(RuntimeError, match="onnxruntime could not run"):  # its LSTM kernel has no float64
        lstmkit.export_onnx(model, tmp_path / "m.onnx", x, use_lstm_op=True)


def test_float64_and_other_opset(tmp_path: Path) -> None:
    model = _model(spec="layernorm").double()
    x = _x(model, T=4, B=2).double()
    result = lstmkit.export_onnx(model, tmp_path / "m.onnx", x, opset=18)
    assert result.opset == 18 and result.max_abs_diff is not None and result.max_abs_diff < 1e-10
    assert onnx.load(str(result.path)).opset_import[0].version == 18


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"zoneout": 0.2}, "zoneout=(0.2, 0.2) draws random per-step masks in training mode"),
        ({"recurrent_dropout": 0.3}, "recurrent_dropout=0.3"),
        ({"weight_drop": 0.3}, "weight_drop=0.3"),
        ({"dropout": 0.5, "num_layers": 2}, "dropout=0.5 between layers"),
    ],
)
def test_training_mode_regularisers_are_refused(kwargs: dict, needle: str, tmp_path: Path) -> None:
    model = _model(**kwargs).train()
    with pytest.raises(ValueError, match="cannot export this model to ONNX") as err:
        lstmkit.export_onnx(model, tmp_path / "m.onnx", _x(model, T=3, B=2))
    assert needle in str(err.value) and "model.eval()" in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


def test_training_mode_without_regularisers_exports(tmp_path: Path) -> None:
    model = _model(num_layers=2).train()
    assert lstmkit.export_onnx(model, tmp_path / "m.onnx", _x(model, T=3, B=2)).max_abs_diff <= 1e-5


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.onnx"
    x = _x(model, T=3, B=2)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="cannot export a PackedSequence input"):
        lstmkit.export_onnx(model, path, packed)
    with pytest.raises(ValueError, match=r"must be batched and 3-D .* got shape \(3, 4\)"):
        lstmkit.export_onnx(model, path, x[:, 0])
    with pytest.raises(TypeError, match="float32 and float64; example_input has dtype torch.float16"):
        lstmkit.export_onnx(model, path, x.half())
    with pytest.raises(TypeError, match="expects a lstmkit.LSTM; got LSTM"):
        lstmkit.export_onnx(torch.nn.LSTM(I, H), path, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"opset must be an int in \[17, \d+\]; got 9"):
        lstmkit.export_onnx(model, path, x, opset=9)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 2, 5\)"):
        lstmkit.export_onnx(model, path, (x, (torch.zeros(1, 3, H), torch.zeros(1, 3, H))))
    assert not path.exists()


def test_mismatch_with_pytorch_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # nothing can pass
    with pytest.raises(RuntimeError, match=r"onnxruntime's output differs from PyTorch's by .*float32 rounding"):
        lstmkit.export_onnx(model, tmp_path / "m.onnx", _x(model, T=3, B=2))


def test_atol_loosens_or_tightens_the_check(tmp_path: Path) -> None:
    model = _model(spec="layernorm")
    x = _x(model, T=5, B=2)
    assert lstmkit.export_onnx(model, tmp_path / "m.onnx", x, atol=1e-3).max_abs_diff <= 1e-3
    with pytest.raises(RuntimeError, match=r"more than atol=0.0"):
        lstmkit.export_onnx(model, tmp_path / "m.onnx", x, atol=0.0)
    with pytest.raises(ValueError, match="atol must be a non-negative number or None; got -1"):
        lstmkit.export_onnx(model, tmp_path / "m.onnx", x, atol=-1)


def test_import_lstmkit_does_not_import_onnx_or_keras() -> None:
    optional = "('onnx', 'onnxruntime', 'keras')"
    code = f"import sys, lstmkit; print(sorted(m for m in sys.modules if m.split('.')[0] in {optional}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
