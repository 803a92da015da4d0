"""The shipped suggested sweep (data/cpu_ladder_v1_suggested): the table is what the result files
say, the spec plans exactly the collected runs, the runner's one extension is on record, and the
finding the data card states (c48's optimum falls at 4M tokens) holds in the shipped numbers."""

import json

import numpy as np
import pandas as pd

from sf_testing import REPO, assert_runs_table_matches_result_files

GRID = REPO / "data" / "cpu_ladder_v1_suggested"
SPEC = REPO / "runners" / "grids" / "cpu_ladder_v1_suggested.toml"
V1 = REPO / "data" / "cpu_ladder_v1" / "runs.csv"


def test_runs_table_is_exactly_what_the_result_files_say():
    runs = pd.read_csv(GRID / "runs.csv")
    assert_runs_table_matches_result_files(GRID, runs, ("n_params", "n_tokens", "lr", "final_loss", "status", "seed"))
    assert (runs["status"] == "ok").all() and len(runs) == 24
    v1 = pd.read_csv(V1)
    assert set(runs["corpus_sha256"]) == set(v1["corpus_sha256"])  # the same bytes as the grid it extends


def test_the_spec_plans_every_collected_run_and_the_extension_is_on_record():
    from scalefit.grids.status import grid_table
    from scalefit.grids.spec import load_spec

    runs = grid_table(load_spec(SPEC), GRID)
    assert len(runs) == 24 and (runs["status"] == "ok").all()
    ext = json.loads((GRID / "brackets.json").read_text())["extensions"]
    assert [(e["side"], e["k"], e["seed"]) for e in ext] == [("low", 4, 0)]
    seed0 = runs[runs["seed"] == 0]
    assert sorted(seed0["lr_k"]) == list(range(4, 12))  # the suggested window k = 5..11, plus k = 4


def test_the_new_cells_optimum_is_bracketed_and_below_the_2m_one():
    from scalefit.evaluation.calibrate import sweep_optimum

    runs = pd.read_csv(GRID / "runs.csv")
    for _, g in runs.groupby("seed"):
        assert sweep_optimum(g)[1]
    at_4m, bracketed = sweep_optimum(runs)
    v1 = pd.read_csv(V1)
    c48_2m = v1[(v1["size"] == "c48") & (v1["optimizer"] == "adamw") & (v1["n_tokens"] == 2000896)]
    at_2m, _ = sweep_optimum(c48_2m)
    assert bracketed and np.exp(at_4m) < 0.75 * np.exp(at_2m)
