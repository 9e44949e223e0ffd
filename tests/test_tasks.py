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
    assert {"adding", "copy", "order", "reber", "charlm", "forecast"} <= set(TASKS)
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
    assert "training_sequences_to_solve" not in task.paper
    assert make_task("adding").paper["training_sequences_to_solve"]["100"] == 74_000


def test_adding_bad_arguments() -> None:
    with pytest.raises(ValueError, match="T must be >= 22"):
        make_task("adding", T=10)
    with pytest.raises(TypeError, match="T must be an int"):
        make_task("adding", T=10.5)
    with pytest.raises(TypeError, match="generator"):
        make_task("adding").sample(2, 0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- every task
EVERY = [
    ("adding", {"T": 30}),
    ("adding", {"T": 30, "modern": True}),
    ("copy", {"T": 12}),
    ("order", {"variant": "6a"}),
    ("order", {"variant": "6b"}),
    ("reber", {}),
    ("charlm", {"seq_len": 20, "test_size": 30}),
]


@pytest.mark.parametrize(("name", "kwargs"), EVERY)
def test_determinism_and_fixed_test_set(name: str, kwargs: dict) -> None:
    task = make_task(name, **kwargs)
    assert same_batch(task.sample(16, gen(7)), task.sample(16, gen(7)))
    assert not same_batch(task.sample(16, gen(7)), task.sample(16, gen(8)))
    again = make_task(name, **task.config())
    assert same_batch(task.test_set(), again.test_set())
    assert same_batch(task.test_set(), task.test_set())
    assert task.paper.get("source")


# ----------------------------------------------------------------------------- copy
@pytest.mark.parametrize("T", [1, 25])
def test_copy_definition(T: int) -> None:
    task = make_task("copy", T=T)
    batch = task.sample(64, gen(4))
    L = T + 20
    assert batch.inputs.shape == (64, L, 10) and batch.targets.shape == (64, L)
    assert bool((batch.inputs.sum(dim=2) == 1).all())  # one-hot
    tokens = batch.inputs.argmax(dim=2)
    data = tokens[:, :10]
    assert bool(((data >= 1) & (data <= 8)).all())
    assert bool((tokens[:, 10 : 10 + T - 1] == 0).all())  # T - 1 blanks
    assert bool((tokens[:, 9 + T] == 9).all())  # the delimiter
    assert bool((tokens[:, 10 + T :] == 0).all())  # 10 blanks
    assert bool((batch.targets[:, : T + 10] == 0).all())
    assert torch.equal(batch.targets[:, T + 10 :], data)
    assert batch.mask is not None and bool(batch.mask.all())
    assert bool((batch.lengths == L).all())


def test_copy_baseline_and_perfect() -> None:
    T = 30
    task = make_task("copy", T=T)
    test = task.test_set()
    n, L = len(test), T + 20
    memoryless = torch.full((n, L, 10), -1e9)
    memoryless[:, : T + 10, 0] = 0.0  # blank for sure
    memoryless[:, T + 10 :, 1:9] = 0.0  # uniform over the 8 symbols
    m = task.metrics(memoryless, test)
    assert math.isclose(m["loss"], 10 * math.log(8) / (T + 20), rel_tol=1e-5)
    assert math.isclose(m["baseline_loss"], 10 * math.log(8) / (T + 20), rel_tol=1e-12)
    assert not task.solved(m)
    perfect = torch.nn.functional.one_hot(test.targets, 10).float() * 50.0
    p = task.metrics(perfect, test)
    assert p["loss"] < 1e-6 and p["accuracy"] == 1.0 and p["sequence_accuracy"] == 1.0
    assert task.solved(p)


# ----------------------------------------------------------------------------- order
@pytest.mark.parametrize("variant", ["6a", "6b"])
def test_order_definition(variant: str) -> None:
    ranges = {"6a": [(10, 20), (50, 60)], "6b": [(10, 20), (33, 43), (66, 76)]}[variant]
    task = make_task("order", variant=variant)
    assert task.input_size == 8 and task.output_size == 2 ** len(ranges)
    batch = task.sample(300, gen(5))
    a, b, c, d, X, Y, B, E = range(8)
    seen_lengths = set()
    for row in range(len(batch)):
        n = int(batch.lengths[row])
        seen_lengths.add(n)
        assert 100 <= n <= 110
        assert bool((batch.inputs[row, :n].sum(dim=1) == 1).all())
        assert bool((batch.inputs[row, n:] == 0).all())
        sym = batch.inputs[row, :n].argmax(dim=1).tolist()
        assert sym[0] == E and sym[-1] == B
        relevant = [t for t, s in enumerate(sym) if s in (X, Y)]
        assert len(relevant) == len(ranges)
        for t, (lo, hi) in zip(relevant, ranges, strict=True):
            assert lo <= t + 1 <= hi  # paper positions count from 1
        assert all(s in (a, b, c, d) for t, s in enumerate(sym[1:-1], 1) if t not in relevant)
        cls = 0
        for t in relevant:
            cls = 2 * cls + (1 if sym[t] == Y else 0)  # X,X -> Q (0), X,Y -> R (1), Y,X -> S (2), ...
        assert int(batch.targets[row].argmax()) == cls and float(batch.targets[row].sum()) == 1.0
        assert int(batch.extra["label"][row]) == cls
    assert len(seen_lengths) > 5
    assert set(batch.extra["label"].tolist()) == set(range(task.output_size))
    if variant == "6b":
        assert task.class_names[5] == "A"  # Y, X, Y -> A


def test_order_metrics() -> None:
    task = make_task("order", variant="6a")
    test = task.test_set()
    perfect = task.metrics(test.targets * 20.0 - 10.0, test)
    assert perfect["correct"] == 1.0 and perfect["accuracy"] == 1.0 and task.solved(perfect)
    flat = task.metrics(torch.zeros(len(test), 4), test)
    assert flat["correct"] == 0.0 and math.isclose(flat["mean_abs_error"], 0.5)
    assert math.isclose(flat["loss"], math.log(2), rel_tol=1e-6) and not task.solved(flat)
    with pytest.raises(ValueError, match="variant must be one of"):
        make_task("order", variant="6c")


# ----------------------------------------------------------------------------- reber
# The grammar written out again, independently: node -> {symbol: node}.
REBER_GRAPH = {
    "r0": {"B": "r1"},
    "r1": {"T": "r2", "P": "r3"},
    "r2": {"S": "r2", "X": "r4"},
    "r3": {"T": "r3", "V": "r5"},
    "r4": {"X": "r3", "S": "r6"},
    "r5": {"P": "r4", "V": "r6"},
    "r6": {"E": "out"},
}


def embedded_graph() -> dict[str, dict[str, str]]:
    graph = {"start": {"B": "fork"}, "fork": {"T": "T.r0", "P": "P.r0"}, "join": {"E": "end"}, "end": {}}
    for branch in "TP":
        for node, edges in REBER_GRAPH.items():
            graph[f"{branch}.{node}"] = {
                s: ("close" + branch if n == "out" else f"{branch}.{n}") for s, n in edges.items()
            }
        graph["close" + branch] = {branch: "join"}
    return graph


REBER_LANGUAGE = r"B(T(S*X(S|XT*V(PXT*V)*(V|PS)))|P(T*V(PXT*V)*(V|PS)))E"


def test_reber_reference_grammar_itself() -> None:
    import re

    for good in ["BTSSXXTVVE", "BPVVE", "BTXXVPSE", "BPVPXVPXVPXVVE", "BTSXXVPSE"]:
        assert re.fullmatch(REBER_LANGUAGE, good)
    for bad in ["BTSSPXSE", "BPTVVB", "BTXXVVSE", "BPVSPSE", "BTSSSE"]:
        assert not re.fullmatch(REBER_LANGUAGE, bad)


def test_reber_definition() -> None:
    import re

    task = make_task("reber")
    batch = task.sample(500, gen(6))
    letters = "BTPSXVE"
    graph = embedded_graph()
    branches = set()
    for row in range(len(batch)):
        n = int(batch.lengths[row])
        sym = [letters[i] for i in batch.inputs[row, :n].argmax(dim=1).tolist()]
        assert bool((batch.inputs[row, n:] == 0).all())
        node = "start"
        for t, s in enumerate(sym):
            assert s in graph[node], f"illegal {s} after {''.join(sym[:t])}"
            node = graph[node][s]
            legal = {letters[i] for i in torch.nonzero(batch.targets[row, t]).flatten().tolist()}
            assert legal == set(graph[node])
        assert node == "join"  # the only missing symbol is the final E
        text = "".join(sym) + "E"
        assert re.fullmatch(REBER_LANGUAGE, text[2:-2]) and text[1] == text[-2] and text[0] == "B"
        assert int(batch.extra["branch"][row]) == (text[1] == "T")
        branches.add(text[1])
        assert batch.mask is not None and int(batch.mask[row].sum()) == n
    assert branches == {"T", "P"}


def test_reber_metrics() -> None:
    task = make_task("reber")
    test = task.test_set()
    perfect = test.targets * 10.0 - 5.0
    m = task.metrics(perfect, test)
    assert m["string_accuracy"] == 1.0 and m["step_accuracy"] == 1.0 and m["tp_accuracy"] == 1.0
    assert task.solved(m)
    forgetful = perfect.clone()
    rows = torch.arange(len(test))
    forgetful[rows, test.lengths - 2, 1] = 5.0  # T and P both look legal before the last E
    forgetful[rows, test.lengths - 2, 2] = 5.0
    f = task.metrics(forgetful, test)
    assert f["tp_accuracy"] == 0.0 and f["string_accuracy"] == 0.0 and 0.8 < f["step_accuracy"] < 1.0
    assert not task.solved(f)
    flat = task.metrics(torch.zeros_like(test.targets), test)
    assert flat["step_accuracy"] == 0.0 and math.isclose(flat["loss"], math.log(2), rel_tol=1e-6)


# ----------------------------------------------------------------------------- charlm
def test_charlm_windows_and_round_trip(tmp_path) -> None:
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    task = make_task("charlm", text_file=str(path), seq_len=16)
    assert task.vocab == "".join(sorted(set(text[: int(len(text) * 0.9)])))
    assert task.vocab_size == len(task.vocab) + 1 and task.output_size == task.vocab_size
    assert task.decode(task.encode("the lazy dog")) == "the lazy dog"
    assert task.encode("Z").tolist() == [0] and task.decode([0]) == "\ufffd"
    batch = task.sample(8, gen(9))
    assert batch.inputs.shape == (8, 16) and batch.inputs.dtype == torch.int64
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    for row in range(8):
        start = int(batch.extra["start"][row])
        assert task.decode(batch.inputs[row]) == text[start : start + 16]
        assert task.decode(batch.targets[row]) == text[start + 1 : start + 17]
    split = int(len(text) * 0.9)
    test = task.test_set()
    joined = "".join(task.decode(torch.cat([test.inputs[r], test.targets[r, -1:]])) for r in range(len(test)))
    assert len(test) == (len(text) - split - 1) // 16
    for r in range(len(test)):
        assert task.decode(test.inputs[r]) == text[split + 16 * r : split + 16 * r + 16]
    assert joined.startswith(text[split : split + 17])
    # a reload from config keeps the mapping even when the text changes
    other = tmp_path / "u.txt"
    other.write_text("zzzz" + text, encoding="utf-8")
    again = make_task("charlm", **{**task.config(), "text_file": str(other)})
    assert again.vocab == task.vocab and torch.equal(again.encode("fox"), task.encode("fox"))


def test_charlm_default_text_and_metrics() -> None:
    task = make_task("charlm", seq_len=50, test_size=40)
    test = task.test_set()
    assert len(test) == 40 and test.targets.shape == (40, 50)
    uniform = task.metrics(torch.zeros(40, 50, task.vocab_size), test)
    assert math.isclose(uniform["bpc"], math.log2(task.vocab_size), rel_tol=1e-5)
    perfect = torch.nn.functional.one_hot(test.targets, task.vocab_size).float() * 50.0
    p = task.metrics(perfect, test)
    assert p["bpc"] < 1e-6 and p["accuracy"] == 1.0 and not task.solved(p)


def test_charlm_bad_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        make_task("charlm", text_file=str(tmp_path / "missing.txt"))
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(ValueError, match="not UTF-8 text"):
        make_task("charlm", text_file=str(binary))
    short = tmp_path / "s.txt"
    short.write_text("hello world", encoding="utf-8")
    with pytest.raises(ValueError, match=r"too short: 11 characters"):
        make_task("charlm", text_file=str(short), seq_len=100)
    with pytest.raises(ValueError, match="not a regular file"):
        make_task("charlm", text_file=str(tmp_path))


# ----------------------------------------------------------------------------- longest lags (chrono's T_max)
@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("adding", {"T": 1000}, 1100),  # lengths T .. T + T/10, first mark among the first ten steps
        ("adding", {"T": 500, "modern": True}, 500),
        ("copy", {"T": 200}, 220),  # symbols read at steps 0..9, written back at T + 10 .. T + 19
        ("order", {"variant": "6b"}, 110),
        ("charlm", {}, None),
    ],
)
def test_max_lag_is_the_longest_lag(name: str, kwargs: dict, expected: int | None) -> None:
    task = make_task(name, **kwargs)
    assert task.max_lag == expected
    if expected is not None:  # no test sequence is longer than the longest lag, and some reach it
        lengths = task.test_set().lengths
        assert int(lengths.max()) <= expected
        assert int(lengths.max()) >= expected - 1 or name == "order"


def test_reber_max_lag_is_its_longest_test_string() -> None:
    task = make_task("reber", test_size=300)
    batch = task.test_set()
    assert task.max_lag == int(batch.lengths.max()) == batch.inputs.shape[1]
    assert 10 < task.max_lag < 100


# ----------------------------------------------------------------------------- docstring examples
@pytest.mark.parametrize("module", ["__init__", "adding", "copy", "order", "reber", "charlm", "forecast"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module("lstmkit.tasks" if module == "__init__" else f"lstmkit.tasks.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0 or module == "forecast"
