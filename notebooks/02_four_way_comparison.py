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
# # Which extrapolation can you trust? nominal vs effective LR, along N vs along D
#
# **Real data**: the AdamW runs of `data/cpu_ladder_v1` (5 sizes x 3 token budgets, our own CPU
# runners; `DATA_CARD.md` there). arXiv:2606.29158 reports that the optimal *nominal* LR curves
# upward along N, and that the curvature mostly goes away along D and in *effective*-LR space (the
# per-step angle of the weight matrices, which the runner records as `eff_lr`). `scalefit compare`
# tests that here: for every variant {nominal, effective} x {law along N, along D, joint N,D} it
# gives the target interval (always as the nominal LR to set), the curvature posterior
# P(θ2 > 0), a leave-largest-out backtest along the variant's own axis beside the log-linear
# baseline, and PSIS-LOO.
#
# Then AdamH, whose LR *is* a per-step angle: does its optimum scale more simply along N?
#
# Set `SCALEFIT_FAST=1` for a quick run.

# %%
# %matplotlib inline
import os
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "pyproject.toml").exists() else Path.cwd().parent
os.environ.setdefault("SCALEFIT_CACHE", str(ROOT / ".cache"))

from scalefit.sampling import SamplerSettings, use_compile_cache

use_compile_cache()

import warnings

import numpy as np
import pandas as pd

from scalefit.compare import compare
from scalefit.config import ModelConfig
from scalefit.fit import fit_runs
from scalefit.grid import load_runs
from scalefit.plots import plot_side_by_side
from scalefit.report import comparison_report

FAST = bool(os.environ.get("SCALEFIT_FAST"))
SETTINGS = SamplerSettings(draws=300, tune=300) if FAST else SamplerSettings(draws=2000)
RUNS = ROOT / "data" / "cpu_ladder_v1" / "runs.csv"
TARGET = (2e6, 4e6)  # one rung up: ~2x the largest model, 2x the largest budget

# %%
table = load_runs(RUNS, where={"optimizer": "adamw"})
print(f"{len(table.runs)} AdamW runs in {len(table.cells)} cells")

# %% [markdown]
# The model-free view first: each sweep's best run, in nominal and in effective LR. If the
# effective LR is the quantity that transfers, its best value should move less across cells.

# %%
ok = table.runs[table.runs["status"] == "ok"]
best = ok.loc[ok.groupby("cell")["final_loss"].idxmin(), ["n_params", "n_tokens", "lr", "eff_lr", "final_loss"]]
print(best.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
print(f"\nspread of the best LR across cells (sd of ln): nominal {np.log(best['lr']).std():.2f}, "
      f"effective {np.log(best['eff_lr']).std():.2f}")

# %% [markdown]
# All six variants. Backtests hold out the largest N (3 sweeps) for the N laws, the largest D
# (5 sweeps) for the D laws and the single largest N x D sweep for the joint laws.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = compare(table, *TARGET, SETTINGS)
print(comparison_report(result))

# %%
rows = result.rows.set_index("variant")
pd.DataFrame({
    "median": rows["lr_median"], "90% ETI": [f"[{lo:.2g}, {hi:.2g}]" for lo, hi in zip(rows["lr_low"], rows["lr_high"])],
    "interval width (x)": rows["lr_high"] / rows["lr_low"],
    "P(curvature>0)": rows["p_curvature_positive"],
    "backtest |log10 err|": rows["backtest_abs_log10_err"], "baseline |log10 err|": rows["baseline_backtest_abs_log10_err"],
    "backtest coverage": rows["backtest_coverage"],
}).round(3)

# %% [markdown]
# Nominal vs effective along N, side by side (the effective panel is in effective-LR units; the
# table above reports every variant as the nominal LR to set).

# %%
fig = plot_side_by_side({k: result.fits[k] for k in ("nominal/N", "effective/N")}, targets=[TARGET])

# %% [markdown]
# Along N vs along D (nominal space).

# %%
fig = plot_side_by_side({k: result.fits[k] for k in ("nominal/N", "nominal/D")}, targets=[TARGET])

# %% [markdown]
# ## AdamH along N
# AdamH keeps every hidden matrix at its initial norm and moves it by a fixed angle per step (its
# LR), so there is no weight-norm transient: nominal and effective LR are the same thing. Its
# sweeps cover the 5 sizes at 0.5M tokens; a law along N with 5 points can only weakly speak to
# curvature, and the interval says so.

# %%
adamh = load_runs(RUNS, where={"optimizer": "adamh"})
fit_h = fit_runs(adamh, ModelConfig(axis="N"), SETTINGS)
fit_w = fit_runs(load_runs(RUNS, where={"optimizer": "adamw", "n_tokens": adamh.cells["n_tokens"].iloc[0]}),
                 ModelConfig(axis="N"), SETTINGS)
for name, f in (("AdamH", fit_h), ("AdamW", fit_w)):
    p = f.predict(*TARGET[:1], adamh.cells["n_tokens"].iloc[0])
    print(f"{name} at 0.5M tokens, law along N: P(θ2 > 0) = {p.p_curvature_positive:.2f}; "
          f"N = 2M: {p.lr_median:.3g} [{p.lr_low:.3g}, {p.lr_high:.3g}]")
fig = plot_side_by_side({"AdamW @ 0.5M": fit_w, "AdamH @ 0.5M": fit_h}, targets=[(TARGET[0], adamh.cells["n_tokens"].iloc[0])])
