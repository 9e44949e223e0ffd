"""Errors keep torch's wording: for every fault ``torch.nn.LSTM`` / ``nn.LSTMCell`` have a message
for, lstmkit raises the same exception class with a message matching torch's own regular expression
(torch's phrase first, lstmkit's detail after it).

Two sources of cases, each run against torch's module first (so the expectation is torch's, not a
guess) and then against lstmkit's:

- torch's test material: the ``module_error_inputs_func`` of the ``ModuleInfo`` entries for
  ``nn.LSTM`` and ``nn.LSTMCell`` in ``torch.testing._internal.common_modules``, the inputs and
  regular expressions PyTorch's ``TestModule.test_errors`` uses;
- the other messages of ``torch/nn/modules/rnn.py`` (``RNNBase.__init__``, ``check_input``,
  ``check_hidden_size``, ``LSTM.forward``, ``LSTMCell.forward``) and of the C++ ``lstm`` /
  ``lstm_cell`` checks, written out below with the message they come from.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import lstmkit

F64 = torch.float64


def _raises(build: Callable[[], Any], call: Callable[[Any], Any] | None, error: type, regex: str) -> str:
    """Build (and call) a module; the error must be an ``error`` whose message matches ``regex``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=regex) as caught:
            module = build()
            if call is not None:
                call(module)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------- torch's own error inputs


def _torch_error_inputs() -> list[Any]:
    common_modules = pytest.importorskip("torch.testing._internal.common_modules")
    cases = []
    for info in common_modules.module_db:
        if info.module_cls not in (nn.LSTM, nn.LSTMCell) or info.module_error_inputs_func is None:
            continue
        inputs = info.module_error_inputs_func(
            info, device="cpu", dtype=torch.float32, requires_grad=False, training=True
        )
        for k, case in enumerate(inputs):
            forward = case.error_on == common_modules.ModuleErrorEnum.FORWARD_ERROR
            cases.append(pytest.param(info.module_cls, case, forward, id=f"{info.module_cls.__name__}-{k}"))
    return cases


TORCH_CASES = _torch_error_inputs()


def test_torch_ships_error_inputs_for_lstm_and_cell() -> None:
    classes = {case.values[0] for case in TORCH_CASES}
    assert classes == {nn.LSTM, nn.LSTMCell}
    assert len(TORCH_CASES) >= 7  # the seven of PyTorch 2.x, plus any a later release adds


@pytest.mark.parametrize(("torch_cls", "case", "forward"), TORCH_CASES)
def test_torch_error_input(torch_cls: type[nn.Module], case: Any, forward: bool) -> None:
    """Exactly PyTorch's ``TestModule.test_errors``: build, (call,) assertRaisesRegex."""
    inputs = case.module_error_input
    args, kwargs = inputs.constructor_input.args, inputs.constructor_input.kwargs
    ours_cls = getattr(lstmkit, torch_cls.__name__)
    for cls in (torch_cls, ours_cls):
        call = None
        if forward:
            fw = inputs.forward_input

            def call(m: Any, fw: Any = fw) -> Any:
                return m(*fw.args, **fw.kwargs)

        message = _raises(lambda cls=cls: cls(*args, **kwargs), call, case.error_type, case.error_regex)
        if cls is ours_cls:
            assert re.match(case.error_regex, message) or message.startswith(("LSTM", "RNN")), message


# ---------------------------------------------------------------------- torch's other messages

T, B, I, H = 6, 4, 3, 5
r = torch.randn

