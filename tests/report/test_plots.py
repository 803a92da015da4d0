"""Figures: what each plot shows is checked on the artists, not by eye (scalefit.report.plots, cli_plots)."""

import argparse
import dataclasses
import json
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from scalefit.report import plots  # noqa: E402
from scalefit.cli.plots import register  # noqa: E402

TARGET = (1.28e8, 4e8)


def _parser():
    parser = argparse.ArgumentParser(prog="scalefit")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


@pytest.fixture(scope="session")
def fit_file(default_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    default_fit.save(path)
    return path


@pytest.fixture(scope="session")
def law_figure(default_fit):
    return plots.plot_law(default_fit, targets=[TARGET])


def _fake_cell(directory, lr, wd, optimizer="adamw", size="u16", steps=40, rms0=0.02):
    """A runner cell dir with a known RMS trajectory: RMS^2 relaxes to lr/(2 wd) at rate 2 lr wd."""
    directory.mkdir(parents=True)
    eq2 = lr / (2 * wd) if wd > 0 else rms0**2
    rows = []
    for step in range(steps):
        rms = np.sqrt(eq2 + (rms0**2 - eq2) * np.exp(-2 * lr * wd * step * 50))
        for k, (name, numel) in enumerate([("q", 256), ("fc", 1024), ("proj", 1024)]):
            scale = 1.0 + 0.05 * (k - 1)  # matrices differ a little; the middle one is the median
            rows.append(dict(step=step, lr_mult=1.0, matrix=name, group="hidden", numel=numel,
                             norm_prev=0.0, norm=rms * scale * np.sqrt(numel), rel_update=0.0, theta=0.0))
        rows.append(dict(step=step, lr_mult=1.0, matrix="wte.weight", group="embedding", numel=4096,
                         norm_prev=0.0, norm=99.0, rel_update=0.0, theta=0.0))
    pd.DataFrame(rows).to_parquet(directory / "trajectory.parquet", index=False)
    (directory / "result.json").write_text(json.dumps(
        {"lr": lr, "weight_decay": wd, "optimizer": optimizer, "size": size, "status": "ok"}))
    return directory


@pytest.fixture
def run_dir(tmp_path):
    root = tmp_path / "runs"
    _fake_cell(root / "cells" / "a", lr=1e-2, wd=0.1)
    _fake_cell(root / "cells" / "b", lr=3e-2, wd=0.1)
    _fake_cell(root / "cells" / "c", lr=2e-2, wd=0.0, optimizer="adamh")
    return root


# ------------------------------------------------------------------------------------------ valleys

def test_valleys_one_panel_per_cell_and_subsets(default_fit):
    n = len(default_fit.table.cells)
    fig = plots.plot_valleys(default_fit, n_draws=100)
    assert len(fig.axes) == n
    assert "SYNTHETIC DATA" in fig.get_suptitle()
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == [f"cell {c}" for c in range(n)]
    sub = plots.plot_valleys(default_fit, cells=[0, 3, 5], n_draws=50)
    assert [ax.get_title().split(":")[0] for ax in sub.axes] == ["cell 0", "cell 3", "cell 5"]
    with pytest.raises(ValueError, match="unknown cells"):
        plots.plot_valleys(default_fit, cells=[n + 3])


def test_valley_band_is_ordered_and_drawn(default_fit):
    fig = plots.plot_valleys(default_fit, cells=[0, 7], n_draws=100)
    for ax, cell in zip(fig.axes, [0, 7]):
        (line,) = _by_gid(ax, "posterior_median")
        lr, median = line.get_data()
        band = plots.valley_band(default_fit, cell, lr, n_draws=100)
        assert np.all(band["low"] <= band["median"]) and np.all(band["median"] <= band["high"])
        assert np.all(band["high"] - band["low"] > 0)
        np.testing.assert_allclose(median, band["median"])
        assert ax.get_xscale() == "log"


def test_valley_minimum_sits_at_the_posterior_optimum(default_fit):
    cells = default_fit.table.cells
    for cell in (0, 14):
        lr = np.geomspace(cells.loc[cell, "lr_min"], cells.loc[cell, "lr_max"], 400)
        band = plots.valley_band(default_fit, cell, lr, n_draws=None)
        # the median curve's minimum is within a few percent of the median optimum (the median
        # of curves is not exactly the curve at the median, hence the tolerance)
        assert abs(np.log(lr[np.argmin(band["median"])] / band["lr_opt_median"])) < 0.1
        lo, hi = band["lr_opt_interval"]
        assert lo < band["lr_opt_median"] < hi


def test_valley_marks_held_out_and_diverged_runs(default_fit):
    held = dataclasses.replace(default_fit, held_out=(14,))
    fig = plots.plot_valleys(held, cells=[13, 14], n_draws=50)
    assert not fig.axes[0].get_title().endswith("(held out)")
    assert fig.axes[1].get_title().endswith("(held out)")
    runs = default_fit.table.runs
    cell = int(runs.loc[runs["status"] == "diverged", "cell"].iloc[0])
    ax = plots.plot_valleys(default_fit, cells=[cell], n_draws=50).axes[0]
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert len(crosses) == 1
    n_div = int(((runs["cell"] == cell) & (runs["status"] == "diverged")).sum())
    assert len(crosses[0].get_xdata()) == n_div
    assert np.all(crosses[0].get_ydata() > 0.9)  # axes coordinates: at the top edge


# ---------------------------------------------------------------------------------------------- law

def _fan_log_width(collection):
    """Width of a fill_between band in ln LR at each x."""
    v = collection.get_paths()[0].vertices
    frame = pd.DataFrame({"x": np.round(np.log(v[:, 0]), 9), "y": np.log(v[:, 1])})
    g = frame.groupby("x")["y"]
    return (g.max() - g.min()).sort_index()


def test_law_fan_widens_beyond_the_data(default_fit, law_figure):
    ax = law_figure.axes[0]
    (fan,) = _by_gid(ax, "law_fan")
    width = _fan_log_width(fan)
    n = default_fit.table.cells["n_params"]
    inside = width[(width.index > np.log(n.min())) & (width.index < np.log(n.max()))]
    beyond = width[width.index > np.log(n.max() * 3)]
    assert len(inside) and len(beyond)
    assert beyond.min() > inside.median()
    assert width.iloc[-1] > 1.5 * inside.min()
    # same numbers from the function the figure is drawn from, and the target's interval matches
    f = plots.law_fan(default_fit, [np.sqrt(n.min() * n.max()), 1e9], 4e8)
    assert np.log(f["high"] / f["low"]).iloc[1] > np.log(f["high"] / f["low"]).iloc[0]
    assert np.all(f["low"] < f["median"]) and np.all(f["median"] < f["high"])


def test_law_figure_contents(default_fit, law_figure):
    ax = law_figure.axes[0]
    title = ax.get_title()
    for text in ("SYNTHETIC DATA", "90% ETI", "nominal", "vs N"):
        assert text in title
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    (base,) = _by_gid(ax, "baseline")
    x, y = base.get_data()
    np.testing.assert_allclose(y, [default_fit.baseline.predict_lr(v, 4e8) for v in x], rtol=1e-12)
    pred = default_fit.predict(*TARGET)
    (target,) = [c for c in ax.containers if c.lines[0].get_gid() == "target"]
    line = target.lines[0]
    assert line.get_xdata()[0] == TARGET[0]
    assert line.get_ydata()[0] == pytest.approx(pred.lr_median)
    (bar,) = target.lines[2]
    lo, hi = sorted(bar.get_segments()[0][:, 1])
    assert (lo, hi) == (pytest.approx(pred.lr_low), pytest.approx(pred.lr_high))
    # per-cell optima: one error bar per cell, at the posterior median of log_lr_opt
    cells = [c for c in ax.containers if c.lines[0].get_gid() != "target"]
    assert len(cells) == len(default_fit.table.cells)
    opt = plots.cell_optima(default_fit)
    np.testing.assert_allclose(sorted(c.lines[0].get_ydata()[0] for c in cells), sorted(opt["lr_median"]))


def test_law_shows_backtest_observed_points(default_fit):
    rows = pd.DataFrame({"n_params": [3.2e7], "n_tokens": [4e8], "observed_best_lr": [1.5e-3]})
    ax = plots.plot_law(default_fit, backtest=rows).axes[0]
    (pts,) = _by_gid(ax, "backtest_observed")
    assert list(pts.get_xdata()) == [3.2e7] and list(pts.get_ydata()) == [1.5e-3]
    assert pts.get_markerfacecolor() == "none"


def _as_effective(fit):
    """The default fit relabelled as an effective-LR fit with eff_lr = 2 lr (plumbing only)."""
    from scalefit.fit.effective import EffectiveMap

    runs = fit.table.runs.assign(eff_lr=lambda r: 2 * r["lr"])
    table = dataclasses.replace(fit.table, runs=runs)
    center = float(np.log(runs["lr"]).mean())
    coef = np.array([[center + np.log(2), 1.0, 0.0, 0.0, 0.0, 0.0]])
    return dataclasses.replace(fit, table=table, config=fit.config.replace(lr_kind="effective"),
                               eff_map=EffectiveMap(False, coef, center, 0.0, fit.std))


def test_effective_law_plots_targets_and_backtest_in_effective_space(default_fit):
    fit = _as_effective(default_fit)
    cells = default_fit.table.cells
    cell = int(cells.index[-1])
    rows = pd.DataFrame({"n_params": [cells.loc[cell, "n_params"]], "n_tokens": [cells.loc[cell, "n_tokens"]],
                         "observed_best_lr": [cells.loc[cell, "best_lr"]]})  # backtests report nominal
    ax = plots.plot_law(fit, targets=[TARGET], backtest=rows).axes[0]
    assert "effective" in ax.get_title() and "effective" in ax.get_ylabel()
    pred = fit.predict(*TARGET)
    assert pred.lr_kind_reported == "nominal"
    (target,) = [c for c in ax.containers if c.lines[0].get_gid() == "target"]
    y = target.lines[0].get_ydata()[0]
    assert y == pytest.approx(pred.effective["eff_lr_median"]) and y == pytest.approx(2 * pred.lr_median)
    (pts,) = _by_gid(ax, "backtest_observed")
    assert pts.get_ydata()[0] == pytest.approx(2 * cells.loc[cell, "best_lr"])


def test_side_by_side_shares_y(default_fit):
    fig = plots.plot_side_by_side({"a": default_fit, "b": default_fit})
    a, b = fig.axes
    assert a.get_shared_y_axes().joined(a, b)
    assert a.get_title().startswith("a:") and b.get_title().startswith("b:")
    assert "SYNTHETIC DATA" in fig.get_suptitle()
    mixed = plots.plot_side_by_side({"nominal": default_fit, "effective": _as_effective(default_fit)})
    assert mixed.axes[0].get_ylabel() == "optimal LR (space in each panel's title)"
    assert "effective LR" in mixed.axes[1].get_title()


# ------------------------------------------------------------------------------------------- saving

def test_save_png_and_svg_atomically(law_figure, tmp_path):
    png = plots.save(law_figure, tmp_path / "law.png")
    svg = plots.save(law_figure, tmp_path / "sub" / "law.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["law.png", "law.svg"]
    with pytest.raises(ValueError, match=".png"):
        plots.save(law_figure, tmp_path / "law.jpg")


# ------------------------------------------------------------------------------------ weight norms

def test_hidden_rms_and_equilibrium(run_dir):
    frame = pd.read_parquet(run_dir / "cells" / "a" / "trajectory.parquet")
    rms = plots.hidden_rms(frame)
    assert rms.index.tolist() == list(range(40))
    assert rms["rms"].iloc[0] == pytest.approx(0.02)  # the median matrix, embedding ignored
    assert rms["rms"].iloc[-1] == pytest.approx(plots.equilibrium_rms(1e-2, 0.1), rel=0.02)
    qm = plots.hidden_rms(frame, how="quadratic_mean")["rms"].iloc[0]
    assert qm == pytest.approx(0.02 * np.sqrt((0.95**2 + 1 + 1.05**2) / 3))
    assert np.isnan(plots.equilibrium_rms(1e-2, 0.0))


def test_weight_norm_plot(run_dir):
    fig = plots.plot_weight_norms([run_dir])
    ax = fig.axes[0]
    runs = _by_gid(ax, "weight_rms")
    assert len(runs) == 3
    eq = sorted(ln.get_ydata()[0] for ln in _by_gid(ax, "equilibrium"))  # AdamW runs only
    np.testing.assert_allclose(eq, [np.sqrt(1e-2 / 0.2), np.sqrt(3e-2 / 0.2)])
    assert len({tuple(ln.get_color()) for ln in runs}) == 3  # one colour per LR
    # a cell dir, a parquet file and a frame with attrs give the same runs
    frame = pd.read_parquet(run_dir / "cells" / "b" / "trajectory.parquet")
    frame.attrs.update(lr=3e-2, weight_decay=0.1, optimizer="adamw")
    mixed = plots.plot_weight_norms([run_dir / "cells" / "a", run_dir / "cells" / "c" / "trajectory.parquet", frame])
    assert len(_by_gid(mixed.axes[0], "weight_rms")) == 3
    each = plots.plot_weight_norms([run_dir / "cells" / "a"], matrices="each", stat="norm")
    assert len(each.axes[0].get_lines()) >= 3 and not _by_gid(each.axes[0], "equilibrium")
    with pytest.raises(FileNotFoundError):
        plots.plot_weight_norms([run_dir / "nope"])


# ----------------------------------------------------------------------------------------------- CLI

def test_cli_valleys_and_law(fit_file, tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(["plot", "valleys", str(fit_file), "-o", str(tmp_path / "v.png"),
                              "--cells", "0", "3", "5"])
    assert args.cells == [0, 3, 5]
    assert args.func(args) == 0
    assert (tmp_path / "v.png").stat().st_size > 10_000
    bt = tmp_path / "bt.json"
    rows = [{"n_params": 3.2e7, "n_tokens": 4e8, "observed_best_lr": 1.5e-3}]
    bt.write_text(json.dumps({"summary": {}, "rows": rows}))
    args = parser.parse_args(["plot", "law", str(fit_file), "-o", str(tmp_path / "law.svg"),
                              "--target", "130M", "400M", "--target", "1e9", "2B", "--backtest", str(bt)])
    assert args.target == [[1.3e8, 4e8], [1e9, 2e9]]
    assert args.func(args) == 0
    assert b"<svg" in (tmp_path / "law.svg").read_bytes()[:2000]
    assert "wrote" in capsys.readouterr().out


def test_cli_weights_and_errors(run_dir, tmp_path, capsys, monkeypatch):
    parser = _parser()
    args = parser.parse_args(["plot", "weights", str(run_dir), "-o", str(tmp_path / "w.png")])
    assert args.func(args) == 0 and (tmp_path / "w.png").stat().st_size > 5_000
    with pytest.raises(SystemExit):
        parser.parse_args(["plot", "law", "fit.nc", "-o", "x.png", "--target", "130M"])
    with pytest.raises(SystemExit):
        parser.parse_args(["plot", "law", "fit.nc", "-o", "x.png", "--target", "130M", "-5"])
    args = parser.parse_args(["plot", "weights", str(run_dir), "-o", str(tmp_path / "w.jpg")])
    with pytest.raises(ValueError, match=".png"):
        args.func(args)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the dev extra were not installed
    args = parser.parse_args(["plot", "weights", str(run_dir), "-o", str(tmp_path / "w2.png")])
    assert args.func(args) == 1
    assert "pip install 'scalefit-lr[dev]'" in capsys.readouterr().err
    assert not (tmp_path / "w2.png").exists()
