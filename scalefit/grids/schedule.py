"""Learning-rate schedules as tiny pure functions of the step.

``lr_multiplier(step, ...)`` returns s(t) in [0, 1]; the LR used at step t is ``peak_lr * s(t)``.
``step`` is the 0-based index of the update about to be taken, ``total`` the number of updates.
"""
from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "constant")


def lr_multiplier(step: int, total: int, kind: str = "cosine", warmup: int = 0,
                  min_ratio: float = 0.1, decay: float = 0.2) -> float:
    """s(t): linear warmup over ``warmup`` steps, then

    - ``cosine``: half-cosine from 1 down to ``min_ratio`` at the last step;
    - ``wsd``: warmup-stable-decay, flat at 1 then linear to ``min_ratio`` over the last
      ``decay`` fraction of the steps (the last step uses exactly ``min_ratio``);
    - ``constant``: 1 after warmup.
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
    """Mean of s(t) over the run (kappa_T = lambda * lr * total * mean_multiplier)."""
    return sum(lr_multiplier(t, total, **kw) for t in range(total)) / max(1, total)
