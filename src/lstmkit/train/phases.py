"""The phases of one training run, each a method that a test can call alone.

:class:`Run` holds the model, the optimiser and the loop counters. :func:`lstmkit.train.loop.train`
calls, in order::

    open(resume, overwrite)      new run: config.json and an empty metrics.jsonl before step 1;
                                 resume: restore the checkpoint, cut metrics back to it
    loop(guard, bar)             per step t: train_step(t), log_row(t), evaluate(t, row),
                                 write_row(row), checkpoint(t) when due, interrupt check
    finish()                     the learning curve

Every batch and mask depends only on (seed, step), so a run resumed from a checkpoint at step k
replays steps k+1, ... exactly as the uninterrupted run does. Only rank 0 writes files.

With ``optim.tbptt = K`` (stateful training, :mod:`lstmkit.train.tbptt`) a step reads the next K
steps of the task's B streams instead of a fresh batch, from the state the previous step left; the
checkpoint also holds that state and the streams' positions, so a resume stays exact.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..fileio import append_line, atomic_write, fault_point
from ..tasks.base import Task
from . import distributed
from .best import BEST, BestKeeper, load_best
from .checkpoint import CHECKPOINT, CONFIG, LEGACY_STATE, METRICS, load_checkpoint, read_config, save_checkpoint
from .config import RunConfig
from .curves import plot_curve
from .guard import SignalGuard, TrainingDiverged, all_finite, finite_or_none
from .rundir import CURVE, RUN_FILES, read_metrics_for_resume
from .runtools import TrainResult, evaluate, main_metric, make_optimizer, seed_of
from .tbptt import State, check_state, tbptt_loss

try:
    from torch.nn.utils import clip_grads_with_norm_, get_total_norm
except ImportError:  # torch < 2.6: the same two halves of clip_grad_norm_, written out

    def get_total_norm(tensors: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[misc]
        norms = [torch.linalg.vector_norm(t) for t in tensors]
        return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)

    def clip_grads_with_norm_(params: list[torch.Tensor], max_norm: float, total: torch.Tensor) -> None:  # type: ignore[misc]
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)


class Run:
    """One run's model, optimiser and counters, and its phases (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        task: Task,
        info: distributed.DistInfo,
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        from .model import build_model

        o = config.optim
        if o.batch_size % info.world_size:
            raise ValueError(f"batch_size {o.batch_size} must divide evenly among {info.world_size} processes")
        self.config, self.run_dir, self.task, self.info, self.on_log = config, run_dir, task, info, on_log
        self.model = build_model(config.model, config.seed)
        self.optimizer = make_optimizer(self.model, config)
        self.ddp_model: torch.nn.Module = self.model
        self.step = 0  # optimiser steps done (skipped ones included)
        self.elapsed0, self.t0 = 0.0, time.perf_counter()  # seconds before this process, its start
        self.window_loss, self.window_steps = 0.0, 0  # loss sum and count since the last log line
        self.skipped = 0  # steps whose update was skipped (on_nan="skip")
        self.solved_at: int | None = None  # sequences seen at the first solved evaluation
        self.test: dict[str, float] = {}  # last test metrics
        self.checkpointed: int | None = None  # step of the last committed checkpoint
        self.keeper = BestKeeper(task, run_dir, config.optim.patience)  # best validation weights
        if o.tbptt and info.world_size > 1:
            raise ValueError(f"--tbptt trains in one process (its streams' state lives there); got {info.world_size}")
        self.streams = task.streams(o.batch_size) if o.tbptt else None  # stateful training's B streams
        self.carry: State | None = None  # the state carried into the next segment (None: zeros)

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS

    # ------------------------------------------------------------ open
    def open(self, resume: bool, overwrite: bool = False) -> None:
        """Prepare the directory (rank 0) and the state: a fresh run or the restored checkpoint."""
        if resume:
            self._resume()
        else:
            self._start(overwrite)
        self.ddp_model = distributed.wrap(self.model, self.info)
        self.t0 = time.perf_counter()

    def _start(self, overwrite: bool) -> None:
        if not self.info.is_main:
            return
        held = [n for n in (CHECKPOINT, CONFIG) if (self.run_dir / n).exists()]
        if held and not overwrite:
            raise ValueError(
                f"{self.run_dir} already holds a run ({', '.join(held)}); continue it with --resume "
                f"{self.run_dir}, replace it with --overwrite, or choose another directory"
            )
        for name in (*RUN_FILES, LEGACY_STATE):  # nothing of an earlier run carries over
            (self.run_dir / name).unlink(missing_ok=True)
        atomic_write(self.run_dir / CONFIG, self.config.to_json())
        atomic_write(self.metrics_file, "")

    def _resume(self) -> None:
        if (self.run_dir / CHECKPOINT).exists():
            self.restore(load_checkpoint(self.run_dir, self.model, self.optimizer, self.config))
        elif not (self.run_dir / CONFIG).exists():
            raise ValueError(f"{self.run_dir} holds no run to resume (no {CHECKPOINT}, no {CONFIG})")
        if self.step >= self.config.optim.steps:
            raise ValueError(
                f"{self.run_dir} is already at step {self.step} and --steps is {self.config.optim.steps}: "
                "nothing to train; give a larger --steps to continue"
            )
        if not self.info.is_main:
            return
        if not (self.run_dir / CONFIG).exists() or read_config(self.run_dir / CONFIG) != self.config:
            atomic_write(self.run_dir / CONFIG, self.config.to_json())
        rows = read_metrics_for_resume(self.metrics_file)  # drops a torn last line
        kept = [r for r in rows if r["step"] <= self.step]  # and the lines after the checkpoint
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        if not self.metrics_file.exists() or self.metrics_file.read_bytes() != text.encode():
            atomic_write(self.metrics_file, text)

    def restore(self, state: dict[str, Any]) -> None:
        """Counters from a checkpoint's loop state (inverse of :meth:`snapshot`)."""
        self.step = self.checkpointed = int(state["step"])
        self.elapsed0 = float(state.get("elapsed", 0.0))
        self.window_loss, self.window_steps = float(state.get("window_loss", 0.0)), int(state.get("window_steps", 0))
        self.skipped = int(state.get("skipped", 0))
        self.solved_at, self.test = state.get("solved_at"), dict(state.get("test") or {})
        self.keeper = BestKeeper(self.task, self.run_dir, self.config.optim.patience, state.get("best"))
        if self.streams is not None:
            if not isinstance(state.get("streams"), dict):
                raise ValueError(f"checkpoint in {self.run_dir} holds no stream positions for --tbptt")
            self.streams.load_state_dict(state["streams"])
            self.carry = state.get("stream_state")
            if self.carry is not None:
                check_state(self.model, self.carry, self.config.optim.batch_size, f"the stream state in {self.run_dir}")

    def snapshot(self) -> dict[str, Any]:
        """The JSON-ready loop state saved with a checkpoint."""
        return finite_or_none(
            {
                "step": self.step,
                "sequences": self.step * self.config.optim.batch_size,
                "elapsed": self.elapsed(),
                "window_loss": self.window_loss,
                "window_steps": self.window_steps,
                "skipped": self.skipped,
                "solved_at": self.solved_at,
                "test": self.test,
                "best": self.keeper.state(),
                **({"streams": self.streams.state_dict()} if self.streams is not None else {}),
            }
        )

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    # ------------------------------------------------------------ step
    def train_step(self, step: int) -> float:
        """Forward, backward, divergence check, clip, update for ``step``; returns the loss.

        A non-finite loss or gradient norm (on any rank) skips the update (``on_nan="skip"``)
        or raises :class:`TrainingDiverged`; so do non-finite weights after the update.
        """
        fault_point("step")
        o = self.config.optim
        loss = self._stream_loss(step) if self.streams is not None else self._batch_loss(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = get_total_norm([p.grad for p in params if p.grad is not None])
        bad = distributed.any_rank(not (math.isfinite(value) and math.isfinite(float(norm))), self.info)
        if bad and o.on_nan == "skip":
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            return value
        if bad:
            what = f"the loss is {value}" if not math.isfinite(value) else f"the gradient norm is {float(norm)}"
            raise self.diverged(step, what)
        if o.clip is not None:
            clip_grads_with_norm_(params, o.clip, norm)
        self.optimizer.step()
        if not all_finite(self.model.parameters()):
            raise self.diverged(step, "the weights are not finite after the update")
        self.window_loss += value
        self.window_steps += 1
        return value

    def _batch_loss(self, step: int) -> torch.Tensor:
        """The loss of a fresh batch drawn for ``step`` (this process's shard of it)."""
        o, info = self.config.optim, self.info
        batch = self.task.sample(o.batch_size, torch.Generator().manual_seed(seed_of(self.config.seed, step)))
        shard = o.batch_size // info.world_size
        part = batch.slice(info.rank * shard, (info.rank + 1) * shard) if info.active else batch
        torch.manual_seed(seed_of(self.config.seed, step, 1 + info.rank))
        return self.task.loss(self.ddp_model(part.inputs, part.lengths), part)

    def _stream_loss(self, step: int) -> torch.Tensor:
        """The loss of the streams' next segment from the carried state, which moves past it
        (detached; zeroed for every stream if it stopped being finite)."""
        assert self.streams is not None  # only called in stateful training
        segment = self.streams.next(
            self.config.optim.tbptt, torch.Generator().manual_seed(seed_of(self.config.seed, step))
        )
        torch.manual_seed(seed_of(self.config.seed, step, 1))
        loss, carry = tbptt_loss(self.model, self.task, segment, self.carry)
        self.carry = carry if all_finite(carry) else None
        return loss

    def diverged(self, step: int, what: str) -> TrainingDiverged:
        """Log the divergence (strict JSON) and build the error naming the checkpoint kept."""
        self.write_row({"step": step, "sequences": step * self.config.optim.batch_size, "diverged": what})
        kept = f"step {self.checkpointed}" if self.checkpointed is not None else "none yet"
        hint = "lower --lr, clip with --clip, or skip such steps with --on-nan skip"
        if self.config.model.cell_spec().layer_norm:
            hint += "; layer-norm LSTMs can overflow on long sequences (README: 'Layer norm on long sequences')"
        message = f"training diverged at step {step}: {what}; last good checkpoint: {kept}; {hint}"
        return TrainingDiverged(message, self.result(False))

    # ------------------------------------------------------------ log / evaluate
    def log_row(self, step: int, evaluating: bool) -> dict[str, Any] | None:
        """The metrics row of ``step`` when one is due (mean train loss over the window)."""
        if not (step % self.config.optim.log_every == 0 or evaluating):
            return None
        mean = self.window_loss / self.window_steps if self.window_steps else math.nan
        row: dict[str, Any] = {
            "step": step,
            "sequences": step * self.config.optim.batch_size,
            "train_loss": distributed.mean_over_ranks(mean, self.info),
        }
        if self.skipped:
            row["skipped"] = self.skipped
        self.window_loss, self.window_steps = 0.0, 0
        return row

    def evaluate(self, step: int, row: dict[str, Any]) -> bool:
        """Test (and validation) metrics into ``row``; True when the run should stop: solved with
        stop_when_solved, or ``patience`` evaluations without a better validation metric."""
        self.test = evaluate(self.model, self.task)
        solved = bool(self.task.solved(self.test))
        if solved and self.solved_at is None:
            self.solved_at = step * self.config.optim.batch_size
        row.update(test=self.test, solved=solved)
        val, patience_out = self.keeper.update(self.model, step, evaluate, write=self.info.is_main)
        if val:
            row.update(val=val, early_stop=patience_out)
        return (solved and self.config.optim.stop_when_solved) or patience_out

    def write_row(self, row: dict[str, Any]) -> None:
        """Append ``row`` (with the elapsed time) to metrics.jsonl as strict JSON (NaN -> null)."""
        row = finite_or_none({**row, "elapsed": round(self.elapsed(), 3)})
        if self.info.is_main:
            append_line(self.metrics_file, json.dumps(row, sort_keys=True, allow_nan=False))
        if self.on_log is not None:
            self.on_log(row)

    # ------------------------------------------------------------ checkpoint
    def checkpoint(self, guard: SignalGuard | None = None) -> None:
        """Commit the checkpoint of the current step (rank 0); a second Ctrl-C waits for it."""
        if self.info.is_main:
            if guard is None:
                save_checkpoint(self.run_dir, self.model, self.optimizer, self.config, self.snapshot(), self.carry)
            else:
                with guard.critical():
                    save_checkpoint(self.run_dir, self.model, self.optimizer, self.config, self.snapshot(), self.carry)
        self.checkpointed = self.step

    def checkpoint_due(self, evaluating: bool, stop: bool, interrupted: bool) -> bool:
        every = self.config.optim.checkpoint_every
        return evaluating or stop or interrupted or bool(every and self.step % every == 0)

    # ------------------------------------------------------------ the loop
    def loop(self, guard: SignalGuard, bar: Any = None) -> bool:
        """Steps until the budget, the criterion or a Ctrl-C; True when interrupted."""
        o = self.config.optim
        self.ddp_model.train()
        while self.step < o.steps:
            loss = self.train_step(self.step + 1)
            self.step += 1
            evaluating = self.step % o.eval_every == 0 or self.step == o.steps
            row = self.log_row(self.step, evaluating)
            stop = self.evaluate(self.step, row) if evaluating and row is not None else False
            if row is not None:
                self.write_row(row)
            interrupted = distributed.any_rank(guard.flag, self.info)
            if self.checkpoint_due(evaluating, stop, interrupted):
                self.checkpoint(guard)
            if bar is not None:
                post = {"loss": f"{loss:.4g}"}
                if self.test:
                    metric = main_metric(self.test)
                    post[metric] = f"{self.test[metric]:.4g}"
                bar.update(1)
                bar.set_postfix(post, refresh=False)
            if stop or interrupted:
                return interrupted
        return False

    # ------------------------------------------------------------ finish
    def finish(self) -> None:
        """Draw the learning curve from metrics.jsonl (rank 0)."""
        if not self.info.is_main:
            return
        from .curves import read_metrics

        c = self.config
        args = " ".join(
            f"{k}={v}" for k, v in c.task_args.items() if len(repr(v)) <= 40 and k not in ("test_seed", "test_size")
        )
        plot_curve(
            read_metrics(self.metrics_file),
            self.run_dir / CURVE,
            main_metric(self.test) if self.test else "loss",
            title=f"{c.task} {args} - {c.model.baseline} H={c.model.hidden}",
        )

    def result(self, interrupted: bool) -> TrainResult:
        """What the run ended with; with kept best weights, their test metrics too."""
        o = self.config.optim
        result = TrainResult(
            self.run_dir,
            self.step,
            self.step * o.batch_size,
            self.test,
            self.solved_at,
            self.elapsed(),
            interrupted,
            skipped=self.skipped,
        )
        if self.keeper.step is not None and (self.run_dir / BEST).is_file():
            from .model import build_model

            best_model = build_model(self.config.model, self.config.seed)
            load_best(self.run_dir, best_model)
            result.best = {**self.keeper.state(), "test": evaluate(best_model, self.task)}
        return result
