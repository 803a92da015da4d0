"""Learning-rate schedules as tiny pure functions of the step. No torch here.

``lr_multiplier(step, ...)`` returns s(t) in [0, 1]; the LR used at step t is ``peak_lr * s(t)``.
``step`` is the 0-based index of the update about to be taken, ``total`` the number of updates.
The runner (:func:`scalefit.train.run.training_function`) and the spec checks
(:mod:`scalefit.grids.spec`) share these functions, so a planned schedule and the applied one
cannot drift apart.
"""
from __future__ import annotations

import math

__all__ = ["SCHEDULES", "lr_multiplier", "mean_multiplier"]

SCHEDULES = ("cosine", "wsd", "constant")


def lr_multiplier(step: int, total: int, kind: str = "cosine", warmup: int = 0,
                  min_ratio: float = 0.1, decay: float = 0.2) -> float:
    """The schedule multiplier s(t) of one step.

    A linear warmup over ``warmup`` steps, then

    - ``cosine``: half-cosine from 1 down to ``min_ratio`` at the last step;
    - ``wsd``: warmup-stable-decay, flat at 1 then linear to ``min_ratio`` over the last
      ``decay`` fraction of the steps (the last step uses exactly ``min_ratio``);
    - ``constant``: 1 after warmup.

    Parameters
    ----------
    step : int
        0-based index of the update about to be taken.
    total : int
        Number of updates in the run.
    kind : str, default "cosine"
        One of :data:`SCHEDULES`.
    warmup : int, default 0
        Warmup steps; the multiplier rises as ``(step + 1) / warmup``, so the first step is
        never taken at LR 0.
    min_ratio : float, default 0.1
        The multiplier at the last step of a ``cosine`` or ``wsd`` schedule.
    decay : float, default 0.2
        ``wsd`` only: the fraction of ``total`` spent decaying.

    Returns
    -------
    float
        s(t) in [0, 1].

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`SCHEDULES`.

    Examples
    --------
    >>> lr_multiplier(0, 100, "wsd", warmup=10)
    0.1
    >>> lr_multiplier(50, 100, "wsd", warmup=10)
    1.0
    >>> lr_multiplier(99, 100, "cosine", min_ratio=0.1)
    0.1
    """
    if step < warmup:
        return (step + 1) / warmup  # never 0: the first step already moves the weights
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        span = max(1, total - 1 - warmup)
        progress = min(1.0, (step - warmup) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "wsd":
        n_decay = max(1, round(decay * total))
        start = total - n_decay
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / n_decay)
        return 1.0 - (1.0 - min_ratio) * progress
    raise ValueError(f"unknown schedule kind {kind!r}; expected one of {SCHEDULES}")


def mean_multiplier(total: int, **kw) -> float:
    """Mean of s(t) over a run of ``total`` steps.

    It turns a peak LR into the run's mean LR, e.g. in the equilibration number
    ``kappa_T = lambda * lr * total * mean_multiplier``.

    Parameters
    ----------
    total : int
        Number of updates in the run.
    **kw
        The schedule: ``kind``, ``warmup``, ``min_ratio``, ``decay`` as in :func:`lr_multiplier`.

    Returns
    -------
    float
        The mean multiplier (0 when ``total`` is 0).
    """
    return sum(lr_multiplier(t, total, **kw) for t in range(total)) / max(1, total)
