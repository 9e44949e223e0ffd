"""Keeping the weights that did best on a task's validation set, and stopping early.

A task opts in by having ``validation_set()`` (a :class:`~lstmkit.tasks.base.Batch`) and a
``validation_metric`` (a metric name, lower is better). At every evaluation the loop calls
:meth:`BestKeeper.update`; a new best is written to ``best.safetensors`` in the run directory
(model weights only, keys ``model.<name>`` as in the checkpoint). With ``patience`` > 0, training
stops after that many evaluations in a row without a new best. ``checkpoint.safetensors``
stays the last step's (so a resumed run replays exactly); :func:`load_best` reads the best.

Example::

    >>> model, config = load_run("runs/forecast")       # doctest: +SKIP
    >>> load_best("runs/forecast", model)                # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..fileio import atomic_write

BEST = "best.safetensors"


class BestKeeper:
    """Tracks the best validation value; see the module docstring.

    ``state`` is the loop's saved ``{"best": {...}}`` entry when resuming, else None.
    """

    def __init__(self, task: Any, run_dir: Path, patience: int, state: dict[str, Any] | None = None) -> None:
        self.metric = getattr(task, "validation_metric", None)
        self.active = self.metric is not None and callable(getattr(task, "validation_set", None))
        self.task, self.run_dir, self.patience = task, Path(run_dir), int(patience)
        state = state or {}
        self.value: float | None = state.get("value")
        self.step: int | None = state.get("step")
        self.since = int(state.get("since", 0))  # evaluations since the best

    def state(self) -> dict[str, Any]:
        """JSON-ready state for the checkpoint."""
        return {"metric": self.metric, "value": self.value, "step": self.step, "since": self.since}

    def update(self, model: torch.nn.Module, step: int, evaluate: Any, write: bool = True) -> tuple[dict, bool]:
        """Evaluate on the validation set; keep a new best. Returns (validation metrics, stop now)."""
        if not self.active:
            return {}, False
        val = evaluate(model, self.task, self.task.validation_set())
        value = float(val[self.metric])
        if math.isfinite(value) and (self.value is None or value < self.value):
            self.value, self.step, self.since = value, step, 0
            if write:
                save_weights(self.run_dir / BEST, model, {"step": step, self.metric: value})
        else:
            self.since += 1
        return val, self.patience > 0 and self.since >= self.patience


def save_weights(path: Path, model: torch.nn.Module, info: dict[str, Any]) -> None:
    """Model weights alone as safetensors (keys ``model.<name>``), ``info`` as JSON metadata."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, save_safetensors(tensors, metadata={"info": json.dumps(info, sort_keys=True)}))


def load_best(run: str | Path, model: torch.nn.Module) -> dict[str, Any] | None:
    """Load ``best.safetensors`` of the run directory (or of a checkpoint file's folder) into
    ``model``; returns its info (``step`` and the metric) or None when the run has none."""
    run = Path(run)
    path = (run.parent if run.is_file() else run) / BEST
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        tensors = load_safetensors(data)
        n = int.from_bytes(data[:8], "little")
        info = json.loads(json.loads(data[8 : 8 + n]).get("__metadata__", {}).get("info", "{}"))
        model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items()})
    except (ValueError, RuntimeError, OSError) as err:
        raise ValueError(f"{path}: not a readable best-weights file ({err})") from None
    return info
