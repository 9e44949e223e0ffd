"""Initialisation of recurrent gate biases: torch's default, a constant forget bias, chrono.

Long time lags are first an initialisation problem. A forget gate that starts near 0.5 halves
the cell state every step, so nothing survives 100 steps before training has begun. Three
recipes, for :class:`lstmkit.LSTM`, :class:`lstmkit.LSTMCell` and torch's ``nn.LSTM``,
``nn.LSTMCell``, ``nn.GRU``, ``nn.GRUCell`` (same parameter layout):

* ``torch`` (:func:`torch_default_`): every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
* forget bias (:func:`forget_bias_`): b_f = constant (Gers, Schmidhuber & Cummins 2000;
  Jozefowicz, Zaremba & Sutskever 2015 use 1).
* chrono (:func:`chrono_`, Tallec & Ollivier 2018, "Can recurrent neural networks warp time?",
  Section 4)::

      b_f ~ log(U[1, T_max - 1])        b_i = -b_f

  so that at the start f = sigmoid(b_f) = 1 - 1/tau and i = 1 - f = 1/tau, with the time
  constants tau = 1 + exp(b_f) spread uniformly over [2, T_max]: each unit keeps its cell
  content for about tau steps, up to the longest dependency ``T_max`` the task may hold.

The cell sees one bias per gate row, ``b = bias_ih + bias_hh``. Every recipe here writes the
value it wants into ``bias_ih`` and sets the same rows of ``bias_hh`` to 0, so the bias is
written once, never counted twice. Rows of other gates, and all weights, are left as they were.

Where it lives: the biases are ordinary parameters, so a checkpoint's weights
(``checkpoint.safetensors``) hold them, and a run's ``config.json`` records ``init`` and
``t_max`` in its model section; a resumed run loads the weights and never draws them again
(changing ``init`` or ``t_max`` on resume is refused like any other model change).

Example::

    >>> import torch, lstmkit
    >>> lstm = lstmkit.LSTM(2, 8)
    >>> _ = chrono_(lstm, t_max=1000, generator=torch.Generator().manual_seed(0))
    >>> b_i, b_f = lstm.bias_ih_l0.detach()[:8], lstm.bias_ih_l0.detach()[8:16]
    >>> bool(torch.equal(b_i, -b_f)), float(lstm.bias_hh_l0.detach()[:16].abs().max())
    (True, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .spec import CellSpec

INITS = ("torch", "chrono", "irnn")
"""Names accepted by :func:`apply_init` (and the ``init=`` arguments built on it)."""

_GRU_ROWS = ("reset", "update", "new")  # torch.nn.GRU's gate blocks, in storage order


def check_init(init: str, t_max: float | None, allowed: tuple[str, ...] = INITS) -> None:
    """ValueError unless ``init`` is one of ``allowed`` and ``t_max`` fits it (chrono needs it)."""
    if init not in allowed:
        raise ValueError(f"init must be one of {allowed}; got {init!r}")
    if init == "chrono":
        check_t_max(t_max)
    elif t_max is not None:
        raise ValueError(f"t_max is chrono's longest dependency; it needs init='chrono', got init={init!r}")


def check_t_max(t_max: object) -> float:
    """``t_max`` as a float >= 2 (the range U[1, T_max - 1] must not be empty) or a clear error."""
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)):
        raise TypeError(f"t_max must be a number >= 2 (the longest dependency, in steps); got {t_max!r}")
    if not (math.isfinite(t_max) and t_max >= 2):
        raise ValueError(f"t_max must be a finite number >= 2 (the longest dependency, in steps); got {t_max}")
    return float(t_max)


def gate_rows(module: nn.Module) -> tuple[str, ...]:
    """Gate blocks of ``module``'s bias rows, in storage order (LSTM: a subset of i f g o; GRU: r z n)."""
    if isinstance(module, (nn.GRU, nn.GRUCell)):
        return _GRU_ROWS
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        return CellSpec().gates
    spec = getattr(module, "spec", None)
    if isinstance(spec, CellSpec):
        return spec.gates
    raise TypeError(
        "expected an lstmkit.LSTM / LSTMCell or a torch.nn.LSTM / LSTMCell / GRU / GRUCell; "
        f"got {type(module).__name__}"
    )


