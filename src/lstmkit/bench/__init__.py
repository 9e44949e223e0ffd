"""lstmkit's speed benchmark (not tests): ``lstmkit bench [--quick]`` or ``python -m benchmarks``.

Times forward and training steps of ``torch.nn.LSTM``, lstmkit's kernels for every spec family and
hand-written loops (TorchScript, Python), interleaving the contenders within each repetition, at
torch's default thread count and at one thread; reports medians and ratios to ``torch.nn.LSTM``
measured in the same run, and which speed targets each cell of the grid meets. Ships inside the
package so an installed lstmkit can run it.

- :mod:`.contenders`: the timed models and their goals;
- :mod:`.timing`: interleaved medians and the matmul peak;
- :mod:`.memory`: peak resident memory of one training step in a fresh process;
- :mod:`.run`: the plan (grid, thread counts) and the run; :mod:`.report`: tables and target checks.
"""
