"""Rank-normalized split r_hat and bulk / tail ESS for many parameters at once.

The formulas are those of Vehtari, Gelman, Simpson, Carpenter & Burkner (2021, Bayesian
Analysis 16:667), as ArviZ computes them, vectorized over parameters: ArviZ loops over them in
Python, which for a model with a hundred-odd scalars takes a sizeable part of a second, and the
sampler's convergence check runs at every checkpoint, so it must cost milliseconds. Arrays are
(parameter, chain, draw).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.fft import irfft, next_fast_len, rfft

__all__ = ["rhat", "ess_bulk", "ess_tail", "stack_parameters", "TAIL_PROB"]

TAIL_PROB = 0.05
"""Tail ESS is taken at this quantile and its complement: the ends of a 90% interval."""


def split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last half as two chains (the middle draw of an odd count dropped).

    Parameters
    ----------
    x : numpy.ndarray
        Draws, (parameter, chain, draw).

    Returns
    -------
    numpy.ndarray
        (parameter, 2 chain, draw // 2).
    """
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=1)


def z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalize each parameter's draws over all chains (Blom's offset 3/8).

    Ties get distinct ranks: posterior draws are continuous (ArviZ averages tied ranks, at a
    multiple of the cost).

    Parameters
    ----------
    x : numpy.ndarray
        Draws, (parameter, chain, draw).

    Returns
    -------
    numpy.ndarray
        Normal scores of the ranks, same shape.
    """
    k, c, n = x.shape
    order = np.argsort(x.reshape(k, c * n), axis=1)
    ranks = np.empty(order.shape)
    np.put_along_axis(ranks, order, np.arange(1.0, c * n + 1.0)[None, :], axis=1)
    return ndtri((ranks - 0.375) / (c * n + 0.25)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    between = n * np.var(x.mean(axis=2), axis=1, ddof=1)
    within = np.var(x, axis=2, ddof=1).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def rhat(x: np.ndarray) -> np.ndarray:
    """Rank-normalized split r_hat: the larger of the bulk and the folded (tail) version.

    Parameters
    ----------
    x : array_like
        Draws, (parameter, chain, draw).

    Returns
    -------
    numpy.ndarray
        r_hat per parameter.
    """
    s = split_chains(np.asarray(x, dtype=float))
    folded = np.abs(s - np.median(s.reshape(s.shape[0], -1), axis=1)[:, None, None])
    return np.maximum(_rhat(z_scale(s)), _rhat(z_scale(folded)))


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS from the chains' autocovariances with Geyer's initial positive and monotone sequences."""
    k, c, n = x.shape
    centred = x - x.mean(axis=2, keepdims=True)
    m = next_fast_len(2 * n)
    f = rfft(centred, n=m, axis=2)
    acov = irfft(f * np.conj(f), n=m, axis=2)[..., :n] / n
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + (np.var(x.mean(axis=2), axis=1, ddof=1) if c > 1 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0
    n_pairs = max((n - 2) // 2, 1)
    pairs = rho[:, 0:2 * n_pairs:2] + rho[:, 1:2 * n_pairs:2]
    negative = pairs[:, 1:] < 0
    first_negative = np.where(negative.any(axis=1), negative.argmax(axis=1) + 1, n_pairs)
    kept = np.arange(n_pairs)[None, :] < first_negative[:, None]
    monotone = np.minimum.accumulate(pairs, axis=1)
    # the even autocorrelation of the first negative pair, when positive (ArviZ's "improvement")
    extra = np.where(first_negative < n_pairs,
                     np.maximum(rho[np.arange(k), np.minimum(2 * first_negative, n - 1)], 0.0), 0.0)
    tau = -1.0 + 2.0 * np.sum(np.where(kept, monotone, 0.0), axis=1) + extra
    size = c * n
    ess = size / np.maximum(tau, 1.0 / np.log10(size))
    constant = np.ptp(x.reshape(k, -1), axis=1) < np.finfo(float).resolution
    return np.where(constant, float(size), np.where(np.isfinite(rho).all(axis=1), ess, np.nan))


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: ESS of the rank-normalized split chains.

    Parameters
    ----------
    x : array_like
        Draws, (parameter, chain, draw).

    Returns
    -------
    numpy.ndarray
        Bulk ESS per parameter.
    """
    return _ess(z_scale(split_chains(np.asarray(x, dtype=float))))


def ess_tail(x: np.ndarray, prob: float = TAIL_PROB) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the `prob` and 1 - `prob` quantiles.

    Parameters
    ----------
    x : array_like
        Draws, (parameter, chain, draw).
    prob : float, default TAIL_PROB
        The lower quantile.

    Returns
    -------
    numpy.ndarray
        Tail ESS per parameter.
    """
    x = np.asarray(x, dtype=float)
    flat = x.reshape(x.shape[0], -1)
    out = []
    for p in (prob, 1.0 - prob):
        q = np.quantile(flat, p, axis=1)
        out.append(_ess(split_chains((x <= q[:, None, None]).astype(float))))
    return np.minimum(*out)


def stack_parameters(posterior) -> np.ndarray:
    """Every scalar of an xarray posterior as rows of one (parameter, chain, draw) array.

    Parameters that never move (a walk pinned at zero) are dropped: their r_hat and ESS are
    undefined.

    Parameters
    ----------
    posterior : xarray.Dataset
        Variables with leading (chain, draw) dimensions.

    Returns
    -------
    numpy.ndarray
        (parameter, chain, draw).

    Examples
    --------
    >>> from scalefit.inference.diagnostics import ess_bulk, rhat, stack_parameters
    >>> x = stack_parameters(tree["posterior"].to_dataset())  # doctest: +SKIP
    >>> float(rhat(x).max()), float(ess_bulk(x).min())  # doctest: +SKIP
    """
    rows = []
    for v in posterior.data_vars.values():
        if v.size == 0:
            continue
        a = np.asarray(v.values, dtype=float)
        rows.append(np.moveaxis(a.reshape(a.shape[0], a.shape[1], -1), -1, 0))
    x = np.concatenate(rows, axis=0)
    moving = np.ptp(x.reshape(x.shape[0], -1), axis=1) >= np.finfo(float).resolution
    return x[moving]
