"""Per-task default settings for ``lstmkit train TASK``: model and optimiser fields that solve
the task within a few minutes on a small CPU (flags on the command line override them).

Example::

    >>> defaults_for("adding")["optimizer"]
    'adam'
"""

from __future__ import annotations

from typing import Any

COMMON: dict[str, Any] = {
    "hidden": 32,
    "optimizer": "adam",
    "lr": 3e-3,
    "batch_size": 32,
    "steps": 2000,
    "clip": 1.0,
    "eval_every": 100,
    "log_every": 10,
}
"""Used for every task, then updated by the task's own entry in :data:`TASK_DEFAULTS`."""

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "adding": {"hidden": 32, "lr": 3e-3, "batch_size": 32, "steps": 6000, "eval_every": 100, "forget_bias": 5.0},
    "copy": {"hidden": 64, "lr": 3e-3, "batch_size": 32, "steps": 8000, "eval_every": 200, "forget_bias": 3.0},
    "order": {"hidden": 32, "lr": 1e-2, "batch_size": 32, "steps": 8000, "eval_every": 100, "forget_bias": 3.0},
    "reber": {"hidden": 16, "lr": 3e-3, "batch_size": 32, "steps": 6000, "eval_every": 100},
    "charlm": {"hidden": 128, "lr": 3e-3, "batch_size": 32, "steps": 2000, "eval_every": 200, "embedding_dim": 32},
    "forecast": {"hidden": 32, "lr": 3e-3, "batch_size": 32, "steps": 3000, "eval_every": 100, "patience": 5},
}
"""Task name -> the fields that differ from :data:`COMMON`."""


def defaults_for(task: str) -> dict[str, Any]:
    """The default model and optimiser fields for ``task`` (COMMON for tasks not listed)."""
    return {**COMMON, **TASK_DEFAULTS.get(task, {})}
