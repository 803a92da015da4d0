"""Sampling tests: parameter recovery on synthetic grids with known truth (small draws).

All grids here share one shape, so the model compiles once and later fits only swap data.
"""

import numpy as np
import pytest

from sf_testing import FAST
from scalefit.evaluation.backtest import leave_largest_out
from scalefit.model.config import ModelConfig
from scalefit.fit.core import fit_runs
from scalefit.runs.table import load_runs
from scalefit.runs.synthetic import SyntheticTruth, make_grid

pytestmark = pytest.mark.slow

SIZES = (1e6, 2e6, 4e6, 8e6, 16e6, 32e6, 64e6)
TOKENS = (2e8, 8e8)


def _table(curvature: float, seed: int):
    truth = SyntheticTruth(curvature_n=curvature, n_ref=8e6)
    return truth, load_runs(make_grid(truth, n_params=SIZES, n_tokens=TOKENS, n_lrs=7, seed=seed))


def test_curved_truth_held_out_optimum_inside_interval_and_curvature_found():
    truth, table = _table(curvature=0.1, seed=3)
    bt = leave_largest_out(table, ModelConfig(axis="N"), FAST)
    assert bt.fit.convergence.divergences == 0
    for _, row in bt.rows.iterrows():
        true_lr = float(np.exp(truth.log_lr_opt(row["n_params"], row["n_tokens"])))
        assert row["lr_low"] < true_lr < row["lr_high"], (row.to_dict(), true_lr)
        # the log-linear baseline under-predicts a convex law, and its point has no interval
        assert row["baseline_lr"] < true_lr
    full = fit_runs(table, ModelConfig(axis="N"), FAST)
    p = full.predict(128e6, 4e8)
    # 0.95 before the discrepancy walk, which can take part of a bend the quadratic term took alone
    assert p.p_curvature_positive > 0.9
    assert p.lr_low < np.exp(truth.log_lr_opt(128e6, 4e8)) < p.lr_high


def test_straight_truth_curvature_not_claimed():
    truth, table = _table(curvature=0.0, seed=4)
    fit = fit_runs(table, ModelConfig(axis="N"), FAST)
    p = fit.predict(128e6, 4e8)
    assert 0.05 < p.p_curvature_positive < 0.95
    assert p.lr_low < np.exp(truth.log_lr_opt(128e6, 4e8)) < p.lr_high


def test_outliers_inside_the_window_do_not_move_the_optimum(default_table, default_fit):
    """Three gross outliers next to one cell's optimum (a bad node, say): Student-t keeps it."""
    runs = default_table.to_frame()
    cell = 7
    idx = runs.index[runs["cell"] == cell][[3, 4, 5]]
    runs.loc[idx, "final_loss"] += np.array([0.5, -0.4, 0.6])
    bad = load_runs(runs.drop(columns=["cell"]))
    fit = fit_runs(bad, ModelConfig(axis="N"), FAST)
    true = np.log(default_table.runs.loc[default_table.runs["cell"] == cell, "true_lr_opt"].iloc[0])
    m = fit.posterior["log_lr_opt"].sel(cell=cell).values.ravel() + fit.std.x_center
    lo, hi = np.quantile(m, [0.05, 0.95])
    assert lo < true < hi
    clean = default_fit.posterior["log_lr_opt"].sel(cell=cell).values.ravel() + default_fit.std.x_center
    assert abs(np.median(m) - np.median(clean)) < 0.25


def test_default_fit_recovers_every_cell_optimum(default_table, default_fit):
    # CI-sized sampling: demand sane chains, not the full ess >= 400 of `converged`
    assert default_fit.convergence.max_rhat < 1.05 and default_fit.convergence.divergences == 0
    post = default_fit.posterior["log_lr_opt"].values.reshape(-1, len(default_table.cells)) + default_fit.std.x_center
    lo, hi = np.quantile(post, [0.025, 0.975], axis=0)
    truth = np.log(default_table.runs.groupby("cell")["true_lr_opt"].first().to_numpy())
    inside = (lo < truth) & (truth < hi)
    assert inside.mean() >= 13 / 15  # 95% intervals: allow a miss or two out of 15