def bias_pairs(module: nn.Module) -> Iterator[tuple[Tensor, Tensor]]:
    """``(bias_ih, bias_hh)`` of every layer-direction (``_l{k}``, ``_l{k}_reverse`` or none)."""
    params = dict(module.named_parameters(recurse=False))
    found = False
    for name, b_ih in params.items():
        if name.startswith("bias_ih"):
            found = True
            yield b_ih, params["bias_hh" + name[len("bias_ih") :]]
    if not found:
        raise ValueError(f"{type(module).__name__} has no biases (bias=False); a bias initialisation needs them")


def _write(b_ih: Tensor, b_hh: Tensor, rows: tuple[str, ...], gate: str, value: Tensor | float) -> None:
    """``bias_ih[gate rows] = value`` and ``bias_hh[gate rows] = 0`` (call under no_grad)."""
    H = b_ih.shape[0] // len(rows)
    k = rows.index(gate) * H
    b_ih[k : k + H] = value
    b_hh[k : k + H] = 0.0


def torch_default_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """torch's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in
    registration order (layer-norm gains 1, shifts 0), whatever init the module was built with.

    With the same seed this gives ``torch.nn.LSTM``'s initial weights. Returns ``module``.
    """
    hidden = getattr(module, "hidden_size", 0)
    if not isinstance(hidden, int) or hidden <= 0:
        raise TypeError(f"torch_default_ needs a recurrent module with a hidden_size; got {type(module).__name__}")
    bound = 1.0 / math.sqrt(hidden)
    with torch.no_grad():
        for name, p in module.named_parameters(recurse=False):
            if name.startswith("ln_"):
                p.fill_(0.0 if "bias" in name else 1.0)
            else:
                p.uniform_(-bound, bound, generator=generator)
    return module


