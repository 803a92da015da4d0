"""The shipped real grid (data/cpu_ladder_v1): contract, shape, bracketing, provenance, and the
four-way comparison run on it (slow, small sampling)."""

import json

import numpy as np
import pandas as pd
import pytest

from sf_testing import FAST, REPO, assert_runs_table_matches_result_files

GRID = REPO / "data" / "cpu_ladder_v1"
RUNS = GRID / "runs.csv"


def _findings():
    from scalefit.grids import status as grid_status  # the model-free summaries (sweeps, seed noise)

    return grid_status


@pytest.fixture(scope="module")
def runs():
    return pd.read_csv(RUNS)


def test_scalefit_check_passes_on_the_shipped_table(capsys):
    from scalefit.cli.main import main

    assert main(["check", str(RUNS)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check", str(RUNS), "--where", "optimizer=adamw"]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out  # no cell has its best LR at the edge of its sweep


def test_runs_table_is_exactly_what_the_result_files_say(tmp_path, runs):
    """runs.csv is regenerated from the result files (cells/*/result.json: the old layout), never edited by hand."""
    assert_runs_table_matches_result_files(GRID, runs, ("n_params", "n_tokens", "lr", "final_loss", "status", "seed",
                                                        "optimizer", "eff_lr"))


def test_grid_has_the_shape_the_fit_needs(runs):
    sw = _findings().sweeps(runs)
    aw = sw[(sw["optimizer"] == "adamw") & (sw["seed"] == 0)]
    assert aw["size"].nunique() >= 5 and aw["n_tokens"].nunique() >= 3
    assert len(aw) == aw["size"].nunique() * aw["n_tokens"].nunique()  # full product
    assert (aw["n_lrs"] >= 7).all()
    ah = sw[sw["optimizer"] == "adamh"]
    assert ah["size"].nunique() >= 5 and (ah["n_lrs"] >= 7).all()
    repeats = runs[runs["optimizer"] == "adamw"].groupby(["size", "n_tokens", "lr"])["seed"].nunique()
    assert (repeats >= 3).groupby(level=[0, 1]).sum().ge(5).sum() >= 2  # 3 seeds at >= 5 LRs, 2 sweeps
    # half-octave or finer: consecutive LRs of a sweep differ by at most sqrt(2)
    for _, g in runs.groupby(["optimizer", "size", "n_tokens", "seed"]):
        ratios = np.diff(np.log2(np.sort(g["lr"].unique())))
        assert ratios.max() <= 0.5 + 1e-3


def test_every_sweep_brackets_its_optimum(runs):
    sw = _findings().sweeps(runs)
    edge = sw[~sw["bracketed"]]
    assert edge.empty, f"sweeps with the best LR at an edge:\n{edge}"


def test_one_corpus_and_the_card_names_it(runs):
    assert runs["corpus_sha256"].nunique() == 1
    card = (GRID / "DATA_CARD.md").read_text()
    assert runs["corpus_sha256"].iloc[0] in card
    for version in runs["code_version"].astype(str).unique():
        assert version in card, f"code version {version} is not in the data card"


def test_seed_noise_summary_is_consistent(runs):
    noise = _findings().seed_noise(runs)
    assert len(noise) >= 2
    for cell in noise.values():
        assert cell["seeds"] == 3 and cell["lrs"] >= 5
        assert 0 < cell["loss_sd_median"] <= cell["loss_sd_max"]


@pytest.mark.slow
def test_compare_on_the_shipped_grid(tmp_path, capsys):
    """`scalefit compare` on the real AdamW runs, small sampling: every variant fits, predicts and
    backtests, and the joint N,D law's backtest lands within a factor 2 of the held-out optimum."""
    from scalefit.cli.main import main

    out = tmp_path / "compare.json"
    argv = ["compare", str(RUNS), "--where", "optimizer=adamw", "--n-params", "2M", "--n-tokens", "4M",
            "--draws", str(FAST.draws), "--tune", str(FAST.tune), "--no-progress", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["variant"]: r for r in result["variants"]}
    assert set(rows) == {f"{k}/{a}" for k in ("nominal", "effective") for a in ("N", "D", "ND")}
    for name, r in rows.items():
        assert r.get("error") is None, name
        assert r["lr_low"] < r["lr_median"] < r["lr_high"], name
        # held out: the largest N (3 budgets), the largest D (5 sizes), the largest N x D (1 cell)
        assert r["backtest_cells"] == {"N": 3, "D": 5, "ND": 1}[r["axis"]], name
    assert rows["nominal/ND"]["backtest_abs_log10_err"] < np.log10(2)
    out.write_text(json.dumps(result))
