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
# `eff_lr` here is the step-weighted value recomputed from the stored trajectories on 2026-11-23
# (`data/cpu_ladder_v1/DATA_CARD.md`, "eff_lr"). The scored four-way backtest (every prefix of every chain,
# in nominal LR, against the point fit) is `scripts/experiments/four_way.py`, which takes ~20 min on 2 cores;
# this notebook reads its saved rows ("The scored backtest") instead of re-running it.
#
# Then AdamH, whose LR *is* a per-step angle: does its optimum scale more simply along N?
#
# Set `SCALEFIT_FAST=1` for a quick run.

# %%
# %matplotlib inline
import sys
from pathlib import Path

sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
from nbsetup import FAST, ROOT, settings  # noqa: E402

import warnings

import numpy as np
import pandas as pd

from scalefit.evaluation.compare import compare
from scalefit import ModelConfig, fit_runs, load_runs
from scalefit.report.plots import plot_side_by_side
from scalefit.report.text import comparison_report

SETTINGS = settings(draws=2000)
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
# The effective LR moves less, but a prediction in effective LR has to be carried back to the
# nominal LR you set, and near the optimum eff_lr hardly moves with lr: inside the weight-norm
# transient (notebook 03) a larger LR also grows the weights faster, so eff_lr ~ lr / RMS(W)
# saturates. The local slope d ln eff_lr / d ln lr just below and just above each sweep's best LR
# (least squares over the best LR and its two neighbours on each side):

# %%
def local_slopes(g):
    m = g.groupby("lr").agg(loss=("final_loss", "mean"), eff=("eff_lr", lambda e: np.log(e).mean())).sort_index()
    x, y, i = np.log(m.index.to_numpy()), m["eff"].to_numpy(), int(np.argmin(m["loss"].to_numpy()))
    below, above = slice(max(i - 2, 0), i + 1), slice(i, i + 3)
    return pd.Series({"best lr": m.index[i], "slope below": np.polyfit(x[below], y[below], 1)[0],
                      "slope above": np.polyfit(x[above], y[above], 1)[0] if len(x[above]) > 1 else np.nan})


knee = ok.groupby(["n_params", "n_tokens"]).apply(local_slopes, include_groups=False)
print(knee.to_string(float_format=lambda v: f"{v:.3g}"))
print(f"\nmedian slope below the optimum {knee['slope below'].median():.2f}, above {knee['slope above'].median():.2f}: "
      f"an error of x in ln eff_lr becomes ~x / slope in ln lr, so the {np.log(best['lr']).std() / np.log(best['eff_lr']).std():.1f}x "
      "smaller spread in effective space is paid back through the map")

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
# ## The scored backtest: `scripts/experiments/four_way.py` (calibrate harness)
#
# `compare`'s backtest above holds out one slice per variant. The calibration harness fits every
# prefix of every chain (along N at each budget; the joint law over cells ordered by ln N + ln D;
# along D, the largest budget held out) and scores each held-out cell in **nominal** LR (effective
# predictions go through the eff_lr map, its uncertainty included), both LR kinds on the same
# cells, beside the two-stage log-linear point fit. Saved rows, re-scored here (no fitting):

# %%
import sys

sys.path.insert(0, str(ROOT / "scripts" / "experiments"))
import four_way

saved = ROOT / "scripts" / "experiments" / "results" / "four_way_cpu_ladder_v1.csv"
four_way.report(pd.read_csv(saved), pd.read_csv(saved.with_name(saved.stem + "_fits.csv")))

# %% [markdown]
# Reading it (the saved run, 2026-11-23, corrected eff_lr; `DATA_CARD.md` has the tables, and the
# old v1 compare table beside them): on the same held-out cells the effective-LR law is **not** the
# better extrapolator here. Along N (9 predictions) and for the joint law (65) its nominal
# predictions miss by about twice as much as the nominal law's (0.164 vs 0.083 and 0.292 vs 0.151
# in log10) and sit low, and its 90% intervals are decades wide where the map's slope at the
# held-out cell is uncertain; along D (5 cells) the two are within noise (0.214 vs 0.193). The last
# table splits the effective error: in effective space the law misses by only 0.04-0.12, but the
# effective optimum barely moves across the grid, the map adds its own error, and the map's small
# slope near the optimum (median 0.2-0.35) multiplies what the law misses on the way back to the
# nominal LR. With 5 sizes x 3 budgets, and joint-law rows that share cells and fits, this says
# "no gain here", not a precise factor.

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
