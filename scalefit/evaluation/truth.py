"""The truth of a held-out cell: its sweep's measured optimum, and how noisy that measurement is.

The measured optimum (`vertex_optimum`) is the seed-averaged loss per LR, then the vertex of the
parabola in ln LR through the best LR and its two neighbours. It is itself noisy, so a prediction
of the *latent* optimum scored against it looks overconfident even when it is calibrated:

- for posterior methods, `predictive_measured_optima` simulates the held-out sweep from the
  posterior predictive at its own LR grid and seed counts and measures each simulated sweep the
  same way;
- for point methods, `bootstrap_vertex_sd` bootstraps the held-out sweep for the sd of its
  measured vertex.

Inputs are in ln LR. NumPy only: no model, no sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.model.valley import valley_rise

__all__ = ["rise", "Sweep", "vertex_optimum", "ValleyDraws", "simulate_sweeps", "predictive_measured_optima",
           "noise_floor", "bootstrap_vertex_sd", "local_window", "local_quadratic"]

_ASYM_EPS = 1e-6  # below this |k| the LINEX form cancels badly; its limit is the parabola


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
    >>> from scalefit.evaluation.truth import vertex_optimum
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
    x0, x1, x2 = (_at(x, i) for i in (lo, best, hi))
    y0, y1, y2 = (_at(y, i) for i in (lo, best, hi))
    d0, d2, e0, e2 = x0 - x1, x2 - x1, y0 - y1, y2 - y1
    curvature = e0 * d2 - e2 * d0  # the parabola's a, times a positive factor
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = -(e2 * d0**2 - e0 * d2**2) / (2.0 * curvature)
    vertex = np.where(bracketed & (curvature > 0), np.clip(x1 + shift, x0, x2), x1)
    vertex = np.where(finite.any(axis=-1), vertex, np.nan)
    return vertex, bracketed


def _at(a: np.ndarray, i: np.ndarray) -> np.ndarray:
    """a[..., i] per sweep; out-of-range indices (no neighbour) read the edge, masked later."""
    return np.take_along_axis(a, np.clip(i, 0, a.shape[-1] - 1), axis=-1)[..., 0]


def _neighbours(finite: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest measured LR below and above `best` (-1 / n where there is none)."""
    n = finite.shape[-1]
    idx = np.broadcast_to(np.arange(n), finite.shape)
    last_at_or_before = np.maximum.accumulate(np.where(finite, idx, -1), axis=-1)
    first_at_or_after = np.flip(np.minimum.accumulate(np.flip(np.where(finite, idx, n), -1), axis=-1), -1)
    below = np.take_along_axis(last_at_or_before, np.maximum(best - 1, 0), axis=-1)
    above = np.take_along_axis(first_at_or_after, np.minimum(best + 1, n - 1), axis=-1)
    return np.where(best == 0, -1, below), np.where(best == n - 1, n, above)


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
        d = np.asarray(log_lr, dtype=float)[None, :] - self._column(self.optimum)
        k = None if self.asymmetry is None else self._column(self.asymmetry)
        return self._column(self.floor) + self._column(self.width) * rise(d, k)

    def _column(self, value) -> np.ndarray:
        """A per-draw value (or a shared scalar) as a column, shape (n_draws, 1)."""
        return np.broadcast_to(np.asarray(value, dtype=float), (len(self),))[:, None]


def rise(d, k) -> np.ndarray:
    """The model's valley rise in NumPy, with the symmetric limit where |k| is too small for LINEX.

    Parameters
    ----------
    d : array_like
        Distance from the optimum, nats of LR.
    k : float, array_like or None
        Asymmetry (k > 0: the high-LR side is steeper); None or |k| < 1e-6 is the parabola.

    Returns
    -------
    numpy.ndarray
        `scalefit.model.valley.valley_rise` of `d`, finite for every k.
    """
    d = np.asarray(d, dtype=float)
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
    window = local_window(sweep.log_lr, sweep.log_lr[np.argmin(sweep.mean)], n_local)
    if window.size < 4:
        return float("nan"), "none"
    fitted = local_quadratic(sweep.log_lr[window], sweep.mean[window])
    resid = sweep.mean[window] - fitted
    return float(np.sqrt(np.sum(resid**2) / (window.size - 3))), "local fit"


def local_window(log_lr: np.ndarray, at: float, n: int) -> np.ndarray:
    """Indices of the `n` LRs nearest `at`, ascending (ties go to the lower LR)."""
    order = np.argsort(np.abs(log_lr - at), kind="stable")
    return np.sort(order[:min(n, log_lr.size)])


def local_quadratic(x: np.ndarray, y: np.ndarray, at=None) -> np.ndarray:
    """Least-squares quadratic in x; its values at `at` (default: at x). Both axes are centred:
    a loss of ~3 rising by ~0.01 otherwise loses digits of the rise."""
    c, level = x.mean(), y.mean()
    coef = np.polyfit(x - c, y - level, 2)
    return level + np.polyval(coef, (x if at is None else np.asarray(at, dtype=float)) - c)


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
    >>> from scalefit.evaluation.truth import Sweep, bootstrap_vertex_sd
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
    window = local_window(sweep.log_lr, sweep.log_lr[np.argmin(sweep.mean)], n_local)
    if window.size < 4:
        return None
    fitted = local_quadratic(sweep.log_lr[window], sweep.mean[window])
    resid = (sweep.mean[window] - fitted) * np.sqrt(window.size / (window.size - 3))
    means = np.tile(sweep.mean, (n_boot, 1))
    means[:, window] = fitted + rng.choice(resid, size=(n_boot, window.size))
    return means
