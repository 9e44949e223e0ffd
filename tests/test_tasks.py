"""Task generators against their definitions, written out here independently of the code under test."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.tasks import TASKS, Batch, Task, make_task


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_batch(a: Batch, b: Batch) -> bool:
    if not (torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)):
        return False
    if not torch.equal(a.lengths, b.lengths):
        return False
    if (a.mask is None) != (b.mask is None):
        return False
    return a.mask is None or torch.equal(a.mask, b.mask)


# ----------------------------------------------------------------------------- registry
def test_registry_names_and_errors() -> None:
    assert "adding" in TASKS
    for name, cls in TASKS.items():
        assert cls.name == name
        assert issubclass(cls, Task)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_task("nope")
    with pytest.raises(TypeError, match="unknown argument"):
        make_task("adding", lenght=10)


# ----------------------------------------------------------------------------- adding
@pytest.mark.parametrize("T", [22, 100, 157])
def test_adding_classic_definition(T: int) -> None:
    task = make_task("adding", T=T)
    batch = task.sample(400, gen(1))
    steps = T + T // 10
    assert batch.inputs.shape == (400, steps, 2)
    assert batch.targets.shape == (400, 1)
    assert batch.mask is None
    assert int(batch.lengths.min()) >= T and int(batch.lengths.max()) <= steps
    for b in range(len(batch)):
        n = int(batch.lengths[b])
        values, markers = batch.inputs[b, :n, 0], batch.inputs[b, :n, 1]
        marked = torch.nonzero(markers == 1.0).flatten().tolist()
        assert len(marked) == 2
        assert min(marked) <= 9  # one of the first ten pairs
        assert max(marked) <= T // 2 - 1  # both in the first half
        others = [t for t in range(n) if t not in marked]
        for t in others:
            want = -1.0 if t in (0, n - 1) else 0.0
            assert float(markers[t]) == want
        assert bool((values.abs() <= 1.0).all())
        if 0 in marked:
            assert float(values[0]) == 0.0
        want = 0.5 + (float(values[marked[0]]) + float(values[marked[1]])) / 4.0
        assert math.isclose(float(batch.targets[b, 0]), want, abs_tol=1e-6)
        assert bool((batch.inputs[b, n:] == 0).all())  # padding


def test_adding_classic_marks_spread() -> None:
    task = make_task("adding", T=100)
    batch = task.sample(4000, gen(2))
    marks = batch.extra["marks"]
    assert set(marks[:, 0].tolist()) == set(range(10))
    assert int(marks[:, 1].max()) == 49 and int(marks[:, 1].min()) == 0
    assert set(batch.lengths.tolist()) == set(range(100, 111))


def test_adding_modern_definition() -> None:
    task = make_task("adding", T=60, modern=True)
    batch = task.sample(300, gen(3))
    assert batch.inputs.shape == (300, 60, 2)
    assert bool((batch.lengths == 60).all())
    markers = batch.inputs[:, :, 1]
    assert bool(((markers == 0) | (markers == 1)).all())
    assert bool((markers[:, :30].sum(1) == 1).all()) and bool((markers[:, 30:].sum(1) == 1).all())
    values = batch.inputs[:, :, 0]
    assert bool(((values >= 0) & (values <= 1)).all())
    assert torch.allclose(batch.targets[:, 0], (values * markers).sum(1), atol=1e-6)


def test_adding_loss_metrics_solved() -> None:
    task = make_task("adding", T=100)
    test = task.test_set()
    assert len(test) == 2560
    perfect = task.metrics(test.targets.clone(), test)
    assert perfect["mse"] == 0.0 and perfect["accuracy"] == 1.0
    assert task.solved(perfect)
    off = task.metrics(test.targets + 0.05, test)
    assert off["accuracy"] == 0.0 and not task.solved(off)
    pred = torch.zeros(2560, 1, requires_grad=True)
    loss = task.loss(pred, test)
    loss.backward()
    assert math.isclose(float(loss.detach()), float((test.targets**2).mean()), rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(2560, 1\)"):
        task.loss(torch.zeros(2560), test)


def test_adding_modern_baseline() -> None:
    task = make_task("adding", T=50, modern=True)
    test = task.test_set()
    m = task.metrics(torch.ones(len(test), 1), test)
    assert abs(m["mse"] - 1 / 6) < 0.015  # Var(X1 + X2) = 2/12
    assert m["baseline_mse"] == m["mse"]
    assert not task.solved(m) and task.solved(task.metrics(test.targets.clone(), test))


def test_adding_bad_arguments() -> None:
    with pytest.raises(ValueError, match="T must be >= 22"):
        make_task("adding", T=10)
    with pytest.raises(TypeError, match="T must be an int"):
        make_task("adding", T=10.5)
    with pytest.raises(TypeError, match="generator"):
        make_task("adding").sample(2, 0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- every task
EVERY = [("adding", {"T": 30}), ("adding", {"T": 30, "modern": True})]


@pytest.mark.parametrize(("name", "kwargs"), EVERY)
def test_determinism_and_fixed_test_set(name: str, kwargs: dict) -> None:
    task = make_task(name, **kwargs)
    assert same_batch(task.sample(16, gen(7)), task.sample(16, gen(7)))
    assert not same_batch(task.sample(16, gen(7)), task.sample(16, gen(8)))
    again = make_task(name, **task.config())
    assert same_batch(task.test_set(), again.test_set())
    assert same_batch(task.test_set(), task.test_set())
    assert task.paper.get("source")
