"""Leave-largest-out backtests: hide the largest scale along the law's axis, predict it from
the rest, and score the prediction against what that cell's sweep actually found.

The held-out cells stay in the model with zero weight, so the compiled model is reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.model.config import ModelConfig
from scalefit.fit.core import Fit, fit_runs
from scalefit.runs.table import RunsTable
from scalefit.inference.sampling import SamplerSettings


def largest_cells(table: RunsTable, axis: str) -> np.ndarray:
    """Cells at the largest scale along `axis` (largest N x D for "ND")."""
    cells = table.cells
    if axis == "N":
        size = cells["n_params"]
    elif axis == "D":
        size = cells["n_tokens"]
    else:
        size = cells["n_params"] * cells["n_tokens"]
    return cells.index[np.isclose(size, size.max(), rtol=1e-9)].to_numpy()


def observed_regret(runs: pd.DataFrame, lr: float, col: str = "lr") -> float:
    """Loss above the cell's best ok run at `lr`, read off its observed valley (seed-averaged,
    linear in log LR); NaN outside the swept range."""
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby(col)["final_loss"].mean().sort_index()
    x = np.log(mean.index.to_numpy(dtype=float))
    if not x.min() <= np.log(lr) <= x.max():
        return float("nan")
    return float(np.interp(np.log(lr), x, mean.to_numpy()) - mean.min())


@dataclass
class Backtest:
    rows: pd.DataFrame
    fit: Fit

    def summary(self) -> dict:
        r = self.rows
        return {
            "held_out_cells": int(len(r)),
            "mean_abs_log10_err": float(r["log10_err"].abs().mean()),
            "coverage": float(r["covered"].mean()),
            "baseline_mean_abs_log10_err": float(r["baseline_log10_err"].abs().mean()),
            "converged": bool(self.fit.convergence.converged),
        }


def leave_largest_out(table: RunsTable, config: ModelConfig, settings: SamplerSettings = SamplerSettings(),
                      prob: float = 0.9, along: str | None = None) -> Backtest:
    """Hold out the largest cells `along` N, D or ND (default: the law's own axis), fit the rest
    with `config`, and score the predictions against the held-out sweeps."""
    held = largest_cells(table, along or config.axis)
    if len(held) == len(table.cells):
        raise ValueError("every cell is at the largest scale; nothing left to fit")
    fit = fit_runs(table, config, settings, held_out=held)
    col = "lr"  # predictions are reported as the nominal LR to set, whatever space was fitted
    rows = []
    for cell in held:
        info = table.cells.loc[cell]
        cell_runs = table.runs[table.runs["cell"] == cell]
        observed = _best_lr(cell_runs, col)
        p = fit.predict(info["n_params"], info["n_tokens"], prob=prob)
        rows.append({
            "cell": int(cell), "n_params": float(info["n_params"]), "n_tokens": float(info["n_tokens"]),
            "observed_best_lr": observed, "bracketed": bool(info["bracketed"]),
            "lr_median": p.lr_median, "lr_low": p.lr_low, "lr_high": p.lr_high,
            "lr_decision": p.lr_decision,
            "log10_err": float(np.log10(p.lr_median / observed)),
            "covered": bool(p.lr_low <= observed <= p.lr_high),
            "regret_at_median": observed_regret(cell_runs, p.lr_median, col),
            "baseline_lr": p.baseline_lr,
            "baseline_log10_err": float(np.log10(p.baseline_lr / observed)),
            "baseline_regret": observed_regret(cell_runs, p.baseline_lr, col),
        })
    return Backtest(rows=pd.DataFrame(rows), fit=fit)


def _best_lr(runs: pd.DataFrame, col: str) -> float:
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby(col)["final_loss"].mean()
    return float(mean.idxmin())
