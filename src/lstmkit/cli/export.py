"""``lstmkit export RUN --onnx PATH`` / ``--executorch PATH``: a trained run as one ONNX file or one
ExecuTorch program, verified in onnxruntime / ``executorch.runtime``.

By default the whole model goes into the file: embedding (token tasks), the LSTM, the head,
and for a forecasting run the normalisation of its inputs and outputs, so the file maps raw
rows to forecasts in the CSV's units (see :mod:`lstmkit.interop.onnx_model` and docs/export.md).
It is checked with ``onnx.checker`` and, with onnxruntime installed, run on inputs from the
task's own test set and compared with PyTorch. The run's best validation weights are exported
when it kept some. ``--core-only`` writes the recurrent core alone, as before (input (B, T, I),
outputs ``output``, ``h_n``, ``c_n``; see :func:`lstmkit.export_onnx`).

``--executorch PATH`` writes a ``.pte`` for XNNPACK (:mod:`lstmkit.interop.edge`) with static shapes:
the whole model at the test set's batch and length, or with ``--streaming`` K = ``--chunk`` frames and
the state in and out. ``--onnx PATH --streaming`` writes the streaming ONNX graph
(:mod:`lstmkit.interop.onnx_stream`). ``--int8`` quantises (XNNPACK's quantiser, onnxruntime's dynamic
quantisation; with ``--onnx`` the whole model or the stream) and checks against :func:`lstmkit.quantize`
of the same model. Streams are checked by
feeding the test sequences K frames at a time against one PyTorch call; every check prints its max |diff|
and nothing is written when it fails.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import add_run_argument
from .errors import CLIError, os_error_line


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="write a trained run as an ONNX file or an ExecuTorch program (verified against PyTorch)",
        description="Export a run (embedding, LSTM, head and a forecaster's normalisation) to ONNX or to "
        "ExecuTorch. The file is run on inputs from the task's test set and compared with PyTorch (error "
        "above 1e-5 fails; int8 within its documented tolerance). --core-only exports the LSTM alone (ONNX).",
    )
    add_run_argument(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", metavar="PATH", help="where to write the .onnx file")
    target.add_argument("--executorch", metavar="PATH", help="where to write the ExecuTorch .pte (XNNPACK)")
    p.add_argument("--streaming", action="store_true", help="state in and out, --chunk frames per call")
    p.add_argument("--chunk", type=int, default=1, metavar="K", help="--streaming: frames per call (default 1)")
    p.add_argument("--int8", action="store_true", help="int8 weights, dynamic int8 activations (CPU)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--batch", type=int, default=8, help="test inputs to verify on (default 8)")
    p.add_argument("--atol", type=float, help="largest onnxruntime-vs-PyTorch difference accepted (default 1e-5)")
    p.add_argument("--core-only", action="store_true", help="only the recurrent core (random example input)")
    p.add_argument("--static", action="store_true", help="--core-only: fix batch and time (default: dynamic)")
    p.add_argument("--time", type=int, default=8, help="--core-only: sequence length of the example (default 8)")
    p.add_argument("--with-states", action="store_true", help="--core-only: initial states h0, c0 as inputs")
    p.add_argument("--scan", action="store_true", help="--core-only: Scan over time even where the LSTM op fits")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``lstmkit export``: load the run (best weights when kept), export, print what was written."""
    from ..modules import LSTM
    from ..train.best import load_best
    from ..train.checkpoint import load_run

    for name in ("batch", "time", "chunk"):
        if getattr(args, name) <= 0:
            raise CLIError(f"--{name} must be a positive int; got {getattr(args, name)}")
    _check_options(args)
    try:
        model, config = load_run(args.run)
        best = load_best(args.run, model)
    except OSError as err:
        raise CLIError(os_error_line(err, "read")) from None
    except ValueError as err:
        raise CLIError(str(err)) from None
    core = getattr(model, "lstm", None)
    if not isinstance(core, LSTM):
        raise CLIError(f"only lstmkit.LSTM cores export to ONNX; this run's core is {type(core).__name__}")
    model.eval()
    if args.executorch or args.streaming:
        return _edge(args, model, config, best)
    try:
        if args.core_only:
            result, what = _core(args, core), "recurrent core only"
        else:
            result, what = _whole(args, model, config)
    except OSError as err:
        raise CLIError(os_error_line(err)) from None
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        raise CLIError(str(err)) from None
    if result.max_abs_diff is None:
        check = "onnxruntime not installed: not run"
    elif args.int8:
        check = (
            f"int8; onnxruntime max |diff| {result.max_abs_diff:.2g} vs the int8 PyTorch model (lstmkit.quantize), "
            f"{result.float_diff:.2g} vs float; {result.size} bytes"
        )
    else:
        check = f"onnxruntime max |diff| {result.max_abs_diff:.2g} vs PyTorch"
    weights = f", best weights of step {best['step']}" if best else ""
    print(f"wrote {result.path} ({what}{weights}; graph {result.graph}, opset {result.opset}, {check})")
    return 0


