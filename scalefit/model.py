"""The hierarchical model: every cell's loss valley in log LR plus a curved law for the optimum.

For run r in cell s, with x = ln LR (standardized) and y = final loss (standardized):

    y_r ~ StudentT(nu, L_s + A_s * g(x_r - m_s), sigma_s)      ok runs inside the window
    P(y_r >= c_s)                                               diverged runs (right-censored)
    m_s ~ Normal(theta0 + sum_a theta1_a z_a,s + theta2_a z_a,s^2, tau)
    L_s, log A_s, log sigma_s partially pooled (floors regress on z_N and z_D)

g(d) = d^2 (symmetric) or LINEX 2(e^{kd} - 1 - kd)/k^2 (asymmetric: exponential on the high-LR
side, linear on the low side), scaled so that A is the mean rise one nat from the optimum. c_s is the worst ok loss in the cell: a
diverged run was at least as bad as anything that finished.

All arrays have a fixed shape per (table, config); leaving a cell out only zeroes its weights,
so one compiled model serves every backtest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from scalefit.config import ModelConfig
from scalefit.grid import batch_swept

AXIS_COLUMNS = {"N": "n_params", "D": "n_tokens"}


@dataclass(frozen=True)
class Standardization:
    """Affine maps between raw units and the model's standardized units (saved in the fit)."""

    x_center: float  # ln LR subtracted from x
    y_center: float
    y_scale: float
    log_n_mean: float
    log_n_sd: float
    log_d_mean: float
    log_d_sd: float
    log_b_mean: float = 0.0  # batch size (tokens/step); sd 0 when the fitted cells share one
    log_b_sd: float = 0.0

    def center_scale(self, axis: str) -> tuple[float, float]:
        return {"N": (self.log_n_mean, self.log_n_sd), "D": (self.log_d_mean, self.log_d_sd),
                "B": (self.log_b_mean, self.log_b_sd)}[axis]

    def z(self, axis: str, value) -> np.ndarray:
        """Standardized log covariate; 0 when the table does not vary along the axis."""
        mean, sd = self.center_scale(axis)
        value = np.asarray(value, dtype=float)
        return (np.log(value) - mean) / sd if sd > 0 else np.zeros_like(value)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Standardization":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ModelData:
    """Arrays fed to the PyMC model, one entry per run (or per cell for z_*)."""

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
    # sampler may switch to (scalefit.sampling.attempt_order), never a change of posterior.
    walk_centring: float = 0.0

    def z(self, axis: str) -> np.ndarray:
        return {"N": self.z_n, "D": self.z_d, "B": self.z_b}[axis]

    @property
    def n_cells(self) -> int:
        return len(self.z_n)

    def structure(self) -> tuple:
        """What fixes the compiled model's shapes and variables (data of equal structure swap in)."""
        return (self.n_cells, self.law_axes,
                tuple((a, len(v)) for a, v in sorted((self.walk_step or {}).items())))

    def graph_structure(self) -> tuple:
        """What fixes the model's graph: the law's axes and, per walked axis, whether the walk has
        interior positions. The numbers of cells and positions stay symbolic in the compiled code
        (`scalefit.compiled_model`), so tables that differ only in them share it."""
        return (self.law_axes, tuple((a, len(v) > 1) for a, v in sorted((self.walk_step or {}).items())))

    def arrays(self) -> dict[str, np.ndarray]:
        """The swappable data containers: only runs that enter the likelihood, split into
        observed and censored (the Student-t survival function is costly; evaluate it only
        where needed). Lengths may change between refits; the number of cells may not."""
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


INIT_TAU = 0.3  # initial law residual sd, so a non-centred start can put each cell at its best run


def terms_with_walk(data: ModelData) -> dict[str, str]:
    """Law terms drawn together with their axis's discrepancy walk (`_law_walk`): name -> axis.
    Every slope along a walked axis; a curvature too when the walk has interior positions."""
    walks = data.walk_step or {}
    return {name: axis for name, axis, power in data.terms
            if axis in walks and (power == 1 or (power == 2 and len(walks[axis]) > 1))}


