"""Effective LR: the measured step in normalized weight space, and the map back to nominal LR.

A fit in effective-LR space predicts the optimal *effective* LR at the target, but users set the
*nominal* LR. The relation is fitted on the runs themselves:

    ln eff_lr = c0 + (c1 + c2 z_N + c3 z_D) u + c4 z_N + c5 z_D + noise,   u = ln lr - centre

a log-linear map whose slope may change with scale: THEORY.md 3.4 predicts a local slope k between
1/2 (norm at equilibrium) and 1 (norm still at its init value), so k moves along N when the
weight-norm transient does. Its coefficients get a Bayesian linear-regression posterior (flat
prior), and every draw of the effective optimum is mapped through its own coefficient draw, so the
map's uncertainty flows into the nominal interval. AdamH runs need no map: their LR *is* the
per-step angle (THEORY.md 2.3), so the map is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

IDENTITY_OPTIMIZERS = ("adamh",)


@dataclass(frozen=True)
class EffectiveMap:
    """ln eff_lr as a function of ln lr and scale, with coefficient draws."""

    identity: bool
    coef_draws: np.ndarray  # (draws, 6): c0, c1, c2, c3, c4, c5
    lr_center: float
    residual_sd: float
    std: object  # scalefit.model.Standardization of the fit (for z_N, z_D)

    def log_eff(self, log_lr, n_params, n_tokens) -> np.ndarray:
        """Posterior mean ln eff_lr at nominal ln lr (for plots and checks)."""
        if self.identity:
            return np.asarray(log_lr, dtype=float)
        c = self.coef_draws.mean(axis=0)
        zn, zd = self.std.z("N", n_params), self.std.z("D", n_tokens)
        u = np.asarray(log_lr, dtype=float) - self.lr_center
        return c[0] + (c[1] + c[2] * zn + c[3] * zd) * u + c[4] * zn + c[5] * zd

    def to_nominal(self, log_eff_draws: np.ndarray, n_params: float, n_tokens: float) -> np.ndarray:
        """Nominal ln lr reaching each effective ln lr draw (one coefficient draw each)."""
        log_eff_draws = np.asarray(log_eff_draws, dtype=float)
        if self.identity:
            return log_eff_draws
        idx = np.arange(len(log_eff_draws)) % len(self.coef_draws)
        c = self.coef_draws[idx]
        zn, zd = float(self.std.z("N", n_params)), float(self.std.z("D", n_tokens))
        slope = c[:, 1] + c[:, 2] * zn + c[:, 3] * zd
        if np.any(slope <= 0):
            raise ValueError("the fitted eff_lr map is not increasing in lr at the target; "
                             "the effective-LR fit cannot be mapped back to a nominal LR there")
        return self.lr_center + (log_eff_draws - c[:, 0] - c[:, 4] * zn - c[:, 5] * zd) / slope


def fit_effective_map(runs: pd.DataFrame, std, held_out=(), n_draws: int = 4000, seed: int = 0) -> EffectiveMap:
    """Fit the map on every run with a finite eff_lr (ok and diverged alike: the map is about the
    optimizer's dynamics, not the loss), except runs of held-out cells: a backtest must not see
    the held-out scale's dynamics either."""
    if "optimizer" in runs and runs["optimizer"].astype(str).str.lower().isin(IDENTITY_OPTIMIZERS).all():
        return EffectiveMap(True, np.zeros((1, 6)), 0.0, 0.0, std)
    if "eff_lr" not in runs:
        raise ValueError("the runs table has no eff_lr column: collect runs with the weight-norm probe")
    use = runs[np.isfinite(runs["eff_lr"]) & (runs["eff_lr"] > 0) & (runs["status"] != "failed")
               & ~runs["cell"].isin(list(held_out))]
    if len(use) < 8:
        raise ValueError(f"only {len(use)} runs have a usable eff_lr; need at least 8 to fit the map")
    log_lr = np.log(use["lr"].to_numpy(dtype=float))
    center = float(log_lr.mean())
    u = log_lr - center
    zn = std.z("N", use["n_params"].to_numpy(dtype=float))
    zd = std.z("D", use["n_tokens"].to_numpy(dtype=float))
    X = np.column_stack([np.ones_like(u), u, u * zn, u * zd, zn, zd])
    keep = [j for j in range(6) if np.any(X[:, j] != 0)]  # a scale axis that does not vary drops out
    Xk = X[:, keep]
    y = np.log(use["eff_lr"].to_numpy(dtype=float))
    beta, *_ = np.linalg.lstsq(Xk, y, rcond=None)
    resid = y - Xk @ beta
    dof = max(len(y) - len(keep), 1)
    s2 = float(resid @ resid / dof)
    # Flat-prior posterior: sigma^2 ~ scaled-inv-chi2(dof, s2), beta | sigma ~ N(beta_hat, sigma^2 (X'X)^-1)
    rng = np.random.default_rng(seed)
    sigma2 = dof * s2 / rng.chisquare(dof, n_draws)
    cov = np.linalg.pinv(Xk.T @ Xk)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(keep)))
    draws_k = beta + (rng.standard_normal((n_draws, len(keep))) @ chol.T) * np.sqrt(sigma2)[:, None]
    draws = np.zeros((n_draws, 6))
    draws[:, keep] = draws_k
    return EffectiveMap(False, draws, center, float(np.sqrt(s2)), std)


TRANSIENT_COLUMNS = ("t_eq", "transient_frac", "equilibration_number")


def transient_by_cell(runs: pd.DataFrame, cells: pd.DataFrame, fit=None) -> pd.DataFrame:
    """Weight-norm transient at each cell's best LR, next to the 1/(lr wd) timescale.

    Columns from the runner's probe: t_eq (steps until the hidden-matrix RMS^2 is within 10% of
    lr_t/(2 wd)), transient_frac = t_eq / steps, equilibration_number E = 2 wd sum_t lr_t.
    THEORY.md 3.4: cells whose best runs spend more of training in the transient (small E) should
    sit above a log-linear law fitted in nominal LR. With a `fit`, each cell's posterior median
    optimum minus the least-squares line through all optima (along the fit's first axis) is
    given as `law_residual`, to check that relation.
    """
    missing = [c for c in TRANSIENT_COLUMNS + ("weight_decay", "steps") if c not in runs]
    if missing:
        raise ValueError(f"the runs table lacks {missing}: collect it with the scalefit runners (weight-norm probe)")
    ok = runs[runs["status"] == "ok"]
    best = ok.loc[ok.groupby("cell")["final_loss"].idxmin()].set_index("cell")
    out = pd.DataFrame({
        "n_params": cells.loc[best.index, "n_params"], "n_tokens": cells.loc[best.index, "n_tokens"],
        "best_lr": best["lr"], "steps": best["steps"],
        "timescale_steps": 1.0 / (best["lr"] * best["weight_decay"]),
        "t_eq": best["t_eq"], "transient_frac": best["transient_frac"],
        "equilibration_number": best["equilibration_number"],
    })
    if fit is not None:
        m = np.median(fit.posterior["log_lr_opt"].values.reshape(-1, len(fit.table.cells)), axis=0)
        axis_col = "n_params" if fit.config.axes[0] == "N" else "n_tokens"
        x = np.log(fit.table.cells[axis_col].to_numpy(dtype=float))
        slope, intercept = np.polyfit(x, m, 1)
        resid = pd.Series(m - (intercept + slope * x), index=fit.table.cells.index)
        out["law_residual"] = resid.loc[out.index]
    return out
