"""How far AdamW runs got towards weight-norm equilibrium, measured from their trajectories.

See the theory page, docs/theory.md#timescale (and docs/theory.md#measured-plateau for the
plateau measured on scalefit's own runs): with decoupled weight decay the mean-square weight
rho^2 of a hidden matrix relaxes
towards its equilibrium on the timescale 1/(2 lr wd) steps, so a run that has spent
E(t) = 2 wd sum_{s<t} lr_s "timescales" should sit at rho^2(t) = P - (P - rho^2(0)) exp(-E(t)) in
units of the peak-LR equilibrium lr / (2 wd), where P is the plateau it relaxes to (1 if Adam's
update had RMS lr per element; measured here, see below).

Per run (``trajectory.parquet``, hidden matrices at the probe cadence):

- ``r_stable``: mean hidden RMS^2 at the last probed step of the constant-LR phase (lr_mult >=
  0.999, before the WSD decay), divided by lr / (2 wd); ``r0`` the same at the first probe.
- ``E_stable``: 2 wd lr sum of the schedule multiplier up to that step (from the per-step rows:
  the schedule actually applied, not the plan). ``equilibration_number`` (result.json) is the
  whole run's E.
- ``plateau``: P of the run's size, measured as the median ``r_stable`` of that size's runs with
  ``E_stable >= plateau_min_E`` (the long, high-wd runs, whose rho^2 has stopped moving).
- ``tau_traj``: the timescales elapsed as the trajectory shows them,
  ln(|P - r0| / |P - r_stable|): the factor by which the gap to the plateau has shrunk. It equals
  E_stable when the relaxation law above holds, is noise-limited near the plateau (capped at
  ``TAU_CAP``), and is ``TAU_CAP`` when the run has reached or crossed the plateau.

Regimes: "inside the transient" tau_traj < 1; "past equilibrium" tau_traj > 3.
Numpy/pandas only: no torch, no PyMC.

Examples
--------
>>> from scalefit.runs import equilibrium as eq
>>> import pandas as pd
>>> runs = pd.read_csv("data/cpu_ladder_v2_h100/runs.csv")  # doctest: +SKIP
>>> states = eq.grid_states("data/cpu_ladder_v2_h100", runs)  # doctest: +SKIP
>>> eq.best_runs(states)["tau_traj"].map(eq.regime).value_counts()  # doctest: +SKIP
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.runs.schema import LEGACY_RUN_ID, RUN_ID, runs_root

__all__ = ["TAU_CAP", "PLATEAU_MIN_E", "STABLE_MULT", "rho2_series", "schedule_sum", "run_state", "tau_traj",
           "grid_states", "best_runs", "regime", "law_residuals"]

TAU_CAP = 8.0          # beyond this the gap is below the run-to-run noise of the plateau
PLATEAU_MIN_E = 8.0    # runs whose stable phase spans at least this many timescales set P
STABLE_MULT = 0.999    # lr_mult at or above this: the constant phase of WSD


def rho2_series(traj: pd.DataFrame) -> pd.DataFrame:
    """Per probed step: mean hidden RMS^2 (``rho2``) and the schedule multiplier (``s``).

    Parameters
    ----------
    traj : pandas.DataFrame
        A run's ``trajectory.parquet`` (:data:`scalefit.train.probe.TRAJECTORY_COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        Indexed by step; columns rho2 and s.
    """
    h = traj[traj["group"] == "hidden"]
    r2 = (h["norm"].to_numpy(float) ** 2) / h["numel"].to_numpy(float)
    out = (h.assign(r2=r2).groupby("step").agg(rho2=("r2", "mean"), s=("lr_mult", "first")))
    return out.sort_index()


def schedule_sum(traj: pd.DataFrame, until: int) -> float:
    """sum_{t < until} s(t) from the per-step rows (every step; falls back to the probed rows).

    Parameters
    ----------
    traj : pandas.DataFrame
        A run's trajectory.
    until : int
        First step not counted.

    Returns
    -------
    float
        The sum of the applied schedule multipliers.
    """
    step_rows = traj[traj["group"] == "hidden_gmean"]
    src = step_rows if len(step_rows) else traj[traj["group"] == "hidden"]
    s = src.groupby("step")["lr_mult"].first()
    return float(s[s.index < until].sum())


def run_state(traj: pd.DataFrame, lr: float, wd: float) -> dict:
    """r0, r_stable, the stable phase's last step and E_stable of one AdamW run.

    Parameters
    ----------
    traj : pandas.DataFrame
        The run's trajectory.
    lr : float
        Its peak LR.
    wd : float
        Its weight decay (> 0).

    Returns
    -------
    dict
        r0, r_stable (in units of lr / (2 wd)), step_stable, E_stable (see the module
        docstring). Without a constant-LR phase the last probed step stands for it.
    """
    rho = rho2_series(traj)
    eq = lr / (2 * wd)
    stable = rho[rho["s"] >= STABLE_MULT]
    t_s = int(stable.index.max()) if len(stable) else int(rho.index.max())
    return {"r0": float(rho["rho2"].iloc[0] / eq), "r_stable": float(rho.loc[t_s, "rho2"] / eq),
            "step_stable": t_s, "E_stable": 2 * wd * lr * schedule_sum(traj, t_s + 1)}


def tau_traj(r0: float, r_stable: float, plateau: float) -> float:
    """ln(|P - r0| / |P - r_stable|), TAU_CAP at or past the plateau (see the module docstring).

    Parameters
    ----------
    r0 : float
        rho^2 at the first probe, in units of lr / (2 wd).
    r_stable : float
        rho^2 at the end of the stable phase, same units.
    plateau : float
        P of the run's size.

    Returns
    -------
    float
        Timescales elapsed, in [0, :data:`TAU_CAP`].
    """
    g0, g1 = plateau - r0, plateau - r_stable
    if g0 == 0 or g1 == 0 or math.copysign(1, g0) != math.copysign(1, g1):
        return TAU_CAP
    return float(min(TAU_CAP, max(0.0, math.log(abs(g0) / abs(g1)))))


def grid_states(grid_dir: str | Path, runs: pd.DataFrame, plateau_min_E: float = PLATEAU_MIN_E) -> pd.DataFrame:
    """``run_state`` for every ok AdamW run of ``runs`` (rows need run_id, lr, weight_decay,
    size; an older table may name the id ``cell_id``), plus the per-size
    plateau and ``tau_traj``. Trajectories are read from the runner output ``grid_dir``
    (``runs/<id>/`` or the old ``cells/<id>/``).

    Parameters
    ----------
    grid_dir : str or Path
        The runner output directory holding the trajectories.
    runs : pandas.DataFrame
        Its runs table (optimizer, status, weight_decay, lr, size, run_id or cell_id).
    plateau_min_E : float, default PLATEAU_MIN_E
        Runs whose stable phase spans at least this many timescales set the plateau.

    Returns
    -------
    pandas.DataFrame
        The ok AdamW rows with weight decay > 0, with r0, r_stable, step_stable, E_stable,
        plateau (a size without long runs takes the median over all long runs) and tau_traj.

    Raises
    ------
    ValueError
        If no run reaches ``plateau_min_E``: the plateau cannot be measured.
    """
    grid_dir = Path(grid_dir)
    if RUN_ID not in runs and LEGACY_RUN_ID in runs:
        runs = runs.rename(columns={LEGACY_RUN_ID: RUN_ID})
    root = runs_root(grid_dir)
    aw = runs[(runs["optimizer"] == "adamw") & (runs["status"] == "ok") & (runs["weight_decay"] > 0)]
    rows = []
    for run_id, lr, wd in zip(aw[RUN_ID], aw["lr"], aw["weight_decay"]):
        traj = pd.read_parquet(root / run_id / "trajectory.parquet")
        rows.append({RUN_ID: run_id, **run_state(traj, lr, wd)})
    st = aw.merge(pd.DataFrame(rows), on=RUN_ID)
    long = st[st["E_stable"] >= plateau_min_E]
    plateau = long.groupby("size")["r_stable"].median()
    if plateau.empty:
        raise ValueError(f"no run with E_stable >= {plateau_min_E}: the plateau cannot be measured")
    st["plateau"] = st["size"].map(plateau).fillna(float(long["r_stable"].median()))
    st["tau_traj"] = [tau_traj(a, b, p) for a, b, p in zip(st["r0"], st["r_stable"], st["plateau"])]
    return st


def best_runs(states: pd.DataFrame) -> pd.DataFrame:
    """The best (lowest final loss) run of every (weight decay, size, D, seed) sweep.

    Parameters
    ----------
    states : pandas.DataFrame
        A :func:`grid_states` table.

    Returns
    -------
    pandas.DataFrame
        One row per sweep, sorted by weight decay, size, N, D, seed.
    """
    keys = ["weight_decay", "size", "n_params", "n_tokens", "seed"]
    idx = states.groupby(keys)["final_loss"].idxmin()
    return states.loc[idx].sort_values(keys).reset_index(drop=True)


def regime(tau: float) -> str:
    """The regime label of a ``tau_traj`` value.

    Parameters
    ----------
    tau : float
        Timescales elapsed (:func:`tau_traj`).

    Returns
    -------
    str
        ``"inside (<1)"``, ``"between (1-3)"`` or ``"past (>3)"``.

    Examples
    --------
    >>> regime(0.5), regime(2.0), regime(5.0)
    ('inside (<1)', 'between (1-3)', 'past (>3)')
    """
    return "inside (<1)" if tau < 1 else "past (>3)" if tau > 3 else "between (1-3)"


def law_residuals(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per weight decay: OLS of ln(vertex LR) on ln N and ln D (the log-linear law every peer fits),
    and each sweep's residual in ln units (positive: the optimum sits above the law).

    Parameters
    ----------
    sweeps : pandas.DataFrame
        One row per sweep with weight_decay, n_params, n_tokens, vertex_lr
        (:func:`scalefit.grids.status.sweeps`).

    Returns
    -------
    pandas.DataFrame
        ``sweeps`` with law_slope_N, law_slope_D (per weight decay) and law_residual.
    """
    out = []
    for wd, g in sweeps.groupby("weight_decay"):
        X = np.column_stack([np.ones(len(g)), np.log(g["n_params"].to_numpy(float)),
                             np.log(g["n_tokens"].to_numpy(float))])
        y = np.log(g["vertex_lr"].to_numpy(float))
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        out.append(g.assign(law_slope_N=coef[1], law_slope_D=coef[2], law_residual=y - X @ coef))
    return pd.concat(out).reset_index(drop=True)
