"""lstmkit's compiled CPU kernel: the whole recurrence of one layer-direction in C++.

Same contract as :func:`lstmkit.functional.lstm_layer` (arguments, semantics, :class:`LayerResult`),
for every :class:`~lstmkit.CellSpec` and projection, differentiable w.r.t. ``x``, ``h0``, ``c0`` and
every tensor of :class:`~lstmkit.LayerWeights`. The work is split as DESIGN.md §2 asks:

- input projection of all T steps in one GEMM (``zx = W_ih x + b_ih + b_hh``; layer-normed first
  under ``layer_norm``), here in Python so autograd gives ``dW_ih = dZ^T X`` in one GEMM too
  (oneDNN GEMMs on CPU float32, see :mod:`.projection`);
- the recurrence (``csrc/lstm.cpp``): per step one GEMM ``h_{t-1} W_hh^T`` (lstmkit's AVX-512
  panel GEMM, oneDNN or MKL, chosen per size and thread count: ``csrc/lstm.cpp``'s GEMMs), then
  all gate and state maths fused in one pass over (B, G*H); backward (BPTT) stores gate
  activations and states, and computes ``dW_hh`` with one GEMM over all steps. Without a gradient
  to compute, the forward keeps no per-step tensors for a backward (``infer``).

The extension is built once per environment on first use (needs a C++ compiler; ``ninja`` is a
dependency) and imported directly afterwards, see :mod:`.build` (``lstmkit build-kernel`` builds ahead).
If the build fails, :func:`is_available` warns once with the reason and returns False, and
lstmkit runs the reference loop instead.

Example::

    >>> import torch
    >>> from lstmkit import CellSpec, LayerWeights
    >>> from lstmkit.kernels import compiled
    >>> w = LayerWeights(torch.randn(16, 3), torch.randn(16, 4), weight_ch=torch.randn(12))  # H = 4, I = 3
    >>> h0 = c0 = torch.zeros(2, 4)
    >>> res = compiled.lstm_layer(torch.randn(5, 2, 3), h0, c0, w, CellSpec(peephole=True), record=True)
    >>> res.gates["forget"].shape
    torch.Size([5, 2, 4])
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...functional import (
    LN_EPS,
    LayerResult,
    LayerWeights,
    check_layer_shapes,
    check_lengths,
    last_gates,
    reverse_padded,
    with_fgr_entry,
)
from ...functional import lstm_layer as reference_layer
from ...spec import CellSpec
from . import build, ops
from .projection import linear as _project

ACTIVATION_CODES = {"sigmoid": 0, "hard_sigmoid": 1, "tanh": 2, "identity": 3, "relu": 4, "softsign": 5}
"""Activation name -> code understood by ``csrc/activations.h``."""

_lock = threading.Lock()
_state: dict[str, Any] = {"ext": None, "error": None}


def _build() -> Any:
    return build.load()  # once per environment, torch, sources and flags: see build.py


def extension() -> Any:
    """The built extension module (building it on first call); raises RuntimeError if it cannot be built."""
    if not is_available():
        raise RuntimeError(f"lstmkit's compiled kernel is not available: {_state['error']}")
    return _state["ext"]


@torch.compiler.assume_constant_result  # while a graph is captured: run once, eagerly, as a constant
def is_available() -> bool:
    """True when the C++ extension is built (or builds now); on failure warns once and returns False.

    Example::

        >>> from lstmkit.kernels import compiled
        >>> compiled.is_available()
        True
    """
    if _state["ext"] is not None:
        return True
    if _state["error"] is not None:
        return False
    with _lock:
        if _state["ext"] is None and _state["error"] is None:
            try:
                _state["ext"] = _build()
            except Exception as exc:  # any build failure: compiler, ninja, headers, loader
                reason = " ".join(str(exc).split())[:500] or type(exc).__name__
                _state["error"] = reason
                warnings.warn(
                    f"lstmkit: the compiled LSTM kernel could not be built ({reason}); "
                    "falling back to the reference loop",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _state["ext"] is not None


@functools.lru_cache(maxsize=256)
def _config_cached(spec: CellSpec, H: int) -> tuple[int, ...]:
    return tuple(_config(spec, H))


def _config(spec: CellSpec, H: int) -> list[int]:
    """The integer description of ``spec`` read by ``csrc/lstm.cpp``: offsets of the i, f, g, o
    blocks in z (-1 when absent), then the flags and activation codes."""
    offsets = {name: k * H for k, name in enumerate(spec.gates)}
    return [
        offsets.get("input", -1),
        offsets.get("forget", -1),
        offsets["candidate"],
        offsets.get("output", -1),
        int(spec.coupled),
        ACTIVATION_CODES[spec.gate_activation],
        ACTIVATION_CODES[spec.candidate_activation],
        ACTIVATION_CODES[spec.cell_activation],
        int(spec.peephole),
        int(spec.full_gate_recurrence),
        int(spec.layer_norm),
    ]


class _Recurrence(torch.autograd.Function):
    """zx (T, B, G*H) and the recurrent parameters -> hs (T+1, B, R), cs (T+1, B, H), acts (T, B, G*H).

    ``hs[t]``/``cs[t]`` are the carried states after step t (``hs[0] = h0``), ``acts`` the gate
    activations in storage order. Forward and backward are ``csrc/lstm.cpp``.

    A backward run with ``create_graph=True`` (gradient penalties, MAML, Hessian-vector products)
    must itself be differentiable, which the C++ BPTT is not: it then recomputes the recurrence in
    standard ops (the reference step) from ``rebuild_zx()``, zx built again from the layer's input
    (held anyway by the projection's backward, so the fast path keeps no extra (T, B, G*H) tensor),
    and returns that graph's vector-Jacobian product, connected to every input.
    """

    @staticmethod
    def forward(
        ctx: Any,
        options: tuple[list[int], float, float, float],
        rebuild_zx: Callable[[], Tensor],
        *tensors: Tensor | None,
    ) -> Any:
        # tensors: zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, rec_mask, zc_mask, zh_mask, lengths
        out = extension().forward(*tensors, *options)
        ctx.options, ctx.rebuild_zx = options, rebuild_zx
        ctx.set_materialize_grads(False)
        # every tensor but zx: the C++ outputs and the weights for BPTT; h0, c0, ln_cb (small) last
        ctx.save_for_backward(*out, *tensors[3:9], *tensors[10:], tensors[1], tensors[2], tensors[9])
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx: Any, d_hs: Tensor | None, d_cs: Tensor | None, d_acts: Tensor | None) -> tuple[Any, ...]:
        cfg, clip, zc, zh = ctx.options
        saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            weights, masks, (h0, c0, ln_cb) = saved[11:17], saved[17:21], saved[21:]
            inputs = (ctx.rebuild_zx(), h0, c0, *weights, ln_cb)
            grads = _recomputed_vjp(inputs, masks, ctx.options, (d_hs, d_cs, d_acts), ctx.needs_input_grad[2:12])
            return (None, None, *grads, None, None, None, None)
        grads = extension().backward(d_hs, d_cs, d_acts, list(saved[:11]), *saved[11:21], cfg, clip, zc, zh)
        # d zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb; nothing for options, masks and lengths
        return (None, None, *grads, None, None, None, None)


def _recomputed_vjp(
    inputs: tuple[Tensor | None, ...],
    masks: tuple[Tensor | None, ...],
    options: tuple[list[int], float, float, float],
    grad_outputs: tuple[Tensor | None, ...],
    needed: tuple[bool, ...],
) -> list[Tensor | None]:
    """The gradients of zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb (``inputs``) as a
    graph: the recurrence recomputed step by step in standard ops, then its vector-Jacobian product
    with ``create_graph=True``, so the result can be differentiated again."""
    from .lowering import recurrence_steps

    wanted = [k for k, t in enumerate(inputs) if t is not None and needed[k] and t.requires_grad]
    grads: list[Tensor | None] = [None] * len(inputs)
    if not wanted or all(g is None for g in grad_outputs):
        return grads
    with torch.enable_grad():
        run: Callable[..., tuple[Tensor, Tensor, Tensor]] = recurrence_steps  # (op arguments, in op order)
        outs = run(*inputs, *masks, *options)
        pairs = [(o, g) for o, g in zip(outs, grad_outputs, strict=True) if g is not None]
        found = torch.autograd.grad(
            [o for o, _ in pairs],
            [t for k in wanted if (t := inputs[k]) is not None],
            [g for _, g in pairs],
            create_graph=True,
            allow_unused=True,
        )
    for k, g in zip(wanted, found, strict=True):
        grads[k] = g
    return grads


def _zx_rebuilder(
    x: Tensor, w: LayerWeights, spec: CellSpec, bias: Tensor | None, g0: Tensor | None
) -> Callable[[], Tensor]:
    """zx as :func:`lstm_layer` builds it, in plain differentiable ops, for :class:`_Recurrence`'s
    backward with ``create_graph=True``; x (T, B, I) and the weights it holds are those the
    projection's own backward keeps."""

    def rebuild() -> Tensor:
        GH = w.weight_ih.shape[0]
        if spec.layer_norm:
            zx = F.layer_norm(F.linear(x, w.weight_ih), (GH,), w.ln_ih_weight, bias, LN_EPS)
        else:
            zx = F.linear(x, w.weight_ih, bias)
        return with_fgr_entry(zx, g0, w, spec)  # (T, B, G*H)

    return rebuild


def _mask(name: str, value: Tensor | float | None, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """A per-step mask as a contiguous tensor of the compute dtype of ``like`` (broadcast to ``shape``):
    float32 for bfloat16 / float16, so that a scale such as 1 / (1 - p) is not rounded."""
    if not isinstance(value, Tensor):
        return None
    try:
        return value.to(dtype=compute_dtype(like.dtype)).expand(shape).contiguous()
    except RuntimeError:
        raise ValueError(f"{name} must broadcast to {shape}; got {tuple(value.shape)}") from None


DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
"""The dtypes the C++ kernel takes; bfloat16 / float16 compute in float32 (:func:`low_precision_tolerance`)."""

LOW_PRECISION_TOLERANCE = {torch.bfloat16: (0.02, 0.15), torch.float16: (0.004, 0.02)}
"""Stated accuracy of a bfloat16 / float16 call, (without, with layer norm): see :func:`low_precision_tolerance`."""


def low_precision_tolerance(dtype: torch.dtype, spec: CellSpec) -> float:
    """The stated accuracy of a ``dtype`` call of ``spec`` (bfloat16 or float16) on this kernel.

    Every output, final state, recorded gate and gradient lies within ``tol * max|ref|`` of ``ref``, the
    float32 reference loop on the same (rounded) inputs and weights; tests/test_kernel_bf16.py holds
    every preset to it. Layer norm scales the rounding of a small-spread pre-activation up (a bfloat16
    reference loop is 4x further off there), hence its looser bound.

    Example::

        >>> import torch
        >>> low_precision_tolerance(torch.bfloat16, CellSpec())
        0.02
    """
    plain, normed = LOW_PRECISION_TOLERANCE[dtype]
    return normed if spec.layer_norm else plain


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Cell state, gates and sums of the kernel: float32 for bfloat16 / float16 calls, else ``dtype``.

    In a bfloat16 / float16 call, the input projection and the per-step GEMMs read the weights in that
    dtype (bfloat16 products with float32 sums on CPUs with AVX512-BF16, float32 products elsewhere);
    every other operation runs in float32, and output, h_n, c_n, the recorded gates and the gradients
    come back in the call's dtype.
    """
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def unsupported_reason(x: Tensor, h0: Tensor, c0: Tensor, w: LayerWeights) -> str | None:
    """Why the C++ kernel cannot run these tensors (None when it can): it takes CPU tensors of one
    dtype among float32, float64, bfloat16 and float16, and a sequence of at least one step. Under
    ``torch.autocast("cpu")`` the dtypes are judged as :func:`lstm_layer` casts them."""
    tensors = [t for t in (x, h0, c0, *w) if t is not None]
    dtype = x.dtype
    if (
        dtype in DTYPES
        and x.dim() == 3
        and x.shape[0] > 0
        and all(t.dtype is dtype and t.device.type == "cpu" for t in tensors)
    ):
        return None  # the common case, decided without building a message
    autocast = _autocast_dtype(x)
    cast = (lambda d: _autocast_to(d, autocast)) if autocast is not None else (lambda d: d)
    dtype = cast(x.dtype)
    if dtype not in DTYPES:
        return f"it takes float32, float64, bfloat16 or float16; got {dtype}"
    if x.dim() != 3 or x.shape[0] == 0:
        return f"it needs x of shape (T, B, I) with T > 0; got {tuple(x.shape)}"
    kinds = [(cast(t.dtype), t.device) for t in tensors]
    others = sorted({f"{d} on {device}" for d, device in kinds if device.type != "cpu" or d != dtype})
    if others:
        return f"it needs every tensor on the CPU in {dtype}; got {', '.join(others)}"
    return None


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype of an enclosing ``torch.autocast("cpu", dtype=...)`` for a CPU call (None without one)."""
    if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    return torch.get_autocast_dtype("cpu")


def _autocast_to(dtype: torch.dtype, autocast: torch.dtype) -> torch.dtype:
    """The dtype autocast gives an operator's argument of ``dtype``: ``autocast`` for floating dtypes but float64."""
    return autocast if dtype.is_floating_point and dtype is not torch.float64 else dtype


def _autocast_cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` as autocast casts an operator's arguments (see :func:`_autocast_to`)."""
    return t if _autocast_to(t.dtype, dtype) == t.dtype else t.to(dtype)


def _fast_path_ok(x: Tensor, h0: Tensor, c0: Tensor, w: LayerWeights) -> bool:
    """True when the C++ kernel handles these tensors and the batch is not empty."""
    return unsupported_reason(x, h0, c0, w) is None and x.shape[1] > 0


def lstm_layer(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    recurrent_mask: Tensor | None = None,
    zoneout_cell: Tensor | float | None = None,
    zoneout_hidden: Tensor | float | None = None,
    record: bool = False,
    g0: Tensor | None = None,
) -> LayerResult:
    """One layer-direction on the compiled kernel; arguments and result as :func:`lstmkit.functional.lstm_layer`.

    Per step (default spec; every :class:`CellSpec` field and a projection are supported)::

        z_t = W_ih x_t + b_ih + b_hh + W_hh (h_{t-1} * recurrent_mask)      (B, G*H)
        c_t = sigmoid(z_f) * c_{t-1} + sigmoid(z_i) * tanh(z_g)            (B, H)
        h_t = sigmoid(z_o) * tanh(c_t)                                      (B, R)

    then zoneout ``c_t = k c_{t-1} + (1 - k) c_t`` and padding (steps past ``lengths`` keep the state,
    output zeros). Shapes: x (T, B, I), h0 (B, R), c0 (B, H); returns output (T, B, R), h_n, c_n and,
    with ``record``, the gates dict of the reference (each (T, B, ·), zeros at padded steps).

    bfloat16 / float16 calls keep the cell state, gates and sums in float32 (:func:`compute_dtype`);
    under ``torch.autocast("cpu", dtype=d)`` every float32 tensor of the layer is taken in ``d`` first,
    so output, h_n and c_n come back in ``d``, as from ``torch.nn.LSTM`` under autocast.

    Calls the reference loop instead when the C++ kernel cannot run them: the extension is not
    built, tensors on another device or of a dtype other than float32/float64/bfloat16/float16,
    mixed dtypes, or an empty sequence or batch.

    Example::

        >>> import torch
        >>> from lstmkit import CellSpec, LayerWeights
        >>> w = LayerWeights(torch.randn(16, 3), torch.randn(16, 4))  # G*H = 16, I = 3, H = 4
        >>> res = lstm_layer(torch.randn(5, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4), w, CellSpec())
        >>> res.output.shape, res.h_n.shape
        (torch.Size([5, 2, 4]), torch.Size([2, 4]))
    """
    kwargs: dict[str, Any] = {
        "lengths": lengths,
        "reverse": reverse,
        "recurrent_mask": recurrent_mask,
        "zoneout_cell": zoneout_cell,
        "zoneout_hidden": zoneout_hidden,
        "record": record,
        "g0": g0,
    }
    autocast = _autocast_dtype(x)
    if autocast is not None:  # nn.LSTM's rule: every float tensor of the layer in the autocast dtype
        x, h0, c0 = (_autocast_cast(t, autocast) for t in (x, h0, c0))
        g0 = None if g0 is None else _autocast_cast(g0, autocast)
        w = w._replace(**{k: _autocast_cast(t, autocast) for k, t in w._asdict().items() if t is not None})
        with torch.autocast("cpu", enabled=False):
            return lstm_layer(x, h0, c0, w, spec, **{**kwargs, "g0": g0})
    if not (_fast_path_ok(x, h0, c0, w) and is_available()):
        return reference_layer(x, h0, c0, w, spec, **kwargs)

    T, B = x.shape[0], x.shape[1]
    H, R, G = c0.shape[-1], h0.shape[-1], spec.num_gates
    check_layer_shapes(x, h0, c0, w, spec, g0)
    check_lengths(lengths, T, B)
    if lengths is not None:
        lengths = lengths.to(device="cpu", dtype=torch.int64)

    if reverse:
        x = reverse_padded(x, lengths)
        if isinstance(zoneout_cell, Tensor):
            zoneout_cell = reverse_padded(zoneout_cell.expand(T, B, H), lengths)
        if isinstance(zoneout_hidden, Tensor):
            zoneout_hidden = reverse_padded(zoneout_hidden.expand(T, B, R), lengths)
    zc_mask = _mask("zoneout_cell", zoneout_cell, (T, B, H), x)
    zh_mask = _mask("zoneout_hidden", zoneout_hidden, (T, B, R), x)
    rec_mask = _mask("recurrent_mask", recurrent_mask, (B, R), x)
    zc = -1.0 if zoneout_cell is None or isinstance(zoneout_cell, Tensor) else float(zoneout_cell)
    zh = -1.0 if zoneout_hidden is None or isinstance(zoneout_hidden, Tensor) else float(zoneout_hidden)

    bias = w.bias_ih + w.bias_hh if (w.bias_ih is not None and w.bias_hh is not None) else None
    if spec.layer_norm:
        zx = F.layer_norm(_project(x, w.weight_ih), (G * H,), w.ln_ih_weight, bias, LN_EPS)  # (T, B, G*H)
    else:
        zx = _project(x, w.weight_ih, bias)  # (T, B, G*H), oneDNN GEMMs on CPU float32
    zx = with_fgr_entry(zx, g0, w, spec)  # carried gates of full_gate_recurrence enter the first step
    clip = float(spec.cell_clip) if spec.cell_clip is not None else -1.0
    options = (list(_config_cached(spec, H)), clip, zc, zh)
    # eager: an autograd.Function that keeps the C++ forward's saved tensors for BPTT; while a graph
    # is captured (torch.compile, torch.export): the custom op, one node with T symbolic
    capturing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    tensors = (
        zx,
        h0,
        c0,
        w.weight_hh,
        w.weight_hr,
        w.weight_ch if spec.peephole else None,
        w.weight_gg if spec.full_gate_recurrence else None,
        w.ln_hh_weight if spec.layer_norm else None,
        w.ln_cell_weight if spec.layer_norm else None,
        w.ln_cell_bias if spec.layer_norm else None,
        rec_mask,
        zc_mask,
        zh_mask,
        lengths,
    )
    if capturing:
        hs, cs, acts = ops.apply(options, *tensors)
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        hs, cs, acts = _Recurrence.apply(options, _zx_rebuilder(x, w, spec, bias, g0), *tensors)
    else:  # no backward to come: nothing is kept for one (memory flat in T but for the output)
        # full gate recurrence reads its carried gates from every step's acts
        hs, cs, acts = extension().infer(*tensors, *options, record or spec.full_gate_recurrence)

    valid = None
    if lengths is not None:
        steps = torch.arange(T).unsqueeze(1)
        valid = (steps < lengths.unsqueeze(0)).unsqueeze(-1).to(x.dtype)  # (T, B, 1)
    output = hs[1:] if valid is None else hs[1:] * valid
    gates = _gates(spec, acts, cs, output if valid is not None else hs[1:], H, valid) if record else None
    if gates is not None and acts.dtype != x.dtype:  # bfloat16 / float16: gates in x's dtype, the cell in c0's
        gates = {k: v.to(c0.dtype if k == "cell" else x.dtype) for k, v in gates.items()}
    if reverse:
        output = reverse_padded(output, lengths)
        if gates is not None:
            gates = {k: reverse_padded(v, lengths) for k, v in gates.items()}
    c_n = cs[T] if cs.shape[0] == T + 1 else cs[T % 2]  # inference without recording keeps two steps of c
    c_n = c_n.to(c0.dtype)  # float32 in a bfloat16 / float16 call
    g_n = last_gates(acts, spec, H, lengths, g0).to(x.dtype) if spec.full_gate_recurrence else None
    return LayerResult(output, hs[T], c_n, gates, g_n)


def _gates(spec: CellSpec, acts: Tensor, cs: Tensor, hidden: Tensor, H: int, valid: Tensor | None) -> dict[str, Tensor]:
    """The recorded gates in :class:`lstmkit.functional.CellGates` order, zero at padded steps."""
    block = {name: acts[..., k * H : (k + 1) * H] for k, name in enumerate(spec.gates)}
    if spec.coupled:
        block["forget"] = 1.0 - block["input"]
    out: dict[str, Tensor] = {name: block[name] for name in ("input", "forget", "candidate", "output") if name in block}
    out["cell"] = cs[1:]
    if valid is not None:
        out = {k: v * valid for k, v in out.items()}
    out["hidden"] = hidden  # already masked
    return out