def initial_values(data: ModelData) -> dict[str, np.ndarray]:
    """Start each cell at its best observed run with the law flat at zero: far from it, the
    exponential valley sides overflow and a chain can stall before adaptation begins."""
    observed = (data.weight > 0) & (data.censored == 0)
    best_x = np.zeros(data.n_cells)
    best_y = np.zeros(data.n_cells)
    for c in np.unique(data.cell[observed]):
        idx = np.flatnonzero(observed & (data.cell == c))
        i = idx[np.argmin(data.y[idx])]
        best_x[c], best_y[c] = data.x[i], data.y[i]
    w = data.centring
    start = {"law_level": np.array(0.0), "law_residual_sd": np.array(INIT_TAU), "floor": best_y,
             # partially non-centred: m = law + tau^(1-w) (m_raw - w law), law = 0 at the start
             "log_lr_opt_raw": best_x / INIT_TAU ** (1 - w)}
    with_walk = terms_with_walk(data)
    for name, _, _ in data.terms:
        if name not in with_walk:
            start[name] = np.array(0.0)
    for axis, step in (data.walk_step or {}).items():
        start |= {f"law_trend_{axis}": np.array(0.0), f"law_trend_split_{axis}": np.array(0.0)}
        if len(step) > 1:
            start[f"law_bridge_{axis}_z"] = np.zeros(len(step) - 1)
        if f"law_curvature_{axis}" in with_walk:
            start |= {f"law_bend_{axis}": np.array(0.0), f"law_bend_split_{axis}": np.array(0.0)}
    return start


def lr_column(config: ModelConfig) -> str:
    return "eff_lr" if config.lr_kind == "effective" else "lr"


