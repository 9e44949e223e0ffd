"""lstmkit.LSTM against torch.nn.LSTM in the same test, case by case, as PyTorch's own RNN tests check it.

Every case builds both modules with the same weights and feeds both the same input: the same
outputs, or an error of the class torch raises (lstmkit's message may differ, its class may not).
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence

import lstmkit
from lstmkit import kernels

I, H, P, T, B = 3, 5, 2, 6, 4


def pair(dtype: torch.dtype = torch.float64, **kwargs: Any) -> tuple[nn.LSTM, lstmkit.LSTM]:
    """A torch.nn.LSTM and an lstmkit.LSTM with the same weights (copied by state_dict)."""
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, dtype=dtype, **kwargs)
    ours = lstmkit.LSTM(I, H, dtype=dtype, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def outcome(call: Callable[[], Any]) -> type[BaseException] | None:
    try:
        call()
    except Exception as exc:
        return type(exc)
    return None


def assert_same_outcome(torch_call: Callable[[], Any], our_call: Callable[[], Any]) -> None:
    """Both succeed, or lstmkit's error is an instance of the class torch raised."""
    want = outcome(torch_call)
    if want is None:
        our_call()
    else:
        with pytest.raises(want):
            our_call()


def assert_same_result(a: Any, b: Any, tol: float = 1e-10) -> None:
    if isinstance(a, PackedSequence):
        assert isinstance(b, PackedSequence)
        assert torch.equal(a.batch_sizes, b.batch_sizes)
        for name in ("sorted_indices", "unsorted_indices"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or torch.equal(x, y), name
        a, b = a.data, b.data
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_result(x, y, tol)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(b, a, atol=tol, rtol=0)


# ---------------------------------------------------------------- constructor arguments
CONSTRUCTOR_CASES = [
    {"num_layers": 0},
    {"num_layers": 1.5},
    {"hidden_size": 0},
    {"hidden_size": 2.5},
    {"input_size": 0},
    {"dropout": 1.5},
    {"dropout": -0.1},
    {"dropout": True},
    {"dropout": "0.1"},
    {"proj_size": H},
    {"proj_size": -1},
    {"proj_size": True},
    {"bidirectional": 1},
    {"bidirectional": 0},
    {"bidirectional": True},
    {"batch_first": True},
    {"bias": False},
    {"proj_size": P, "num_layers": 2, "bidirectional": True},
]


@pytest.mark.parametrize("kwargs", CONSTRUCTOR_CASES, ids=str)
def test_constructor_accepts_and_refuses_what_torch_does(kwargs: dict[str, Any]) -> None:
    args = {"input_size": I, "hidden_size": H} | kwargs
    assert_same_outcome(lambda: nn.LSTM(**args), lambda: lstmkit.LSTM(**args))
    if outcome(lambda: nn.LSTM(**args)) is None:  # accepted: the same layout, so the same state_dict
        torch.manual_seed(1)
        ref = nn.LSTM(**args)
        torch.manual_seed(1)
        ours = lstmkit.LSTM(**args)
        assert_same_result(list(ref.state_dict().values()), list(ours.state_dict().values()), tol=0)


@pytest.mark.parametrize("value", [0, 1])
def test_int_bidirectional_acts_as_a_bool(value: int) -> None:
    """0 and 1 work as False and True for bidirectional (torch 2.13 builds with them but its forward then
    fails, so the oracle is torch's module built with the bool)."""
    ref, _ = pair(bidirectional=bool(value))
    ours = lstmkit.LSTM(I, H, dtype=torch.float64, bidirectional=value)
    ours.load_state_dict(ref.state_dict())
    assert ours.bidirectional is bool(value)
    x = torch.randn(T, B, I, dtype=torch.float64)
    assert_same_result(ref(x), ours(x))


@pytest.mark.parametrize("flag", ["bias", "batch_first"])
@pytest.mark.parametrize("value", [0, 1])
def test_int_bias_and_batch_first_refused_as_torch_does(flag: str, value: int) -> None:
    """torch 2.13 refuses 0 and 1 for bias and batch_first with a TypeError; so does lstmkit, in its words."""
    for cls in (nn.LSTM, lstmkit.LSTM):
        with pytest.raises(TypeError, match=f"^{flag} should be of type bool, got: int"):
            cls(I, H, **{flag: value})


# ---------------------------------------------------------------- forward errors
def _state(L: int = 1, batch: int = B, size: int = H) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(L, batch, size, dtype=torch.float64), torch.zeros(L, batch, H, dtype=torch.float64)


FORWARD_ERRORS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "feature size": lambda: (torch.randn(T, B, I + 1, dtype=torch.float64),),
    "rank 4": lambda: (torch.randn(T, B, 1, I, dtype=torch.float64),),
    "rank 1": lambda: (torch.randn(I, dtype=torch.float64),),
    "empty sequence": lambda: (torch.randn(0, B, I, dtype=torch.float64),),
    "h_0 layers": lambda: (torch.randn(T, B, I, dtype=torch.float64), (_state(2)[0], _state()[1])),
    "c_0 batch": lambda: (torch.randn(T, B, I, dtype=torch.float64), (_state()[0], _state(batch=B + 1)[1])),
    "state batch": lambda: (torch.randn(T, B, I, dtype=torch.float64), _state(batch=B - 1)),
    "h_0 size": lambda: (torch.randn(T, B, I, dtype=torch.float64), (_state(size=H + 1)[0], _state()[1])),
    "2-D state, 3-D input": lambda: (torch.randn(T, B, I, dtype=torch.float64), tuple(s[0] for s in _state())),
    "3-D state, unbatched": lambda: (torch.randn(T, I, dtype=torch.float64), _state(batch=1)),
    "input dtype": lambda: (torch.randn(T, B, I, dtype=torch.float32),),
    "integer input": lambda: (torch.ones(T, B, I, dtype=torch.int64),),
    "h_0 dtype": lambda: (torch.randn(T, B, I, dtype=torch.float64), (_state()[0].float(), _state()[1])),
    "input device": lambda: (torch.randn(T, B, I, dtype=torch.float64, device="meta"),),
}


