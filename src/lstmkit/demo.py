"""A short look inside an LSTM: build a model, run a batch, print what each gate does.

Run with ``python -m lstmkit.demo``.
"""

from __future__ import annotations

import argparse

import torch

from . import LSTM, kernels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lstmkit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="vanilla", help="cell spec preset (default: vanilla)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    model = LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True, spec=args.spec)
    x = torch.randn(4, 12, 8)  # (B, T, I)
    reference = torch.nn.LSTM(8, 16, 2, batch_first=True)
    out, (h, _), trace = model(x, return_gates=True)
    print(f"model: {model}")
    print(f"kernels available: {kernels.available()}")
    print(f"input (B, T, I) = {tuple(x.shape)} -> output {tuple(out.shape)}, h_n {tuple(h.shape)}")
    print(f"{'layer':>5} {'gate':>10} {'mean':>7} {'min':>7} {'max':>7}")
    for k in range(trace.num_layers):
        for name in ("input", "forget", "candidate", "output", "cell", "hidden"):
            v = trace.get(name, layer=k)
            print(f"{k:>5} {name:>10} {v.mean():7.3f} {v.min():7.3f} {v.max():7.3f}")
    if model.spec.is_plain:
        reference.load_state_dict(model.state_dict())
        ref_out, _ = reference(x)
        print(f"max |lstmkit - torch.nn.LSTM| on the same weights: {(out - ref_out).abs().max():.2e}")


if __name__ == "__main__":
    main()
