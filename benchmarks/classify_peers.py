"""lstmkit's sequence classifier against sktime's classifiers on UCR/UEA sets; prints a table.

    pip install -r benchmarks/requirements.txt     # sktime and the other peers, in their own environment
    python -m benchmarks.classify_peers [--sets GunPoint,BasicMotions] [--steps 300] [--seeds 0,1,2]

Every contender sees the same cases: the archive's own train and test files as shipped inside
sktime, read by :func:`lstmkit.tasks.sequence_files.read_sequences`. lstmkit trains
``lstmkit train classify --dataset NAME --threads 1 --steps S --seed K`` (defaults otherwise:
hidden 64, Adam 3e-3, batch 32) and is scored with its last weights. The peers get each case as
(C, T) numpy arrays; where a set's cases differ in length (JapaneseVowels) each case is padded to
the longest by repeating its last value, since ROCKET and sktime's DTW take equal lengths. Peers:
MiniRocket (``RocketClassifier(rocket_transform="minirocket")``, a ridge classifier on its
features) and 1-NN DTW (``KNeighborsTimeSeriesClassifier(distance="dtw")``). Fit and predict
seconds are wall time; everything runs at one thread (``NUMBA_NUM_THREADS=1``, torch one thread),
and a warm-up fit on a few cases first keeps numba's compilation out of the peers' times.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels")


def peer_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, C, T) train and test arrays (unequal cases padded with their last value) and labels."""
    from lstmkit.tasks.sequence_files import archive_set, read_sequences

    out = []
    for path in archive_set(name):
        seqs = read_sequences(path)
        x = seqs.values.copy()
        for n, L in enumerate(seqs.lengths):
            x[n, L:] = x[n, L - 1]
        x = np.where(np.isfinite(x), x, 0.0)  # a missing value inside a case (none in these sets)
        out += [np.transpose(x, (0, 2, 1)), seqs.labels]
    T = max(out[0].shape[2], out[2].shape[2])
    for k in (0, 2):  # the two files may have different longest cases
        pad = T - out[k].shape[2]
        if pad:
            out[k] = np.concatenate([out[k], np.repeat(out[k][:, :, -1:], pad, axis=2)], axis=2)
    return out[0], out[1], out[2], out[3]


def peers() -> dict[str, Any]:
    """Name -> a function returning a fresh sktime classifier."""
    from sktime.classification.distance_based import KNeighborsTimeSeriesClassifier
    from sktime.classification.kernel_based import RocketClassifier

    return {
        "sktime MiniRocket": lambda: RocketClassifier(rocket_transform="minirocket", random_state=0),
        "sktime 1-NN DTW": lambda: KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw"),
    }


def run_peer(make: Any, data: tuple[np.ndarray, ...]) -> dict[str, float]:
    Xtr, ytr, Xte, yte = data
    model = make()
    start = time.perf_counter()
    model.fit(Xtr, ytr)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    guess = model.predict(Xte)
    predict = time.perf_counter() - start
    return {"accuracy": float(np.mean(np.asarray(guess) == yte)), "fit_s": fit, "predict_s": predict}


def run_lstmkit(name: str, steps: int, seed: int, out: Path) -> dict[str, float]:
    """``lstmkit train classify`` in this process; accuracy and training seconds from its report."""
    from lstmkit.cli import main
    from lstmkit.train.checkpoint import load_run
    from lstmkit.train.runtools import evaluate

    argv = ["train", "classify", "--dataset", name, "--steps", str(steps), "--eval-every", str(steps)]
    argv += ["--seed", str(seed), "--threads", "1", "--out", str(out), "--overwrite", "--quiet"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        if main(argv) != 0:
            raise SystemExit(f"lstmkit train classify --dataset {name} failed")
    report = json.loads(buf.getvalue())
    from lstmkit.tasks import make_task

    model, config = load_run(out)
    task = make_task("classify", **config.task_args)
    start = time.perf_counter()
    evaluate(model, task)
    predict = time.perf_counter() - start
    return {"accuracy": report["test"]["accuracy"], "fit_s": report["seconds"], "predict_s": predict}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS), help="comma-separated archive set names")
    ap.add_argument("--steps", type=int, default=300, help="lstmkit optimiser steps")
    ap.add_argument("--seeds", default="0", help="lstmkit seeds, comma-separated")
    ap.add_argument("--no-dtw", action="store_true", help="skip 1-NN DTW (the slowest peer)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    contenders = peers()
    if args.no_dtw:
        contenders.pop("sktime 1-NN DTW")
    warm = peer_arrays("ItalyPowerDemand")
    for make in contenders.values():  # numba compiles on the first fit; keep that out of the table
        make().fit(warm[0][:8], warm[1][:8])
    rows = []
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            data = peer_arrays(name)
            got = [run_lstmkit(name, args.steps, s, Path(tmp) / f"{name}-{s}") for s in seeds]
            acc = [g["accuracy"] for g in got]
            spread = f" ± {np.std(acc):.3f}" if len(acc) > 1 else ""
            rows.append((name, f"lstmkit LSTM ({len(seeds)} seed{'s' * (len(seeds) > 1)})",
                         f"{np.mean(acc):.3f}{spread}", np.mean([g["fit_s"] for g in got]),
                         np.mean([g["predict_s"] for g in got])))  # fmt: skip
            for label, make in contenders.items():
                r = run_peer(make, data)
                rows.append((name, label, f"{r['accuracy']:.3f}", r["fit_s"], r["predict_s"]))
            print(f"done {name}", flush=True)
    print("| set | classifier | test accuracy | fit s | predict s |")
    print("|---|---|---|---|---|")
    for name, label, acc_text, fit, pred in rows:
        print(f"| {name} | {label} | {acc_text} | {fit:.1f} | {pred:.2f} |")


if __name__ == "__main__":
    main()
