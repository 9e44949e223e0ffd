"""Peak memory of one training step, measured as the growth of the resident set in a fresh process.

``python -m lstmkit.bench.memory NAME T B H THREADS`` builds the contender, runs a 2-step warm-up (loading
libraries and the compiled extension), resets the kernel's high-water mark of the process
(``/proc/self/clear_refs``), runs one training step and prints JSON with
``peak_mib = VmHWM after the step - VmRSS before it`` and the step's seconds. Linux only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe(name: str, T: int, B: int, H: int) -> dict[str, float]:
    """Run in this process (call it in a fresh one): peak RSS growth and time of one training step."""
    from .contenders import by_name
    from .timing import training_step

    torch.manual_seed(0)
    (contender,) = by_name([name])
    runner = contender.build(H, H, 1, False)
    training_step(runner, torch.randn(2, B, H))()
    x = torch.randn(T, B, H)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    training_step(runner, x)()
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    return {"peak_mib": (peak - before) / 1024.0, "seconds": seconds}


def measure(name: str, T: int, B: int, H: int, threads: int) -> dict[str, float]:
    """:func:`probe` in a subprocess (so earlier work in this process cannot hide the peak)."""
    cmd = [sys.executable, "-m", "lstmkit.bench.memory", name, str(T), str(B), str(H), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    name, T, B, H, threads = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    print(json.dumps(probe(name, T, B, H)))
