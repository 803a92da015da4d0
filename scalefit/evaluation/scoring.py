"""Scores of held-out predictions of the optimal LR: the truth, its noise, regret and the pooling.

A held-out cell's truth is its own sweep's measured optimum (`vertex_optimum`): the seed-averaged
loss per LR, then the vertex of the parabola in ln LR through the best LR and its two neighbours.
That measurement is itself noisy, so a prediction of the *latent* optimum scored against it looks
overconfident even when it is calibrated. Two remedies, one per kind of method:

- posterior methods: simulate the held-out sweep from the posterior predictive at its own LR grid
  and seed counts, measure each simulated sweep the same way, and score the measured optimum
  against that predictive distribution (`predictive_measured_optima`, `posterior_scores`);
- point methods: bootstrap the held-out sweep for the sd of its measured vertex
  (`bootstrap_vertex_sd`) and widen the method's interval by it in quadrature (`widen_interval`,
  `truth_noise_scores`).

Regret (`regret`) is the loss above the sweep's best at a recommended LR, read off a local
quadratic through the nearest LRs. `ols_prediction` is the textbook t prediction interval through
the cell vertices. `score_table` pools rows so every held-out cell counts once, with cluster
bootstrap intervals (clusters = held-out cells).

Inputs are in ln LR; errors, widths and interval scores are reported in decades (log10 LR), as
in `scalefit.evaluation.calibrate`; regret is in the loss's units (nats for cross-entropy).
Everything here is NumPy: no model, no sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.model.valley import valley_rise

__all__ = ["ALPHA", "LEVELS", "DISTANCE_BINS", "CELL_KEYS", "POINT_KEYS",
           "Sweep", "vertex_optimum",
           "ValleyDraws", "simulate_sweeps", "predictive_measured_optima", "score_samples", "posterior_scores",
           "interval_score", "score_interval", "noise_floor", "bootstrap_vertex_sd", "widen_interval",
           "truth_noise_scores",
           "Regret", "regret", "score_regret",
           "OLSPrediction", "ols_prediction",
           "cluster_weights", "weighted_median", "cluster_bootstrap", "distance_bin", "score_table"]

ALPHA = 0.1  # interval-score level: the 90% interval
LEVELS = (0.5, 0.9)  # equal-tailed intervals whose coverage is scored
DISTANCE_BINS = ("inside", "<1", "1-2.3", ">2.3")  # e-folds beyond the fitted range; 2.3 e-folds ~ 10x
CELL_KEYS = ("dataset", "subset", "cell_label")  # one held-out cell (those present in the rows)
POINT_KEYS = ("dataset", "subset", "n_params", "n_tokens")  # one (N, D) point, over batch sizes
LOG10 = np.log(10.0)
_ASYM_EPS = 1e-6  # below this |k| the LINEX form cancels badly; its limit is the parabola


# --------------------------------------------------------------------------- the measured optimum


@dataclass(frozen=True)
class Sweep:
    """One cell's sweep: its distinct LRs, the seed-averaged loss at each, and the runs behind them.

    Build it with `Sweep.from_arrays` or `Sweep.from_frame`.

    Attributes
    ----------
    log_lr : numpy.ndarray
        Distinct ln LR, ascending.
    mean : numpy.ndarray
        Seed-averaged loss at each.
    counts : numpy.ndarray
        Runs at each.
    run_lr : numpy.ndarray
        Per run: the position of its LR in `log_lr`.
    run_loss : numpy.ndarray
        Per run: its loss.
    """

    log_lr: np.ndarray
    mean: np.ndarray
    counts: np.ndarray
    run_lr: np.ndarray
    run_loss: np.ndarray

    @classmethod
    def from_arrays(cls, log_lr, loss) -> Sweep:
        """A sweep from per-run ln LR and loss (several runs per LR are seeds).

        ln LR is rounded to 9 decimals before grouping, as `scalefit.evaluation.calibrate.sweep_optimum`
        does, so LRs that differ only by float noise are one LR.

        Parameters
        ----------
        log_lr, loss : array_like
            Per run; runs with a non-finite loss are dropped.

        Returns
        -------
        Sweep

        Raises
        ------
        ValueError
            When the arrays differ in length or no run has a finite loss.
        """
        x, y = np.asarray(log_lr, dtype=float).ravel(), np.asarray(loss, dtype=float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"log_lr and loss differ in length: {x.size} vs {y.size}")
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.any():
            raise ValueError("no run with a finite loss")
        grid, run_lr = np.unique(np.round(x[keep], 9), return_inverse=True)
        counts = np.bincount(run_lr, minlength=grid.size)
        mean = np.bincount(run_lr, weights=y[keep], minlength=grid.size) / counts
        return cls(log_lr=grid, mean=mean, counts=counts, run_lr=run_lr, run_loss=y[keep])

    @classmethod
    def from_frame(cls, runs: pd.DataFrame, col: str = "lr") -> Sweep:
        """A sweep from one cell's runs table rows: ok runs with a finite ``final_loss``.

        Parameters
        ----------
        runs : pandas.DataFrame
            One cell's runs (``status``, ``final_loss`` and the LR column).
        col : str, default "lr"
            The LR column (``eff_lr`` to measure in effective LR).

        Returns
        -------
        Sweep
        """
        ok = runs[runs["status"] == "ok"]
        return cls.from_arrays(np.log(ok[col].to_numpy(dtype=float)), ok["final_loss"].to_numpy(dtype=float))

    def optimum(self) -> tuple[float, bool]:
        """The measured optimum in ln LR and whether the sweep brackets it (see `vertex_optimum`).

        Returns
        -------
        tuple of (float, bool)
        """
        vertex, bracketed = vertex_optimum(self.log_lr, self.mean)
        return float(vertex), bool(bracketed)

    @property
    def has_repeats(self) -> bool:
        """Whether some LR has more than one run (seeds to measure the noise from)."""
        return bool((self.counts >= 2).any())


def vertex_optimum(log_lr, mean_loss) -> tuple[np.ndarray, np.ndarray]:
    """Measured optimum of seed-averaged sweeps: the 3-point parabola vertex around the best LR.

    The parabola in ln LR goes through the best LR and its nearest measured neighbour on each side
    (NaN losses are LRs without a run); its vertex is kept between those neighbours. A sweep whose
    best LR is at an edge is unbracketed: its optimum is the best LR. Vectorized over leading axes,
    so thousands of simulated sweeps are measured at once; on one sweep it equals
    `scalefit.evaluation.calibrate.sweep_optimum`.

    Parameters
    ----------
    log_lr : array_like
        ln LR, ascending along the last axis; shape (n_lr,) or broadcastable to `mean_loss`.
    mean_loss : array_like
        Seed-averaged loss, shape (..., n_lr).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        The optimum in ln LR, shape (...) (NaN where a sweep has no finite loss), and whether each
        sweep brackets it.

    Examples
    --------
    >>> import numpy as np
    >>> from scalefit.evaluation.scoring import vertex_optimum
    >>> x = np.log([1e-3, 2e-3, 4e-3, 8e-3])
    >>> loss = np.stack([(x - np.log(3e-3)) ** 2, (x - np.log(9e-3)) ** 2])
    >>> vertex, bracketed = vertex_optimum(x, loss)
    >>> round(float(np.exp(vertex[0])), 6), bracketed.tolist()
    (0.003, [True, False])
    """
    y = np.asarray(mean_loss, dtype=float)
    x = np.broadcast_to(np.asarray(log_lr, dtype=float), y.shape)
    n = y.shape[-1]
    finite = np.isfinite(y) & np.isfinite(x)
    best = np.argmin(np.where(finite, y, np.inf), axis=-1)[..., None]
    lo, hi = _neighbours(finite, best)
    bracketed = finite.any(axis=-1) & (lo[..., 0] >= 0) & (hi[..., 0] < n)
    pick = lambda a, i: np.take_along_axis(a, np.clip(i, 0, n - 1), axis=-1)[..., 0]  # noqa: E731
    x0, x1, x2 = pick(x, lo), pick(x, best), pick(x, hi)
    y0, y1, y2 = pick(y, lo), pick(y, best), pick(y, hi)
    d0, d2, e0, e2 = x0 - x1, x2 - x1, y0 - y1, y2 - y1
    curvature = e0 * d2 - e2 * d0  # the parabola's a, times a positive factor
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = -(e2 * d0**2 - e0 * d2**2) / (2.0 * curvature)
    vertex = np.where(bracketed & (curvature > 0), np.clip(x1 + shift, x0, x2), x1)
    vertex = np.where(finite.any(axis=-1), vertex, np.nan)
    return vertex, bracketed


def _neighbours(finite: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest measured LR below and above `best` (-1 / n where there is none)."""
    n = finite.shape[-1]
    idx = np.broadcast_to(np.arange(n), finite.shape)
    last_at_or_before = np.maximum.accumulate(np.where(finite, idx, -1), axis=-1)
    first_at_or_after = np.flip(np.minimum.accumulate(np.flip(np.where(finite, idx, n), -1), axis=-1), -1)
    below = np.take_along_axis(last_at_or_before, np.maximum(best - 1, 0), axis=-1)
    above = np.take_along_axis(first_at_or_after, np.minimum(best + 1, n - 1), axis=-1)
    return np.where(best == 0, -1, below), np.where(best == n - 1, n, above)