def _core(args: argparse.Namespace, core: Any) -> Any:
    import torch

    from ..interop.onnx_export import export_onnx

    p = core.weight_ih_l0
    g = torch.Generator().manual_seed(0)
    B, T = args.batch, args.time
    x = torch.randn(B, T, core.input_size, generator=g, dtype=p.dtype)
    example: Any = x
    if args.with_states:
        LD = core.num_layers * core.num_directions
        h0 = torch.randn(LD, B, core.state_size, generator=g, dtype=p.dtype)
        example = (x, (h0, torch.randn(LD, B, core.hidden_size, generator=g, dtype=p.dtype)))
    return export_onnx(
        core, args.onnx, example, opset=args.opset, dynamic=not args.static,
        use_lstm_op=False if args.scan else None, atol=args.atol,
    )  # fmt: skip


def _whole(args: argparse.Namespace, model: Any, config: Any) -> tuple[Any, str]:
    """Export the whole model, verified on inputs from the task's test set."""
    import torch

    from ..interop.onnx_model import SeriesNormalization, export_model_onnx
    from . import _runargs

    task = _runargs.build_task(config.task, config.task_args)
    batch = task.test_set()
    if hasattr(task, "raw") and hasattr(task, "decode"):  # a forecaster: raw rows in, forecasts out
        part = batch.slice(0, args.batch)
        with torch.no_grad():
            prediction = model(part.inputs, part.lengths)
        expected = {"prediction": prediction, "forecast": task.decode(prediction, part.extra["last"])}
        norm = SeriesNormalization(task.normalize, tuple(task.mean), tuple(task.std), task.scale)
        meta = {"lstmkit_task": json.dumps({k: v for k, v in task.config().items() if k != "stats"})}
        meta["inputs"] = f"values: the last {task.context} rows of {task.features} in the CSV's units"
        meta["outputs"] = f"forecast: {task.target} at the next {task.horizon} steps; prediction: normalised"
        result = export_model_onnx(
            model, args.onnx, task.raw(part.extra["origin"]), normalization=norm, expected=expected,
            opset=args.opset, atol=args.atol, metadata=meta, int8=args.int8,
        )  # fmt: skip
        return result, f"whole model with its normalisation ({task.normalize}), {len(part)} test windows"
    full = batch.lengths == batch.lengths.max()  # the graph takes full-length sequences only
    index = torch.nonzero(full).flatten()[: args.batch]
    T = int(batch.lengths.max())
    inputs = batch.inputs[index, :T]
    meta = {"lstmkit_task": json.dumps({"task": config.task, "readout": config.model.readout})}
    result = export_model_onnx(
        model, args.onnx, inputs, opset=args.opset, atol=args.atol, metadata=meta, int8=args.int8
    )
    parts = "embedding, LSTM, head" if getattr(model, "embedding", None) is not None else "LSTM, head"
    return result, f"whole model: {parts}; {len(index)} test inputs of task {config.task!r}"


