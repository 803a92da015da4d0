"""Harness v2 of `scalefit calibrate`: the model's predictive valley in natural units, the new
competitors (the point fit on the swept lattice, the OLS prediction interval), noise-aware
scores, regret, and pooling that weighs every held-out cell once. Unit checks are fast; one
end-to-end run of ``scalefit calibrate --json`` samples (slow)."""

import json
import types

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scalefit.evaluation.calibrate import METHODS, chains, lattice_point, scored_rows, summarize
from scalefit.model.config import ModelConfig
from scalefit.model.standardize import Standardization
from scalefit.model.valley import valley_rise
from scalefit.runs.synthetic import SyntheticTruth, make_grid
from scalefit.runs.table import load_runs

# --------------------------------------------------------------- the predictive valley, natural units


def _fake_fit(n_draws=4000, seed=0):
    """A fit-shaped object with a made-up posterior (no sampling): law along N, quadratic, LINEX."""
    rng = np.random.default_rng(seed)
    draws = {
        "law_intercept": 0.3 + 0.05 * rng.standard_normal(n_draws), "law_slope_N": -0.4 + 0.02 * rng.standard_normal(n_draws),
        "law_curvature_N": 0.01 * rng.standard_normal(n_draws), "law_residual_sd": np.full(n_draws, 0.1),
        "log_width_mean": np.full(n_draws, -1.0), "log_width_sd": np.full(n_draws, 0.2),
        "valley_asymmetry": np.full(n_draws, 0.6), "floor_intercept": np.full(n_draws, -0.5),
        "floor_slope_N": np.full(n_draws, -0.8), "floor_slope_D": np.full(n_draws, 0.1), "floor_sd": np.full(n_draws, 0.05),
        "log_noise_mean": np.full(n_draws, -3.0), "log_noise_slope_N": np.full(n_draws, 0.2),
        "log_noise_slope_D": np.zeros(n_draws)}
    posterior = xr.Dataset({k: (("chain", "draw"), v.reshape(2, -1)) for k, v in draws.items()})
    std = Standardization(x_center=np.log(3e-3), y_center=3.2, y_scale=0.05, log_n_mean=np.log(8e6), log_n_sd=0.9,
                          log_d_mean=np.log(4e8), log_d_sd=0.0)
    return types.SimpleNamespace(posterior=posterior, std=std, config=ModelConfig(axis="N"))


def test_natural_unit_valley_draws_reproduce_the_fits_own_optimum_and_loss_scale():
    """target_valley_draws maps the standardized valley back to ln LR and loss: its optimum's
    median is the fit's own predicted median (nominal_log_lr_draws, what predict reports), and its
    natural-unit loss curve is y_center + y_scale times the standardized one."""
    from scalefit.fit.predict import fit_target_draws, nominal_log_lr_draws, target_valley_draws

    fit = _fake_fit()
    n, d = 6.4e7, 4e8
    v = target_valley_draws(fit, n, d)
    assert np.median(v["optimum"]) == pytest.approx(np.median(nominal_log_lr_draws(fit, n, d)), abs=1e-12)
    std_draws = fit_target_draws(fit, n, d)
    z_n = fit.std.z("N", n)
    x = np.log(np.array([1e-3, 3e-3, 1e-2]))
    # per draw, natural loss = y_center + y_scale * (floor_z + width_z * rise(x - x_center - m_z))
    natural = v["floor"][:, None] + np.exp(v["log_width"])[:, None] * valley_rise(
        x[None, :] - v["optimum"][:, None], v["asymmetry"][:, None])
    floor_z = (v["floor"] - fit.std.y_center) / fit.std.y_scale
    standardized = floor_z[:, None] + std_draws["width"][:, None] * valley_rise(
        (x[None, :] - fit.std.x_center) - std_draws["m"][:, None], std_draws["asymmetry"][:, None])
    np.testing.assert_allclose(natural, fit.std.y_center + fit.std.y_scale * standardized, rtol=1e-10)
    # the floor's mean and the noise follow the model's loss-side laws in z
    assert np.mean(floor_z) == pytest.approx(-0.5 - 0.8 * z_n, abs=0.01)
    np.testing.assert_allclose(v["noise"], fit.std.y_scale * np.exp(-3.0 + 0.2 * z_n))
    assert v["nu"] == 4.0