def run_weights(runs: pd.DataFrame, config: ModelConfig, held_out=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which runs enter the likelihood, and how: returns (weight, censored, threshold_raw).

    Rule, stated in every fit: ok runs within `window_octaves` of the cell's best observed LR
    are observed; diverged runs in the same window are right-censored at the cell's worst ok
    loss (or excluded); failed runs and held-out cells never enter.
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
    """Turn a validated runs table (scalefit.grid) into standardized model arrays.

    Standardization uses only the cells that carry data, so a held-out cell is a true
    extrapolation in z. `z_scale` overrides the sd of ln N / ln D / ln B used for z (the
    posterior in natural units must not depend on it; tests check that).
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


# The cell-to-cell scatters the centring rule compares a cell's own precision with: of the
# optimum (nats of LR; used when the table has too few cells to estimate it) and of the log
# valley width.
TYPICAL_TAU = 0.3
TYPICAL_WIDTH_SD = 0.5
MIN_SCATTER_DOF = 5  # cells beyond the law's coefficients needed to estimate the optima's scatter


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
    """The optima's scatter around the law, by moments: the residual sum of squares of a
    least-squares law fit to the cells' vertices is tau^2 (n - p) + sum (1 - h_i) se_i^2 in
    expectation (h the hat matrix's diagonal), floored at 0. None with fewer than
    MIN_SCATTER_DOF cells beyond the law's p coefficients. A table whose optima lie on the law
    (synthetic2000: the truth has none; hyperball 130M: posterior tau 0.01-0.02) gets 0, and its
    optima non-centred: centred, they funnel as tau's posterior reaches 0."""
    n, p = design.shape
    if n - p < MIN_SCATTER_DOF:
        return None
    hat = design @ np.linalg.pinv(design)
    resid = vertex - hat @ vertex
    excess = float(resid @ resid) - float(np.sum((1 - np.diag(hat)) * se2))
    return float(np.sqrt(max(excess, 0.0) / (n - p)))


def valley_shape(d, asymmetry=None, xp=np):
    """g(d): d^2 when `asymmetry` is None, else the LINEX shape 2(e^{kd} - 1 - kd)/k^2.

    LINEX equals d^2 to second order, keeps its minimum at d = 0, rises exponentially on the
    high-LR side (k > 0) and only linearly on the low side, so it stays sane far out. It is the
    one-parameter limit of the power-law pair of THEORY.md 4.1: with the pair's two rates the
    low-side rate was not identified by sweeps and the sampler crawled along it.
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
    """
    if asymmetry is None:
        return d**2
    unit = 0.5 * (valley_shape(1.0, asymmetry, xp) + valley_shape(-1.0, asymmetry, xp))
    return valley_shape(d, asymmetry, xp) / unit


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


def _scale_prior(pm, name: str, prior: dict):
    """Gamma(alpha, beta) when the prior gives alpha and beta, else HalfNormal(sigma).

    Gamma with alpha >= 2 keeps a scale off zero (a boundary-avoiding prior, Chung et al. 2013,
    Psychometrika 78:685). Not the default: on hyperball 130M it moved tau only from 0.01 to 0.02.
    """
    if "alpha" in prior:
        return pm.Gamma(name, alpha=prior["alpha"], beta=prior["beta"])
    return pm.HalfNormal(name, **prior)


def student_t_logsf(t, nu: float, pm, pt):
    """log P(T > t) for a standard Student-t with `nu` degrees of freedom.

    For nu = 1, 2 and 4 in closed form, with u = t/sqrt(nu + t^2):
      nu = 2: sf = (1 - u)/2;   nu = 4: sf = (1 - u)^2 (2 + u)/4;   nu = 1: atan2(1, t)/pi.
    For t >= 0, 1 - u = nu/(r(r + t)) with r = sqrt(nu + t^2), free of cancellation; each branch
    of the switch sees only its own half-line (max/min with 0), so both stay finite and the
    gradient is clean everywhere, t = 0 included. Otherwise PyMC's incomplete-beta logccdf,
    which costs about half of a gradient evaluation on the bundled grid (59 censored runs against
    87 observed; 40 against 21 us per evaluation).
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


def _law_walk(pm, pt, axis: str, d: dict, priors: dict, n_steps: int, with_curvature: bool):
    """The law's form error along `axis`, drawn together with the law's slope (and curvature)
    there.

    The walk W is a Brownian motion in e-folds t from the smallest value (W(0) = 0, scale
    kappa); beyond the data it keeps diffusing, so the interval widens with the distance
    (predict continues it from the fitted cells). It is drawn as its linear part g t
    (g ~ N(0, kappa^2 / T), T the last position) plus a Brownian bridge, independent of g.
    The data see only sums: the slope b ~ N(mu, sigma) and g act together, and a curvature c
    (per e-fold^2, about the data's centre t_c) is c t_c^2 + c a t - c h(t) with a = T - 2 t_c and
    h(t) = t (T - t), the bridge's own shape. So the bridge is split into l h, with l its GLS
    coefficient on h (l ~ N(0, kappa^2 / |v|^2), v = L^-1 h for the bridge's Cholesky factor L),
    plus a remainder independent of l. The two sums the data see, S = b + g + a c ("trend") and
    U = l - c ("bend"), are drawn from their joint prior, then c given (S, U), then b given
    S - a c; what the data cannot see are standard normals of their own instead of ridges
    between slope, curvature, walk and intercept (cpu_ladder_v1: tail ESS 47 per 4,000 draws
    for the slope and the walk; synthetic2000: bulk ESS 98 per 2,000 for curvature_D against
    the bridge). The joint prior of (b, c, W) is unchanged.

    Returns the slope's and the curvature's (None without one) natural coefficients and the walk
    at the positions.
    """
    kappa = _scale_prior(pm, f"law_discrepancy_{axis}", priors["law_discrepancy"])
    position = d[f"walk_position_{axis}"]
    total = position[-1]
    if n_steps > 1:
        reach, shape, v, increment = (d[f"walk_bridge_{axis}"][row] for row in range(4))
    slope = priors[f"law_slope_{axis}"]
    mu, sigma = slope["mu"], slope["sigma"]
    g_var = kappa**2 / total
    if with_curvature:
        curv = priors[f"law_curvature_{axis}"]
        mu_c, var_c = curv["mu"], curv["sigma"] ** 2
        a = d[f"walk_offset_{axis}"]  # T - 2 t_c
        vv = pt.sum(v**2)
        l_var = kappa**2 / vv
        s_rest = sigma**2 + g_var  # variance of b + g
        var_u, var_s, cov_su = var_c + l_var, s_rest + a**2 * var_c, -a * var_c
        # q = 0 (data: no cell at the axis's last position, as in a backtest that holds out the
        # largest cells): the sums over [0, T] are not what the data see, and the curvature is
        # drawn on its own (U then keeps its prior; nothing uses it). Harness, hyperball 130M
        # Muon: the 3-5 cell prefixes sampled at half the speed with the split.
        q = d[f"bend_split_{axis}"]
        u = pm.Normal(f"law_bend_{axis}", mu=-mu_c, sigma=pt.sqrt(var_u))
        s = pm.Normal(f"law_trend_{axis}", mu=mu + q * (a * mu_c + cov_su / var_u * (u + mu_c)),
                      sigma=pt.sqrt(s_rest + q * (a**2 * var_c - cov_su**2 / var_u)))
        # c given (S, U) in precision form, stable as kappa -> 0 (then l -> 0 and c -> -U)
        denom = kappa**2 / var_c + vv + a**2 * kappa**2 / s_rest
        c_mean = (mu_c * kappa**2 / var_c - u * vv + a * (s - mu) * kappa**2 / s_rest) / denom
        e_c = pm.Normal(f"law_bend_split_{axis}", 0, 1)
        c = q * (c_mean + kappa / pt.sqrt(denom) * e_c) + (1 - q) * (mu_c + np.sqrt(var_c) * e_c)
        ell = u + c
        s = s - q * a * c
    else:
        s = pm.Normal(f"law_trend_{axis}", mu=mu, sigma=pt.sqrt(sigma**2 + g_var))
        c = None
    r = sigma**2 / (sigma**2 + g_var)
    b = mu + r * (s - mu) + sigma * pt.sqrt(1 - r) * pm.Normal(f"law_trend_split_{axis}", 0, 1)
    g = s - b
    if n_steps > 1:
        # B_k = kappa (T - t_k) sum_{j<=k} sqrt(dt_j / ((T - t_j)(T - t_{j-1}))) z_j, partially
        # centred: z = kappa^-wc z_raw, z_raw ~ N(0, kappa^wc). Non-centred (wc = 0) suits
        # most tables: a few increments barely inform kappa, and on steplaw_moe wc = 0.5 gave
        # 1-3 divergences per 2,000 draws against none. Where the data pin every position's law
        # value (synthetic2000: 10 cells of 40 runs per budget) the non-centred bridge funnels
        # at large kappa (28-44 divergences per 2,000 draws); wc = 0.5 gave 0-3, and 1 gave 18-29.
        wc = d["walk_centre_power"]
        zb = pm.Normal(f"law_bridge_{axis}_z", 0, kappa**wc, shape=(position.shape[0] - 2,))
        if with_curvature:  # the remainder: z with its component along v (that is, l) taken out
            zb = zb - q * v * pt.sum(v * zb) / vv
        interior = kappa ** (1 - wc) * reach * pt.cumsum(increment * zb)
        if with_curvature:
            interior = interior + q * ell * shape
        bridge = pt.concatenate([pt.zeros(1), interior, pt.zeros(1)])
    else:
        bridge = pt.zeros(2)
    walk = pm.Deterministic(f"law_walk_{axis}", g * position + bridge)
    return b, c, walk


def build_model(data: ModelData, config: ModelConfig):
    """The PyMC model for `data` (import of PyMC deferred: the CLI's `check` must stay fast)."""
    import pymc as pm
    import pytensor.tensor as pt

    pr = config.priors
    coords = {"cell": np.arange(data.n_cells)}
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, value, dims="cell" if name.startswith(("z_", "cell_share")) or name.endswith("centring") else None)
             for name, value in data.arrays().items()}
        z = {"N": d["z_n"], "D": d["z_d"]}
        z["B"] = d.get("z_b")  # present only when the law has a batch-size term
        sds = {a: d.get(f"sd_{a}") for a in ("N", "D", "B")}
        with_walk = terms_with_walk(data)
        walks = {axis: _law_walk(pm, pt, axis, d, pr, len(step), f"law_curvature_{axis}" in with_walk)
                 for axis, step in (data.walk_step or {}).items()}
        coefs = {}
        for name, axis, power in data.terms:
            # Priors are stated per e-fold (power 1) or per e-fold^2 (power 2); a coefficient on
            # z = (ln v - centre) / sd is the natural one times sd^power.
            # The sd is data (not a constant of the graph), so a refit that swaps in another
            # table keeps its priors per e-fold.
            sd = term_value(sds, axis, power)
            if name in with_walk:
                natural = walks[axis][power - 1]
                coefs[name] = pm.Deterministic(name, natural * sd)
            else:
                coefs[name] = pm.Normal(name, mu=pr[name]["mu"] * sd, sigma=pr[name]["sigma"] * sd)
                natural = coefs[name] / sd
            pm.Deterministic(f"{name}_natural", natural)
        rest = pt.zeros_like(d["z_n"])
        for name, axis, power in data.terms:
            rest = rest + coefs[name] * term_value(z, axis, power)
        for axis, (_, _, walk) in walks.items():
            rest = rest + walk[d[f"walk_index_{axis}"]]
        # The data pin the law's mean over the cells with data: the intercept is drawn as that
        # level (centred) and recovered exactly, so it does not trade off against the walk or
        # the curvatures (whose mean over the cells is not 0).
        shift = pt.sum(d["cell_share"] * rest)
        level = pm.Normal("law_level", mu=pr["law_intercept"]["mu"] + shift, sigma=pr["law_intercept"]["sigma"])
        law = pm.Deterministic("law_intercept", level - shift) + rest
        tau = _scale_prior(pm, "law_residual_sd", pr["law_residual_sd"])
        # Partially non-centred by how informative each cell's own sweep is (cell_centring):
        # m = law + tau^(1-w) (m_raw - w law), m_raw ~ N(w law, tau^w). w = 1 is centred, w = 0
        # non-centred; w is data, so cells of any mix share one compiled model.
        w = d["centring"]
        raw = pm.Normal("log_lr_opt_raw", mu=w * law, sigma=tau**w, dims="cell")
        m = pm.Deterministic("log_lr_opt", law + tau ** (1 - w) * (raw - w * law), dims="cell")

        floor_mean = (pm.Normal("floor_intercept", **pr["floor_intercept"])
                      + pm.Normal("floor_slope_N", **pr["floor_slope"]) * z["N"]
                      + pm.Normal("floor_slope_D", **pr["floor_slope"]) * z["D"])
        floor = pm.Normal("floor", mu=floor_mean, sigma=_scale_prior(pm, "floor_sd", pr["floor_sd"]), dims="cell")
        # Non-centred: when cells share one width (or one noise level) the centred form funnels.
        # Centred when every cell's sweep pins its width down (many runs per cell), non-centred
        # when cells are thin: the wrong choice costs 5-10x in effective sample size.
        width_mean = pm.Normal("log_width_mean", **pr["log_width_mean"])
        width_sd = pm.HalfNormal("log_width_sd", **pr["log_width_sd"])
        # Partially non-centred like the optima: a sweep that pins its valley's width is centred.
        # On steplaw_moe (80 sharp cells of 9 LRs, width sd 0.57) non-centred widths gave bulk
        # ESS 90 per 6,000 draws.
        ww = d["width_centring"]
        width_raw = pm.Normal("log_width_raw", mu=ww * width_mean, sigma=width_sd**ww, dims="cell")
        log_width = pm.Deterministic("log_width", width_mean + width_sd ** (1 - ww) * (width_raw - ww * width_mean),
                                     dims="cell")
        # Noise is a smooth function of scale, not a free effect per cell: 5-10 runs barely
        # inform a cell's own noise, and a per-cell hierarchy funnels and slows sampling 2x.
        log_noise = pm.Deterministic(
            "log_noise", pm.Normal("log_noise_mean", **pr["log_noise_mean"])
            + pm.Normal("log_noise_slope_N", 0.0, pr["log_noise_sd"]["sigma"]) * z["N"]
            + pm.Normal("log_noise_slope_D", 0.0, pr["log_noise_sd"]["sigma"]) * z["D"],
            dims="cell")

        asymmetry = pm.Normal("valley_asymmetry", **pr["valley_asymmetry"]) if config.valley == "asymmetric" else None
        if asymmetry is not None and config.asymmetry == "per_cell":
            # Valley-shape discrepancy: each cell its own asymmetry, partially pooled, so a
            # cell's optimum is only as certain as its sweep pins the shape.
            asym_sd = pm.HalfNormal("valley_asymmetry_sd", **pr["valley_asymmetry_sd"])
            asymmetry = pm.Deterministic(
                "valley_asymmetry_cell", asymmetry + asym_sd * pm.Normal("valley_asymmetry_z", 0, 1, dims="cell"),
                dims="cell")
        valley = {}  # per part: (mean loss, noise scale) of each run
        for part in ("obs", "cens"):
            cell = d[f"cell_{part}"]
            k = asymmetry[cell] if asymmetry is not None and config.asymmetry == "per_cell" else asymmetry
            mu = floor[cell] + pt.exp(log_width)[cell] * valley_rise(d[f"x_{part}"] - m[cell], k, xp=pt)
            valley[part] = (mu, pt.exp(log_noise)[cell])
        obs_mu, obs_sigma = valley["obs"]
        pm.Potential("loglik_obs", pm.logp(pm.StudentT.dist(nu=config.nu, mu=obs_mu, sigma=obs_sigma),
                                           d["y_obs"]).sum())
        cens_mu, cens_sigma = valley["cens"]
        pm.Potential("loglik_cens", student_t_logsf((d["threshold_cens"] - cens_mu) / cens_sigma, config.nu,
                                                    pm, pt).sum())
    return model
