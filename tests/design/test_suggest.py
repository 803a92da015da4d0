"""`scalefit suggest`: the scores, the budget check, the joint draws and the written spec.

The fit is the session's synthetic default fit (law along N at 2M-32M parameters, 3 budgets).
"""

import subprocess
import sys

import numpy as np
import pytest

from sf_testing import REPO
from scalefit.design.suggest import Candidate, joint_draws, suggest

TARGET = (128e6, 4e8)


def test_a_cell_that_extends_the_fitted_range_beats_a_repeat_of_a_fitted_cell(default_fit):
    repeat = Candidate(8e6, 4e8, flops_per_run=1.0)  # a fitted cell
    extend = Candidate(64e6, 4e8, flops_per_run=1.0)  # beyond the largest fitted size, same cost
    s = suggest(default_fit, *TARGET, budget=1e9, candidates=[repeat, extend])
    first = s.proposals[0]
    assert first.n_params == 64e6 and first.repeats_cell is None
    assert first.width_after_alone < 0.97 * s.width_now
    alone = {p.n_params: p.width_after_alone for p in s.proposals}
    if 8e6 in alone:  # bought second, if at all: it must have bought less
        assert alone[8e6] > alone[64e6]
    # a second sweep of the same new cell buys less than the first (the candidates interact)
    twice = suggest(default_fit, *TARGET, budget=1e9, candidates=[extend, extend])
    gains = np.diff([twice.width_now] + [p.width_after_batch for p in twice.proposals])
    assert len(gains) == 1 or -gains[1] < -gains[0]


def test_joint_draws_at_the_target_reproduce_the_prediction(default_fit):
    draws = joint_draws(default_fit, [TARGET, (64e6, 4e8)], seed=4)
    log_lr = draws["m"][:, 0] + default_fit.std.x_center
    lo, hi = np.exp(np.quantile(log_lr, [0.05, 0.95]))
    pred = default_fit.predict(*TARGET)
    assert lo == pytest.approx(pred.lr_low, rel=0.08) and hi == pytest.approx(pred.lr_high, rel=0.08)
    # the nearer point shares the law and the walk with the target: strongly correlated
    assert np.corrcoef(draws["m"][:, 0], draws["m"][:, 1])[0, 1] > 0.5


def test_a_budget_below_every_candidate_is_a_clear_error(default_fit, tmp_path):
    with pytest.raises(ValueError, match="below the cheapest candidate"):
        suggest(default_fit, *TARGET, budget=10.0, candidates=[Candidate(64e6, 4e8, flops_per_run=1e15)])
    fit_file = tmp_path / "fit.nc"
    default_fit.save(fit_file)
    out = subprocess.run([sys.executable, "-m", "scalefit.cli", "suggest", str(fit_file), "--n-params", "128M",
                          "--n-tokens", "4e8", "--budget", "1e9"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "below the cheapest candidate" in out.stderr and "Traceback" not in out.stderr


def test_the_written_spec_parses_and_plans_exactly_the_proposed_cells(default_fit, tmp_path):
    from scalefit.design.suggest import candidates_from_ladder
    from scalefit.design.spec_writer import write_spec
    from scalefit.grids.spec import load_ladder, load_spec

    ladder = load_ladder(REPO / "models" / "gpt2.toml")  # 22M-707M: around and beyond the fitted 2M-32M
    candidates = candidates_from_ladder(ladder, [4e8, 8e8], vocab_size=50304)
    budget = 3 * min(c.flops_per_run for c in candidates) * 13
    s = suggest(default_fit, *TARGET, budget=budget, candidates=candidates)
    assert s.proposals and s.flops <= budget
    out = write_spec(s, tmp_path / "next.toml", base_spec=REPO / "runners/grids/gpt2_ladder.toml",
                     ladder=REPO / "models/gpt2.toml", optimizer="adamw", weight_decay=0.1)
    spec = load_spec(out)
    planned = sorted((c.meta["size"], c.meta["budget"], c.config["lr"]) for c in spec.runs)
    proposed = sorted((p.size, p.n_tokens, lr) for p in s.proposals for lr in p.lrs)
    assert planned == proposed
    assert all(c.config["optimizer"] == "adamw" and c.config["weight_decay"] == 0.1 for c in spec.runs)


def test_a_sweep_centred_on_the_optimum_pins_it_better_than_one_beside_it():
    from types import SimpleNamespace

    from scalefit.design.suggest import optimum_variance, window

    rng = np.random.default_rng(0)
    n = 300
    m = rng.normal(0.0, 0.3, n)  # the cell's optimum (standardized ln LR) per draw
    width, floor, noise = np.full(n, 0.5), np.zeros(n), np.full(n, 0.02)
    fit = SimpleNamespace(config=SimpleNamespace(nu=4.0, loss_window=None),
                          std=SimpleNamespace(y_center=2.0, y_scale=0.1))
    step = np.log(2) / 2
    centred = optimum_variance(step * np.arange(-3, 4), m, width, floor, noise, np.full(n, 0.5), fit)
    beside = optimum_variance(step * np.arange(3, 10), m, width, floor, noise, np.full(n, 0.5), fit)
    assert 0 < centred < beside
    # the loss window censors the far runs: the same sweep then carries less information
    fit.config.loss_window = 0.05
    censored = optimum_variance(step * np.arange(-6, 7), m, width, floor, noise, np.full(n, 0.5), fit)
    fit.config.loss_window = None
    uncensored = optimum_variance(step * np.arange(-6, 7), m, width, floor, noise, np.full(n, 0.5), fit)
    assert censored > uncensored
    lattice = {"base": 1e-3, "per_octave": 2, "digits": 4}
    k0, k1 = window(m, np.log(3e-3), lattice)
    lo, hi = np.exp(np.quantile(m + np.log(3e-3), [0.05, 0.95]))
    assert 1e-3 * 2 ** (k0 / 2) < lo and 1e-3 * 2 ** (k1 / 2) > hi and k1 - k0 + 1 >= 5


def test_the_cli_writes_a_plannable_spec_and_asks_for_the_recipe_when_the_fit_names_none(default_fit, tmp_path):
    from scalefit.grids.spec import load_spec

    fit_file = tmp_path / "fit.nc"
    default_fit.save(fit_file)
    base = [sys.executable, "-m", "scalefit.cli", "suggest", str(fit_file), "--n-params", "128M",
            "--n-tokens", "4e8", "--budget", "1e19", "--tokens", "4e8", "8e8"]
    out = subprocess.run(base + ["-o", str(tmp_path / "a.toml")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "--spec" in out.stderr and not (tmp_path / "a.toml").exists()
    recipe = ["--spec", "runners/grids/gpt2_ladder.toml", "--ladder", "models/gpt2.toml"]
    out = subprocess.run(base + recipe + ["-o", str(tmp_path / "b.toml"), "--table", str(tmp_path / "b.csv")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "expected 90% width" in out.stdout and "spec written" in out.stdout
    spec = load_spec(tmp_path / "b.toml")
    import pandas as pd

    table = pd.read_csv(tmp_path / "b.csv")
    assert len(spec.runs) == table["n_lrs"].sum() and table["cumulative_flops"].iloc[-1] <= 1e19
    assert set(c.meta["size"] for c in spec.runs) == set(table["size"])
