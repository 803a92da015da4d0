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
# # cpu_ladder_v2_h100: the optimal LR on both sides of the weight-norm transient
#
# The seed paper (arXiv:2606.29158) explains the upward curvature of the optimal LR by the weight
# norm equilibrating slowly when the LR is small (AdamW timescale 1/(2 lr wd) steps). cpu_ladder_v1
# ends every run inside that transient. `data/cpu_ladder_v2_h100` (the `cpu` ladder, collected on an NVIDIA H100) adds the other side: the same five
# sizes with weight decay 1.0 at 1M / 2M / 4M tokens, next to v1's own runs (wd 0.1 at 0.5M / 1M /
# 2M, re-collected on the same device), plus AdamH at 2M. This notebook
#
# 1. measures, from each run's trajectory, how many relaxation timescales its best-LR run had
#    elapsed (`scalefit.runs.equilibrium`: the gap to the measured norm plateau, not the schedule alone)
#    and splits the AdamW sweeps into regimes;
# 2. sets that against the residual of the log-linear law (per weight decay, OLS on ln N, ln D);
# 3. fits the curvature of ln lr* along N and along D, nominal and effective, per regime (one
#    PyMC fit per regime x axis x kind: 8 fits, ~5 min on 2 cores; `SCALEFIT_FAST=1` fits one).
#
# The four-way backtests per regime are `scalefit compare` runs (commands in the data card).

# %%
# %matplotlib inline
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
from nbsetup import FAST, ROOT, settings  # noqa: E402

import numpy as np
import pandas as pd

from scalefit.runs import equilibrium as eq
from scalefit.grids import status as grid_status
from scalefit.runs.schema import runs_root

GRID = ROOT / "data" / "cpu_ladder_v2_h100"
RUNS = GRID / "runs.csv"
runs = pd.read_csv(RUNS)
print(f"{len(runs)} runs, {runs['status'].eq('ok').sum()} ok; devices {sorted(runs['device'].unique())}; "
      f"corpus {runs['corpus_sha256'].unique()[0][:12]}...; code {sorted(runs['code_version'].unique())}")

# %% [markdown]
# ## 1. Timescales elapsed at the best LR, measured from the trajectories
#
# `E_stable` = 2 wd lr sum s(t) over the constant phase (the schedule's count); `tau_traj` =
# ln(|P - r0| / |P - r_stable|), the factor by which the trajectory's gap to its plateau P has
# shrunk (P: the per-size median of r_stable over the runs with E_stable >= 8, in units of
# lr / 2 wd). Capped at 8 when a run sits at or beyond its plateau.

# %%
states = eq.grid_states(GRID, runs)
print("measured plateau P (mean hidden RMS^2 / (lr / 2 wd)) per size:",
      states.groupby("size")["plateau"].first().round(3).to_dict())
sw = grid_status.sweeps(runs)
sw = sw[(sw["optimizer"] == "adamw") & (sw["seed"] == 0)]
best = eq.best_runs(states)
best = best[best["seed"] == 0]
table = sw.merge(best[["weight_decay", "size", "n_tokens", "seed", "equilibration_number", "E_stable",
                       "r0", "r_stable", "plateau", "tau_traj", "eff_lr"]],
                 on=["weight_decay", "size", "n_tokens", "seed"])
table = eq.law_residuals(table)
table["regime"] = table["tau_traj"].map(eq.regime)
show = ["weight_decay", "size", "n_tokens", "best_lr", "vertex_lr", "equilibration_number", "E_stable",
        "r_stable", "tau_traj", "regime", "law_residual"]
