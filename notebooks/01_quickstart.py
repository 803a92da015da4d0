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
# # scalefit quickstart: check, fit along N, predict a larger scale
#
# **SYNTHETIC DATA.** `data/synthetic_default/runs.csv` was made by `scalefit synth --seed 0` from a
# known law (`scalefit.synthetic.SyntheticTruth`): ln η\* is quadratic in ln N with curvature
# 0.06 per nat². Nothing here is a real training run; the point is that we know the right answer.
#
# Steps: load and validate the runs table, fit the hierarchical model with the law along N, predict
# the optimal LR at N = 128M, D = 400M (4× beyond the largest swept N) and look at the valleys and
# the law. Set `SCALEFIT_FAST=1` for a quick run (300 tune + 300 draws per chain; intervals are then
# noisier and the sampler may report non-convergence).

# %%
# %matplotlib inline
import os
import time
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "pyproject.toml").exists() else Path.cwd().parent
os.environ.setdefault("SCALEFIT_CACHE", str(ROOT / ".cache"))  # warm pytensor compile cache

from scalefit.sampling import SamplerSettings, use_compile_cache

use_compile_cache()  # must run before pytensor is imported


from scalefit import plots
from scalefit.config import ModelConfig
from scalefit.fit import fit_runs
from scalefit.grid import load_runs
from scalefit.report import check_report, fit_report, prediction_report
from scalefit.synthetic import SyntheticTruth

FAST = bool(os.environ.get("SCALEFIT_FAST"))
SETTINGS = SamplerSettings(draws=300, tune=300) if FAST else SamplerSettings()
print("sampler settings:", SETTINGS)

# %% [markdown]
# ## 1. Load and check the runs table
# `load_runs` validates the table against the runs-table contract (README) and groups runs into
# scale cells. `check_report` is what `scalefit check` prints.

# %%
table = load_runs(ROOT / "data" / "synthetic_default" / "runs.csv")
print(check_report(table))

# %% [markdown]
# ## 2. Fit with the law along N
# The first fit in a process compiles the model (~20 s on 2 cores); later fits of the same
# structure only swap data.

# %%
t0 = time.perf_counter()
fit = fit_runs(table, ModelConfig(axis="N"), SETTINGS)
print(f"fit took {time.perf_counter() - t0:.1f} s")
print(fit_report(fit))

# %% [markdown]
# ## 3. Predict the optimal LR at N = 128M, D = 400M
# The target is treated as a new cell: its optimum draws a fresh law residual, so the interval
# includes cell-to-cell scatter, not only uncertainty in the law.

# %%
TARGET = (1.28e8, 4e8)
pred = fit.predict(*TARGET, prob=0.9)
print(prediction_report(pred, synthetic=True))
truth = float(__import__("numpy").exp(SyntheticTruth().log_lr_opt(*TARGET)))
print(f"\nSYNTHETIC ground truth at the target: {truth:.3g} "
      f"({'inside' if pred.lr_low <= truth <= pred.lr_high else 'OUTSIDE'} the 90% ETI); "
      f"baseline off by {pred.baseline_lr / truth:.2f}x, posterior median by {pred.lr_median / truth:.2f}x")

# %% [markdown]
# ## 4. The valleys
# One panel per cell: ok runs (dots), diverged runs (× at the top edge), runs outside the model's
# ±3-octave window (grey), the posterior median valley with its 90% band, and the posterior
# median optimum (▼).

# %%
fig = plots.plot_valleys(fit)

# %% [markdown]
# ## 5. The law
# Per-cell posterior optima with 90% intervals, the law's posterior median, the new-cell 90%
# predictive fan (what `predict` reports at any N), the two-stage log-linear baseline (dashed) and
# the target with its interval. The shaded band marks the fitted N range. Beyond it the fan
# widens, and the curved law bends away from the baseline.

# %%
fig = plots.plot_law(fit, targets=[TARGET])
