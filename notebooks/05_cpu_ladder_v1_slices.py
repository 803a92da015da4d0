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
# # cpu_ladder_v1, one slice at a time: curvature of the optimal-LR law
#
# `scalefit compare` fits each law on the whole AdamW grid, so a law along N also has to absorb
# the strong D trend of this grid in its residual. Here every slice gets its own fit: the law
# along N at each token budget (5 sizes) in nominal and in effective LR, AdamH along N (its LR is
# already an angle), and the law along D at each size (3 budgets). Per fit: slope and curvature of
# ln(optimal LR) per e-fold of N or D (raw units, not standardized), P(curvature > 0), tau, and
# convergence. The data card's findings 2 and 6 quote these numbers (full run: 3000 draws).
#
# (Formerly `runners/grids/cpu_ladder_v1/laws.py`.) Set `SCALEFIT_FAST=1` for a quick run: it
# fits the first slice only.

# %%
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
from nbsetup import FAST, ROOT, settings  # noqa: E402


import numpy as np
import pandas as pd

from scalefit import ModelConfig, fit_runs, load_runs

SETTINGS = settings(draws=3000)
RUNS = ROOT / "data" / "cpu_ladder_v1" / "runs.csv"


# %%
def per_efold(fit, axis: str) -> dict:
    """Posterior slope and curvature of ln lr* per e-fold of the axis at the slice's centre."""
    post = fit.posterior.to_dataset()
    slope = post[f"law_slope_{axis}_natural"].values.ravel()  # the model keeps them per e-fold
    curv = post[f"law_curvature_{axis}_natural"].values.ravel()
    q = lambda v: np.quantile(v, [0.05, 0.5, 0.95])  # noqa: E731
    return {"slope": q(slope), "curvature": q(curv), "p_curvature_positive": float((curv > 0).mean()),
            "tau": q(post["law_residual_sd"].values.ravel()), "converged": fit.convergence.converged}


def slices():
    base = load_runs(RUNS, where={"optimizer": "adamw"})
    for d in sorted(base.cells["n_tokens"].unique()):
        where = {"optimizer": "adamw", "n_tokens": d}
        yield f"AdamW along N @ D={d:.2g}", where, "N", "nominal"
        yield f"AdamW along N @ D={d:.2g}", where, "N", "effective"
    yield "AdamH along N @ D=5e+05", {"optimizer": "adamh"}, "N", "nominal"
    for n in sorted(base.cells["n_params"].unique()):
        yield f"AdamW along D @ N={n:.3g}", {"optimizer": "adamw", "n_params": n}, "D", "nominal"


# %%
rows = []
for name, where, axis, kind in list(slices())[:1 if FAST else None]:
    table = load_runs(RUNS, where=where)
    if table.cells[{"N": "n_params", "D": "n_tokens"}[axis]].nunique() < 3:
        continue
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_runs(table, ModelConfig(axis=axis, lr_kind=kind), SETTINGS)
    r = per_efold(fit, axis)
    rows.append({"slice": name, "lr_kind": kind, "cells": len(table.cells), "runs": len(table.runs),
                 "slope": r["slope"][1], "slope 90%": f"[{r['slope'][0]:+.3f}, {r['slope'][2]:+.3f}]",
                 "curvature": r["curvature"][1],
                 "curvature 90%": f"[{r['curvature'][0]:+.3f}, {r['curvature'][2]:+.3f}]",
                 "P(curv>0)": r["p_curvature_positive"], "tau": r["tau"][1], "converged": r["converged"],
                 "curv_lo": r["curvature"][0], "curv_hi": r["curvature"][2]})
result = pd.DataFrame(rows)
print(result.drop(columns=["curv_lo", "curv_hi"]).to_string(index=False, float_format=lambda v: f"{v:+.3f}"))

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(result)))
y = np.arange(len(result))
ax.errorbar(result["curvature"], y, xerr=[result["curvature"] - result["curv_lo"], result["curv_hi"] - result["curvature"]],
            fmt="o", capsize=3)
ax.axvline(0.0, color="grey", lw=0.8)
ax.set_yticks(y, [f"{s} ({k})" for s, k in zip(result["slice"], result["lr_kind"])])
ax.set_xlabel("curvature of ln lr* per e-fold^2 (posterior median, 90% ETI)")
fig.tight_layout()

# %% [markdown]
# Read P(curv > 0) beside `converged`: 5-cell hierarchies with 3 budgets or 5 sizes are thin,
# and a fit with divergences is indicative only.
