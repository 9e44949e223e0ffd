"""lstmkit.init: chrono (Tallec & Ollivier 2018), the forget bias, torch's default, IRNN; their wiring."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.init import chrono_, forget_bias_, irnn_, torch_default_
from lstmkit.spec import PRESETS, CellSpec
from lstmkit.train.config import RunConfig

H = 16


def gate_bias(bias: torch.Tensor, gates: tuple[str, ...], gate: str) -> torch.Tensor:
    """The rows of ``gate`` in a (G*H,) bias, read with the storage order written out here."""
    k = gates.index(gate)
    return bias[k * H : (k + 1) * H]


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_chrono_distribution_and_sign() -> None:
    """b_f = log(tau - 1), tau - 1 ~ U[1, T_max - 1]; b_i = -b_f; bias_hh rows 0; the sum is the bias."""
    t_max = 500.0
    n = 500
    lstm = lstmkit.LSTM(1, n, num_layers=2, bidirectional=True)
    chrono_(lstm, t_max, generator=torch.Generator().manual_seed(1))
    draws = []
    for suffix in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        b_ih, b_hh = getattr(lstm, "bias_ih" + suffix).detach(), getattr(lstm, "bias_hh" + suffix).detach()
        b_i, b_f = b_ih[:n], b_ih[n : 2 * n]
        assert torch.equal(b_i, -b_f)
        assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= math.log(t_max - 1) + 1e-6
        assert torch.count_nonzero(b_hh[: 2 * n]) == 0  # written once: the cell sees b_ih + b_hh = b_f
        draws.append(b_f.exp())  # tau - 1, uniform on [1, T_max - 1]
    u = torch.cat(draws).double().sort().values  # 2000 draws of tau - 1
    # Kolmogorov-Smirnov distance to U[1, 499]; 1.63 / sqrt(n) is the 1% critical value
    cdf = (u - 1.0) / 498.0
    k = torch.arange(1, len(u) + 1, dtype=torch.float64) / len(u)
    ks = float(torch.maximum(k - cdf, cdf - (k - 1 / len(u))).max())
    assert ks < 1.63 / math.sqrt(len(u))
    assert abs(float(u.mean()) - 250.0) < 4 * 498.0 / math.sqrt(12 * len(u))  # 4 standard errors
    assert not torch.equal(draws[0], draws[1])  # each layer-direction draws its own


def test_chrono_changes_only_input_and_forget_bias_rows() -> None:
    lstm = lstmkit.LSTM(3, H, proj_size=5)
    before = snapshot(lstm)
    chrono_(lstm, 100)
    after = snapshot(lstm)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"bias_ih_l0", "bias_hh_l0"}
    for name in ("bias_ih_l0", "bias_hh_l0"):
        assert torch.equal(before[name][2 * H :], after[name][2 * H :])  # candidate and output rows kept


def test_chrono_same_generator_same_biases() -> None:
    a = chrono_(lstmkit.LSTM(2, H), 50, generator=torch.Generator().manual_seed(3))
    b = chrono_(lstmkit.LSTM(2, H), 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.bias_ih_l0[: 2 * H], b.bias_ih_l0[: 2 * H])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_chrono_per_spec(name: str) -> None:
    """Every preset: the forget gate starts in [1/2, 1 - 1/T_max] and i = 1 - f, or a clear refusal."""
    spec = CellSpec.preset(name)
    cell = lstmkit.LSTMCell(3, H, spec=spec)
    if not spec.input_gate or not spec.forget_gate:
        missing = "input" if not spec.input_gate else "forget"
        with pytest.raises(ValueError, match=f"no {missing} gate"):
            chrono_(cell, 100)
        with pytest.raises(ValueError, match=f"no {missing} gate"):
            lstmkit.LSTMCell(3, H, spec=spec, init="chrono", t_max=100)
        return
    chrono_(cell, 100)
    b = (cell.bias_ih + cell.bias_hh).detach()
    b_i = gate_bias(b, spec.gates, "input")
    if spec.coupled:  # CIFG: f = 1 - sigmoid(b_i)
        f, i = 1 - torch.sigmoid(b_i), torch.sigmoid(b_i)
    else:
        f, i = torch.sigmoid(gate_bias(b, spec.gates, "forget")), torch.sigmoid(b_i)
    assert float(f.min()) >= 0.5 - 1e-6 and float(f.max()) <= 1 - 1 / 100 + 1e-6
    torch.testing.assert_close(i, 1 - f)


def test_chrono_hard_sigmoid_gives_the_same_initial_gates() -> None:
    spec = CellSpec(gate_activation="hard_sigmoid")
    cell = chrono_(lstmkit.LSTMCell(3, H, spec=spec), 200, generator=torch.Generator().manual_seed(0))
    b_f = gate_bias((cell.bias_ih + cell.bias_hh).detach(), spec.gates, "forget")
    f = torch.clamp((b_f + 3) / 6, 0, 1)  # relu6(x + 3) / 6
    tau = 1 / (1 - f)
    assert float(tau.min()) >= 2 - 1e-4 and float(tau.max()) <= 200 + 1e-3
    assert float(f.max()) < 1.0  # not saturated: gradients still flow


def test_chrono_on_torch_modules() -> None:
    lstm = chrono_(nn.LSTM(3, H), 30)
    assert torch.equal(lstm.bias_ih_l0[:H], -lstm.bias_ih_l0[H : 2 * H])
    gru = nn.GRU(3, H)
    before = snapshot(gru)
    chrono_(gru, 30)
    b_z = gru.bias_ih_l0.detach()[H : 2 * H]  # torch.nn.GRU rows: reset, update, new; h' = (1 - z) n + z h
    assert float(b_z.min()) >= 0 and float(b_z.max()) <= math.log(29) + 1e-6
    assert torch.count_nonzero(gru.bias_hh_l0[H : 2 * H]) == 0
    for name in ("bias_ih_l0", "bias_hh_l0"):
        assert torch.equal(before[name][:H], getattr(gru, name)[:H])
        assert torch.equal(before[name][2 * H :], getattr(gru, name)[2 * H :])
    with pytest.raises(TypeError, match="got RNN"):
        chrono_(nn.RNN(3, H), 30)


@pytest.mark.parametrize("t_max", [1, 1.5, float("inf"), float("nan"), -3])
def test_chrono_bad_t_max(t_max: float) -> None:
    with pytest.raises(ValueError, match="t_max must be a finite number >= 2"):
        chrono_(lstmkit.LSTM(2, H), t_max)


def test_chrono_needs_biases() -> None:
    with pytest.raises(ValueError, match="no biases"):
        chrono_(lstmkit.LSTM(2, H, bias=False), 10)
    with pytest.raises(ValueError, match="needs bias=True"):
        lstmkit.LSTM(2, H, bias=False, init="chrono", t_max=10)


def test_constructor_argument() -> None:
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, H, init="chrono", t_max=1000)
    assert lstm.init == "chrono" and lstm.t_max == 1000.0
    assert torch.equal(lstm.bias_ih_l0[:H], -lstm.bias_ih_l0[H : 2 * H])
    lstm.reset_parameters()  # re-draws chrono too
    assert torch.equal(lstm.bias_ih_l0[:H], -lstm.bias_ih_l0[H : 2 * H])
    assert "init=chrono" in repr(lstm)
    with pytest.raises(ValueError, match="needs init='chrono'"):
        lstmkit.LSTM(2, H, t_max=100)
    with pytest.raises(TypeError, match="t_max must be a number"):
        lstmkit.LSTM(2, H, init="chrono")
    with pytest.raises(ValueError, match="sets the forget bias itself"):
        lstmkit.LSTM(2, H, init="chrono", t_max=100, forget_bias=1.0)
    with pytest.raises(ValueError, match="init must be one of"):
        lstmkit.LSTMCell(2, H, init="glorot")
    # torch's default is untouched: same seed, same weights as torch.nn.LSTM
    torch.manual_seed(5)
    ours = lstmkit.LSTM(2, H, init="torch")
    torch.manual_seed(5)
    theirs = nn.LSTM(2, H)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))


def test_forget_bias_written_once() -> None:
    lstm = forget_bias_(lstmkit.LSTM(2, H, num_layers=2), 1.0)
    for k in range(2):
        b = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        assert torch.equal(b[H : 2 * H], torch.ones(H))
    with pytest.raises(ValueError, match="needs a forget gate"):
        forget_bias_(lstmkit.LSTM(2, H, spec="cifg"), 1.0)


def test_torch_default_and_irnn() -> None:
    lstm = lstmkit.LSTM(2, H, num_layers=2, init="chrono", t_max=50)
    torch.manual_seed(7)
    torch_default_(lstm)  # torch's draws over chrono's biases
    torch.manual_seed(7)
    reference = nn.LSTM(2, H, num_layers=2)
    assert all(torch.equal(a, b) for a, b in zip(lstm.parameters(), reference.parameters(), strict=True))
    with pytest.raises(TypeError, match="hidden_size"):
        torch_default_(nn.Linear(2, 3))
    rnn = irnn_(nn.RNN(2, H, nonlinearity="relu"))
    assert torch.equal(rnn.weight_hh_l0, torch.eye(H))
    assert torch.count_nonzero(rnn.bias_ih_l0) == 0 and torch.count_nonzero(rnn.bias_hh_l0) == 0
    with pytest.raises(TypeError, match="torch.nn.RNN"):
        irnn_(nn.GRU(2, H))


# ---------------------------------------------------------------- wiring: task defaults, CLI, checkpoints


def config_for(*argv: str) -> RunConfig:
    """The RunConfig `lstmkit train ARGV` would train, built by the CLI's own code."""
    from lstmkit.cli import _runargs, build_parser

    args = build_parser().parse_args(["train", *argv])
    task_args = _runargs.task_args_from(args, args.task)
    task = _runargs.build_task(args.task, task_args)
    return _runargs.build_config(args, args.task, task, task.config() or task_args)


