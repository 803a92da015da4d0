"""Fast structure tests: data preparation, valley shape, baseline, decision, prediction maths.
No MCMC here; the sampling tests live in test_recovery.py."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scalefit.fit.baseline import cell_vertex, fit_baseline
from scalefit.model.config import ModelConfig
from scalefit.runs.table import load_runs
from scalefit.model.data import prepare, run_weights
from scalefit.model.graph import build_model
from scalefit.model.valley import valley_rise, valley_shape
from scalefit.fit.predict import decide, predict


def _grid(rows):
    return load_runs(pd.DataFrame(rows, columns=["n_params", "n_tokens", "lr", "final_loss", "status"]), min_lrs=3)


def _valley_rows(n, d, best_lr, extra=()):
    rows = [(n, d, best_lr * 2.0**k, 3.0 + 0.05 * k * k, "ok") for k in (-2, -1, 0, 1, 2)]
    return rows + list(extra)


def test_valley_shape_is_quadratic_at_the_optimum_and_asymmetric():
    k = 0.8
    h = 1e-4
    g0 = valley_shape(0.0, k)
    slope = (valley_shape(h, k) - valley_shape(-h, k)) / (2 * h)
    second = (valley_shape(h, k) - 2 * g0 + valley_shape(-h, k)) / h**2
    assert abs(g0) < 1e-12 and abs(slope) < 1e-6 and second == pytest.approx(2.0, rel=1e-3)
    assert valley_shape(1.0, k) > valley_shape(-1.0, k)  # steeper high-LR side
    assert valley_shape(-10.0, k) < 10 * 2 / k  # the low side grows only linearly
    assert valley_shape(0.7) == pytest.approx(0.49)
    assert valley_shape(0.7, 1e-6) == pytest.approx(0.49, rel=1e-4)  # continuous at k -> 0
    assert 0.5 * (valley_rise(1.0, k) + valley_rise(-1.0, k)) == pytest.approx(1.0)


def test_window_excludes_far_runs_and_censors_diverged():
    far = (1e6, 1e8, 1e-3 * 2.0**-5, 9.0, "ok")  # 5 octaves below: other physics
    div = (1e6, 1e8, 1e-3 * 2.0**2.5, np.nan, "diverged")
    failed = (1e6, 1e8, 1e-3 * 2.0**0.5, np.nan, "failed")
    t = _grid(_valley_rows(1e6, 1e8, 1e-3, [far, div, failed]) + _valley_rows(2e6, 1e8, 5e-4))
    cfg = ModelConfig(axis="N", law="linear")
    w, cens, thr = run_weights(t.runs, cfg)
    runs = t.runs.assign(w=w, cens=cens, thr=thr)
    assert runs.loc[runs["final_loss"] == 9.0, "w"].item() == 0.0
    d = runs[runs["status"] == "diverged"]
    assert d["w"].item() == 1.0 and d["cens"].item() == 1.0
    assert d["thr"].item() == pytest.approx(3.2)  # the worst ok loss in the window
    assert runs.loc[runs["status"] == "failed", "w"].item() == 0.0
    w_ex, _, _ = run_weights(t.runs, cfg.replace(diverged="exclude"))
    assert w_ex[(t.runs["status"] == "diverged").to_numpy()].item() == 0.0
    w_held, _, _ = run_weights(t.runs, cfg, held_out=[1])
    assert w_held[(t.runs["cell"] == 1).to_numpy()].sum() == 0.0
    # loss window: ok runs > 5% above the cell's best (3.2 vs 3.0, two octaves out) are censored
    # at 3.15; nearer runs stay observed; with loss_window=None every ok run is observed
    ok = (runs["status"] == "ok") & (runs["w"] == 1.0)
    far_ok = ok & (runs["final_loss"] > 3.15)
    assert far_ok.sum() == 4 and (runs.loc[far_ok, "cens"] == 1.0).all()
    assert runs.loc[far_ok, "thr"].to_numpy() == pytest.approx(3.15)
    assert (runs.loc[ok & ~far_ok, "cens"] == 0.0).all()
    _, cens_all, _ = run_weights(t.runs, cfg.replace(loss_window=None))
    assert cens_all[(t.runs["status"] == "ok").to_numpy()].sum() == 0.0


def test_prepare_standardizes_on_fitted_cells_only():
    rows = []
    for i, n in enumerate([1e6, 2e6, 4e6, 8e6]):
        rows += _valley_rows(n, 1e8, 1e-3 / (i + 1))
    t = _grid(rows)
    data = prepare(t.runs, t.cells, ModelConfig(axis="N"), held_out=[3])
    fitted = data.z_n[:3]
    assert fitted.mean() == pytest.approx(0.0, abs=1e-12)
    assert data.z_n[3] > fitted.max()  # the held-out cell is an extrapolation in z
    a = data.arrays()
    assert len(a["x_obs"]) + len(a["x_cens"]) == 15  # held-out runs are not fed to the model
    with pytest.raises(ValueError, match="use --axis N"):
        prepare(t.runs, t.cells, ModelConfig(axis="D"))


def test_model_structure_follows_config(default_table):
    data = prepare(default_table.runs, default_table.cells, ModelConfig(axis="ND"))
    model = build_model(data, ModelConfig(axis="ND"))
    names = set(model.named_vars)
    assert {"law_slope_N", "law_curvature_N", "law_slope_D", "law_curvature_D", "valley_asymmetry"} <= names
    assert model.dim_lengths["cell"].eval() == len(default_table.cells)
    lin = build_model(prepare(default_table.runs, default_table.cells, ModelConfig(axis="D", law="linear",
                                                                                  valley="quadratic")),
                      ModelConfig(axis="D", law="linear", valley="quadratic"))
    lin_names = set(lin.named_vars)
    assert "law_slope_D" in lin_names and not any("curvature" in n or "asymmetry" in n for n in lin_names)


@pytest.mark.parametrize("hold_largest", [False, True])
def test_slope_curvature_and_walk_drawn_together_keep_the_stated_prior(default_table, hold_largest):
    """The law's slope, curvature and discrepancy walk are drawn as the sums the data see plus
    splits they cannot see (scalefit.model.graph._law_walk), and the intercept net of the law's mean
    over the cells: the prior must still be intercept ~ N(0, 2), slope ~ N(mu, sigma),
    curvature ~ N(0, 0.05) and a Brownian walk with E[kappa^2] min(t_i, t_j) covariance, all
    independent."""
    import pymc as pm

    config = ModelConfig(axis="ND")
    cells = default_table.cells
    # held out: the fit is off-centre, and the data do not reach the walk's last position
    largest = cells.index[cells["n_params"] == cells["n_params"].max()] if hold_largest else []
    data = prepare(default_table.runs, cells, config, held_out=largest)
    split = data.arrays()["bend_split_N"]
    assert split == (0.0 if hold_largest else 1.0)
    model = build_model(data, config)
    free = {v.name for v in model.free_RVs}
    assert {"law_trend_N", "law_trend_split_N", "law_bend_N", "law_bend_split_N", "law_level"} <= free
    assert "law_curvature_N" not in free and len(data.walk_step["N"]) > 1
    names = ["law_intercept", "law_slope_N_natural", "law_curvature_N_natural", "law_walk_N", "law_trend_N"]
    a, b, c, w, trend = (np.asarray(v) for v in pm.draw([model[n] for n in names], draws=40000, random_seed=3))
    x = np.column_stack([a, b, c, w[:, 1:]])
    t = np.cumsum(data.walk_step["N"] ** 2)
    # the trend is the linear coefficient the data see: slope + walk's mean slope + (T - 2 t_c) curvature
    # (with the split; without it, slope + walk's mean slope, the curvature drawn on its own)
    t_centre = -data.std.log_n_sd * data.z_n.min()
    assert (abs(t[-1] - 2 * t_centre) > 0.05) == hold_largest  # off-centre: the curvature term counts
    assert np.allclose(trend, b + w[:, -1] / t[-1] + split * (t[-1] - 2 * t_centre) * c, atol=1e-9)
    pr = config.priors
    expected = np.zeros((x.shape[1], x.shape[1]))
    expected[0, 0] = pr["law_intercept"]["sigma"] ** 2
    expected[1, 1] = pr["law_slope_N"]["sigma"] ** 2
    expected[2, 2] = pr["law_curvature_N"]["sigma"] ** 2
    expected[3:, 3:] = pr["law_discrepancy"]["sigma"] ** 2 * np.minimum.outer(t, t)  # E[kappa^2] = sigma^2
    sd = np.sqrt(np.diag(expected))
    mean = [pr["law_intercept"]["mu"], pr["law_slope_N"]["mu"], pr["law_curvature_N"]["mu"]] + [0] * len(t)
    assert np.all(np.abs(x.mean(0) - mean) < 4 * sd / np.sqrt(len(x)) + 1e-9)
    corr = np.corrcoef(x.T)
    assert np.all(np.abs(np.diag(np.cov(x.T)) / sd**2 - 1) < 0.05)
    assert np.abs(corr - expected / np.outer(sd, sd)).max() < 0.03


def test_centring_follows_each_cells_information_and_scale_priors_follow_config(default_table):
    """A cell whose sweep pins its optimum (many runs, sharp valley) is centred (w near 1); the
    same cell with its runs thinned to a flat, noisy valley is not; a held-out cell gets w = 0.
    A scale prior with alpha/beta is a Gamma (kept off zero), with sigma a HalfNormal."""
    from scalefit.model.centring import cell_centring

    rng = np.random.default_rng(0)
    x_sharp = np.repeat(np.linspace(-1.5, 1.5, 9), 3)
    y_sharp = 2.0 * x_sharp**2 + rng.normal(0, 0.01, len(x_sharp))
    x_flat = np.array([-1.0, 0.0, 1.0, 1.5])
    y_flat = 0.02 * x_flat**2 + rng.normal(0, 0.05, 4)
    x = np.concatenate([x_sharp, x_flat, [0.0, 0.5, 1.0]])
    y = np.concatenate([y_sharp, y_flat, [0.0, 0.1, 0.4]])
    cell = np.concatenate([np.zeros(len(x_sharp), int), np.ones(4, int), np.full(3, 2)])
    observed = np.concatenate([np.ones(len(x_sharp) + 4, bool), np.zeros(3, bool)])
    w, w_width = cell_centring(x, y, cell, observed, 3)
    assert w[0] > 0.95 and w[1] < 0.5 and w[2] == 0.0
    assert w_width[0] > 0.95 and w_width[1] < 0.5 and w_width[2] == 0.0

    cfg = ModelConfig(axis="N", priors={"law_residual_sd": {"alpha": 2.0, "beta": 10.0}})
    data = prepare(default_table.runs, default_table.cells, cfg)
    assert data.centring.shape == (len(default_table.cells),) and ((0 <= data.centring) & (data.centring <= 1)).all()
    model = build_model(data, cfg)
    assert {"log_lr_opt_raw", "log_width_raw"} <= {v.name for v in model.free_RVs}
    assert model["law_residual_sd"].owner.op.name == "gamma"
    assert build_model(data, ModelConfig(axis="N"))["law_residual_sd"].owner.op.name == "halfnormal"


def test_optimum_scatter_by_moments_and_the_centring_it_sets():
    """The optima's scatter around the law, by moments: about the true tau when the vertices
    scatter, 0 when they sit on the law within their standard errors, and None (the fixed 0.3)
    with too few cells. Cells whose optima sit on the law are then non-centred."""
    from scalefit.model.centring import MIN_SCATTER_DOF, TYPICAL_TAU, cell_centring, optimum_scatter

    rng = np.random.default_rng(1)
    z = np.linspace(-1.5, 1.5, 400)
    design = np.column_stack([np.ones_like(z), z, z**2])
    law = 0.3 - 0.5 * z + 0.1 * z**2
    se2 = rng.uniform(0.01, 0.05, z.size) ** 2
    noisy = law + rng.normal(0, np.sqrt(se2))
    assert optimum_scatter(law + rng.normal(0, 0.2, z.size) + rng.normal(0, np.sqrt(se2)), se2, design) == \
        pytest.approx(0.2, rel=0.1)
    assert optimum_scatter(noisy, se2, design) < 0.5 * np.sqrt(np.median(se2))  # w < 0.2 for a typical cell
    few = 3 + MIN_SCATTER_DOF - 1
    assert optimum_scatter(noisy[:few], se2[:few], design[:few]) is None

    # cells on a law: sharp sweeps around law values exactly, 20 cells
    cells, xs, ys = [], [], []
    for c, m in enumerate(np.linspace(-1, 1, 20)):
        x = np.repeat(np.linspace(m - 1.5, m + 1.5, 7), 2)
        xs.append(x)
        ys.append((x - m) ** 2 + rng.normal(0, 0.02, x.size))
        cells.append(np.full(x.size, c))
    x, y, cell = np.concatenate(xs), np.concatenate(ys), np.concatenate(cells)
    on_law = np.column_stack([np.ones(20), np.linspace(-1, 1, 20)])
    w, _ = cell_centring(x, y, cell, np.ones(x.size, bool), 20, on_law)
    assert np.median(w) < 0.25
    w_fixed, _ = cell_centring(x, y, cell, np.ones(x.size, bool), 20)  # no design: the fixed TYPICAL_TAU
    assert np.all(w_fixed > 0.9) and TYPICAL_TAU == 0.3


def test_law_priors_are_stated_per_efold_whatever_the_standardization(default_table):
    """The prior of a slope per e-fold (and of a curvature per e-fold^2) is the configured one,
    however wide the fitted range makes the standardized z."""
    import pymc as pm

    cfg = ModelConfig(axis="N")
    for scale in (None, {"N": 5.0}):
        data = prepare(default_table.runs, default_table.cells, cfg, z_scale=scale)
        with build_model(data, cfg):
            prior = pm.sample_prior_predictive(draws=4000, random_seed=1, var_names=[
                "law_slope_N_natural", "law_curvature_N_natural"]).prior
        slope, curv = prior["law_slope_N_natural"].values, prior["law_curvature_N_natural"].values
        assert np.mean(slope) == pytest.approx(-0.4, abs=0.03) and np.std(slope) == pytest.approx(0.4, rel=0.05)
        assert np.std(curv) == pytest.approx(0.05, rel=0.05)


def test_discrepancy_walk_positions_and_continuation():
    """The walk visits each distinct ln N once (cells sharing N share it); beyond the data the
    continued walk spreads like kappa sqrt(distance); between fitted points it is a bridge."""
    from scalefit.model.law import walk_positions
    from scalefit.fit.predict import continue_walk

    index, step = walk_positions(np.array([1e6, 4e6, 1e6, 16e6]))
    assert index.tolist() == [0, 1, 0, 2] and step == pytest.approx(np.sqrt([np.log(4), np.log(4)]))
    rng = np.random.default_rng(0)
    n = 200000
    values = np.zeros((n, 2))
    kappa = np.full(n, 0.2)
    positions = np.array([0.0, 1.0])
    near = continue_walk(values, positions, kappa, 2.0, rng)  # one e-fold beyond
    far = continue_walk(values, positions, kappa, 5.0, rng)  # four e-folds beyond
    mid = continue_walk(values, positions, kappa, 0.5, rng)  # bridge midpoint
    assert np.std(near) == pytest.approx(0.2, rel=0.02) and np.std(far) == pytest.approx(0.4, rel=0.02)
    assert np.std(mid) == pytest.approx(0.2 * np.sqrt(0.25), rel=0.02)
    assert np.all(continue_walk(values + 3.0, positions, kappa, 1.0, rng) == 3.0)  # at a fitted point


def test_baseline_recovers_exact_log_linear_law():
    rows = []
    for n in [1e6, 4e6, 16e6, 64e6]:
        opt = np.exp(0.5 - 0.6 * np.log(n))
        rows += [(n, 1e8, opt * 2.0**k, 3.0 + 0.05 * (k * np.log(2)) ** 2, "ok") for k in (-1.5, -0.5, 0.5, 1, 2)]
    t = _grid(rows)
    b = fit_baseline(t.runs, t.cells, ModelConfig(axis="N"))
    assert b.coef == pytest.approx([0.5, -0.6], abs=1e-8)
    assert (b.vertices["source"] == "parabola").all()


def test_cell_vertex_falls_back_to_best_run_when_not_convex():
    x = np.log([1e-3, 2e-3, 4e-3])
    assert cell_vertex(x, np.array([3.0, 3.5, 3.1])) == (pytest.approx(x[0]), "best run")


def _draws(asymmetry, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    return {"m": rng.normal(0.0, 0.5, n), "width": np.full(n, 0.1), "asymmetry": asymmetry}


def test_decision_moves_below_median_when_high_side_is_steeper():
    sym = decide(_draws(None))
    asym = decide(_draws(np.full(20000, 1.5)))
    assert abs(sym) < 0.02
    assert asym < -0.05


class _FakeFit:
    """Just what predict() reads, with a posterior whose answer is known in closed form."""

    def __init__(self, tau=0.4, sd=0.3, n=40000):
        from scalefit.model.standardize import Standardization
        from scalefit.inference.sampling import Convergence

        rng = np.random.default_rng(1)
        shape = (2, n // 2)
        post = {
            "law_intercept": rng.normal(0.0, sd, shape), "law_slope_N": np.zeros(shape),
            "law_curvature_N": rng.normal(0.2, 0.05, shape), "law_residual_sd": np.full(shape, tau),
            "log_width_mean": np.full(shape, np.log(0.1)), "log_width_sd": np.full(shape, 0.01),
            "valley_asymmetry": np.full(shape, 1.0),
        }
        self.posterior = xr.Dataset({k: (("chain", "draw"), v) for k, v in post.items()})
        self.config = ModelConfig(axis="N")
        self.std = Standardization(np.log(1e-3), 3.0, 0.1, np.log(1e7), 1.0, np.log(1e9), 0.0)
        self.convergence = Convergence(1.0, 1000, 1000, 0, n)
        self.baseline = type("B", (), {"predict_log_lr": staticmethod(lambda n, d, b=None: np.log(1e-3))})()

    def z_range(self):
        return {"N": (-1.0, 1.0), "D": (0.0, 0.0)}


def test_prediction_includes_the_new_cell_scatter():
    fit = _FakeFit(tau=0.4, sd=0.3)
    p = predict(fit, n_params=1e7, n_tokens=1e9, prob=0.9)  # z = 0: only intercept + residual
    half_width = (np.log(p.lr_high) - np.log(p.lr_low)) / 2
    assert half_width == pytest.approx(1.645 * 0.5, rel=0.03)  # sqrt(0.3^2 + 0.4^2) = 0.5
    assert p.lr_median == pytest.approx(1e-3, rel=0.02)
    assert p.lr_low < p.lr_decision < p.lr_median  # steeper high side pushes the decision down
    assert p.p_curvature_positive > 0.99
    assert p.interval_kind == "ETI" and set(p.intervals) == {"0.5", "0.9", "0.95"}
    with pytest.raises(ValueError, match="prob"):
        predict(fit, 1e7, 1e9, prob=1.5)


@pytest.mark.parametrize("nu", [1.0, 2.0, 4.0, 5.0])
def test_student_t_log_survival_is_exact_with_finite_gradients(nu):
    """The censored runs' closed-form log survival function equals scipy's from deep in the left
    tail to far out in the right one (where naive 1 - cdf is 0), and its gradient stays finite."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt
    from scipy import stats

    from scalefit.model.valley import student_t_logsf

    t = pt.dvector("t")
    value = student_t_logsf(t, nu, pm, pt)
    f = pytensor.function([t], [value, pytensor.grad(value.sum(), t)])
    grid = np.concatenate([-np.geomspace(1e4, 1e-3, 40), [0.0], np.geomspace(1e-3, 1e6, 60)])
    closed_form = nu in (1.0, 2.0, 4.0)
    if not closed_form:  # PyMC's log(1 - cdf) for other nu underflows far in the right tail
        grid = grid[grid < 30]
    got, grad = f(grid)
    np.testing.assert_allclose(got, stats.t.logsf(grid, nu), rtol=1e-9 if closed_form else 1e-6, atol=1e-12)
    assert np.all(np.isfinite(grad))
    # d/dt log sf = -pdf / sf: check against scipy where both are representable
    ok = grid < 1e3
    np.testing.assert_allclose(grad[ok], -np.exp(stats.t.logpdf(grid[ok], nu) - stats.t.logsf(grid[ok], nu)),
                               rtol=1e-6, atol=1e-12)


