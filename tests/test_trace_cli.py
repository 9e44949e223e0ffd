"""``lstmkit inspect`` end to end on a tiny trained checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from lstmkit.cli import main
from lstmkit.tasks import make_task
from lstmkit.train.checkpoint import save_checkpoint
from lstmkit.train.config import ModelConfig, RunConfig
from lstmkit.train.model import build_model

TASK_ARGS = {"T": 24, "test_size": 12}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run trained for 30 Adam steps on a short adding problem, saved as a checkpoint."""
    config = RunConfig(
        task="adding", task_args=TASK_ARGS, model=ModelConfig(input_size=2, output_size=1, hidden=8, forget_bias=1.0)
    )
    model = build_model(config.model, seed=0)
    task = make_task(config.task, **config.task_args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        batch = task.sample(16, gen)
        loss = task.loss(model(batch.inputs, batch.lengths), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("run")
    save_checkpoint(path, model, opt, config, {"step": 30})
    return path


def test_inspect_on_the_task_test_set(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "inspect"
    assert main(["inspect", str(run_dir), "--out", str(out), "--sequence", "3", "--max-sequences", "10"]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gates_l0.png", "horizon_l0.png", "means_l0.png", "summary.json"]
    assert sorted(printed) == sorted(str(out / n) for n in names)
    image = imread(out / "gates_l0.png")
    assert image.shape[:2] == (900, 900) and float(image[..., :3].var()) > 0
    data = json.loads((out / "summary.json").read_text())
    assert data["sequences"] == 10 and data["inputs"]["shown_sequence"] == 3
    assert data["inputs"]["source"] == "task adding test set"
    test = make_task("adding", **TASK_ARGS).test_set()
    marked = (test.inputs[3, :, 1] == 1.0).nonzero().flatten().tolist()
    assert data["inputs"]["shown_events"] == marked and len(marked) == 2
    assert data["lengths"] == test.lengths[:10].tolist()
    forget = data["layers"][0][0]["gates"]["forget"]
    assert 0.0 < forget["mean"] < 1.0 and 0.0 <= forget["saturated"] <= 1.0


def test_inspect_on_files(run_dir, tmp_path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(3, 15, 2))
    np.save(tmp_path / "x.npy", x)
    assert main(["inspect", str(run_dir), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert data["sequences"] == 3 and data["max_steps"] == 15
    np.savetxt(tmp_path / "x.csv", x[0], delimiter=",")
    assert main(["inspect", str(run_dir), "--input", str(tmp_path / "x.csv"), "--out", str(tmp_path / "b")]) == 0
    data_csv = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert data_csv["sequences"] == 1 and data_csv["lengths"] == [15]
    # the CSV and a (T, I) .npy of the same sequence give the same summary
    np.save(tmp_path / "x0.npy", x[0])
    assert main(["inspect", str(run_dir), "--input", str(tmp_path / "x0.npy"), "--out", str(tmp_path / "c")]) == 0
    data_npy = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert data_npy["layers"] == data_csv["layers"]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (np.zeros((4, 5, 3)), "bad.npy", "(B, T, 2)"),
        (None, "missing.npy", "not found"),
        (b"not an array", "junk.npy", "not a NumPy .npy array file"),
        (np.array([{"a": 1}], dtype=object), "objects.npy", "holds Python objects"),
        (b"1,2\n3,oops\n", "junk.csv", "cannot read"),
        (np.zeros((4, 2)), "x.txt", ".npy or .csv"),
        (np.array([[np.nan, 1.0]]), "nan.npy", "NaN"),
    ],
)
def test_bad_input_files_give_one_line(run_dir, tmp_path, capsys, content, name, message) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        with open(path, "wb") as f:
            np.save(f, content, allow_pickle=content.dtype == object)
    assert main(["inspect", str(run_dir), "--input", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lstmkit inspect: error:") and message in err and "\n" not in err
    assert "allow_pickle" not in err


def test_inspect_out_onto_an_existing_file_is_one_line(run_dir, tmp_path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["inspect", str(run_dir), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lstmkit inspect: error: the output folder {target} is an existing file; " + (
        "give a folder (it is created if missing)"
    )
    assert target.read_text() == "keep me"


def test_bad_checkpoint_and_task(run_dir, tmp_path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["inspect", str(run_dir), "--task", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["inspect", str(run_dir), "--sequence", "99", "--max-sequences", "4", "--out", str(tmp_path)]) == 2
    assert "--sequence must be in [0, 4)" in capsys.readouterr().err


def _saved(tmp_path, **model_args):
    config = RunConfig(task="adding", task_args=TASK_ARGS, model=ModelConfig(output_size=1, **model_args))
    save_checkpoint(tmp_path / "run", build_model(config.model, seed=1), None, config, {"step": 0})
    return tmp_path / "run"


def test_inspect_embeds_token_ids(tmp_path, capsys) -> None:
    run = _saved(tmp_path, input_size=1, vocab_size=5, embedding_dim=4, hidden=6)
    np.save(tmp_path / "ids.npy", np.array([[0, 1, 2, 3, 4, 1], [4, 4, 3, 2, 1, 0]], dtype=np.int64))
    assert main(["inspect", str(run), "--input", str(tmp_path / "ids.npy"), "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert data["sequences"] == 2 and data["max_steps"] == 6
    np.save(tmp_path / "big.npy", np.array([0, 7]))
    assert main(["inspect", str(run), "--input", str(tmp_path / "big.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "token ids must be in [0, 5)" in capsys.readouterr().err


def test_inspect_refuses_a_gru_baseline(tmp_path, capsys) -> None:
    run = _saved(tmp_path, input_size=2, hidden=4, baseline="gru")
    assert main(["inspect", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "torch.nn.GRU" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model_args", "family"),
    [
        ({"cell": "slstm", "heads": 2}, "slstm"),
        ({"cell": "mlstm", "heads": 2, "token_shift": True}, "mlstm"),
        ({"cell": "minlstm", "layers": 2}, "minlstm"),
    ],
)
def test_inspect_a_family_core_run(tmp_path, capsys, model_args, family) -> None:
    run = _saved(tmp_path, input_size=2, hidden=8, **model_args)
    assert main(["inspect", str(run), "--out", str(tmp_path / "o"), "--max-sequences", "5", "--sequence", "1"]) == 0
    capsys.readouterr()
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert data["family"] == family and data["sequences"] == 5 and data["inputs"]["shown_sequence"] == 1
    layers = model_args.get("layers", 1)
    assert len(data["layers"]) == layers and (tmp_path / "o" / f"gates_l{layers - 1}.png").is_file()
    horizon = data["layers"][0][0]["memory_horizon"]
    assert horizon["units"] == (2 if family == "mlstm" else 8)  # per head for mLSTM, per unit otherwise
    assert ("normalizer" in data["layers"][0][0]["log_growth"]) == (family != "minlstm")
