"""Task generators: data, loss and metric for the classic long-term-dependency experiments.

``make_task(name, **kwargs)`` builds a task by name; ``TASKS`` maps each name to its class.

Example::

    >>> import torch
    >>> from lstmkit.tasks import make_task
    >>> task = make_task("adding", T=100)
    >>> batch = task.sample(8, torch.Generator().manual_seed(0))
    >>> batch.targets.shape
    torch.Size([8, 1])
"""

from __future__ import annotations

import inspect

from .adding import AddingTask
from .base import Batch, Task
from .charlm import CharLMTask
from .classify import ClassifyTask
from .copy import CopyTask
from .forecast import ForecastTask
from .keyword import KeywordTask
from .mqar import MQARTask
from .order import OrderTask
from .parity import ParityTask
from .reber import ReberTask
from .selcopy import SelectiveCopyTask

TASKS: dict[str, type[Task]] = {
    AddingTask.name: AddingTask,
    CharLMTask.name: CharLMTask,
    ClassifyTask.name: ClassifyTask,
    CopyTask.name: CopyTask,
    ForecastTask.name: ForecastTask,
    KeywordTask.name: KeywordTask,
    MQARTask.name: MQARTask,
    OrderTask.name: OrderTask,
    ParityTask.name: ParityTask,
    ReberTask.name: ReberTask,
    SelectiveCopyTask.name: SelectiveCopyTask,
}
"""Every task class by its ``name``."""


def stream_tasks() -> list[str]:
    """The names of the tasks that have streams for stateful training (``--tbptt``).

    Example::

        >>> stream_tasks()
        ['charlm', 'keyword']
    """
    return sorted(name for name, cls in TASKS.items() if cls.has_streams)


def make_task(name: str, **kwargs: object) -> Task:
    """Build the task called ``name`` with constructor arguments ``kwargs`` (e.g. ``config()``).

    Unknown names and unknown arguments raise a ValueError/TypeError that lists the valid ones.

    Example::

        >>> task = make_task("order", variant="6b")
        >>> task.output_size, make_task(task.name, **task.config()).config() == task.config()
        (8, True)
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    cls = TASKS[name]
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"task {name!r} got unknown argument(s) {unknown}; it accepts {accepted}")
    return cls(**kwargs)


__all__ = [
    "TASKS",
    "AddingTask",
    "Batch",
    "CharLMTask",
    "ClassifyTask",
    "CopyTask",
    "ForecastTask",
    "KeywordTask",
    "MQARTask",
    "OrderTask",
    "ParityTask",
    "ReberTask",
    "SelectiveCopyTask",
    "Task",
    "make_task",
    "stream_tasks",
]
