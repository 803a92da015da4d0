"""Model settings as data: one frozen config, saved inside every fit file.

A fit is reproducible from (runs table, config). The config is plain JSON; its hash names
the compiled model in the in-process cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

AXES = ("N", "D", "ND")
LR_KINDS = ("nominal", "effective")
VALLEYS = ("quadratic", "asymmetric")
LAWS = ("quadratic", "linear")
DIVERGED_RULES = ("censor", "exclude")


def default_priors() -> dict[str, dict[str, float]]:
    """Priors in standardized units (x = ln LR minus its centre, z = standardized ln N or ln D,
    y = loss scaled by the typical within-cell loss range). Normal(mu, sigma) unless noted."""
    return {
        # The intercept is the optimum at the centre of the grid; the data pin it down.
        "law_intercept": {"mu": 0.0, "sigma": 2.0},
        # Published exponents are -0.3..-0.7 per e-fold of N or D; a z unit is ~1-2 e-folds.
        "law_slope": {"mu": 0.0, "sigma": 1.5},
        # Centred at zero: the curvature is what we test, so the prior must not assume it.
        "law_curvature": {"mu": 0.0, "sigma": 0.5},
        # HalfNormal scale of the cell-to-cell scatter of the optimum around the law (nats of LR).
        "law_residual_sd": {"sigma": 0.3},
        "floor_intercept": {"mu": 0.0, "sigma": 3.0},
        "floor_slope": {"mu": 0.0, "sigma": 3.0},
        "floor_sd": {"sigma": 1.0},
        # log of the valley width A (loss units per nat^2 of LR, standardized loss units)
        "log_width_mean": {"mu": -1.0, "sigma": 1.5},
        "log_width_sd": {"sigma": 0.7},
        "log_noise_mean": {"mu": -3.0, "sigma": 1.5},
        "log_noise_sd": {"sigma": 0.7},
        # LINEX asymmetry k per nat of LR; k > 0: the high-LR side is steeper (the usual case).
        "valley_asymmetry": {"mu": 0.5, "sigma": 1.0},
    }


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the statistical model (not the data, not the sampler)."""

    axis: str = "N"  # law covariate: "N", "D" or "ND" (joint surface)
    lr_kind: str = "nominal"  # fit valleys in nominal or effective LR space
    valley: str = "asymmetric"  # "quadratic" (symmetric) or "asymmetric" (LINEX)
    law: str = "quadratic"  # "quadratic" in z, or "linear" (the log-linear law peers use)
    # Runs further than this from the cell's best observed LR (in octaves) are left out:
    # far from the optimum other physics (instability, under-training) sets the loss.
    window_octaves: float = 3.0
    diverged: str = "censor"  # diverged runs: loss >= worst ok loss in the cell, or excluded
    # Ok runs whose loss is more than this fraction above their cell's best are right-censored
    # there (loss >= best x (1 + loss_window)) instead of fitted: past a loss cliff (a run that
    # went unstable without diverging) the smooth valley shape does not hold, and fitting those
    # losses drags the optimum away from the cliff. None: fit every run.
    loss_window: float | None = 0.05
    nu: float = 4.0  # Student-t degrees of freedom: a few bad runs must not move the optimum
    priors: dict = field(default_factory=default_priors)

    def __post_init__(self):
        _check("axis", self.axis, AXES)
        _check("lr_kind", self.lr_kind, LR_KINDS)
        _check("valley", self.valley, VALLEYS)
        _check("law", self.law, LAWS)
        _check("diverged", self.diverged, DIVERGED_RULES)
        if not self.window_octaves > 0:
            raise ValueError(f"window_octaves must be > 0, got {self.window_octaves!r}")
        if self.loss_window is not None and not self.loss_window > 0:
            raise ValueError(f"loss_window must be > 0 or None, got {self.loss_window!r}")
        if not self.nu > 0:
            raise ValueError(f"nu must be > 0, got {self.nu!r}")
        unknown = set(self.priors) - set(default_priors())
        if unknown:
            raise ValueError(f"unknown prior names {sorted(unknown)}; known: {sorted(default_priors())}")
        merged = default_priors() | {k: dict(v) for k, v in self.priors.items()}
        object.__setattr__(self, "priors", merged)

    @property
    def axes(self) -> tuple[str, ...]:
        """The covariates of the law: ("N",), ("D",) or ("N", "D")."""
        return ("N", "D") if self.axis == "ND" else (self.axis,)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
