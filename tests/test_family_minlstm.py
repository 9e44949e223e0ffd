"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?" §3.2): the paper's equations written out
here, the log-space parallel scan == the sequential form, gradcheck, streaming, padding and errors.
Tiny shapes; float64 unless said. (The official xlstm package has no minLSTM.)"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lstmkit
from family_checks import (
    boundary_errors,
    cell_equals_layer,
    chunked_equals_whole,
    close,
    padding_and_packing,
    recorded_hidden_is_output,
    unbatched_equals_batch_of_one,
)
from lstmkit.families import MinLSTMSpec, MinLSTMState, minlstm_layer, minlstm_scan

D64 = torch.float64


def paper_minlstm(model: lstmkit.MinLSTM, x: Tensor, h0: Tensor | None = None) -> Tensor:
    """The paper's sequential minLSTM, one layer, (B, T, I) -> (B, T, H)."""
    spec, H = model.spec, model.hidden_size
    W, b = model.weight_ih_l0, model.bias_l0
    h = torch.zeros(x.shape[0], H, dtype=x.dtype) if h0 is None else h0
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        i = torch.sigmoid(xt @ W[:H].T + b[:H])
        f = torch.sigmoid(xt @ W[H : 2 * H].T + b[H : 2 * H])
        pre = xt @ W[2 * H :].T + b[2 * H :]
        h_tilde = torch.where(pre >= 0, pre + 0.5, torch.sigmoid(pre)) if spec.candidate == "g" else pre
        if spec.normalize:
            f, i = f / (f + i), i / (f + i)
        h = f * h + i * h_tilde
        outs.append(h)
    return torch.stack(outs, dim=1)


def make(I: int = 3, H: int = 4, **kw: object) -> lstmkit.MinLSTM:
    torch.manual_seed(0)
    kw.setdefault("batch_first", True)
    return lstmkit.MinLSTM(I, H, dtype=D64, **kw)  # type: ignore[arg-type]


SPECS = [MinLSTMSpec(), MinLSTMSpec(candidate="g"), MinLSTMSpec(normalize=False)]


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("form", ["scan", "sequential"])
def test_equals_the_papers_equations(spec: MinLSTMSpec, form: str) -> None:
    model = make(spec=spec, form=form)
    x = torch.randn(2, 8, 3, dtype=D64) * 2
    h0 = torch.randn(1, 2, 4, dtype=D64)
    close(model(x, (h0,))[0], paper_minlstm(model, x, h0[0]), 1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_scan_equals_sequential_with_padding(spec: MinLSTMSpec) -> None:
    x = torch.randn(8, 3, 12, dtype=D64) * 3
    h0 = MinLSTMState(torch.randn(3, 4, dtype=D64))
    lengths = torch.tensor([8, 0, 5])
    seq, s1, _ = minlstm_layer(x, h0, spec, lengths, form="sequential")
    par, s2, _ = minlstm_layer(x, h0, spec, lengths, form="scan")
    close(par, seq, 1e-12)
    close(s2.hidden, s1.hidden, 1e-12)
    close(s2.hidden[1], h0.hidden[1], 0.0)  # an empty sequence keeps its state


def test_scan_float32_long_sequence() -> None:
    """T = 256 in float32: the log-space scan stays within 1e-4 of the float64 sequential form."""
    x = torch.randn(256, 2, 12, dtype=D64)
    h0 = MinLSTMState(torch.randn(2, 4, dtype=D64))
    seq, _, _ = minlstm_layer(x, h0, MinLSTMSpec(), form="sequential")
    par, _ = minlstm_scan(x.float(), MinLSTMState(h0.hidden.float()), MinLSTMSpec())
    close(par.double(), seq, 1e-4)


def test_records_follow_the_equations() -> None:
    model = make()
    _, _, trace = model(torch.randn(2, 5, 3, dtype=D64), return_gates=True)
    i, f, c, h = (trace.get(k) for k in ("input", "forget", "candidate", "hidden"))
    close(i + f, torch.ones_like(i), 1e-12)  # normalised gates sum to 1
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
    close(h, f * h_prev + i * c, 1e-12)


@pytest.mark.parametrize("form", ["scan", "sequential"])
def test_gradcheck_float64(form: str) -> None:
    x = torch.randn(4, 2, 6, dtype=D64, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=D64, requires_grad=True)

    def f(x: Tensor, h0: Tensor) -> Tensor:
        out, final, _ = minlstm_layer(x, MinLSTMState(h0), MinLSTMSpec(), torch.tensor([4, 3]), form=form)
        return torch.cat([out.flatten(), final.hidden.flatten()])

    assert torch.autograd.gradcheck(f, (x, h0))


def test_streaming_padding_unbatched_cell() -> None:
    model = make(3, 4, num_layers=2)
    x = torch.randn(3, 6, 3, dtype=D64)
    chunked_equals_whole(model, x, 4)
    padding_and_packing(model, x, [6, 2, 4])
    unbatched_equals_batch_of_one(model, x)
    recorded_hidden_is_output(model, x)
    cell_equals_layer(lstmkit.MinLSTMCell(3, 4, dtype=D64), make(3, 4), x)


def test_errors() -> None:
    boundary_errors(lambda i, h: lstmkit.MinLSTM(i, h, dtype=D64), 1)
    with pytest.raises(ValueError, match=r"candidate must be one of \('identity', 'g'\); got 'tanh'"):
        MinLSTMSpec(candidate="tanh")
    with pytest.raises(ValueError, match="form must be one of"):
        lstmkit.MinLSTM(3, 4, form="parallel")
