"""Effective LR: the measured step in normalized weight space, and the map back to nominal LR.

A fit in effective-LR space predicts the optimal *effective* LR at the target, but users set the
*nominal* LR. The relation is fitted on the runs themselves, as a two-level model (runs within
cells):

    ln eff_lr_r = c0 + (c1 + c2 z_N + c3 z_D) u_r + c4 z_N + c5 z_D + c6 u_r^2 + b_cell + e_r,
    u = ln lr - centre,   b_cell ~ Normal(0, tau),   e_r ~ Normal(0, sigma)

- **Cells are a grouping level.** Runs of one cell share their weight-norm history, so they are
  not independent: b_cell absorbs what the cell shares, and the coefficients' uncertainty
  counts cells, not runs.
- **Fitted where it matters.** Only runs within ``WINDOW_OCTAVES`` of their cell's best LR enter:
  the map is used to carry the effective optimum back, and ln eff_lr is not linear in ln lr over
  a whole sweep (a fit over whole sweeps leaves systematic residuals near the optima, where the
  map is read). The slope k = c1 + ... is then the *local* slope at the optimum: between 1/2 at
  equilibrium and 1 in the init-dominated transient (see the theory page, docs/theory.md,
  "The local slope of the map").
- **Its scatter reaches the interval.** The target is a new cell, and one run there: a nominal LR
  reaches ln eff = map + b_new + e, so each draw carries its own offset with sd
  sqrt(tau^2 + sigma^2). (c, sigma, tau) get a posterior: sigma and tau on a grid (half-normal
  priors, restricted likelihood with c integrated out under a flat prior), c | sigma, tau exactly
  Gaussian (generalized least squares). No sampler: a grid and closed forms.
- **The decision is made in nominal space** (:meth:`EffectiveMap.decide_nominal`): the nominal LR
  that minimizes posterior expected loss when every draw's valley is reached through that draw's
  map and offset. Map uncertainty widens the nominal spread, and with a valley steeper on the
  high side that moves the decision down.

AdamH runs need no map: their LR is the per-step angle up to sin(angle(W, u)), close to 1 in high
dimension (see the theory page, docs/theory.md, "What AdamH's learning rate means"), so the map
is the identity. The model page (docs/model.md, "The effective-LR map") states the same in brief.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["EffectiveMap", "fit_effective_map", "near_optimum", "transient_by_cell", "WINDOW_OCTAVES",
           "MIN_RISING_DRAWS", "TRANSIENT_COLUMNS"]

IDENTITY_OPTIMIZERS = ("adamh",)
WINDOW_OCTAVES = 1.0  # runs within one octave of their cell's best LR fit the map
SCALE_PRIOR_SD = 0.5  # half-normal prior sd of sigma and tau, ln eff_lr units (a 1.6x spread)
GRID = np.exp(np.linspace(np.log(1e-4), np.log(2.0), 60))  # sigma and tau values
MIN_RISING_DRAWS = 100  # fewer map draws rising at the target than this: no nominal answer


@dataclass(frozen=True)
class EffectiveMap:
    """ln eff_lr as a function of ln lr and scale, with posterior draws (see the module doc).

    Made by `fit_effective_map`; `scalefit.fit.core.Fit.eff_map` holds the one of an
    effective-LR fit.

    Attributes
    ----------
    identity : bool
        True for AdamH runs: the LR is the angle, the map is the identity.
    coef_draws : numpy.ndarray
        (draws, 7) posterior draws of c0 .. c6; a coefficient whose covariate does not vary in
        the fitted runs is 0.
    lr_center : float
        The centre of ln lr (u = ln lr - lr_center).
    residual_sd : float
        Posterior median of sigma, the run-level scatter about the map (ln units).
    std : scalefit.model.standardize.Standardization
        The fit's standardization (for z_N, z_D).
    scatter_draws : numpy.ndarray or None
        Per draw, sqrt(sigma^2 + tau^2): the sd of a new cell's run about the map.
    cell_sd : float
        Posterior median of tau, the cell-level scatter (ln units).
    seed : int
        Seed of the new-cell offsets, so the same map gives the same answer.
    """

    identity: bool
    coef_draws: np.ndarray  # (draws, 7): c0 .. c6 (6 columns: no u^2 term)
    lr_center: float
    residual_sd: float  # posterior median sigma (run level)
    std: object  # scalefit.model.standardize.Standardization of the fit (for z_N, z_D)
    scatter_draws: np.ndarray | None = None  # per draw: sd of a new cell's run about the map
    cell_sd: float = 0.0  # posterior median tau (cell level)
    seed: int = 0

    def log_eff(self, log_lr, n_params, n_tokens) -> np.ndarray:
        """Posterior mean ln eff_lr at nominal ln lr (for plots and checks).

        Parameters
        ----------
        log_lr : float or array_like
            Nominal ln lr.
        n_params, n_tokens : float or array_like
            The scale.

        Returns
        -------
        numpy.ndarray
            ln eff_lr under the posterior mean coefficients (no cell or run offset).
        """
        if self.identity:
            return np.asarray(log_lr, dtype=float)
        c = self.coef_draws.mean(axis=0)
        zn, zd = self.std.z("N", n_params), self.std.z("D", n_tokens)
        u = np.asarray(log_lr, dtype=float) - self.lr_center
        curv = c[6] if len(c) > 6 else 0.0
        return c[0] + (c[1] + c[2] * zn + c[3] * zd) * u + c[4] * zn + c[5] * zd + curv * u**2

    def rising_fraction(self, n_params: float, n_tokens: float) -> float:
        """Share of the map's posterior draws whose slope in ln lr is positive at (N, D).

        Parameters
        ----------
        n_params, n_tokens : float
            The scale.

        Returns
        -------
        float
            In [0, 1]; 1 for the identity map.
        """
        if self.identity:
            return 1.0
        return float(np.mean(self._slopes(n_params, n_tokens) > 0))

    def _slopes(self, n_params: float, n_tokens: float) -> np.ndarray:
        c = self.coef_draws
        zn, zd = float(self.std.z("N", n_params)), float(self.std.z("D", n_tokens))
        return c[:, 1] + c[:, 2] * zn + c[:, 3] * zd

    def _per_draw(self, n: int, n_params: float, n_tokens: float, scatter: bool):
        """(level at u = 0 incl. the new cell's offset, slope at u = 0, curvature) for n draws.

        eff_lr rises with lr (a larger step is a larger angle), so the map's draws are
        conditioned on a positive slope at the target: the slope is linear in z_N and z_D, and
        far beyond the fitted cells some Gaussian draws cross zero, where no nominal LR can be
        read off. Keeping only the rising draws is the posterior under that constraint; slopes
        near zero then map to far-out nominal LRs, so the interval widens instead of failing.
        Fewer than ``MIN_RISING_DRAWS`` rising draws: the map says nothing there (ValueError).
        """
        zn, zd = float(self.std.z("N", n_params)), float(self.std.z("D", n_tokens))
        rising = np.flatnonzero(self._slopes(n_params, n_tokens) > 0)
        if len(rising) < min(MIN_RISING_DRAWS, len(self.coef_draws)):
            raise ValueError(f"the fitted eff_lr map is not increasing in lr at the target ({len(rising)} of "
                             f"{len(self.coef_draws)} map draws rise there); the effective-LR fit cannot be "
                             "mapped back to a nominal LR there")
        idx = rising[np.arange(n) % len(rising)]
        c = self.coef_draws[idx]
        slope = c[:, 1] + c[:, 2] * zn + c[:, 3] * zd
        level = c[:, 0] + c[:, 4] * zn + c[:, 5] * zd
        if scatter and self.scatter_draws is not None:
            # fixed, so the same map gives the same answer; a stream of its own, so it is not
            # the one predict's target draws come from (same seed -> perfectly correlated)
            rng = np.random.default_rng((self.seed, 0x5CA7))
            level = level + self.scatter_draws[idx] * rng.standard_normal(n)
        curv = c[:, 6] if c.shape[1] > 6 else np.zeros(n)
        return level, slope, curv

    def to_nominal(self, log_eff_draws: np.ndarray, n_params: float, n_tokens: float,
                   scatter: bool = True) -> np.ndarray:
        """Nominal ln lr that reaches each effective ln lr draw at the target.

        Each draw goes through one rising map draw, with that draw's new-cell-and-run offset
        unless ``scatter=False``.

        Parameters
        ----------
        log_eff_draws : array_like
            Draws of ln eff_lr at the target.
        n_params, n_tokens : float
            The target scale.
        scatter : bool, default True
            Add each draw's new-cell-and-run offset (sd sqrt(tau^2 + sigma^2)).

        Returns
        -------
        numpy.ndarray
            Nominal ln lr, one per draw.

        Raises
        ------
        ValueError
            When fewer than ``MIN_RISING_DRAWS`` map draws rise at the target.
        """
        log_eff_draws = np.asarray(log_eff_draws, dtype=float)
        if self.identity:
            return log_eff_draws
        level, slope, curv = self._per_draw(len(log_eff_draws), n_params, n_tokens, scatter)
        # the root of level + slope u + curv u^2 = target on the rising branch, in the form that
        # stays stable as curv -> 0; a target above a concave map's top maps to the top
        disc = np.maximum(slope**2 + 4 * curv * (log_eff_draws - level), 0.0)
        return self.lr_center + 2 * (log_eff_draws - level) / (slope + np.sqrt(disc))

    def decide_nominal(self, draws: dict, x_center: float, n_params: float, n_tokens: float) -> float:
        """Nominal ln lr minimizing posterior expected loss under the map's uncertainty.

        Each draw's effective-space valley is reached through that draw's map and offset.

        Parameters
        ----------
        draws : dict
            The target's draws from `scalefit.fit.predict.target_draws` (x = ln eff - `x_center`).
        x_center : float
            The fit's ``std.x_center``.
        n_params, n_tokens : float
            The target scale.

        Returns
        -------
        float
            The decision, as nominal ln lr.

        Raises
        ------
        ValueError
            When fewer than ``MIN_RISING_DRAWS`` map draws rise at the target.
        """
        from scipy.optimize import minimize_scalar

        from scalefit.model.valley import valley_rise

        m = np.asarray(draws["m"], dtype=float)
        if self.identity:
            level, slope, curv = np.full(len(m), self.lr_center), np.ones(len(m)), np.zeros(len(m))
        else:
            level, slope, curv = self._per_draw(len(m), n_params, n_tokens, scatter=True)

        def loss(log_lr):
            u = log_lr - self.lr_center
            x = level + slope * u + curv * u**2 - x_center
            return float(np.mean(draws["width"] * valley_rise(x - m, draws["asymmetry"])))

        opt = self.to_nominal(m + x_center, n_params, n_tokens)  # each draw's nominal optimum
        lo, hi = np.quantile(opt, [0.001, 0.999])
        grid = np.linspace(lo, hi, 201)
        start = grid[np.argmin([loss(x) for x in grid])]
        step = (hi - lo) / 200
        res = minimize_scalar(loss, bounds=(start - step, start + step), method="bounded",
                              options={"xatol": 1e-6})
        return float(res.x)


def near_optimum(runs: pd.DataFrame, octaves: float = WINDOW_OCTAVES) -> pd.Series:
    """True for runs within ``octaves`` of their cell's best ok LR (cells without an ok run: none).

    Parameters
    ----------
    runs : pandas.DataFrame
        Runs with ``cell``, ``lr``, ``status`` and ``final_loss``.
    octaves : float, default WINDOW_OCTAVES
        Half-width of the window, in octaves of LR.

    Returns
    -------
    pandas.Series
        Boolean, on the index of `runs`.
    """
    ok = runs[(runs["status"] == "ok") & np.isfinite(runs["final_loss"])]
    best = np.log(ok.loc[ok.groupby("cell")["final_loss"].idxmin()].set_index("cell")["lr"])
    dist = np.abs(np.log(runs["lr"].to_numpy(dtype=float)) - runs["cell"].map(best).to_numpy(dtype=float))
    return pd.Series(dist <= octaves * np.log(2) + 1e-9, index=runs.index)


def _posterior_scales(y, X, cell_codes, grid=GRID, prior_sd=SCALE_PRIOR_SD):
    """Log posterior of (sigma, tau) on grid x grid, with c integrated out (flat prior), and the
    GLS mean and covariance of c at each point. Cells enter through per-cell sums."""
    n_cells = cell_codes.max() + 1
    n_j = np.bincount(cell_codes, minlength=n_cells).astype(float)
    Xs = np.stack([np.bincount(cell_codes, X[:, k], n_cells) for k in range(X.shape[1])], axis=1)
    ys = np.bincount(cell_codes, y, n_cells)
    XtX, Xty, yty = X.T @ X, X.T @ y, float(y @ y)
    p = X.shape[1]
    s2, t2 = np.meshgrid(grid**2, grid**2, indexing="ij")
    logp = np.full(s2.shape, -np.inf)
    means = np.zeros(s2.shape + (p,))
    covs = np.zeros(s2.shape + (p, p))
    for i in range(len(grid)):
        for j in range(len(grid)):
            sig2, tau2 = s2[i, j], t2[i, j]
            g = tau2 / (sig2 + n_j * tau2)  # V_j^-1 = (I - g_j 11') / sigma^2
            A = (XtX - (Xs * g[:, None]).T @ Xs) / sig2
            b = (Xty - (Xs * g[:, None]).T @ ys) / sig2
            c = (yty - float(np.sum(g * ys**2))) / sig2
            sign, logdet_a = np.linalg.slogdet(A)
            if sign <= 0:
                continue
            beta = np.linalg.solve(A, b)
            logdet_v = float(np.sum((n_j - 1) * np.log(sig2) + np.log(sig2 + n_j * tau2)))
            logp[i, j] = (-0.5 * (logdet_v + logdet_a + c - b @ beta)
                          - 0.5 * (sig2 + tau2) / prior_sd**2 + np.log(grid[i] * grid[j]))  # log-grid Jacobian
            means[i, j], covs[i, j] = beta, np.linalg.inv(A)
    return logp, means, covs


def fit_effective_map(runs: pd.DataFrame, std, held_out=(), n_draws: int = 4000, seed: int = 0,
                      window_octaves: float | None = WINDOW_OCTAVES) -> EffectiveMap:
    """Fit the eff_lr map on the runs near each cell's optimum.

    Runs with a finite eff_lr within ``window_octaves`` of their cell's best LR enter, ok and
    diverged alike (the map is about the optimizer's dynamics, not the loss), except runs of
    held-out cells: a backtest must not see the held-out scale's dynamics either.

    Parameters
    ----------
    runs : pandas.DataFrame
        The runs table's runs (``lr``, ``eff_lr``, ``status``, ``cell``, ``n_params``,
        ``n_tokens``; ``optimizer`` when present).
    std : scalefit.model.standardize.Standardization
        The fit's standardization (the map is written in its z_N, z_D).
    held_out : iterable of int, default ()
        Cells whose runs stay out.
    n_draws : int, default 4000
        Posterior draws of the coefficients.
    seed : int, default 0
        Seed of the draws and of the new-cell offsets.
    window_octaves : float or None, default WINDOW_OCTAVES
        Half-width of the window about each cell's best LR; None: every run.

    Returns
    -------
    EffectiveMap
        The identity when every run is AdamH.

    Raises
    ------
    ValueError
        When the table has no eff_lr column, or fewer than 8 runs have a usable eff_lr near
        their cell's optimum.
    """
    if "optimizer" in runs and runs["optimizer"].astype(str).str.lower().isin(IDENTITY_OPTIMIZERS).all():
        return EffectiveMap(True, np.zeros((1, 7)), 0.0, 0.0, std)
    if "eff_lr" not in runs:
        raise ValueError("the runs table has no eff_lr column: collect runs with the weight-norm probe")
    use = runs[np.isfinite(runs["eff_lr"]) & (runs["eff_lr"] > 0) & (runs["status"] != "failed")
               & ~runs["cell"].isin(list(held_out))]
    if window_octaves is not None:
        use = use[near_optimum(use, window_octaves)]
    if len(use) < 8:
        raise ValueError(f"only {len(use)} runs have a usable eff_lr near their cell's optimum; "
                         "need at least 8 to fit the map")
    log_lr = np.log(use["lr"].to_numpy(dtype=float))
    center = float(log_lr.mean())
    u = log_lr - center
    zn = std.z("N", use["n_params"].to_numpy(dtype=float))
    zd = std.z("D", use["n_tokens"].to_numpy(dtype=float))
    X = np.column_stack([np.ones_like(u), u, u * zn, u * zd, zn, zd, u**2])
    keep = []
    for j in range(7):  # a scale axis that does not vary (or only with the cell) drops out
        if np.linalg.matrix_rank(X[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
    Xk = X[:, keep]
    y = np.log(use["eff_lr"].to_numpy(dtype=float))
    codes = pd.factorize(use["cell"])[0]
    logp, means, covs = _posterior_scales(y, Xk, codes)
    rng = np.random.default_rng(seed)
    w = np.exp(logp - logp.max()).ravel()
    flat = rng.choice(len(w), size=n_draws, p=w / w.sum())
    i, j = np.unravel_index(flat, logp.shape)
    chol = np.linalg.cholesky(covs[i, j] + 1e-14 * np.eye(len(keep)))
    draws_k = means[i, j] + np.einsum("nab,nb->na", chol, rng.standard_normal((n_draws, len(keep))))
    draws = np.zeros((n_draws, 7))
    draws[:, keep] = draws_k
    sigma, tau = GRID[i], GRID[j]
    return EffectiveMap(False, draws, center, float(np.median(sigma)), std,
                        scatter_draws=np.sqrt(sigma**2 + tau**2), cell_sd=float(np.median(tau)), seed=seed)


TRANSIENT_COLUMNS = ("t_eq", "transient_frac", "equilibration_number")


def transient_by_cell(runs: pd.DataFrame, cells: pd.DataFrame, fit=None) -> pd.DataFrame:
    """Weight-norm transient at each cell's best LR, next to the 1/(lr wd) timescale.

    Columns from the runner's probe: t_eq (steps until the hidden-matrix RMS^2 is within 10% of
    lr_t/(2 wd)), transient_frac = t_eq / steps, equilibration_number E = 2 wd sum_t lr_t.
    Cells whose best runs spend more of training in the transient (small E) should sit above a
    log-linear law fitted in nominal LR (see the theory page, docs/theory.md, "Why the curvature
    might vanish in effective-LR space and along D"). With a `fit`, each cell's posterior median
    optimum minus the least-squares line through all optima (along the fit's first axis) is
    given as `law_residual`, to check that relation.

    Parameters
    ----------
    runs : pandas.DataFrame
        The runs table's runs, with the probe's columns (``TRANSIENT_COLUMNS``), ``weight_decay``
        and ``steps``.
    cells : pandas.DataFrame
        The runs table's cells.
    fit : scalefit.fit.core.Fit, optional
        Adds the ``law_residual`` column.

    Returns
    -------
    pandas.DataFrame
        One row per cell with an ok run: n_params, n_tokens, best_lr, steps, timescale_steps,
        t_eq, transient_frac, equilibration_number (and law_residual).

    Raises
    ------
    ValueError
        When the runs lack the probe's columns.
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