# (name, constructor kwargs on top of (I, H), the call or None, class, torch's regex, lstmkit's detail)
LSTM_CASES: list[tuple[str, dict[str, Any], Callable[[Any], Any] | None, type, str, str]] = [
    # RNNBase.__init__
    (
        "dropout above 1",
        {"dropout": 1.5},
        None,
        ValueError,
        r"dropout should be a number in range \[0, 1\] representing the probability of an element being zeroed",
        r"; got 1.5$",
    ),
    (
        "dropout below 0",
        {"dropout": -0.1},
        None,
        ValueError,
        r"dropout should be a number in range \[0, 1\]",
        "got -0.1",
    ),
    ("num_layers negative", {"num_layers": -1}, None, ValueError, "num_layers must be greater than zero", "got -1"),
    ("hidden_size as str", {"hidden_size": "5"}, None, TypeError, "hidden_size should be of type int, got: str", "'5'"),
    (
        "proj_size negative",
        {"proj_size": -1},
        None,
        ValueError,
        "proj_size should be a positive integer or zero to disable projections",
        "got -1",
    ),
    (
        "proj_size too big",
        {"proj_size": H},
        None,
        ValueError,
        "proj_size has to be smaller than hidden_size",
        "got proj_size=5, hidden_size=5",
    ),
    # LSTM.forward and RNNBase.check_input / check_hidden_size
    (
        "input 4-D",
        {},
        lambda m: m(r(2, T, B, I)),
        ValueError,
        "LSTM: Expected input to be 2D or 3D, got 4D instead",
        r"\(T, B, 3\).*got shape \(2, 6, 4, 3\)",
    ),
    (
        "input features",
        {},
        lambda m: m(r(T, B, I + 1)),
        RuntimeError,
        r"input.size\(-1\) must be equal to input_size. Expected 3, got 4",
        r"got shape \(6, 4, 4\)",
    ),
    (
        "input features, unbatched",
        {},
        lambda m: m(r(T, I + 1)),
        RuntimeError,
        r"input.size\(-1\) must be equal to input_size. Expected 3, got 4",
        r"got shape \(6, 4\)",
    ),
    (
        "input dtype",
        {"dtype": F64},
        lambda m: m(r(T, B, I)),
        ValueError,
        r"RNN input dtype \(torch.float32\) does not match weight dtype \(torch.float64\). "
        r"Convert input: input.to\(torch.float64\), or convert model: model.to\(torch.float32\)",
        "",
    ),
    (
        "integer input",
        {},
        lambda m: m(torch.ones(T, B, I, dtype=torch.long)),
        ValueError,
        r"RNN input dtype \(torch.int64\) does not match weight dtype \(torch.float32\)",
        "floating-point tensor; got dtype torch.int64",
    ),
    (
        "no time step",
        {},
        lambda m: m(r(0, B, I)),
        RuntimeError,
        "Expected sequence length to be larger than 0 in RNN",
        r"got shape \(0, 4, 3\)",
    ),
    (
        "batched input, 2-D h",
        {},
        lambda m: m(r(T, B, I), (r(B, H), r(1, B, H))),
        RuntimeError,
        r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 3-D\) tensors",
        r"\(4, 5\)",
    ),
    (
        "unbatched input, 3-D h",
        {},
        lambda m: m(r(T, I), (r(1, 1, H), r(1, H))),
        RuntimeError,
        r"For unbatched 2-D input, hx and cx should also be 2-D but got \(3-D, 2-D\) tensors",
        r"\(1, 1, 5\)",
    ),
    (
        "h size",
        {},
        lambda m: m(r(T, B, I), (r(1, B, H - 1), r(1, B, H))),
        RuntimeError,
        r"Expected hidden\[0\] size \(1, 4, 5\), got \[1, 4, 4\]",
        r"h_0 must have shape \(1, 4, 5\).*hidden_size",
    ),
    (
        "h batch",
        {},
        lambda m: m(r(T, B, I), (r(1, B + 1, H), r(1, B + 1, H))),
        RuntimeError,
        r"Expected hidden\[0\] size \(1, 4, 5\), got \[1, 5, 5\]",
        "batch of the input",
    ),
    (
        "h layers",
        {"num_layers": 2},
        lambda m: m(r(T, B, I), (r(1, B, H), r(2, B, H))),
        RuntimeError,
        r"Expected hidden\[0\] size \(2, 4, 5\), got \[1, 4, 5\]",
        "num_layers",
    ),
    (
        "c size",
        {},
        lambda m: m(r(T, B, I), (r(1, B, H), r(1, B, H + 1))),
        RuntimeError,
        r"Expected hidden\[1\] size \(1, 4, 5\), got \[1, 4, 6\]",
        r"c_0 must have shape \(1, 4, 5\)",
    ),
    (
        "h size with projection",
        {"proj_size": 2},
        lambda m: m(r(T, B, I), (r(1, B, H), r(1, B, H))),
        RuntimeError,
        r"Expected hidden\[0\] size \(1, 4, 2\), got \[1, 4, 5\]",
        "proj_size",
    ),
    (
        "h size, unbatched",
        {},
        lambda m: m(r(T, I), (r(1, H - 1), r(1, H))),
        RuntimeError,
        r"Expected hidden\[0\] size \(1, 1, 5\), got \[1, 1, 4\]",
        r"h_0 must have shape \(1, 5\).*got \(1, 4\)",
    ),
    # the C++ lstm's device checks (torch/csrc: _rnn_impl's check_attributes)
    (
        "input on another device",
        {},
        lambda m: m(torch.empty(T, B, I, device="meta")),
        RuntimeError,
        "Input and parameter tensors are not at the same device, found input tensor at meta and parameter tensor "
        "at cpu",
        "",
    ),
    (
        "h on another device",
        {},
        lambda m: m(r(T, B, I), (torch.empty(1, B, H, device="meta"), r(1, B, H))),
        RuntimeError,
        "Input and hidden tensors are not at the same device, found input tensor at cpu and hidden tensor at meta",
        r"\(h_0\)",
    ),
]

