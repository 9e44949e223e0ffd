"""Shared argparse plumbing for the run subcommands: task flags, model and optimiser flags, and
turning them into a :class:`~lstmkit.train.config.RunConfig` (private to the CLI)."""

from __future__ import annotations

import argparse
import inspect
import json
import math
from typing import Any

from ..init import INITS
from ..spec import PRESETS, CellSpec
from ..train.config import BASELINES, CELLS, OPTIMIZERS, ModelConfig, OptimConfig, RunConfig
from ..train.defaults import defaults_for, resolve_init
from ..train.tbptt import check_streams
from .errors import CLIError

# CLI flag (dest) -> constructor argument names a task may use for it, first match wins
TASK_FLAGS: dict[str, tuple[str, ...]] = {
    "seq_len": ("T", "seq_len", "length"),
    "modern": ("modern",),
    "variant": ("variant",),
    "text": ("text_file", "text", "path"),
    "csv": ("csv_file", "csv", "path"),
    "target": ("target", "column"),
    "window": ("window",),
    "horizon": ("horizon",),
    "test_size": ("test_size",),
    "features": ("features",),
    "date": ("date_column",),
    "fill": ("fill",),
    "normalize": ("normalize",),
    "season": ("season",),
    "id": ("id_column",),
    "static": ("static",),
    "future_features": ("future_features",),
    "calendar": ("calendar",),
    "quantiles": ("quantiles",),
    "backtest": ("backtest",),
    "distribution": ("distribution",),
    "dataset": ("dataset",),
    "data": ("data_file",),
    "test_file": ("test_file",),
    "validation": ("validation",),
}

MODEL_FIELDS = (
    "hidden",
    "layers",
    "bidirectional",
    "proj_size",
    "dropout",
    "forget_bias",
    "init",
    "t_max",
    "recurrent_dropout",
    "zoneout",
    "weight_drop",
    "baseline",
    "embedding_dim",
    "cell",
    "heads",
    "form",
)
LSTM_ONLY = ("proj_size", "forget_bias", "recurrent_dropout", "zoneout", "weight_drop", "spec")
OPTIM_FIELDS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "steps",
    "eval_every",
    "log_every",
    "checkpoint_every",
    "on_nan",
    "patience",
    "tbptt",
)


