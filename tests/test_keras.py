"""Keras weights: real Keras LSTM layers (torch backend) against lstmkit after from_keras, and back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.interop.keras import keras_layer_kwargs

os.environ["KERAS_BACKEND"] = "torch"  # must precede the first import of keras
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # keras was imported earlier in this process with another backend
    pytest.skip(f"these tests need Keras on the torch backend; got {keras.backend.backend()}", allow_module_level=True)

# Keras' own arrays trip a NumPy 2 deprecation notice inside keras; it says nothing about lstmkit.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

B, T, I, H = 3, 6, 4, 5


def _np(value: object) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _x(seed: int = 0, features: int = I) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, T, features)).astype(np.float32)


def _randomise(layer: object, seed: int) -> None:
    """Nonzero random weights and biases (Keras starts biases at 0 and 1)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.get_weights()])  # type: ignore[attr-defined]


def _ours(model: lstmkit.LSTM, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        out, (h, c) = model(torch.from_numpy(x))
    return out.numpy(), h.numpy(), c.numpy()


def _close(a: object, b: object) -> None:
    np.testing.assert_allclose(_np(a), _np(b), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("activation", "recurrent_activation", "use_bias"),
    [("tanh", "sigmoid", True), ("relu", "hard_sigmoid", True), ("tanh", "sigmoid", False)],
)
def test_single_layer_from_keras(activation: str, recurrent_activation: str, use_bias: bool) -> None:
    layer = keras.layers.LSTM(
        H,
        activation=activation,
        recurrent_activation=recurrent_activation,
        use_bias=use_bias,
        return_sequences=True,
        return_state=True,
    )
    x = _x()
    layer(x)  # build
    _randomise(layer, 1)
    y, h, c = layer(x)
    model = lstmkit.LSTM.from_keras(
        layer.get_weights(), activation=activation, recurrent_activation=recurrent_activation
    )
    assert model.batch_first and not model.training and model.bias is use_bias
    out, h_n, c_n = _ours(model, x)
    _close(y, out)
    _close(h, h_n[0])
    _close(c, c_n[0])


def test_return_sequences_false_is_last_step() -> None:
    layer = keras.layers.LSTM(H)
    x = _x(3)
    layer(x)
    _randomise(layer, 4)
    out, _, _ = _ours(lstmkit.LSTM.from_keras(layer.get_weights()), x)
    _close(layer(x), out[:, -1])


def test_stacked_layers_from_keras() -> None:
    first = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    second = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    x = _x(5)
    y1, _, _ = first(x)
    second(y1)
    _randomise(first, 6)
    _randomise(second, 7)
    y1, h1, c1 = first(x)
    y2, h2, c2 = second(y1)
    model = lstmkit.LSTM.from_keras([first.get_weights(), second.get_weights()])
    assert model.num_layers == 2
    out, h_n, c_n = _ours(model, x)
    _close(y2, out)
    for k, (h, c) in enumerate([(h1, c1), (h2, c2)]):
        _close(h, h_n[k])
        _close(c, c_n[k])


def test_bidirectional_from_keras() -> None:
    layer = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True, return_state=True))
    x = _x(8)
    layer(x)
    _randomise(layer, 9)
    y, h_f, c_f, h_b, c_b = layer(x)
    model = lstmkit.LSTM.from_keras(layer.get_weights(), bidirectional=True)
    out, h_n, c_n = _ours(model, x)
    assert out.shape == (B, T, 2 * H)
    _close(y, out)
    _close(h_f, h_n[0])
    _close(c_f, c_n[0])
    _close(h_b, h_n[1])
    _close(c_b, c_n[1])


def test_go_backwards_equals_flipped_input_and_flag_explains() -> None:
    layer = keras.layers.LSTM(H, go_backwards=True, return_sequences=True, return_state=True)
    x = _x(10)
    layer(x)
    _randomise(layer, 11)
    y, h, _ = layer(x)
    out, h_n, _ = _ours(lstmkit.LSTM.from_keras(layer.get_weights()), np.ascontiguousarray(x[:, ::-1]))
    _close(y, out)
    _close(h, h_n[0])
    with pytest.raises(ValueError, match=r"equals LSTM.from_keras\(weights\)\(x.flip\(1\)\)"):
        lstmkit.LSTM.from_keras(layer.get_weights(), go_backwards=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_layers": 2},
        {"bidirectional": True, "num_layers": 2},
        {"bias": False},
        {
            "spec": lstmkit.CellSpec(
                gate_activation="hard_sigmoid", candidate_activation="softsign", cell_activation="softsign"
            )
        },
    ],
)
def test_to_keras_weights_round_trip(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, batch_first=True, **kwargs).eval()
    weights = model.to_keras_weights()
    per_layer = [weights] if model.num_layers == 1 else weights
    x = _x(12)
    y = x
    for k, arrays in enumerate(per_layer):
        cell = keras.layers.LSTM(**keras_layer_kwargs(model), return_sequences=True)
        layer = keras.layers.Bidirectional(cell) if model.bidirectional else cell
        layer(y)
        layer.set_weights(arrays)
        y = layer(y)
        assert _np(y).shape == (B, T, model.num_directions * H), k
    out, _, _ = _ours(model, x)
    _close(y, out)
    # and back again: the same parameters (bias_ih + bias_hh folded into bias_ih)
    again = lstmkit.LSTM.from_keras(weights, bidirectional=model.bidirectional, **_activations(model))
    _close(_ours(again, x)[0], out)


def _activations(model: lstmkit.LSTM) -> dict[str, str]:
    kw = keras_layer_kwargs(model)
    return {"activation": kw["activation"], "recurrent_activation": kw["recurrent_activation"]}


def test_keras_weight_errors() -> None:
    rng = np.random.default_rng(0)
    good = [rng.standard_normal((I, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)]
    with pytest.raises(ValueError, match=r"recurrent_kernel of layer 0 must have shape \(5, 20\); got \(5, 16\)"):
        lstmkit.LSTM.from_keras([good[0], good[1][:, :16], good[2]])
    with pytest.raises(ValueError, match=r"kernel of layer 1 must have shape \(5, 20\); got \(4, 20\)"):
        lstmkit.LSTM.from_keras([good, good])
    with pytest.raises(ValueError, match="Bidirectional LSTM layer has 6 arrays"):
        lstmkit.LSTM.from_keras(good, bidirectional=True)
    with pytest.raises(ValueError, match="activation must be one of"):
        lstmkit.LSTM.from_keras(good, activation="gelu")
    with pytest.raises(TypeError, match="got an empty list"):
        lstmkit.LSTM.from_keras([])
    assert lstmkit.LSTM.from_keras(good).weight_ih_l0.dtype == torch.float64
    with pytest.raises(ValueError, match="only the standard cell"):
        lstmkit.LSTM(I, H, spec="peephole").to_keras_weights()
    with pytest.raises(ValueError, match="no projection; this model has proj_size=2"):
        lstmkit.LSTM(I, H, proj_size=2).to_keras_weights()
