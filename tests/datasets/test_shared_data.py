"""Fits on public sweeps from other labs (../shared/data); skipped when that folder is absent."""

import numpy as np
import pytest

from sf_testing import FAST, shared_csv
from scalefit.evaluation.backtest import leave_largest_out
from scalefit.model.config import ModelConfig
from scalefit.fit.core import fit_runs
from scalefit.runs.table import load_runs

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_hyperball_muonh_optimum_falls_with_tokens_and_matches_each_sweep():
    table = load_runs(shared_csv("hyperball_130m_lr_x_tokens"), where={"optimizer": "muonh"})
    fit = fit_runs(table, ModelConfig(axis="D"), FAST)
    post = fit.posterior.to_dataset()
    assert float((post["law_slope_D"] < 0).mean()) > 0.99  # SOURCE.md: best LR 1.4e-2 (1B) -> 5e-3 (128B)
    m = np.exp(np.median(post["log_lr_opt"].values.reshape(-1, len(table.cells)), axis=0) + fit.std.x_center)
    ratio = m / table.cells["best_lr"].to_numpy()
    assert np.all((ratio > 1 / 1.6) & (ratio < 1.6))  # within about one half-octave grid step of each sweep's best


def test_steplaw_leave_largest_d_out_is_sane():
    table = load_runs(shared_csv("steplaw_moe"), n_column="n_params_active", where={"batch_size_seqs": 256})
    assert len(table.cells) == 16
    bt = leave_largest_out(table, ModelConfig(axis="D"), FAST)
    s = bt.summary()
    assert s["held_out_cells"] == 4
    assert s["mean_abs_log10_err"] < 0.3 and s["baseline_mean_abs_log10_err"] < 0.3
    assert (bt.rows["lr_low"] < bt.rows["lr_median"]).all() and (bt.rows["lr_median"] < bt.rows["lr_high"]).all()
