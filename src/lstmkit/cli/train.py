"""``lstmkit train`` and ``lstmkit eval``: thin calls into :mod:`lstmkit.train`.

Exit status: 0 done; 2 bad arguments or files, a run directory in use by another training, or a
file that cannot be written (full disk, read-only folder; one line on stderr, the run stays
resumable); 3 training diverged (non-finite loss, gradient or weights; the last good checkpoint
stays); 130 interrupted by Ctrl-C (the first Ctrl-C saves the checkpoint first, a second one
stops at once but never cuts a checkpoint commit, so ``lstmkit train --resume DIR`` continues).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..tasks.base import Task
from ..train import checkpoint
from ..train.config import RunConfig
from ..train.guard import finite_or_none
from . import _runargs
from .common import add_run_argument
from .errors import CLIError

DIVERGED = 3
"""Exit status of a run stopped by a non-finite loss, gradient or weight."""
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``eval`` subcommands."""
    p = subparsers.add_parser(
        "train",
        help="train a model on a task (saves config, metrics, checkpoint, curve)",
        description="Train a sequence model on a task. Exit status 2 on bad arguments, a run directory in use or "
        "a file that cannot be written; 3 when the loss, a gradient or the weights stop being finite (the last "
        "good checkpoint stays); 130 after Ctrl-C (checkpoint saved).",
        epilog=task_defaults_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "task", nargs="?", metavar="TASK", help="task name, listed below with its defaults (omit with --resume)"
    )
    p.add_argument("--out", help="run directory (default: runs/TASK)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (to a larger --steps if given)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per process (default: 1, the fastest for small recurrent models)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _runargs.add_task_flags(p)
    _runargs.add_model_flags(p)
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval",
        help="print the test metrics of a trained run as JSON",
        description="Evaluate a run's checkpoint on its task's test set (task flags override).",
    )
    add_run_argument(e)
    e.add_argument("--threads", type=int, help="torch CPU threads")
    _runargs.add_task_flags(e)
    e.set_defaults(func=run_eval)


def _threads(n: int | None) -> None:
    if n is not None:
        if n <= 0:
            raise CLIError(f"--threads must be a positive int; got {n}")
        import torch

        torch.set_num_threads(n)


def run_train(args: argparse.Namespace) -> int:
    """``lstmkit train``."""
    _threads(args.threads)
    if args.resume:
        run_dir = Path(args.resume)
        base = _saved_config(run_dir)
        if args.task and args.task != base.task:
            raise CLIError(f"--resume {run_dir} holds a {base.task!r} run; got task {args.task!r}")
        if args.out and Path(args.out) != run_dir:
            raise CLIError("--out and --resume name different directories; a resumed run stays in its directory")
        task_args = _runargs.task_args_from(args, base.task, base.task_args)
        task = _runargs.build_task(base.task, task_args)
        config = _runargs.build_config(args, base.task, task, task_args, base=base)
    else:
        if not args.task:
            raise CLIError("give a task name (or --resume DIR)")
        task_args = _runargs.task_args_from(args, args.task)
        task = _runargs.build_task(args.task, task_args)
        task_args = task.config() or task_args
        config = _runargs.build_config(args, args.task, task, task_args)
        run_dir = Path(args.out or f"runs/{args.task}")
        if run_dir.exists() and not run_dir.is_dir():
            raise CLIError(f"--out {run_dir} is a file, not a directory")
    speak = _main_process()  # under torchrun only rank 0 prints
    if speak and hasattr(task, "describe"):  # what was read from the user's file, and what was filled or dropped
        print(f"data: {json.dumps(task.describe())}", file=sys.stderr)
    if speak and not args.quiet:
        print(
            f"run {run_dir}: {config.task}, {config.model.baseline} H={config.model.hidden}, "
            f"{config.optim.optimizer} lr={config.optim.lr}, batch {config.optim.batch_size}, "
            f"up to {config.optim.steps} steps",
            file=sys.stderr,
        )
    result = _train(config, run_dir, task, args)
    if isinstance(result, int):
        return result
    if not speak:
        return 0
    report = summary(config, task, result)
    print(json.dumps(finite_or_none(report), indent=1, allow_nan=False))  # strict JSON: inf/NaN -> null
    if not args.quiet:
        print(headline(report), file=sys.stderr)
    return 0


def task_defaults_text() -> str:
    """The tasks ``train`` knows and the settings each starts from (from :mod:`lstmkit.train.defaults`)."""
    from ..tasks import TASKS
    from ..train.defaults import defaults_for

    lines = ["tasks and their defaults (every flag overrides them):"]
    for name, cls in TASKS.items():
        d = defaults_for(name)
        init = d.get("init") or ("forget bias " + str(d["forget_bias"]) if d.get("forget_bias") else "torch's")
        summary = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".").replace("``", "") if cls.__doc__ else ""
        lines.append(f"  {name:<9} {summary}")
        lines.append(
            f"  {'':<9} hidden {d['hidden']}, {d['optimizer']} lr {d['lr']:g}, batch {d['batch_size']}, "
            f"up to {d['steps']} steps, test every {d['eval_every']}, init {init}"
        )
    return "\n".join(lines)