def add_task_flags(p: argparse.ArgumentParser) -> None:
    """Task arguments (all optional; unknown to a task -> one-line error)."""
    g = p.add_argument_group("task arguments (passed to the task; each task takes some of them)")
    g.add_argument("--seq-len", dest="seq_len", type=int, help="sequence length T (adding, copy, ...)")
    g.add_argument("--modern", action="store_true", help="the modern form of the task (adding)")
    g.add_argument("--variant", help="task variant (e.g. order: 6a or 6b)")
    g.add_argument("--text", help="text file to train a character model on")
    g.add_argument("--csv", help="CSV file of a time series to forecast")
    g.add_argument("--target", help="CSV column to forecast")
    g.add_argument("--window", type=int, help="input window in steps (forecast)")
    g.add_argument("--horizon", type=int, help="steps ahead to forecast")
    g.add_argument("--test-size", dest="test_size", type=int, help="size of the held-out test set")
    g.add_argument(
        "--features",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        metavar="COL,COL",
        help="forecast: input columns besides the target (default: the target only)",
    )
    g.add_argument("--date", help="forecast: the date column (default: one named date, time, year, ...)")
    g.add_argument("--fill", choices=("interpolate", "ffill", "drop"), help="forecast: rule for missing cells")
    g.add_argument(
        "--normalize",
        choices=("level", "diff", "global"),
        help="forecast: level = each window minus its last value (default); diff = predict the change; "
        "global = standardise",
    )
    g.add_argument("--season", type=int, help="forecast: steps per season (default: from the date frequency)")
    names = lambda text: [c.strip() for c in text.split(",") if c.strip()]  # noqa: E731
    g.add_argument("--id", type=names, metavar="COL,COL", help="forecast: series id column(s) of a long-format panel")
    g.add_argument("--static", type=names, metavar="COL,COL", help="forecast: per-series columns, embedded")
    g.add_argument(
        "--future-features",
        dest="future_features",
        type=names,
        metavar="COL,COL",
        help="forecast: columns known over the horizon (prices, weather forecasts)",
    )
    g.add_argument(
        "--calendar", type=names, metavar="NAME,NAME", help="forecast: calendar features (month,dayofweek,hour,...)"
    )
    g.add_argument(
        "--quantiles",
        type=lambda text: [float(q) for q in names(text)],
        metavar="Q,Q",
        help="forecast: quantile levels of a pinball-loss head, e.g. 0.1,0.5,0.9",
    )
    g.add_argument("--backtest", type=int, metavar="N", help="forecast: rolling test origins per series (panel)")
    g.add_argument(
        "--distribution",
        choices=("normal", "studentt"),
        help="forecast: a parametric head trained by likelihood; its quantiles give the intervals (panel)",
    )
    g.add_argument("--dataset", help="classify: a UCR/UEA set shipped in aeon or sktime (e.g. JapaneseVowels)")
    g.add_argument("--data", metavar="TRAIN", help="classify: your training cases, a .ts or .npz file")
    g.add_argument("--test", dest="test_file", metavar="TEST", help="classify: your test cases, a .ts or .npz file")
    g.add_argument("--validation", type=float, metavar="SHARE", help="classify: share of each class held out")
    g.add_argument(
        "--task-arg",
        dest="task_arg",
        action="append",
        metavar="KEY=VALUE",
        help="any other task argument (VALUE parsed as JSON when it can be); repeatable",
    )


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Model and optimiser flags."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--spec",
        help="cell spec: a preset name and/or FIELD=VALUE items, comma separated, e.g. "
        f"'peephole,cell_clip=3' (presets: {', '.join(sorted(PRESETS))})",
    )
    g.add_argument(
        "--cell",
        choices=CELLS,
        help="lstmkit core: lstm (default), slstm, mlstm (Beck et al. 2024) or minlstm (Feng et al. 2024)",
    )
    g.add_argument("--heads", type=int, help="heads of an slstm or mlstm core (must divide --hidden; default 1)")
    g.add_argument(
        "--token-shift",
        dest="token_shift",
        action="store_true",
        help="feed the core each step's input beside the previous step's (a width-2 causal convolution)",
    )
    g.add_argument(
        "--form",
        help="form of an mlstm (chunkwise, parallel, recurrent) or minlstm (scan, sequential) core: the same "
        "function, computed another way (default: the module's)",
    )
    g.add_argument("--hidden", type=int, help="hidden size H")
    g.add_argument("--layers", type=int, help="stacked layers")
    g.add_argument("--bidirectional", action="store_true", help="two directions")
    g.add_argument("--proj-size", dest="proj_size", type=int, help="LSTM projection size (0: none)")
    g.add_argument("--dropout", type=float, help="dropout between layers")
    g.add_argument("--forget-bias", dest="forget_bias", type=float, help="added to the forget-gate bias at init")
    g.add_argument(
        "--init",
        choices=(*INITS, "xlstm"),
        help="gate-bias init: chrono (Tallec & Ollivier 2018; default for the long-lag tasks), torch, irnn (RNN), "
        "or xlstm (the official xLSTM package's, slstm and mlstm cells)",
    )
    g.add_argument(
        "--t-max", dest="t_max", type=float, help="chrono's longest dependency in steps (default: the task's)"
    )
    g.add_argument("--recurrent-dropout", dest="recurrent_dropout", type=float, help="variational dropout on h")
    g.add_argument("--zoneout", type=float, help="zoneout probability on c and h")
    g.add_argument("--weight-drop", dest="weight_drop", type=float, help="DropConnect on weight_hh")
    g.add_argument("--baseline", choices=BASELINES, help="recurrent core: lstm (default), or torch's rnn / gru")
    g.add_argument("--embedding-dim", dest="embedding_dim", type=int, help="embedding size for token tasks")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=OPTIMIZERS, help="optimiser")
    o.add_argument("--lr", type=float, help="learning rate")
    o.add_argument("--momentum", type=float, help="momentum (sgd, rmsprop)")
    o.add_argument("--weight-decay", dest="weight_decay", type=float, help="L2 penalty")
    o.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    budget = o.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="budget in optimiser steps")
    budget.add_argument("--sequences", type=int, help="budget in training sequences (rounded up to whole steps)")
    o.add_argument("--clip", type=float, help="clip the gradient norm (0: no clipping)")
    o.add_argument("--eval-every", dest="eval_every", type=int, help="evaluate every N steps")
    o.add_argument("--log-every", dest="log_every", type=int, help="log every N steps")
    o.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, help="also checkpoint every N steps")
    o.add_argument(
        "--patience",
        type=int,
        help="stop after N evaluations without a better validation metric (tasks with a validation set; 0: never)",
    )
    o.add_argument(
        "--no-stop", dest="no_stop", action="store_true", help="keep training after the task's success criterion is met"
    )
    o.add_argument(
        "--on-nan",
        dest="on_nan",
        choices=("stop", "skip"),
        help="a non-finite loss or gradient stops the run (default, exit status 3) or skips that step's update",
    )
    o.add_argument(
        "--tbptt",
        type=int,
        metavar="K",
        help="stateful training: B streams read K steps per optimiser step, the state carried across steps and "
        "detached every K (truncated BPTT); tasks with streams only",
    )
    o.add_argument("--seed", type=int, help="seed of the weights, the batches and the masks")


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_spec(text: str) -> dict[str, Any]:
    """``"peephole,cell_clip=3"`` -> the CellSpec fields that differ from the default."""
    default = CellSpec().to_dict()
    fields: dict[str, Any] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "=" in item:
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in default:
                raise CLIError(f"--spec: unknown field {key!r}; expected a preset or one of {sorted(default)}")
            fields[key] = parse_value(value)
        else:
            try:
                fields.update(CellSpec.preset(item).to_dict())
            except ValueError as err:
                raise CLIError(f"--spec: {err}") from None
    try:
        spec = CellSpec(**{**default, **fields})
    except (TypeError, ValueError) as err:
        raise CLIError(f"--spec {text!r}: {err}") from None
    return {k: v for k, v in spec.to_dict().items() if v != default[k]}


