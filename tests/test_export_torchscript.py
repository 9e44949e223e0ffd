"""TorchScript and torch.export: trace and export equal eager for every spec; script refuses clearly."""

from __future__ import annotations

import io

import pytest
import torch
from torch.export import Dim

import lstmkit
from lstmkit import PRESETS, CellSpec

# Shape checks at the module boundary compare traced sizes; the tracer warns that they are constants.
# torch 2.13 marks torch.jit.* deprecated; these tests check that they still work.
pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning"),
]

SPECS = {**PRESETS, "cell_clip": CellSpec(cell_clip=0.3), "hard_sigmoid": CellSpec(gate_activation="hard_sigmoid")}
I, H, T, B = 3, 4, 4, 2


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lstm(spec: object, **kwargs: object) -> lstmkit.LSTM:
    torch.manual_seed(0)
    return lstmkit.LSTM(I, H, spec=spec, dtype=torch.float64, **kwargs).eval()  # type: ignore[arg-type]


def _cell(spec: object, **kwargs: object) -> lstmkit.LSTMCell:
    torch.manual_seed(0)
    return lstmkit.LSTMCell(I, H, spec=spec, dtype=torch.float64, **kwargs).eval()  # type: ignore[arg-type]


def _close(got: object, want: object) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _close(g, w)
        return
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def _lstm_inputs(model: lstmkit.LSTM, seed: int, batch: int = B) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    g = _gen(seed)
    LD = model.num_layers * model.num_directions
    shape = (batch, T, I) if model.batch_first else (T, batch, I)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    h = torch.randn(LD, batch, model.state_size, generator=g, dtype=torch.float64)
    c = torch.randn(LD, batch, H, generator=g, dtype=torch.float64)
    if model.spec.full_gate_recurrence:  # the state carries the previous step's gates too
        return x, (h, c, torch.rand(LD, batch, 3 * H, generator=g, dtype=torch.float64))
    return x, (h, c)


# every spec on the 2-layer bidirectional batch-first stack; a few on one time-major layer
LSTM_CASES = [(name, "stack") for name in sorted(SPECS)] + [(n, "single") for n in ("vanilla", "peephole", "layernorm")]
LSTM_CONFIGS = {"single": {}, "stack": {"num_layers": 2, "bidirectional": True, "batch_first": True}}


@pytest.mark.parametrize(("name", "config"), LSTM_CASES)
def test_lstm_trace_and_export_equal_eager(name: str, config: str) -> None:
    model = _lstm(SPECS[name], **LSTM_CONFIGS[config])
    x, hx = _lstm_inputs(model, seed=1)
    traced = torch.jit.trace(model, (x, hx))
    exported = torch.export.export(model, (x, hx)).module()
    x2, hx2 = _lstm_inputs(model, seed=2)  # fresh values: the captured graphs are not constants
    with torch.no_grad():
        want = model(x2, hx2)
    _close(traced(x2, hx2), want)
    _close(exported(x2, hx2), want)


@pytest.mark.parametrize("kwargs", [{"proj_size": 2, "spec": "peephole"}, {"zoneout": (0.3, 0.2), "spec": "cifg"}])
def test_lstm_projection_and_zoneout_expectation(kwargs: dict) -> None:
    kwargs = dict(kwargs)
    model = _lstm(kwargs.pop("spec"), **kwargs)
    x, _ = _lstm_inputs(model, seed=3)
    traced = torch.jit.trace(model, (x,))
    exported = torch.export.export(model, (x,)).module()
    x2, _ = _lstm_inputs(model, seed=4)
    with torch.no_grad():
        want = model(x2)
    _close(traced(x2), want)
    _close(exported(x2), want)


@pytest.mark.parametrize("name", ["vanilla", "layernorm"])
def test_traced_lstm_saves_and_loads(name: str) -> None:
    """The trace holds only tensor operations (no Python call into a kernel), so it serialises."""
    model = _lstm(name, num_layers=2)
    x, hx = _lstm_inputs(model, seed=5)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, (x, hx)), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x2, hx2 = _lstm_inputs(model, seed=6)
    with torch.no_grad():
        _close(loaded(x2, hx2), model(x2, hx2))


def test_export_with_dynamic_batch() -> None:
    model = _lstm("peephole", bidirectional=True)
    x, _ = _lstm_inputs(model, seed=7)
    exported = torch.export.export(model, (x,), dynamic_shapes=({1: Dim("batch")},)).module()
    for batch in (1, 5):
        x2, _ = _lstm_inputs(model, seed=batch, batch=batch)
        with torch.no_grad():
            _close(exported(x2), model(x2))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_cell_trace_and_export_equal_eager(name: str) -> None:
    cell = _cell(SPECS[name], zoneout=0.25 if name == "cifg" else 0.0)
    g = _gen(8)
    sizes = (H, H, 3 * H) if cell.spec.full_gate_recurrence else (H, H)  # FGR carries the previous gates

    def state() -> tuple[torch.Tensor, ...]:
        return tuple(torch.randn(B, n, generator=g, dtype=torch.float64) for n in sizes)

    x, hx = torch.randn(B, I, generator=g, dtype=torch.float64), state()
    traced = torch.jit.trace(cell, (x, hx))
    exported = torch.export.export(cell, (x, hx)).module()
    x2, hx2 = torch.randn(B, I, generator=g, dtype=torch.float64), state()
    with torch.no_grad():
        want = cell(x2, hx2)
    _close(traced(x2, hx2), want)
    _close(exported(x2, hx2), want)


@pytest.mark.parametrize("module", [lambda: lstmkit.LSTM(I, H), lambda: lstmkit.LSTMCell(I, H, spec="peephole")])
def test_script_refuses_with_reason(module: object) -> None:
    m = module()  # type: ignore[operator]
    name = type(m).__name__
    with pytest.raises(RuntimeError, match=f"torch.jit.script cannot compile lstmkit.{name}") as err:
        torch.jit.script(m)
    assert "torch.jit.trace" in str(err.value) and "torch.export.export" in str(err.value)
    # also when the lstmkit module is inside a larger model
    with pytest.raises(RuntimeError, match=f"cannot compile lstmkit.{name}"):
        torch.jit.script(torch.nn.Sequential(m))
