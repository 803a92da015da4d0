"""The law for the optimal LR: its terms (slopes, curvatures, interaction) and the positions and
fixed geometry of its discrepancy walk along each axis (see the model page, docs/model.md, "The
law for the optimal LR" and "Walk geometry")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scalefit.model.config import ModelConfig
from scalefit.model.standardize import Standardization

if TYPE_CHECKING:
    from scalefit.model.data import ModelData

__all__ = ["law_terms", "term_value", "fit_law_axes", "terms_with_walk", "walk_positions", "walk_geometry",
           "distinct_logs"]


def terms_with_walk(data: ModelData) -> dict[str, str]:
    """The law terms drawn together with their axis's discrepancy walk.

    Every slope along a walked axis; a curvature too when the walk has interior positions
    (`scalefit.model.graph` draws them jointly, in the sums the data see).

    Parameters
    ----------
    data : ModelData
        The model's arrays (their terms and walks).

    Returns
    -------
    dict of str to str
        Term name -> its axis.
    """
    walks = data.walk_step or {}
    return {name: axis for name, axis, power in data.terms
            if axis in walks and (power == 1 or (power == 2 and len(walks[axis]) > 1))}


def walk_positions(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The discrepancy walk's positions along one axis.

    Parameters
    ----------
    values : numpy.ndarray
        The axis's raw value (N or D) per cell.

    Returns
    -------
    index : numpy.ndarray
        Each cell's index among the distinct ln values.
    step : numpy.ndarray
        sqrt of the e-fold gaps between consecutive distinct values: the Brownian motion's
        increment sds per unit kappa.
    """
    log_v, distinct = distinct_logs(values)
    return np.searchsorted(distinct, log_v).astype(int), np.sqrt(np.diff(distinct))


def walk_geometry(step: np.ndarray, sd: float, z_min: float) -> dict[str, np.ndarray]:
    """The fixed geometry of one axis's discrepancy walk, from the sqrt e-fold gaps `step`.

    Computed here in NumPy, not in the model's graph, so the graph holds only what depends on
    parameters and PyTensor has less to rewrite when it compiles. (In the graph, PyTensor 3.3.7
    also folded concatenate([0], cumsum(dt))[-1] + c to c, reading T as 0.)

    Parameters
    ----------
    step : numpy.ndarray
        sqrt of the e-fold gaps between the walk's positions (`walk_positions`).
    sd : float
        The axis's sd of ln value (`Standardization.center_scale`).
    z_min : float
        The smallest standardized value among the cells.

    Returns
    -------
    dict of str to numpy.ndarray
        ``position``: t_0 = 0 < ... < t_K = T. ``offset``: T - 2 t_c, t_c the data's centre.
        ``bridge`` (only with interior positions; rows over the interior positions): the reach
        T - t_k, the bridge's shape h = t (T - t), v_k = sqrt(dt_k (T - t_k)(T - t_{k-1})) and
        the bridge's increment scales sqrt(dt_k / ((T - t_k)(T - t_{k-1}))).
    """
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
    """ln of each value and the sorted distinct ones: the positions of the discrepancy walk.

    Parameters
    ----------
    values : array_like
        Raw values (N or D).

    Returns
    -------
    log_v : numpy.ndarray
        ln of each value, rounded so that equal sizes compare equal.
    distinct : numpy.ndarray
        The sorted distinct rounded logs.
    """
    log_v = np.round(np.log(np.asarray(values, dtype=float)), 9)
    return log_v, np.unique(log_v)


def law_terms(config: ModelConfig, law_axes=None) -> list[tuple[str, str, int]]:
    """The law's coefficients beyond the intercept.

    Parameters
    ----------
    config : ModelConfig
        The law's form (`law`, `interaction`) and axes.
    law_axes : tuple of str, optional
        The law's covariates; default ``config.axes`` (pass ``ModelData.law_axes`` to include
        "B").

    Returns
    -------
    list of tuple
        (variable name, axis, power) per coefficient; axis "NxD" is the joint law's interaction
        u_N u_D (the N slope changing with D).
    """
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
    """A law term's covariate (z or sd) from per-axis values.

    Parameters
    ----------
    values : dict
        Per-axis values (z or sd), by axis.
    axis : str
        The term's axis, or "NxD" for the interaction.
    power : int
        The term's power (1 slope, 2 curvature).

    Returns
    -------
    array_like
        v_a^power, or v_N v_D for "NxD".
    """
    if axis == "NxD":
        return values["N"] * values["D"]
    return values[axis] ** power


def fit_law_axes(config: ModelConfig, std: Standardization) -> tuple[str, ...]:
    """The law's covariates of a fitted model: batch size joins when the fitted cells vary in it.

    Parameters
    ----------
    config : ModelConfig
        The fit's settings.
    std : Standardization
        The fit's standardization.

    Returns
    -------
    tuple of str
        ``config.axes``, plus "B" when the law has batch-size terms.
    """
    return config.axes + (("B",) if config.batch_in_law and std.log_b_sd > 0 else ())