# ------------------------------------------------------------------------------- competitors, pooling


def test_lattice_point_snaps_inside_and_extends_the_lattice_beyond():
    grid = (np.log([1e-3, 2e-3, 4e-3, 8e-3]), np.log(2.0))
    snap = lambda v: float(np.exp(lattice_point(grid, np.log(v))))  # noqa: E731
    assert snap(2.5e-3) == pytest.approx(2e-3) and snap(3.1e-3) == pytest.approx(4e-3)
    assert snap(2.9e-2) == pytest.approx(3.2e-2) and snap(3.3e-4) == pytest.approx(2.5e-4)
    assert np.isnan(lattice_point(grid, np.nan))


def test_the_ladder_chain_is_labelled_tokens_per_parameter():
    rows = pd.concat([make_grid(n_params=(n,), n_tokens=(20 * n,), seed=i) for i, n in enumerate((2e6, 4e6, 8e6, 16e6))])
    (chain,) = chains(load_runs(rows), ("N",))
    assert chain.family == "N" and chain.kind == "tokens/param" and "tokens/param" in chain.label
    grid = load_runs(make_grid(n_params=(2e6, 4e6, 8e6, 16e6), n_tokens=(2e8, 4e8, 8e8, 1.6e9)))
    kinds = {c.family: c.kind for c in chains(grid, ("N", "D", "ND"))}
    assert kinds == {"N": "fixed D", "D": "fixed N", "ND": "joint"}


def _rows():
    """Cell a predicted by three prefixes, b by one; a point method without naive intervals."""
    out = []
    for method, err_a, err_b in (("model", 0.1, 0.4), ("point", 0.2, 0.2)):
        for prefix in (3, 4, 5):
            out.append({"method": method, "family": "N", "chain": "c", "prefix": prefix, "cell_label": "a",
                        "bracketed": True, "log10_err": err_a, "cover90_na": True, "width90_na_dec": 0.3,
                        "interval_score_na": 0.3, "regret_nats": 0.01, "converged": True,
                        "cover90": True if method == "model" else np.nan, "lo90": -7.0 if method == "model" else np.nan})
        out.append({"method": method, "family": "N", "chain": "c", "prefix": 3, "cell_label": "b", "bracketed": True,
                    "log10_err": err_b, "cover90_na": False, "width90_na_dec": 0.5, "interval_score_na": 2.5,
                    "regret_nats": 0.03, "converged": False,
                    "cover90": False if method == "model" else np.nan, "lo90": -7.0 if method == "model" else np.nan})
    out.append({**out[-1], "cell_label": "unbracketed", "bracketed": False, "log10_err": 9.0})
    return pd.DataFrame(out)


def test_summary_weighs_every_held_out_cell_once_with_cluster_intervals():
    s = summarize(_rows(), n_boot=500).set_index("method")
    assert (s["n_cells"] == 2).all() and s.loc["model", "n"] == 4
    # a (three rows) and b (one row) count alike: means over the two cells
    assert s.loc["model", "abs_log10_err"] == pytest.approx((0.1 + 0.4) / 2)
    assert s.loc["model", "cover90_na"] == pytest.approx(0.5) and s.loc["model", "regret_nats"] == pytest.approx(0.02)
    assert s.loc["model", "converged"] == pytest.approx(0.5)
    assert s.loc["model", "cover90_na_lo"] <= 0.5 <= s.loc["model", "cover90_na_hi"]
    assert s.loc["model", "interval_score_na_median"] == pytest.approx(1.4)  # an exact tie: the midpoint
    assert np.isnan(s.loc["point", "cover90"]) and s.loc["point", "cover90_na"] == pytest.approx(0.5)


