"""Training: run configs, the sequence model, checkpoints, the generic loop, multi-process runs.

``load_run(path)`` gives back a trained :class:`SequenceModel` and its :class:`RunConfig`;
:func:`lstmkit.train.loop.train` runs one config to the end of its budget (or its criterion).
"""

from .checkpoint import load_run
from .config import ModelConfig, OptimConfig, RunConfig
from .model import SequenceModel, build_model

__all__ = ["ModelConfig", "OptimConfig", "RunConfig", "SequenceModel", "build_model", "load_run"]
