"""Bad input fails early with a message that names what was expected and what came."""

from __future__ import annotations

import re

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import lstmkit


@pytest.fixture
def lstm() -> lstmkit.LSTM:
    return lstmkit.LSTM(10, 20, num_layers=2)


def test_wrong_rank(lstm: lstmkit.LSTM) -> None:
    with pytest.raises(
        ValueError,
        match="^LSTM: Expected input to be 2D or 3D, got 4D instead: .*"
        + re.escape("(T, B, 10)")
        + ".*got shape \\(2, 3, 4, 10\\)",
    ):
        lstm(torch.randn(2, 3, 4, 10))


def test_wrong_feature_size(lstm: lstmkit.LSTM) -> None:
    with pytest.raises(ValueError, match=re.escape("Expected 10, got 3: ") + ".*" + re.escape("got shape (5, 7, 3)")):
        lstm(torch.randn(5, 7, 3))


def test_wrong_feature_size_batch_first() -> None:
    model = lstmkit.LSTM(10, 20, batch_first=True)
    with pytest.raises(ValueError, match=re.escape("(B, T, 10)")):
        model(torch.randn(5, 7, 3))


def test_packed_wrong_feature_size(lstm: lstmkit.LSTM) -> None:
    packed = pack_sequence([torch.randn(3, 4), torch.randn(2, 4)])
    with pytest.raises(ValueError, match=re.escape("(N, 10); got (5, 4)")):
        lstm(packed)


def test_hx_wrong_shape(lstm: lstmkit.LSTM) -> None:
    x = torch.randn(5, 3, 10)
    h = torch.zeros(1, 3, 20)
    c = torch.zeros(2, 3, 20)
    want = re.escape("Expected hidden[0] size (2, 3, 20), got [1, 3, 20]: h_0 must have shape (2, 3, 20)")
    with pytest.raises(ValueError, match=want + ".*got \\(1, 3, 20\\)"):
        lstm(x, (h, c))


def test_batch_mismatch_between_input_and_state(lstm: lstmkit.LSTM) -> None:
    x = torch.randn(5, 3, 10)
    state = (torch.zeros(2, 4, 20), torch.zeros(2, 4, 20))
    want = re.escape("Expected hidden[0] size (2, 3, 20), got [2, 4, 20]: h_0 must have shape (2, 3, 20)")
    with pytest.raises(ValueError, match=want + ".*batch.*got \\(2, 4, 20\\)"):
        lstm(x, state)


def test_cell_batch_mismatch() -> None:
    cell = lstmkit.LSTMCell(4, 6)
    want = re.escape("Input batch size 3 doesn't match hidden0 batch size 2: h_0 must have shape (3, 6)")
    with pytest.raises(ValueError, match=want + ".*got \\(2, 6\\)"):
        cell(torch.randn(3, 4), (torch.zeros(2, 6), torch.zeros(3, 6)))


def test_hx_not_a_pair(lstm: lstmkit.LSTM) -> None:
    with pytest.raises(TypeError, match="hx must be a tuple \\(h_0, c_0\\).*got Tensor"):
        lstm(torch.randn(5, 3, 10), torch.zeros(2, 3, 20))


def test_dtype_mismatch(lstm: lstmkit.LSTM) -> None:
    with pytest.raises(
        TypeError, match=re.escape("RNN input dtype (torch.float64) does not match weight dtype (torch.float32)")
    ):
        lstm(torch.randn(5, 3, 10, dtype=torch.float64))


def test_state_dtype_mismatch(lstm: lstmkit.LSTM) -> None:
    h = torch.zeros(2, 3, 20, dtype=torch.float64)
    with pytest.raises(
        TypeError, match=re.escape("h_0 dtype (torch.float64) does not match weight dtype (torch.float32)")
    ):
        lstm(torch.randn(5, 3, 10), (h, torch.zeros(2, 3, 20)))


def test_device_mismatch(lstm: lstmkit.LSTM) -> None:
    x = torch.randn(5, 3, 10, device="meta")
    want = (
        "Input and parameter tensors are not at the same device, found input tensor at meta and parameter tensor at cpu"
    )
    with pytest.raises(ValueError, match=want):
        lstm(x)


def test_non_floating_input(lstm: lstmkit.LSTM) -> None:
    with pytest.raises(TypeError, match="floating-point tensor; got dtype torch.int64"):
        lstm(torch.ones(5, 3, 10, dtype=torch.long))
    with pytest.raises(TypeError, match="input must be a torch.Tensor; got list"):
        lstm([[1.0] * 10])


