"""The scoring layer of the calibration harness (truth, scores, pooling): the measured truth and its noise, regret, the OLS
prediction interval, and the pooling of rows (weights, cluster bootstrap). NumPy only, fast."""

import numpy as np
import pandas as pd
import pytest

from scalefit.evaluation.calibrate import sweep_optimum
from scalefit.evaluation.pooling import cluster_bootstrap, cluster_weights, distance_bin, score_table, weighted_median
from scalefit.evaluation.scores import (
    LEVELS, ols_prediction, posterior_scores, regret, score_regret, score_samples, truth_noise_scores, widen_interval)
from scalefit.evaluation.truth import (
    Sweep, ValleyDraws, bootstrap_vertex_sd, noise_floor, predictive_measured_optima, simulate_sweeps, vertex_optimum)

LOG10 = np.log(10.0)
# LRs spaced 2x, at 9 decimals of ln LR as Sweep groups them, so noiseless checks can be exact
GRID6 = np.round(np.log(1e-3 * 2.0 ** np.arange(6)), 9)
GRID7 = np.round(np.log(1e-3 * 2.0 ** np.arange(7)), 9)


def _runs(log_lr, loss, status=None):
    return pd.DataFrame({"lr": np.exp(log_lr), "final_loss": loss,
                         "status": status if status is not None else ["ok"] * len(loss)})


def _noisy_sweep(rng, valley: ValleyDraws, grid, counts, noise, nu=None):
    """One sweep of a single-draw `valley`: per-run ln LR and loss."""
    x = np.repeat(grid, counts)
    e = rng.standard_normal(x.size) if nu is None else rng.standard_t(nu, x.size)
    return x, valley.mean_loss(x)[0] + noise * e


# ------------------------------------------------------------------------------ the measured truth


def test_vertex_optimum_agrees_with_calibrate_sweep_optimum():
    """Noisy sweeps with seeds, a diverged LR inside the sweep, and unbracketed ones: the function
    of a sweep, its vectorized form over stacked sweeps and calibrate's sweep_optimum agree."""
    rng = np.random.default_rng(3)
    valley = lambda opt: ValleyDraws(optimum=np.array([np.log(opt)]), width=0.04, noise=0.0,  # noqa: E731
                                     floor=3.0, asymmetry=0.7)
    stacked, expected = [], []
    for i, opt in enumerate([2.7e-3, 5.1e-3, 1.3e-2, 4e-4, 9e-2, 7.7e-3]):
        x, loss = _noisy_sweep(rng, valley(opt), GRID7, np.array([1, 2, 3, 3, 2, 2, 1]), 0.004)
        status = np.array(["ok"] * x.size, dtype=object)
        if i == 1:  # a whole LR lost inside the sweep: the neighbours skip it
            status[x == GRID7[3]] = "diverged"
        runs = _runs(x, loss, status)
        truth, bracketed = sweep_optimum(runs)
        mine = Sweep.from_frame(runs).optimum()
        assert mine[1] == bracketed and mine[0] == pytest.approx(truth, abs=1e-9)
        ok = status == "ok"
        means = [loss[ok & (x == g)].mean() if (ok & (x == g)).any() else np.nan for g in GRID7]
        stacked.append(means)
        expected.append((truth, bracketed))
    vertex, bracketed = vertex_optimum(GRID7, np.array(stacked))
    np.testing.assert_allclose(vertex, [e[0] for e in expected], atol=1e-9)
    assert bracketed.tolist() == [e[1] for e in expected]
    assert bracketed.tolist().count(False) == 2  # the 4e-4 and 9e-2 optima lie off the grid


def test_unbracketed_sweeps_are_flagged_at_their_edge():
    low = (GRID6 - (GRID6[0] - 1.0)) ** 2  # rising from the first LR
    high = low[::-1]
    vertex, bracketed = vertex_optimum(GRID6, np.stack([low, high, np.full(6, np.nan)]))
    assert bracketed.tolist() == [False, False, False]
    assert vertex[0] == GRID6[0] and vertex[1] == GRID6[-1] and np.isnan(vertex[2])
    # a missing edge LR does not make the next one an edge... unless it is the best measured one
    gap = (GRID6 - GRID6[2]) ** 2
    gap[0] = np.nan
    v, b = vertex_optimum(GRID6, gap)
    assert b and v == pytest.approx(GRID6[2])


