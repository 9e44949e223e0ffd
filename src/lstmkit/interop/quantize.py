"""int8 models for CPU inference: :func:`quantize` and the int8 modules it puts in place.

Weights are int8, symmetric, one scale per output channel (row): ``W ~ s_w[:, None] * Q`` with
``Q = round(W / s_w)`` in [-127, 127] and ``s_w = max|W_row| / 127``. Activations are quantised
dynamically, one scale per row of each input at each call (``s_x = max|x_row| / 127``), and the
product runs in int8 with int32 accumulation (``torch._int_mm``)::

    y = (Q_x Q_w^T) * s_x[:, None] * s_w[None, :] + b            (the convention of torchao's
                                                                 Int8DynamicActivationInt8Weight)

Where each layer's products run:

- ``nn.Linear`` (heads): :class:`Int8Linear`, dynamic int8 x int8 as above.
- :class:`lstmkit.LSTM`: :class:`Int8LSTM`. The input projection of all T steps, ``W_ih x_t``, is
  one dynamic int8 x int8 product per layer-direction. The recurrent weights (``weight_hh``, the
  projection ``weight_hr``, FGR's ``weight_gg``) are stored int8 per output channel and used as their
  dequantised values inside the fused recurrence (the compiled kernel, or the same step in standard
  ops): per step that product is a (B, R) x (R, G*H) matrix-vector-like product where int8 does not
  pay on CPU, and ``h_t`` is not rounded step after step. Peepholes, biases and layer-norm gains
  stay float (a few vectors).
- ``nn.Embedding``: :class:`Int8Embedding`, int8 rows with one scale each, looked up then scaled.

The saved ``state_dict`` holds the int8 tensors (about a quarter of float32). Inference only
(evaluation mode, no gradients), on the CPU, float32; packed sequences are not taken.

Example::

    >>> q = lstmkit.quantize(model)                  # a copy; model is untouched
    >>> out = q(x)                                    # same call, same shapes as model(x)
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import LN_EPS, LayerWeights
from ..kernels import compiled
from ..kernels.compiled.lowering import recurrence_steps
from ..modules import base
from ..modules.lstm import LSTM

QMAX = 127
"""Largest int8 magnitude used (symmetric: -127..127, so that -Q is representable)."""


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per row: ``w`` (N, K) float -> (Q (N, K) int8, scale (N,) float) with
    ``w ~ scale[:, None] * Q``; a zero row gets scale 1 (and Q = 0)."""
    w = w.detach().float()
    amax = w.abs().amax(dim=-1) if w.dim() > 1 else w.abs()
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    q = torch.round(w / (scale[:, None] if w.dim() > 1 else scale)).clamp(-QMAX, QMAX).to(torch.int8)
    return q, scale


def dequantize_rows(q: Tensor, scale: Tensor) -> Tensor:
    """``scale[:, None] * q`` in float32 (the float weight an int8 row stands for)."""
    return q.float() * scale[:, None]


def _fused() -> Any:
    """The C++ kernel's int8 products when they can run here (eager CPU float32), else None."""
    if torch.compiler.is_compiling() or not compiled.is_available():
        return None
    return compiled.extension()


