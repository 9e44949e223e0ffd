"""Stateful training (truncated BPTT): gradients stop at K steps, per-stream resets, exact resume,
``SequenceModel.forward_state`` chunked == whole, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.tasks.base import Segment
from lstmkit.train import ModelConfig, OptimConfig, RunConfig, build_model, train
from lstmkit.train.checkpoint import METRICS, read_checkpoint, read_state
from lstmkit.train.model import SequenceModel
from lstmkit.train.tbptt import check_state, reset_streams, tbptt_loss

pytestmark = pytest.mark.usefixtures("one_thread")


# short sequences and gaps, so that a few segments hold keyword events, sequence ends and resets
KEYWORD = {"seq_len": 6, "keywords": 2, "noise": 3, "min_gap": 3, "max_gap": 9, "episode_min": 15, "episode_max": 25}


def token_model(vocab: int, out: int, **kw: Any) -> SequenceModel:
    cfg = ModelConfig(input_size=1, output_size=out, vocab_size=vocab, readout="all", hidden=6, embedding_dim=4, **kw)
    return build_model(cfg, seed=2)


def segments(count: int, k: int = 6, b: int = 3) -> list[Segment]:
    task = make_task("keyword", test_len=50, **KEYWORD)
    streams = task.streams(b)
    return [streams.next(k, torch.Generator().manual_seed(100 + n)) for n in range(count)]


# ---------------------------------------------------------------- gradients stop at K steps
def hand_loss(params: dict[str, torch.Tensor], segs: list[Segment], detach: bool) -> torch.Tensor:
    """The last segment's loss, the LSTM written out step by step (i, f, g, o rows), zeroing reset
    streams and (with ``detach``) cutting the graph between segments."""
    w_ih, w_hh = params["lstm.weight_ih_l0"], params["lstm.weight_hh_l0"]
    bias = params["lstm.bias_ih_l0"] + params["lstm.bias_hh_l0"]
    b, hidden = segs[0].batch.inputs.shape[0], w_hh.shape[1]
    h = c = torch.zeros(b, hidden)
    loss = torch.zeros(())
    for seg in segs:
        keep = (~seg.reset).to(h.dtype).unsqueeze(1)  # (B, 1)
        h, c = h * keep, c * keep
        x = F.embedding(seg.batch.inputs, params["embedding.weight"])  # (B, K, E)
        logits = []
        for t in range(x.shape[1]):
            i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            logits.append(h @ params["head.weight"].T + params["head.bias"])
        y, mask = torch.stack(logits, 1), seg.batch.mask
        assert mask is not None
        loss = F.cross_entropy(y[mask], seg.batch.targets[mask])
        if detach:
            h, c = h.detach(), c.detach()
    return loss


def test_tbptt_gradient_equals_a_hand_written_detach_loop() -> None:
    segs = segments(5)
    assert any(bool(s.reset.any()) for s in segs[1:]), "the segments should include a reset after the first"
    assert any(not bool(s.batch.mask.all()) for s in segs if s.batch.mask is not None), "and a sequence end"
    model = token_model(5, 2)
    task = make_task("keyword", test_len=50, **KEYWORD)
    state = None
    for seg in segs[:-1]:
        _, state = tbptt_loss(model, task, seg, state)
        assert all(not s.requires_grad for s in state)  # carried without a graph
    loss, _ = tbptt_loss(model, task, segs[-1], state)
    model.zero_grad()
    loss.backward()
    ours = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    ref = hand_loss(params, segs, detach=True)
    torch.testing.assert_close(loss.detach(), ref.detach(), atol=1e-6, rtol=1e-6)
    grads = torch.autograd.grad(ref, list(params.values()))
    for (name, _), g in zip(params.items(), grads, strict=True):
        torch.testing.assert_close(ours[name], g, atol=1e-6, rtol=1e-5, msg=name)

    full = torch.autograd.grad(hand_loss(params, segs, detach=False), [params["lstm.weight_hh_l0"]])[0]
    assert not torch.allclose(full, ours["lstm.weight_hh_l0"], atol=1e-6)  # without the cut it differs


# ---------------------------------------------------------------- per-stream reset
def test_reset_zeroes_only_the_chosen_streams() -> None:
    gen = torch.Generator().manual_seed(0)
    state = (torch.randn(2, 4, 3, generator=gen), torch.randn(2, 4, 5, generator=gen), torch.randn(1, 4, 2, 2))
    reset = torch.tensor([False, True, False, True])
    out = reset_streams(state, reset)
    assert out is not None
    for s, r in zip(state, out, strict=True):
        assert torch.equal(r[:, 1], torch.zeros_like(s[:, 1])) and torch.equal(r[:, 3], torch.zeros_like(s[:, 3]))
        assert torch.equal(r[:, 0], s[:, 0]) and torch.equal(r[:, 2], s[:, 2])
    assert reset_streams(None, reset) is None
    with pytest.raises(ValueError, match=r"reset mask has 3 streams; the state holds \(2, 4, 3\)"):
        reset_streams(state, torch.tensor([True, False, False]))


def test_a_reset_stream_equals_a_fresh_one_and_the_others_are_untouched() -> None:
    model = token_model(5, 2).eval()
    gen = torch.Generator().manual_seed(1)
    first, second = torch.randint(0, 5, (3, 7), generator=gen), torch.randint(0, 5, (3, 4), generator=gen)
    with torch.no_grad():
        _, state = model.forward_state(first)
        carried, _ = model.forward_state(second, state)
        reset = reset_streams(state, torch.tensor([False, True, False]))
        after, _ = model.forward_state(second, reset)
        fresh, _ = model.forward_state(second[1:2])
    assert torch.equal(after[[0, 2]], carried[[0, 2]])
    torch.testing.assert_close(after[1:2], fresh, atol=1e-6, rtol=0)
    assert not torch.allclose(carried[1:2], fresh, atol=1e-4)  # the carried state did matter


# ---------------------------------------------------------------- resume bit for bit
def stream_config(task: str, task_args: dict[str, object], vocab: int, out: int, steps: int) -> RunConfig:
    return RunConfig(
        task=task,
        task_args=task_args,
        model=ModelConfig(
            input_size=1,
            output_size=out,
            vocab_size=vocab,
            readout="all",
            hidden=8,
            embedding_dim=4,
            layers=2,
            dropout=0.2,
        ),
        optim=OptimConfig(
            lr=1e-2, batch_size=3, steps=steps, eval_every=4, log_every=2, stop_when_solved=False, tbptt=6
        ),
        seed=5,
    )


def stream_runs(tmp_path: Path) -> list[tuple[str, dict[str, object]]]:
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog; " * 8)
    return [
        ("keyword", {**KEYWORD, "test_len": 120}),
        ("charlm", {"text_file": str(text), "seq_len": 4, "test_size": 4}),  # test windows of 4, segments of 6
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["keyword", "charlm"])
def test_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_run(tmp_path: Path, which: int) -> None:
    name, args = stream_runs(tmp_path)[which]
    task = make_task(name, **args)
    full = stream_config(name, task.config(), task.vocab_size or 0, task.output_size, steps=12)
    train(full, tmp_path / "a", quiet=True)
    train(
        full.replace(optim=OptimConfig(**{**vars(full.optim), "steps": 8})), tmp_path / "b", quiet=True
    )  # ends at an evaluation
    middle = read_state(tmp_path / "b")
    assert middle["step"] == 8 and "streams" in middle
    assert any(k.startswith("stream.") for k in read_checkpoint(tmp_path / "b")[0])
    train(full, tmp_path / "b", resume=True, quiet=True)

    (ta, _), (tb, _) = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key  # weights, optimiser moments and the streams' state
    sa, sb = read_state(tmp_path / "a"), read_state(tmp_path / "b")
    assert sa["streams"] == sb["streams"] and sa["test"] == sb["test"]
    rows_a = [{k: v for k, v in r.items() if k != "elapsed"} for r in map(eval_json, lines(tmp_path / "a"))]
    rows_b = [{k: v for k, v in r.items() if k != "elapsed"} for r in map(eval_json, lines(tmp_path / "b"))]
    assert rows_a == rows_b and len(rows_a) == 6


def lines(run: Path) -> list[str]:
    return (run / METRICS).read_text().splitlines()


def eval_json(line: str) -> dict[str, object]:
    import json

    row = json.loads(line)
    assert isinstance(row, dict)
    return row


# ---------------------------------------------------------------- forward_state chunked == whole
CORES = [
    pytest.param({}, id="lstm"),
    pytest.param({"layers": 2, "proj_size": 3}, id="lstm-2-layers-projection"),
    pytest.param({"baseline": "gru", "layers": 2}, id="gru"),
    pytest.param({"spec": {"full_gate_recurrence": True}}, id="fgr"),
]


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("readout", ["all", "last"])
def test_forward_state_in_chunks_equals_the_whole_sequence(core: dict[str, object], readout: str) -> None:
    cfg = ModelConfig(input_size=3, output_size=2, hidden=5, readout=readout, **core)  # type: ignore[arg-type]
    model = build_model(cfg, seed=4).eval()
    x = torch.randn(2, 13, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole, final = model.forward_state(x)
        if core.get("spec") and len(final) == 2:
            pytest.skip("the LSTM does not yet return FGR's previous gates in its state (issue 21, item 1)")
        pieces, state = [], None
        for a, b in ((0, 1), (1, 5), (5, 6), (6, 13)):
            y, state = model.forward_state(x[:, a:b], state)
            pieces.append(y)
        assert state is not None
        torch.testing.assert_close(torch.cat(pieces, 1), whole, atol=1e-6, rtol=0)
        for s, f in zip(state, final, strict=True):
            torch.testing.assert_close(s, f, atol=1e-6, rtol=0)
        if readout == "last":  # step t of the stream is the prediction for the sequence cut after t
            torch.testing.assert_close(whole[:, -1], model(x), atol=1e-6, rtol=0)
            torch.testing.assert_close(whole[:, 6], model(x[:, :7]), atol=1e-6, rtol=0)
    assert len(final) == (1 if core.get("baseline") == "gru" else len(final)) and final[0].shape[1] == 2


def test_forward_state_refuses_a_bidirectional_model() -> None:
    model = build_model(ModelConfig(input_size=3, output_size=2, bidirectional=True))
    with pytest.raises(ValueError, match=r"bidirectional model cannot stream.*expected bidirectional=False"):
        model.forward_state(torch.randn(1, 4, 3))


# ---------------------------------------------------------------- bad input: one line, nothing written
def one_line(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_tbptt_on_a_task_without_streams_is_refused_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["train", "adding", "--tbptt", "10", "--out", str(out), "--steps", "2"])
    one_line(capsys, code, "--tbptt needs a task with streams (charlm, keyword)", "'adding' has none")
    assert not out.exists()
    cfg = RunConfig(
        task="adding",
        task_args={"T": 30},
        model=ModelConfig(input_size=2, output_size=1),
        optim=OptimConfig(steps=2, tbptt=4),
    )
    with pytest.raises(ValueError, match=r"needs a task with streams \(charlm, keyword\)"):
        train(cfg, out, quiet=True)
    assert not out.exists()


@pytest.mark.parametrize("k", ["0", "-3"])
def test_tbptt_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], k: str) -> None:
    out = tmp_path / "run"
    code = main(["train", "keyword", "--tbptt", k, "--out", str(out)])
    one_line(capsys, code, f"--tbptt must be >= 1 (steps between detaches); got {k}")
    assert not out.exists()
    with pytest.raises(ValueError, match=rf"tbptt must be an int >= 0 .*got {int(k) - 1}"):
        OptimConfig(tbptt=int(k) - 1)  # the Python API: 0 is off, below 0 is refused


def test_a_state_from_another_core_or_spec_is_refused() -> None:
    lstm, gru = token_model(5, 2), token_model(5, 2, baseline="gru")
    x = torch.zeros(3, 2, dtype=torch.int64)
    _, lstm_state = lstm.forward_state(x)
    _, gru_state = gru.forward_state(x)
    with pytest.raises(ValueError, match=r"expected 2 tensors shaped \[\(1, 3, 6\), \(1, 3, 6\)\]; got 1"):
        check_state(lstm, gru_state, 3)
    with pytest.raises(ValueError, match=r"expected 1 tensors shaped \[\(1, 3, 6\)\]; got 2"):
        check_state(gru, lstm_state, 3)
    with pytest.raises(ValueError, match=r"expected 2 tensors shaped \[\(1, 4, 6\), \(1, 4, 6\)\]; got 2 shaped"):
        check_state(lstm, lstm_state, 4)  # another number of streams
    with pytest.raises(ValueError, match=r"must be torch.float32; got torch.float64"):
        check_state(lstm, tuple(s.double() for s in lstm_state), 3)
    with pytest.raises(ValueError, match=r"GRU core's state is a 1-tuple \(h,\); got 2 tensors"):
        gru.forward_state(x, lstm_state)
    fgr = token_model(5, 2, spec={"full_gate_recurrence": True})
    _, fgr_state = fgr.forward_state(x)
    if len(fgr_state) == 2:
        pytest.skip("the LSTM does not yet return FGR's previous gates in its state (issue 21, item 1)")
    with pytest.raises(ValueError, match=r"expected 3 tensors .*; got 2"):
        check_state(fgr, lstm_state, 3)
