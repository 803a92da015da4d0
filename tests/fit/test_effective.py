"""The effective-LR variant: the eff_lr map, AdamH identity, and the four-way comparison."""

import numpy as np
import pandas as pd
import pytest

from sf_testing import FAST
from scalefit.fit.effective import fit_effective_map
from scalefit.runs.table import load_runs
from scalefit.model.standardize import Standardization
from scalefit.runs.synthetic import EffectiveTruth, make_effective_grid


def _std(table):
    ln_n = np.log(table.cells["n_params"].to_numpy(dtype=float))
    ln_d = np.log(table.cells["n_tokens"].to_numpy(dtype=float))
    return Standardization(0.0, 0.0, 1.0, ln_n.mean(), ln_n.std(), ln_d.mean(), ln_d.std())


def test_adamw_map_recovers_the_scale_dependent_slope_and_inverts():
    truth = EffectiveTruth()
    table = load_runs(make_effective_grid(truth))
    std = _std(table)
    m = fit_effective_map(table.runs, std)
    assert not m.identity
    # d(slope)/d(ln N) = c2 / sd(ln N) must equal the truth's k_slope
    assert m.coef_draws[:, 2].mean() / std.log_n_sd == pytest.approx(truth.k_slope, abs=0.01)
    for n in (1e6, 32e6):
        lr = np.array([1e-3, 4e-3])
        log_eff = truth.log_eff(lr, n)
        assert m.log_eff(np.log(lr), n, 4e8) == pytest.approx(log_eff, abs=0.02)
        back = np.median(m.to_nominal(np.full(4000, log_eff[0]), n, 4e8))
        assert back == pytest.approx(np.log(lr[0]), abs=0.03)


def test_adamh_is_the_identity_and_identity_data_fit_slope_one():
    frame = make_effective_grid(optimizer="adamh")
    rng = np.random.default_rng(0)
    frame["eff_lr"] = frame["lr"] * np.exp(rng.normal(0, 0.01, len(frame)))  # AdamH: the LR is the angle
    table = load_runs(frame)
    m = fit_effective_map(table.runs, _std(table))
    assert m.identity
    draws = np.log([1e-3, 2e-3])
    np.testing.assert_array_equal(m.to_nominal(draws, 1e7, 1e9), draws)
    # the same data labelled AdamW go through the regression, which must find the identity
    fitted = fit_effective_map(load_runs(frame.assign(optimizer="adamw")).runs, _std(table))
    c = fitted.coef_draws.mean(axis=0)
    assert c[1] == pytest.approx(1.0, abs=0.01) and abs(c[2]) < 0.01 and abs(c[4]) < 0.01
    assert c[0] == pytest.approx(fitted.lr_center, abs=0.01)


def _noisy(frame, cell_sd, run_sd, seed=1):
    """The same runs with eff_lr off the map by a per-cell and a per-run offset (ln units)."""
    rng = np.random.default_rng(seed)
    cells = frame.groupby(["n_params", "n_tokens"]).ngroup()
    offset = rng.normal(0, cell_sd, cells.max() + 1)[cells] + rng.normal(0, run_sd, len(frame))
    return frame.assign(eff_lr=frame["eff_lr"] * np.exp(offset))


def test_map_scatter_reaches_the_nominal_interval():
    """Same AdamW grid, exact vs noisy eff_lr: the noisy map's cell and run scatter are
    recovered and widen the nominal interval of the same effective-optimum draws."""
    truth = EffectiveTruth(eff_noise_sd=0.0)
    frame = make_effective_grid(truth)
    exact_table = load_runs(frame)
    std = _std(exact_table)
    exact = fit_effective_map(exact_table.runs, std)
    noisy = fit_effective_map(load_runs(_noisy(frame, 0.15, 0.05)).runs, std)
    assert exact.cell_sd < 0.01 and exact.residual_sd < 0.01
    assert 0.08 < noisy.cell_sd < 0.3 and 0.03 < noisy.residual_sd < 0.08  # truth 0.15, 0.05
    n, d = 64e6, 8e8  # 2x beyond the largest model
    rng = np.random.default_rng(0)
    log_eff = truth.log_eff_opt(n, d) + rng.normal(0, 0.05, 4000)

    def width(m, **kw):
        lo, hi = np.quantile(m.to_nominal(log_eff, n, d, **kw), [0.05, 0.95])
        return hi - lo

    k = truth.k(n)
    assert width(exact) == pytest.approx(2 * 1.645 * 0.05 / k, rel=0.15)  # only the optimum's spread
    assert width(noisy) > 1.8 * width(exact)
    # two parts, both present: the coefficients (12 cells, not 96 runs, inform them) and the
    # new cell's own offset; they add in quadrature
    without = width(noisy, scatter=False)
    assert width(noisy) > 1.2 * without
    scatter_part = 2 * 1.645 * float(np.median(noisy.scatter_draws)) / k
    assert width(noisy) == pytest.approx(np.hypot(without, scatter_part), rel=0.25)