def task_args_from(args: argparse.Namespace, task_name: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Task constructor arguments: ``base`` updated with the task flags given on the command line."""
    from ..tasks import TASKS

    if task_name not in TASKS:
        raise CLIError(f"unknown task {task_name!r}; expected one of {sorted(TASKS)}")
    accepted = [p for p in inspect.signature(TASKS[task_name].__init__).parameters if p != "self"]
    out = dict(base or {})
    for flag, names in TASK_FLAGS.items():
        if flag not in vars(args) or getattr(args, flag) in (None, False):
            continue
        name = next((n for n in names if n in accepted), None)
        if name is None:
            raise CLIError(f"task {task_name!r} takes no --{flag.replace('_', '-')}; its arguments are {accepted}")
        out[name] = getattr(args, flag)
    for item in getattr(args, "task_arg", None) or []:
        if "=" not in item:
            raise CLIError(f"--task-arg expects KEY=VALUE; got {item!r}")
        key, value = item.split("=", 1)
        if key not in accepted:
            raise CLIError(f"task {task_name!r} takes no argument {key!r}; its arguments are {accepted}")
        out[key] = parse_value(value)
    return out


def build_task(name: str, task_args: dict[str, Any]) -> Any:
    """``make_task`` with its errors (bad values, unreadable files) as one-line CLIErrors."""
    from ..tasks import make_task

    try:
        return make_task(name, **task_args)
    except (ValueError, TypeError, OSError, UnicodeDecodeError, ImportError) as err:
        raise CLIError(f"task {name!r}: {err}") from None


def explicit(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The flags among ``names`` given on the command line (every such flag defaults to None)."""
    return {n: getattr(args, n) for n in names if n in vars(args) and getattr(args, n) is not None}


def build_config(
    args: argparse.Namespace, task_name: str, task: Any, task_args: dict[str, Any], base: RunConfig | None = None
) -> RunConfig:
    """A RunConfig from the task, the task's defaults (or ``base`` when resuming) and the flags."""
    model_kw: dict[str, Any]
    if base is None:
        d = defaults_for(task_name)
        model_kw = {k: v for k, v in d.items() if k in ModelConfig.__dataclass_fields__}
        optim_kw = {k: v for k, v in d.items() if k in OptimConfig.__dataclass_fields__}
        model_kw.update(
            input_size=max(1, int(task.input_size or 1)),
            output_size=int(task.output_size),
            vocab_size=task.vocab_size,
            readout=task.readout,
        )
        if getattr(task, "categories", None):  # a panel's series id and static codes, embedded
            model_kw["categories"] = [int(n) for n in task.categories]
        seed = 0
    else:
        model_kw, optim_kw = dict(vars(base.model)), dict(vars(base.optim))
        seed = base.seed
    given = explicit(args, MODEL_FIELDS)
    family = given.get("cell", "lstm") != "lstm"
    if base is None and (given.get("baseline", "lstm") != "lstm" or family):
        for name in LSTM_ONLY:  # task defaults tuned for the LSTM do not apply to other cores
            model_kw.pop(name, None)
    if base is None and family and "init" not in given:
        # chrono sets LSTM gates; sLSTM and mLSTM start from the official xLSTM package's init
        init = "xlstm" if given["cell"] in ("slstm", "mlstm") else "torch"
        model_kw.update(init=init, t_max=None)
    model_kw.update(given)
    if getattr(args, "bidirectional", False):
        model_kw["bidirectional"] = True
    if getattr(args, "token_shift", False):
        model_kw["token_shift"] = True
    if "spec" in vars(args) and args.spec is not None:
        model_kw["spec"] = parse_spec(args.spec)
    if base is None and not family:
        try:
            model_kw = resolve_init(model_kw, given, getattr(task, "max_lag", None), task_name)
        except (TypeError, ValueError) as err:
            raise CLIError(str(err)) from None
    optim_kw.update(explicit(args, OPTIM_FIELDS))
    if getattr(args, "tbptt", None) is not None and args.tbptt < 1:
        raise CLIError(f"--tbptt must be >= 1 (steps between detaches); got {args.tbptt}")
    if "clip" in vars(args) and args.clip is not None:
        optim_kw["clip"] = None if args.clip == 0 else args.clip
    if "sequences" in vars(args) and args.sequences is not None:
        optim_kw["steps"] = max(1, math.ceil(args.sequences / optim_kw.get("batch_size", 32)))
    if getattr(args, "no_stop", False):
        optim_kw["stop_when_solved"] = False
    if "seed" in vars(args) and args.seed is not None:
        seed = args.seed
    try:
        config = RunConfig(
            task=task_name, task_args=task_args, model=ModelConfig(**model_kw), optim=OptimConfig(**optim_kw), seed=seed
        )
        check_streams(task, config.optim.tbptt)
        if config.optim.tbptt and config.model.cell != "lstm":
            raise ValueError(f"--tbptt with cell {config.model.cell!r} is not supported yet; expected cell 'lstm'")
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from None
    return config