def int8_linear(x: Tensor, q: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x (..., K) @ W^T + b`` with W = ``scale[:, None] * q`` (q (N, K) int8): ``x`` quantised per
    row on the fly, int8 x int8 -> int32 (``torch._int_mm``), rescaled to float32. Returns (..., N).

    Eager calls on CPU float32 run the same operations in one call of the C++ kernel (``int8.h``);
    this function's tensor operations are its reference and the path under tracing."""
    ext = _fused()
    if ext is not None and x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad:
        return ext.int8_linear(x, q, scale, bias)
    return int8_linear_reference(x, q, scale, bias)


def int8_linear_reference(x: Tensor, q: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """:func:`int8_linear` in tensor operations (traceable; the C++ path's reference)."""
    lead, K = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, K).float()
    amax = x2.abs().amax(dim=1, keepdim=True)
    s_x = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))  # (M, 1)
    q_x = torch.round(x2 / s_x).clamp(-QMAX, QMAX).to(torch.int8)
    if q_x.shape[0] == 0:
        acc = x2.new_zeros(0, q.shape[0], dtype=torch.int32)
    elif K == 1:  # torch 2.13's CPU _int_mm sums wrongly over a single column: the outer product, exact in int32
        acc = q_x.to(torch.int32) * q.t().to(torch.int32)
    else:
        acc = torch._int_mm(q_x, q.t())  # (M, N) int32
    y = acc.float() * s_x * scale
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, q.shape[0])


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights per output channel and dynamic int8 activations (see the module
    docstring). Input (..., in_features) float32 -> (..., out_features) float32."""

    weight_int8: Tensor  # (out_features, in_features) int8
    weight_scale: Tensor  # (out_features,) float32
    bias: Tensor | None  # (out_features,) float32

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_rows(linear.weight)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return int8_linear(x, self.weight_int8, self.weight_scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per channel, dynamic int8 input"


class Int8Embedding(nn.Module):
    """``nn.Embedding`` with int8 rows (one scale per row): tokens (...) int64 -> (..., E) float32."""

    weight_int8: Tensor  # (V, E) int8
    weight_scale: Tensor  # (V,) float32

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        q, scale = quantize_rows(embedding.weight)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", scale)

    def forward(self, tokens: Tensor) -> Tensor:
        ext = _fused()
        if ext is not None and tokens.device.type == "cpu":
            return ext.int8_rows(tokens, self.weight_int8, self.weight_scale)
        return self.weight_int8[tokens].float() * self.weight_scale[tokens].unsqueeze(-1)


_QUANTISED = ("weight_ih", "weight_hh", "weight_hr", "weight_gg")
"""Per-layer matrices stored int8 (per output row)."""


class Int8LSTM(nn.Module):
    """An :class:`lstmkit.LSTM` in int8 for inference: same call, state tuple and shapes (see the module
    docstring for where int8 is used). Build it with :func:`quantize` or ``Int8LSTM(lstm)``.

    Shapes: input (T, B, I), or (B, T, I) with ``batch_first``; hx = (h_0 (L*D, B, R), c_0 (L*D, B, H))
    (FGR: also g_0 (L*D, B, n*H)), zeros when omitted. Returns output (T, B, D*R) (batch first if the
    model is) and the final state shaped like hx.
    """

    def __init__(self, lstm: LSTM) -> None:
        super().__init__()
        if not isinstance(lstm, LSTM):
            raise TypeError(f"Int8LSTM takes a lstmkit.LSTM; got {type(lstm).__name__}")
        self.spec = lstm.spec
        self.input_size, self.hidden_size, self.proj_size = lstm.input_size, lstm.hidden_size, lstm.proj_size
        self.num_layers, self.num_directions = lstm.num_layers, lstm.num_directions
        self.bidirectional = lstm.bidirectional
        self.batch_first, self.zoneout = lstm.batch_first, lstm.zoneout
        self.state_size = lstm.state_size
        self.suffixes = [
            base.direction_suffix(k, d) for k in range(self.num_layers) for d in range(self.num_directions)
        ]
        for name, p in lstm.named_parameters():
            field = name.rsplit("_l", 1)[0] if "_l" in name else name
            if field in _QUANTISED:
                q, scale = quantize_rows(p)
                self.register_buffer(f"{name}_int8", q)  # e.g. weight_hh_l0_int8, weight_hh_l0_scale
                self.register_buffer(f"{name}_scale", scale)
            elif field == "bias_ih":  # one bias b_ih + b_hh per layer-direction: all the step uses
                self.register_buffer(
                    name.replace("bias_ih", "bias"),
                    (p + lstm.get_parameter(name.replace("_ih", "_hh"))).detach().float().clone(),
                )
            elif field == "bias_hh":
                continue
            else:
                self.register_buffer(name, p.detach().float().clone())
        self._float: dict[str, tuple[tuple[int, int], Tensor]] = {}  # dequantised recurrent weights, by name

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, spec={self.spec}, "
            f"proj_size={self.proj_size}, bidirectional={self.num_directions == 2}, int8 per channel"
        )

    def _dequantised(self, name: str) -> Tensor | None:
        q = getattr(self, f"{name}_int8", None)
        if q is None:
            return None
        key = (q._version, q.data_ptr())
        hit = self._float.get(name)
        if hit is None or hit[0] != key:
            hit = (key, dequantize_rows(q, getattr(self, f"{name}_scale")))
            self._float[name] = hit
        return hit[1]

    def _layer(self, x: Tensor, h0: Tensor, c0: Tensor, g0: Tensor | None, suffix: str, reverse: bool) -> Any:
        """One layer-direction: x (T, B, I_k) time-major -> output (T, B, R), h_n, c_n, g_n or None."""
        spec, H = self.spec, self.hidden_size

        def get(field: str) -> Any:
            return getattr(self, f"{field}{suffix}", None)

        if reverse:
            x = x.flip(0)
        zx = int8_linear(x, getattr(self, f"weight_ih{suffix}_int8"), getattr(self, f"weight_ih{suffix}_scale"))
        bias = get("bias")
        if spec.layer_norm:
            zx = F.layer_norm(zx, (zx.shape[-1],), get("ln_ih_weight"), bias, LN_EPS)
        elif bias is not None:
            zx = zx + bias
        w_gg = self._dequantised(f"weight_gg{suffix}")
        if g0 is not None and spec.full_gate_recurrence and zx.shape[0] > 0:
            from ..functional import with_fgr_entry

            zx = with_fgr_entry(zx, g0, LayerWeights(zx, zx, weight_gg=w_gg), spec)
        w_hh = self._dequantised(f"weight_hh{suffix}")
        assert w_hh is not None  # every layer-direction has weight_hh
        tensors = (
            zx, h0, c0, w_hh, self._dequantised(f"weight_hr{suffix}"),
            get("weight_ch") if spec.peephole else None, w_gg,
            get("ln_hh_weight"), get("ln_cell_weight"), get("ln_cell_bias"), None, None, None, None,
        )  # fmt: skip
        zc = float(self.zoneout[0]) if self.zoneout[0] > 0 else -1.0
        zh = float(self.zoneout[1]) if self.zoneout[1] > 0 else -1.0
        options = (compiled._config(spec, H), -1.0 if spec.cell_clip is None else float(spec.cell_clip), zc, zh)
        T = zx.shape[0]
        if compiled.is_available() and not torch.compiler.is_compiling() and T > 0:
            # the fused C++ recurrence without the op's dispatch (the eager path of kernels.compiled), keeping
            # every step's gates only when FGR needs the last ones
            hs, cs, acts = compiled.extension().infer(*tensors, *options, spec.full_gate_recurrence)
        else:
            run: Any = compiled.ops.recurrence if compiled.is_available() else recurrence_steps
            hs, cs, acts = run(*tensors, *options)
        out = hs[1:].flip(0) if reverse else hs[1:]
        g_n = None
        if spec.full_gate_recurrence:
            blocks = [spec.gates.index(n) for n in spec.sigmoid_gates]
            g_n = torch.cat([acts[T - 1, :, k * H : (k + 1) * H] for k in blocks], dim=-1) if T else g0
        c_n = cs[T] if cs.shape[0] == T + 1 else cs[T % 2]  # without recording, the C++ loop keeps two steps of c
        return out, hs[T], c_n, g_n

    def forward(self, input: Tensor, hx: tuple[Tensor, ...] | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Run the int8 stack; see the class docstring for shapes."""
        if not isinstance(input, Tensor) or input.dim() != 3 or input.dtype != torch.float32:
            got = (tuple(input.shape), input.dtype) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(
                f"Int8LSTM takes a batched float32 input (T, B, {self.input_size}) or (B, T, {self.input_size}) "
                f"with batch_first (no PackedSequence, no unbatched input); got {got}"
            )
        x = input.transpose(0, 1) if self.batch_first else input
        B = x.shape[1]
        LD, H, R = self.num_layers * self.num_directions, self.hidden_size, self.state_size
        n = len(self.spec.sigmoid_gates) * H
        sizes = (R, H, n) if self.spec.full_gate_recurrence else (R, H)
        if hx is None:
            hx = tuple(x.new_zeros(LD, B, s) for s in sizes)
        hx = tuple(hx)
        want = [(LD, B, s) for s in sizes]
        if [tuple(t.shape) for t in hx] != want:
            raise ValueError(f"hx must be {len(want)} tensors of shapes {want}; got {[tuple(t.shape) for t in hx]}")
        finals: list[list[Tensor]] = [[] for _ in sizes]
        with torch.no_grad():
            for k in range(self.num_layers):
                outs = []
                for d in range(self.num_directions):
                    i = k * self.num_directions + d
                    g0 = hx[2][i] if len(hx) == 3 else None
                    out, h_n, c_n, g_n = self._layer(x, hx[0][i], hx[1][i], g0, self.suffixes[i], d == 1)
                    outs.append(out)
                    for slot, t in zip(finals, (h_n, c_n, g_n), strict=False):
                        slot.append(t)
                x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        output = x.transpose(0, 1) if self.batch_first else x
        return output, tuple(torch.stack(slot) for slot in finals)


