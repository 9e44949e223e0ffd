"""The deploy table: trained runs, float vs int8 in PyTorch, ExecuTorch (XNNPACK) and ONNX Runtime.

For each run: the task's own metric on its test set computed from each runtime's outputs (streaming
tasks fed one frame per call with the state carried; a forecaster's whole window), the file sizes,
and for the first run the per-step latency at B = 1 and B = 16 (median of repeated calls, one
thread), with torch.nn.LSTM eager in the same model as the ratio's base. Prints Markdown tables.

    python -m benchmarks.deploy_table runs/adding runs/charlm runs/forecast
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import lstmkit
from lstmkit.cli import _runargs
from lstmkit.interop.edge import export_model_executorch, load_method, run_program
from lstmkit.interop.onnx_model import SeriesNormalization, export_model_onnx
from lstmkit.interop.onnx_stream import export_stream_onnx, stream_in_onnxruntime
from lstmkit.train.checkpoint import load_run


def _saved(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _metric(task: Any, pred: torch.Tensor, batch: Any) -> str:
    m = task.metrics(pred, batch)
    key = next(k for k in ("bpc", "mase", "mse", "accuracy") if k in m)
    return f"{key} {m[key]:.4f}"


def _stream_pte(path: Path, seq: torch.Tensor, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
    method, preds = load_method(path.read_bytes()), []
    for t in range(seq.shape[1]):
        out = method.execute([seq[:, t : t + 1].contiguous(), *state])
        preds.append(out[0])
        state = tuple(out[1:])
    return torch.cat(preds, 1)


def table_for(run: Path, tmp: Path, n: int) -> list[str]:
    model, config = load_run(run)
    model.eval()
    task = _runargs.build_task(config.task, config.task_args)
    test = task.test_set().slice(0, n)
    q = lstmkit.quantize(model)
    rows = []
    with torch.no_grad():
        f_pred, q_pred = model(test.inputs, test.lengths), q(test.inputs, test.lengths)
    sizes = {"float": _saved(model), "int8": _saved(q)}
    rows.append(f"| {config.task} | PyTorch | {_metric(task, f_pred, test)} | {_metric(task, q_pred, test)} | "
                f"{sizes['float']} | {sizes['int8']} |")  # fmt: skip
    last = config.model.readout == "last"
    forecaster = hasattr(task, "raw")
    for runtime in ("ExecuTorch", "ONNX Runtime"):
        cells, files = [], []
        for int8 in (False, True):
            path = tmp / f"{config.task}{'-int8' if int8 else ''}.{'pte' if runtime == 'ExecuTorch' else 'onnx'}"
            if forecaster:
                norm = SeriesNormalization(task.normalize, tuple(task.mean), tuple(task.std), task.scale)
                raw = task.raw(test.extra["origin"]).contiguous()
                expected = {"prediction": f_pred, "forecast": task.decode(f_pred, test.extra["last"])}
                if runtime == "ExecuTorch":
                    export_model_executorch(model, path, raw, int8=int8, normalization=norm, expected=expected)
                    pred = run_program(path.read_bytes(), [raw])[0]
                else:
                    export_model_onnx(model, path, raw, normalization=norm, expected=expected, int8=int8)
                    import onnxruntime as ort

                    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                    pred = torch.from_numpy(session.run(["prediction"], {"values": raw.numpy()})[0])
            else:
                seq = test.inputs
                with torch.no_grad():
                    _, s0 = model.forward_state(seq[:, :1])
                zeros = tuple(torch.zeros_like(t) for t in s0)
                if runtime == "ExecuTorch":
                    export_model_executorch(model, path, seq, streaming=True, chunk=1, int8=int8)
                    pred = _stream_pte(path, seq, zeros)
                else:
                    export_stream_onnx(model, path, seq, chunk=1, int8=int8)
                    pred = stream_in_onnxruntime(path.read_bytes(), seq, zeros, seq.shape[1])[0]
                pred = pred[:, -1] if last else pred
            cells.append(_metric(task, pred, test))
            files.append(path.stat().st_size)
        rows.append(f"| {config.task} | {runtime} | {cells[0]} | {cells[1]} | {files[0]} | {files[1]} |")
    return rows


def _median_us(fn: Any, reps: int = 200) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def latency(run: Path, tmp: Path) -> list[str]:
    model, config = load_run(run)
    model.eval()
    task = _runargs.build_task(config.task, config.task_args)
    test = task.test_set()
    q = lstmkit.quantize(model)
    base = copy.deepcopy(model)
    base.lstm = model.lstm.to_torch()  # torch.nn.LSTM with the same weights, same embedding and head
    rows = []
    for B in (1, 16):
        frame = test.inputs[:B, :1].contiguous()
        with torch.no_grad():
            _, s = model.forward_state(frame)
        state = tuple(torch.zeros_like(t) for t in s)
        times: dict[str, float] = {}
        with torch.no_grad():
            times["nn.LSTM eager"] = _median_us(lambda f=frame, s=state: base.forward_state(f, s))
            times["lstmkit eager float"] = _median_us(lambda f=frame, s=state: model.forward_state(f, s))
            times["lstmkit eager int8"] = _median_us(lambda f=frame, s=state: q.forward_state(f, s))
        import onnxruntime as ort

        for int8 in (False, True):
            tag = "int8" if int8 else "float"
            pte = tmp / f"lat{B}{tag}.pte"
            export_model_executorch(model, pte, test.inputs[:B, :4].contiguous(), streaming=True, chunk=1, int8=int8)
            method = load_method(pte.read_bytes())
            times[f"ExecuTorch XNNPACK {tag}"] = _median_us(lambda m=method, f=frame, s=state: m.execute([f, *s]))
            onnx = tmp / f"lat{B}{tag}.onnx"
            export_stream_onnx(model, onnx, test.inputs[:B, :4].contiguous(), chunk=1, int8=int8)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
            feeds = {session.get_inputs()[0].name: frame.numpy(), "h0": state[0].numpy(), "c0": state[1].numpy()}
            times[f"ONNX Runtime {tag}"] = _median_us(lambda s=session, f=feeds: s.run(None, f))
        ref = times["nn.LSTM eager"]
        rows += [f"| {name} | {B} | {us:.0f} | {us / ref:.2f} |" for name, us in times.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--test", type=int, default=64, help="test sequences per run (default 64)")
    parser.add_argument("--latency", type=Path, help="the run whose per-step latency is timed (default: the first)")
    parser.add_argument("--no-table", action="store_true", help="latency only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_table:
            print("| task | runtime | float32 | int8 | bytes float32 | bytes int8 |\n|---|---|---|---|---|---|")
            for run in args.runs:
                print("\n".join(table_for(run, Path(tmp), args.test)), flush=True)
        timed = args.latency or args.runs[0]
        print("\n| per step, model of " + str(timed) + " | B | µs | / nn.LSTM eager |\n|---|---|---|---|")
        print("\n".join(latency(timed, Path(tmp))))


if __name__ == "__main__":
    main()