def test_noise_aware_scores_are_kept_only_where_every_method_has_them():
    rows = _rows()
    rows["cover90_na"] = rows["cover90_na"].astype(float)
    rows.loc[(rows["method"] == "model") & (rows["cell_label"] == "b"), "cover90_na"] = np.nan
    kept, _ = scored_rows(rows)
    b = kept[kept["cell_label"] == "b"]
    assert b["cover90_na"].isna().all() and b["interval_score_na"].isna().all()
    assert b["log10_err"].notna().all()  # the naive scores stay


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_calibrate_v2_columns_pooling_and_json(tmp_path, capsys):
    """A straight synthetic law along N with two seeds per LR: two rolling backtests (3 -> 4, 5
    and 4 -> 5). Every method's noise-aware scores, regret and the JSON's v2 keys are present and
    sane; the summary counts each held-out cell once."""
    from scalefit.cli.main import main

    truth = SyntheticTruth(curvature_n=0.0, outlier_prob=0.0)
    path = tmp_path / "runs.csv"
    make_grid(truth, n_tokens=(4e8,), n_lrs=9, seeds=(0, 1), seed=5).to_csv(path, index=False)
    assert main(["calibrate", str(path), "--families", "N", "--draws", "300", "--tune", "300", "--target-ess", "0",
                 "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = pd.DataFrame(out["rows"])
    assert set(rows["method"]) == set(METHODS) and len(rows) == 3 * len(METHODS)
    bracketed = rows[rows["bracketed"]]
    for col in ("cover50_na", "cover90_na", "pit_na"):
        v = bracketed[col].astype(float)
        assert v.notna().all() and v.between(0, 1).all(), col
    assert (bracketed["width90_na_dec"] > 0).all() and (bracketed["interval_score_na"] > 0).all()
    assert (bracketed.loc[bracketed["method"] != "point", "width90_dec"].dropna() > 0).all()
    inside = bracketed[bracketed["regret_inside"].astype(bool)]
    assert len(inside) > 0 and (inside["regret_nats"] >= 0).all() and (inside["regret_noise"] >= 0).all()
    model = bracketed[bracketed["method"] == "model"]
    assert model["p_bracketed"].between(0, 1).all() and (model["regret_pred"] >= 0).all()
    # not necessarily wider than the latent-optimum interval: a measured vertex stays between the
    # best LR's neighbours, and only bracketed simulated sweeps count
    assert (model["width90_na_dec"] > 0).all() and model["width90_na_dec"].notna().all()
    ols = bracketed[bracketed["method"] == "ols_pi"]  # prefixes of 3-4 cells > 2 coefficients
    assert np.isfinite(ols[["lr_lo90", "lr_hi90", "interval_score"]].to_numpy(float)).all()
    assert (ols["ols_reason"] == "").all()
    assert set(rows["auto_axis"]) == {"N"} and set(rows["distance_bin"]) <= {"inside", "<1", "1-2.3", ">2.3"}
    # every held-out cell weighs once: n_cells is the number of distinct held-out cells
    n_cells = bracketed["cell_label"].nunique()
    methods = out["methods"]
    assert set(methods) == set(METHODS)
    for name, rec in methods.items():
        assert rec["n_cells"] == n_cells, name
        assert 0 <= rec["cover90_noise_aware"] <= 1 and len(rec["cover90_ci"]) == 2
        assert rec["cover90_ci"][0] <= rec["cover90_noise_aware"] <= rec["cover90_ci"][1]
        assert rec["interval_score_noise_aware"] > 0 and rec["regret_nats"] >= 0
    assert {r["method"] for r in out["summary"]} == set(METHODS)
    assert {"family", "method", "n_cells"} <= set(out["by_family"][0])
    assert {"distance_bin", "method", "cover90_na"} <= set(out["by_distance"][0])
    assert 0 <= out["converged_share"] <= 1 and "converged" in rows
