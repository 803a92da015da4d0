# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # scalefit quickstart: check, fit, predict the next rung, and check it against a held-out size
#
# **Real data.** `data/cpu_ladder_v1/runs.csv` holds LR sweeps our own runners trained on a 2-core
# CPU (`data/cpu_ladder_v1/DATA_CARD.md`): byte-level GPT-2-style models from 0.056M to 0.98M
# non-embedding parameters, at 0.5M, 1M and 2M tokens, AdamW (weight decay 0.1) and AdamH, a WSD
# schedule, 7 to 10 half-octave LRs per sweep, plus 3-seed repeats of two sweeps.
#
# Steps: load and validate the table, fit the hierarchical model with the joint N,D law on the
# AdamW runs, predict the optimal LR one rung up (N = 2M, D = 4M), look at the valleys and the law,
# then hide the largest model and see whether the fit would have found its optimum. Set
# `SCALEFIT_FAST=1` for a quick run (300 tune + 300 draws per chain; intervals are then noisier and
# the sampler may report non-convergence).

# %%
# %matplotlib inline
import time
import sys
from pathlib import Path

sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
from nbsetup import FAST, ROOT, settings  # noqa: E402

import numpy as np

from scalefit.report import plots
from scalefit import ModelConfig, fit_runs, load_runs
from scalefit.report.text import check_report, fit_report, prediction_report

SETTINGS = settings()
RUNS = ROOT / "data" / "cpu_ladder_v1" / "runs.csv"
print("sampler settings:", SETTINGS)

# %% [markdown]
# ## 1. Load and check the runs table
# `load_runs` validates the table against the runs-table contract (README) and groups runs into
# scale cells (N, D, batch size). The table holds two optimizers, and optimal LRs are not
# comparable across them, so a fit takes one: `where={"optimizer": "adamw"}`. The seed repeats stay
# in: they are extra observations of the same valleys. `check_report` is what `scalefit check` prints.

# %%
table = load_runs(RUNS, where={"optimizer": "adamw"})
print(check_report(table))

# %% [markdown]
# ## 2. Fit with the joint N,D law
# Here the best LR falls with N and *rises* with D (short runs; see the data card), so a law in one
# of them alone leaves the other's trend in the cell residuals. The first fit in a process compiles
# the model (~20 s on 2 cores); later fits of the same structure only swap data.

# %%
t0 = time.perf_counter()
fit = fit_runs(table, ModelConfig(axis="ND"), SETTINGS)
print(f"fit took {time.perf_counter() - t0:.1f} s")
print(fit_report(fit))

# %% [markdown]
# ## 3. Predict the optimal LR one rung up: N = 2M, D = 4M
# The target is treated as a new cell: its optimum draws a fresh law residual, so the interval
# includes cell-to-cell scatter, not only uncertainty in the law. Both coordinates are 2x beyond
# the swept range, so this is a modest extrapolation; the interval says how modest.

# %%
TARGET = (2e6, 4e6)
pred = fit.predict(*TARGET, prob=0.9)
print(prediction_report(pred))

# %% [markdown]
# ## 4. The valleys
# One panel per cell: ok runs (dots; three per LR where seeds repeat), runs outside the model's
# ±3-octave window (grey), the posterior median valley with its 90% band, and the posterior
# median optimum (▼). Note the loss cliff above the optimum: nothing diverges, the high side just
# gets steep.

# %%
fig = plots.plot_valleys(fit)

# %% [markdown]
# ## 5. The law
# Per-cell posterior optima with 90% intervals, the law's posterior median at each token budget
# (one colour per D), the new-cell 90% predictive fan, the two-stage log-linear baseline (dashed)
# and the target with its interval.

# %%
fig = plots.plot_law(fit, targets=[TARGET])

# %% [markdown]
# ## 6. Would it have worked? Hide the largest model
# Refit the joint law without the c128 sweeps (all three budgets) and predict them, as if c128
# were the target.
# Each held-out sweep's best run is the yardstick: on a half-octave grid it is itself only known to
# about ±0.25 octave (0.075 in log10), and the seed repeats in the data card show how much the
# best run moves between seeds.

# %%
from scalefit.evaluation.backtest import leave_largest_out

bt = leave_largest_out(table, ModelConfig(axis="ND"), SETTINGS, along="N")
cols = ["n_params", "n_tokens", "observed_best_lr", "lr_low", "lr_median", "lr_high", "covered",
        "log10_err", "baseline_lr", "baseline_log10_err", "regret_at_median", "baseline_regret"]
print(bt.rows[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
print(f"\nmean |log10 error|: model {bt.rows['log10_err'].abs().mean():.3f}, "
      f"baseline {bt.rows['baseline_log10_err'].abs().mean():.3f}; 90% ETI covers "
      f"{int(bt.rows['covered'].sum())} of {len(bt.rows)} held-out sweeps")

