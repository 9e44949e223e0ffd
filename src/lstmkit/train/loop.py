"""The one training loop every task uses.

Each step t (1-based) runs the same phases (:mod:`lstmkit.train.phases`)::

    batch_t  = task.sample(B, Generator(seed_of(seed, t)))        data from a per-step generator
    shard_t  = batch_t[rank * B/N : (rank + 1) * B/N]              this process's part
    torch.manual_seed(seed_of(seed, t, rank))                      dropout / zoneout masks
    loss     = task.loss(model(shard.inputs, shard.lengths), shard)
    backward; stop (or skip) on a non-finite loss or gradient; clip ||grad||_2 to `clip`; step
    log every `log_every`; evaluate on the test set every `eval_every` (and at the end);
    checkpoint at every evaluation, every `checkpoint_every`, at the end and on Ctrl-C

Because every batch and every mask depends only on (seed, step), a run resumed from a
checkpoint at step k replays steps k+1, ... exactly as the uninterrupted run does.

One process writes a run directory at a time (an OS lock on ``DIR/.lock``); a checkpoint is one
file committed by one rename; a kill at any instant leaves a run that ``resume`` continues.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..tasks.base import Task
from . import distributed
from .config import RunConfig
from .guard import SignalGuard, TrainingDiverged
from .phases import Run
from .rundir import CURVE, RunLock, RunLocked, clean_temporaries
from .runtools import (
    EVAL_CHUNK,
    TrainingInterrupted,
    TrainResult,
    check_fits,
    evaluate,
    main_metric,
    make_optimizer,
    seed_of,
)
from .tbptt import check_streams

__all__ = [
    "CURVE",
    "EVAL_CHUNK",
    "RunLocked",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_fits",
    "evaluate",
    "main_metric",
    "make_optimizer",
    "seed_of",
    "train",
]


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    task: Task | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` (see the module docstring for the phases).

    ``task`` defaults to ``make_task(config.task, **config.task_args)``. With ``resume`` the
    checkpoint in ``run_dir`` is restored (refused when its config differs, or when it already
    reached ``config.optim.steps``) and training goes on to ``config.optim.steps``; a new run
    refuses a directory that holds one unless ``overwrite``. Raises :class:`RunLocked` when
    another process trains into ``run_dir``, :class:`TrainingInterrupted` after Ctrl-C (once
    the checkpoint is saved), :class:`TrainingDiverged` on a non-finite loss, gradient or
    weight (the last good checkpoint stays), ``OSError`` when a file cannot be written (the run
    stays resumable). Under ``torchrun`` every process calls this; rank 0 writes.

    Example::

        >>> from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
        >>> cfg = RunConfig(task="adding", task_args={"T": 30}, model=ModelConfig(2, 1, hidden=16),
        ...                 optim=OptimConfig(lr=1e-2, steps=50))
        >>> train(cfg, "runs/tiny", quiet=True).step    # doctest: +SKIP
        50
    """
    run_dir = Path(run_dir)
    if task is None:
        from ..tasks import make_task

        task = make_task(config.task, **config.task_args)
    check_fits(task, config)
    check_streams(task, config.optim.tbptt)  # before anything is written
    info = distributed.init_from_env()
    lock = RunLock(run_dir) if info.is_main else None
    clean = False
    try:
        if lock is not None:
            lock.acquire()
            clean_temporaries(run_dir)
        run = Run(config, run_dir, task, info, on_log)
        try:
            run.open(resume, overwrite)
            result = _drive(run, quiet)
        finally:
            run.ddp_model = run.model  # drop the DDP wrapper before the process group goes
            del run
        clean = True
        return result
    finally:
        if lock is not None:
            lock.release()
        distributed.shutdown(info, clean)


def _drive(run: Run, quiet: bool) -> TrainResult:
    """The loop under the Ctrl-C guard, then the curve; raises TrainingInterrupted after Ctrl-C."""
    bar = _progress(run.config.optim.steps, run.step, quiet or not run.info.is_main)
    with SignalGuard() as guard:
        try:
            interrupted = run.loop(guard, bar)
        finally:
            if bar is not None:
                bar.close()
        run.finish()
        interrupted = interrupted or guard.flag  # a Ctrl-C during the curve counts too
    result = run.result(interrupted)
    if interrupted:
        raise TrainingInterrupted(result)
    return result


def _progress(total: int, initial: int, disable: bool) -> Any:
    if disable:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True, mininterval=0.5)
