"""Posterior prediction at a target scale: the target is a NEW cell, so its optimum draws a
fresh law residual from Normal(0, tau) and its valley width from the population, and the law's
discrepancy walk is continued from the fitted cells to it.

Intervals are equal-tailed (ETI): invariant under exp, so the LR interval is the exp of the
log-LR interval. Every interval states its probability and kind. The recommended LR minimizes
posterior expected loss at the target (see the model page, docs/model.md, "Prediction at a new
cell" and "The decision rule").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from scalefit.model.law import fit_law_axes, law_terms, term_value
from scalefit.model.valley import valley_rise

__all__ = ["Prediction", "predict", "target_draws", "fit_target_draws", "nominal_log_lr_draws", "law_z", "law_draws",
           "walk_context", "check_batch_size", "expected_loss", "decide", "continue_walk", "posterior_scalars",
           "posterior_vector", "target_valley_draws"]

DEFAULT_PROBS = (0.5, 0.9, 0.95)
INTERVAL_KIND = "ETI"


@dataclass(frozen=True)
class Prediction:
    """The answer at a target scale: the optimal LR to set, with its credible intervals.

    Returned by `predict` (and `scalefit.fit.core.Fit.predict`). Every LR here is the nominal
    LR to set, whatever LR space the model was fitted in; the interval kind and probability are
    stated with the numbers.

    Attributes
    ----------
    n_params : float
        Target model size N.
    n_tokens : float
        Target training tokens D.
    prob : float
        Probability of the headline interval [`lr_low`, `lr_high`].
    lr_median : float
        Posterior median of the optimal LR at the target.
    lr_low : float
        Lower end of the `prob` equal-tailed interval of the optimal LR.
    lr_high : float
        Upper end of that interval.
    intervals : dict
        ``str(p) -> [low, high]`` for p in 0.5, 0.9, 0.95 and `prob`.
    lr_decision : float
        The recommended LR: it minimizes posterior expected loss at the target. With a valley
        steeper on the high-LR side it sits below the median.
    expected_loss_penalty_of_median : float
        E[loss(lr_median)] - E[loss(lr_decision)], in loss units (>= 0): what setting the median
        instead of the recommendation costs in expectation.
    expected_regret_at_decision : float
        E[loss(lr_decision)] - E[loss(true optimum)], in loss units: the loss the remaining
        uncertainty costs at the recommendation.
    p_curvature_positive : float or None
        Posterior probability of upward curvature of the law along its (first) axis; None for a
        linear law.
    p_curvature_positive_by_axis : dict
        ``axis -> P(curvature > 0)`` for every curved law axis.
    baseline_lr : float
        The two-stage log-linear point fit's LR at the target (mapped to nominal LR for
        effective-LR fits).
    lr_kind_fitted : str
        The LR space the valleys and the law were fitted in: "nominal" or "effective".
    lr_kind_reported : str
        Always "nominal": the LR you set.
    axis : str
        The law's axis: "N", "D" or "ND".
    interval_kind : str
        "ETI" (equal-tailed interval).
    converged : bool or None
        Whether the fit's sampler converged; None when the fit has no convergence summary.
    extrapolation : dict
        Per law axis, ``{"target_z", "fitted_z_min", "fitted_z_max"}``: where the target lies
        against the fitted cells, in standardized units.
    effective : dict
        Effective-LR fits only (empty otherwise): ``eff_lr_median`` and ``eff_intervals`` (the
        answer in effective-LR space, before the map), ``map_identity`` (AdamH: the map is the
        identity) and ``map_residual_sd`` (the map's run-level scatter, ln units).
    batch_size : float or None
        Tokens per step the answer is for; None when the table has no batch sizes.
    """

    n_params: float
    n_tokens: float
    prob: float
    lr_median: float
    lr_low: float
    lr_high: float
    intervals: dict  # "0.5" -> [low, high], ...
    lr_decision: float  # minimizes posterior expected loss at the target
    expected_loss_penalty_of_median: float  # E[loss(median)] - E[loss(decision)], loss units
    expected_regret_at_decision: float  # E[loss(decision)] - E[loss(true optimum)], loss units
    p_curvature_positive: float | None  # None for a linear law; the fit's axis (first axis if ND)
    p_curvature_positive_by_axis: dict
    baseline_lr: float
    lr_kind_fitted: str  # the LR space the valleys and the law were fitted in
    lr_kind_reported: str  # always "nominal": the LR you set
    axis: str
    interval_kind: str = INTERVAL_KIND
    converged: bool | None = None
    extrapolation: dict = field(default_factory=dict)  # target z vs the fitted range
    effective: dict = field(default_factory=dict)  # effective-space interval when lr_kind_fitted is "effective"
    batch_size: float | None = None  # tokens/step the answer is for (None: the table has no batch sizes)

    def to_dict(self) -> dict:
        """Every field as a plain dict (what ``scalefit predict --json`` prints)."""
        return asdict(self)


def target_draws(posterior, std, config, n_params: float, n_tokens: float, seed: int = 0,
                 batch_size: float | None = None, walk: dict | None = None) -> dict[str, np.ndarray]:
    """Per posterior draw: the target's optimum (standardized x), width and valley asymmetry.

    Parameters
    ----------
    posterior : xarray.DataTree or xarray.Dataset
        The fit's posterior.
    std : scalefit.model.standardize.Standardization
        The fit's standardization.
    config : scalefit.model.config.ModelConfig
        The fit's model config.
    n_params, n_tokens : float
        The target scale.
    seed : int, default 0
        Seed of the target's new-cell random effects.
    batch_size : float, optional
        Tokens per step at the target (used when the law has a batch-size term).
    walk : dict, optional
        From `walk_context`: per law axis, the distinct ln values of the table's cells and
        which of them carried data. The law's Brownian-motion discrepancy is continued from the
        fitted cells to the target (a bridge between them, a diffusion beyond them).

    Returns
    -------
    dict
        ``m`` (optimum, standardized ln LR, one per draw), ``width`` (valley width),
        ``asymmetry`` (None for a quadratic valley) and ``z`` (the target's law covariates).
    """
    rng = np.random.default_rng(seed)
    post = {k: np.asarray(v).reshape(-1) for k, v in posterior_scalars(posterior).items()}
    n = len(post["law_intercept"])
    z = law_z(std, config, n_params, n_tokens, batch_size)
    law = law_draws(post, config, std, z)
    target_log = {"N": np.log(n_params), "D": np.log(n_tokens)}
    walk_rng = np.random.default_rng([seed, 1])  # its own stream: the other draws do not move with it
    for axis, (positions, fitted) in (walk or {}).items():
        values = posterior_vector(posterior, f"law_walk_{axis}")  # (draws, positions)
        law += continue_walk(values[:, fitted], positions[fitted], post[f"law_discrepancy_{axis}"],
                              target_log[axis], walk_rng)
    m = law + post["law_residual_sd"] * rng.standard_normal(n)
    log_width = post["log_width_mean"] + post["log_width_sd"] * rng.standard_normal(n)
    asymmetry = post["valley_asymmetry"] if config.valley == "asymmetric" else None
    if asymmetry is not None and "valley_asymmetry_sd" in post:  # per-cell asymmetry: a new cell's
        asymmetry = asymmetry + post["valley_asymmetry_sd"] * rng.standard_normal(n)
    return {"m": m, "width": np.exp(log_width), "asymmetry": asymmetry, "z": z}


def law_z(std, config, n_params: float, n_tokens: float, batch_size: float | None = None) -> dict:
    """The law's standardized covariates at one point.

    Parameters
    ----------
    std : scalefit.model.standardize.Standardization
        The fit's standardization.
    config : scalefit.model.config.ModelConfig
        The fit's model config.
    n_params, n_tokens : float
        The point.
    batch_size : float, optional
        Tokens per step; used only when the law has a batch-size term.

    Returns
    -------
    dict
        ``{"N": z, "D": z}``, plus ``"B"`` when batch size is in the law.
    """
    z = {"N": std.z("N", n_params), "D": std.z("D", n_tokens)}
    if "B" in fit_law_axes(config, std):
        z["B"] = std.z("B", batch_size)
    return z


def law_draws(post: dict, config, std, z: dict) -> np.ndarray:
    """Per posterior draw: the parametric law's optimum at `z`, without the discrepancy walk or
    a new-cell residual.

    Parameters
    ----------
    post : dict
        The posterior's scalar variables, each flattened to one value per draw.
    config : scalefit.model.config.ModelConfig
        The fit's model config.
    std : scalefit.model.standardize.Standardization
        The fit's standardization.
    z : dict
        The point's law covariates (from `law_z`).

    Returns
    -------
    numpy.ndarray
        Standardized ln LR of the law's optimum, one per draw.
    """
    law = post["law_intercept"].copy()
    for name, axis, power in law_terms(config, fit_law_axes(config, std)):
        law += post[name] * float(term_value(z, axis, power))
    return law


def posterior_vector(posterior, name: str) -> np.ndarray:
    """A posterior variable with one dimension beyond (chain, draw), as (draws, values).

    Parameters
    ----------
    posterior : xarray.DataTree or xarray.Dataset
        The posterior group of a fit.
    name : str
        The variable, e.g. ``"log_lr_opt"`` or ``"law_walk_N"``.

    Returns
    -------
    numpy.ndarray
        Chains stacked: shape (chains x draws, values).
    """
    ds = posterior.to_dataset() if hasattr(posterior, "to_dataset") else posterior
    v = ds[name].values
    return v.reshape(-1, v.shape[-1])


def continue_walk(values: np.ndarray, positions: np.ndarray, kappa: np.ndarray, target: float, rng) -> np.ndarray:
    """The discrepancy walk at `target`, given its draws at the fitted positions.

    A Brownian bridge between the neighbouring fitted positions, free diffusion beyond the ends.

    Parameters
    ----------
    values : numpy.ndarray
        The walk's draws at the fitted positions, (draws, positions).
    positions : numpy.ndarray
        The fitted positions: sorted ln values along the axis.
    kappa : numpy.ndarray
        The walk's scale per draw (nats of LR per sqrt e-fold).
    target : float
        The target's ln value along the axis.
    rng : numpy.random.Generator
        Source of the bridge's and the diffusion's noise.

    Returns
    -------
    numpy.ndarray
        One value per draw.
    """
    k = np.searchsorted(positions, target)
    if k < len(positions) and np.isclose(positions[k], target, rtol=0, atol=1e-9):
        return values[:, k]
    if k == 0 or k == len(positions):
        end = 0 if k == 0 else -1
        gap = abs(target - positions[end])
        return values[:, end] + kappa * np.sqrt(gap) * rng.standard_normal(len(kappa))
    lo, hi = positions[k - 1], positions[k]
    frac = (target - lo) / (hi - lo)
    mean = values[:, k - 1] + frac * (values[:, k] - values[:, k - 1])
    return mean + kappa * np.sqrt((target - lo) * (hi - target) / (hi - lo)) * rng.standard_normal(len(kappa))


def walk_context(fit) -> dict:
    """Per law axis with a discrepancy walk: the walk's positions and which carried data.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.

    Returns
    -------
    dict
        ``axis -> (positions, fitted)``: the sorted distinct ln values of every cell (held-out
        cells included) and a boolean mask of those that belong to fitted cells.
    """
    from scalefit.model.config import AXIS_COLUMNS
    from scalefit.model.law import distinct_logs

    post = fit.posterior.to_dataset() if hasattr(fit.posterior, "to_dataset") else fit.posterior
    out = {}
    for axis in fit.config.axes:
        if f"law_walk_{axis}" not in post:
            continue
        col = fit.table.cells[AXIS_COLUMNS[axis]]
        log_v, positions = distinct_logs(col)
        used = log_v[col.index.isin(fit.fitted_cells())]
        out[axis] = (positions, np.isin(positions, used))
    return out


def check_batch_size(fit, batch_size: float | None) -> float | None:
    """The batch size a prediction is for; a clear error when the fit cannot speak to it.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    batch_size : float or None
        The batch size asked for (tokens per step).

    Returns
    -------
    float or None
        `batch_size` when the law depends on batch size (or follows a recipe that grows it with
        the model), else the fitted table's single batch size (None without a batch_size column).

    Raises
    ------
    ValueError
        When the law depends on batch size and none is given or it lies outside the fitted
        range, or when a batch size is given that the fit never saw and cannot extrapolate to.
    """
    cells = fit.table.cells.loc[fit.fitted_cells()]
    seen = cells["batch_size"].dropna().unique() if "batch_size" in cells else np.array([])
    in_law = "B" in fit_law_axes(fit.config, fit.std)
    if not in_law:
        if len(seen) > 1:  # a recipe that grows B with the model: the law follows the recipe
            return batch_size
        if batch_size is not None and not (len(seen) == 1 and np.isclose(seen[0], batch_size, rtol=1e-6)):
            which = f"one batch size ({seen[0]:.4g} tokens/step)" if len(seen) == 1 else "no batch_size column"
            raise ValueError(f"--batch-size {batch_size:.4g}: the fitted table has {which}, so the law "
                             "cannot say how the optimum moves with batch size; drop --batch-size")
        return float(seen[0]) if len(seen) == 1 else None
    if batch_size is None:
        raise ValueError(f"this fit's law depends on batch size (fitted {len(seen)} batch sizes, "
                         f"{seen.min():.4g}-{seen.max():.4g} tokens/step); pass --batch-size")
    if not seen.min() * (1 - 1e-6) <= batch_size <= seen.max() * (1 + 1e-6):
        raise ValueError(f"--batch-size {batch_size:.4g} lies outside the batch sizes the fit saw "
                         f"({seen.min():.4g}-{seen.max():.4g} tokens/step); the law is not extrapolated in B")
    return float(batch_size)


def fit_target_draws(fit, n_params: float, n_tokens: float, seed: int = 0, batch_size: float | None = None) -> dict:
    """`target_draws` for a Fit: its batch size checked, its discrepancy walk continued.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    n_params, n_tokens : float
        The target scale.
    seed : int, default 0
        Seed of the target's new-cell random effects.
    batch_size : float, optional
        Tokens per step at the target.

    Returns
    -------
    dict
        What `target_draws` returns, plus ``batch_size`` (the checked batch size).

    Raises
    ------
    ValueError
        When the batch size does not fit the law (see `check_batch_size`).
    """
    batch_size = check_batch_size(fit, batch_size) if hasattr(fit, "table") else batch_size
    walk = walk_context(fit) if hasattr(fit, "table") else None
    return target_draws(fit.posterior, fit.std, fit.config, n_params, n_tokens, seed=seed,
                        batch_size=batch_size, walk=walk) | {"batch_size": batch_size}


def target_valley_draws(fit, n_params: float, n_tokens: float, seed: int = 0,
                        batch_size: float | None = None) -> dict:
    """Per posterior draw: the target cell's whole predictive valley, in natural units.

    The optimum, width and asymmetry are `fit_target_draws`'s (the same seed gives the same
    optimum draws as `predict` and `nominal_log_lr_draws`); the floor and the noise follow the
    model (`scalefit.model.graph`): a new cell's floor L ~ Normal(f0 + f_N z_N + f_D z_D, floor_sd)
    and its noise log sigma = n0 + n_N z_N + n_D z_D. Everything is mapped back from the model's
    standardized units: ln LR = x + x_center, loss = y y_scale + y_center.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    n_params, n_tokens : float
        The target scale.
    seed : int, default 0
        Seed of the target's new-cell random effects (the floor has its own stream).
    batch_size : float, optional
        Tokens per step at the target.

    Returns
    -------
    dict
        ``optimum`` (ln LR in the fitted LR space: effective LR for an effective-LR fit),
        ``log_width`` (ln of the width A in loss units: the mean loss rise one nat of LR off the
        optimum), ``asymmetry`` (LINEX k per nat, None for a quadratic valley), ``floor`` (loss),
        ``noise`` (the Student-t scale of one run, loss units), ``nu`` (its degrees of freedom)
        and ``batch_size``; one value per draw.

    Raises
    ------
    ValueError
        When the batch size does not fit the law (see `check_batch_size`).
    """
    std = fit.std
    draws = fit_target_draws(fit, n_params, n_tokens, seed=seed, batch_size=batch_size)
    post = {k: np.asarray(v).reshape(-1) for k, v in posterior_scalars(fit.posterior).items()}
    z_n, z_d = float(std.z("N", n_params)), float(std.z("D", n_tokens))
    floor_rng = np.random.default_rng([seed, 2])  # its own stream: the optimum draws do not move with it
    floor = (post["floor_intercept"] + post["floor_slope_N"] * z_n + post["floor_slope_D"] * z_d
             + post["floor_sd"] * floor_rng.standard_normal(len(post["floor_intercept"])))
    log_noise = post["log_noise_mean"] + post["log_noise_slope_N"] * z_n + post["log_noise_slope_D"] * z_d
    return {"optimum": draws["m"] + std.x_center, "log_width": np.log(draws["width"]) + np.log(std.y_scale),
            "asymmetry": draws["asymmetry"], "floor": floor * std.y_scale + std.y_center,
            "noise": np.exp(log_noise) * std.y_scale, "nu": float(fit.config.nu), "batch_size": draws["batch_size"]}


def nominal_log_lr_draws(fit, n_params: float, n_tokens: float, seed: int = 0,
                         batch_size: float | None = None) -> np.ndarray:
    """Posterior predictive draws of ln(optimal nominal LR) at (N, D).

    The target is a new cell; an effective-LR fit's draws go through the eff_lr map, one map
    draw per posterior draw.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    n_params, n_tokens : float
        The target scale.
    seed : int, default 0
        Seed of the target's new-cell random effects.
    batch_size : float, optional
        Tokens per step at the target.

    Returns
    -------
    numpy.ndarray
        ln of the optimal nominal LR, one value per posterior draw.

    Raises
    ------
    ValueError
        When the batch size does not fit the law, or the eff_lr map cannot be inverted at the target.
    """
    draws = fit_target_draws(fit, n_params, n_tokens, seed=seed, batch_size=batch_size)
    log_lr = draws["m"] + fit.std.x_center
    if fit.config.lr_kind == "effective":
        log_lr = fit.eff_map.to_nominal(log_lr, n_params, n_tokens)
    return log_lr


def posterior_scalars(posterior) -> dict:
    """The posterior's scalar variables (dims chain and draw only), as arrays by name.

    Parameters
    ----------
    posterior : xarray.DataTree or xarray.Dataset
        The posterior group of a fit.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    ds = posterior.to_dataset() if hasattr(posterior, "to_dataset") else posterior
    return {k: v.values for k, v in ds.data_vars.items() if set(v.dims) <= {"chain", "draw"}}


def expected_loss(x: float, draws: dict) -> float:
    """Posterior mean of the loss above the target's floor at standardized ln LR `x`.

    Parameters
    ----------
    x : float
        Standardized ln LR (ln LR minus the fit's ``x_center``).
    draws : dict
        The target's draws (from `target_draws`).

    Returns
    -------
    float
        Expected loss above the floor, in standardized loss units.
    """
    return float(np.mean(draws["width"] * valley_rise(x - draws["m"], draws["asymmetry"])))


def decide(draws: dict) -> float:
    """Standardized ln LR minimizing posterior expected loss.

    A grid over the draws' 0.1%-99.9% range of the optimum, then a bounded 1-D search about its
    best point. It sits below the median when the high-LR side of the valley is steeper.

    Parameters
    ----------
    draws : dict
        The target's draws (from `target_draws`).

    Returns
    -------
    float
        The decision, in standardized ln LR.
    """
    m = draws["m"]
    lo, hi = np.quantile(m, [0.001, 0.999])
    grid = np.linspace(lo, hi, 201)
    start = grid[np.argmin([expected_loss(x, draws) for x in grid])]
    step = (hi - lo) / 200
    res = minimize_scalar(lambda x: expected_loss(x, draws), bounds=(start - step, start + step), method="bounded",
                          options={"xatol": 1e-6})
    return float(res.x)


def predict(fit, n_params: float, n_tokens: float, prob: float = 0.9, seed: int = 0,
            batch_size: float | None = None) -> Prediction:
    """Credible interval, decision and curvature evidence for the optimal LR at (N, D).

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit to predict from.
    n_params : float
        Target model size N.
    n_tokens : float
        Target training tokens D.
    prob : float, default 0.9
        Probability of the headline interval, in (0, 1).
    seed : int, default 0
        Seed of the target's new-cell random effects; the same seed gives the same answer.
    batch_size : float, optional
        Tokens per step at the target (required when the law depends on batch size).

    Returns
    -------
    Prediction
        Everything as the nominal LR to set; an effective-LR fit also reports its answer in
        effective space under `Prediction.effective`.

    Raises
    ------
    ValueError
        When `prob` is outside (0, 1), `n_params` or `n_tokens` is not positive, the batch size
        does not fit the law, or an effective-LR fit's map cannot be inverted at the target.

    Examples
    --------
    >>> from scalefit import load_fit
    >>> from scalefit.fit.predict import predict
    >>> p = predict(load_fit("fit.nc"), n_params=1.3e8, n_tokens=4e8, prob=0.9)  # doctest: +SKIP
    >>> p.lr_median, (p.lr_low, p.lr_high), p.lr_decision  # doctest: +SKIP
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    if not (n_params > 0 and n_tokens > 0):
        raise ValueError("n_params and n_tokens must be > 0")
    config, std = fit.config, fit.std
    draws = fit_target_draws(fit, n_params, n_tokens, seed=seed, batch_size=batch_size)
    x_med = float(np.median(draws["m"]))
    x_dec = decide(draws)
    scale = std.y_scale  # expected losses back to loss units
    regret_dec = expected_loss(x_dec, draws) * scale
    penalty = (expected_loss(x_med, draws) - expected_loss(x_dec, draws)) * scale

    log_lr = draws["m"] + std.x_center  # in the fitted LR space
    log_dec = x_dec + std.x_center
    baseline_log = fit.baseline.predict_log_lr(n_params, n_tokens, draws["batch_size"])
    effective = {}
    if config.lr_kind == "effective":
        # Users set the nominal LR: map every draw back through its own draw of the eff_lr map.
        effective = {"eff_lr_median": float(np.exp(np.median(log_lr))),
                     "eff_intervals": {str(p): _eti(log_lr, p) for p in sorted({*DEFAULT_PROBS, prob})},
                     "map_identity": bool(fit.eff_map.identity),
                     "map_residual_sd": float(fit.eff_map.residual_sd)}
        log_lr = fit.eff_map.to_nominal(log_lr, n_params, n_tokens)
        log_dec = fit.eff_map.decide_nominal(draws, std.x_center, n_params, n_tokens)  # under map uncertainty
        baseline_log = float(np.median(fit.eff_map.to_nominal(np.full(len(log_lr), baseline_log), n_params, n_tokens)))

    intervals = {str(p): _eti(log_lr, p) for p in sorted({*DEFAULT_PROBS, prob})}
    post = posterior_scalars(fit.posterior)
    by_axis = {a: float(np.mean(post[f"law_curvature_{a}"] > 0)) for a in config.axes
               if f"law_curvature_{a}" in post}
    z_range = fit.z_range()
    return Prediction(
        n_params=float(n_params), n_tokens=float(n_tokens), prob=float(prob),
        lr_median=float(np.exp(np.median(log_lr))),
        lr_low=intervals[str(prob)][0], lr_high=intervals[str(prob)][1], intervals=intervals,
        lr_decision=float(np.exp(log_dec)),
        expected_loss_penalty_of_median=float(max(penalty, 0.0)),
        expected_regret_at_decision=float(regret_dec),
        p_curvature_positive=by_axis.get(config.axes[0]),
        p_curvature_positive_by_axis=by_axis,
        baseline_lr=float(np.exp(baseline_log)),
        lr_kind_fitted=config.lr_kind, lr_kind_reported="nominal",
        axis=config.axis, converged=fit.convergence.converged if fit.convergence else None,
        extrapolation={a: {"target_z": float(draws["z"][a]), "fitted_z_min": z_range[a][0],
                           "fitted_z_max": z_range[a][1]} for a in config.axes},
        effective=effective, batch_size=draws["batch_size"],
    )


def _eti(log_values: np.ndarray, p: float) -> list[float]:
    lo, hi = np.quantile(log_values, [(1 - p) / 2, (1 + p) / 2])
    return [float(np.exp(lo)), float(np.exp(hi))]
