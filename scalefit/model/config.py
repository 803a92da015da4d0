"""Model settings as data: one frozen config, saved inside every fit file.

A fit is reproducible from (runs table, config, sampler settings). The config is plain JSON; its
hash is part of the key of the compiled model in the in-process and on-disk caches. The settings
and the default priors are described on the model page, docs/model.md, "Settings" and "Priors".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

__all__ = ["auto_axis", "ModelConfig", "default_priors", "AXES", "AXIS_COLUMNS", "LR_KINDS", "VALLEYS", "LAWS",
           "DIVERGED_RULES", "DISCREPANCIES", "ASYMMETRIES"]

AXES = ("N", "D", "ND")
"""Values of `ModelConfig.axis`: a law along N, along D, or a joint surface in both."""
AXIS_COLUMNS = {"N": "n_params", "D": "n_tokens"}
"""The runs-table column of each law axis."""
LR_KINDS = ("nominal", "effective")
"""Values of `ModelConfig.lr_kind`."""
VALLEYS = ("quadratic", "asymmetric")
"""Values of `ModelConfig.valley`."""
LAWS = ("quadratic", "linear")
"""Values of `ModelConfig.law`."""
DIVERGED_RULES = ("censor", "exclude")
"""Values of `ModelConfig.diverged`."""


def default_priors() -> dict[str, dict[str, float]]:
    """The default priors, in natural units.

    The law's coefficients are per e-fold of N, D or B (slopes) and per e-fold squared
    (curvatures), the law's scatter and discrepancy in nats of LR, so a narrow fitted range does
    not turn a modest prior into a huge curvature (the model rescales them to its internal
    standardized z). Loss-side priors are in standardized loss units (loss minus the median best
    loss, over the median within-cell loss range). Normal(mu, sigma) unless noted;
    HalfNormal(sigma) for scales, or Gamma(alpha, beta) when a scale prior is given as
    ``{"alpha": a, "beta": b}``. The model page, docs/model.md, "Priors", tabulates them.

    Returns
    -------
    dict
        Prior name -> its parameters (``{"mu": ..., "sigma": ...}`` or ``{"sigma": ...}``); a new
        dict on every call.
    """
    return {
        # ln LR* at the centre of the fitted cells, relative to the mean best ln LR: data-dominated.
        "law_intercept": {"mu": 0.0, "sigma": 2.0},
        # Per e-fold of N: StepLaw -0.71, Zhou et al. 2026 -0.22, Ludziejewski et al. -0.81, Marin
        # AdamW -0.62 (0.008 at 130M -> 0.002 at 1.2B), AdamH/muP ~0: all inside 2 sd.
        "law_slope_N": {"mu": -0.4, "sigma": 0.4},
        # Per e-fold of D: StepLaw +0.31, Zhou et al. -0.35, DeepSeek (C^-0.125) -0.125.
        "law_slope_D": {"mu": 0.0, "sigma": 0.4},
        # Per e-fold of batch size (tokens/step) at fixed N, D: square-root (0.5) and linear (1)
        # scaling rules below the critical batch, ~0 above it.
        "law_slope_B": {"mu": 0.25, "sigma": 0.5},
        # Per e-fold^2: centred at 0 (the curvature is what we test). 0.05 lets ln LR* bend by
        # 0.45 nats three e-folds from the centre at 1 sd; every published law is log-linear.
        "law_curvature_N": {"mu": 0.0, "sigma": 0.05},
        "law_curvature_D": {"mu": 0.0, "sigma": 0.05},
        "law_curvature_B": {"mu": 0.0, "sigma": 0.1},
        # Per e-fold of N per e-fold of D (joint law): how the N slope changes with D.
        "law_interaction_ND": {"mu": 0.0, "sigma": 0.05},
        # HalfNormal: cell-to-cell scatter of the optimum around the law (nats of LR).
        "law_residual_sd": {"sigma": 0.3},
        # HalfNormal: the law's form error, a Brownian motion in e-folds along each law axis
        # (nats of LR per sqrt e-fold): 0.15 lets the optimum drift 0.15 nats (0.065 decades) per
        # e-fold beyond the data at 1 sd, the size of the public backtests' misses.
        "law_discrepancy": {"sigma": 0.15},
        "floor_intercept": {"mu": 0.0, "sigma": 3.0},
        "floor_slope": {"mu": 0.0, "sigma": 3.0},
        "floor_sd": {"sigma": 1.0},
        # log of the valley width A (standardized loss units at one e-fold off the optimum)
        "log_width_mean": {"mu": -1.0, "sigma": 1.5},
        "log_width_sd": {"sigma": 0.7},
        "log_noise_mean": {"mu": -3.0, "sigma": 1.5},
        "log_noise_sd": {"sigma": 0.7},
        # LINEX asymmetry k per nat of LR; k > 0: the high-LR side is steeper (the usual case).
        "valley_asymmetry": {"mu": 0.5, "sigma": 1.0},
        # HalfNormal: cell-to-cell sd of the asymmetry (asymmetry="per_cell" only).
        "valley_asymmetry_sd": {"sigma": 0.3},
    }


# Prior names of fit format 1, whose scales were in standardized z units: refused with the
# names that replace them.
OLD_Z_UNIT_PRIORS = {
    "law_slope": "law_slope_N / law_slope_D / law_slope_B (per e-fold)",
    "law_curvature": "law_curvature_N / law_curvature_D / law_curvature_B (per e-fold squared)",
}
DISCREPANCIES = ("random_walk", "none")
"""Values of `ModelConfig.discrepancy`."""
ASYMMETRIES = ("shared", "per_cell")
"""Values of `ModelConfig.asymmetry`."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the statistical model (not the data, not the sampler).

    Frozen; change a setting with `replace`. The model page, docs/model.md, describes what each
    setting does.

    Parameters
    ----------
    axis : {"N", "D", "ND"}, default "N"
        The law's covariate: model size, training tokens, or a joint surface in both.
    lr_kind : {"nominal", "effective"}, default "nominal"
        Fit the valleys in nominal LR or in measured effective LR (the runs table's eff_lr).
    valley : {"asymmetric", "quadratic"}, default "asymmetric"
        The valley shape: LINEX (steeper on the high-LR side) or the symmetric parabola.
    law : {"quadratic", "linear"}, default "quadratic"
        Quadratic in the standardized log covariates, or the log-linear law peers use.
    window_octaves : float, default 3.0
        Runs further than this from their cell's best observed LR are left out: far from the
        optimum other physics (instability, under-training) sets the loss.
    diverged : {"censor", "exclude"}, default "censor"
        Diverged runs count as "loss at least the worst ok loss in the cell", or are left out.
    loss_window : float or None, default 0.05
        Ok runs whose loss is more than this fraction above their cell's best are right-censored
        at best x (1 + loss_window) instead of fitted: past a loss cliff (a run that went
        unstable without diverging) the smooth valley shape does not hold, and fitting those
        losses drags the optimum away from the cliff. None fits every run.
    nu : float, default 4.0
        Student-t degrees of freedom of the run noise, so a few bad runs do not move the optimum.
    discrepancy : {"random_walk", "none"}, default "random_walk"
        The law's form error beyond its terms: a Brownian motion in e-folds along each law axis,
        so the interval widens with the distance beyond the data; "none" trusts the parametric
        law's form everywhere.
    batch_in_law : bool, default True
        When some (N, D) has several batch sizes, give the law ln B terms.
    asymmetry : {"shared", "per_cell"}, default "shared"
        One LINEX asymmetry for every cell, or one per cell, partially pooled.
    interaction : bool, default False
        Give the joint quadratic law its u_N u_D term (the N slope changing with D).
    priors : dict, optional
        Overrides of `default_priors`, by name; the rest keep their defaults.

    Raises
    ------
    ValueError
        On an unknown setting value, a non-positive window or nu, an unknown prior name, or a
        prior name of the old standardized units (the message names its replacements).

    Examples
    --------
    >>> from scalefit.model.config import ModelConfig
    >>> config = ModelConfig(axis="ND", priors={"law_curvature_N": {"mu": 0.0, "sigma": 0.1}})
    >>> config.axes
    ('N', 'D')
    >>> config.replace(law="linear").law
    'linear'
    >>> ModelConfig.from_json(config.to_json()) == config
    True
    """

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
    # The law's form error beyond what its terms capture: a Brownian motion in e-folds along each
    # law axis ("random_walk"), so the interval widens with the distance beyond the data; "none"
    # trusts the parametric law's form everywhere.
    discrepancy: str = "random_walk"
    # When the fitted cells span several batch sizes, the law gets ln B terms.
    batch_in_law: bool = True
    # One LINEX asymmetry shared by every cell, or one per cell, partially pooled.
    asymmetry: str = "shared"
    # The joint quadratic law's u_N u_D term (the N slope changing with D).
    interaction: bool = False
    priors: dict = field(default_factory=default_priors)

    def __post_init__(self):
        _check("axis", self.axis, AXES)
        _check("lr_kind", self.lr_kind, LR_KINDS)
        _check("valley", self.valley, VALLEYS)
        _check("law", self.law, LAWS)
        _check("diverged", self.diverged, DIVERGED_RULES)
        _check("discrepancy", self.discrepancy, DISCREPANCIES)
        _check("asymmetry", self.asymmetry, ASYMMETRIES)
        if not self.window_octaves > 0:
            raise ValueError(f"window_octaves must be > 0, got {self.window_octaves!r}")
        if self.loss_window is not None and not self.loss_window > 0:
            raise ValueError(f"loss_window must be > 0 or None, got {self.loss_window!r}")
        if not self.nu > 0:
            raise ValueError(f"nu must be > 0, got {self.nu!r}")
        old = sorted(set(self.priors) & set(OLD_Z_UNIT_PRIORS))
        if old:
            raise ValueError(f"prior {old[0]!r} is in the old standardized z units, which depended on the "
                             f"fitted range; give {OLD_Z_UNIT_PRIORS[old[0]]} instead")
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
        """The config as JSON (sorted keys, priors merged with the defaults).

        Returns
        -------
        str
            What fit files store and `from_json` reads.
        """
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """The config that `to_json` wrote.

        Parameters
        ----------
        text : str
            A JSON object of config settings.

        Returns
        -------
        ModelConfig
            The config, validated as on construction.

        Raises
        ------
        ValueError
            On unknown keys, or values the constructor refuses.
        """
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some settings changed.

        Parameters
        ----------
        **changes
            Settings to change, by name.

        Returns
        -------
        ModelConfig
            The new config, validated as on construction.
        """
        return dataclasses.replace(self, **changes)

    @property
    def hash(self) -> str:
        """A short hash of `to_json`: part of the compiled model's cache key.

        Returns
        -------
        str
            The first 12 hex digits of the JSON's SHA-256.
        """
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def auto_axis(cells) -> str:
    """The law axis ``--axis auto`` picks for a table's cells.

    ND when the cells take at least 3 values of both N and D, else the axis that varies most.

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per scale cell with ``n_params`` and ``n_tokens`` (`RunsTable.cells`).

    Returns
    -------
    str
        ``"N"``, ``"D"`` or ``"ND"``.

    Examples
    --------
    >>> import pandas as pd
    >>> auto_axis(pd.DataFrame({"n_params": [1e6, 2e6, 4e6], "n_tokens": [1e8, 1e8, 1e8]}))
    'N'
    """
    n, d = (cells[c].nunique() for c in ("n_params", "n_tokens"))
    if n >= 3 and d >= 3:
        return "ND"
    return "N" if n >= d else "D"