def _check_options(args: argparse.Namespace) -> None:
    """Option combinations and the optional packages they need, before anything is loaded."""
    import importlib.util

    if args.core_only and (args.executorch or args.streaming or args.int8):
        raise CLIError("--core-only exports the LSTM alone to ONNX; it takes no --executorch, --streaming or --int8")
    if args.chunk != 1 and not args.streaming:
        raise CLIError(f"--chunk sets the frames per call of a --streaming export; got --chunk {args.chunk} alone")
    if args.executorch:
        missing = [m for m in ("executorch", "torchao") if importlib.util.find_spec(m) is None]
        if missing:
            raise CLIError(f"--executorch needs {' and '.join(missing)}: pip install 'lstmkit[edge]'")
    elif args.int8 and importlib.util.find_spec("onnxruntime") is None:
        raise CLIError("--onnx --int8 needs onnxruntime's quantisation: pip install 'lstmkit[onnx]'")


def _edge(args: argparse.Namespace, model: Any, config: Any, best: Any) -> int:
    """--executorch, or --onnx --streaming: export on the task's own test data and print the check."""
    import torch

    from . import _runargs

    task = _runargs.build_task(config.task, config.task_args)
    batch = task.test_set()
    forecaster = hasattr(task, "raw") and hasattr(task, "decode")
    if args.streaming and forecaster:
        raise CLIError("a forecaster maps a window of raw rows to a forecast and does not stream; drop --streaming")
    try:
        if forecaster:
            from ..interop.onnx_model import SeriesNormalization

            part = batch.slice(0, args.batch)
            with torch.no_grad():
                prediction = model(part.inputs, part.lengths)
            expected = {"prediction": prediction, "forecast": task.decode(prediction, part.extra["last"])}
            norm = SeriesNormalization(task.normalize, tuple(task.mean), tuple(task.std), task.scale)
            example, what = task.raw(part.extra["origin"]), f"whole model with its normalisation ({task.normalize})"
            result = _write_edge(args, model, example, normalization=norm, expected=expected)
        else:
            full = batch.lengths == batch.lengths.max()  # full-length test sequences only
            index = torch.nonzero(full).flatten()[: args.batch]
            example = batch.inputs[index, : int(batch.lengths.max())]
            parts = "embedding, LSTM, head" if getattr(model, "embedding", None) is not None else "LSTM, head"
            frames = "1 frame" if args.chunk == 1 else f"{args.chunk} frames"
            kind = f"streaming, {frames} per call" if args.streaming else "whole model"
            what = f"{kind}: {parts}"
            result = _write_edge(args, model, example)
    except OSError as err:
        raise CLIError(os_error_line(err)) from None
    except (ValueError, TypeError, ImportError, RuntimeError) as err:
        raise CLIError(" ".join(str(err).split())) from None
    runtime = "executorch.runtime" if args.executorch else "onnxruntime"
    against = "the int8 PyTorch model (lstmkit.quantize)" if args.int8 else "PyTorch"
    weights = f", best weights of step {best['step']}" if best else ""
    print(
        f"wrote {result.path} ({what}{weights}; {'int8' if args.int8 else 'float32'}; {len(example)} test inputs of "
        f"task {config.task!r}; {runtime} max |diff| {result.max_abs_diff:.2g} vs {against}"
        + (f", {result.float_diff:.2g} vs float" if args.int8 else "")
        + f"; {result.size} bytes)"
    )
    return 0


def _write_edge(args: argparse.Namespace, model: Any, example: Any, **kwargs: Any) -> Any:
    if args.executorch:
        from ..interop.edge import export_model_executorch

        return export_model_executorch(
            model, args.executorch, example, streaming=args.streaming, chunk=args.chunk, int8=args.int8,
            atol=args.atol, **kwargs,
        )  # fmt: skip
    from ..interop.onnx_stream import export_stream_onnx

    return export_stream_onnx(
        model, args.onnx, example, chunk=args.chunk, int8=args.int8, opset=args.opset, atol=args.atol
    )
