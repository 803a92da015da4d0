"""The two-stage point baseline everyone else uses (StepLaw, Marin): a parabola in log LR per
cell, then a least-squares log-linear law through the vertices. Always shown beside the
posterior so users see what the hierarchical model changes (see the model page, docs/model.md,
"The baseline point fit")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.model.config import ModelConfig
from scalefit.runs.table import batch_swept
from scalefit.model.config import AXIS_COLUMNS
from scalefit.model.data import lr_column, run_weights

RCOND = 1e-8  # singular values below this share of the largest are treated as zero

__all__ = ["BaselineFit", "fit_baseline", "cell_vertex"]


@dataclass(frozen=True)
class BaselineFit:
    """The two-stage log-linear point fit: ln LR* = coef[0] + sum of coef[i] ln(axis i).

    Attributes
    ----------
    axes : tuple of str
        The law's covariates: the model's axes ("N", "D"), plus "B" when batch size is in the law.
    coef : numpy.ndarray
        Intercept, then one slope per axis (on ln N, ln D, ln B).
    vertices : pandas.DataFrame
        Per cell: ``log_lr_vertex`` and ``source`` ("parabola", or "best run" where the
        parabola is not convex or its vertex falls outside the sweep).
    """

    axes: tuple[str, ...]
    coef: np.ndarray  # intercept, then one slope per axis (on ln N, ln D, ln B)
    vertices: pd.DataFrame  # per cell: log_lr_vertex, source ("parabola" or "best run")

    def predict_log_lr(self, n_params: float, n_tokens: float, batch_size: float | None = None) -> float:
        """ln of the baseline's optimal LR at (N, D[, B]).

        Parameters
        ----------
        n_params, n_tokens : float
            The scale.
        batch_size : float, optional
            Tokens per step; used only when "B" is in `axes`.

        Returns
        -------
        float
            ln LR in the space the baseline was fitted in (the fit's ``lr_kind``).
        """
        cov = {"N": np.log(n_params), "D": np.log(n_tokens),
               "B": np.log(batch_size) if batch_size else np.nan}
        return float(self.coef[0] + sum(c * cov[a] for c, a in zip(self.coef[1:], self.axes)))

    def predict_lr(self, n_params: float, n_tokens: float, batch_size: float | None = None) -> float:
        """The baseline's optimal LR at (N, D[, B]): exp of `predict_log_lr`."""
        return float(np.exp(self.predict_log_lr(n_params, n_tokens, batch_size)))


def cell_vertex(log_lr: np.ndarray, loss: np.ndarray) -> tuple[float, str]:
    """Vertex of the least-squares parabola in ln LR through one cell's (seed-averaged) valley.

    The best run instead when there are fewer than 3 distinct LRs, the parabola is not convex,
    or its vertex falls outside the swept range (the usual guard in two-stage fits).

    Parameters
    ----------
    log_lr : numpy.ndarray
        ln LR of the cell's points.
    loss : numpy.ndarray
        Their final losses.

    Returns
    -------
    tuple of (float, str)
        The vertex in ln LR and its source, "parabola" or "best run".
    """
    best = float(log_lr[np.argmin(loss)])
    if len(np.unique(log_lr)) < 3:
        return best, "best run"
    a, b, _ = np.polyfit(log_lr, loss, 2)
    if a <= 0:
        return best, "best run"
    vertex = -b / (2 * a)
    if not log_lr.min() <= vertex <= log_lr.max():
        return best, "best run"
    return float(vertex), "parabola"


def fit_baseline(runs: pd.DataFrame, cells: pd.DataFrame, config: ModelConfig, held_out=()) -> BaselineFit:
    """Two-stage fit on the same runs the model sees (same window, diverged and failed runs out).

    Parameters
    ----------
    runs : pandas.DataFrame
        The runs table's runs.
    cells : pandas.DataFrame
        The runs table's cells.
    config : scalefit.model.config.ModelConfig
        The model config: its window, LR space, axes and batch-size rule apply here too.
    held_out : iterable of int, default ()
        Cells left out of the fit.

    Returns
    -------
    BaselineFit
    """
    weight, censored, _ = run_weights(runs, config, held_out)
    use = (weight > 0) & (censored == 0)
    frame = pd.DataFrame({
        "cell": runs["cell"].to_numpy(), "log_lr": np.log(runs[lr_column(config)].to_numpy(dtype=float)),
        "loss": runs["final_loss"].to_numpy(dtype=float),
    })[use]
    rows = []
    for cell, group in frame.groupby("cell"):
        # Average seeds first: the parabola is a fit to the mean valley.
        mean = group.groupby("log_lr")["loss"].mean()
        vertex, source = cell_vertex(mean.index.to_numpy(), mean.to_numpy())
        rows.append({"cell": cell, "log_lr_vertex": vertex, "source": source})
    vertices = pd.DataFrame(rows).set_index("cell")
    design = [np.ones(len(vertices))]
    axes = config.axes
    batch = cells.loc[vertices.index, "batch_size"].to_numpy(dtype=float) if "batch_size" in cells else None
    if config.batch_in_law and batch is not None and batch_swept(cells.loc[vertices.index]):
        axes = axes + ("B",)  # the same covariates the model's law has
    columns = dict(AXIS_COLUMNS, B="batch_size")
    for axis in axes:
        design.append(np.log(cells.loc[vertices.index, columns[axis]].to_numpy(dtype=float)))
    # A relative cut-off: on a tokens-per-parameter ladder ln D - ln N is constant up to the rounding
    # of D, a direction the data cannot see; the default (machine precision) fits noise along it
    # with huge opposite slopes, and any target slightly off the ladder's ratio inherits them.
    coef, *_ = np.linalg.lstsq(np.column_stack(design), vertices["log_lr_vertex"].to_numpy(), rcond=RCOND)
    return BaselineFit(axes=axes, coef=coef, vertices=vertices)
