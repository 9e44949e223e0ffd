"""Speed of the recurrent families (sLSTM, mLSTM, minLSTM) against ``torch.nn.LSTM`` of the same size and
the official ``xlstm`` package's sLSTM layer (vanilla PyTorch backend), on CPU, float32.

Every contender of one thread setting runs inside one interleaved loop (each repetition runs each once,
in a rotating order) and the table gives medians and ratios to ``nn.LSTM`` from that same loop, so a
shared machine's drifts hit all alike. Two times per contender: an inference forward (no graph) and a
training step (forward, ``loss = output.sum()``, backward). Input (B, T, H), hidden size H, one layer.

Contenders: ``nn.LSTM``; ``lstmkit.SLSTM`` on its compiled kernel and on the reference loop;
``xlstm``'s ``sLSTMLayer`` (vanilla backend, no convolution; it adds head-wise gate projections and a
group norm around the same recurrence); ``lstmkit.MLSTM`` chunkwise (the default), parallel and
recurrent; ``lstmkit.MinLSTM`` scan (the default) and sequential.

Run::

    python benchmarks/families.py                 # B=8, T=100, H=64, 4 heads, default threads and 1
    python benchmarks/families.py --T 1024 --reps 5 --skip-slow
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.bench.timing import interleaved_medians

Runner = Callable[[Tensor], Tensor]


def contenders(H: int, heads: int, chunk: int, skip_slow: bool) -> dict[str, nn.Module]:
    """name -> module taking (B, T, H) batch-first input; the first is the baseline."""
    torch.manual_seed(0)
    mods: dict[str, nn.Module] = {
        "nn.LSTM": nn.LSTM(H, H, batch_first=True),
        "SLSTM (compiled)": lstmkit.SLSTM(H, H, num_heads=heads, batch_first=True, kernel="compiled"),
    }
    if not skip_slow:
        mods["SLSTM (reference loop)"] = lstmkit.SLSTM(H, H, num_heads=heads, batch_first=True, kernel="reference")
    official = official_slstm(H, heads)
    if official is not None:
        mods["xlstm sLSTMLayer (vanilla)"] = official
    for form in ("chunkwise", "parallel") + (() if skip_slow else ("recurrent",)):
        mods[f"MLSTM ({form})"] = lstmkit.MLSTM(H, H, num_heads=heads, batch_first=True, form=form, chunk_size=chunk)
    for form in ("scan",) + (() if skip_slow else ("sequential",)):
        mods[f"MinLSTM ({form})"] = lstmkit.MinLSTM(H, H, batch_first=True, form=form)
    return mods


def official_slstm(H: int, heads: int) -> nn.Module | None:
    try:
        from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig
    except ImportError:
        return None
    cfg = sLSTMLayerConfig(embedding_dim=H, num_heads=heads, conv1d_kernel_size=0, backend="vanilla", dtype="float32")
    return sLSTMLayer(cfg).float()


def runner(module: nn.Module) -> Runner:
    if isinstance(module, (nn.LSTM, lstmkit.SLSTM, lstmkit.MLSTM, lstmkit.MinLSTM)):
        return lambda x: module(x)[0]
    return lambda x: module(x)  # the official layer returns its output alone


def measure(mods: dict[str, nn.Module], x: Tensor, reps: int) -> dict[str, tuple[float, float]]:
    """name -> (forward seconds, training-step seconds), medians of one interleaved loop each."""
    run = {name: runner(m) for name, m in mods.items()}

    def forward(f: Runner) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                f(x)

        return step

    def train(f: Runner) -> Callable[[], None]:
        return lambda: f(x).sum().backward()

    fwd = interleaved_medians({n: forward(f) for n, f in run.items()}, reps, warmup=2)
    trn = interleaved_medians({n: train(f) for n, f in run.items()}, reps, warmup=2)
    return {n: (fwd[n], trn[n]) for n in run}


def table(results: dict[str, tuple[float, float]], threads: int) -> str:
    base_f, base_t = next(iter(results.values()))
    lines = [
        f"threads = {threads}",
        "",
        "| contender | forward ms | x nn.LSTM | training step ms | x nn.LSTM |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (f, t) in results.items():
        lines.append(f"| {name} | {f * 1e3:.2f} | {f / base_f:.2f} | {t * 1e3:.2f} | {t / base_t:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--B", type=int, default=8, help="batch")
    p.add_argument("--T", type=int, default=100, help="time steps")
    p.add_argument("--H", type=int, default=64, help="input and hidden size")
    p.add_argument("--heads", type=int, default=4, help="heads of sLSTM and mLSTM")
    p.add_argument("--chunk", type=int, default=64, help="mLSTM chunk size")
    p.add_argument("--reps", type=int, default=15, help="repetitions per contender (medians)")
    p.add_argument("--threads", default="default,1", help="comma-separated: 'default' or a number")
    p.add_argument("--skip-slow", action="store_true", help="leave out the step-by-step reference forms")
    args = p.parse_args(argv)
    default_threads = torch.get_num_threads()
    print(f"B={args.B} T={args.T} H={args.H} heads={args.heads} float32, torch {torch.__version__}, ", end="")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    mods = contenders(args.H, args.heads, args.chunk, args.skip_slow)
    x = torch.randn(args.B, args.T, args.H)
    for setting in args.threads.split(","):
        threads = default_threads if setting == "default" else int(setting)
        torch.set_num_threads(threads)
        print()
        print(table(measure(mods, x, args.reps), threads))
    torch.set_num_threads(default_threads)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
