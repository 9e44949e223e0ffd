"""``lstmkit export CHECKPOINT --onnx PATH``: a trained run's recurrent core as an ONNX file.

The file holds the run's ``lstmkit.LSTM`` (batch first): input ``input`` (B, T, I), outputs
``output`` (B, T, D*R), ``h_n`` and ``c_n``; see :func:`lstmkit.export_onnx`. The embedding and
the head stay out of it (they are one ``Gather`` and one ``Gemm`` for the caller to add).
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="write a trained run's LSTM as an ONNX file (checked, verified with onnxruntime)",
        description="Export the recurrent core (lstmkit.LSTM) of a run directory or checkpoint file to ONNX. "
        "The file is checked with onnx.checker and, when onnxruntime is installed, run on a random "
        "example and compared with PyTorch (error above 1e-5 fails).",
    )
    p.add_argument("checkpoint", help="run directory or its checkpoint.safetensors")
    p.add_argument("--onnx", required=True, metavar="PATH", help="where to write the .onnx file")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--static", action="store_true", help="fix batch and time to --batch and --time (default: dynamic)")
    p.add_argument("--batch", type=int, default=2, help="batch size of the example input (default 2)")
    p.add_argument("--time", type=int, default=8, help="sequence length of the example input (default 8)")
    p.add_argument("--with-states", action="store_true", help="add initial states h0, c0 as graph inputs")
    p.add_argument("--atol", type=float, help="largest onnxruntime-vs-PyTorch difference accepted (default 1e-5)")
    p.add_argument("--scan", action="store_true", help="use Scan over time even where the ONNX LSTM operator fits")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``lstmkit export``: load the run, export its LSTM, print what was written."""
    import torch

    from ..interop.onnx_export import export_onnx
    from ..modules import LSTM
    from ..train.checkpoint import load_run

    for name in ("batch", "time"):
        if getattr(args, name) <= 0:
            raise CLIError(f"--{name} must be a positive int; got {getattr(args, name)}")
    try:
        model, _config = load_run(args.checkpoint)
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    core = getattr(model, "lstm", None)
    if not isinstance(core, LSTM):
        raise CLIError(f"only lstmkit.LSTM cores export to ONNX; this run's core is {type(core).__name__}")
    core.eval()
    p = core.weight_ih_l0
    g = torch.Generator().manual_seed(0)
    B, T = args.batch, args.time
    x = torch.randn(B, T, core.input_size, generator=g, dtype=p.dtype)
    example: Any = x
    if args.with_states:
        LD = core.num_layers * core.num_directions
        h0 = torch.randn(LD, B, core.state_size, generator=g, dtype=p.dtype)
        example = (x, (h0, torch.randn(LD, B, core.hidden_size, generator=g, dtype=p.dtype)))
    try:
        result = export_onnx(
            core,
            args.onnx,
            example,
            opset=args.opset,
            dynamic=not args.static,
            use_lstm_op=False if args.scan else None,
            atol=args.atol,
        )
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as err:
        raise CLIError(str(err)) from None
    check = (
        f"onnxruntime max |diff| {result.max_abs_diff:.2g} vs PyTorch"
        if result.max_abs_diff is not None
        else "onnxruntime not installed: not run"
    )
    print(f"wrote {result.path} (graph {result.graph}, opset {result.opset}, {check})")
    return 0