@pytest.mark.parametrize(
    ("argv", "t_max"),
    [
        (("adding", "--seq-len", "1000"), 1100),  # classic lengths T .. T + T/10
        (("adding", "--seq-len", "500", "--modern"), 500),
        (("adding", "--seq-len", "100"), 110),
        (("copy", "--seq-len", "100"), 960),  # 8 (T + 20): every symbol is held across the whole gap
        (("order", "--variant", "6b"), 110),
        (("reber",), None),  # the longest test string
    ],
)
def test_task_defaults_use_chrono_with_the_tasks_length(argv: tuple[str, ...], t_max: int | None) -> None:
    from lstmkit.tasks import make_task

    config = config_for(*argv)
    assert config.model.init == "chrono" and config.model.forget_bias == 0.0
    expected = t_max if t_max is not None else make_task("reber").max_lag
    assert config.model.t_max == expected
    assert 10 < expected < 100 or t_max is not None


def test_each_core_gets_its_own_init_and_flags_override() -> None:
    assert config_for("adding", "--baseline", "gru").model.init == "chrono"
    rnn = config_for("adding", "--baseline", "rnn").model
    assert rnn.init == "irnn" and rnn.t_max is None
    fb = config_for("adding", "--forget-bias", "5").model
    assert fb.init == "torch" and fb.forget_bias == 5.0 and fb.t_max is None
    assert config_for("adding", "--init", "torch").model.t_max is None
    assert config_for("adding", "--t-max", "50").model.t_max == 50.0
    assert config_for("adding", "--spec", "nig").model.init == "torch"  # NIG lacks the input gate
    assert config_for("charlm").model.init == "torch"  # no long-lag default for the character model


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "adding", "--baseline", "rnn", "--init", "chrono"], "init must be one of ('torch', 'irnn')"),
        (["train", "adding", "--init", "torch", "--t-max", "10"], "needs init='chrono'"),
        (["train", "adding", "--t-max", "1"], "t_max must be a finite number >= 2"),
        (["train", "adding", "--init", "chrono", "--forget-bias", "2"], "sets the forget bias itself"),
        (["train", "charlm", "--init", "chrono"], "needs --t-max"),
    ],
)
def test_init_flag_errors_are_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.cli import main

    code = main([*argv, "--steps", "1", "--test-size", "8", "--quiet"] if argv[1] != "charlm" else argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_chrono_reaches_the_model_and_lives_in_the_checkpoint(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.cli import main
    from lstmkit.train import load_run
    from lstmkit.train.model import build_model

    tiny = ["adding", "--modern", "--seq-len", "8", "--test-size", "16", "--hidden", "8", "--batch-size", "4"]
    tiny += ["--quiet", "--threads", "1", "--lr", "1e-9"]
    run = tmp_path / "r"
    assert main(["train", *tiny, "--steps", "2", "--out", str(run)]) == 0
    model, config = load_run(run)
    assert (config.model.init, config.model.t_max) == ("chrono", 8.0)
    saved = json.loads((run / "config.json").read_text())["model"]
    assert saved["init"] == "chrono" and saved["t_max"] == 8.0
    b = model.lstm.bias_ih_l0.detach()
    torch.testing.assert_close(b[:8], -b[8:16], atol=1e-6, rtol=0)  # lr 1e-9: still the chrono draw
    fresh = build_model(config.model, config.seed)  # what the run started from
    torch.testing.assert_close(b, fresh.lstm.bias_ih_l0.detach(), atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--init", "torch", "--quiet"]) == 2  # a model change: refused
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "init='torch'" in err, err
    assert main(["train", "--resume", str(run), "--steps", "3", "--quiet"]) == 0
    assert load_run(run)[1].model.init == "chrono"


def test_baselines_get_their_own_init() -> None:
    from lstmkit.train.config import ModelConfig
    from lstmkit.train.model import build_model

    gru = build_model(ModelConfig(input_size=2, output_size=1, hidden=H, baseline="gru", init="chrono", t_max=100))
    b_z = gru.lstm.bias_ih_l0.detach()[H : 2 * H]
    assert float(b_z.min()) >= 0 and torch.count_nonzero(gru.lstm.bias_hh_l0[H : 2 * H]) == 0
    rnn = build_model(ModelConfig(input_size=2, output_size=1, hidden=H, baseline="rnn", init="irnn")).lstm
    assert rnn.nonlinearity == "relu" and torch.equal(rnn.weight_hh_l0.detach(), torch.eye(H))
    with pytest.raises(ValueError, match="init must be one of"):
        ModelConfig(input_size=2, output_size=1, baseline="rnn", init="chrono", t_max=10)


@pytest.mark.parametrize("module", ["lstmkit.init", "lstmkit.train.defaults"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