# --------------------------------------------------------------------------- noise-aware truth


def _worlds(n_worlds, asymmetry, seed=0):
    """Worlds drawn from a known, calibrated predictive, each with its own noisy held-out sweep.

    Per world: a predictive centre mu inside the grid; the predictive for the latent optimum is
    Normal(mu, 0.03 decades) (1000 draws) and the world's optimum is one more draw from it. The
    sweep: 6 LRs spaced 2x with 1, 2, 3, 3, 2, 1 seeds, width 0.04, Student-t(4) noise of scale
    0.006, so the measured vertex's sd is ~0.04 decades, above the predictive's own 0.03.
    """
    rng = np.random.default_rng(seed)
    counts = np.array([1, 2, 3, 3, 2, 1])
    sd, width, noise = 0.03 * LOG10, 0.04, 0.006
    rows = []
    for w in range(n_worlds):
        mu = rng.uniform(np.log(2.5e-3), np.log(1.2e-2))
        draws = ValleyDraws(optimum=mu + sd * rng.standard_normal(1000), width=width, noise=noise, floor=3.0,
                            asymmetry=asymmetry)
        world = ValleyDraws(optimum=np.array([mu + sd * rng.standard_normal()]), width=width, noise=noise,
                            floor=3.0, asymmetry=asymmetry)
        sweep = Sweep.from_arrays(*_noisy_sweep(rng, world, GRID6, counts, noise, nu=4))
        rows.append(posterior_scores(draws, sweep, seed=w))
    return pd.DataFrame(rows).query("bracketed")


def test_noise_aware_coverage_is_nominal_where_the_naive_score_is_not():
    """400 worlds from a calibrated predictive (see `_worlds`), symmetric valley (seed 0, all 400
    bracketed). Noise-aware: 90% coverage 0.885, 50% 0.45, PIT quintile shares 0.18-0.24, mean
    90% width 0.16 decades, interval score 0.215. Naive (the same latent draws against the
    measured vertex): 90% coverage 0.65, 50% 0.29, PIT U-shaped (0.34 and 0.32 in the outer
    quintiles), width 0.10 decades, interval score 0.31."""
    r = _worlds(400, asymmetry=None)
    assert len(r) >= 395
    assert 0.85 <= r["aware_cover90"].mean() <= 0.95
    assert 0.42 <= r["aware_cover50"].mean() <= 0.58
    assert r["naive_cover90"].mean() < 0.78 and r["naive_cover50"].mean() < 0.38
    aware = np.histogram(r["aware_pit"], bins=5, range=(0, 1))[0] / len(r)
    naive = np.histogram(r["naive_pit"], bins=5, range=(0, 1))[0] / len(r)
    assert np.abs(aware - 0.2).max() < 0.06
    assert naive[0] > 0.27 and naive[-1] > 0.27
    assert r["aware_interval_score"].mean() < r["naive_interval_score"].mean()


def test_noise_aware_truth_carries_the_vertex_bias_of_an_asymmetric_valley():
    """LINEX valley, k = 0.8 (300 worlds, seed 1, 299 bracketed): the 3-point vertex sits below
    the latent optimum, so the naive PIT piles up low (mean 0.40, 41% of worlds in the lowest
    quintile, 90% coverage 0.63) while the noise-aware one stays level (mean 0.53, lowest quintile
    18%, coverage 0.88)."""
    r = _worlds(300, asymmetry=0.8, seed=1)
    assert abs(r["aware_pit"].mean() - 0.5) < 0.05 and 0.85 <= r["aware_cover90"].mean() <= 0.95
    assert (r["aware_pit"] < 0.2).mean() < 0.26 and (r["naive_pit"] < 0.2).mean() > 0.3
    assert r["naive_pit"].mean() < 0.45 and r["naive_cover90"].mean() < 0.75