@pytest.mark.parametrize("case", list(FORWARD_ERRORS))
@pytest.mark.parametrize("spec", ["vanilla", "peephole"])
def test_forward_errors_have_torchs_class(case: str, spec: str) -> None:
    """Every bad call raises an instance of what torch.nn.LSTM raises, for every spec (a peephole
    model runs another kernel than the plain one, and must refuse the same inputs)."""
    ref, _ = pair()
    ours = lstmkit.LSTM(I, H, spec=spec, dtype=torch.float64)
    args = FORWARD_ERRORS[case]()
    want = outcome(lambda: ref(*args))
    assert want is not None, f"torch accepted {case}"
    with pytest.raises(want):
        ours(*args)


@pytest.mark.parametrize("which", ["h_0 of size H", "c_0 of size P"])
def test_projection_state_errors_have_torchs_class(which: str) -> None:
    ref, ours = pair(proj_size=P)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h, c = torch.zeros(1, B, P, dtype=torch.float64), torch.zeros(1, B, H, dtype=torch.float64)
    hx = (torch.zeros(1, B, H, dtype=torch.float64), c) if which.startswith("h_0") else (h, h.clone())
    assert_same_outcome(lambda: ref(x, hx), lambda: ours(x, hx))
    assert_same_result(ref(x, (h, c)), ours(x, (h, c)))


