"""From a validated runs table to the model's standardized arrays: which runs enter the
likelihood (window, censoring, held-out cells), standardization, the law's design and the walk
positions.

All arrays have a fixed shape per (table, config); leaving a cell out only zeroes its weights,
so one compiled model serves every backtest. The rule for which runs enter is on the model page,
docs/model.md, "Which runs enter the fit".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalefit.model.centring import cell_centring
from scalefit.model.config import AXIS_COLUMNS, ModelConfig
from scalefit.model.law import law_terms, term_value, walk_geometry, walk_positions
from scalefit.model.standardize import Standardization
from scalefit.runs.table import batch_swept

__all__ = ["ModelData", "prepare", "run_weights", "lr_column"]


@dataclass(frozen=True)
class ModelData:
    """The arrays fed to the PyMC model: one entry per run, or per cell for z_* and the centrings.

    Attributes
    ----------
    x : numpy.ndarray
        Standardized ln LR per run (`Standardization.x_center` subtracted).
    y : numpy.ndarray
        Standardized loss per run; 0 where the run is censored or has weight 0.
    cell : numpy.ndarray
        Each run's cell id.
    censored : numpy.ndarray
        1.0 for runs kept as right-censored observations (diverged runs, and ok runs past the
        loss window).
    weight : numpy.ndarray
        1.0 for runs in the likelihood; 0.0 outside the window, excluded by rule, or in a
        held-out cell.
    threshold : numpy.ndarray
        Standardized censoring threshold c_s per run.
    z_n, z_d : numpy.ndarray
        Standardized ln N and ln D per cell.
    std : Standardization
        The maps between raw and standardized units.
    z_b : numpy.ndarray
        Standardized ln batch size per cell (zeros when it does not vary).
    centring, width_centring : numpy.ndarray
        Per cell in [0, 1], how far its optimum and its log valley width are centred (1
        centred, 0 non-centred; `scalefit.model.centring.cell_centring`).
    law_axes : tuple of str
        The law's covariates: `ModelConfig.axes`, plus "B" when batch size varies.
    terms : tuple
        (variable, axis, power) per law coefficient beyond the intercept (`law_terms`).
    walk_index, walk_step : dict
        Per walked axis: each cell's index among the table's distinct ln values (held-out cells
        included), and sqrt of the e-fold gaps between them (`walk_positions`).
    walk_centring : float
        How far the walks' bridges are centred (0 non-centred, 1 centred).
    """

    x: np.ndarray
    y: np.ndarray
    cell: np.ndarray
    censored: np.ndarray  # 1.0 for diverged runs kept as censored observations
    weight: np.ndarray  # 0.0: outside the window, excluded by rule, or in a held-out cell
    threshold: np.ndarray  # standardized censoring threshold c_s (per run)
    z_n: np.ndarray
    z_d: np.ndarray
    std: Standardization
    z_b: np.ndarray = None  # standardized ln batch size per cell (zeros when it does not vary)
    centring: np.ndarray = None  # per cell in [0, 1]: 1 centred optimum, 0 non-centred
    width_centring: np.ndarray = None  # the same for the cell's log valley width
    law_axes: tuple = ()  # covariates of the law: config.axes, plus "B" when batch size varies
    terms: tuple = ()  # (variable, axis, power) per law coefficient beyond the intercept
    # Brownian-motion discrepancy along each law axis: per cell the index of its position among
    # the table's distinct ln values (held-out cells included), and sqrt of the e-fold gaps.
    walk_index: dict = None
    walk_step: dict = None
    # How far the walks' bridges are centred (0 non-centred, 1 centred): a geometry the
    # sampler may switch to (scalefit.inference.sampling.attempt_order), never a change of posterior.
    walk_centring: float = 0.0

    def z(self, axis: str) -> np.ndarray:
        """The standardized covariate per cell along one law axis.

        Parameters
        ----------
        axis : {"N", "D", "B"}
            The law axis.

        Returns
        -------
        numpy.ndarray
            z_n, z_d or z_b.
        """
        return {"N": self.z_n, "D": self.z_d, "B": self.z_b}[axis]

    @property
    def n_cells(self) -> int:
        """The number of cells, held-out ones included."""
        return len(self.z_n)

    def structure(self) -> tuple:
        """What fixes the compiled model's shapes and variables (data of equal structure swap in).

        Returns
        -------
        tuple
            The number of cells, the law's axes and each walked axis's number of steps.
        """
        return (self.n_cells, self.law_axes,
                tuple((a, len(v)) for a, v in sorted((self.walk_step or {}).items())))

    def graph_structure(self) -> tuple:
        """What fixes the model's graph, sizes aside.

        The numbers of cells and positions stay symbolic in the compiled code
        (`scalefit.inference.compiled`), so tables that differ only in them share it.

        Returns
        -------
        tuple
            The law's axes and, per walked axis, whether the walk has interior positions.
        """
        return (self.law_axes, tuple((a, len(v) > 1) for a, v in sorted((self.walk_step or {}).items())))

    def arrays(self) -> dict[str, np.ndarray]:
        """The swappable data containers of the PyMC model, by name.

        Only runs that enter the likelihood, split into observed and censored (the Student-t
        survival function is costly; evaluate it only where needed), plus the per-cell arrays,
        the law terms' sds and the walks' fixed geometry (`walk_geometry`). Lengths may change
        between refits; the number of cells may not.

        Returns
        -------
        dict of str to numpy.ndarray
            The values of the model's ``pm.Data`` containers.
        """
        obs = (self.weight > 0) & (self.censored == 0)
        cens = (self.weight > 0) & (self.censored > 0)
        used = np.zeros(self.n_cells, dtype=bool)  # cells with data (held-out cells: False)
        used[self.cell[self.weight > 0]] = True
        return {
            "cell_share": used / max(used.sum(), 1),
            "x_obs": self.x[obs], "y_obs": self.y[obs], "cell_obs": self.cell[obs],
            "x_cens": self.x[cens], "threshold_cens": self.threshold[cens], "cell_cens": self.cell[cens],
            "z_n": self.z_n, "z_d": self.z_d, "centring": self.centring, "width_centring": self.width_centring,
            **({"z_b": self.z_b} if "B" in self.law_axes else {}),
            **{f"sd_{a}": np.asarray(self.std.center_scale(a)[1], dtype=float) for a in self.law_axes},
            **{f"walk_index_{a}": v for a, v in (self.walk_index or {}).items()},
            **{f"walk_{name}_{a}": value for a, step in (self.walk_step or {}).items()
               for name, value in walk_geometry(step, self.std.center_scale(a)[1], self.z(a).min()).items()},
            **({"walk_centre_power": np.asarray(float(self.walk_centring))} if self.walk_step else {}),
            # 1 where a cell with data sits at the axis's last walk position (`_law_walk`)
            **{f"bend_split_{a}": np.asarray(float(np.any(used[self.walk_index[a] == len(v)])))
               for a, v in (self.walk_step or {}).items()},

        }


def lr_column(config: ModelConfig) -> str:
    """The runs-table column the valleys are fitted in.

    Parameters
    ----------
    config : ModelConfig
        The model settings.

    Returns
    -------
    str
        "eff_lr" for ``lr_kind="effective"``, else "lr".
    """
    return "eff_lr" if config.lr_kind == "effective" else "lr"


def run_weights(runs: pd.DataFrame, config: ModelConfig, held_out=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which runs enter the likelihood, and how.

    The rule, stated in every fit: ok runs within `window_octaves` of the cell's best observed
    LR are observed, unless their loss is more than `loss_window` above the cell's best (then
    right-censored there); diverged runs in the same window are right-censored at the cell's
    worst ok loss in the window (or excluded); failed runs and held-out cells never enter.

    Parameters
    ----------
    runs : pandas.DataFrame
        `RunsTable.runs`.
    config : ModelConfig
        The window, loss window, diverged rule and LR kind.
    held_out : sequence of int, default ()
        Cells whose runs get weight 0 (their cell stays in the model).

    Returns
    -------
    weight : numpy.ndarray
        1.0 for runs in the likelihood, else 0.0.
    censored : numpy.ndarray
        1.0 for right-censored runs.
    threshold : numpy.ndarray
        The censoring threshold per run, in raw loss units: the cell's worst ok loss in the
        window, or the loss-window cap for runs past it (NaN in a cell without ok runs there).
    """
    col = lr_column(config)
    lr = runs[col].to_numpy(dtype=float)
    loss = runs["final_loss"].to_numpy(dtype=float)
    status = runs["status"].to_numpy()
    cell = runs["cell"].to_numpy()
    ok = (status == "ok") & np.isfinite(loss) & np.isfinite(lr) & (lr > 0)
    diverged = (status == "diverged") & np.isfinite(lr) & (lr > 0)

    frame = pd.DataFrame({"cell": cell, "log2lr": np.log2(np.where(lr > 0, lr, 1.0)), "loss": loss, "ok": ok})
    best = frame[ok].sort_values("loss").groupby("cell")[["log2lr", "loss"]].first()  # each cell's best run
    best_of_run = frame["cell"].map(best["log2lr"]).to_numpy(dtype=float)
    in_window = np.abs(frame["log2lr"].to_numpy() - best_of_run) <= config.window_octaves + 1e-9
    worst = frame[ok & in_window].groupby("cell")["loss"].max()
    threshold = frame["cell"].map(worst).to_numpy(dtype=float)

    keep_diverged = diverged & in_window & np.isfinite(threshold) & (config.diverged == "censor")
    weight = ((ok & in_window) | keep_diverged).astype(float)
    censored = keep_diverged.copy()
    if config.loss_window is not None:
        cap = frame["cell"].map(best["loss"]).to_numpy(dtype=float) * (1 + config.loss_window)
        over = ok & in_window & (loss > cap)
        censored |= over
        threshold = np.where(over, cap, threshold)
    if len(held_out):
        weight[np.isin(cell, np.asarray(held_out))] = 0.0
    return weight, censored.astype(float), threshold