# --------------------------------------------------------------- noise-aware truth (posterior methods)


@dataclass(frozen=True)
class ValleyDraws:
    """Posterior-predictive draws of a held-out cell's valley, in ln LR and loss units.

    Run r at ln LR x has loss ``floor + width * valley_rise(x - optimum, asymmetry) + noise * e``
    with e standard Student-t (or Gaussian), as in the model (`scalefit.model.graph`); scalars
    broadcast against the draws.

    Attributes
    ----------
    optimum : numpy.ndarray
        The latent optimum m, ln LR.
    width : numpy.ndarray or float
        The width A: the mean loss rise one nat of LR off the optimum.
    noise : numpy.ndarray or float
        The noise scale sigma of one run (the Student-t scale, not its sd).
    floor : numpy.ndarray or float, default 0.0
        The floor L (it does not move the measured optimum).
    asymmetry : numpy.ndarray or float, optional
        The LINEX asymmetry k; None for the symmetric parabola.
    """

    optimum: np.ndarray
    width: np.ndarray | float
    noise: np.ndarray | float
    floor: np.ndarray | float = 0.0
    asymmetry: np.ndarray | float | None = None

    def __len__(self) -> int:
        return int(np.size(self.optimum))

    def mean_loss(self, log_lr) -> np.ndarray:
        """Each draw's noiseless loss at `log_lr`.

        Parameters
        ----------
        log_lr : array_like
            ln LR, shape (n_lr,).

        Returns
        -------
        numpy.ndarray
            Shape (n_draws, n_lr).
        """
        col = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (len(self),))[:, None]  # noqa: E731
        d = np.asarray(log_lr, dtype=float)[None, :] - col(self.optimum)
        return col(self.floor) + col(self.width) * _rise(d, None if self.asymmetry is None else col(self.asymmetry))


