"""The second shipped grid (data/cpu_ladder_v2_h100: the cpu ladder collected on an H100): contract, shape, bracketing, provenance, the tie
to cpu_ladder_v1, the regime split measured from trajectories, and the four-way comparison on the
equilibrium side (slow, small sampling)."""


import numpy as np
import pandas as pd
import pytest

from sf_testing import REPO, assert_runs_table_matches_result_files

GRID = REPO / "data" / "cpu_ladder_v2_h100"
RUNS = GRID / "runs.csv"
SPEC = REPO / "runners" / "grids" / "cpu_ladder_v2_h100.toml"
V1 = REPO / "data" / "cpu_ladder_v1"


@pytest.fixture(scope="module")
def runs():
    return pd.read_csv(RUNS)


@pytest.fixture(scope="module")
def states(runs):
    from scalefit.runs import equilibrium as eq

    return eq.grid_states(GRID, runs)


def test_scalefit_check_passes_on_the_shipped_table(capsys):
    from scalefit.cli.main import main

    # two weight decays share (N, D) cells: the whole table checks with wd as a cell key ...
    assert main(["check", str(RUNS), "--cell-by", "weight_decay"]) == 0
    assert "OK" in capsys.readouterr().out
    # ... and each AdamW block alone, the way a fit reads it, with no best LR on an edge
    for wd in ("0.1", "1.0"):
        assert main(["check", str(RUNS), "--where", "optimizer=adamw", "--where", f"weight_decay={wd}"]) == 0
        out = capsys.readouterr().out
        assert "OK" in out and "warning" not in out
    # without the key the duplicate (N, D, lr) rows of the two blocks are refused, naming the column
    assert main(["check", str(RUNS), "--where", "optimizer=adamw"]) == 1
    assert "weight_decay" in capsys.readouterr().err


def test_runs_table_is_exactly_what_the_result_files_say(runs):
    assert_runs_table_matches_result_files(GRID, runs, ("n_params", "n_tokens", "lr", "weight_decay", "final_loss",
                                                        "status", "seed", "optimizer", "eff_lr"))


def test_grid_plan_shows_every_run_done():
    from scalefit.grids.status import grid_table
    from scalefit.grids.spec import load_spec

    runs = grid_table(load_spec(SPEC), GRID)
    assert len(runs) == 341
    assert (runs["status"] == "ok").all(), runs[runs["status"] != "ok"]


def test_grid_has_the_shape_the_fit_needs(runs):
    from scalefit.grids.status import sweeps

    sw = sweeps(runs)
    aw = sw[(sw["optimizer"] == "adamw") & (sw["seed"] == 0)]
    for wd, budgets in ((0.1, {499712, 999424, 2000896}), (1.0, {999424, 2000896, 3999744})):
        block = aw[aw["weight_decay"] == wd]
        assert block["size"].nunique() == 5 and set(block["n_tokens"]) == budgets
        assert len(block) == 15 and (block["n_lrs"] >= 7).all()
    ah = sw[sw["optimizer"] == "adamh"]
    assert ah["size"].nunique() == 5 and (ah["n_lrs"] >= 7).all()
    assert set(ah["n_tokens"]) == {2000896}
    wd1 = runs[(runs["optimizer"] == "adamw") & (runs["weight_decay"] == 1.0)]
    seeds = wd1.groupby(["size", "n_tokens", "lr"])["seed"].nunique()
    assert (seeds >= 3).sum() >= 5  # c96 @ 2M: three seeds at 5 LRs
    for _, g in runs.groupby(["optimizer", "weight_decay", "size", "n_tokens", "seed"]):
        assert np.diff(np.log2(np.sort(g["lr"].unique()))).max() <= 0.5 + 1e-3  # half-octave steps


def test_every_sweep_brackets_its_optimum(runs):
    from scalefit.grids.status import sweeps

    sw = sweeps(runs)
    assert len(sw) == 37  # 30 AdamW seed-0 sweeps, 2 repeats, 5 AdamH
    edge = sw[~sw["bracketed"]]
    assert edge.empty, f"sweeps with the best LR at an edge:\n{edge}"