def test_errors_keep_lstmkit_detail_after_torch_words() -> None:
    _, ours = pair()
    with pytest.raises(RuntimeError, match=r"Expected 3, got 4: LSTM input must be \(T, B, 3\).*got shape \(6, 4, 4\)"):
        ours(torch.randn(T, B, I + 1, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"RNN input dtype \(torch.float32\) does not match weight dtype \(torch.float64\)"
    ):
        ours(torch.randn(T, B, I))
    with pytest.raises(RuntimeError, match=r"larger than 0 in RNN: .*at least one time step; got shape \(0, 4, 3\)"):
        lstmkit.LSTM(I, H, spec="peephole")(torch.randn(0, B, I))


def test_return_gates_must_be_a_bool() -> None:
    _, ours = pair()
    with pytest.raises(TypeError, match="return_gates must be a bool; got str 'yes'"):
        ours(torch.randn(T, B, I, dtype=torch.float64), return_gates="yes")


# ---------------------------------------------------------------- variable-length sequences
LENGTHS_SORTED = [6, 4, 4, 1]
LENGTHS_UNSORTED = [4, 6, 1, 4]


def _packings(dtype: torch.dtype) -> dict[str, Callable[[torch.Tensor], PackedSequence]]:
    def seqs(x: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        return [x[: lengths[b], b] for b in range(B)]

    return {
        "padded-sorted": lambda x: pack_padded_sequence(x, LENGTHS_SORTED),
        "padded-unsorted": lambda x: pack_padded_sequence(x, LENGTHS_UNSORTED, enforce_sorted=False),
        "list-sorted": lambda x: pack_sequence(seqs(x, LENGTHS_SORTED)),
        "list-unsorted": lambda x: pack_sequence(seqs(x, LENGTHS_UNSORTED), enforce_sorted=False),
    }


@pytest.mark.parametrize("packing", list(_packings(torch.float64)))
@pytest.mark.parametrize("kernel", ["auto", "native", "compiled", "reference"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
def test_packed_sequences(packing: str, kernel: str, with_hx: bool, compiled_kernel: object) -> None:
    """Sorted packings (the default of pack_padded_sequence and pack_sequence) carry no permutation."""
    ref, ours = pair(num_layers=2, bidirectional=True, proj_size=P)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen)
    hx = (torch.randn(4, B, P, dtype=torch.float64, generator=gen), torch.randn(4, B, H, dtype=torch.float64))
    args = (hx,) if with_hx else ()
    results = []
    for module in (ref, ours):
        feed = _packings(torch.float64)[packing](x.clone().requires_grad_())
        with kernels.use(kernel):
            out, (h, c) = module(feed, *args)
        grads = torch.autograd.grad(out.data.square().sum() + h.sum() + c.sum(), list(module.parameters()))
        results.append((out, h, c, grads))
    assert_same_result(results[0], results[1])


@pytest.mark.parametrize("packing", list(_packings(torch.float64)))
@pytest.mark.parametrize("kernel", ["auto", "compiled", "reference"])
def test_packed_sequences_with_gates(packing: str, kernel: str, compiled_kernel: object) -> None:
    ref, ours = pair(bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    feed = _packings(torch.float64)[packing](x)
    want = ref(feed)
    with kernels.use(kernel):
        out, (h, c), trace = ours(feed, return_gates=True)
    assert_same_result(want, (out, (h, c)))
    lengths = torch.tensor(LENGTHS_SORTED if "unsorted" not in packing else LENGTHS_UNSORTED)
    assert torch.equal(trace.lengths, lengths)  # in the caller's batch order
    hidden = trace.get("hidden", layer=0, direction=0)  # (T, B, H), zero past each length
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(hidden[n - 1, b], h[0, b], atol=1e-12, rtol=0)
        assert torch.count_nonzero(hidden[n:, b]) == 0


def test_native_kernel_refuses_what_it_cannot_run() -> None:
    model = lstmkit.LSTM(I, H, spec="peephole")
    with kernels.use("native"), pytest.raises(kernels.KernelUnavailable, match="spec CellSpec\\(peephole=True"):
        model(torch.randn(T, B, I))
    with kernels.use("native"), pytest.raises(kernels.KernelUnavailable, match="recorded gates"):
        lstmkit.LSTM(I, H)(torch.randn(T, B, I), return_gates=True)


def test_compiled_kernel_takes_bfloat16_when_asked_by_name(compiled_kernel: object) -> None:
    model = lstmkit.LSTM(I, H, spec="peephole", dtype=torch.bfloat16)
    with kernels.use("compiled"):
        out, (h, c) = model(torch.randn(T, B, I, dtype=torch.bfloat16))
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16


# ---------------------------------------------------------------- layouts and dtypes
@pytest.mark.parametrize("spec_kernel", ["native", "compiled", "reference"])
@pytest.mark.parametrize("layout", ["unbatched", "unbatched-hx", "batch_first", "non-contiguous", "batch-0"])
def test_layouts(layout: str, spec_kernel: str, compiled_kernel: object) -> None:
    ref, ours = pair(num_layers=2, batch_first=layout == "batch_first")
    gen = torch.Generator().manual_seed(5)
    args: tuple[Any, ...]
    if layout.startswith("unbatched"):
        x = torch.randn(T, I, dtype=torch.float64, generator=gen)
        args = (x, (torch.randn(2, H, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)))
        args = args if layout == "unbatched-hx" else args[:1]
    elif layout == "non-contiguous":
        x = torch.randn(I, B, T, dtype=torch.float64, generator=gen).permute(2, 1, 0)
        h = torch.randn(B, 2, H, dtype=torch.float64, generator=gen).transpose(0, 1)
        assert not x.is_contiguous() and not h.is_contiguous()
        args = (x, (h, h.clone()))
    elif layout == "batch-0":
        args = (torch.randn(T, 0, I, dtype=torch.float64),)
    else:
        args = (torch.randn(B, T, I, dtype=torch.float64, generator=gen),)
    with kernels.use(spec_kernel):
        assert_same_result(ref(*args), ours(*args))


def test_bfloat16() -> None:
    ref, ours = pair(dtype=torch.bfloat16, num_layers=2)
    x = torch.randn(T, B, I, dtype=torch.bfloat16)
    assert_same_result(ref(x), ours(x), tol=0)  # the same fused kernel
    with kernels.use("reference"):  # lstmkit's own loop, in bfloat16 arithmetic
        assert_same_result(ref(x), ours(x), tol=2e-2)


# ---------------------------------------------------------------- dropout between layers
@pytest.mark.parametrize("kernel", ["native", "compiled", "reference"])
def test_dropout_between_layers(kernel: str, compiled_kernel: object) -> None:
    x = torch.randn(T, B, I, dtype=torch.float64)
    ref, ours = pair(num_layers=2, dropout=1.0)  # training: every unit of layer 0's output is dropped
    with kernels.use(kernel):
        assert_same_result(ref(x), ours(x))
        ref.eval(), ours.eval()  # evaluation: no dropout
        assert_same_result(ref(x), ours(x))
    ref, ours = pair(num_layers=2, dropout=0.5)
    with kernels.use(kernel):
        a, b = ours(x)[0], ours(x)[0]
    assert not torch.equal(a, b), "fresh masks at every call in training"


# ---------------------------------------------------------------- torch.nn.utils and serialisation
@pytest.mark.parametrize(
    "apply",
    [
        lambda m: parametrizations.weight_norm(m, "weight_hh_l0"),
        lambda m: parametrizations.spectral_norm(m, "weight_ih_l1"),
        lambda m: prune.l1_unstructured(m, "weight_ih_l0", amount=0.5),
    ],
    ids=["weight_norm", "spectral_norm", "prune"],
)
@pytest.mark.parametrize("spec", ["vanilla", "peephole"])
def test_weight_reparametrisations(apply: Callable[[nn.Module], Any], spec: str) -> None:
    ref, _ = pair(num_layers=2)
    ours = lstmkit.LSTM(I, H, num_layers=2, spec=spec, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict(), strict=False)  # a peephole model keeps its own weight_ch
    torch.manual_seed(2)
    apply(ref)
    torch.manual_seed(2)
    apply(ours)
    ref.eval(), ours.eval()  # spectral_norm: no power iteration (torch.nn.LSTM reads its weights more often)
    x = torch.randn(T, B, I, dtype=torch.float64)
    out = ours(x)[0]
    if spec == "vanilla":
        assert_same_result(ref(x)[0], out)
    grads = torch.autograd.grad(out.sum(), [p for p in ours.parameters()])
    names = [n for n, _ in ours.named_parameters()]
    assert set(names) - set(dict(ref.named_parameters())) <= {"weight_ch_l0", "weight_ch_l1"}
    assert all(g.abs().sum() > 0 for n, g in zip(names, grads, strict=True) if "bias" not in n or "l1" in n)


@pytest.mark.parametrize(
    "roundtrip",
    [
        copy.deepcopy,
        lambda m: pickle.loads(pickle.dumps(m)),
        lambda m: _torch_save_load(m),
    ],
    ids=["deepcopy", "pickle", "torch.save"],
)
@pytest.mark.parametrize("spec", ["vanilla", "layernorm"])
def test_copies(roundtrip: Callable[[nn.Module], nn.Module], spec: str) -> None:
    model = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, spec=spec, zoneout=0.1).eval()
    again = roundtrip(model)
    assert again is not model and again.spec == model.spec and again.zoneout == model.zoneout
    x = torch.randn(T, B, I)
    assert_same_result(model(x), again(x), tol=0)
    if spec == "vanilla":  # torch's own module goes through the same round trip
        ref = nn.LSTM(I, H, 2, bidirectional=True)
        assert_same_result(roundtrip(ref)(x), ref(x), tol=0)


def _torch_save_load(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


# ---------------------------------------------------------------- float64 gradients
def test_float64_gradcheck_against_torch() -> None:
    ref, ours = pair(num_layers=2, bidirectional=True, proj_size=P)
    x = torch.randn(T, 2, I, dtype=torch.float64, requires_grad=True)
    g_ref = torch.autograd.grad(ref(x)[0].sum(), [x, *ref.parameters()])
    with kernels.use("reference"):
        g_ours = torch.autograd.grad(ours(x)[0].sum(), [x, *ours.parameters()])
    assert_same_result(list(g_ref), list(g_ours))
    with kernels.use("reference"):
        assert torch.autograd.gradcheck(lambda t: ours(t)[0], (x[:3, :1].detach().requires_grad_(),))


# ---------------------------------------------------------------- conversions never change the function
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"batch_first": True},
        {"num_layers": 2, "bidirectional": True},
        {"spec": lstmkit.CellSpec(gate_activation="hard_sigmoid")},
    ],
    ids=["time-major", "batch-first", "stacked-bidirectional", "hard-sigmoid"],
)
def test_keras_weights_round_trip_gives_the_same_function(kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, dtype=torch.float64, **kwargs).eval()
    again = lstmkit.LSTM.from_keras(model.to_keras_weights())
    assert (again.batch_first, again.bidirectional, again.spec) == (model.batch_first, model.bidirectional, model.spec)
    x = torch.randn(T, B, I, dtype=torch.float64)
    assert_same_result(model(x), again(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"zoneout": 0.5},
        {"zoneout": (0.0, 0.2)},
        {"recurrent_dropout": 0.3, "train": True},
        {"weight_drop": 0.3, "train": True},
    ],
    ids=str,
)
def test_conversions_refuse_what_they_would_drop(kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    training = kwargs.pop("train", False)
    model = lstmkit.LSTM(I, H, **kwargs).train(training)
    field = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"{field}="):
        model.to_torch()
    with pytest.raises(ValueError, match=f"{field}="):
        model.to_keras_weights()


