"""What the GPU kernels are specialised on for one call: the spec's layout and options."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import torch
import triton

from ...functional import LN_EPS
from ...spec import CellSpec

ACTIVATION_CODES = {"sigmoid": 0, "hard_sigmoid": 1, "tanh": 2, "identity": 3, "relu": 4, "softsign": 5}
"""Activation name -> code understood by :func:`~.pointwise.activation`."""


@dataclass(frozen=True)
class Plan:
    """What the kernels are specialised on for one call (everything but the tensors)."""

    spec: CellSpec  # the step
    H: int  # hidden size (a block covers it)
    proj: bool  # a projection W_hr follows the output
    zc_keep: float | None  # zoneout keep probability of c at evaluation (None: masks or none)
    zh_keep: float | None  # the same for h
    padded: bool  # lengths were given

    @property
    def sig_blocks(self) -> list[int]:
        """Storage blocks of the gates among i, f, o (those FGR reads), in order."""
        return [self.spec.gates.index(name) for name in self.spec.sigmoid_gates]

    def constexprs(self, cdt: torch.dtype, zc_mask: bool, zh_mask: bool) -> dict[str, Any]:
        spec, gates, sig = self.spec, self.spec.gates, self.spec.sigmoid_gates
        return {
            "G": spec.num_gates,
            **{f"BLK_{k}": gates.index(n) if n in gates else -1 for k, n in zip("IFGO", _NAMES, strict=True)},
            **{f"SIG_{k}": sig.index(n) if n in sig else -1 for k, n in zip("IFO", _SIG_NAMES, strict=True)},
            "N_SIG": max(len(sig), 1),
            "COUPLED": spec.coupled,
            "GATE_ACT": ACTIVATION_CODES[spec.gate_activation],
            "CAND_ACT": ACTIVATION_CODES[spec.candidate_activation],
            "CELL_ACT": ACTIVATION_CODES[spec.cell_activation],
            "PEEPHOLE": spec.peephole,
            "LAYER_NORM": spec.layer_norm,
            "CLIP": spec.cell_clip is not None,
            "ZC_MODE": 1 if zc_mask else (2 if self.zc_keep is not None else 0),
            "ZH_MODE": 1 if zh_mask else (2 if self.zh_keep is not None else 0),
            "PADDED": self.padded,
            "PROJ": self.proj,
            "CDT": _TL_DTYPES[cdt],
            "BLOCK_H": triton.next_power_of_2(self.H),
        }

    def encode(self) -> str:
        """A string form (custom ops take strings, not dataclasses); :func:`decode` reads it back."""
        fields = {"spec": self.spec.to_dict(), "H": self.H, "proj": self.proj, "zc_keep": self.zc_keep}
        return json.dumps({**fields, "zh_keep": self.zh_keep, "padded": self.padded}, sort_keys=True)

    def scalars(self, like: torch.Tensor) -> torch.Tensor:
        """(clip, zoneout keep of c, of h, layer-norm eps) as a tensor in the compute dtype on ``like``'s device."""
        values = [float(self.spec.cell_clip or 0.0), float(self.zc_keep or 0.0), float(self.zh_keep or 0.0), LN_EPS]
        return torch.tensor(values, dtype=compute_dtype(like.dtype), device=like.device)


_NAMES = ("input", "forget", "candidate", "output")
_SIG_NAMES = ("input", "forget", "output")
_TL_DTYPES = {torch.float32: triton.language.float32, torch.float64: triton.language.float64}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Cell state, gates and accumulation: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=256)
def decode(text: str) -> Plan:
    """The :class:`Plan` of :meth:`Plan.encode`'s string."""
    fields = json.loads(text)
    return Plan(**{**fields, "spec": CellSpec(**fields["spec"])})