def test_provenance_one_corpus_shared_with_v1_and_the_card_names_it(runs):
    v1 = pd.read_csv(V1 / "runs.csv")
    assert runs["corpus_sha256"].nunique() == 1
    assert runs["corpus_sha256"].iloc[0] == v1["corpus_sha256"].iloc[0]  # same bytes as v1
    card = (GRID / "DATA_CARD.md").read_text()
    assert runs["corpus_sha256"].iloc[0] in card
    for version in runs["code_version"].astype(str).unique():
        assert version in card, f"code version {version} is not in the data card"
    assert set(runs["device"]) == {"cuda"}  # collected on the lent GPU: the card must say so
    assert "H100" in card and runs["torch_version"].iloc[0] in card
    assert (runs["precision"] == "fp32").all()


def test_wd01_block_is_v1_run_for_run_and_agrees_with_it(runs):
    """The wd 0.1 block re-runs v1's seed-0 AdamW runs (same configs, same ids) on the device:
    the losses agree to ~1e-3 nats on median and the best LR of most sweeps is the same."""
    from scalefit.grids.status import sweeps

    v1 = pd.read_csv(V1 / "runs.csv")
    v1 = v1[(v1["optimizer"] == "adamw") & (v1["seed"] == 0)]
    block = runs[(runs["optimizer"] == "adamw") & (runs["weight_decay"] == 0.1)]
    assert set(block["run_id"]) == set(v1["run_id"])
    m = v1.merge(block, on="run_id", suffixes=("_v1", "_v2"))
    diff = (m["final_loss_v2"] - m["final_loss_v1"]).abs()
    assert diff.median() < 0.005 and diff.max() < 0.2
    assert np.median(m["eff_lr_v2"] / m["eff_lr_v1"]) == pytest.approx(1.0, abs=0.02)
    s = sweeps(v1).merge(sweeps(block), on=["size", "n_tokens"], suffixes=("_v1", "_v2"))
    same = np.isclose(s["best_lr_v1"], s["best_lr_v2"])
    assert same.sum() >= 10
    assert np.abs(np.log2(s["best_lr_v2"] / s["best_lr_v1"])).max() <= 1.0 + 1e-6


def test_regime_split_measured_from_trajectories(states):
    """Both regimes are covered: at least a third of the AdamW best-LR runs past 3 timescales and a
    third inside one, by the trajectory's own gap to its plateau (scalefit.runs.equilibrium), not
    by the schedule."""
    from scalefit.runs import equilibrium as eq

    best = eq.best_runs(states)
    best = best[best["seed"] == 0]
    assert len(best) == 30
    tau = best["tau_traj"].to_numpy()
    assert np.mean(tau > 3) >= 1 / 3 - 1e-9
    assert np.mean(tau < 1) >= 1 / 3 - 1e-9
    # the blocks separate: wd 0.1 never past 1.5 timescales, wd 1.0 never inside one
    assert best.loc[best["weight_decay"] == 0.1, "tau_traj"].max() < 1.5
    assert best.loc[best["weight_decay"] == 1.0, "tau_traj"].min() > 1
    # the plateau is measured, below the textbook lr / (2 wd) (Adam's update RMS < lr)
    plateau = states.groupby("size")["plateau"].first()
    assert ((plateau > 0.5) & (plateau < 0.9)).all()


def test_tau_traj_recovers_the_relaxation_law():
    from scalefit.runs import equilibrium as eq

    for E in (0.1, 0.5, 1.0, 2.5, 5.0):
        P, r0 = 0.7, 0.02
        assert eq.tau_traj(r0, P - (P - r0) * np.exp(-E), P) == pytest.approx(E, rel=1e-9)
        r0 = 1.4  # from above the plateau (small LRs at large wd)
        assert eq.tau_traj(r0, P - (P - r0) * np.exp(-E), P) == pytest.approx(E, rel=1e-9)
    assert eq.tau_traj(0.02, 0.71, 0.7) == eq.TAU_CAP  # crossed the plateau
    assert eq.tau_traj(0.02, 0.7 - 1e-9, 0.7) == eq.TAU_CAP  # noise-limited
    assert eq.regime(0.5) == "inside (<1)" and eq.regime(3.5) == "past (>3)" and eq.regime(2) == "between (1-3)"
