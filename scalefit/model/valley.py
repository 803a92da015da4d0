"""The valley: how the loss rises around a cell's optimal LR, and the Student-t tail used to
censor diverged runs (see the model page, docs/model.md, "The valley likelihood")."""

from __future__ import annotations

import numpy as np

__all__ = ["valley_shape", "valley_rise", "student_t_logsf"]


def valley_shape(d, asymmetry=None, xp=np):
    """g(d): d^2 when `asymmetry` is None, else the LINEX shape 2(e^{kd} - 1 - kd)/k^2.

    LINEX equals d^2 to second order, keeps its minimum at d = 0, rises exponentially on the
    high-LR side (k > 0) and only linearly on the low side, so it stays sane far out. It is the
    one-parameter limit of the power-law pair (see the theory page, docs/theory.md, "Valley
    shapes"): with the pair's two rates the low-side rate was not identified by sweeps and the
    sampler crawled along it.

    Parameters
    ----------
    d : array_like or tensor
        Distance from the optimum, in nats of LR.
    asymmetry : float or tensor, optional
        The LINEX asymmetry k (not 0); None for the symmetric parabola.
    xp : module, default numpy
        The array module: NumPy, or ``pytensor.tensor`` inside the model.

    Returns
    -------
    array_like or tensor
        g(d).
    """
    if asymmetry is None:
        return d**2
    k = asymmetry
    kd = k * d
    return 2.0 * (xp.expm1(kd) - kd) / k**2


def valley_rise(d, asymmetry=None, xp=np):
    """The valley shape scaled so its mean rise one nat either side of the optimum is 1.

    The width A then means "loss rise at an e-fold LR off the optimum", which a sweep measures
    directly; unnormalized, A and the asymmetry trade off and the sampler mixes slowly.

    Parameters
    ----------
    d : array_like or tensor
        Distance from the optimum, in nats of LR.
    asymmetry : float or tensor, optional
        The LINEX asymmetry k; None for the symmetric parabola (already normalized).
    xp : module, default numpy
        The array module: NumPy, or ``pytensor.tensor`` inside the model.

    Returns
    -------
    array_like or tensor
        The normalized rise g(d) / ((g(1) + g(-1)) / 2).

    Examples
    --------
    >>> from scalefit.model.valley import valley_rise
    >>> float(valley_rise(1.0, 0.5) + valley_rise(-1.0, 0.5)) / 2
    1.0
    """
    if asymmetry is None:
        return d**2
    unit = 0.5 * (valley_shape(1.0, asymmetry, xp) + valley_shape(-1.0, asymmetry, xp))
    return valley_shape(d, asymmetry, xp) / unit


def student_t_logsf(t, nu: float, pm, pt):
    """log P(T > t) for a standard Student-t with `nu` degrees of freedom, as a PyTensor graph.

    For nu = 1, 2 and 4 in closed form, with u = t/sqrt(nu + t^2):
      nu = 2: sf = (1 - u)/2;   nu = 4: sf = (1 - u)^2 (2 + u)/4;   nu = 1: atan2(1, t)/pi.
    For t >= 0, 1 - u = nu/(r(r + t)) with r = sqrt(nu + t^2), free of cancellation; each branch
    of the switch sees only its own half-line (max/min with 0), so both stay finite and the
    gradient is clean everywhere, t = 0 included. Other nu use PyMC's incomplete-beta logccdf,
    which is far costlier per censored run than the closed forms: with many censored runs it
    takes a large share of each gradient evaluation.

    Parameters
    ----------
    t : tensor
        Standardized thresholds, (c - mu) / sigma.
    nu : float
        Degrees of freedom.
    pm : module
        ``pymc`` (passed in so that importing this module stays light).
    pt : module
        ``pytensor.tensor``.

    Returns
    -------
    tensor
        log P(T > t), elementwise.
    """
    if nu == 1:
        return pt.log(pt.arctan2(1.0, t)) - np.log(np.pi)
    if nu in (2, 4):
        hi, lo = pt.maximum(t, 0.0), pt.minimum(t, 0.0)
        r_hi, r_lo = pt.sqrt(nu + hi**2), pt.sqrt(nu + lo**2)
        one_minus_hi = nu / (r_hi * (r_hi + hi))
        one_minus_lo = 1.0 - lo / r_lo
        upper = t >= 0
        log_one_minus = pt.switch(upper, pt.log(one_minus_hi), pt.log(one_minus_lo))
        if nu == 2:
            return log_one_minus - np.log(2.0)
        two_plus = pt.switch(upper, 3.0 - one_minus_hi, 2.0 + lo / r_lo)
        return 2.0 * log_one_minus + pt.log(two_plus) - np.log(4.0)
    return pm.logccdf(pm.StudentT.dist(nu=nu, mu=0.0, sigma=1.0), t)
