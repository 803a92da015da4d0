"""The law for the optimal LR: its terms (slopes, curvatures, interaction) and the positions and
fixed geometry of its discrepancy walk along each axis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scalefit.model.config import ModelConfig
from scalefit.model.standardize import Standardization

if TYPE_CHECKING:
    from scalefit.model.data import ModelData


def terms_with_walk(data: ModelData) -> dict[str, str]:
    """Law terms drawn together with their axis's discrepancy walk (`_law_walk`): name -> axis.
    Every slope along a walked axis; a curvature too when the walk has interior positions."""
    walks = data.walk_step or {}
    return {name: axis for name, axis, power in data.terms
            if axis in walks and (power == 1 or (power == 2 and len(walks[axis]) > 1))}


def walk_positions(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's index among the distinct ln values of one axis, and sqrt of the e-fold gaps
    between consecutive distinct values (the Brownian motion's increment sds per unit kappa)."""
    log_v, distinct = distinct_logs(values)
    return np.searchsorted(distinct, log_v).astype(int), np.sqrt(np.diff(distinct))


def walk_geometry(step: np.ndarray, sd: float, z_min: float) -> dict[str, np.ndarray]:
    """The fixed geometry of one axis's walk (`_law_walk`), from the sqrt e-fold gaps `step`.

    Computed here, not in the model's graph, which then holds only what depends on parameters
    (bundled grid: PyTensor's rewriting 23-25 -> 20-22 s, cold). `position`: t_0 = 0 < ... < t_K = T.
    `offset`: T - 2 t_c, t_c the data's centre. `bridge` (rows, on the interior positions):
    the reach T - t_k, the bridge's shape h = t (T - t), v_k = sqrt(dt_k (T - t_k)(T - t_{k-1}))
    and the bridge's increment scales sqrt(dt_k / ((T - t_k)(T - t_{k-1}))). (In the graph,
    PyTensor 3.3.7 folded concatenate([0], cumsum(dt))[-1] + c to c: T read as 0.)"""
    dt = np.asarray(step, dtype=float) ** 2
    t = np.concatenate([[0.0], np.cumsum(dt)])
    total = t[-1]
    reach, behind = total - t[1:-1], total - t[:-2]
    out = {"position": t, "offset": np.asarray(total + 2.0 * sd * z_min)}
    if len(dt) > 1:
        out["bridge"] = np.stack([reach, t[1:-1] * reach, np.sqrt(dt[:-1] * reach * behind),
                                  np.sqrt(dt[:-1] / (reach * behind))])
    return out


def distinct_logs(values) -> tuple[np.ndarray, np.ndarray]:
    """ln of each value (rounded so equal sizes compare equal) and the sorted distinct ones:
    the positions of the discrepancy walk."""
    log_v = np.round(np.log(np.asarray(values, dtype=float)), 9)
    return log_v, np.unique(log_v)


def law_terms(config: ModelConfig, law_axes=None) -> list[tuple[str, str, int]]:
    """(variable name, axis, power) for each law coefficient beyond the intercept; axis "NxD"
    is the joint law's interaction u_N u_D (the N slope changing with D)."""
    terms = []
    axes = law_axes or config.axes
    for axis in axes:
        terms.append((f"law_slope_{axis}", axis, 1))
        if config.law == "quadratic":
            terms.append((f"law_curvature_{axis}", axis, 2))
    if config.law == "quadratic" and config.interaction and {"N", "D"} <= set(axes):
        terms.append(("law_interaction_ND", "NxD", 1))
    return terms


def term_value(values: dict, axis: str, power: int):
    """A law term's covariate (z or sd) from per-axis values: v_a^power, or v_N v_D for "NxD"."""
    if axis == "NxD":
        return values["N"] * values["D"]
    return values[axis] ** power


def fit_law_axes(config: ModelConfig, std: Standardization) -> tuple[str, ...]:
    """The law's covariates of a fitted model (batch size joins when the fitted cells vary in it)."""
    return config.axes + (("B",) if config.batch_in_law and std.log_b_sd > 0 else ())
