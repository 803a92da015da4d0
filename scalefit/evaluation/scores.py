"""Scores of held-out predictions: coverage, PIT and interval score against the measured optimum
(naive) or its predictive distribution (noise-aware), regret at a recommended LR, and the OLS t
prediction interval through the cell vertices (the textbook competitor).

Errors, widths and interval scores are in decades (log10 LR); regret is in the loss's units (nats
for cross-entropy). The interval score is Gneiting & Raftery's (2007, JASA 102:359).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scalefit.evaluation.truth import Sweep, ValleyDraws, local_window, local_quadratic, noise_floor, predictive_measured_optima

__all__ = ["ALPHA", "LEVELS", "score_samples", "posterior_scores", "interval_score", "score_interval",
           "widen_interval", "truth_noise_scores", "Regret", "regret", "score_regret", "OLSPrediction",
           "ols_prediction"]

ALPHA = 0.1  # interval-score level: the 90% interval


LEVELS = (0.5, 0.9)  # equal-tailed intervals whose coverage is scored


LOG10 = np.log(10.0)


def score_samples(samples, observed: float, levels: Sequence[float] = LEVELS, alpha: float = ALPHA,
                  seed=0) -> dict:
    """Scores of a predictive distribution, given by samples in ln LR, against one observed value.

    Parameters
    ----------
    samples : array_like
        Predictive samples (ln LR); non-finite ones are dropped.
    observed : float
        The observed value (ln LR).
    levels : sequence of float, default LEVELS
        Probabilities of the equal-tailed intervals whose coverage and width are scored.
    alpha : float, default ALPHA
        Level of the interval score (the 1 - alpha interval).
    seed : int or numpy.random.Generator, default 0
        Seed of the PIT's tie-breaking.

    Returns
    -------
    dict
        ``median`` (ln LR), ``log10_err`` (median minus observed, decades), ``cover50``/``cover90``
        and ``width50_dec``/``width90_dec`` per level (named by its percentage), ``interval_score``
        (decades, Gneiting & Raftery 2007) and ``pit``; NaN when there are no samples.
    """
    s = np.asarray(samples, dtype=float).ravel()
    s = s[np.isfinite(s)]
    probs = sorted(set(levels) | {1.0 - alpha})
    if s.size == 0 or not np.isfinite(observed):
        keys = [f"cover{_pct(p)}" for p in levels] + [f"width{_pct(p)}_dec" for p in levels]
        return dict.fromkeys(["median", "log10_err", "interval_score", "pit", *keys], np.nan)
    quant = {p: np.quantile(s, [(1 - p) / 2, (1 + p) / 2]) for p in probs}
    med = float(np.median(s))
    out = {"median": med, "log10_err": float((med - observed) / LOG10)}
    for p in levels:
        lo, hi = quant[p]
        out[f"cover{_pct(p)}"] = bool(lo <= observed <= hi)
        out[f"width{_pct(p)}_dec"] = float((hi - lo) / LOG10)
    lo, hi = quant[1.0 - alpha]
    out["interval_score"] = float(interval_score(lo / LOG10, hi / LOG10, observed / LOG10, alpha))
    out["pit"] = _pit(s, observed, np.random.default_rng(seed))
    return out


def _pct(p: float) -> str:
    return f"{100 * p:.0f}"


def _pit(samples: np.ndarray, observed: float, rng: np.random.Generator) -> float:
    """Randomized PIT: F(y-) + V (F(y) - F(y-)), V uniform, so ties do not pile up at one value
    (Czado, Gneiting & Held 2009, Biometrics 65:1254)."""
    below = np.mean(samples < observed)
    tied = np.mean(samples == observed)
    return float(below + rng.uniform() * tied)


def posterior_scores(draws: ValleyDraws, sweep: Sweep, nu: float | None = 4.0, seed=0, per_draw: int = 1,
                     levels: Sequence[float] = LEVELS, alpha: float = ALPHA) -> dict:
    """A posterior method's scores at one held-out cell, noise-aware and naive side by side.

    Noise-aware: the measured optimum against the predictive distribution of the measured optimum
    (`predictive_measured_optima`). Naive: the same measured optimum against the latent-optimum
    draws, which ignores that the truth is measured from a noisy sweep.

    Parameters
    ----------
    draws : ValleyDraws
        Posterior-predictive valley draws at the held-out cell (ln LR and loss units).
    sweep : Sweep
        The held-out sweep.
    nu : float or None, default 4.0
        Student-t degrees of freedom of the noise; None for Gaussian.
    seed : int or numpy.random.Generator, default 0
        Seed of the simulation and the PITs.
    per_draw : int, default 1
        Simulated sweeps per draw.
    levels : sequence of float, default LEVELS
        Interval probabilities scored.
    alpha : float, default ALPHA
        Level of the interval score.

    Returns
    -------
    dict
        ``truth`` (the measured optimum, ln LR), ``bracketed``, ``p_bracketed`` (share of simulated
        sweeps that bracket), then the `score_samples` keys prefixed ``aware_`` and ``naive_``.

    Examples
    --------
    >>> import numpy as np
    >>> from scalefit.evaluation.scores import posterior_scores
    >>> from scalefit.evaluation.truth import Sweep, ValleyDraws
    >>> x = np.log(1e-3 * 2.0 ** np.arange(6))
    >>> sweep = Sweep.from_arrays(np.repeat(x, 2), 3.0 + 0.05 * (np.repeat(x, 2) - np.log(5e-3)) ** 2)
    >>> rng = np.random.default_rng(0)
    >>> draws = ValleyDraws(optimum=np.log(5e-3) + 0.1 * rng.standard_normal(1000), width=0.05, noise=0.005)
    >>> s = posterior_scores(draws, sweep)
    >>> s["aware_width90_dec"] > s["naive_width90_dec"]
    True
    """
    rng = np.random.default_rng(seed)
    truth, bracketed = sweep.optimum()
    sims, share = predictive_measured_optima(draws, sweep, nu=nu, seed=rng, per_draw=per_draw)
    aware = score_samples(sims, truth, levels, alpha, seed=rng)
    naive = score_samples(draws.optimum, truth, levels, alpha, seed=rng)
    return ({"truth": truth, "bracketed": bracketed, "p_bracketed": share}
            | {f"aware_{k}": v for k, v in aware.items()} | {f"naive_{k}": v for k, v in naive.items()})


def interval_score(lo, hi, truth, alpha: float = ALPHA):
    """Interval score of Gneiting & Raftery (2007, JASA 102:359): width plus 2/alpha times the miss.

    Parameters
    ----------
    lo, hi : array_like
        The interval's ends.
    truth : array_like
        The value it should contain.
    alpha : float, default ALPHA
        1 minus the interval's probability.

    Returns
    -------
    numpy.ndarray or float
        In the units of the arguments; lower is better.
    """
    lo, hi, truth = (np.asarray(v, dtype=float) for v in (lo, hi, truth))
    return (hi - lo) + (2.0 / alpha) * (np.maximum(lo - truth, 0.0) + np.maximum(truth - hi, 0.0))


def score_interval(lo, hi, truth, alpha: float = ALPHA) -> dict:
    """Coverage, width and interval score of intervals in ln LR (vectorized).

    Parameters
    ----------
    lo, hi : array_like
        The interval's ends, ln LR.
    truth : array_like
        The measured optima, ln LR.
    alpha : float, default ALPHA
        1 minus the interval's probability (sets the interval score's miss penalty).

    Returns
    -------
    dict
        ``cover`` (bool; False where an end is NaN), ``width_dec`` and ``interval_score``
        (decades; NaN where an end is NaN).
    """
    lo, hi, truth = (np.asarray(v, dtype=float) for v in (lo, hi, truth))
    return {"cover": (lo <= truth) & (truth <= hi), "width_dec": (hi - lo) / LOG10,
            "interval_score": interval_score(lo / LOG10, hi / LOG10, truth / LOG10, alpha)}


def widen_interval(lo, hi, truth_sd, level: float = 0.9, center=None) -> tuple[np.ndarray, np.ndarray]:
    """Widen a predictive interval by the truth's own noise, in quadrature on each side.

    Each half-width h becomes sqrt(h^2 + (z sd)^2), z the standard normal quantile of the level:
    exact for Gaussian prediction and truth errors, an approximation otherwise. Measured from
    `center`, so an asymmetric interval stays asymmetric. A point prediction (lo = hi) becomes
    center +- z sd.

    Parameters
    ----------
    lo, hi : array_like
        The method's interval, ln LR.
    truth_sd : array_like
        The sd of the measured truth (`bootstrap_vertex_sd`), ln LR.
    level : float, default 0.9
        The interval's probability.
    center : array_like, optional
        The prediction's centre (default: the interval's midpoint).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        The widened interval; NaN where `truth_sd` is NaN.
    """
    lo, hi, sd = (np.asarray(v, dtype=float) for v in (lo, hi, truth_sd))
    c = (lo + hi) / 2.0 if center is None else np.asarray(center, dtype=float)
    z = stats.norm.ppf(0.5 + level / 2.0)
    return c - np.hypot(c - lo, z * sd), c + np.hypot(hi - c, z * sd)


def truth_noise_scores(observed: float, truth_sd: float, center: float,
                       intervals: Mapping[float, tuple[float, float]] | None = None, alpha: float = ALPHA) -> dict:
    """A point method's scores at one held-out cell with its intervals widened by the truth's noise.

    Parameters
    ----------
    observed : float
        The measured optimum, ln LR.
    truth_sd : float
        The sd of the measured optimum (`bootstrap_vertex_sd`), ln LR.
    center : float
        The method's prediction, ln LR.
    intervals : mapping of float to (float, float), optional
        The method's intervals by probability (e.g. {0.5: (lo, hi), 0.9: (lo, hi)}, from
        `OLSPrediction.interval` or bootstrap quantiles); None for a bare point, whose intervals
        are then the truth's noise alone, at `LEVELS`.
    alpha : float, default ALPHA
        Level of the interval score; the 1 - alpha interval must be among `intervals`.

    Returns
    -------
    dict
        ``log10_err``, ``cover50``/``cover90``, ``width50_dec``/``width90_dec`` of the widened
        intervals, ``interval_score`` (decades) and the widened ``lo90``/``hi90`` (ln LR);
        coverages are NaN when `truth_sd` is.

    Raises
    ------
    ValueError
        When the 1 - alpha interval is not given.
    """
    intervals = dict(intervals) if intervals else {p: (center, center) for p in LEVELS}
    if not any(np.isclose(p, 1 - alpha) for p in intervals):
        raise ValueError(f"no {1 - alpha:.0%} interval among {sorted(intervals)}")
    out = {"log10_err": float((center - observed) / LOG10)}
    for p, (lo, hi) in sorted(intervals.items()):
        wlo, whi = widen_interval(lo, hi, truth_sd, p, center=center)
        s = score_interval(wlo, whi, observed, alpha=1 - p)
        known = bool(np.isfinite(wlo) and np.isfinite(whi))  # a NaN truth sd: no interval, no coverage
        out[f"cover{_pct(p)}"] = bool(s["cover"]) if known else float("nan")
        out[f"width{_pct(p)}_dec"] = float(s["width_dec"])
        if np.isclose(p, 1 - alpha):
            out["interval_score"] = float(s["interval_score"])
            out["lo90"], out["hi90"] = float(wlo), float(whi)
    return out


@dataclass(frozen=True)
class Regret:
    """The loss given up at a recommended LR, relative to the sweep's best.

    Attributes
    ----------
    nats : float
        Loss above the best seed-averaged loss of the sweep, clipped at 0 (the loss's units:
        nats for cross-entropy); NaN outside the swept range.
    noise_units : float
        `nats` over `noise_sd`.
    noise_sd : float
        The sweep's noise floor (`noise_floor`).
    noise_source : str
        "seeds", "local fit" or "none".
    inside : bool
        Whether the LR lies inside the swept range of a sweep of at least 3 LRs (else the regret
        is not read off: NaN).
    """

    nats: float
    noise_units: float
    noise_sd: float
    noise_source: str
    inside: bool


def regret(sweep: Sweep, log_lr: float, n_local: int = 3, n_noise: int = 5) -> Regret:
    """Regret of setting `log_lr` on the held-out cell, read off its sweep.

    The loss at `log_lr` is a least-squares quadratic in ln LR through the `n_local` nearest LRs
    of the seed-averaged sweep (two either side when it falls between grid points): linear
    interpolation lies on the chord of a convex valley and overstates the loss between grid
    points. The reference is the sweep's best seed-averaged loss, what running the sweep would
    have given. Outside the swept range nothing is read off.

    Parameters
    ----------
    sweep : Sweep
        The held-out sweep.
    log_lr : float
        The recommended LR, ln.
    n_local : int, default 4
        LRs of the local quadratic, 3 to 5.
    n_noise : int, default 5
        LRs of the local fit of `noise_floor` when the sweep has no repeats.

    Returns
    -------
    Regret

    Raises
    ------
    ValueError
        When `n_local` is not 3 to 5.

    Examples
    --------
    >>> import numpy as np
    >>> from scalefit.evaluation.scores import regret
    >>> from scalefit.evaluation.truth import Sweep
    >>> x = np.log(1e-3 * 2.0 ** np.arange(6))
    >>> sweep = Sweep.from_arrays(x, 3.0 + 0.05 * (x - np.log(4e-3)) ** 2)
    >>> r = regret(sweep, np.log(6e-3))  # 4e-3 is swept: the rise is 0.05 ln(1.5)^2
    >>> round(r.nats, 6), round(float(0.05 * np.log(1.5) ** 2), 6), r.inside
    (0.00822, 0.00822, True)
    """
    if not 3 <= n_local <= 5:
        raise ValueError(f"n_local must be 3 to 5, got {n_local}")
    sd, source = noise_floor(sweep, n_noise)
    inside = bool(sweep.log_lr.size >= 3 and np.isfinite(log_lr)
                  and sweep.log_lr[0] - 1e-9 <= log_lr <= sweep.log_lr[-1] + 1e-9)
    if not inside:
        return Regret(float("nan"), float("nan"), sd, source, False)
    window = local_window(sweep.log_lr, log_lr, n_local)
    at = float(local_quadratic(sweep.log_lr[window], sweep.mean[window], at=log_lr))
    nats = max(at - float(sweep.mean.min()), 0.0)
    return Regret(nats, nats / sd if sd > 0 else float("nan"), sd, source, True)


def score_regret(predicted, realized: float, noise_sd: float = float("nan"), level: float = 0.9,
                 seed=0) -> dict:
    """A method's predicted regret against the regret its recommendation realized on the sweep.

    Parameters
    ----------
    predicted : float or array_like
        The predicted regret (nats): a number, or draws of it.
    realized : float
        `Regret.nats` at the same LR.
    noise_sd : float, optional
        The sweep's noise floor, to state the error in noise units.
    level : float, default 0.9
        Probability of the interval scored when `predicted` is draws.
    seed : int or numpy.random.Generator, default 0
        Seed of the PIT's tie-breaking.

    Returns
    -------
    dict
        ``predicted`` (the mean of the draws), ``error`` (predicted minus realized, nats),
        ``error_noise_units``; with draws also ``cover`` (of the equal-tailed interval) and ``pit``.
        NaN where the realized regret is NaN.
    """
    p = np.asarray(predicted, dtype=float).ravel()
    p = p[np.isfinite(p)]
    mean = float(p.mean()) if p.size else float("nan")
    err = mean - realized
    out = {"predicted": mean, "error": err, "error_noise_units": err / noise_sd if noise_sd > 0 else float("nan")}
    if p.size > 1:
        lo, hi = np.quantile(p, [(1 - level) / 2, (1 + level) / 2])
        ok = np.isfinite(realized)
        out["cover"] = bool(lo <= realized <= hi) if ok else float("nan")
        out["pit"] = _pit(p, realized, np.random.default_rng(seed)) if ok else float("nan")
    return out


@dataclass(frozen=True)
class OLSPrediction:
    """The OLS prediction at a target through the cell vertices, and its t prediction interval.

    Attributes
    ----------
    center : float
        x0 b, the least-squares prediction (ln LR).
    scale : float
        s sqrt(1 + x0 (X'X)^-1 x0'), the prediction's standard error.
    df : int
        n - p, the t distribution's degrees of freedom.
    reason : str
        Why there is no interval ("" when there is one).
    """

    center: float
    scale: float
    df: int
    reason: str = ""

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """The equal-tailed prediction interval center +- t_{df, (1 + level)/2} scale.

        Parameters
        ----------
        level : float, default 0.9
            Its probability.

        Returns
        -------
        tuple of (float, float)
            NaN when `reason` is set.
        """
        if self.reason:
            return float("nan"), float("nan")
        half = float(stats.t.ppf(0.5 + level / 2.0, self.df)) * self.scale
        return self.center - half, self.center + half


def ols_prediction(X, y, x0) -> OLSPrediction:
    """The textbook OLS prediction interval at a target row (the two-stage fit's own interval).

    y_hat +- t_{n-p, 1-alpha/2} s sqrt(1 + x0 (X'X)^-1 x0'), s^2 = SSR / (n - p): the interval
    for a new observation, here the held-out cell's vertex, given Gaussian errors of constant
    variance about a correct linear law.

    Parameters
    ----------
    X : array_like
        Design, shape (n, p), the intercept column included (e.g. [1, ln N] or [1, ln N, ln D]).
    y : array_like
        The prefix cells' vertices (ln LR), shape (n,).
    x0 : array_like
        The target's row, shape (p,).

    Returns
    -------
    OLSPrediction
        With NaNs and a `reason` when n <= p or the design is rank-deficient.

    Raises
    ------
    ValueError
        When the shapes do not agree.

    Examples
    --------
    >>> from scalefit.evaluation.scores import ols_prediction
    >>> pred = ols_prediction([[1, 0], [1, 1], [1, 2]], [0.0, 1.0, 3.0], [1, 3])
    >>> round(pred.center, 4), pred.df, [round(v, 3) for v in pred.interval(0.9)]
    (4.3333, 1, [-0.373, 9.039])
    """
    X, y, x0 = np.atleast_2d(np.asarray(X, dtype=float)), np.asarray(y, dtype=float), np.asarray(x0, dtype=float)
    n, p = X.shape
    if y.shape != (n,) or x0.shape != (p,):
        raise ValueError(f"shapes do not agree: X {X.shape}, y {y.shape}, x0 {x0.shape}")
    if n <= p:
        return OLSPrediction(float("nan"), float("nan"), n - p, f"n <= p ({n} cells, {p} coefficients)")
    if np.linalg.matrix_rank(X) < p:
        return OLSPrediction(float("nan"), float("nan"), n - p, "rank-deficient design")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid) / (n - p)
    leverage = float(x0 @ np.linalg.solve(X.T @ X, x0))
    return OLSPrediction(float(x0 @ coef), float(np.sqrt(s2 * (1.0 + leverage))), n - p)
