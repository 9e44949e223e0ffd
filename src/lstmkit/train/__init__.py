"""Training: run configs, the sequence model, checkpoints, the generic loop, multi-process runs.

``load_run(path)`` gives back a trained :class:`SequenceModel` and its :class:`RunConfig`;
:func:`train` runs one config to the end of its budget (or its success criterion).

Example::

    >>> from lstmkit.train import ModelConfig, OptimConfig, RunConfig, train, load_run
    >>> cfg = RunConfig(task="adding", task_args={"T": 100}, model=ModelConfig(2, 1, forget_bias=5.0),
    ...                 optim=OptimConfig(lr=3e-3, steps=6000))
    >>> result = train(cfg, "runs/adding", quiet=True)           # doctest: +SKIP
    >>> model, config = load_run("runs/adding")                   # doctest: +SKIP
"""

from .checkpoint import load_run
from .config import ModelConfig, OptimConfig, RunConfig
from .loop import TrainingInterrupted, TrainResult, evaluate, train
from .model import SequenceModel, build_model

__all__ = [
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SequenceModel",
    "TrainResult",
    "TrainingInterrupted",
    "build_model",
    "evaluate",
    "load_run",
    "train",
]
