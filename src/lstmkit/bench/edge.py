"""Per-frame latency on the edge runtimes: one frame of a whole streaming model (embedding, LSTM,
head) with the state carried, in eager PyTorch (float32 and :func:`lstmkit.quantize`'s int8), in
ExecuTorch (XNNPACK, float32 and int8) and in ONNX Runtime (float32 and int8), at B = 1 and 16, as
ratios to the same model on ``torch.nn.LSTM`` in eager PyTorch, timed in the same interleaved run.

Each program is the one ``lstmkit export --executorch/--onnx --streaming --chunk 1 [--int8]`` writes,
and it is checked against PyTorch as the export checks it before it is timed. The programs are lowered
once per (spec, B) and timed at every thread count of the run (ONNX Runtime's and ExecuTorch's thread
pools set to it). Needs the ``edge`` extra (executorch, onnx, onnxruntime); without it the table says
so instead of timing.

Example::

    >>> from lstmkit.bench.edge import missing_extra
    >>> missing_extra() is None  # executorch, onnx and onnxruntime installed
    True
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..spec import CellSpec
from ..train.config import ModelConfig
from ..train.model import SequenceModel
from .step import _repeat
from .timing import interleaved_medians

EDGE_SPECS = ("vanilla", "cifg")
"""Specs of the edge table: the plain cell (ONNX's LSTM operator) and one it cannot express (a Scan loop)."""
EDGE_BATCHES = (1, 16)
VOCAB, EMBEDDING = 64, 32
"""The streaming model: a token model, embedding of this size, head over the vocabulary."""
RUNTIMES = (
    "nn.LSTM eager",
    "eager float",
    "eager int8",
    "ExecuTorch float",
    "ExecuTorch int8",
    "ONNX Runtime float",
    "ONNX Runtime int8",
)
INT8_GOAL = 1.0
"""Largest ratio of the eager int8 model's frame to the eager float model's."""

_PROGRAMS: dict[tuple[int, str, int], dict[str, Any]] = {}
"""Lowered programs by (H, spec, B), shared by the thread counts of one process."""


def missing_extra() -> str | None:
    """The first package of the ``edge`` extra that is not installed, else None."""
    for name in ("executorch", "onnx", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def streaming_model(hidden: int, spec: str) -> SequenceModel:
    """A token model (embedding, one-layer lstmkit LSTM of ``spec``, head at every step), seeded."""
    torch.manual_seed(0)
    fields = {k: v for k, v in CellSpec.preset(spec).to_dict().items() if v != CellSpec().to_dict()[k]}
    config = ModelConfig(
        input_size=EMBEDDING, output_size=VOCAB, vocab_size=VOCAB, embedding_dim=EMBEDDING, readout="all",
        hidden=hidden, spec=fields,
    )  # fmt: skip
    return SequenceModel(config).eval()


def _programs(hidden: int, spec: str, batch: int) -> dict[str, Any]:
    """The exported, checked streaming programs of one case (bytes), lowered once per process."""
    key = (hidden, spec, batch)
    if key not in _PROGRAMS:
        from ..interop.edge import export_model_executorch
        from ..interop.onnx_stream import export_stream_onnx

        model = streaming_model(hidden, spec)
        example = torch.randint(0, VOCAB, (batch, 8))
        out: dict[str, Any] = {"model": model}
        with tempfile.TemporaryDirectory() as tmp:
            for int8 in (False, True):
                tag = "int8" if int8 else "float"
                pte, onnx = Path(tmp) / f"{tag}.pte", Path(tmp) / f"{tag}.onnx"
                export_model_executorch(model, pte, example, streaming=True, chunk=1, int8=int8)
                export_stream_onnx(model, onnx, example, chunk=1, int8=int8)
                out[f"ExecuTorch {tag}"], out[f"ONNX Runtime {tag}"] = pte.read_bytes(), onnx.read_bytes()
        _PROGRAMS[key] = out
    return _PROGRAMS[key]


def _carried(fn: Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...]]], frame: Tensor,
             state: tuple[Tensor, ...]) -> Callable[[], None]:  # fmt: skip
    """``fn(frame, state) -> (prediction, state)`` with the state carried from call to call."""
    carried = [state]

    def step() -> None:
        carried[0] = fn(frame, carried[0])[1]

    return step