def test_simulated_sweeps_average_their_seeds_and_skip_unswept_lrs():
    draws = ValleyDraws(optimum=np.zeros(4000), width=1.0, noise=0.1)
    sims = simulate_sweeps(draws, [-1.0, 0.0, 1.0], [1, 4, 0], nu=None, seed=2)
    assert np.isnan(sims[:, 2]).all()
    assert np.std(sims[:, 0]) == pytest.approx(0.1, rel=0.05) and np.std(sims[:, 1]) == pytest.approx(0.05, rel=0.05)
    assert np.mean(sims[:, 0]) == pytest.approx(1.0, abs=0.01)


def test_predictive_keeps_only_sweeps_that_bracket():
    """Unbracketed held-out cells are never scored, so neither are unbracketed simulated sweeps."""
    draws = ValleyDraws(optimum=np.full(2000, GRID6[-1] - 0.2), width=0.04, noise=0.01)
    sweep = Sweep.from_arrays(GRID6, np.zeros(6))
    kept, share = predictive_measured_optima(draws, sweep, seed=0)
    everything, same = predictive_measured_optima(draws, sweep, seed=0, bracketed_only=False)
    assert 0.2 < share < 0.9 and same == share
    assert kept.size == round(share * 2000) and everything.size == 2000
    assert (kept < GRID6[-1]).all() and (everything == GRID6[-1]).any()


def test_pit_breaks_ties_at_random():
    pits = [score_samples(np.zeros(100), 0.0, seed=s)["pit"] for s in range(200)]
    assert 0.4 < np.mean(pits) < 0.6 and np.std(pits) > 0.2  # uniform on [0, 1], not a constant 0 or 1
    s = score_samples(np.linspace(-1, 1, 1001), 0.5)
    assert s["pit"] == pytest.approx(0.75, abs=1e-3) and s["cover50"] and not score_samples([1.0, 1.1], 0.0)["cover90"]


# ---------------------------------------------------------------- truth noise of point methods


def test_bootstrap_vertex_sd_tracks_the_true_sd_across_replicate_sweeps():
    """Gaussian noise of known scale 0.006, LINEX valley (k = 0.5) at 7 LRs spaced 2x. The true
    sd of the measured vertex (20,000 replicate sweeps): 0.026 decades with 3 seeds per LR,
    0.046 with one. The median bootstrap sd over 20 sweeps is within a factor 1.5 of it: 0.94 of
    it by seed resampling, 1.15 by the residual bootstrap (single sweeps range 0.3-1.9)."""
    valley = ValleyDraws(optimum=np.array([np.log(7.1e-3)]), width=0.04, noise=0.006, floor=3.0, asymmetry=0.5)
    rng = np.random.default_rng(5)
    for counts, source in [(np.full(7, 3), "seeds"), (np.ones(7, dtype=int), "local fit")]:
        sims = simulate_sweeps(valley, GRID7, counts, nu=None, seed=1, per_draw=20000)
        v, b = vertex_optimum(GRID7, sims)
        true_sd = v[b].std()
        est = []
        for i in range(20):
            sd, src, share = bootstrap_vertex_sd(Sweep.from_arrays(*_noisy_sweep(rng, valley, GRID7, counts, 0.006)),
                                                 n_boot=400, seed=i)
            assert src == source and share > 0.9
            est.append(sd)
        ratio = np.median(est) / true_sd
        assert 1 / 1.5 < ratio < 1.5, (source, ratio)


