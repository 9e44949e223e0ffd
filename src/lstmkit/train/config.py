"""What a run is: frozen dataclasses for the model, the optimiser and the run, saved as ``config.json``.

A :class:`RunConfig` holds everything needed to rebuild the model and the task and to replay
the run step for step: ``make_task(config.task, **config.task_args)`` gives the task back and
:func:`lstmkit.train.model.build_model` the model. Only the budget (``steps``), the evaluation
cadence and the early stop may change when a run is resumed (:data:`RESUMABLE_FIELDS`).

Example::

    >>> cfg = RunConfig(task="adding", task_args={"seq_len": 100},
    ...                 model=ModelConfig(input_size=2, output_size=1, hidden=32))
    >>> RunConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..init import check_init
from ..spec import CellSpec

BASELINES = ("lstm", "rnn", "gru")
"""Recurrent cores: lstmkit's LSTM, or torch.nn.RNN (tanh) / torch.nn.GRU for comparison."""

CELLS = ("lstm", "slstm", "mlstm", "minlstm")
"""lstmkit's cell families for the core: the LSTM, or sLSTM / mLSTM (Beck et al. 2024) / minLSTM (Feng et al. 2024)."""

CELL_FORMS: dict[str, tuple[str, ...]] = {
    "mlstm": ("chunkwise", "parallel", "recurrent"),
    "minlstm": ("scan", "sequential"),
}
"""Forms of one function each family layer can compute (``form=""`` keeps the module's default)."""

CELL_INITS: dict[str, tuple[str, ...]] = {
    "slstm": ("torch", "xlstm"),
    "mlstm": ("torch", "xlstm"),
    "minlstm": ("torch",),
}
"""Initialisations each family cell offers (its module's ``init`` argument; minLSTM has only torch's)."""

LSTM_ONLY_FIELDS: dict[str, Any] = {
    "proj_size": 0,
    "spec": {},
    "forget_bias": 0.0,
    "recurrent_dropout": 0.0,
    "zoneout": 0.0,
    "weight_drop": 0.0,
}
"""Model fields that only the LSTM has, with the value that means "not used"."""

OPTIMIZERS = ("adam", "sgd", "rmsprop")
"""Optimisers accepted by :class:`OptimConfig`."""

READOUTS = ("last", "all")
"""Task readouts: hidden output at each sequence's last valid step, or at every step."""

RESUMABLE_FIELDS = (
    "optim.steps",
    "optim.eval_every",
    "optim.log_every",
    "optim.stop_when_solved",
    "optim.checkpoint_every",
    "optim.on_nan",
    "optim.patience",
)
"""Dotted field names that a resumed run may change; any other difference is refused."""