def quantize(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """int8 for CPU inference: every :class:`lstmkit.LSTM` becomes :class:`Int8LSTM`, every
    ``nn.Linear`` :class:`Int8Linear` and every ``nn.Embedding`` :class:`Int8Embedding` (int8
    weights per output channel, dynamic int8 activations; see the module docstring). Other modules
    are kept. Returns the model in evaluation mode (a deep copy unless ``inplace``); it computes the
    float model's function within the rounding of int8 (see docs/deploy.md for measured errors).

    Like torchao's ``quantize_(model, Int8DynamicActivationInt8WeightConfig())`` for linear layers,
    extended to the LSTM's own weights. Example::

        >>> q = lstmkit.quantize(lstmkit.LSTM(8, 16, spec="peephole"))
        >>> q(torch.randn(5, 3, 8))[0].shape
        torch.Size([5, 3, 16])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize takes a torch.nn.Module; got {type(model).__name__}")
    bad = sorted({str(p.dtype) for p in model.parameters()} - {str(torch.float32)})
    if bad:
        raise TypeError(f"quantize takes a float32 model; it has parameters of dtype {bad}: call model.float() first")
    bad_devices = sorted({str(p.device) for p in model.parameters() if p.device.type != "cpu"})
    if bad_devices:
        raise ValueError(f"quantize targets CPU inference; the model has parameters on {bad_devices}: call .cpu()")
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    if isinstance(target, (LSTM, nn.Linear, nn.Embedding)):
        return _swap(target)
    for parent in list(target.modules()):
        for attr, sub in list(parent.named_children()):
            if isinstance(sub, (LSTM, nn.Linear, nn.Embedding)):
                setattr(parent, attr, _swap(sub))
    return target


def _swap(module: nn.Module) -> nn.Module:
    if isinstance(module, LSTM):
        return Int8LSTM(module)
    if isinstance(module, nn.Linear):
        return Int8Linear(module)
    assert isinstance(module, nn.Embedding)
    return Int8Embedding(module)


def _no_qconfig(self: LSTM) -> Any:
    raise AttributeError("qconfig")  # torch.ao reads it with hasattr / getattr(..., default)


def _qconfig_set(self: LSTM, value: Any) -> None:
    warnings.warn(
        "torch.ao.quantization leaves lstmkit.LSTM in float32 (it swaps only torch's own module types): "
        "use lstmkit.quantize(model) for int8 LSTM weights",
        UserWarning,
        stacklevel=2,
    )


# torch.ao.quantization (quantize_dynamic, prepare) sets `qconfig` on every module it walks: on an lstmkit.LSTM
# that says, in one line, that it stays float and what to use instead (the module keeps no qconfig).
LSTM.qconfig = property(_no_qconfig, _qconfig_set, doc="Not used: see lstmkit.quantize.")  # type: ignore[attr-defined]
