"""lstmkit's speed benchmarks (not tests): ``python -m benchmarks [--quick] [--out DIR]``.

Times forward and training steps of ``torch.nn.LSTM``, lstmkit's kernels and hand-written loops,
interleaving the contenders within each repetition and reporting medians and ratios to
``torch.nn.LSTM`` measured in the same run. See ``benchmarks/README.md``.
"""
