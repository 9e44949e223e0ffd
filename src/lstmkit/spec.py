"""What one LSTM step computes: :class:`CellSpec` and the named presets.

The default spec is the cell of the founding equations (and of ``torch.nn.LSTM``)::

    i_t = sigmoid(W_i x_t + R_i h_{t-1} + b_i)          input gate
    f_t = sigmoid(W_f x_t + R_f h_{t-1} + b_f)          forget gate
    g_t = tanh   (W_g x_t + R_g h_{t-1} + b_g)          cell candidate
    o_t = sigmoid(W_o x_t + R_o h_{t-1} + b_o)          output gate
    c_t = f_t * c_{t-1} + i_t * g_t                     cell state
    h_t = o_t * tanh(c_t)                               hidden state

Every field of :class:`CellSpec` changes one of these lines; the fields compose.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

GATE_NAMES = ("input", "forget", "candidate", "output")
"""Gate names in storage order (rows i, f, g, o of ``weight_ih``/``weight_hh``)."""

ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh", "identity", "relu", "softsign")
"""Names accepted for ``gate_activation``, ``candidate_activation`` and ``cell_activation``."""


@dataclass(frozen=True)
class CellSpec:
    """A frozen description of one LSTM step; every field defaults to ``torch.nn.LSTM``'s cell.

    Fields (each names the equation it changes and the paper it comes from):

    Example::

        >>> spec = CellSpec(peephole=True, cell_clip=3.0)
        >>> spec.gates
        ('input', 'forget', 'candidate', 'output')
        >>> CellSpec.preset("cifg").gates
        ('input', 'candidate', 'output')
    """

    # Peepholes (Gers, Schraudolph & Schmidhuber 2002): i_t, f_t add p_{i,f} * c_{t-1},
    # o_t adds p_o * c_t; weights `weight_ch_l{k}` of shape (n*H,), order i, f, o.
    peephole: bool = False
    # CIFG, coupled input and forget gate (Greff et al. 2017): f_t = 1 - i_t, no forget rows.
    coupled: bool = False
    # NIG when False: i_t = 1, no input-gate rows (Greff et al. 2017).
    input_gate: bool = True
    # NFG when False: f_t = 1, no forget-gate rows (Greff et al. 2017).
    forget_gate: bool = True
    # NOG when False: o_t = 1, no output-gate rows (Greff et al. 2017).
    output_gate: bool = True
    # Squashing of i, f, o: "sigmoid" or "hard_sigmoid" (relu6(x + 3) / 6).
    gate_activation: str = "sigmoid"
    # Activation of the cell candidate g_t; "identity" gives NIAF (Greff et al. 2017).
    candidate_activation: str = "tanh"
    # Activation of c_t in h_t = o_t * act(c_t); "identity" gives NOAF (Greff et al. 2017).
    cell_activation: str = "tanh"
    # FGR (Greff et al. 2017): i, f, o also receive i_{t-1}, f_{t-1}, o_{t-1} through nine
    # H x H matrices, stored as `weight_gg_l{k}` of shape (n*H, n*H), blocks in order i, f, o.
    full_gate_recurrence: bool = False
    # Layer normalisation (Ba, Kiros & Hinton 2016): LN over the G*H input projection and over
    # the G*H recurrent projection (gains `ln_ih_weight`, `ln_hh_weight`), and
    # h_t = o_t * act(LN(c_t)) (gain and shift `ln_cell_weight`, `ln_cell_bias`).
    layer_norm: bool = False
    # Clip the cell state: c_t = clamp(c_t, -cell_clip, cell_clip); None for no clip.
    cell_clip: float | None = None

    def __post_init__(self) -> None:
        keep = {
            "input": self.input_gate,
            "forget": self.forget_gate and not self.coupled,
            "candidate": True,
            "output": self.output_gate,
        }
        gates = tuple(name for name in GATE_NAMES if keep[name])
        # the derived layout, computed once: read on every call of a layer (not dataclass fields)
        object.__setattr__(self, "_gates", gates)
        object.__setattr__(self, "_sigmoid_gates", tuple(g for g in ("input", "forget", "output") if g in gates))
        for name in ("gate_activation", "candidate_activation", "cell_activation"):
            value = getattr(self, name)
            if value not in ACTIVATIONS:
                raise ValueError(f"CellSpec.{name} must be one of {ACTIVATIONS}; got {value!r}")
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise ValueError(
                "CellSpec.coupled (f = 1 - i) needs input_gate=True and forget_gate=True; "
                f"got input_gate={self.input_gate}, forget_gate={self.forget_gate}"
            )
        if self.cell_clip is not None:
            clip = self.cell_clip
            if isinstance(clip, bool) or not isinstance(clip, (int, float)):
                raise TypeError(f"CellSpec.cell_clip must be a number or None; got {clip!r}")
            if not (clip > 0 and math.isfinite(clip)):
                raise ValueError(f"CellSpec.cell_clip must be positive and finite; got {clip}")
        if self.full_gate_recurrence and not self.sigmoid_gates:
            raise ValueError("CellSpec.full_gate_recurrence needs at least one of i, f, o gates")

    # ----------------------------------------------------------------- derived layout
    @property
    def gates(self) -> tuple[str, ...]:
        """Computed gate blocks in storage order; their count is G."""
        return self._gates  # type: ignore[attr-defined]

    @property
    def num_gates(self) -> int:
        """G, the number of gate blocks in ``weight_ih``/``weight_hh`` rows."""
        return len(self._gates)  # type: ignore[attr-defined]

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        """Computed gates among i, f, o (the ones peepholes and FGR connect), in that order."""
        return self._sigmoid_gates  # type: ignore[attr-defined]

    @property
    def is_plain(self) -> bool:
        """True when the spec is exactly ``torch.nn.LSTM``'s cell."""
        return self == _PLAIN

    def replace(self, **changes: object) -> CellSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; ``CellSpec(**spec.to_dict()) == spec``."""
        return dataclasses.asdict(self)

    @classmethod
    def preset(cls, name: str) -> CellSpec:
        """The spec of a named preset (see :data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown spec preset {name!r}; expected one of {sorted(PRESETS)}") from None


_PLAIN = CellSpec()

PRESETS: dict[str, CellSpec] = {
    # Greff et al. 2017, "LSTM: A Search Space Odyssey". Their V (vanilla) has peepholes; here "vanilla"
    # names torch's cell, which has none (Greff's NP), and "peephole" is Greff's V.
    "vanilla": CellSpec(),
    "np": CellSpec(),
    "peephole": CellSpec(peephole=True),
    "nig": CellSpec(input_gate=False),
    "nfg": CellSpec(forget_gate=False),
    "nog": CellSpec(output_gate=False),
    "niaf": CellSpec(candidate_activation="identity"),
    "noaf": CellSpec(cell_activation="identity"),
    "cifg": CellSpec(coupled=True),
    "fgr": CellSpec(full_gate_recurrence=True),
    # Ba, Kiros & Hinton 2016.
    "layernorm": CellSpec(layer_norm=True),
}
"""Named specs. ``"vanilla"`` and ``"np"`` are both torch's cell, which is Greff's NP (no peepholes);
``"peephole"`` is Greff's V."""


def resolve_spec(spec: CellSpec | str | None) -> CellSpec:
    """Accept a :class:`CellSpec`, a preset name or None (the default spec)."""
    if spec is None:
        return CellSpec()
    if isinstance(spec, CellSpec):
        return spec
    if isinstance(spec, str):
        return CellSpec.preset(spec)
    raise TypeError(f"spec must be a CellSpec, a preset name or None; got {type(spec).__name__}")