def _main_process() -> bool:
    """True except in the non-zero ranks of a torchrun run, which train silently."""
    return int(os.environ.get("RANK", "0")) == 0


def _train(config: RunConfig, run_dir: Path, task: Any, args: argparse.Namespace) -> Any:
    """``train`` with every way it can stop turned into one line and an exit status."""
    from ..train.loop import RunLocked, TrainingDiverged, TrainingInterrupted, train

    resume = f"lstmkit train --resume {run_dir}"
    try:
        return train(config, run_dir, task=task, resume=bool(args.resume), overwrite=args.overwrite, quiet=args.quiet)
    except TrainingInterrupted as stop:
        print(f"interrupted at step {stop.result.step}; checkpoint saved; continue with: {resume}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print(f"stopped by a second Ctrl-C; the last checkpoint is kept; continue with: {resume}", file=sys.stderr)
        return INTERRUPTED
    except TrainingDiverged as err:
        print(f"lstmkit train: {err}", file=sys.stderr)
        return DIVERGED
    except OSError as err:
        where = err.filename or f"the run in {run_dir}"
        raise CLIError(f"cannot write {where}: {err.strerror or err}; once fixed: {resume}") from None
    except (ValueError, RunLocked) as err:
        raise CLIError(str(err)) from None


def headline(report: dict[str, Any]) -> str:
    """One line: when the criterion was met (or not) and the test result, beside the paper's number."""
    best = report.get("best") or {}
    shown = best.get("test") or report["test"]
    test = ", ".join(f"{k} {v:.4g}" for k, v in shown.items() if k != "loss")
    if best:
        test = f"(best validation {best['metric']} at step {best['step']}) {test}"
    paper = report.get("paper", {}).get("sequences_to_criterion")
    if not report.get("has_criterion", True):
        ours = f"{report['sequences']:,} training sequences (the task has no success criterion)"
    else:
        ours = (
            f"criterion met after {report['sequences_to_criterion']:,} training sequences"
            if report["solved"]
            else f"criterion not met in {report['sequences']:,} training sequences"
        )
    beside = f" (paper: {paper:,})" if isinstance(paper, int) else ""
    args = " ".join(f"{k}={v}" for k, v in report["task_args"].items() if len(repr(v)) <= 40)
    return f"{report['task']} {args}: {ours}{beside}; test {test}; {report['seconds']} s"


def summary(config: RunConfig, task: Any, result: Any) -> dict[str, Any]:
    """The final report of a run, with the paper's number beside ours when the task has one."""
    out: dict[str, Any] = {
        "run": str(result.run_dir),
        "task": config.task,
        "task_args": config.task_args,
        "steps": result.step,
        "sequences": result.sequences,
        "test": result.test,
        "solved": result.solved_at is not None,
        "sequences_to_criterion": result.solved_at,
        "seconds": round(result.elapsed, 1),
        "has_criterion": type(task).solved is not Task.solved,
    }
    if getattr(result, "best", None):
        out["best"] = result.best
    if hasattr(task, "describe"):
        out["data"] = task.describe()
    paper = dict(getattr(task, "paper", {}) or {})
    if paper:
        keys = [str(getattr(task, a)) for a in ("T", "variant", "seq_len") if hasattr(task, a)]
        table = paper.get("training_sequences_to_solve")
        out["paper"] = {"source": paper.get("source"), "criterion": paper.get("criterion")}
        if isinstance(table, dict) and any(k in table for k in keys):
            out["paper"]["sequences_to_criterion"] = table[next(k for k in keys if k in table)]
        elif table is not None and not isinstance(table, dict):
            out["paper"]["sequences_to_criterion"] = table
    return out


def _saved_config(run_dir: Path) -> RunConfig:
    if not run_dir.is_dir():
        raise CLIError(f"--resume {run_dir}: no such run directory")
    try:
        return checkpoint.read_config(run_dir / checkpoint.CONFIG)
    except ValueError as err:
        raise CLIError(str(err)) from None


def run_eval(args: argparse.Namespace) -> int:
    """``lstmkit eval``."""
    from ..train.best import load_best
    from ..train.guard import all_finite
    from ..train.loop import check_fits, evaluate

    _threads(args.threads)
    try:
        model, config = checkpoint.load_run(args.run)
        load_best(args.run, model)  # the best validation weights, for tasks that keep them
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    if not all_finite(model.parameters()):
        raise CLIError(f"{args.run} holds non-finite weights (a diverged run); evaluate an earlier checkpoint")
    task_args = _runargs.task_args_from(args, config.task, config.task_args)
    task = _runargs.build_task(config.task, task_args)
    try:
        check_fits(task, config)
        metrics = evaluate(model, task)
    except ValueError as err:
        raise CLIError(str(err)) from None
    report = {"run": args.run, "task": config.task, "task_args": task_args, "test": metrics}
    report["solved"] = bool(task.solved(metrics))
    print(json.dumps(finite_or_none(report), indent=1, allow_nan=False))  # strict JSON: inf/NaN -> null
    return 0