print(table[show].to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %%
n = len(table)
split = table["regime"].value_counts()
print(f"AdamW best-LR runs (seed 0): {n}")
for k in ("inside (<1)", "between (1-3)", "past (>3)"):
    print(f"  {k:>14}: {split.get(k, 0):2d} ({split.get(k, 0) / n:.0%}) by trajectory")
print(f"  by the schedule's E (whole run): past 3 {np.mean(table['equilibration_number'] > 3):.0%}, "
      f"inside 1 {np.mean(table['equilibration_number'] < 1):.0%}")
ratio = table["tau_traj"] / table["E_stable"]
inside = table["tau_traj"] < eq.TAU_CAP
print(f"tau_traj / E_stable where not capped: median {ratio[inside].median():.2f} "
      f"(range {ratio[inside].min():.2f}-{ratio[inside].max():.2f}): the norm relaxes slower than exp(-E)")

# %% [markdown]
# ## 2. Timescales at the best LR against the residual of the log-linear law

# %%
from scipy.stats import spearmanr  # noqa: E402

for wd, g in table.groupby("weight_decay"):
    rho, p = spearmanr(g["tau_traj"], g["law_residual"])
    print(f"wd {wd:g}: law ln lr* = a {g['law_slope_N'].iloc[0]:+.3f} ln N {g['law_slope_D'].iloc[0]:+.3f} ln D; "
          f"residual sd {g['law_residual'].std():.3f}; Spearman(tau_traj, residual) {rho:+.2f} (p {p:.2f})")
by = table.groupby("regime")["law_residual"].agg(["count", "mean", "std"])
print(by.round(3).to_string())

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for wd, g in table.groupby("weight_decay"):
    axes[0].scatter(g["tau_traj"], g["law_residual"], label=f"wd {wd:g}")
    for r in g.itertuples():
        axes[0].annotate(f"{r.size}@{r.n_tokens / 1e6:.1g}M", (r.tau_traj, r.law_residual), fontsize=6)
axes[0].axhline(0, color="grey", lw=0.8)
for x in (1, 3):
    axes[0].axvline(x, color="grey", ls=":", lw=0.8)
axes[0].set_xlabel("timescales elapsed at the best LR (trajectory, capped at 8)")
axes[0].set_ylabel("ln lr* residual of the log-linear law (per wd)")
axes[0].legend()
for r in best[best["seed"] == 0].itertuples():
    traj = pd.read_parquet(runs_root(GRID) / r.run_id / "trajectory.parquet")
    rho = eq.rho2_series(traj)
    steps = rho.index.to_numpy()
    s_all = traj[traj["group"] == "hidden_gmean"].groupby("step")["lr_mult"].first()
    E_t = 2 * r.weight_decay * r.lr * np.interp(steps, s_all.index, np.cumsum(s_all.to_numpy()))
    axes[1].plot(E_t, rho["rho2"] / (r.lr / (2 * r.weight_decay)), lw=0.7,
                 color="C0" if r.weight_decay < 0.5 else "C1", alpha=0.7)
e = np.linspace(0, 20, 200)
axes[1].plot(e, 0.7 - 0.7 * np.exp(-e), "k--", lw=1, label="P - P exp(-E), P = 0.7")
axes[1].set_xscale("symlog", linthresh=1)
axes[1].set_xlabel("E(t) = 2 wd lr sum s")
axes[1].set_ylabel("mean hidden RMS^2 / (lr / 2 wd)")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# ## 3. Curvature along N and along D, nominal and effective, per regime
#
# The regimes are the two AdamW blocks: wd 0.1 (0.5M-2M tokens; every best-LR run inside or near
# one timescale) and wd 1.0 (1M-4M; between 1 and 8+). Each is a full 5 x 3 product, so each can
# be fitted along both axes. Slope and curvature are per e-fold (natural units).

# %%
from scalefit import ModelConfig, fit_runs, load_runs  # noqa: E402

SETTINGS = settings(draws=2000)


def per_efold(fit, axis: str) -> dict:
    post = fit.posterior.to_dataset()
    slope = post[f"law_slope_{axis}_natural"].values.ravel()
    curv = post[f"law_curvature_{axis}_natural"].values.ravel()
    q = lambda v: np.quantile(v, [0.05, 0.5, 0.95])  # noqa: E731
    return {"slope": q(slope), "curvature": q(curv), "P": float((curv > 0).mean()),
            "converged": fit.convergence.converged}


jobs = [(wd, axis, kind) for wd in (0.1, 1.0) for axis in ("N", "D") for kind in ("nominal", "effective")]
rows = []
for wd, axis, kind in jobs[:1 if FAST else None]:
    t = load_runs(RUNS, where={"optimizer": "adamw", "weight_decay": wd})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_runs(t, ModelConfig(axis=axis, lr_kind=kind), SETTINGS)
    r = per_efold(fit, axis)
    rows.append({"regime": f"wd {wd:g}", "axis": axis, "lr_kind": kind, "cells": len(t.cells),
                 "slope": r["slope"][1], "slope 90%": f"[{r['slope'][0]:+.3f}, {r['slope'][2]:+.3f}]",
                 "curvature": r["curvature"][1],
                 "curvature 90%": f"[{r['curvature'][0]:+.3f}, {r['curvature'][2]:+.3f}]",
                 "P(curv>0)": r["P"], "converged": r["converged"]})
curv = pd.DataFrame(rows)
print(curv.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))

# %% [markdown]
# Read with the data card: P(curv > 0) per regime, beside convergence, and the backtests of
# `scalefit compare` per regime. One seed per sweep (three at c96 / 2M / wd 1.0); the loss
# valleys at wd 1.0 are flat within ~0.01-0.03 nats over an octave, so each best LR is known to
# about a half-octave step.
