"""What ``import lstmkit`` gives a user: sub-packages as attributes, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import lstmkit


def test_subpackages_are_attributes_after_a_plain_import() -> None:
    code = (
        "import sys, lstmkit\n"
        "assert 'lstmkit.train' not in sys.modules and 'lstmkit.tasks' not in sys.modules\n"  # lazily
        "print(lstmkit.train.load_run.__name__, lstmkit.tasks.make_task.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["load_run", "make_task"]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        _ = lstmkit.trian  # type: ignore[attr-defined]


def test_a_sequence_model_runs_on_full_length_inputs_without_lengths() -> None:
    from lstmkit.train.config import ModelConfig
    from lstmkit.train.model import build_model

    model = build_model(ModelConfig(input_size=2, output_size=1, hidden=5), seed=0)
    task = lstmkit.tasks.make_task("adding", T=30, modern=True, test_size=4)  # modern form: all of length T
    batch = task.test_set()
    with torch.no_grad():
        assert torch.equal(model(batch.inputs), model(batch.inputs, batch.lengths))


def test_the_recurrent_families_are_exported() -> None:
    for name in ("SLSTM", "SLSTMCell", "MLSTM", "MLSTMCell", "MinLSTM", "MinLSTMCell"):
        assert name in lstmkit.__all__ and getattr(lstmkit, name) is getattr(lstmkit.modules, name)
    out, state = lstmkit.MinLSTM(2, 3)(torch.randn(4, 2))  # unbatched (T, I)
    assert out.shape == (4, 3) and state[0].shape == (1, 3)
