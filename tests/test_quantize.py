"""lstmkit.quantize: int8 weights per output channel, dynamic int8 activations, for every spec.

Three kinds of checks: exact where int8 loses nothing (weights and inputs on the int8 grid, so the
int8 model must equal the float LSTM, torch.nn.LSTM for the plain spec, to float rounding); close
to the float model within the documented tolerance otherwise; and the saved size.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit import PRESETS
from lstmkit.interop.quantize import (
    Int8Embedding,
    Int8LSTM,
    dequantize_rows,
    int8_linear,
    int8_linear_reference,
    quantize,
    quantize_rows,
)

SPECS = sorted({spec: name for name, spec in PRESETS.items()}.values())
REL_TOL = {"layernorm": 0.08}
"""Largest relative error ||int8 - float|| / ||float|| of the output accepted per preset; 0.02 for the others.
Layer norm on the recurrent projection normalises the small W_hh h of the first steps, which magnifies
any weight error (the float model moves as much under noise of 1e-4 on W_hh)."""


def _on_grid(model: nn.Module) -> None:
    """Round every matrix the int8 model stores as int8 to its int8 value, in place."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("weight_ih", "weight_hh", "weight_hr", "weight_gg")):
                p.copy_(dequantize_rows(*quantize_rows(p)))


def _grid_input(*shape: int) -> torch.Tensor:
    """Integers in [-127, 127] with 127 in every row: per-row int8 quantisation is exact on it (scale 1)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-127, 128, shape, generator=g).float()
    x[..., 0] = 127.0
    return x / 1.0


@pytest.mark.parametrize("K", [1, 2, 5])
def test_int8_linear_equals_the_float_product_on_the_grid_and_stays_close_off_it(K: int) -> None:
    """K = 1 included: a forecaster's single feature (torch's CPU int8 GEMM sums it wrongly)."""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(7, K, generator=g), torch.randn(7, generator=g)
    q, s = quantize_rows(w)
    assert q.dtype == torch.int8 and s.shape == (7,)
    assert (q.abs().amax(1) == 127).all(), "each row's largest weight maps to 127"
    x = _grid_input(3, 4, K)
    torch.testing.assert_close(int8_linear(x, q, s, b), x @ dequantize_rows(q, s).T + b, atol=1e-4, rtol=1e-6)
    y = torch.randn(6, K, generator=g)
    err = (int8_linear(y, q, s) - y @ w.T).abs().max()
    assert err < 0.05, f"int8 rounding error {err}"


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 1), (0, 6), (16, 33), (1, 128)])
def test_the_fused_int8_products_equal_their_tensor_operations(shape: tuple[int, ...], compiled_kernel: object) -> None:
    """The C++ kernel's int8_linear / int8_rows (one call each in eager mode) against the tensor operations
    they replace, bit for bit: the same rounding (half to even), the same int32 sums, the same float order."""
    g = torch.Generator().manual_seed(1)
    K, N = shape[-1], 9
    q, s = quantize_rows(torch.randn(N, K, generator=g))
    x, b = torch.randn(*shape, generator=g) * 3, torch.randn(N, generator=g)
    x.view(-1)[::7] = 0.0
    if x.shape[0]:
        x[0] = 0.0  # a zero row: scale 1
    for bias in (None, b):
        got = int8_linear(x, q, s, bias)
        want = int8_linear_reference(x, q, s, bias)
        assert got.shape == (*shape[:-1], N)
        assert torch.equal(got, want)
    table = Int8Embedding(nn.Embedding(10, 4))
    tokens = torch.tensor([[1, 9, -1], [0, 0, 3]])
    assert torch.equal(table(tokens), table.weight_int8[tokens].float() * table.weight_scale[tokens].unsqueeze(-1))
    with pytest.raises(IndexError):
        table(torch.tensor([10]))


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_equals_the_float_lstm_on_the_grid(spec: str, compiled_kernel: object) -> None:
    """One layer, both directions, with states: weights and inputs on the int8 grid, so the int8
    model must compute exactly the float model's function (zoneout's expectation included)."""
    torch.manual_seed(0)
    model = lstmkit.LSTM(6, 5, spec=spec, bidirectional=True, batch_first=True, zoneout=(0.1, 0.05)).eval()
    _on_grid(model)
    x = _grid_input(3, 4, 6) / 127.0 * 2  # scale kept per row: still exact
    state = tuple(0.5 * torch.randn(2, 3, s) for s in ([5, 5] + ([15] if model.spec.full_gate_recurrence else [])))
    with torch.no_grad():
        want_out, want_state = model(x, state)
        got_out, got_state = quantize(model)(x, state)
    torch.testing.assert_close(got_out, want_out, atol=1e-5, rtol=0)
    for a, b in zip(got_state, want_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_plain_spec_with_projection_equals_torch_nn_lstm_on_the_grid(compiled_kernel: object) -> None:
    torch.manual_seed(1)
    ref = nn.LSTM(6, 8, proj_size=4).eval()
    _on_grid(ref)
    q = quantize(lstmkit.LSTM.from_torch(ref))
    x = _grid_input(5, 2, 6)
    with torch.no_grad():
        (a, (h, c)), (b, state) = ref(x), q(x)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    torch.testing.assert_close(state[0], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(state[1], c, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_is_close_to_float_and_streams_exactly(spec: str, compiled_kernel: object) -> None:
    """Random weights and inputs, two layers: within the documented relative error of the float model;
    chunk after chunk with the state carried equals one call (rounding is per row: per step and sequence)."""
    torch.manual_seed(2)
    model = lstmkit.LSTM(16, 32, num_layers=2, spec=spec, batch_first=True).eval()
    q = quantize(model)
    assert isinstance(q, Int8LSTM)
    x = torch.randn(4, 12, 16)
    with torch.no_grad():
        want, _ = model(x)
        got, state = q(x)
        first, s = q(x[:, :5])
        second, s = q(x[:, 5:], s)
    rel = float((got - want).norm() / want.norm())
    assert rel <= REL_TOL.get(spec, 0.02), f"{spec}: relative error {rel:.4f}"
    assert rel > 0, "int8 must differ from float somewhere (else nothing was quantised)"
    torch.testing.assert_close(torch.cat([first, second], 1), got, atol=1e-6, rtol=0)
    for a, b in zip(s, state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 32)
        self.lstm = lstmkit.LSTM(32, 128, num_layers=2, batch_first=True, spec="peephole")
        self.head = nn.Linear(128, 50)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(tokens))[0])


def _saved_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def test_whole_model_int8_size_and_accuracy(compiled_kernel: object) -> None:
    torch.manual_seed(4)
    model = _Model().eval()
    q = quantize(model)
    assert q is not model and isinstance(model.lstm, lstmkit.LSTM), "a copy: the float model is untouched"
    kinds = {type(m).__name__ for m in q.modules()}
    assert {"Int8Embedding", "Int8LSTM", "Int8Linear"} <= kinds
    ratio = _saved_bytes(q) / _saved_bytes(model)
    assert ratio <= 0.3, f"saved int8 model is {ratio:.3f} of float32"
    tokens = torch.randint(0, 50, (3, 9))
    with torch.no_grad():
        want, got = model(tokens), q(tokens)
    assert float((got - want).norm() / want.norm()) < 0.02


def test_refuses_what_it_cannot_quantise() -> None:
    with pytest.raises(TypeError, match="float32 model"):
        quantize(lstmkit.LSTM(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        quantize("model")  # type: ignore[arg-type]
    q = quantize(lstmkit.LSTM(3, 4))
    with pytest.raises(ValueError, match=r"batched float32 input \(T, B, 3\)"):
        q(torch.randn(5, 3))
    with pytest.raises(ValueError, match="hx must be 2 tensors"):
        q(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4),))


def test_without_the_compiled_kernel_the_lowering_runs_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmkit.kernels import compiled

    torch.manual_seed(5)
    q = quantize(lstmkit.LSTM(4, 6, num_layers=2, spec="fgr", proj_size=3))
    x = torch.randn(5, 2, 4)
    with torch.no_grad():
        want = q(x)
        monkeypatch.setattr(compiled, "is_available", lambda: False)
        got = q(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_torch_ao_quantize_dynamic_is_not_silent(compiled_kernel: object) -> None:
    """torch.ao swaps its own module types only: the Linear becomes int8, the lstmkit.LSTM stays float and
    one warning names lstmkit.quantize."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    torch.manual_seed(6)
    model = nn.Sequential()
    model.add_module("lstm", lstmkit.LSTM(4, 6))
    model.add_module("head", nn.Linear(6, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    ours = [str(w.message) for w in caught if "lstmkit.quantize" in str(w.message)]
    assert len(ours) == 1 and "\n" not in ours[0] and "float32" in ours[0], ours
    assert isinstance(out.lstm, lstmkit.LSTM) and type(out.head) is not nn.Linear
    assert not hasattr(out.lstm, "qconfig")
