"""Which extrapolation can you trust? Fit every variant the grid allows, side by side.

Variants: {nominal, effective LR} x {law along N, along D, joint N,D}. For each: the target
interval (always as the nominal LR to set), the curvature posterior, a leave-largest-out backtest
along its own axis (with the two-stage baseline on the same held-out cells) and PSIS-LOO.
LOO is only comparable between variants that score the same observations (same runs, same
censoring); `loo_group` says which.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from scalefit.evaluation.backtest import Backtest, leave_largest_out
from scalefit.model.config import ModelConfig
from scalefit.fit.core import Fit, fit_runs
from scalefit.runs.table import RunsTable
from scalefit.model.valley import valley_rise
from scalefit.inference.sampling import SamplerSettings

__all__ = ["compare", "Comparison", "available_variants", "pointwise_log_likelihood", "observation_key", "loo"]


def available_variants(table: RunsTable) -> list[tuple[str, str]]:
    """(lr_kind, axis) pairs the table supports.

    An axis needs at least 3 distinct values among the cells ("ND" both); "effective" needs an
    eff_lr on every ok run.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.

    Returns
    -------
    list of tuple of (str, str)
    """
    cells = table.cells
    axes = [a for a, col in (("N", "n_params"), ("D", "n_tokens")) if cells[col].nunique() >= 3]
    if len(axes) == 2:
        axes.append("ND")
    kinds = ["nominal"]
    if "eff_lr" in table.runs and table.runs.loc[table.runs["status"] == "ok", "eff_lr"].notna().all():
        kinds.append("effective")
    return [(k, a) for k in kinds for a in axes]


def pointwise_log_likelihood(fit: Fit) -> xr.DataArray:
    """Log likelihood per draw and per observation that entered the likelihood.

    Observed runs score the Student-t density, censored runs its survival function.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, obs).
    """
    data = fit.data
    a = data.arrays()
    post = fit.posterior.to_dataset()
    k = post["valley_asymmetry"].values[..., None] if "valley_asymmetry" in post else None
    per_cell_k = post["valley_asymmetry_cell"].values if "valley_asymmetry_cell" in post else None
    floor, width = post["floor"].values, np.exp(post["log_width"].values)
    m, sigma = post["log_lr_opt"].values, np.exp(post["log_noise"].values)
    parts = []
    for part, target in (("obs", "y_obs"), ("cens", "threshold_cens")):
        c = a[f"cell_{part}"]
        kk = per_cell_k[..., c] if per_cell_k is not None else k
        mu = floor[..., c] + width[..., c] * valley_rise(a[f"x_{part}"] - m[..., c], kk)
        z = (a[target] - mu) / sigma[..., c]
        if part == "obs":
            parts.append(stats.t.logpdf(z, fit.config.nu) - np.log(sigma[..., c]))
        else:
            parts.append(stats.t.logsf(z, fit.config.nu))
    return xr.DataArray(np.concatenate(parts, axis=-1), dims=("chain", "draw", "obs"))


def observation_key(fit: Fit) -> str:
    """Identifies the observations a fit scores, to know which LOO values are comparable.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.

    Returns
    -------
    str
        A short hash of which runs entered and which of them were censored.
    """
    data = fit.data
    used = np.flatnonzero(data.weight > 0)
    blob = np.concatenate([used, data.censored[used]]).astype(np.int64).tobytes()
    return hashlib.sha256(blob).hexdigest()[:8]


def loo(fit: Fit) -> dict:
    """PSIS-LOO of a fit (arviz-stats).

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.

    Returns
    -------
    dict
        elpd_loo, loo_se, p_loo and pareto_k_bad (observations with Pareto k > 0.7).
    """
    import arviz_stats as azs

    tree = xr.DataTree.from_dict({
        "posterior": fit.posterior.to_dataset()[["law_intercept"]],
        "log_likelihood": xr.Dataset({"loss": pointwise_log_likelihood(fit)}),
    })
    res = azs.loo(tree, var_name="loss", pointwise=True)
    k = np.asarray(res.pareto_k)
    return {"elpd_loo": float(res.elpd), "loo_se": float(res.se), "p_loo": float(res.p),
            "pareto_k_bad": int(np.sum(k > 0.7))}


@dataclass
class Comparison:
    """Every variant's fit, prediction, backtest and LOO, side by side.

    Attributes
    ----------
    rows : pandas.DataFrame
        One row per variant ("kind/axis"): the target interval (lr_median, lr_low, lr_high,
        lr_decision, baseline_lr), p_curvature_positive, backtest scores next to the baseline's,
        elpd_loo with elpd_diff and loo_group, or ``error`` for a variant that could not be fitted.
    fits : dict
        Variant name -> `scalefit.fit.core.Fit`.
    backtests : dict
        Variant name -> `scalefit.evaluation.backtest.Backtest`.
    """

    rows: pd.DataFrame
    fits: dict = field(default_factory=dict)
    backtests: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """``{"variants": [row, ...]}`` with NaN as None (what ``scalefit compare --json`` prints)."""
        return {"variants": self.rows.replace({np.nan: None}).to_dict(orient="records")}


def compare(table: RunsTable, n_params: float, n_tokens: float, settings: SamplerSettings = SamplerSettings(),
            prob: float = 0.9, variants=None, base: ModelConfig = ModelConfig()) -> Comparison:
    """Fit, predict, backtest and score every (lr_kind, axis) variant.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    n_params, n_tokens : float
        The target scale.
    settings : scalefit.inference.sampling.SamplerSettings, default SamplerSettings()
        Sampler settings of every fit.
    prob : float, default 0.9
        Probability of the intervals.
    variants : list of tuple of (str, str), optional
        (lr_kind, axis) pairs (default: `available_variants`).
    base : scalefit.model.config.ModelConfig, default ModelConfig()
        The config every variant starts from.

    Returns
    -------
    Comparison
        A variant whose fit raises ValueError gets a row with the error instead of scores.

    Examples
    --------
    >>> from scalefit import load_runs
    >>> from scalefit.evaluation.compare import compare
    >>> result = compare(load_runs("runs.csv"), n_params=1.3e8, n_tokens=4e8)  # doctest: +SKIP
    >>> result.rows[["variant", "lr_median", "backtest_abs_log10_err"]]  # doctest: +SKIP
    """
    variants = variants or available_variants(table)
    rows, fits, backtests = [], {}, {}
    for kind, axis in variants:
        name = f"{kind}/{axis}"
        config = base.replace(lr_kind=kind, axis=axis)
        row = {"variant": name, "lr_kind_fitted": kind, "axis": axis}
        try:
            fit = fit_runs(table, config, settings)
            p = fit.predict(n_params, n_tokens, prob=prob)
            bt = leave_largest_out(table, config, settings, prob=prob)
        except ValueError as err:  # e.g. too few cells left for a quadratic law
            rows.append(row | {"error": str(err)})
            continue
        fits[name], backtests[name] = fit, bt
        s = bt.summary()
        row |= {
            "lr_median": p.lr_median, "lr_low": p.lr_low, "lr_high": p.lr_high, "prob": prob,
            "interval_kind": p.interval_kind, "lr_decision": p.lr_decision, "baseline_lr": p.baseline_lr,
            "p_curvature_positive": p.p_curvature_positive, "converged": fit.convergence.converged,
            "backtest_cells": s["held_out_cells"], "backtest_abs_log10_err": s["mean_abs_log10_err"],
            "backtest_coverage": s["coverage"], "backtest_regret": float(bt.rows["regret_at_median"].mean()),
            "baseline_backtest_abs_log10_err": s["baseline_mean_abs_log10_err"],
            "baseline_backtest_regret": float(bt.rows["baseline_regret"].mean()),
            "backtest_converged": s["converged"],
        } | loo(fit) | {"loo_group": observation_key(fit)}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "elpd_loo" in frame:
        best = frame.groupby("loo_group")["elpd_loo"].transform("max")
        frame["elpd_diff"] = frame["elpd_loo"] - best  # 0 for the best within its comparable group
    return Comparison(rows=frame, fits=fits, backtests=backtests)