@dataclass(frozen=True)
class ModelConfig:
    """The sequence model: optional embedding -> recurrent core -> linear head.

    Example::

        >>> ModelConfig(input_size=2, output_size=1, hidden=64, spec={"peephole": True}).cell_spec().peephole
        True
    """

    input_size: int  # features per step I (ignored when vocab_size is set)
    output_size: int  # outputs per readout O (head: Linear(D*R, O))
    vocab_size: int | None = None  # token inputs (B, T) int64 embedded by nn.Embedding when set
    embedding_dim: int = 32  # embedding size when vocab_size is set (the core's input size)
    readout: str = "last"  # "last": (B, O) at each sequence's last valid step; "all": (B, T, O)
    baseline: str = "lstm"  # recurrent core: "lstm" (lstmkit.LSTM), "rnn" or "gru" (torch.nn)
    hidden: int = 32  # hidden size H
    layers: int = 1  # stacked layers L
    bidirectional: bool = False  # D = 2 when True
    proj_size: int = 0  # LSTM projection P (0: none)
    dropout: float = 0.0  # dropout between stacked layers
    spec: dict[str, Any] = field(default_factory=dict)  # CellSpec fields that differ from the default
    forget_bias: float = 0.0  # added to the forget-gate bias at init (Jozefowicz et al. 2015)
    init: str = "torch"  # gate-bias init (lstmkit.init): "torch", "chrono" (LSTM, GRU), "irnn" (RNN: ReLU, W_hh = I)
    t_max: float | None = None  # chrono's longest dependency T_max in steps (None unless init="chrono")
    recurrent_dropout: float = 0.0  # variational dropout on h_{t-1} (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # zoneout probability on c and h (Krueger et al. 2016)
    weight_drop: float = 0.0  # DropConnect on weight_hh (Merity et al. 2017)
    categories: list[int] = field(default_factory=list)  # cardinality of each code in the last K input columns
    category_dim: int = 8  # embedding size of each such code (joins the other inputs at every step)
    cell: str = "lstm"  # lstmkit core family: "lstm", "slstm", "mlstm" or "minlstm" (baseline must be "lstm")
    heads: int = 1  # heads of an sLSTM or mLSTM core (must divide hidden); 1 for the others
    token_shift: bool = False  # feed [e_t, e_{t-1}] to the core (a width-2 causal convolution of the inputs)
    form: str = ""  # mLSTM / minLSTM form (same function, different speed); "" keeps the module's default

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}; got {self.readout!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}; got {self.baseline!r}")
        if not isinstance(self.categories, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in self.categories
        ):
            raise ValueError(f"categories must be a list of positive ints; got {self.categories!r}")
        if self.categories and len(self.categories) >= self.input_size:
            raise ValueError(
                f"categories ({len(self.categories)} codes) must leave other inputs; input_size is {self.input_size}"
            )
        for name in ("input_size", "output_size", "hidden", "layers", "embedding_dim", "category_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if self.vocab_size is not None and (not isinstance(self.vocab_size, int) or self.vocab_size <= 0):
            raise ValueError(f"vocab_size must be a positive int or None; got {self.vocab_size!r}")
        used = [k for k, default in LSTM_ONLY_FIELDS.items() if getattr(self, k) != default]
        if self.baseline != "lstm" and used:
            raise ValueError(
                f"baseline={self.baseline!r} is torch.nn.{self.baseline.upper()}; "
                f"it has no {', '.join(used)} (LSTM options only)"
            )
        self._check_cell(used)
        self.cell_spec()  # validates the spec fields
        allowed = {"lstm": ("torch", "chrono"), "gru": ("torch", "chrono"), "rnn": ("torch", "irnn")}[self.baseline]
        check_init(self.init, self.t_max, CELL_INITS.get(self.cell, allowed))

    def _check_cell(self, lstm_fields: list[str]) -> None:
        """The family cell fits the other fields (one-line errors naming what was expected)."""
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}; got {self.cell!r}")
        if isinstance(self.heads, bool) or not isinstance(self.heads, int) or self.heads <= 0:
            raise ValueError(f"heads must be a positive int; got {self.heads!r}")
        if not isinstance(self.token_shift, bool):
            raise ValueError(f"token_shift must be a bool; got {self.token_shift!r}")
        if self.form and self.form not in CELL_FORMS.get(self.cell, ()):
            raise ValueError(
                f"form {self.form!r} is not one of cell {self.cell!r}'s forms {CELL_FORMS.get(self.cell, ())}"
            )
        if self.cell == "lstm":
            if self.heads != 1:
                raise ValueError(
                    f"heads is for the slstm and mlstm cells; cell 'lstm' has none (got heads={self.heads})"
                )
            return
        if self.baseline != "lstm":
            raise ValueError(f"cell={self.cell!r} is an lstmkit core; it needs baseline 'lstm', got {self.baseline!r}")
        if self.heads != 1 and self.cell == "minlstm":
            raise ValueError(f"cell 'minlstm' has no heads; expected heads=1, got {self.heads}")
        if self.hidden % self.heads:
            raise ValueError(
                f"heads must divide hidden for cell {self.cell!r}; got hidden={self.hidden}, heads={self.heads}"
            )
        unsupported = lstm_fields + (["bidirectional"] if self.bidirectional else [])
        if unsupported:
            raise ValueError(
                f"cell={self.cell!r} does not support {', '.join(unsupported)} yet (LSTM options only); "
                "expected them unset"
            )

    def cell_spec(self) -> CellSpec:
        """The :class:`CellSpec` of the LSTM core."""
        try:
            return CellSpec(**self.spec)
        except TypeError as err:
            raise ValueError(f"bad spec fields {self.spec}: {err}") from None


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser, the budget and the cadence of evaluation, logging and checkpoints.

    Example::

        >>> OptimConfig(optimizer="adam", lr=3e-3, batch_size=32, steps=100).sequences
        3200
    """

    optimizer: str = "adam"  # "adam", "sgd" or "rmsprop"
    lr: float = 1e-3  # learning rate
    momentum: float = 0.0  # momentum for sgd and rmsprop
    weight_decay: float = 0.0  # L2 penalty added by the optimiser
    batch_size: int = 32  # global batch B (split across processes in multi-process runs)
    steps: int = 1000  # budget in optimiser steps (sequences seen = steps * batch_size)
    clip: float | None = 1.0  # clip the global gradient norm to this value (None: no clip)
    eval_every: int = 100  # evaluate on the test set every this many steps (and at the end)
    log_every: int = 10  # one metrics.jsonl line every this many steps
    checkpoint_every: int = 0  # also checkpoint every this many steps (0: at evaluations only)
    stop_when_solved: bool = True  # stop at the first evaluation that meets the task's criterion
    on_nan: str = "stop"  # non-finite loss or gradient: "stop" the run, or "skip" that step's update
    patience: int = 0  # stop after this many evaluations without a better validation metric (0: never)
    tbptt: int = 0  # stateful training: each step reads the next K steps of B streams, state carried (0: off)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be positive; got {self.lr}")
        for name in ("batch_size", "steps", "eval_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience must be an int >= 0; got {self.patience!r}")
        if isinstance(self.tbptt, bool) or not isinstance(self.tbptt, int) or self.tbptt < 0:
            raise ValueError(f"tbptt must be an int >= 0 (steps per segment, 0: off); got {self.tbptt!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0; got {self.checkpoint_every}")
        if self.on_nan not in ("stop", "skip"):
            raise ValueError(f"on_nan must be 'stop' or 'skip'; got {self.on_nan!r}")
        if self.clip is not None and not (self.clip > 0):
            raise ValueError(f"clip must be positive or None; got {self.clip}")

    @property
    def sequences(self) -> int:
        """Training sequences in the whole budget."""
        return self.steps * self.batch_size


@dataclass(frozen=True)
class RunConfig:
    """One training run: task, model, optimiser and seed. Saved as ``config.json``.

    Example::

        >>> cfg = RunConfig(task="adding", model=ModelConfig(input_size=2, output_size=1))
        >>> cfg.replace(seed=1).seed
        1
    """

    task: str  # task name, as in lstmkit.tasks.TASKS
    model: ModelConfig  # the sequence model
    task_args: dict[str, Any] = field(default_factory=dict)  # make_task(task, **task_args)
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and budget
    seed: int = 0  # seeds the initial weights, every training batch and every dropout mask

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Indented JSON text (the content of ``config.json``)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"a run config must be a JSON object; got {type(data).__name__}")
        try:
            model = _build(ModelConfig, data.get("model"), "model")
            optim = _build(OptimConfig, data.get("optim", {}), "optim")
            rest = {k: v for k, v in data.items() if k not in ("model", "optim")}
            return _build(cls, {**rest, "model": model, "optim": optim}, "run")
        except TypeError as err:
            raise ValueError(f"bad run config: {err}") from None

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: RunConfig) -> list[tuple[str, Any, Any]]:
        """``(dotted field, self value, other value)`` for every field that differs."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"config section {where!r} must be a JSON object; got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config section {where!r} has unknown keys {unknown}; expected some of {sorted(names)}")
    return cls(**data)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
