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

__all__ = ["Backtest", "leave_largest_out", "largest_cells", "observed_regret"]


def largest_cells(table: RunsTable, axis: str) -> np.ndarray:
    """Cells at the largest scale along `axis` (largest N x D for "ND").

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    axis : str
        "N", "D" or "ND".

    Returns
    -------
    numpy.ndarray
        Cell ids.
    """
    cells = table.cells
    if axis == "N":
        size = cells["n_params"]
    elif axis == "D":
        size = cells["n_tokens"]
    else:
        size = cells["n_params"] * cells["n_tokens"]
    return cells.index[np.isclose(size, size.max(), rtol=1e-9)].to_numpy()


def observed_regret(runs: pd.DataFrame, lr: float, col: str = "lr") -> float:
    """Loss above the cell's best ok run at `lr`, read off its observed valley.

    Seed-averaged loss per LR, interpolated linearly in ln LR.

    Parameters
    ----------
    runs : pandas.DataFrame
        One cell's runs.
    lr : float
        The LR to score.
    col : str, default "lr"
        The LR column.

    Returns
    -------
    float
        Loss units; NaN when `lr` lies outside the swept range.
    """
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby(col)["final_loss"].mean().sort_index()
    x = np.log(mean.index.to_numpy(dtype=float))
    if not x.min() <= np.log(lr) <= x.max():
        return float("nan")
    return float(np.interp(np.log(lr), x, mean.to_numpy()) - mean.min())


@dataclass
class Backtest:
    """A leave-largest-out backtest: the held-out cells' predictions next to what their sweeps found.

    Attributes
    ----------
    rows : pandas.DataFrame
        One row per held-out cell: cell, n_params, n_tokens, observed_best_lr, bracketed,
        lr_median, lr_low, lr_high, lr_decision, log10_err (log10 of predicted median over
        observed best LR), covered, regret_at_median, and the same for the two-stage baseline
        (baseline_lr, baseline_log10_err, baseline_regret).
    fit : scalefit.fit.core.Fit
        The fit on the remaining cells (the held-out cells kept without data).
    """

    rows: pd.DataFrame
    fit: Fit

    def summary(self) -> dict:
        """Headline scores of the backtest.

        Returns
        -------
        dict
            held_out_cells, mean_abs_log10_err, coverage (share of held-out best LRs inside the
            interval), baseline_mean_abs_log10_err and converged.
        """
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
    """Hold out the largest cells, fit the rest, and score the predictions against their sweeps.

    The held-out cells stay in the model with zero weight, so the compiled model is reused.
    Predictions are scored as the nominal LR to set, whatever space was fitted.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    config : scalefit.model.config.ModelConfig
        The model to backtest.
    settings : scalefit.inference.sampling.SamplerSettings, default SamplerSettings()
        Sampler settings of the fit.
    prob : float, default 0.9
        Probability of the interval whose coverage is scored.
    along : str, optional
        "N", "D" or "ND": which largest scale to hold out (default: the law's own axis).

    Returns
    -------
    Backtest

    Raises
    ------
    ValueError
        When every cell is at the largest scale, or the remaining cells cannot carry the model.

    Examples
    --------
    >>> from scalefit import load_runs, ModelConfig
    >>> from scalefit.evaluation.backtest import leave_largest_out
    >>> bt = leave_largest_out(load_runs("runs.csv"), ModelConfig(axis="N"))  # doctest: +SKIP
    >>> bt.summary()["coverage"]  # doctest: +SKIP
    """
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