def _rise(d: np.ndarray, k) -> np.ndarray:
    """`valley_rise`, with the symmetric limit where |k| is too small for the LINEX form."""
    if k is None:
        return valley_rise(d)
    k = np.broadcast_to(k, d.shape)
    small = np.abs(k) < _ASYM_EPS
    return np.where(small, d**2, valley_rise(d, np.where(small, 1.0, k)))


def _noise(rng: np.random.Generator, nu: float | None, size) -> np.ndarray:
    """Standard noise of one run: Student-t with `nu` degrees of freedom, Gaussian for None/inf."""
    if nu is None or not np.isfinite(nu):
        return rng.standard_normal(size)
    return rng.standard_t(nu, size)


def simulate_sweeps(draws: ValleyDraws, log_lr, counts, nu: float | None = 4.0, seed=0,
                    per_draw: int = 1) -> np.ndarray:
    """Seed-averaged losses of sweeps simulated from each draw at the given LRs and seed counts.

    Parameters
    ----------
    draws : ValleyDraws
        The valley per draw.
    log_lr : array_like
        The sweep's distinct ln LR, shape (n_lr,).
    counts : array_like of int
        Runs (seeds) per LR, shape (n_lr,); 0 leaves the LR unmeasured (NaN).
    nu : float or None, default 4.0
        Student-t degrees of freedom of the noise (the model's default); None for Gaussian.
    seed : int or numpy.random.Generator, default 0
        Seed of the noise.
    per_draw : int, default 1
        Sweeps simulated per draw.

    Returns
    -------
    numpy.ndarray
        Shape (n_draws * per_draw, n_lr), draw-major.

    Raises
    ------
    ValueError
        When `counts` does not match `log_lr` or is negative.
    """
    x = np.asarray(log_lr, dtype=float)
    counts = np.asarray(counts, dtype=int)
    if counts.shape != x.shape or (counts < 0).any():
        raise ValueError(f"counts must be non-negative, one per LR; got {counts.tolist()} for {x.size} LRs")
    rng = np.random.default_rng(seed)
    mean = np.repeat(draws.mean_loss(x), per_draw, axis=0)
    sigma = np.repeat(np.broadcast_to(np.asarray(draws.noise, dtype=float), (len(draws),)), per_draw)[:, None]
    # one noise draw per seed, then averaged: a mean of t variables is not itself t
    e = _noise(rng, nu, (mean.shape[0], x.size, max(int(counts.max()), 1)))
    used = np.arange(e.shape[-1]) < counts[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(used, e, 0.0).sum(-1) / counts
    return np.where(counts > 0, mean + sigma * avg, np.nan)


def predictive_measured_optima(draws: ValleyDraws, sweep: Sweep, nu: float | None = 4.0, seed=0,
                               per_draw: int = 1, bracketed_only: bool = True) -> tuple[np.ndarray, float]:
    """The posterior-predictive distribution of the held-out sweep's *measured* optimum.

    Each draw's valley is swept at the held-out sweep's own LRs and seed counts and measured with
    `vertex_optimum`, so the distribution carries the measurement's noise and its grid bias (an
    asymmetric valley's 3-point vertex is not its optimum).

    Parameters
    ----------
    draws : ValleyDraws
        Posterior-predictive valley draws at the held-out cell.
    sweep : Sweep
        The held-out sweep (its grid and seed counts are used, not its losses).
    nu : float or None, default 4.0
        Student-t degrees of freedom of the noise; None for Gaussian.
    seed : int or numpy.random.Generator, default 0
        Seed of the simulated noise.
    per_draw : int, default 1
        Sweeps simulated per draw.
    bracketed_only : bool, default True
        Keep only simulated sweeps that bracket their optimum: unbracketed held-out cells are
        never scored, so the truth's distribution is the one given bracketing.

    Returns
    -------
    tuple of (numpy.ndarray, float)
        The simulated measured optima (ln LR), and the share of simulated sweeps that bracket.
    """
    sims = simulate_sweeps(draws, sweep.log_lr, sweep.counts, nu=nu, seed=seed, per_draw=per_draw)
    vertex, bracketed = vertex_optimum(sweep.log_lr, sims)
    share = float(bracketed.mean())
    return (vertex[bracketed] if bracketed_only else vertex), share


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
    out = {"median": med, "log10_err": (med - observed) / LOG10}
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
    >>> from scalefit.evaluation.scoring import Sweep, ValleyDraws, posterior_scores
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


# ------------------------------------------------------------------ truth noise (point methods)


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


def noise_floor(sweep: Sweep, n_local: int = 5) -> tuple[float, str]:
    """The sd of one run's loss, the unit regret is measured in.

    Where some LR has repeats it is the pooled seed sd, sqrt(sum of squared deviations from each
    LR's mean / sum of (runs - 1)): seeds measure the noise directly and need no valley shape.
    Without repeats it is the residual sd of a least-squares quadratic in ln LR through the
    `n_local` LRs nearest the best one, which also absorbs any misfit of the quadratic there
    (an overestimate on strongly asymmetric valleys).

    Parameters
    ----------
    sweep : Sweep
        The sweep.
    n_local : int, default 5
        LRs of the local fit (at least 4, to leave a residual degree of freedom).

    Returns
    -------
    tuple of (float, str)
        The sd and its source: "seeds", "local fit", or "none" (NaN) when neither is possible.
    """
    if sweep.has_repeats:
        dev = sweep.run_loss - sweep.mean[sweep.run_lr]
        dof = int((sweep.counts - 1).sum())
        return float(np.sqrt(np.sum(dev**2) / dof)), "seeds"
    window = _local_window(sweep.log_lr, sweep.log_lr[np.argmin(sweep.mean)], n_local)
    if window.size < 4:
        return float("nan"), "none"
    fitted = _quadratic_fit(sweep.log_lr[window], sweep.mean[window])
    resid = sweep.mean[window] - fitted
    return float(np.sqrt(np.sum(resid**2) / (window.size - 3))), "local fit"


def _local_window(log_lr: np.ndarray, at: float, n: int) -> np.ndarray:
    """Indices of the `n` LRs nearest `at`, ascending (ties go to the lower LR)."""
    order = np.argsort(np.abs(log_lr - at), kind="stable")
    return np.sort(order[:min(n, log_lr.size)])


def _quadratic_fit(x: np.ndarray, y: np.ndarray, at=None) -> np.ndarray:
    """Least-squares quadratic in x; its values at `at` (default: at x). Centred for conditioning."""
    c = x.mean()
    coef = np.polyfit(x - c, y, 2)
    return np.polyval(coef, (x if at is None else np.asarray(at, dtype=float)) - c)


def bootstrap_vertex_sd(sweep: Sweep, n_boot: int = 1000, seed=0, n_local: int = 5) -> tuple[float, str, float]:
    """The sd of a sweep's measured vertex, by bootstrapping the sweep.

    With repeats (some LR has several seeds): every LR's mean gets the average of as many
    deviations as it has runs, drawn from the pool of all within-LR deviations, each rescaled by
    sqrt(n / (n - 1)). Pooled, because resampling 2-3 seeds within one LR gives a two- or
    three-valued mean whose variance is biased low by (n - 1)/n; LRs with one run borrow the same
    pool. Without repeats: a residual bootstrap around a least-squares quadratic through the
    `n_local` LRs nearest the best (residuals rescaled by sqrt(n / (n - 3))); LRs outside that
    window keep their losses, since they rarely decide the best LR. Replicates that come out
    unbracketed are dropped, as unbracketed cells are never scored.

    Parameters
    ----------
    sweep : Sweep
        The held-out sweep.
    n_boot : int, default 1000
        Bootstrap replicates.
    seed : int or numpy.random.Generator, default 0
        Seed of the resampling.
    n_local : int, default 5
        LRs of the local quadratic when there are no repeats (at least 4).

    Returns
    -------
    tuple of (float, str, float)
        The sd in ln LR (NaN when it cannot be estimated), its source ("seeds", "local fit" or
        "none"), and the share of replicates that bracket.

    Examples
    --------
    >>> import numpy as np
    >>> from scalefit.evaluation.scoring import Sweep, bootstrap_vertex_sd
    >>> rng = np.random.default_rng(0)
    >>> x = np.repeat(np.log(1e-3 * 2.0 ** np.arange(6)), 3)
    >>> sweep = Sweep.from_arrays(x, 3 + 0.05 * (x - np.log(5e-3)) ** 2 + 0.01 * rng.standard_normal(x.size))
    >>> sd, source, _ = bootstrap_vertex_sd(sweep)
    >>> source, 0.0 < sd < 1.0
    ('seeds', True)
    """
    rng = np.random.default_rng(seed)
    if sweep.has_repeats:
        means, source = _seed_replicates(sweep, n_boot, rng), "seeds"
    else:
        means, source = _residual_replicates(sweep, n_boot, rng, n_local), "local fit"
    if means is None:
        return float("nan"), "none", float("nan")
    vertex, bracketed = vertex_optimum(sweep.log_lr, means)
    kept = vertex[bracketed]
    sd = float(np.std(kept, ddof=1)) if kept.size >= 2 else float("nan")
    return sd, source, float(bracketed.mean())


def _seed_replicates(sweep: Sweep, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap seed-averaged sweeps from the pooled, rescaled within-LR deviations."""
    n = sweep.counts[sweep.run_lr]
    repeated = n >= 2
    dev = (sweep.run_loss - sweep.mean[sweep.run_lr])[repeated] * np.sqrt(n[repeated] / (n[repeated] - 1))
    means = np.empty((n_boot, sweep.log_lr.size))
    for i, k in enumerate(sweep.counts):
        means[:, i] = sweep.mean[i] + rng.choice(dev, size=(n_boot, k)).mean(axis=1)
    return means


def _residual_replicates(sweep: Sweep, n_boot: int, rng: np.random.Generator, n_local: int) -> np.ndarray | None:
    """Bootstrap sweeps from the residuals of a local quadratic around the best LR."""
    window = _local_window(sweep.log_lr, sweep.log_lr[np.argmin(sweep.mean)], n_local)
    if window.size < 4:
        return None
    fitted = _quadratic_fit(sweep.log_lr[window], sweep.mean[window])
    resid = (sweep.mean[window] - fitted) * np.sqrt(window.size / (window.size - 3))
    means = np.tile(sweep.mean, (n_boot, 1))
    means[:, window] = fitted + rng.choice(resid, size=(n_boot, window.size))
    return means


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
        intervals, ``interval_score`` (decades) and the widened ``lo90``/``hi90`` (ln LR).

    Raises
    ------
    ValueError
        When the 1 - alpha interval is not given.
    """
    intervals = dict(intervals) if intervals else {p: (center, center) for p in LEVELS}
    if not any(np.isclose(p, 1 - alpha) for p in intervals):
        raise ValueError(f"no {1 - alpha:.0%} interval among {sorted(intervals)}")
    out = {"log10_err": (center - observed) / LOG10}
    for p, (lo, hi) in sorted(intervals.items()):
        wlo, whi = widen_interval(lo, hi, truth_sd, p, center=center)
        s = score_interval(wlo, whi, observed, alpha=1 - p)
        out[f"cover{_pct(p)}"] = bool(s["cover"])
        out[f"width{_pct(p)}_dec"] = float(s["width_dec"])
        if np.isclose(p, 1 - alpha):
            out["interval_score"] = float(s["interval_score"])
            out["lo90"], out["hi90"] = float(wlo), float(whi)
    return out


# ------------------------------------------------------------------------------------- regret


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
        Whether the LR lies inside the swept range (else the regret is not read off, NaN).
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
    >>> from scalefit.evaluation.scoring import Sweep, regret
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
    window = _local_window(sweep.log_lr, log_lr, n_local)
    at = float(_quadratic_fit(sweep.log_lr[window], sweep.mean[window], at=log_lr))
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


# ------------------------------------------------------------------------ OLS prediction interval


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
    >>> from scalefit.evaluation.scoring import ols_prediction
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


# ------------------------------------------------------------------------- weights and pooling


def _present(rows: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    found = [k for k in keys if k in rows]
    if not found:
        raise ValueError(f"none of the key columns {list(keys)} is in the rows")
    return found


def cluster_weights(rows: pd.DataFrame, cluster: Sequence[str] = CELL_KEYS, within: Sequence[str] = (),
                    equal: str | None = None) -> pd.Series:
    """Row weights under which every cluster (held-out cell) counts once within each group.

    A cell predicted by k prefixes gets 1/k per row. With `equal`, each of its levels (e.g. each
    dataset) then gets the same total weight within each group, so a dataset with many cells does
    not drown the rest.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per (held-out cell, prefix, method).
    cluster : sequence of str, default CELL_KEYS
        Columns naming a cluster (those present are used): `CELL_KEYS` counts each held-out cell
        once, `POINT_KEYS` each (N, D) point once over its batch sizes.
    within : sequence of str, default ()
        Groups in which the counting is done (e.g. ("method",)).
    equal : str, optional
        A column whose levels get equal total weight (e.g. "dataset").

    Returns
    -------
    pandas.Series
        Weights, aligned with `rows`; each group's weights sum to its number of clusters (to its
        number of `equal` levels when `equal` is set).

    Raises
    ------
    ValueError
        When no cluster column is present.

    Examples
    --------
    >>> import pandas as pd
    >>> from scalefit.evaluation.scoring import cluster_weights
    >>> rows = pd.DataFrame({"cell_label": ["a"] * 4 + ["b"]})
    >>> cluster_weights(rows).tolist()
    [0.25, 0.25, 0.25, 0.25, 1.0]
    """
    keys = [*within, *_present(rows, cluster)]
    codes = rows.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    w = pd.Series(1.0 / np.bincount(codes)[codes], index=rows.index)
    if equal is not None:
        w = w / w.groupby([rows[k] for k in [*within, equal]], dropna=False).transform("sum")
    return w


def weighted_median(values, weights) -> float:
    """The weighted median: where the cumulative weight reaches half (midpoint on an exact tie).

    Parameters
    ----------
    values, weights : array_like
        NaN values are dropped; weights must be non-negative.

    Returns
    -------
    float
        NaN when nothing has weight. Equal weights give `numpy.median`.
    """
    v, w = np.asarray(values, dtype=float).ravel(), np.asarray(weights, dtype=float).ravel()
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if v.size == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order]) / w.sum()
    i = int(np.searchsorted(cum, 0.5 - 1e-12))
    if np.isclose(cum[i], 0.5, rtol=0, atol=1e-12) and i + 1 < v.size:
        return float((v[i] + v[i + 1]) / 2.0)
    return float(v[i])


def cluster_bootstrap(values, weights, clusters, n_boot: int = 2000, level: float = 0.9, seed: int = 0,
                      strata=None) -> tuple[float, float]:
    """Percentile interval of a weighted mean, resampling whole clusters with replacement.

    Rows of one held-out cell share its sweep (its truth and its noise), so they are not
    independent; resampling them as rows understates the uncertainty (Cameron, Gelbach & Miller
    2008, REStat 90:414). With `strata`, clusters are resampled within each stratum (e.g. per
    dataset, whose share of the weight is then fixed by design).

    Parameters
    ----------
    values, weights : array_like
        Per row; rows with a NaN value are dropped.
    clusters : array_like
        Per row: its cluster label (pass one label per row for a row bootstrap).
    n_boot : int, default 2000
        Replicates.
    level : float, default 0.9
        The interval's probability.
    seed : int, default 0
        Seed of the resampling (the interval is deterministic given it).
    strata : array_like, optional
        Per row: its stratum; a cluster must lie in one stratum.

    Returns
    -------
    tuple of (float, float)
        The interval; NaN when nothing has weight.

    Examples
    --------
    >>> from scalefit.evaluation.scoring import cluster_bootstrap
    >>> lo, hi = cluster_bootstrap([0.0, 1.0, 1.0, 2.0], [1, 0.5, 0.5, 1], ["a", "b", "b", "c"])
    >>> lo <= 1.0 <= hi
    True
    """
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    if not keep.any():
        return float("nan"), float("nan")
    codes, labels = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)[keep]))
    sum_wv = np.bincount(codes, weights=w[keep] * v[keep], minlength=labels.size)
    sum_w = np.bincount(codes, weights=w[keep], minlength=labels.size)
    layer = np.zeros(labels.size, dtype=int)
    if strata is not None:
        layer[codes] = pd.factorize(pd.Series(np.asarray(strata, dtype=object)[keep]))[0]
    rng = np.random.default_rng(seed)
    n = labels.size
    counts = np.zeros(n_boot * n)
    for s in np.unique(layer):
        members = np.flatnonzero(layer == s)
        picks = members[rng.integers(0, members.size, size=(n_boot, members.size))]
        counts += np.bincount((np.arange(n_boot)[:, None] * n + picks).ravel(), minlength=n_boot * n)
    counts = counts.reshape(n_boot, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ sum_wv) / (counts @ sum_w)
    lo, hi = np.nanquantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def distance_bin(distance) -> np.ndarray:
    """The extrapolation-distance bin of each row: one of `DISTANCE_BINS`.

    "inside" is a distance of 0: to mean inside both fitted ranges (N and D), pass the joint
    distance (`scalefit.evaluation.calibrate.distance_efolds` with family "ND"); then "<1",
    "1-2.3" and ">2.3" e-folds beyond the fitted range (2.3 e-folds is a factor of 10).

    Parameters
    ----------
    distance : array_like
        E-folds beyond the fitted range (0 inside it).

    Returns
    -------
    numpy.ndarray of str
        "" where the distance is NaN.

    Examples
    --------
    >>> from scalefit.evaluation.scoring import distance_bin
    >>> distance_bin([0.0, 0.69, 1.39, 2.77]).tolist()
    ['inside', '<1', '1-2.3', '>2.3']
    """
    d = np.asarray(distance, dtype=float)
    conditions = [d <= 1e-9, d < 1.0, d < 2.3, d >= 2.3]
    return np.select(conditions, list(DISTANCE_BINS), default="")