def test_eval_mode_dropouts_convert_because_they_are_the_identity_there() -> None:
    torch.manual_seed(0)
    model = lstmkit.LSTM(I, H, recurrent_dropout=0.3, weight_drop=0.3, dtype=torch.float64).eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    ref = model.to_torch()
    assert isinstance(ref, nn.LSTM) and not ref.training
    assert_same_result(ref(x), model(x))


@pytest.mark.parametrize("spec", ["nfg", "cifg"])
def test_forget_bias_without_forget_rows_is_refused(spec: str) -> None:
    with pytest.raises(
        ValueError, match=f"forget_bias=5.0 needs a forget gate.*{'coupled' if spec == 'cifg' else 'no forget'}"
    ):
        lstmkit.LSTM(I, H, spec=spec, forget_bias=5.0)
    assert lstmkit.LSTM(I, H, spec="peephole", forget_bias=5.0).forget_bias == 5.0


def test_functional_lengths_are_checked() -> None:
    w = lstmkit.LayerWeights(torch.randn(4 * H, I), torch.randn(4 * H, H))
    x, h0 = torch.randn(T, 2, I), torch.zeros(2, H)
    for bad in ([T + 1, 2], [3, -1]):
        with pytest.raises(ValueError, match=rf"lengths must lie in \[0, T={T}\]"):
            lstmkit.lstm_layer(x, h0, h0, w, lstmkit.CellSpec(), lengths=torch.tensor(bad))
    with pytest.raises(TypeError, match="integer tensor"):
        lstmkit.lstm_layer(x, h0, h0, w, lstmkit.CellSpec(), lengths=torch.tensor([2.0, 3.0]))