def prepare(runs: pd.DataFrame, cells: pd.DataFrame, config: ModelConfig, held_out=(),
            z_scale: dict | None = None) -> ModelData:
    """Turn a validated runs table (`scalefit.runs.table`) into standardized model arrays.

    Standardization uses only the cells that carry data, so a held-out cell is a true
    extrapolation in z.

    Parameters
    ----------
    runs : pandas.DataFrame
        `RunsTable.runs`.
    cells : pandas.DataFrame
        `RunsTable.cells`.
    config : ModelConfig
        The model settings.
    held_out : sequence of int, default ()
        Cells to leave out of the likelihood (a backtest's targets).
    z_scale : dict, optional
        Overrides of the sd of ln N / ln D / ln B used for z, by axis ("N", "D", "B"); the
        posterior in natural units does not depend on it.

    Returns
    -------
    ModelData
        The model's arrays.

    Raises
    ------
    ValueError
        If the LR column of `config.lr_kind` is missing, fewer than 2 cells have usable runs,
        the fitted cells share one value along a law axis, or a quadratic law has fewer than 3
        cells with data.

    Examples
    --------
    >>> from scalefit.model.config import ModelConfig
    >>> from scalefit.model.data import prepare
    >>> from scalefit.runs.synthetic import make_grid
    >>> from scalefit.runs.table import load_runs
    >>> table = load_runs(make_grid())
    >>> data = prepare(table.runs, table.cells, ModelConfig(axis="N"))
    >>> data.n_cells, data.law_axes
    (15, ('N',))
    """
    col = lr_column(config)
    if col not in runs.columns:
        raise ValueError(
            f"lr_kind={config.lr_kind!r} needs an '{col}' column in the runs table; "
            "collect runs with the weight-norm probe or fit the nominal LR"
        )
    weight, censored, threshold = run_weights(runs, config, held_out)
    cell = runs["cell"].to_numpy(dtype=int)
    used_cells = np.unique(cell[weight > 0])
    if len(used_cells) < 2:
        raise ValueError(f"need at least 2 cells with usable runs to fit a law, got {len(used_cells)}")

    lr = runs[col].to_numpy(dtype=float)
    log_lr = np.log(np.where(np.isfinite(lr) & (lr > 0), lr, 1.0))
    loss = runs["final_loss"].to_numpy(dtype=float)
    observed = (weight > 0) & (censored == 0)

    by_cell = pd.DataFrame({"cell": cell, "x": log_lr, "y": loss})[observed]
    best_rows = by_cell.sort_values("y").groupby("cell").first()
    spread = by_cell.groupby("cell")["y"].agg(lambda v: v.max() - v.min())
    y_scale = float(np.median(spread[spread > 0])) if (spread > 0).any() else 1.0

    n_cell = cells.loc[used_cells]
    log_n = np.log(n_cell["n_params"].to_numpy(dtype=float))
    log_d = np.log(n_cell["n_tokens"].to_numpy(dtype=float))
    batch = cells["batch_size"].to_numpy(dtype=float) if "batch_size" in cells else np.full(len(cells), np.nan)
    log_b = np.log(batch[used_cells]) if np.isfinite(batch[used_cells]).all() else np.zeros(len(used_cells))
    b_varies = config.batch_in_law and batch_swept(n_cell)
    z_scale = z_scale or {}
    std = Standardization(
        x_center=float(best_rows["x"].mean()),
        y_center=float(best_rows["y"].median()),
        y_scale=y_scale,
        log_n_mean=float(log_n.mean()),
        log_n_sd=z_scale.get("N", float(log_n.std())) if log_n.std() > 1e-9 else 0.0,
        log_d_mean=float(log_d.mean()),
        log_d_sd=z_scale.get("D", float(log_d.std())) if log_d.std() > 1e-9 else 0.0,
        log_b_mean=float(log_b.mean()) if b_varies else 0.0,
        log_b_sd=z_scale.get("B", float(log_b.std())) if b_varies else 0.0,
    )
    for axis in config.axes:
        sd = std.log_n_sd if axis == "N" else std.log_d_sd
        if sd == 0.0:
            other = "D" if axis == "N" else "N"
            raise ValueError(
                f"all fitted cells share one {AXIS_COLUMNS[axis]} value, so a law along {axis} "
                f"cannot be fitted; use --axis {other}"
            )
    if config.law == "quadratic" and len(used_cells) < 3:
        raise ValueError("a quadratic law needs at least 3 cells with data; use law='linear'")

    y_std = np.where(np.isfinite(loss), (loss - std.y_center) / std.y_scale, 0.0)
    thr = np.where(np.isfinite(threshold), (threshold - std.y_center) / std.y_scale, 0.0)
    law_axes = config.axes + (("B",) if b_varies else ())
    walk_index, walk_step = {}, {}
    if config.discrepancy == "random_walk":
        for axis in config.axes:
            index, step = walk_positions(cells[AXIS_COLUMNS[axis]].to_numpy(dtype=float))
            if len(step):
                walk_index[axis], walk_step[axis] = index, step
    x_all = log_lr - std.x_center
    terms = tuple(law_terms(config, law_axes))
    z_cells = {"N": std.z("N", cells["n_params"].to_numpy(dtype=float)),
               "D": std.z("D", cells["n_tokens"].to_numpy(dtype=float)),
               "B": std.z("B", batch) if b_varies else np.zeros(len(cells))}
    design = np.column_stack([np.ones(len(cells))] + [term_value(z_cells, axis, power) for _, axis, power in terms])
    centring, width_centring = cell_centring(
        x_all, np.where(np.isfinite(loss), (loss - std.y_center) / std.y_scale, 0.0), cell, observed, len(cells),
        design)
    return ModelData(
        x=log_lr - std.x_center,
        y=np.where(weight > 0, y_std, 0.0) * (1 - censored),
        cell=cell,
        censored=censored,
        weight=weight,
        threshold=thr,
        z_n=z_cells["N"],
        z_d=z_cells["D"],
        std=std,
        z_b=z_cells["B"],
        centring=centring, width_centring=width_centring,
        law_axes=law_axes, terms=terms, walk_index=walk_index, walk_step=walk_step,
    )