def score_table(rows: pd.DataFrame, scores: Sequence[str], by: Sequence[str] = ("method",),
                cluster: Sequence[str] = CELL_KEYS, equal: str | None = None, n_boot: int = 2000,
                level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Pooled scores per group: weighted means (each held-out cell once), medians and cluster CIs.

    Per score, the rows where it is NaN are left out and the weights recomputed on the rest, so
    a cell with some unscored rows still counts once. Booleans (coverages) pool as shares.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per (held-out cell, prefix, method), with the `scores` columns (already
        restricted to the rows to score, e.g. bracketed cells).
    scores : sequence of str
        Score columns.
    by : sequence of str, default ("method",)
        Grouping columns (e.g. ("method", "family") or ("method", "distance_bin")).
    cluster : sequence of str, default CELL_KEYS
        The cluster columns (see `cluster_weights`); the bootstrap resamples these clusters.
    equal : str, optional
        A column whose levels weigh equally (e.g. "dataset"); the bootstrap then resamples
        clusters within each level.
    n_boot : int, default 2000
        Bootstrap replicates per score and group.
    level : float, default 0.9
        Probability of the bootstrap intervals.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Per group: the `by` columns, ``n_rows``, ``n_cells``, and per score its weighted mean
        (named as the score), ``<score>_lo``/``<score>_hi`` (the cluster-bootstrap interval) and
        ``<score>_median`` (weighted).

    Examples
    --------
    >>> import pandas as pd
    >>> from scalefit.evaluation.scoring import score_table
    >>> rows = pd.DataFrame({"method": "model", "cell_label": ["a", "a", "b"], "cover90": [True, True, False]})
    >>> float(score_table(rows, ["cover90"])["cover90"].iloc[0])
    0.5
    """
    keys = _present(rows, cluster)
    out = []
    groups = rows.groupby(list(by), sort=False, dropna=False) if by else [((), rows)]
    for key, g in groups:
        cells = g[keys].astype(str).agg("|".join, axis=1)
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        rec |= {"n_rows": int(len(g)), "n_cells": int(cells.nunique())}
        for score in scores:
            v = g[score].astype(float)
            sub = g[v.notna()]
            if sub.empty:
                rec |= {score: np.nan, f"{score}_lo": np.nan, f"{score}_hi": np.nan, f"{score}_median": np.nan}
                continue
            w = cluster_weights(sub, keys, equal=equal).to_numpy()
            x = v[v.notna()].to_numpy()
            lo, hi = cluster_bootstrap(x, w, cells[v.notna()].to_numpy(), n_boot=n_boot, level=level, seed=seed,
                                       strata=None if equal is None else sub[equal].to_numpy())
            rec |= {score: float(np.average(x, weights=w)), f"{score}_lo": lo, f"{score}_hi": hi,
                    f"{score}_median": weighted_median(x, w)}
        out.append(rec)
    return pd.DataFrame(out)
