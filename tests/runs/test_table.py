"""Tests for scalefit.runs.table: reading, validating and viewing the runs table."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalefit.runs.table import (REQUIRED_COLUMNS, Problem, RunsTable, RunsTableError, load_runs, read_table,
                           validate)

FIX = Path(__file__).parent / "fixtures" / "grid"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

GOOD = FIX / "good.csv"
HEADER = "n_params,n_tokens,lr,final_loss"
BASE = ["1e7,2e8,0.001,3.5", "1e7,2e8,0.002,3.4", "1e7,2e8,0.004,3.45"]   # a valid 3-LR cell


def write(tmp_path, lines, name="runs.csv", header=HEADER):
    p = tmp_path / name
    p.write_text("\n".join([header, *lines]) + "\n")
    return p


def problems_of(path, **kw):
    with pytest.raises(RunsTableError) as ei:
        load_runs(path, **kw)
    return ei.value.problems, str(ei.value)


def one(problems, column, row=None):
    """The single problem for (column, row); fails if there is not exactly one."""
    hits = [p for p in problems if p.column == column and p.row == row]
    assert len(hits) == 1, problems
    return hits[0]


# ----------------------------------------------------------------------------- good tables

def test_good_table_cells_bracketing_and_default_status():
    t = load_runs(GOOD)
    assert t.source == str(GOOD)
    assert len(t.cells) == 2 and list(t.cells.index) == [0, 1]
    assert list(t.cells["bracketed"]) == [True, False]
    assert list(t.cells["best_lr"]) == [0.002, 0.004]
    assert list(t.cells["n_lrs"]) == [3, 3]
    assert list(t.cells["n_diverged"]) == [1, 0]
    assert t.cells["batch_size"].isna().all()
    assert t.cells.loc[0, "label"] == "N=1.0e+07 D=2.0e+08"
    r = t.runs
    # No status column: NaN loss -> diverged, everything else ok.
    assert list(r["status"]) == ["ok", "ok", "ok", "diverged", "ok", "ok", "ok"]
    assert list(r["row"]) == list(range(1, 8))
    assert list(r["cell"]) == [0, 0, 0, 0, 1, 1, 1]
    assert (r["seed"] == 0).all()
    assert np.allclose(r["log_lr"], np.log(r["lr"]))
    assert all(r[c].dtype == float for c in REQUIRED_COLUMNS)
    assert "run_name" in r  # extra columns are kept
    assert len(t.ok()) == 6


def test_status_column_case_blank_failed_and_seeds():
    t = load_runs(FIX / "with_status.csv")
    r = t.runs.set_index("row")
    assert r.loc[1, "status"] == "ok"            # " OK " normalized
    assert r.loc[3, "status"] == "ok"            # blank -> inferred from finite loss
    assert r.loc[6, "status"] == "failed"        # kept, and not a duplicate of row 7
    assert r.loc[8, "status"] == "diverged"      # finite loss but explicit status wins
    assert list(t.cells["batch_size"]) == [65536.0, 131072.0]
    assert list(t.cells["bracketed"]) == [True, True]
    assert list(t.cells["best_lr"]) == [0.002, 0.004]
    assert t.cells.loc[0, "best_loss"] == pytest.approx(3.41)   # mean over seeds
    assert t.cells.loc[0, "label"] == "N=1.0e+07 D=2.0e+08 B=6.6e+04"
    assert "log_eff_lr" in t.runs
    assert t.runs["seed"].dtype == np.int64


def test_tsv_and_dataframe_input(tmp_path):
    p = tmp_path / "runs.tsv"
    p.write_text(GOOD.read_text().replace(",", "\t"))
    assert len(load_runs(p).cells) == 2
    t = load_runs(pd.read_csv(GOOD))
    assert t.source == "<dataframe>" and list(t.runs["row"]) == list(range(1, 8))


def test_parquet_round_trip(tmp_path):
    t = load_runs(FIX / "with_status.csv")
    out = tmp_path / "runs.parquet"
    t.to_frame().to_parquet(out)
    assert "log_lr" not in t.to_frame() and {"row", "cell"} <= set(t.to_frame())
    t2 = load_runs(out)
    pd.testing.assert_frame_equal(t2.cells, t.cells)
    cols = ["n_params", "n_tokens", "batch_size", "lr", "eff_lr", "final_loss", "seed", "status", "cell"]
    pd.testing.assert_frame_equal(t2.runs[cols], t.runs[cols])
    assert list(read_table(out)["row"]) == list(range(1, 12))


# ------------------------------------------------------------------------- one problem each

def test_missing_required_column(tmp_path):
    p = write(tmp_path, ["1e7,2e8,0.001"], header="n_params,n_tokens,learning_rate")
    probs, msg = problems_of(p)
    pr = one(probs, None)
    assert "'lr'" in pr.message and "'final_loss'" in pr.message and "'learning_rate'" in pr.message
    assert str(p) in msg and "missing required column" in msg


def test_non_numeric_value(tmp_path):
    p = write(tmp_path, BASE + ["1e7,2e8,abc,3.6"])
    probs, msg = problems_of(p)
    pr = one(probs, "lr", 4)
    assert "not a number" in pr.message and "'abc'" in pr.message
    assert f"{p}, row 4, column 'lr': not a number" in msg


@pytest.mark.parametrize("value", ["-0.001", "0", "inf", ""])
def test_lr_not_positive_or_not_finite(tmp_path, value):
    p = write(tmp_path, BASE + [f"1e7,2e8,{value},3.6"])
    probs, msg = problems_of(p)
    pr = one(probs, "lr", 4)
    assert "must be a finite number > 0" in pr.message
    assert f"row 4, column 'lr'" in msg and str(p) in msg
    if value == "-0.001":
        assert "(got -0.001)" in pr.message


@pytest.mark.parametrize("column,line", [("n_params", "-1e7,2e8,0.008,3.6"), ("n_tokens", "1e7,inf,0.008,3.6")])
def test_size_not_positive(tmp_path, column, line):
    probs, msg = problems_of(write(tmp_path, BASE + [line]))
    assert "must be a finite number > 0" in one(probs, column, 4).message
    assert f"runs.csv, row 4, column '{column}'" in msg


def test_column_empty_everywhere(tmp_path):
    p = write(tmp_path, [",2e8,0.001,3.5", ",2e8,0.002,3.4"])
    probs, _ = problems_of(p)
    assert "empty in all 2 rows" in one(probs, "n_params").message
    assert len(probs) == 1   # no per-row or per-cell noise on top


def test_nan_loss_with_status_ok(tmp_path):
    p = write(tmp_path, [l + ",ok" for l in BASE] + ["1e7,2e8,0.008,,ok", "1e7,2e8,0.016,,"],
              header=HEADER + ",status")
    probs, msg = problems_of(p)
    assert len(probs) == 1   # row 5 has empty status: inferred diverged, not an error
    pr = one(probs, "final_loss", 4)
    assert "status is 'ok' but final_loss is empty" in pr.message and "'diverged'" in pr.message
    assert f"{p}, row 4, column 'final_loss'" in msg


def test_eff_lr_not_positive_on_ok_row(tmp_path):
    lines = [l + ",0.001" for l in BASE] + ["1e7,2e8,0.008,3.6,-0.5", "1e7,2e8,0.016,,0"]
    probs, msg = problems_of(write(tmp_path, lines, header=HEADER + ",eff_lr"))
    assert len(probs) == 1   # row 5 is diverged (NaN loss): its eff_lr does not matter
    assert "must be > 0 on an ok run (got -0.5)" in one(probs, "eff_lr", 4).message
    assert "runs.csv, row 4, column 'eff_lr'" in msg


def test_duplicate_runs_name_both_rows(tmp_path):
    probs, msg = problems_of(write(tmp_path, BASE + ["1e7,2e8,0.002,3.41"]))
    pr = one(probs, "lr", 4)
    assert "duplicate run" in pr.message and "as row 2" in pr.message and "seed" in pr.message
    assert "runs.csv, row 4, column 'lr': duplicate run" in msg


def test_duplicate_hint_suggests_n_column_and_where(tmp_path):
    lines = [l + ",1.5e6,x" for l in BASE] + [l + ",3e6,y" for l in BASE]
    p = write(tmp_path, lines, header=HEADER + ",n_params_active,family")
    probs, _ = problems_of(p)
    assert len(probs) == 3
    pr = one(probs, "lr", 5)
    assert "as row 2" in pr.message
    assert "n_column='n_params_active'" in pr.message and "where={'family'" in pr.message
    t = load_runs(p, n_column="n_params_active")
    assert len(t.cells) == 2 and list(t.runs["n_params_source"].unique()) == [1e7]
    assert len(load_runs(p, cell_by=("family",)).cells) == 2
    assert len(load_runs(p, where={"family": "Y"}).cells) == 1   # case-insensitive text match


def test_failed_rerun_is_not_a_duplicate(tmp_path):
    p = write(tmp_path, [l + ",ok" for l in BASE] + ["1e7,2e8,0.002,,failed"], header=HEADER + ",status")
    t = load_runs(p)
    assert list(t.runs["status"]) == ["ok", "ok", "ok", "failed"]
    ds = t.to_xarray()
    assert float(ds["final_loss"].sel(cell=0, lr=0.002, seed=0)) == 3.4   # ok row wins over failed


def test_cell_with_fewer_than_three_lrs(tmp_path):
    lines = BASE + ["4e7,8e8,0.001,3.3", "4e7,8e8,0.002,3.2", "4e7,8e8,0.004,", "4e7,8e8,0.004,3.25,"]
    p = write(tmp_path, lines[:6])
    probs, msg = problems_of(p)
    pr = one(probs, "lr")
    assert "N=4.0e+07 D=8.0e+08" in pr.message and "only 2 distinct LR(s)" in pr.message
    assert "(rows 4, 5, 6)" in pr.message   # row 6 diverged: listed, but not counted
    assert str(p) in msg
    t = load_runs(p, min_lrs=0)
    assert list(t.cells["n_lrs"]) == [3, 2] and list(t.cells["bracketed"]) == [True, False]


def test_unknown_status(tmp_path):
    p = write(tmp_path, [l + ",ok" for l in BASE] + ["1e7,2e8,0.008,3.6,crashed"], header=HEADER + ",status")
    probs, msg = problems_of(p)
    pr = one(probs, "status", 4)
    assert "unknown status 'crashed'" in pr.message and "ok, diverged, failed" in pr.message
    assert f"{p}, row 4, column 'status'" in msg


def test_several_optimizers(tmp_path):
    lines = [l + ",adamw" for l in BASE] + ["4e7,8e8" + l[6:] + ",Muon" for l in BASE]
    p = write(tmp_path, lines, header=HEADER + ",optimizer")
    probs, msg = problems_of(p)
    pr = one(probs, "optimizer")
    assert "mixes 2 optimizers" in pr.message and "where={'optimizer':" in pr.message
    assert "--where optimizer=" in pr.message and str(p) in msg
    assert len(load_runs(p, cell_by=("optimizer",)).cells) == 2
    t = load_runs(p, where={"optimizer": "muon"})
    assert len(t.cells) == 1 and list(t.runs["row"]) == [4, 5, 6]   # rows keep file numbering


def test_unknown_cell_by_where_and_n_column(tmp_path):
    p = write(tmp_path, BASE)
    with pytest.raises(RunsTableError, match="'nope'"):
        load_runs(p, where={"nope": 1})
    with pytest.raises(RunsTableError, match="n_column"):
        load_runs(p, n_column="n_active")
    assert "cell_by column 'fam'" in one(validate(pd.read_csv(p), "x.csv", cell_by=("fam",)), "fam").message
    with pytest.raises(RunsTableError, match="no rows match"):
        load_runs(p, where={"lr": "0.5"})
    assert len(load_runs(p, where={"n_params": "1e7"}).runs) == 3   # string cast to the numeric dtype


def test_error_lists_first_20_then_count(tmp_path):
    p = write(tmp_path, BASE + [f"1e7,2e8,-{i},3" for i in range(1, 26)])
    err = problems_of(p)[1]
    assert err.startswith(f"25 problems in runs table {p}")
    assert "... and 5 more" in err and err.count("must be a finite number") == 20


def test_problem_str():
    assert str(Problem("runs.csv", 7, "lr", "bad")) == "runs.csv, row 7, column 'lr': bad"
    assert str(Problem("runs.csv", None, None, "bad")) == "runs.csv: bad"


def test_validate_returns_problems_without_raising():
    df = pd.read_csv(GOOD)
    assert validate(df) == []
    df.loc[2, "lr"] = -1
    probs = validate(df, "mine.csv")
    assert [(p.file, p.row, p.column) for p in probs][0] == ("mine.csv", 3, "lr")


@pytest.mark.parametrize("name,content,needle", [
    ("runs.json", "{}", "unknown file type"),
    ("absent.csv", None, "file not found"),
    ("broken.parquet", "not parquet", "cannot parse"),
    ("quote.csv", 'n_params,n_tokens,lr,final_loss\n1,2,"3,4\n', "cannot parse"),
])
def test_read_errors_name_the_file(tmp_path, name, content, needle):
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(RunsTableError) as ei:
        read_table(p)
    assert needle in str(ei.value) and str(p) in str(ei.value)


# ----------------------------------------------------------------------- views and subsets

def test_to_xarray_dims_and_values():
    t = load_runs(FIX / "with_status.csv")
    ds = t.to_xarray()
    assert ds["final_loss"].dims == ("cell", "lr", "seed")
    assert ds["final_loss"].shape == (2, 4, 2)
    assert list(ds["lr"].values) == [0.001, 0.002, 0.004, 0.008]
    assert list(ds["seed"].values) == [1, 2]
    assert list(ds["batch_size"].values) == [65536.0, 131072.0]
    assert float(ds["final_loss"].sel(cell=0, lr=0.004, seed=2)) == 3.47   # ok beats the failed row
    assert int(ds["row"].sel(cell=0, lr=0.004, seed=2)) == 7
    assert int(ds["status"].sel(cell=0, lr=0.008, seed=1)) == 1            # diverged
    assert int(ds["status"].sel(cell=1, lr=0.001, seed=1)) == -1           # not run
    assert np.isnan(float(ds["final_loss"].sel(cell=1, lr=0.001, seed=1)))
    assert float(ds["eff_lr"].sel(cell=0, lr=0.001, seed=1)) == 0.0011


def test_to_xarray_effective():
    with pytest.raises(ValueError, match="needs an 'eff_lr' column"):
        load_runs(GOOD).to_xarray("effective")
    ds = load_runs(FIX / "with_status.csv").to_xarray("effective")
    assert 0.0011 in ds["lr"].values and "lr_nominal" in ds
    assert int((ds["status"] >= 0).sum()) == 9   # rows 6 (failed) and 8 (diverged) lack eff_lr


def test_subset_renumbers_cells():
    t = load_runs(FIX / "with_status.csv")
    s = t.subset(t.cells["batch_size"] > 100_000)
    assert isinstance(s, RunsTable) and list(s.cells.index) == [0]
    assert s.cells.loc[0, "batch_size"] == 131072.0
    assert set(s.runs["cell"]) == {0} and list(s.runs["row"]) == [9, 10, 11]
    assert s.to_xarray()["final_loss"].shape == (1, 3, 1)
    assert list(t.subset([1]).runs["row"]) == [9, 10, 11]
    with pytest.raises(ValueError):
        t.subset(np.array([True]))


# ------------------------------------------------------------------------------ shared data

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


@pytest.mark.shared_data
@needs_shared
def test_shared_steplaw_moe_needs_n_column():
    path = SHARED / "steplaw_moe" / "runs.csv"
    probs, msg = problems_of(path)
    assert probs and all("duplicate run" in p.message for p in probs)
    assert "n_column='n_params_active'" in msg
    t = load_runs(path, n_column="n_params_active")
    assert len(t.cells) == 80   # 4 sparsities x 4 D x 5 batch sizes
    assert t.runs["n_params"].nunique() == 4 and "n_params_source" in t.runs


@pytest.mark.shared_data
@needs_shared
@pytest.mark.parametrize("opt", ["muon", "muonh"])
def test_shared_hyperball_lr_x_tokens(opt):
    path = SHARED / "hyperball_130m_lr_x_tokens" / "runs.csv"
    assert any(p.column == "optimizer" for p in problems_of(path)[0])
    t = load_runs(path, where={"optimizer": opt})
    assert len(t.cells) == 13 and len(t.runs) == 62
    assert (t.runs["seed"] == 0).all() and t.runs["weight_decay"].isna().all()
    # SOURCE.md: Muon at 64B/96B/128B has its best LR at the lowest swept LR; MuonH is bracketed everywhere.
    unbracketed = list(t.cells.loc[~t.cells["bracketed"], "n_tokens"])
    assert unbracketed == ([64e9, 96e9, 128e9] if opt == "muon" else [])


@pytest.mark.shared_data
@needs_shared
def test_shared_marin_reports_thin_cells():
    path = SHARED / "marin_fantastic_adamw" / "runs.csv"
    probs, _ = problems_of(path, where={"lr_sweep_row": True})
    assert probs and all(p.column == "lr" and "distinct LR(s)" in p.message for p in probs)
    t = load_runs(path, where={"lr_sweep_row": "True"}, min_lrs=0)
    assert len(t.cells) == 17
    good = t.subset(t.cells["n_lrs"] >= 3)
    assert len(good.cells) == 7 and list(good.cells.index) == list(range(7))
    # The file flags divergence in its own bool `diverged` column, not `status`; runs with a finite
    # loss (~7.5) therefore count as ok. Pinned here so a change in that behaviour is noticed.
    assert (t.runs.loc[t.runs["diverged"], "status"] == "ok").all() and t.runs["diverged"].sum() > 5


@pytest.mark.shared_data
@needs_shared
def test_shared_width_depth_has_no_sizes():
    probs, msg = problems_of(SHARED / "hyperball_width_depth_transfer" / "runs.csv")
    assert "column 'n_params': column is empty in all 706 rows" in msg
    assert one(probs, "n_tokens").message.startswith("column is empty")
