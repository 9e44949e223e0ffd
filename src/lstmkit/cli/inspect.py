"""``lstmkit inspect CHECKPOINT --out DIR``: pictures of every gate and a ``summary.json``.

The core may be an lstmkit.LSTM or a family core (sLSTM, mLSTM, minLSTM: their own records, the
memory horizon from the stabilised forget gate and the normaliser's growth; see
:mod:`lstmkit.trace.family`).

The inputs are the checkpoint's task test set (default), another task's test set
(``--task NAME``), or an array file (``--input FILE``: ``.npy`` or ``.csv``, shaped (T, I) or
(B, T, I); (T,) or (B, T) integer token ids for a model with an embedding). The work is done
by :func:`lstmkit.trace.report.inspect_model`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import add_run_argument, run_folder
from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="draw every gate of a trained model and summarise them",
        description="Record the gates of a trained model on its test set (or a file) and write "
        "gates_l{k}.png, horizon_l{k}.png, means_l{k}.png per layer/direction and summary.json.",
    )
    add_run_argument(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="FILE", help=".npy or .csv array: (T, I) or (B, T, I)")
    source.add_argument("--task", metavar="NAME", help="use this task's test set (default: the checkpoint's task)")
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs and summary.json, created (default: RUN/inspect)")
    p.add_argument("--sequence", type=int, default=0, help="batch index drawn in the heatmaps (default: 0)")
    p.add_argument("--max-sequences", type=int, default=256, help="use at most this many test sequences (default: 256)")
    p.add_argument("--start", type=int, default=0, help="step the memory horizon starts at (default: 0)")
    p.set_defaults(func=run)


def load_array(path: str | Path) -> np.ndarray:
    """A numeric array from a ``.npy`` (no pickles) or ``.csv`` file; CLIError on any problem.

    Example::

        >>> load_array("inputs.npy").shape      # doctest: +SKIP
        (4, 50, 2)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise CLIError(f"--input must be a .npy or .csv file; got {path.name!r}")
    if not path.is_file():
        raise CLIError(f"--input file not found: {path}")
    if suffix == ".npy":
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise CLIError(f"{path} is not a NumPy .npy array file (no .npy header); save one with numpy.save")
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as err:
        if "allow_pickle" in str(err):  # an object array: reading it would unpickle, which lstmkit never does
            raise CLIError(f"{path} holds Python objects, not numbers; save a numeric array with numpy.save") from None
        raise CLIError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else 'ValueError'}") from None
    except (OSError, EOFError) as err:
        raise CLIError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise CLIError(f"{path} must hold a numeric array; got dtype {getattr(array, 'dtype', type(array))}")
    if array.size == 0:
        raise CLIError(f"{path} holds an empty array of shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise CLIError(f"{path} holds NaN or infinite values")
    return array


def _file_inputs(path: str, model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T, ·) inputs and lengths (None) for the model, from ``--input``."""
    array = load_array(path)
    if model.embedding is not None:
        if array.dtype.kind == "f" and not np.equal(np.round(array), array).all():
            raise CLIError(f"this model embeds token ids: {path} must hold integers; got floats")
        ids = array.astype(np.int64)
        if ids.ndim == 2 and ids.shape[0] == 1 and path.lower().endswith(".csv"):
            ids = ids[0]  # one CSV row of ids is one sequence
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise CLIError(f"token ids must be (T,) or (B, T); got shape {array.shape} in {path}")
        vocab = model.embedding.num_embeddings
        if ids.min() < 0 or ids.max() >= vocab:
            raise CLIError(f"token ids must be in [0, {vocab}); got values in [{ids.min()}, {ids.max()}] in {path}")
        return torch.from_numpy(ids), None
    size = model.config.input_size  # the model's input; the core may read more (category embeddings, token shift)
    if array.ndim == 1 and size == 1:
        array = array[:, None]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] != size:
        raise CLIError(f"--input must be (T, {size}) or (B, T, {size}) for this model; got shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32)), None


def _task_inputs(name: str | None, config: Any, limit: int) -> tuple[torch.Tensor, torch.Tensor, str, list[list[int]]]:
    from ..tasks import make_task

    task_name = name or config.task
    kwargs = dict(config.task_args) if task_name == config.task else {}
    try:
        task = make_task(task_name, **kwargs)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    batch = task.test_set()
    n = min(limit, len(batch))
    batch = batch.slice(0, n)
    return batch.inputs, batch.lengths, task_name, task.events(batch)


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, pick the inputs, write the pictures and summary; print the paths."""
    from ..modules import LSTM
    from ..modules.family_base import FamilyRNN
    from ..trace.report import inspect_model
    from ..train.checkpoint import load_run

    if args.max_sequences < 1:
        raise CLIError(f"--max-sequences must be >= 1; got {args.max_sequences}")
    if args.start < 0:
        raise CLIError(f"--start must be >= 0; got {args.start}")
    try:
        model, config = load_run(args.run)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if not isinstance(model.lstm, (LSTM, FamilyRNN)):
        raise CLIError(
            f"gates can only be recorded from an lstmkit.LSTM, SLSTM, MLSTM or MinLSTM core; this checkpoint's core "
            f"is torch.nn.{type(model.lstm).__name__} (baseline {config.model.baseline!r})"
        )
    if args.input is not None:
        inputs, lengths = _file_inputs(args.input, model)
        meta: dict[str, object] = {"source": str(args.input)}
        events = None
    else:
        inputs, lengths, task_name, events = _task_inputs(args.task, config, args.max_sequences)
        meta = {"source": f"task {task_name} test set", "sequences_used": int(inputs.shape[0])}
    if args.sequence < 0 or args.sequence >= inputs.shape[0]:
        raise CLIError(
            f"--sequence must be in [0, {inputs.shape[0]}) for {inputs.shape[0]} input sequence(s); got {args.sequence}"
        )
    if model.embedding is not None and inputs.dtype != torch.int64:
        raise CLIError(f"this model embeds token ids; the inputs are {inputs.dtype}")
    with torch.no_grad():  # what the core reads: embedded tokens or category codes, beside the step before
        inputs = model._embed(inputs if model.embedding is not None else inputs.float())  # (B, T, core input)
    try:
        paths = inspect_model(
            model.lstm,
            inputs.float(),
            lengths,
            args.out or run_folder(args.run) / "inspect",
            sequence=args.sequence,
            start=args.start,
            meta=meta,
            events=events,
        )
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    for name in sorted(paths):
        print(paths[name])
    return 0