def forget_bias_(module: nn.Module, value: float) -> nn.Module:
    """Set the forget-gate bias of every layer-direction to ``value``: b_f = value (written once).

    Needs a forget gate (not NFG; not CIFG, whose forget gate is 1 - i: use ``chrono_`` or set
    the input rows). Returns ``module``.

    Example::

        >>> import lstmkit
        >>> float(forget_bias_(lstmkit.LSTM(3, 4), 1.0).bias_ih_l0.detach()[4:8].min())
        1.0
    """
    rows = gate_rows(module)
    if "forget" not in rows:
        raise ValueError(f"forget_bias_ needs a forget gate; {type(module).__name__} computes only {rows}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"the forget bias must be a finite number; got {value!r}")
    with torch.no_grad():
        for b_ih, b_hh in bias_pairs(module):
            _write(b_ih, b_hh, rows, "forget", float(value))
    return module


def chrono_(module: nn.Module, t_max: float, generator: torch.Generator | None = None) -> nn.Module:
    r"""Chrono initialisation (Tallec & Ollivier 2018): :math:`b_f \sim \log U[1, T_{max}-1]`, :math:`b_i = -b_f`.

    One draw per unit and layer-direction (H values each), from ``generator`` (default: torch's
    global generator). The forget and input rows of ``bias_ih`` get the values, the same rows of
    ``bias_hh`` get 0; every other row and every weight is left as it was.

    Per cell: the standard cell and every variant with both gates (peephole, layernorm, FGR,
    NOG, NIAF, NOAF, cell clip) as above; CIFG (f = 1 - i) gets b_i = -b_f on its input rows, which
    gives exactly the chrono f and i; NIG (i = 1) and NFG (f = 1) lack a gate chrono sets and are
    refused. With ``gate_activation="hard_sigmoid"`` the biases are chosen to give the same
    initial gates: b_f = 3 - 6/tau. ``torch.nn.GRU`` / ``GRUCell`` compute
    h' = (1 - z) * n + z * h, so their update gate z takes the forget gate's role: b_z = log(tau - 1),
    tau ~ U[2, T_max] (the reset and candidate rows keep their values).

    Args:
        module: the recurrent module (see :func:`gate_rows` for the kinds accepted).
        t_max: the longest dependency expected, in steps (>= 2); the task's sequence length.
        generator: source of the uniform draws.

    Returns ``module``. Raises ValueError naming the missing gate or the bad ``t_max``.
    """
    t_max = check_t_max(t_max)
    rows = gate_rows(module)
    spec = getattr(module, "spec", None)
    hard = isinstance(spec, CellSpec) and spec.gate_activation == "hard_sigmoid"
    if rows == _GRU_ROWS:
        needed: tuple[str, ...] = ("update",)
    elif "forget" in rows:
        needed = ("input", "forget")
    elif isinstance(spec, CellSpec) and spec.coupled:
        needed = ("input",)
    else:
        needed = ("input", "forget")
    missing = [g for g in needed if g not in rows]
    if missing:
        raise ValueError(
            f"chrono_ sets b_f ~ log U[1, T_max - 1] and b_i = -b_f, so it needs an input and a forget gate; "
            f"this cell computes {rows} (no {' and no '.join(missing)} gate)"
        )

    def forget_values(H: int, like: Tensor) -> Tensor:
        u = torch.rand(H, generator=generator, dtype=torch.float64)  # (H,)
        tau = 2.0 + u * (t_max - 2.0)  # U[2, T_max]: tau - 1 ~ U[1, T_max - 1]
        b = 3.0 - 6.0 / tau if hard else torch.log(tau - 1.0)  # sigmoid(b) = 1 - 1/tau
        return b.to(device=like.device, dtype=like.dtype)

    with torch.no_grad():
        for b_ih, b_hh in bias_pairs(module):
            b_f = forget_values(b_ih.shape[0] // len(rows), b_ih)  # (H,)
            targets = {"update": b_f} if rows == _GRU_ROWS else {"forget": b_f, "input": -b_f}
            for gate, value in targets.items():
                if gate in rows:
                    _write(b_ih, b_hh, rows, gate, value)
    return module


def irnn_(module: nn.Module) -> nn.Module:
    """Le, Jaitly & Hinton (2015) for a ReLU ``torch.nn.RNN``: recurrent weights = identity, biases 0.

    Input weights keep their values. The module should use ``nonlinearity="relu"`` (IRNN).
    """
    if not isinstance(module, nn.RNN):
        raise TypeError(f"irnn_ initialises a torch.nn.RNN; got {type(module).__name__}")
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("weight_hh"):
                p.copy_(torch.eye(p.shape[0], p.shape[1], dtype=p.dtype, device=p.device))
            elif name.startswith("bias"):
                p.zero_()
    return module


def module_init(init: str, t_max: float | None, forget_bias: float, bias: bool) -> tuple[str, float | None]:
    """Validate the ``init``/``t_max`` arguments of an lstmkit module; returns them normalised."""
    check_init(init, t_max, ("torch", "chrono"))
    if init == "chrono" and forget_bias:
        raise ValueError(f"init='chrono' sets the forget bias itself; got forget_bias={forget_bias} as well")
    if init == "chrono" and not bias:
        raise ValueError("init='chrono' writes the gate biases; it needs bias=True")
    return init, None if t_max is None else float(t_max)


def apply_init(module: nn.Module, init: str, t_max: float | None = None) -> nn.Module:
    """Apply the named recipe: "torch" (leave torch's draws), "chrono" (needs ``t_max``), "irnn"."""
    check_init(init, t_max)
    if init == "chrono":
        chrono_(module, t_max)  # type: ignore[arg-type]
    elif init == "irnn":
        irnn_(module)
    return module


__all__ = [
    "INITS",
    "apply_init",
    "check_init",
    "chrono_",
    "forget_bias_",
    "irnn_",
    "module_init",
    "torch_default_",
]