def test_default_pymc_sampler_agrees_with_nutpie(default_table, default_fit):
    from scalefit.inference.sampling import SamplerSettings

    fit = fit_runs(default_table, ModelConfig(axis="N"),
                   SamplerSettings(draws=300, tune=300, chains=2, sampler="pymc", seed=2))
    a = fit.predict(128e6, 4e8)
    b = default_fit.predict(128e6, 4e8)
    assert abs(np.log(a.lr_median / b.lr_median)) < 0.15


def test_interval_widens_with_extrapolation_distance(default_fit):
    """Fitted on 2M-32M: the 90% interval grows with the distance beyond 32M, and so does the
    law's discrepancy term on its own (the same draws with and without it differ by exactly it)."""
    from scalefit.fit.predict import target_draws, walk_context

    def draws(n, walk):
        return target_draws(default_fit.posterior, default_fit.std, default_fit.config, n, 4e8, seed=0, walk=walk)["m"]

    walk = walk_context(default_fit)
    assert set(walk) == {"N"}
    sizes = (16e6, 128e6, 1e9, 8e9)  # inside, then 1.4, 3.4 and 5.5 e-folds beyond
    widths = [np.subtract(*np.quantile(draws(n, walk), [0.95, 0.05])) for n in sizes]
    assert (np.diff(widths) > 0).all()
    term_sd = np.array([np.std(draws(n, walk) - draws(n, None)) for n in sizes[1:]])
    assert (np.diff(term_sd) > 0).all()
    kappa = np.median(default_fit.posterior["law_discrepancy_N"].values)
    # beyond the data the term diffuses: its variance grows by about kappa^2 per e-fold
    growth = (term_sd[-1] ** 2 - term_sd[0] ** 2) / (np.log(8e9) - np.log(128e6))
    assert 0.3 * kappa**2 < growth < 3 * np.mean(default_fit.posterior["law_discrepancy_N"].values ** 2)


def test_restandardizing_leaves_the_posterior_unchanged(default_table, default_fit):
    """Internal z with three times the sd of ln N: the law per e-fold and the target interval
    are the same (up to Monte Carlo error), because the priors are stated per e-fold."""
    wide = fit_runs(default_table, ModelConfig(axis="N"), FAST, z_scale={"N": 3 * default_fit.std.log_n_sd})
    assert wide.std.log_n_sd == pytest.approx(3 * default_fit.std.log_n_sd)
    for name in ("law_slope_N_natural", "law_curvature_N_natural"):
        a, b = (f.posterior[name].values.ravel() for f in (default_fit, wide))
        assert abs(np.median(a) - np.median(b)) < 0.25 * np.std(a) + 0.005, name
        assert np.std(b) == pytest.approx(np.std(a), rel=0.2), name
    pa, pb = default_fit.predict(128e6, 4e8), wide.predict(128e6, 4e8)
    for x, y in ((pa.lr_median, pb.lr_median), (pa.lr_low, pb.lr_low), (pa.lr_high, pb.lr_high)):
        assert abs(np.log(x / y)) < 0.1


def test_batch_size_slope_recovered_on_a_swept_grid():
    """4 sizes x 3 batch sizes (32k-512k tokens/step), truth +0.5 per e-fold of B: the law's B
    slope covers it and excludes 0; a prediction says which batch size it is for."""
    truth = SyntheticTruth(curvature_n=0.0, slope_b=0.5)
    table = load_runs(make_grid(truth, n_params=(2e6, 4e6, 8e6, 16e6), n_tokens=(4e8,), n_lrs=7, seed=7,
                                batch_sizes=(32768, 131072, 524288)))
    fit = fit_runs(table, ModelConfig(axis="N"), FAST)
    slope = fit.posterior["law_slope_B_natural"].values.ravel()
    lo, hi = np.quantile(slope, [0.05, 0.95])
    assert lo < 0.5 < hi and lo > 0.2
    p = fit.predict(64e6, 4e8, batch_size=131072)
    assert p.batch_size == 131072
    true_lr = float(np.exp(truth.log_lr_opt(64e6, 4e8, 131072)))
    assert p.lr_low < true_lr < p.lr_high
    larger = fit.predict(64e6, 4e8, batch_size=524288)
    assert larger.lr_median > p.lr_median * 1.5  # 0.5 per e-fold over 1.4 e-folds: x2 in truth
    with pytest.raises(ValueError, match="outside the batch sizes the fit saw"):
        fit.predict(64e6, 4e8, batch_size=4e6)
    with pytest.raises(ValueError, match="pass --batch-size"):
        fit.predict(64e6, 4e8)