def test_cell_wrong_input() -> None:
    cell = lstmkit.LSTMCell(4, 6)
    with pytest.raises(
        ValueError, match=re.escape("got 3D instead: input must be (B, 4) or (4,); got shape (1, 2, 4)")
    ):
        cell(torch.randn(1, 2, 4))
    with pytest.raises(
        ValueError, match=re.escape("got 5 expected 4: LSTMCell input must be (B, 4) or (4,); got shape (2, 5)")
    ):
        cell(torch.randn(2, 5))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input_size": 0}, ValueError, "input_size must be greater than zero; got 0"),
        ({"hidden_size": -3}, ValueError, "hidden_size must be greater than zero; got -3"),
        ({"hidden_size": 2.5}, TypeError, "hidden_size should be of type int, got: float 2.5"),
        ({"num_layers": 0}, ValueError, "num_layers must be greater than zero; got 0"),
        ({"dropout": 1.5}, ValueError, re.escape("dropout should be a number in range [0, 1] ") + ".*; got 1.5"),
        ({"dropout": -0.1}, ValueError, re.escape("dropout should be a number in range [0, 1] ") + ".*; got -0.1"),
        (
            {"proj_size": 20},
            ValueError,
            "proj_size has to be smaller than hidden_size; got proj_size=20, hidden_size=20",
        ),
        ({"proj_size": -1}, ValueError, "proj_size should be a positive integer or zero .*; got -1"),
        ({"bidirectional": 2}, TypeError, re.escape("bidirectional should be of type bool, got: int 2 (expected True")),
        ({"bias": 1}, TypeError, re.escape("bias should be of type bool, got: int 1 (expected True or False)")),
        ({"spec": "bogus"}, ValueError, "unknown spec preset 'bogus'"),
        (
            {"recurrent_dropout": 1.0},
            ValueError,
            re.escape("recurrent_dropout should be a number in range [0, 1) ") + ".*; got 1.0",
        ),
        (
            {"zoneout": (0.1, 1.2)},
            ValueError,
            re.escape("zoneout[1] (hidden) should be a number in range [0, 1) ")
            + ".*keeping the previous value; got 1.2",
        ),
        ({"zoneout": "x"}, TypeError, "zoneout must be a float or a pair"),
        ({"forget_bias": 1.0, "bias": False}, ValueError, "forget_bias=1.0 needs bias=True"),
        ({"dtype": torch.int32}, TypeError, "dtype must be a floating-point dtype; got torch.int32"),
    ],
)
def test_constructor_arguments(kwargs: dict, error: type, message: str) -> None:
    args = {"input_size": 10, "hidden_size": 20, "num_layers": 2} | kwargs
    with pytest.raises(error, match=message):
        lstmkit.LSTM(**args)


def test_cell_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="hidden_size must be greater than zero; got 0"):
        lstmkit.LSTMCell(3, 0)
    with pytest.raises(TypeError, match="bias should be of type bool, got: str"):
        lstmkit.LSTMCell(3, 4, bias="yes")  # type: ignore[arg-type]


def test_dropout_with_one_layer_warns() -> None:
    with pytest.warns(
        UserWarning,
        match="non-zero dropout expects num_layers greater than 1, but got dropout=0.5 and num_layers=1: it has no "
        "effect",
    ):
        lstmkit.LSTM(3, 4, dropout=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gate_activation": "swish"}, "gate_activation must be one of"),
        ({"coupled": True, "forget_gate": False}, "coupled .* needs input_gate=True and forget_gate=True"),
        ({"cell_clip": -1.0}, "cell_clip must be positive and finite; got -1.0"),
    ],
)
def test_spec_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lstmkit.CellSpec(**kwargs)


def test_kernel_env_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMKIT_KERNEL", "fastest")
    with pytest.raises(ValueError, match="LSTMKIT_KERNEL must be one of .*got 'fastest'"):
        lstmkit.LSTM(3, 4, spec="peephole")(torch.randn(2, 1, 3))


@pytest.mark.parametrize(
    ("sizes", "needle"),
    [([1, 2], "must not increase"), ([2, 1, 1], "must sum to the number of rows of data (3)")],
)
def test_packed_batch_sizes_named_with_torchs_exception_class(sizes: list[int], needle: str) -> None:
    from torch.nn.utils.rnn import PackedSequence

    packed = PackedSequence(torch.randn(3, 2), torch.tensor(sizes))
    with pytest.raises(RuntimeError) as torch_err:
        torch.nn.LSTM(2, 3)(packed)
    with pytest.raises(type(torch_err.value)) as err:
        lstmkit.LSTM(2, 3)(packed)
    message = str(err.value)
    assert needle in message and "batch_sizes" in message and str(sizes) in message, message
    assert "\n" not in message