def test_decision_is_made_in_nominal_space_under_map_uncertainty():
    """With a valley steeper on the high-LR side, the map's scatter moves the nominal decision
    down; with a symmetric valley it does not move it (same map, scatter on and off)."""
    import dataclasses

    truth = EffectiveTruth(eff_noise_sd=0.0)
    frame = make_effective_grid(truth)
    std = _std(load_runs(frame))
    noisy = fit_effective_map(load_runs(_noisy(frame, 0.3, 0.05)).runs, std)
    no_scatter = dataclasses.replace(noisy, scatter_draws=None)
    n, d = 64e6, 8e8
    rng = np.random.default_rng(0)
    x_center = -5.0
    draws = {"m": truth.log_eff_opt(n, d) - x_center + rng.normal(0, 0.05, 4000),
             "width": np.ones(4000), "asymmetry": np.full(4000, 3.0)}
    median = float(np.median(noisy.to_nominal(draws["m"] + x_center, n, d)))
    assert noisy.decide_nominal(draws, x_center, n, d) < median - 0.05
    assert noisy.decide_nominal(draws, x_center, n, d) < no_scatter.decide_nominal(draws, x_center, n, d) - 0.05
    sym = dict(draws, asymmetry=None)
    assert noisy.decide_nominal(sym, x_center, n, d) == pytest.approx(no_scatter.decide_nominal(sym, x_center, n, d), abs=0.02)


def test_map_is_fitted_near_each_cells_optimum():
    """A sweep far from its optimum must not bend the map: runs two octaves off the best LR of
    their cell, given a wildly different eff_lr, change nothing."""
    frame = make_effective_grid(EffectiveTruth(eff_noise_sd=0.0))
    table = load_runs(frame)
    std = _std(table)
    runs = table.runs
    best = runs.loc[runs[runs.status == "ok"].groupby("cell")["final_loss"].idxmin()].set_index("cell")["lr"]
    far = np.abs(np.log2(runs["lr"] / runs["cell"].map(best))) > 1.01
    assert far.sum() > 10
    bent = runs.assign(eff_lr=np.where(far, runs["eff_lr"] * 5.0, runs["eff_lr"]))
    a, b = fit_effective_map(runs, std), fit_effective_map(bent, std)
    np.testing.assert_allclose(a.coef_draws.mean(axis=0), b.coef_draws.mean(axis=0), atol=1e-9)
    assert fit_effective_map(bent, std, window_octaves=None).residual_sd > 10 * b.residual_sd + 0.1


def test_map_draws_that_do_not_rise_at_the_target_are_dropped_not_fatal():
    """The map's slope is linear in z_N, so far beyond the fitted cells some Gaussian draws of it
    cross zero. Those draws are left out (eff_lr rises with lr): the rest invert as before, the
    interval is wider where the slope is small, and only a target where (almost) no draw rises
    raises."""
    from scalefit.fit.effective import MIN_RISING_DRAWS, EffectiveMap

    rng = np.random.default_rng(0)
    n = 4000
    coef = np.zeros((n, 7))
    coef[:, 0] = -4.0
    coef[:, 1] = 0.3
    coef[:, 2] = rng.normal(-0.05, 0.005, n)  # slope 0.3 at z_N = 0, crossing zero near z_N = 6
    std = Standardization(0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0)  # z_N = ln N
    m = EffectiveMap(False, coef, lr_center=-6.0, residual_sd=0.0, std=std)
    far = float(np.exp(6.0))
    slopes = coef[:, 1] + coef[:, 2] * 6.0
    assert 0.2 < m.rising_fraction(far, 1.0) < 0.8 and m.rising_fraction(1.0, 1.0) == 1.0
    target = np.full(n, -3.9)
    back = m.to_nominal(target, far, 1.0)
    assert np.isfinite(back).all()
    rising = np.flatnonzero(slopes > 0)
    idx = rising[np.arange(n) % len(rising)]
    np.testing.assert_allclose(back, -6.0 + 0.1 / slopes[idx])
    near = m.to_nominal(target, 1.0, 1.0)
    assert np.ptp(np.quantile(back, [0.05, 0.95])) > 3 * np.ptp(np.quantile(near, [0.05, 0.95]))
    with pytest.raises(ValueError, match="not increasing"):
        m.to_nominal(target, float(np.exp(12.0)), 1.0)  # slope 0.3 - 0.6 +- 0.06: no draw rises
    assert m.rising_fraction(float(np.exp(12.0)), 1.0) * n < MIN_RISING_DRAWS