def test_tables_of_other_sizes_share_one_compiled_model(default_table):
    """The compiled model's key ignores the numbers of cells and walk positions (they stay
    symbolic in the compiled code), but not what changes the graph: the law's axes, or a walk
    that loses its interior positions."""
    from scalefit.inference.sampling import structure_key
    from scalefit.runs.synthetic import make_grid

    config = ModelConfig(axis="ND")
    full = prepare(default_table.runs, default_table.cells, config)
    frame = make_grid()
    smaller_table = load_runs(frame[frame["n_params"] < frame["n_params"].max()])
    smaller = prepare(smaller_table.runs, smaller_table.cells, config)
    assert smaller.n_cells < full.n_cells
    assert len(smaller.walk_step["N"]) == len(full.walk_step["N"]) - 1 > 1
    assert structure_key(smaller, config) == structure_key(full, config)
    n_only = ModelConfig(axis="N")
    assert structure_key(prepare(default_table.runs, default_table.cells, n_only), n_only) != structure_key(full, config)
    two_sizes = load_runs(frame[frame["n_params"] <= np.sort(frame["n_params"].unique())[1]])
    walk_without_interior = prepare(two_sizes.runs, two_sizes.cells, config)
    assert len(walk_without_interior.walk_step["N"]) == 1
    assert structure_key(walk_without_interior, config) != structure_key(full, config)
