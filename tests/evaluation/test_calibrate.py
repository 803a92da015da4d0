"""The calibration harness: chains, the held-out truth, the competitors and the scores (fast),
and one end-to-end run of `scalefit calibrate` (slow)."""

import json

import numpy as np
import pandas as pd
import pytest

from scalefit.evaluation.calibrate import bootstrap_draws, chains, distance_efolds, interval_score, summarize, sweep_optimum
from scalefit.runs.table import load_runs
from scalefit.runs.synthetic import SyntheticTruth, make_grid


def _sweep(lrs, opt, width=0.05):
    return pd.DataFrame({"lr": lrs, "final_loss": [3.0 + width * np.log(lr / opt) ** 2 for lr in lrs], "status": "ok"})


def test_sweep_optimum_is_the_local_vertex_and_flags_edges():
    lrs = 1e-3 * 2.0 ** np.arange(-3, 4) * 0.5
    opt = 7.3e-4  # between grid points
    ln_opt, bracketed = sweep_optimum(_sweep(lrs, opt))
    assert bracketed and ln_opt == pytest.approx(np.log(opt), abs=1e-9)  # exact for a parabola
    edge, bracketed = sweep_optimum(_sweep(lrs, lrs[-1] * 3))
    assert not bracketed and edge == pytest.approx(np.log(lrs[-1]))


def test_interval_score_by_hand():
    assert interval_score(0.0, 1.0, 0.5) == pytest.approx(1.0)  # inside: the width
    assert interval_score(0.0, 1.0, 1.2) == pytest.approx(1.0 + 20 * 0.2)  # a miss costs 2/alpha per unit
    assert interval_score(0.0, 1.0, -0.1, alpha=0.5) == pytest.approx(1.0 + 4 * 0.1)


def test_bootstrap_is_exact_on_an_exact_law_and_spreads_on_a_noisy_one():
    design = pd.DataFrame({"ln_n": np.log([1e6, 2e6, 4e6, 8e6])})
    exact = pd.Series(0.5 - 0.6 * design["ln_n"].to_numpy())
    target = {"ln_n": np.log(32e6)}
    draws = bootstrap_draws(exact, design, target, n_boot=200)
    assert len(draws) == 200 and np.ptp(draws) < 1e-9 and draws[0] == pytest.approx(0.5 - 0.6 * target["ln_n"])
    noisy = exact + np.array([0.1, -0.1, 0.05, -0.05])
    assert np.ptp(bootstrap_draws(noisy, design, target, n_boot=200)) > 0.1


def test_chains_along_n_d_joint_and_fixed_tokens_per_parameter():
    grid = load_runs(make_grid(n_params=(2e6, 4e6, 8e6, 16e6, 32e6), n_tokens=(2e8, 4e8, 8e8, 1.6e9)))
    found = chains(grid, ("N", "D", "ND"))
    by_family = {f: [c for c in found if c.family == f] for f in ("N", "D", "ND")}
    assert len(by_family["N"]) == 4 and all(len(c.cells) == 5 for c in by_family["N"])  # one per D
    assert len(by_family["D"]) == 5 and all(len(c.cells) == 4 for c in by_family["D"])  # one per N
    assert len(by_family["ND"]) == 1 and len(by_family["ND"][0].cells) == 20
    for c in by_family["N"]:
        n = grid.cells.loc[list(c.cells), "n_params"].to_numpy()
        assert (np.diff(n) > 0).all() and grid.cells.loc[list(c.cells), "n_tokens"].nunique() == 1
    # D = 20 N (every size its own budget): one chain along N at ~fixed tokens per parameter
    rows = pd.concat([make_grid(n_params=(n,), n_tokens=(20 * n,), seed=i) for i, n in enumerate((2e6, 4e6, 8e6, 16e6))])
    ratio = load_runs(rows)
    (chain,) = chains(ratio, ("N",))
    assert chain.family == "N" and "D/N" in chain.label and len(chain.cells) == 4
    assert chains(ratio, ("D",)) == []


def test_distance_beyond_the_fitted_range():
    fitted = pd.DataFrame({"n_params": [1e6, 4e6], "n_tokens": [1e8, 1e8]})
    assert distance_efolds(fitted, pd.Series({"n_params": 2e6, "n_tokens": 1e8}), "N") == 0.0
    assert distance_efolds(fitted, pd.Series({"n_params": 4e6 * np.e, "n_tokens": 1e8}), "N") == pytest.approx(1.0)
    assert distance_efolds(fitted, pd.Series({"n_params": 4e6 * np.e**3, "n_tokens": 1e8 * np.e**4}), "ND") == \
        pytest.approx(5.0)