def test_map_needs_eff_lr():
    frame = make_effective_grid().drop(columns=["eff_lr"])
    table = load_runs(frame)
    with pytest.raises(ValueError, match="no eff_lr column"):
        fit_effective_map(table.runs, _std(table))


@pytest.mark.slow
def test_compare_finds_curvature_in_nominal_but_not_in_effective():
    from scalefit.evaluation.compare import compare

    truth = EffectiveTruth()
    table = load_runs(make_effective_grid(truth))
    result = compare(table, 128e6, 4e8, FAST, variants=[("nominal", "N"), ("effective", "N")])
    rows = result.rows.set_index("variant")
    true_target = float(np.exp(truth.log_lr_opt(128e6, 4e8)))
    for name in rows.index:
        assert rows.loc[name, "lr_low"] < true_target < rows.loc[name, "lr_high"], name
    # 0.85 before the law's discrepancy walk, which shares the bend with the curvature term
    assert rows.loc["nominal/N", "p_curvature_positive"] > 0.75
    assert rows.loc["nominal/N", "p_curvature_positive"] > rows.loc["effective/N", "p_curvature_positive"] + 0.1
    assert 0.05 < rows.loc["effective/N", "p_curvature_positive"] < 0.95
    # straight in effective space: narrower honest interval, and a log-linear fit there works
    width = np.log(rows["lr_high"] / rows["lr_low"])
    assert width["effective/N"] < width["nominal/N"]

    def truth_error(name, column):
        r = result.backtests[name].rows
        return float(np.abs(np.log10(r[column] / np.exp(truth.log_lr_opt(r["n_params"], r["n_tokens"])))).mean())

    assert truth_error("effective/N", "lr_median") <= truth_error("nominal/N", "lr_median") + 0.02
    assert truth_error("effective/N", "baseline_lr") < 0.5 * truth_error("nominal/N", "baseline_lr")
    assert rows["loo_group"].nunique() == 1  # same observations: LOO is comparable
    # the world is straight in effective LR: LOO prefers that space (measured margin 2.2 nats)
    assert rows.loc["effective/N", "elpd_loo"] > rows.loc["nominal/N", "elpd_loo"]


def test_transient_by_cell_reads_the_probe_columns():
    from scalefit.fit.effective import transient_by_cell

    frame = make_effective_grid()
    with pytest.raises(ValueError, match="lacks"):
        transient_by_cell(load_runs(frame).runs, load_runs(frame).cells)
    steps = 1000
    frame = frame.assign(steps=steps, equilibration_number=2 * 0.1 * frame["lr"] * steps,
                         t_eq=np.minimum(steps, 1.0 / (frame["lr"] * 0.1)))
    frame["transient_frac"] = frame["t_eq"] / steps
    table = load_runs(frame)
    out = transient_by_cell(table.runs, table.cells)
    assert len(out) == len(table.cells)
    best = table.cells["best_lr"]
    np.testing.assert_allclose(out["best_lr"], best.loc[out.index], rtol=1e-9)  # grid rounds LRs to 10 digits
    np.testing.assert_allclose(out["timescale_steps"], 1.0 / (out["best_lr"] * 0.1), rtol=1e-12)
    # smaller best LR (larger N) -> longer transient: the relation of docs/theory.md, "The equilibration number"
    order = np.argsort(out["best_lr"].to_numpy())
    assert out["transient_frac"].to_numpy()[order][0] >= out["transient_frac"].to_numpy()[order][-1]


def test_map_is_unbiased_near_the_optima_of_the_shipped_grid():
    """cpu_ladder_v1 (AdamW): a global log-linear map left +0.06 (up to +0.14) in ln eff_lr near
    the optimum of each cell; the windowed map with its u^2 term is centred there."""
    from sf_testing import REPO
    from scalefit.fit.effective import near_optimum

    table = load_runs(REPO / "data" / "cpu_ladder_v1" / "runs.csv", where={"optimizer": "adamw"})
    runs, std = table.runs, _std(table)
    m = fit_effective_map(runs, std)
    resid = np.log(runs["eff_lr"]) - m.log_eff(np.log(runs["lr"]), runs["n_params"], runs["n_tokens"])
    near = near_optimum(runs, 0.5)
    per_cell = resid[near].groupby(runs["cell"][near]).mean()
    assert abs(per_cell.mean()) < 0.02 and per_cell.abs().max() < 0.1
    assert m.residual_sd < 0.06 and np.median(m.scatter_draws) < 0.08
