"""The centring rule: how far to centre each cell's optimum and width, from how informative its
own sweep is (a choice of sampler geometry, never of posterior; see the model page,
docs/model.md, "Centred and non-centred cells")."""

from __future__ import annotations

import numpy as np

__all__ = ["cell_centring", "optimum_scatter", "TYPICAL_TAU", "TYPICAL_WIDTH_SD", "MIN_SCATTER_DOF"]

# The cell-to-cell scatters the centring rule compares a cell's own precision with.
TYPICAL_TAU = 0.3
"""Scatter of the optima around the law (nats of LR), used when the table has too few cells to
estimate it."""
TYPICAL_WIDTH_SD = 0.5
"""Cell-to-cell sd of the log valley width."""
MIN_SCATTER_DOF = 5
"""Cells beyond the law's coefficients needed to estimate the optima's scatter."""


def cell_centring(x, y, cell, observed, n_cells: int, design=None) -> tuple[np.ndarray, np.ndarray]:
    """How far to centre each cell's optimum and log width, by how informative its own sweep is.

    Partially non-centred parameterization (Papaspiliopoulos, Roberts & Skold 2007, Stat. Sci.
    22:59): w = s^2 / (s^2 + se^2), with se the standard error of the vertex (optimum) or of the
    log curvature (width) of a least-squares parabola through the cell's observed runs, and s the
    cell-to-cell scatter. For the optima s is the scatter of the vertices around a least-squares
    fit of the law (`design`: one row of law covariates per cell, `optimum_scatter`), else
    TYPICAL_TAU; for the widths TYPICAL_WIDTH_SD. A sweep that pins its optimum (se << s) is
    centred, a thin or flat one, or any cell of a table whose optima sit on the law, non-centred;
    a cell without data gets 0. It changes only the geometry the sampler sees, never the
    posterior.

    Parameters
    ----------
    x, y : numpy.ndarray
        Standardized ln LR and loss per run.
    cell : numpy.ndarray
        Each run's cell id.
    observed : numpy.ndarray of bool
        The runs that enter the likelihood uncensored.
    n_cells : int
        The number of cells.
    design : numpy.ndarray, optional
        One row of law covariates per cell (intercept first); None uses TYPICAL_TAU.

    Returns
    -------
    w_opt : numpy.ndarray
        Per cell in [0, 1], the optimum's centring.
    w_width : numpy.ndarray
        Per cell in [0, 1], the log width's centring.
    """
    w_opt, w_width = np.zeros(n_cells), np.zeros(n_cells)
    cells, vertex, se2_opt, se2_width = [], [], [], []
    for c in np.unique(cell[observed]):
        idx = np.flatnonzero(observed & (cell == c))
        xs, ys = x[idx], y[idx]
        if len(np.unique(np.round(xs, 9))) < 3 or len(idx) < 4:
            continue
        parabola = np.column_stack([xs**2, xs, np.ones_like(xs)])
        coef, *_ = np.linalg.lstsq(parabola, ys, rcond=None)
        a, b = coef[0], coef[1]
        if a <= 0:
            continue
        resid = ys - parabola @ coef
        s2 = float(resid @ resid) / max(len(idx) - 3, 1)
        cov = s2 * np.linalg.pinv(parabola.T @ parabola)
        grad = np.array([b / (2 * a * a), -1 / (2 * a)])  # d vertex / d (a, b)
        cells.append(c)
        vertex.append(-b / (2 * a))
        se2_opt.append(float(grad @ cov[:2, :2] @ grad))
        se2_width.append(float(cov[0, 0]) / a**2)
    if not cells:
        return w_opt, w_width
    cells, se2_opt, se2_width = np.array(cells), np.array(se2_opt), np.array(se2_width)
    tau = optimum_scatter(np.array(vertex), se2_opt, design[cells]) if design is not None else None
    tau = TYPICAL_TAU if tau is None else tau
    w_opt[cells] = tau**2 / (tau**2 + se2_opt) if tau > 0 else 0.0
    w_width[cells] = TYPICAL_WIDTH_SD**2 / (TYPICAL_WIDTH_SD**2 + se2_width)
    return w_opt, w_width


def optimum_scatter(vertex, se2, design) -> float | None:
    """The optima's scatter around the law, estimated by moments.

    The residual sum of squares of a least-squares law fit to the cells' vertices is
    tau^2 (n - p) + sum (1 - h_i) se_i^2 in expectation (h the hat matrix's diagonal); the
    estimate is floored at 0. A table whose optima lie on the law (a synthetic truth without
    scatter, or a ladder whose posterior tau sits near 0) gets 0, and its optima non-centred:
    centred, they funnel as tau's posterior reaches 0.

    Parameters
    ----------
    vertex : numpy.ndarray
        Each cell's parabola vertex (standardized ln LR).
    se2 : numpy.ndarray
        The vertices' squared standard errors.
    design : numpy.ndarray
        The law's covariates, one row per cell (n rows, p columns).

    Returns
    -------
    float or None
        The scatter tau; None with fewer than MIN_SCATTER_DOF cells beyond the p coefficients.
    """
    n, p = design.shape
    if n - p < MIN_SCATTER_DOF:
        return None
    hat = design @ np.linalg.pinv(design)
    resid = vertex - hat @ vertex
    excess = float(resid @ resid) - float(np.sum((1 - np.diag(hat)) * se2))
    return float(np.sqrt(max(excess, 0.0) / (n - p)))