# torch's LSTMCell.forward (Python) and the C++ lstm_cell checks (check_rnn_cell_forward_input / _hidden)
CELL_CASES: list[tuple[str, Callable[[Any], Any], type, str, str]] = [
    (
        "input 3-D",
        lambda m: m(r(2, B, I)),
        ValueError,
        "LSTMCell: Expected input to be 1D or 2D, got 3D instead",
        r"\(B, 3\) or \(3,\); got shape \(2, 4, 3\)",
    ),
    (
        "c 4-D",
        lambda m: m(r(B, I), (r(B, H), r(B, 1, 1, H))),
        ValueError,
        r"LSTMCell: Expected hx\[1\] to be 1D or 2D, got 4D instead",
        r"c_0 must have shape \(4, 5\)",
    ),
    (
        "input features, unbatched",
        lambda m: m(r(I + 1)),
        RuntimeError,
        "input has inconsistent input_size: got 4 expected 3",
        r"got shape \(4,\)",
    ),
    (
        "c size",
        lambda m: m(r(B, I), (r(B, H), r(B, H + 1))),
        RuntimeError,
        "hidden1 has inconsistent hidden_size: got 6, expected 5",
        r"c_0 must have shape \(4, 5\)",
    ),
    (
        "c batch",
        lambda m: m(r(B, I), (r(B, H), r(B + 1, H))),
        RuntimeError,
        "Input batch size 4 doesn't match hidden1 batch size 5",
        r"got \(5, 5\)",
    ),
    (
        "1-D h with a batched input",
        lambda m: m(r(2, I), (r(H), r(H))),
        RuntimeError,
        "Input batch size 2 doesn't match hidden0 batch size 5",
        r"h_0 must have shape \(2, 5\).*got \(5,\)",
    ),
    (
        "h size, unbatched",
        lambda m: m(r(I), (r(H + 1), r(H))),
        RuntimeError,
        "hidden0 has inconsistent hidden_size: got 6, expected 5",
        r"unbatched input.*got \(6,\)",
    ),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "call", "error", "regex", "detail"), LSTM_CASES, ids=[c[0] for c in LSTM_CASES]
)
def test_lstm_message(name: str, kwargs: dict, call: Any, error: type, regex: str, detail: str) -> None:
    args = {"input_size": I, "hidden_size": H} | kwargs
    _raises(lambda: nn.LSTM(**args), call, error, regex)
    message = _raises(lambda: lstmkit.LSTM(**args), call, error, "^" + regex)
    assert re.search(detail, message), message


@pytest.mark.parametrize(("name", "call", "error", "regex", "detail"), CELL_CASES, ids=[c[0] for c in CELL_CASES])
def test_cell_message(name: str, call: Any, error: type, regex: str, detail: str) -> None:
    _raises(lambda: nn.LSTMCell(I, H), call, error, regex)
    message = _raises(lambda: lstmkit.LSTMCell(I, H), call, error, "^" + regex)
    assert re.search(detail, message), message


def test_dropout_warning_keeps_torch_words() -> None:
    regex = (
        "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
        "num_layers greater than 1, but got dropout=0.5 and num_layers=1"
    )
    for cls in (nn.LSTM, lstmkit.LSTM):
        with pytest.warns(UserWarning, match=regex):
            cls(I, H, dropout=0.5)


@pytest.mark.parametrize("spec", ["vanilla", "peephole", "layernorm"])
def test_wording_does_not_depend_on_the_kernel(spec: str) -> None:
    """The checks sit at the boundary, before a kernel is chosen: every spec words them alike."""
    model = lstmkit.LSTM(I, H, spec=spec)
    with pytest.raises(RuntimeError, match=r"^Expected hidden\[1\] size \(1, 4, 5\), got \[1, 4, 6\]"):
        model(r(T, B, I), (r(1, B, H), r(1, B, H + 1)))
    cell = lstmkit.LSTMCell(I, H, spec=spec)
    with pytest.raises(RuntimeError, match="^hidden0 has inconsistent hidden_size: got 6, expected 5"):
        cell(r(B, I), (r(B, H + 1), r(B, H)))
