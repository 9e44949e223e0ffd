"""Plumbing of the benchmark harness (lstmkit.bench): plans, thread settings, target checks, tables, CLI.
Nothing here times anything against a threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmkit.bench import contenders, report, run
from lstmkit.cli import main as cli_main

TINY = run.Plan(grid=((2, 8),), T=3, reps=1, long=None, bidirectional=None, sweep=None, matmul_n=16)


def _row(fwd: float, train: float, train_s: float = 1.0) -> dict[str, float]:
    return {"forward_ratio": fwd, "train_ratio": train, "forward_s": fwd, "train_s": train_s}


def _result() -> dict[str, object]:
    case = {"T": 100, "B": 16, "H": 128, "layers": 1, "bidirectional": False}
    rows = {
        contenders.BASELINE: _row(1.0, 1.0, 1.0),
        "lstmkit peephole": _row(1.10, 1.30, 1.0),  # forward met (<= 1.15), training missed (> 1.25)
        contenders.SCRIPTED_PEEPHOLE: _row(4.0, 5.0, 2.9),  # 2.9x slower: rival goal (>= 3x) missed
        "lstmkit layernorm": _row(2.0, 1.4, 1.4),  # only a training goal, met
    }
    return {"runs": [{"threads": 2, "grid": [{**case, "rows": rows}], "extra": []}]}


def test_goals_follow_the_issue() -> None:
    assert contenders.goals("lstmkit peephole", 1) == (1.1, 1.1)
    assert contenders.goals("lstmkit cifg", 16) == (1.15, 1.25)
    assert contenders.goals("lstmkit fgr", 64) == (None, 1.5)
    assert contenders.goals(contenders.BASELINE, 16) == (None, None)
    names = {c.name for c in contenders.CONTENDERS}
    assert set(contenders.NATIVE_SPEED) | set(contenders.REGULARISED) | set(contenders.SCRIPTED_RIVAL.values()) <= names


def test_target_checks() -> None:
    checks = {(c["contender"], c["measure"]): c for c in report.targets(_result())}
    assert checks[("lstmkit peephole", "forward / nn.LSTM")]["met"] is True
    assert checks[("lstmkit peephole", "training / nn.LSTM")]["met"] is False
    rival = checks[("lstmkit peephole", f"{contenders.SCRIPTED_PEEPHOLE} / this, training")]
    assert rival["value"] == pytest.approx(2.9) and rival["met"] is False
    assert checks[("lstmkit layernorm", "training / nn.LSTM")]["met"] is True
    assert ("lstmkit layernorm", "forward / nn.LSTM") not in checks
    assert len(checks) == 4


def test_thread_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run.thread_counts(3) == [3]
    monkeypatch.setattr(run.torch, "get_num_threads", lambda: 2)
    assert run.thread_counts(None) == [2, 1]
    monkeypatch.setattr(run.torch, "get_num_threads", lambda: 1)
    assert run.thread_counts(None) == [1]


def test_cli_bench_runs_both_thread_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    names = (contenders.BASELINE, "lstmkit peephole", contenders.SCRIPTED_PEEPHOLE)
    monkeypatch.setattr(run, "QUICK", run.Plan(**{**TINY.__dict__, "contenders": names}))
    monkeypatch.setattr(run.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(run.torch, "set_num_threads", lambda n: None)  # leave the test process alone
    assert cli_main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert [r["threads"] for r in result["runs"]] == [2, 1]
    for r in result["runs"]:
        (case,) = r["grid"]
        assert (case["B"], case["H"], case["T"]) == (2, 8, 3) and set(case["rows"]) == set(names)
        assert case["rows"][contenders.BASELINE]["train_ratio"] == 1.0
    table = (tmp_path / "results.md").read_text()
    assert "### 2 thread(s)" in table and "### 1 thread(s)" in table and "Targets:" in table
    assert table in capsys.readouterr().out


def test_cli_bench_rejects_bad_threads(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--threads", "0"]) == 2
    assert "--threads must be at least 1; got 0" in capsys.readouterr().err


def test_harness_needs_no_source_checkout(tmp_path: Path) -> None:
    # Outside the repository (no benchmarks/ folder importable) the installed harness still runs.
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('benchmarks') is None\n"
        "from lstmkit.bench import run\n"
        f"run.QUICK = run.Plan(grid=((1, 4),), T=2, reps=1, long=None, bidirectional=None, sweep=None, "
        f"matmul_n=8, contenders=({contenders.BASELINE!r}, 'lstmkit peephole'))\n"
        "from lstmkit.cli import main\n"
        "sys.exit(main(['bench', '--quick', '--threads', '1', '--out', 'out']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "results.md").is_file()


def test_python_m_benchmarks_is_the_same_harness() -> None:
    import benchmarks.__main__ as entry

    assert entry.main is run.main


def test_step_rows_are_ratios_to_nn_lstm_in_the_same_run() -> None:
    from lstmkit.bench import step

    rows = step.time_steps(hidden=8, input_size=4, specs=("peephole", "fgr", "return_gates"), reps=1, calls=2)
    base = rows["nn.LSTM"]
    for name in ("peephole", "fgr", "return_gates"):
        row = rows[name]
        assert row["call_ratio"] == row["call_s"] / base["call_s"]
        assert row["stream_ratio"] == row["stream_s"] / base["call_s"]
        assert row["chunk_ratio"] == row["chunk_s"] / base["chunk_s"]
        assert all(v > 0 for v in row.values())


def test_step_targets_and_table() -> None:
    from lstmkit.bench import step

    rows = {
        "nn.LSTM": {"call_s": 1e-5, "chunk_s": 5e-6},
        "peephole": {"call_ratio": 1.1, "stream_ratio": 1.3, "chunk_ratio": 1.0},  # the stream step misses
    }
    result = {"runs": [{"threads": 1, "grid": [], "extra": [], "step": [{"H": 64, "I": 64, "rows": rows}]}]}
    checks = {c["measure"]: c for c in report.targets(result) if c["contender"] == "lstmkit peephole"}
    assert checks["call step / nn.LSTM"]["met"] and checks[f"chunk of {step.CHUNK} / nn.LSTM"]["met"]
    assert not checks["stream step / nn.LSTM"]["met"]
    table = "\n".join(step.markdown(result["runs"][0]["step"]))
    assert "| peephole | 1.10 | 1.30 | 1.00 |" in table


def test_cli_bench_streams_plan_writes_the_step_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tiny = run.Plan(**{**TINY.__dict__, "contenders": (contenders.BASELINE, "lstmkit peephole"), "step": (8,)})
    monkeypatch.setattr(run, "STREAMS", run.Plan(**{**tiny.__dict__, "step_calls": 2}))
    assert cli_main(["bench", "--streams", "--threads", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["plan"] == "streams"
    rows = result["runs"][0]["step"][0]["rows"]
    from lstmkit.bench.step import STEP_SPECS

    assert set(rows) == {"nn.LSTM", *STEP_SPECS}
    assert "Per-step latency" in (tmp_path / "results.md").read_text()
    measures = {c["measure"] for c in result["targets"]}
    assert "stream step / nn.LSTM" in measures


def test_edge_rows_time_every_runtime_against_nn_lstm_in_the_same_run() -> None:
    """One spec, one batch size, tiny model: every runtime's program is exported, checked and timed."""
    pytest.importorskip("executorch", reason="the edge table needs the edge extra (executorch)")
    pytest.importorskip("onnxruntime", reason="the edge table needs the edge extra (onnxruntime)")
    from lstmkit.bench import edge

    entries = edge.time_edge(8, threads=1, specs=("cifg",), batches=(2,), reps=1, calls=2)
    (entry,) = entries
    assert (entry["spec"], entry["B"], entry["H"]) == ("cifg", 2, 8)
    rows = entry["rows"]
    assert set(rows) == set(edge.RUNTIMES)
    base = rows["nn.LSTM eager"]["s"]
    for row in rows.values():
        assert row["s"] > 0 and row["ratio"] == row["s"] / base
    (check,) = edge.targets(1, entries)
    assert check["value"] == rows["eager int8"]["s"] / rows["eager float"]["s"]
    assert check["met"] == (check["value"] <= edge.INT8_GOAL)
    table = "\n".join(edge.markdown(entries))
    assert "| ExecuTorch int8 |" in table and "cifg B=2" in table


def test_edge_table_says_why_it_was_not_timed() -> None:
    from lstmkit.bench import edge

    assert edge.markdown([], "executorch is not installed") == [
        "",
        "Edge runtimes: not timed (executorch is not installed).",
    ]


def test_cli_bench_takes_one_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--streams", "--edge", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lstmkit bench: error: choose one of --quick, --streams, --edge; got --streams, --edge"
