"""The models being timed, each behind one callable that runs a forward or a training step.

Every contender gets the same (T, B, I) input and the same sizes; "training" means
``loss = output.sum(); loss.backward()`` in training mode, "forward" runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.spec import CellSpec


@dataclass(frozen=True)
class Contender:
    """A named model builder: ``build(I, H, layers, bidirectional)`` -> runner(x, train) -> output."""

    name: str  # label in the tables
    build: Callable[[int, int, int, bool], Callable[[Tensor, bool], Tensor]]
    single_layer_only: bool = False  # hand-written loops cover one layer, one direction


def _module_runner(
    model: nn.Module, train_mode_forward: bool = False, **call: object
) -> Callable[[Tensor, bool], Tensor]:
    def run(x: Tensor, train: bool) -> Tensor:
        model.train(train or train_mode_forward)
        out = model(x, **call)
        return out[0]

    return run


def torch_lstm(I: int, H: int, L: int, bi: bool) -> Callable[[Tensor, bool], Tensor]:
    """``torch.nn.LSTM(I, H, L, bidirectional=bi)``, the baseline of every ratio."""
    return _module_runner(nn.LSTM(I, H, L, bidirectional=bi))


def lstmkit_lstm(
    spec: str | CellSpec | None = None, gates: bool = False, per_step: dict[str, Any] | None = None
) -> Callable[[int, int, int, bool], Callable[[Tensor, bool], Tensor]]:
    """A builder of ``lstmkit.LSTM`` with this spec, optionally recording gates or with per-step regularisers."""

    def build(I: int, H: int, L: int, bi: bool) -> Callable[[Tensor, bool], Tensor]:
        model = lstmkit.LSTM(I, H, L, bidirectional=bi, spec=spec, **(per_step or {}))
        call = {"return_gates": True} if gates else {}
        # zoneout and recurrent dropout are timed in training mode for the forward pass too
        return _module_runner(model, train_mode_forward=bool(per_step), **call)

    return build


def _layer_loop(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, w_ch: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """TorchScript LSTM layer: one GEMM for the input projection, then a scripted step loop.
    With a non-empty ``w_ch`` (3H: i, f, o) the gates look at the cell (Gers et al. 2002)."""
    x_proj = torch.matmul(x, w_ih.t()) + bias  # (T, B, 4H)
    w_hh_t = w_hh.t()
    peep = w_ch.numel() > 0
    H = h.size(1)
    p_i, p_f, p_o = w_ch[:H], w_ch[H : 2 * H], w_ch[2 * H :]
    hs: list[Tensor] = []
    for t in range(x.size(0)):
        z = torch.addmm(x_proj[t], h, w_hh_t)
        zi, zf, zg, zo = z.chunk(4, 1)
        if peep:
            zi = zi + p_i * c
            zf = zf + p_f * c
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
        if peep:
            zo = zo + p_o * c
        h = torch.sigmoid(zo) * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs), h, c


class ScriptedLSTM(nn.Module):
    """One layer whose time loop is TorchScript (the style of PyTorch's fastrnns benchmarks)."""

    def __init__(self, I: int, H: int, peephole: bool = False) -> None:
        super().__init__()
        ref = nn.LSTM(I, H)
        self.w_ih = nn.Parameter(ref.get_parameter("weight_ih_l0").detach().clone())
        self.w_hh = nn.Parameter(ref.get_parameter("weight_hh_l0").detach().clone())
        self.bias = nn.Parameter((ref.get_parameter("bias_ih_l0") + ref.get_parameter("bias_hh_l0")).detach().clone())
        self.w_ch = nn.Parameter(0.1 * torch.randn(3 * H) if peephole else torch.zeros(0))
        self.hidden_size = H

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = x.new_zeros(x.shape[1], self.hidden_size)
        return _scripted()(x, h, h, self.w_ih, self.w_hh, self.bias, self.w_ch)


_SCRIPTED: list[Callable[..., tuple[Tensor, Tensor, Tensor]]] = []


def _scripted() -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """``torch.jit.script(_layer_loop)``, compiled once on first use (TorchScript is deprecated
    in recent torch, but it is the contender being measured)."""
    if not _SCRIPTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _SCRIPTED.append(torch.jit.script(_layer_loop))
    return _SCRIPTED[0]


def scripted(peephole: bool = False) -> Callable[[int, int, int, bool], Callable[[Tensor, bool], Tensor]]:
    """A builder of the TorchScript layer (one layer, one direction: L and bi are ignored)."""

    def build(I: int, H: int, L: int, bi: bool) -> Callable[[Tensor, bool], Tensor]:
        return _module_runner(ScriptedLSTM(I, H, peephole))

    return build


class SeedLoop(nn.Module):
    """The founding document's four-Linear cell stepped in a Python loop."""

    def __init__(self, I: int, H: int) -> None:
        super().__init__()
        self.cell = lstmkit.SeedLSTMCell(I, H)
        self.hidden_size = H

    def forward(self, x: Tensor) -> tuple[Tensor]:
        h = c = x.new_zeros(x.shape[1], self.hidden_size)
        outs = []
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
            outs.append(h)
        return (torch.stack(outs),)


def seed_loop(I: int, H: int, L: int, bi: bool) -> Callable[[Tensor, bool], Tensor]:
    """The four-Linear cell in a Python loop (one layer, one direction: L and bi are ignored)."""
    return _module_runner(SeedLoop(I, H))


BASELINE = "torch.nn.LSTM"
ZONEOUT = 0.1
RECURRENT_DROPOUT = 0.25
SCRIPTED_PLAIN = "TorchScript loop"
SCRIPTED_PEEPHOLE = "TorchScript peephole loop"

CONTENDERS: tuple[Contender, ...] = (
    Contender(BASELINE, torch_lstm),
    Contender("lstmkit plain", lstmkit_lstm()),
    Contender("lstmkit return_gates", lstmkit_lstm(gates=True)),
    Contender("lstmkit peephole", lstmkit_lstm("peephole")),
    Contender("lstmkit cifg", lstmkit_lstm("cifg")),
    Contender("lstmkit nig", lstmkit_lstm("nig")),
    Contender("lstmkit nfg", lstmkit_lstm("nfg")),
    Contender("lstmkit nog", lstmkit_lstm("nog")),
    Contender("lstmkit hard_sigmoid", lstmkit_lstm(CellSpec(gate_activation="hard_sigmoid"))),
    Contender("lstmkit cell_clip", lstmkit_lstm(CellSpec(cell_clip=3.0))),
    Contender("lstmkit layernorm", lstmkit_lstm("layernorm")),
    Contender("lstmkit zoneout", lstmkit_lstm(per_step={"zoneout": ZONEOUT})),
    Contender("lstmkit recurrent_dropout", lstmkit_lstm(per_step={"recurrent_dropout": RECURRENT_DROPOUT})),
    Contender("lstmkit fgr", lstmkit_lstm("fgr")),
    Contender("seed cell, Python loop", seed_loop, single_layer_only=True),
    Contender(SCRIPTED_PLAIN, scripted(), single_layer_only=True),
    Contender(SCRIPTED_PEEPHOLE, scripted(peephole=True), single_layer_only=True),
)
"""Everything timed on the main grid, in table order."""

NATIVE_SPEED = (
    "lstmkit return_gates",
    "lstmkit peephole",
    "lstmkit cifg",
    "lstmkit nig",
    "lstmkit nfg",
    "lstmkit nog",
    "lstmkit hard_sigmoid",
    "lstmkit cell_clip",
)
"""Contenders that should cost about what nn.LSTM costs (the issue's first group of targets)."""
REGULARISED = ("lstmkit layernorm", "lstmkit zoneout", "lstmkit recurrent_dropout", "lstmkit fgr")
"""Contenders with extra work per step (the issue's second group)."""
SCRIPTED_RIVAL = {"lstmkit return_gates": SCRIPTED_PLAIN, "lstmkit peephole": SCRIPTED_PEEPHOLE}
"""lstmkit contender -> the TorchScript loop of the same variant it must beat by 3x."""


LOW_PRECISION = tuple(c.name for c in CONTENDERS if c.name.startswith("lstmkit "))
"""Contenders timed in bfloat16 too (against nn.LSTM in bfloat16): every lstmkit spec."""
LOW_PRECISION_GOAL = 1.3
"""Largest bfloat16 training ratio to nn.LSTM in bfloat16 for every lstmkit spec at B >= 16."""


def build_in(
    contender: Contender, dtype: torch.dtype, I: int, H: int, L: int, bi: bool
) -> Callable[[Tensor, bool], Tensor]:
    """``contender.build(I, H, L, bi)`` with its parameters created in ``dtype`` (e.g. bfloat16)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return contender.build(I, H, L, bi)
    finally:
        torch.set_default_dtype(before)


def goals(name: str, B: int) -> tuple[float | None, float | None]:
    """(max forward ratio, max training ratio) to nn.LSTM for a contender at batch B; None: no goal."""
    if name in NATIVE_SPEED:
        return (1.1, 1.1) if B == 1 else (1.15, 1.25)
    if name in REGULARISED:
        return None, 1.5
    return None, None


def by_name(names: list[str]) -> list[Contender]:
    """The contenders with these names, in table order."""
    return [c for c in CONTENDERS if c.name in names]


def lstm_flops(T: int, B: int, I: int, H: int, layers: int = 1, directions: int = 1) -> float:
    """Multiply-add FLOPs (2 per MAC) of the GEMMs of a forward pass: 2 T B 4H (I + H) per layer-direction."""
    total = 0.0
    for k in range(layers):
        inp = I if k == 0 else directions * H
        total += directions * 2.0 * T * B * 4 * H * (inp + H)
    return total