def test_seed_bootstrap_gives_each_lr_mean_its_standard_error():
    """Deviations rescaled by sqrt(n / (n - 1)): with 2 seeds per LR the replicate means spread by
    the pooled seed sd / sqrt(2), not by the 1/sqrt(2) less that raw deviations would give."""
    from scalefit.evaluation.truth import _seed_replicates

    rng = np.random.default_rng(8)
    x = np.repeat(GRID6, 2)
    sweep = Sweep.from_arrays(x, 3 + 0.04 * (x - GRID6[2]) ** 2 + 0.01 * rng.standard_normal(x.size))
    sd, _ = noise_floor(sweep)
    means = _seed_replicates(sweep, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(means.std(axis=0), sd / np.sqrt(2), rtol=0.03)
    np.testing.assert_allclose(means.mean(axis=0), sweep.mean, atol=3 * sd / np.sqrt(2 * 20000))


def test_noise_floor_is_the_seed_sd_or_the_local_residual_sd():
    x = np.repeat(GRID6, 2)
    loss = 3 + 0.04 * (x - GRID6[2]) ** 2 + np.tile([-0.01, 0.01], 6)
    sd, source = noise_floor(Sweep.from_arrays(x, loss))
    assert source == "seeds" and sd == pytest.approx(np.sqrt(12 * 0.01**2 / 6))
    exact = Sweep.from_arrays(GRID6, 3 + 0.04 * (GRID6 - GRID6[2]) ** 2)
    assert noise_floor(exact) == (pytest.approx(0.0, abs=1e-12), "local fit")
    assert noise_floor(Sweep.from_arrays(GRID6[:3], [3.1, 3.0, 3.1]))[1] == "none"


def test_widened_intervals_add_the_truth_noise_in_quadrature():
    lo, hi = widen_interval(0.0, 0.0, 0.1, level=0.9)  # a bare point: the truth's noise alone
    assert hi == pytest.approx(1.6448536 * 0.1) and lo == pytest.approx(-hi)
    lo, hi = widen_interval(-0.3, 0.4, 0.2 / 1.6448536, level=0.9, center=0.0)  # each side on its own
    assert lo == pytest.approx(-np.hypot(0.3, 0.2)) and hi == pytest.approx(np.hypot(0.4, 0.2))
    pred = ols_prediction([[1, 0], [1, 1], [1, 2], [1, 3]], [0.0, 1.2, 1.8, 3.1], [1, 4])
    intervals = {p: pred.interval(p) for p in LEVELS}
    raw = truth_noise_scores(pred.center + 1.0, 0.0, pred.center, intervals)
    wide = truth_noise_scores(pred.center + 1.0, 0.5, pred.center, intervals)
    assert wide["width90_dec"] > raw["width90_dec"] and wide["interval_score"] != raw["interval_score"]
    assert raw["width90_dec"] == pytest.approx((intervals[0.9][1] - intervals[0.9][0]) / LOG10)
    point = truth_noise_scores(0.05, 0.1, 0.0)
    assert point["cover90"] and point["hi90"] == pytest.approx(0.16448536)


# ----------------------------------------------------------------------------------------- regret


def test_regret_between_grid_points_is_exact_where_linear_interpolation_overstates_it():
    """A noiseless convex valley, the LR between grid points: the local quadratic gives the true
    rise (exactly on a parabola; within 3% on a LINEX valley, k = 0.5), while linear interpolation
    gives 9-26% more."""
    for k, tol in [(None, 1e-9), (0.5, 0.05)]:
        valley = ValleyDraws(optimum=np.array([np.log(5.3e-3)]), width=0.04, noise=0.0, floor=3.0, asymmetry=k)
        sweep = Sweep.from_arrays(GRID7, valley.mean_loss(GRID7)[0])
        for lr in (1.4e-2, 2.6e-3):
            true = valley.mean_loss([np.log(lr)])[0, 0] - sweep.mean.min()
            linear = np.interp(np.log(lr), sweep.log_lr, sweep.mean) - sweep.mean.min()
            r = regret(sweep, np.log(lr))
            assert r.inside and r.nats == pytest.approx(true, rel=tol)
            assert linear > 1.08 * true


def test_regret_is_clipped_flags_extrapolation_and_counts_noise_units():
    x = np.repeat(GRID6, 2)
    loss = 3 + 0.04 * (x - GRID6[2]) ** 2 + np.tile([-0.01, 0.01], 6)
    sweep = Sweep.from_arrays(x, loss)
    at_best = regret(sweep, GRID6[2])
    assert at_best.nats == 0.0 and at_best.noise_source == "seeds"
    r = regret(sweep, GRID6[2] + 1.0)
    assert r.noise_units == pytest.approx(r.nats / r.noise_sd) and r.nats == pytest.approx(0.04, rel=0.05)
    # two equal best LRs: the local parabola through them dips below the best between them
    dip = Sweep.from_arrays(GRID6, 3 + np.array([0.08, 0.02, 0.0, 0.0, 0.02, 0.08]))
    assert regret(dip, 0.5 * (GRID6[2] + GRID6[3])).nats == 0.0
    out = regret(sweep, GRID6[-1] + 0.1)
    assert not out.inside and np.isnan(out.nats) and np.isnan(out.noise_units)
    with pytest.raises(ValueError):
        regret(sweep, GRID6[2], n_local=6)


def test_predicted_regret_is_scored_against_the_realized_one():
    s = score_regret(0.03, 0.02, noise_sd=0.005)
    assert s["error"] == pytest.approx(0.01) and s["error_noise_units"] == pytest.approx(2.0)
    draws = np.linspace(0.0, 0.04, 401)
    s = score_regret(draws, 0.03)
    assert s["cover"] and s["pit"] == pytest.approx(0.75, abs=0.01)
    assert np.isnan(score_regret(draws, float("nan"))["error"])


# --------------------------------------------------------------------------- OLS prediction interval


def test_ols_prediction_interval_by_hand():
    """x = 0, 1, 2, y = 0, 1, 3: slope 3/2, intercept -1/6, SSR 1/6 on 1 df; at x = 3 the
    prediction is 13/3 with leverage 1/3 + (3 - 1)^2/2 = 7/3, so se = sqrt(1/6 * 10/3). With one
    df the t is a Cauchy: t_0.95 = tan(0.45 pi) = 6.3138."""
    pred = ols_prediction([[1, 0], [1, 1], [1, 2]], [0.0, 1.0, 3.0], [1, 3])
    se = np.sqrt(1 / 6 * 10 / 3)
    assert pred.df == 1 and pred.center == pytest.approx(13 / 3) and pred.scale == pytest.approx(se)
    lo, hi = pred.interval(0.9)
    assert hi - 13 / 3 == pytest.approx(np.tan(0.45 * np.pi) * se) and 13 / 3 - lo == pytest.approx(hi - 13 / 3)
    # four points, two df: t_u = (2u - 1) / sqrt(2u(1 - u)); y = 0, 2, 1, 3 has slope 0.8, SSR 1.8
    pred = ols_prediction([[1, 0], [1, 1], [1, 2], [1, 3]], [0.0, 2.0, 1.0, 3.0], [1, 1.5])
    t = (2 * 0.75 - 1) / np.sqrt(2 * 0.75 * 0.25)
    se = np.sqrt(1.8 / 2 * (1 + 1 / 4))  # at the mean of x the leverage is 1/n
    assert pred.center == pytest.approx(1.5) and pred.interval(0.5)[1] == pytest.approx(1.5 + t * se)


def test_ols_prediction_degenerate_cases_give_nan_and_a_reason():
    few = ols_prediction([[1, 0], [1, 1]], [0.0, 1.0], [1, 2])
    assert np.isnan(few.center) and "n <= p" in few.reason and np.isnan(few.interval()[0])
    flat = ols_prediction([[1, 1], [1, 1], [1, 1]], [0.0, 1.0, 2.0], [1, 2])
    assert np.isnan(flat.center) and "rank" in flat.reason
    with pytest.raises(ValueError):
        ols_prediction([[1, 0], [1, 1], [1, 2]], [0.0, 1.0], [1, 2])


# --------------------------------------------------------------------------------- weights, pooling


def test_a_cell_predicted_five_times_weighs_as_much_as_one_predicted_once():
    rows = pd.DataFrame({"method": "model", "cell_label": ["a"] * 5 + ["b"], "cover90": [1.0] * 5 + [0.0]})
    w = cluster_weights(rows, within=("method",))
    assert w[rows["cell_label"] == "a"].sum() == pytest.approx(w[rows["cell_label"] == "b"].sum()) == 1.0
    table = score_table(rows, ["cover90"], n_boot=500)
    assert table["cover90"].iloc[0] == pytest.approx(0.5) and table["n_cells"].iloc[0] == 2
    assert table["n_rows"].iloc[0] == 6


def test_cluster_bootstrap_covers_the_mean_and_is_wider_than_a_row_bootstrap():
    """20 cells predicted 1-5 times each, rows identical within a cell: the row bootstrap takes
    the copies for independent evidence and comes out narrower (the cluster CI is 1.6x wider)."""
    rng = np.random.default_rng(4)
    k = rng.integers(1, 6, 20)
    cells = np.repeat(np.arange(20), k)
    values = np.repeat(rng.standard_normal(20), k)
    weights = cluster_weights(pd.DataFrame({"cell_label": cells})).to_numpy()
    mean = np.average(values, weights=weights)
    assert mean == pytest.approx(np.mean(values[np.r_[0, np.cumsum(k)[:-1]]]))  # = the mean over cells
    lo, hi = cluster_bootstrap(values, weights, cells, n_boot=2000, seed=0)
    rlo, rhi = cluster_bootstrap(values, weights, np.arange(values.size), n_boot=2000, seed=0)
    assert lo < mean < hi and (hi - lo) > 1.3 * (rhi - rlo)
    assert cluster_bootstrap(values, weights, cells, n_boot=2000, seed=0) == (lo, hi)  # deterministic


def test_equal_datasets_and_per_point_weights():
    rows = pd.DataFrame({"dataset": ["x"] * 4 + ["y"], "cell_label": ["a", "b", "c", "c", "d"],
                         "n_params": [1, 2, 3, 3, 4], "n_tokens": 1.0, "batch_size": [1, 1, 1, 2, 1],
                         "score": [1.0, 1.0, 1.0, 1.0, 0.0]})
    w = cluster_weights(rows, equal="dataset")
    assert w[rows["dataset"] == "x"].sum() == pytest.approx(w[rows["dataset"] == "y"].sum())
    assert score_table(rows, ["score"], by=(), equal="dataset", n_boot=200)["score"].iloc[0] == pytest.approx(0.5)
    # with datasets weighted equally, cells are resampled within their dataset: one cell each
    # leaves nothing to resample, where a pooled resampling would swing between 0 and 1
    two = pd.DataFrame({"dataset": ["x", "y"], "cell_label": ["a", "b"], "score": [1.0, 0.0]})
    t = score_table(two, ["score"], by=(), equal="dataset", n_boot=200).iloc[0]
    assert t["score_lo"] == t["score_hi"] == 0.5
    assert score_table(two, ["score"], by=(), n_boot=200).iloc[0]["score_hi"] == 1.0
    rows["cell_label"] = ["a", "b", "c", "c2", "d"]  # two batch sizes at one (N, D) point
    assert cluster_weights(rows).tolist() == [1, 1, 1, 1, 1]
    assert cluster_weights(rows, cluster=("dataset", "n_params", "n_tokens")).tolist() == [1, 1, 0.5, 0.5, 1]


def test_score_table_medians_groups_and_missing_scores():
    rows = pd.DataFrame({"method": ["m"] * 4 + ["p"] * 4, "cell_label": list("abcd") * 2,
                         "err": [0.1, 0.2, 0.3, 10.0, 0.5, np.nan, 0.5, 0.5]})
    t = score_table(rows, ["err"], n_boot=300).set_index("method")
    assert t.loc["m", "err_median"] == pytest.approx(0.25) and t.loc["m", "err"] == pytest.approx(2.65)
    assert t.loc["p", "err"] == pytest.approx(0.5) and t.loc["p", "err_lo"] <= 0.5 <= t.loc["p", "err_hi"]
    assert weighted_median([3.0, 1.0, 2.0, 4.0], np.ones(4)) == np.median([1, 2, 3, 4])
    assert weighted_median([1.0, 2.0, 3.0], [1, 1, 5]) == 3.0


def test_distance_bins():
    bins = distance_bin([0.0, 0.5, 1.0, 2.29, 2.3, 5.0, np.nan])
    assert bins.tolist() == ["inside", "<1", "1-2.3", "1-2.3", ">2.3", ">2.3", ""]