def test_summary_leaves_unbracketed_cells_out():
    rows = pd.DataFrame({
        "method": ["model"] * 3, "bracketed": [True, True, False], "log10_err": [0.1, -0.3, 5.0],
        "cover50": [True, False, False], "cover90": [True, True, False], "width90_dec": [0.4, 0.6, 9.0],
        "interval_score": [0.4, 0.6, 99.0], "lpd": [1.0, 0.0, -50.0], "lo90": [0.0, 0.0, 0.0]})
    s = summarize(rows).iloc[0]
    assert s["n"] == 2 and s["abs_log10_err"] == pytest.approx(0.2) and s["cover50"] == 0.5
    assert s["cover90"] == 1.0 and s["interval_score"] == pytest.approx(0.5)


@pytest.mark.slow
def test_calibrate_cli_end_to_end(tmp_path, capsys):
    """Straight synthetic law along N, one budget: two rolling backtests (3 -> 4, 5 cells and
    4 -> 5). The harness's truth (the held-out sweep's vertex) is near the known optimum; the
    model's 90% intervals cover both; every score is reported."""
    from scalefit.cli.main import main

    truth = SyntheticTruth(curvature_n=0.0, outlier_prob=0.0)
    path = tmp_path / "runs.csv"
    frame = make_grid(truth, n_tokens=(4e8,), n_lrs=9, seed=5)
    frame.to_csv(path, index=False)
    known = frame.groupby("n_params")["true_lr_opt"].first()
    assert main(["calibrate", str(path), "--families", "N", "--draws", "500", "--tune", "500",
                 "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = pd.DataFrame(out["rows"])
    assert len(out["fits"]) == 2 and len(rows) == 3 * 5  # (2 + 1) held-out cells x 5 methods
    model = rows[rows["method"] == "model"]
    assert model["cover90"].all()
    true_lr = known.loc[model["n_params"].astype(int)].to_numpy()
    assert np.abs(np.log10(model["truth_lr"].to_numpy() / true_lr)).max() < 0.1
    assert ((model["lr_lo90"] < true_lr) & (true_lr < model["lr_hi90"])).all()
    summary = {r["method"]: r for r in out["summary"]}
    assert set(summary) == {"model", "point", "point_lattice", "ols_pi", "bootstrap"}
    assert summary["model"]["width90_dec"] > 0 and np.isfinite(summary["model"]["lpd"])


def test_an_unmappable_effective_prediction_is_recorded_and_left_out_of_every_methods_score(monkeypatch):
    """An effective-LR fit whose eff_lr map does not rise at a held-out cell has no nominal
    answer there: the harness records the reason instead of stopping, and the cell leaves the
    scores of every method (so the competitors stay compared on the same cells). A nominal fit
    that fails still raises."""
    import types

    import scalefit.fit.predict
    from scalefit.evaluation.calibrate import _model_row

    def unmappable(*args, **kwargs):
        raise ValueError("the fitted eff_lr map is not increasing in lr at the target")

    monkeypatch.setattr(scalefit.fit.predict, "nominal_log_lr_draws", unmappable)
    eff_map = types.SimpleNamespace(rising_fraction=lambda n, d: 0.01)
    fit = types.SimpleNamespace(config=types.SimpleNamespace(lr_kind="effective"), eff_map=eff_map)
    info = pd.Series({"n_params": 1e6, "n_tokens": 1e8})
    row = _model_row(fit, info, None, np.log(1e-3))
    assert "not increasing" in row["error"] and np.isnan(row["log10_err"]) and row["map_rising"] == 0.01
    with pytest.raises(ValueError):
        _model_row(types.SimpleNamespace(config=types.SimpleNamespace(lr_kind="nominal")), info, None, 0.0)

    def cell(label, method, err, error=""):
        scores = {"cover50": True, "cover90": True, "width90_dec": 0.4, "interval_score": 0.4, "lpd": 0.0, "lo90": -7.0}
        return {"family": "N", "chain": "c", "prefix": 3, "cell_label": label, "method": method, "bracketed": True,
                "log10_err": err, "error": error} | ({k: np.nan for k in scores} if method == "point" else scores)
    rows = pd.DataFrame([cell("a", "model", 0.1), cell("a", "point", 0.2),
                         cell("b", "model", np.nan, row["error"]), cell("b", "point", 0.9)])
    s = summarize(rows).set_index("method")
    assert s.loc["model", "n"] == 1 and s.loc["model", "n_failed"] == 1
    assert s.loc["point", "n"] == 1 and s.loc["point", "abs_log10_err"] == pytest.approx(0.2)