def time_edge(
    hidden: int,
    threads: int,
    specs: tuple[str, ...] = EDGE_SPECS,
    batches: tuple[int, ...] = EDGE_BATCHES,
    reps: int = 15,
    calls: int = 100,
) -> list[dict[str, Any]]:
    """Seconds per frame of every runtime in :data:`RUNTIMES` (and ratios to nn.LSTM eager) for each
    spec and batch size, at ``threads`` threads, no autograd. One dict per (spec, B)."""
    import onnxruntime as ort
    from executorch.extension.pybindings import portable_lib

    from ..interop.edge import load_method
    from ..interop.quantize import quantize

    portable_lib._unsafe_reset_threadpool(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    entries = []
    for spec in specs:
        for B in batches:
            programs = _programs(hidden, spec, B)
            model: nn.Module = programs["model"]
            torch_model = copy.deepcopy(model)
            torch_model.lstm = nn.LSTM(EMBEDDING, hidden, batch_first=True).eval()  # same sizes, embedding, head
            int8 = quantize(model)
            frame = torch.randint(0, VOCAB, (B, 1))
            with torch.no_grad():
                _, s0 = model.forward_state(frame)  # type: ignore[operator]
            zeros = tuple(torch.zeros_like(t) for t in s0)
            steps: dict[str, Callable[[], None]] = {}
            with torch.no_grad():
                for name, m in (("nn.LSTM eager", torch_model), ("eager float", model), ("eager int8", int8)):
                    steps[name] = _repeat(_carried(m.forward_state, frame, zeros), calls)  # type: ignore[arg-type]
                for tag in ("float", "int8"):
                    method = load_method(programs[f"ExecuTorch {tag}"])

                    def pte(f: Tensor, s: tuple[Tensor, ...], m: Any = method) -> tuple[Tensor, tuple[Tensor, ...]]:
                        out = m.execute([f, *s])
                        return out[0], tuple(out[1:])

                    steps[f"ExecuTorch {tag}"] = _repeat(_carried(pte, frame, zeros), calls)
                    session = ort.InferenceSession(
                        programs[f"ONNX Runtime {tag}"], options, providers=["CPUExecutionProvider"]
                    )
                    first = session.get_inputs()[0].name

                    def onnx(f: Tensor, s: tuple[Tensor, ...], sess: Any = session, x: str = first) -> Any:
                        pred, h, c = sess.run(None, {x: f.numpy(), "h0": s[0].numpy(), "c0": s[1].numpy()})
                        return pred, (torch.from_numpy(h), torch.from_numpy(c))

                    steps[f"ONNX Runtime {tag}"] = _repeat(_carried(onnx, frame, zeros), calls)
                medians = interleaved_medians(steps, reps)
            per_frame = {k: medians[k] / steps[k].frames for k in steps}  # type: ignore[attr-defined]
            base = per_frame["nn.LSTM eager"]
            rows = {k: {"s": v, "ratio": v / base} for k, v in per_frame.items()}
            entries.append({"spec": spec, "B": B, "H": hidden, "rows": rows})
    return entries


def targets(threads: int, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """int8 in eager PyTorch no slower per frame than float (:data:`INT8_GOAL`)."""
    checks = []
    for e in entries:
        got = e["rows"]["eager int8"]["s"] / e["rows"]["eager float"]["s"]
        where = {"threads": threads, "case": f"T=1 B={e['B']} H={e['H']} {e['spec']}", "contender": "lstmkit int8"}
        checks.append({**where, "measure": "int8 frame / float frame, eager", "value": got, "goal": f"<= {INT8_GOAL}"})
        checks[-1]["met"] = got <= INT8_GOAL
    return checks


def markdown(entries: list[dict[str, Any]], skipped: str | None = None) -> list[str]:
    """The edge table of one thread count: a column per (spec, B), a row per runtime."""
    if skipped:
        return ["", f"Edge runtimes: not timed ({skipped})."]
    if not entries:
        return []
    H = entries[0]["H"]
    lines = [
        "",
        f"Edge runtimes, one frame of a streaming token model (embedding {EMBEDDING}, vocabulary {VOCAB}, LSTM "
        f"H = {H}, head at every frame), state carried: ratio to the same model on torch.nn.LSTM in eager PyTorch "
        "(its microseconds in the last row); ExecuTorch programs delegated to XNNPACK:",
        "",
        "| runtime | " + " | ".join(f"{e['spec']} B={e['B']}" for e in entries) + " |",
        "|---" * (len(entries) + 1) + "|",
    ]
    for name in RUNTIMES:
        lines.append(f"| {name} | " + " | ".join(f"{e['rows'][name]['ratio']:.2f}" for e in entries) + " |")
    base = " | ".join(f"{e['rows']['nn.LSTM eager']['s'] * 1e6:.0f}" for e in entries)
    lines.append(f"| nn.LSTM eager, us | {base} |")
    return lines
