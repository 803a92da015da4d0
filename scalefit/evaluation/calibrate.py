"""Calibration harness: rolling leave-largest-out backtests on the user's own grid, scored.

A *chain* is a line of cells ordered along one direction of scale: along N at fixed D (or at a
fixed tokens-per-parameter ratio when every size has its own D: the ladder), along D at fixed N,
or every cell for the joint N,D law; one chain per batch size when the table has several. For
every prefix of a chain with at least `min_cells` cells the model is fitted on the prefix and
predicts every later cell of the chain, so one chain yields predictions at several extrapolation
distances. Competitors on the same held-out cells (`METHODS`):

- ``point``: the two-stage log-linear fit (per-cell parabola vertex, least squares through the
  vertices), what StepLaw and Marin report; a point, no interval;
- ``point_lattice``: that point rounded to the swept LR lattice of the prefix (the LR a team
  would set from its own grid): the nearest LR any prefix cell swept when the point lies inside
  their range, else the edge LR plus a whole number of lattice steps, the step being the median
  over prefix cells of each sweep's median ln-LR spacing;
- ``ols_pi``: the textbook OLS t prediction interval through the prefix's cell vertices
  (`scalefit.evaluation.scores.ols_prediction`), on the family's law covariates (ln N and/or
  ln D, plus ln B when the model's law has a batch-size term);
- ``bootstrap``: a cell bootstrap around the point fit (resample the prefix's cells with
  replacement, refit the law), the interval StepLaw computes internally and never shows.

The truth for a held-out cell is its own sweep's measured optimum: seed-averaged loss per LR,
then the vertex of the parabola in ln LR through the best LR and its two neighbours
(`scalefit.evaluation.truth.vertex_optimum`). A cell whose best LR is at an edge of its sweep is
unbracketed: it is listed, flagged, and kept out of every score.

Scores (log10 LR units unless noted), per held-out row:

- naive: |log10 error| of the median; 50% and 90% coverage; 90% width in decades; the interval
  score of Gneiting & Raftery (2007, JASA 102:359) at alpha = 0.1, in decades; the log predictive
  density of ln LR* (nats, a Gaussian KDE of the draws);
- noise-aware (suffix ``_na``): the measured optimum is itself noisy. For the model, its
  predictive valley at the held-out cell (`scalefit.fit.predict.target_valley_draws`) is swept
  at the held-out sweep's own LRs and seed counts and measured the same way
  (`scalefit.evaluation.scores.posterior_scores`; ``p_bracketed`` is the share of simulated
  sweeps that bracket, the rest are dropped); for the point methods, the truth's bootstrap sd
  (`scalefit.evaluation.truth.bootstrap_vertex_sd`) is added in quadrature to each interval
  (`scalefit.evaluation.scores.truth_noise_scores`); ``pit_na`` is the PIT of the truth;
- regret at each method's recommended LR (the model: its posterior decision, the LR minimizing
  expected loss; the point methods: their point), read off the held-out sweep by a 3-point local
  quadratic against its best seed-averaged loss (`scalefit.evaluation.scores.regret`):
  ``regret_nats`` and ``regret_noise`` (in noise floors, the sd of one run); for the model also
  its predicted regret against the realized one (``regret_pred*``).

`summarize` pools rows so every held-out cell weighs once (`scalefit.evaluation.pooling`), with
cluster-bootstrap 90% intervals (``<score>_lo``/``<score>_hi``) and weighted medians.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.evaluation import pooling
from scalefit.evaluation import scores as sc
from scalefit.evaluation.truth import Sweep, ValleyDraws, bootstrap_vertex_sd
from scalefit.fit.baseline import cell_vertex
from scalefit.model.config import ModelConfig, auto_axis
from scalefit.runs.table import RunsTable, batch_swept
from scalefit.model.law import fit_law_axes
from scalefit.inference.sampling import SamplerSettings

__all__ = ["calibrate", "Calibration", "Chain", "chains", "summarize", "format_summary", "format_scores",
           "method_records", "scored_rows", "sweep_optimum", "distance_efolds", "bootstrap_draws", "interval_score",
           "lattice_point", "FAMILIES", "METHODS", "ALPHA", "SCORES"]

FAMILIES = ("N", "D", "ND")
METHODS = ("model", "point", "point_lattice", "ols_pi", "bootstrap")
ALPHA = 0.1  # interval-score level: the 90% interval
LOG10 = np.log(10.0)
# pooled by `summarize` (those present in the rows)
SCORES = ("abs_log10_err", "cover50", "cover90", "width90_dec", "interval_score", "lpd",
          "cover50_na", "cover90_na", "width90_na_dec", "interval_score_na", "pit_na", "p_bracketed",
          "regret_nats", "regret_noise", "regret_pred", "regret_pred_error", "regret_pred_cover90", "converged")
NA_SCORES = ("cover50_na", "cover90_na", "width90_na_dec", "interval_score_na", "pit_na")


@dataclass(frozen=True)
class Chain:
    """Cells ordered along one direction of scale; prefixes of it are fitted, the rest predicted.

    Attributes
    ----------
    family : str
        "N", "D" or "ND": the law's axis for fits along this chain.
    label : str
        What is held fixed along the chain, for reports (e.g. "N at n_tokens=4e+06").
    cells : tuple of int
        Table cell ids, smallest scale first.
    kind : str
        "fixed D", "fixed N", "tokens/param" (N at a fixed tokens-per-parameter ratio: a ladder,
        whose D grows with N) or "joint".
    """

    family: str  # "N", "D" or "ND": the law's axis
    label: str
    cells: tuple[int, ...]  # table cell ids, smallest scale first
    kind: str = ""  # "fixed D", "fixed N", "tokens/param" (the ladder) or "joint"


def _group_keys(table: RunsTable, extra: list[str]) -> list[str]:
    """Chains run per batch size when batch size is swept; a recipe's batch size (one per
    (N, D)) varies along the chain instead."""
    cells = table.cells
    keys = (["batch_size"] if batch_swept(cells) else []) + list(table.cell_by)
    return keys + [k for k in extra if k in cells]


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)


def chains(table: RunsTable, families=FAMILIES, min_cells: int = 3) -> list[Chain]:
    """Every backtest chain the table supports for the given law families.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    families : iterable of str, default FAMILIES
        Any of "N", "D", "ND".
    min_cells : int, default 3
        A chain needs more cells than this (at least one to predict).

    Returns
    -------
    list of Chain

    Raises
    ------
    ValueError
        For an unknown family.
    """
    cells = table.cells
    out = []
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
        if family == "ND":
            groups = cells.groupby(_group_keys(table, []), dropna=False) if _group_keys(table, []) else [((), cells)]
            for key, g in groups:
                if g["n_params"].nunique() >= 2 and g["n_tokens"].nunique() >= 2 and len(g) > min_cells:
                    order = (np.log(g["n_params"]) + np.log(g["n_tokens"])).sort_values(kind="stable").index
                    out.append(Chain("ND", _label("N,D", _group_keys(table, []), key), tuple(int(c) for c in order),
                                     "joint"))
            continue
        col, fixed = ("n_params", "n_tokens") if family == "N" else ("n_tokens", "n_params")
        keys = _group_keys(table, [fixed])
        found = []
        for key, g in cells.groupby(keys, dropna=False):
            if g[col].nunique() > min_cells:
                found.append(Chain(family, _label(f"{family}", keys, key),
                                   tuple(int(c) for c in g.sort_values(col, kind="stable").index),
                                   "fixed D" if family == "N" else "fixed N"))
        if not found and family == "N":
            # Every size has its own D (e.g. D = 20 N): a chain along N at ~fixed tokens-per-parameter.
            # If the batch size grows with the size too (a scaled recipe), the chain spans it.
            for base in (_group_keys(table, []), list(table.cell_by)):
                groups = cells.groupby(base, dropna=False) if base else [((), cells)]
                for key, g in groups:
                    if g[col].nunique() > min_cells and g[col].nunique() == len(g) and \
                            stats.spearmanr(g["n_params"], g["n_tokens"]).statistic > 0.99:
                        ratio = float(np.median(g["n_tokens"] / g["n_params"]))
                        found.append(Chain("N", _label(f"N at tokens/param (D/N) ~ {ratio:.3g}", base, key),
                                           tuple(int(c) for c in g.sort_values(col, kind="stable").index),
                                           "tokens/param"))
                if found:
                    break
        out += found
    return out


def _label(head: str, keys: list[str], key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    parts = [f"{k}={_fmt(v)}" for k, v in zip(keys, key)]
    return head + (" at " + ", ".join(parts) if parts else "")


def sweep_optimum(runs: pd.DataFrame) -> tuple[float, bool]:
    """A cell's own optimum in ln LR, and whether its sweep brackets it.

    Seed-averaged loss per LR; the vertex of the parabola through the best LR and its two
    neighbours, kept between those neighbours. Unbracketed (best at an edge): the best LR, False.

    Parameters
    ----------
    runs : pandas.DataFrame
        One cell's runs.

    Returns
    -------
    tuple of (float, bool)
        The optimum in ln LR, and whether the sweep brackets it.
    """
    return Sweep.from_frame(runs).optimum()


def distance_efolds(fitted: pd.DataFrame, target: pd.Series, family: str) -> float:
    """How far the target lies beyond the fitted cells' range, in e-folds (0 inside it).

    Parameters
    ----------
    fitted : pandas.DataFrame
        The fitted cells (``n_params``, ``n_tokens``).
    target : pandas.Series
        The target cell.
    family : str
        "N", "D", or "ND" (Euclidean over ln N and ln D).

    Returns
    -------
    float
    """
    axes = {"N": ["n_params"], "D": ["n_tokens"], "ND": ["n_params", "n_tokens"]}[family]
    d2 = 0.0
    for col in axes:
        lo, hi = np.log(fitted[col].min()), np.log(fitted[col].max())
        v = np.log(float(target[col]))
        d2 += max(v - hi, lo - v, 0.0) ** 2
    return float(np.sqrt(d2))


def bootstrap_draws(vertices: pd.Series, design: pd.DataFrame, target: dict, n_boot: int = 1000,
                    seed: int = 0) -> np.ndarray:
    """ln LR* at the target from `n_boot` cell-bootstrap refits of the log-linear law.

    Resamples whose design is rank-deficient (too few distinct cells) are redrawn, up to
    20 * `n_boot` attempts in all.

    Parameters
    ----------
    vertices : pandas.Series
        Per-cell vertex ln LR.
    design : pandas.DataFrame
        Per-cell covariates of the law (columns such as ``ln_n``, ``ln_d``).
    target : dict
        The target's covariates, keyed like `design`'s columns.
    n_boot : int, default 1000
        Bootstrap refits.
    seed : int, default 0
        Seed of the resampling.

    Returns
    -------
    numpy.ndarray
        ln LR* at the target, one per refit.
    """
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(len(design)), design.to_numpy(dtype=float)])
    y = vertices.to_numpy(dtype=float)
    xt = np.concatenate([[1.0], [target[c] for c in design.columns]])
    out = []
    for _ in range(20 * n_boot):
        idx = rng.integers(0, len(y), len(y))
        if np.linalg.matrix_rank(X[idx]) < X.shape[1]:
            continue
        coef, *_ = np.linalg.lstsq(X[idx], y[idx], rcond=None)
        out.append(float(xt @ coef))
        if len(out) == n_boot:
            break
    return np.asarray(out)


def interval_score(lo: float, hi: float, truth: float, alpha: float = ALPHA) -> float:
    """Gneiting-Raftery interval score: width plus 2/alpha times the miss distance.

    Parameters
    ----------
    lo, hi : float
        The interval.
    truth : float
        The value it should contain.
    alpha : float, default ALPHA
        1 minus the interval's probability.

    Returns
    -------
    float
        In the units of the arguments; lower is better.
    """
    return float(sc.interval_score(lo, hi, truth, alpha))


def _score_draws(log_draws: np.ndarray, truth_ln: float) -> dict:
    """Median, 50/90% ETI (ln LR) and the log density of the truth under a KDE of the draws."""
    q = np.quantile(log_draws, [0.05, 0.25, 0.5, 0.75, 0.95])
    if np.ptp(log_draws) > 1e-12:
        lpd = float(np.log(max(stats.gaussian_kde(log_draws)(truth_ln)[0], 1e-300)))
    else:
        lpd = float("-inf")
    return {"median": q[2], "lo50": q[1], "hi50": q[3], "lo90": q[0], "hi90": q[4], "lpd": lpd}


def _law_columns(family: str) -> list[str]:
    return {"N": ["ln_n"], "D": ["ln_d"], "ND": ["ln_n", "ln_d"]}[family]


@dataclass
class Calibration:
    """A calibration run: one row per (held-out cell, prefix, method), plus per-fit convergence.

    Attributes
    ----------
    rows : pandas.DataFrame
        One row per held-out cell, chain prefix and method (`METHODS`): family, chain,
        chain_kind, prefix, auto_axis (the axis ``--axis auto`` would fit on the prefix),
        cell_label, n_params, n_tokens, distance_efolds (along the family's axes), distance_nd
        (joint, over ln N and ln D) and distance_bin (of distance_nd: "inside" is inside both
        fitted ranges), truth_lr, bracketed, converged, lr_median, log10_err, the naive 50% and
        90% coverage, width90_dec, interval_score and lpd; the noise-aware cover50_na,
        cover90_na, width90_na_dec, interval_score_na and pit_na (truth_sd: the truth's bootstrap
        sd in ln LR); lr_rec (the recommended LR), regret_nats, regret_noise (in noise floors,
        noise_sd), regret_inside; model rows also carry p_bracketed, the predicted regret
        (regret_pred, regret_pred_error, regret_pred_cover90, regret_pred_pit) and ``error``
        (why no nominal answer, else ""); ols_pi rows ``ols_reason`` (why no interval, else "").
    fits : pandas.DataFrame
        One row per backtest fit: family, chain, prefix, converged, max_rhat, min_ess_bulk,
        divergences.
    """

    rows: pd.DataFrame
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self, by=("method",), **options) -> pd.DataFrame:
        """Scores per method (and any other grouping), over bracketed held-out cells.

        Parameters
        ----------
        by : tuple of str, default ("method",)
            Columns of `rows` to group by.
        **options
            Passed to `summarize` (``n_boot``, ``equal``, ``seed``).

        Returns
        -------
        pandas.DataFrame
            See `summarize`.
        """
        return summarize(self.rows, by, **options)


def _row_keys(rows: pd.DataFrame) -> list[str]:
    """The columns naming one prediction (a held-out cell from one prefix of one chain)."""
    return [c for c in ("dataset", "subset", "lr_kind", "family", "chain", "prefix", "cell_label") if c in rows]


def scored_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The rows `summarize` pools: bracketed, commonly scored cells.

    A prediction (a held-out cell from one prefix) with an ``error`` on any row (the model had
    no nominal answer) leaves every method, so the methods are compared on the same cells. The
    noise-aware scores are likewise kept only where the model and the truth-noise methods all
    have them (the truth's bootstrap sd and the model's simulated sweeps both exist).

    Parameters
    ----------
    rows : pandas.DataFrame
        `Calibration.rows`.

    Returns
    -------
    tuple of (pandas.DataFrame, pandas.Series)
        The kept rows (with ``abs_log10_err``), and for every bracketed row whether it failed.
    """
    scored = rows[rows["bracketed"].astype(bool)].copy()
    keys = _row_keys(scored)
    failed = pd.Series(False, scored.index)
    if "error" in scored:
        bad = scored["error"].fillna("").astype(str).ne("")
        failed = bad.groupby([scored[k] for k in keys], dropna=False).transform("any").astype(bool) if keys else bad
    kept = scored[~failed].copy()
    kept["abs_log10_err"] = kept["log10_err"].abs()
    for c in ("cover50", "cover90", "cover50_na", "cover90_na", "regret_pred_cover90", "converged"):
        if c in kept:  # booleans (NaN where unscored) pool as shares
            kept[c] = kept[c].astype(object).astype(float)
    present = [c for c in NA_SCORES if c in kept]
    if present and keys and "cover90_na" in kept:
        # methods whose noise-aware score rests on the truth (all but ols_pi, which may lack an interval)
        common = kept["method"].ne("ols_pi") if "method" in kept else pd.Series(True, kept.index)
        missing = kept["cover90_na"].isna() & common
        drop = missing.groupby([kept[k] for k in keys], dropna=False).transform("any").astype(bool)
        kept.loc[drop, present] = np.nan
    return kept, failed


def summarize(rows: pd.DataFrame, by=("method",), n_boot: int = 2000, equal: str | None = None,
              seed: int = 0) -> pd.DataFrame:
    """Scores over bracketed held-out cells, every held-out cell weighing once.

    Rows with an ``error`` (no prediction) are counted in ``n_failed``, and the same cell leaves
    every method's scores, so the methods stay compared on the same cells (`scored_rows`). Within
    each group a cell predicted by k prefixes (or chains) gets weight 1/k per row
    (`scalefit.evaluation.pooling.cluster_weights` over dataset, subset and cell_label, those
    present; every row its own cell without them), and the 90% intervals resample whole cells
    (`scalefit.evaluation.pooling.cluster_bootstrap`).

    Parameters
    ----------
    rows : pandas.DataFrame
        `Calibration.rows` (or rows of the same form, e.g. several datasets with a ``dataset``
        column).
    by : tuple of str, default ("method",)
        Columns to group by (e.g. ("family", "method") or ("distance_bin", "method")).
    n_boot : int, default 2000
        Cluster-bootstrap replicates per score and group.
    equal : str, optional
        A column whose levels weigh equally (e.g. "dataset"); cells are then resampled within
        each level.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Per group: n (rows), n_cells (distinct held-out cells), n_failed, then for every score of
        `SCORES` present in the rows its weighted mean (named as the score; coverages and
        ``converged`` as shares), ``<score>_lo``/``<score>_hi`` (cluster-bootstrap 90% interval)
        and ``<score>_median``. Interval scores are NaN for a method without intervals.
    """
    by = list(by)
    kept, failed = scored_rows(rows)
    cluster = [k for k in pooling.CELL_KEYS if k in kept]
    if not cluster:
        kept["_row"] = np.arange(len(kept))
        cluster = ["_row"]
    present = [s for s in SCORES if s in kept]
    scored_groups = rows[rows["bracketed"].astype(bool)]
    groups = scored_groups.groupby(by, sort=False, dropna=False) if by else [((), scored_groups)]
    out = []
    for key, g in groups:
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        mine = kept.loc[kept.index.intersection(g.index)]
        rec |= {"n": int(len(mine)), "n_failed": int(failed.loc[g.index].sum())}
        if mine.empty:
            rec["n_cells"] = 0
            out.append(rec | {s: np.nan for s in present})
            continue
        table = pooling.score_table(mine, present, by=(), cluster=cluster, equal=equal, n_boot=n_boot, seed=seed)
        rec |= table.iloc[0].drop("n_rows").to_dict()
        rec["n_cells"] = int(rec["n_cells"])
        out.append(rec)
    frame = pd.DataFrame(out)
    lead = [*by, "n", "n_cells", "n_failed"]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def calibrate(table: RunsTable, families=FAMILIES, config: ModelConfig = ModelConfig(),
              settings: SamplerSettings = SamplerSettings(), min_cells: int = 3,
              n_boot: int = 1000, progress: bool = True, seed: int = 0) -> Calibration:
    """Run every rolling backtest of every chain; score the model and its competitors.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    families : iterable of str, default FAMILIES
        Law families to backtest: any of "N", "D", "ND".
    config : scalefit.model.config.ModelConfig, default ModelConfig()
        The model; each chain's family sets its axis.
    settings : scalefit.inference.sampling.SamplerSettings, default SamplerSettings()
        Sampler settings of every backtest fit; the default is ``scalefit fit``'s (up to 3000
        draws per chain, stopping once ESS reaches ``target_ess`` with r_hat <= 1.01).
    min_cells : int, default 3
        The smallest prefix fitted.
    n_boot : int, default 1000
        Bootstrap refits per held-out cell (the cell bootstrap), and replicates of the truth's
        bootstrap sd.
    progress : bool, default True
        Show a progress bar on stderr.
    seed : int, default 0
        Seed of the simulated sweeps, the bootstraps and the PITs.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        When the table has no chain long enough to backtest.

    Examples
    --------
    >>> from scalefit import load_runs
    >>> from scalefit.evaluation.calibrate import calibrate, format_scores
    >>> result = calibrate(load_runs("runs.csv"), families=["N"])  # doctest: +SKIP
    >>> print(format_scores(result.summary()))  # doctest: +SKIP
    """
    from scalefit.fit.core import fit_runs

    work = [(ch, k) for ch in chains(table, families, min_cells) for k in range(min_cells, len(ch.cells))
            if _identified(table.cells.loc[list(ch.cells[:k])], ch.family)]
    if not work:
        raise ValueError(f"no chain of more than {min_cells} cells along {'/'.join(families)} in {table.source}: "
                         "nothing to backtest")
    bar = _progress(len(work), progress)
    truths = _TruthCache(table, n_boot, seed)
    rows, fits = [], []
    for chain, k in work:
        sub = table.subset(np.array(chain.cells))
        # subset renumbers cells in sorted id order; map the chain's order onto the new ids
        new_id = {old: new for new, old in enumerate(sorted(chain.cells))}
        fitted = [new_id[c] for c in chain.cells[:k]]
        held = [new_id[c] for c in chain.cells[k:]]
        cfg = config.replace(axis=chain.family)
        fit = fit_runs(sub, cfg, settings, held_out=held)
        conv = fit.convergence
        fits.append({"family": chain.family, "chain": chain.label, "prefix": k, "converged": conv.converged,
                     "max_rhat": conv.max_rhat, "min_ess_bulk": conv.min_ess_bulk, "divergences": conv.divergences})
        vertices = _vertices(sub, fitted)
        fitted_cells = sub.cells.loc[fitted]
        has_b = "B" in fit_law_axes(fit.config, fit.std)
        design = pd.DataFrame({"ln_n": np.log(fitted_cells["n_params"]), "ln_d": np.log(fitted_cells["n_tokens"])},
                              index=fitted)[_law_columns(chain.family)]
        ols_cols = _law_columns(chain.family) + (["ln_b"] if has_b else [])
        ols_design = _covariates(fitted_cells)[ols_cols]
        grid = _prefix_lattice(sub, fitted)
        axis_auto = auto_axis(fitted_cells)
        for c_new, c_old in zip(held, chain.cells[k:]):
            info = sub.cells.loc[c_new]
            truth, bracketed = truths.optimum(c_old)
            target = {"ln_n": np.log(info["n_params"]), "ln_d": np.log(info["n_tokens"])}
            d_nd = distance_efolds(fitted_cells, info, "ND")
            base = {"family": chain.family, "chain": chain.label, "chain_kind": chain.kind, "prefix": k,
                    "n_fitted": k, "auto_axis": axis_auto, "cell_label": info["label"],
                    "n_params": float(info["n_params"]), "n_tokens": float(info["n_tokens"]),
                    "distance_efolds": distance_efolds(fitted_cells, info, chain.family),
                    "distance_nd": d_nd, "distance_bin": str(pooling.distance_bin([d_nd])[0]),
                    "truth_lr": float(np.exp(truth)), "bracketed": bracketed, "converged": conv.converged}
            # the held-out cell's batch size, where the law has a batch-size term
            batch = float(info["batch_size"]) if has_b else None
            rng = np.random.default_rng([seed, k, int(c_old), len(rows)])
            sweep, truth_sd = truths.sweep(c_old), truths.sd(c_old)
            model = _model_row(fit, info, batch, truth)
            if model.get("error", "") == "":
                model |= _model_noise_aware(fit, info, batch, truths.runs(c_old), sweep, rng)
            rows.append(base | {"method": "model"} | model)
            # the point methods, scored naive and with the truth's noise in quadrature
            coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(design)), design.to_numpy(float)]),
                                       vertices.to_numpy(float), rcond=None)
            point = float(np.concatenate([[1.0], [target[c] for c in design.columns]]) @ coef)
            rows.append(base | {"method": "point"} | _scores({"median": point}, truth)
                        | _point_aware(truth, truth_sd, point, None, sweep))
            snapped = lattice_point(grid, point)
            rows.append(base | {"method": "point_lattice"} | _scores({"median": snapped}, truth)
                        | _point_aware(truth, truth_sd, snapped, None, sweep))
            x0 = np.concatenate([[1.0], [_target_covariates(info)[c] for c in ols_cols]])
            ols = sc.ols_prediction(np.column_stack([np.ones(len(ols_design)), ols_design.to_numpy(float)]),
                                    vertices.loc[ols_design.index].to_numpy(float), x0)
            rows.append(base | {"method": "ols_pi"} | _ols_row(ols, truth, truth_sd, sweep, rng))
            boot = bootstrap_draws(vertices, design, target, n_boot=n_boot)
            summary = _score_draws(boot, truth)
            rows.append(base | {"method": "bootstrap"} | _scores(summary, truth)
                        | _point_aware(truth, truth_sd, summary["median"],
                                       {0.5: (summary["lo50"], summary["hi50"]), 0.9: (summary["lo90"], summary["hi90"])},
                                       sweep, spread=boot))
        bar.update(1)
    bar.close()
    return Calibration(rows=pd.DataFrame(rows), fits=pd.DataFrame(fits))


class _TruthCache:
    """Per held-out cell, computed once: its runs, its sweep (nominal LR), measured optimum and
    the optimum's bootstrap sd."""

    def __init__(self, table: RunsTable, n_boot: int, seed: int):
        self.table, self.n_boot, self.seed = table, n_boot, seed
        self._runs, self._sweep, self._sd = {}, {}, {}

    def runs(self, cell: int) -> pd.DataFrame:
        if cell not in self._runs:
            self._runs[cell] = self.table.runs[self.table.runs["cell"] == cell]
        return self._runs[cell]

    def sweep(self, cell: int) -> Sweep | None:
        if cell not in self._sweep:
            try:
                self._sweep[cell] = Sweep.from_frame(self.runs(cell))
            except ValueError:  # no ok run with a finite loss
                self._sweep[cell] = None
        return self._sweep[cell]

    def optimum(self, cell: int) -> tuple[float, bool]:
        sweep = self.sweep(cell)
        return (float("nan"), False) if sweep is None else sweep.optimum()

    def sd(self, cell: int) -> float:
        if cell not in self._sd:
            sweep = self.sweep(cell)
            self._sd[cell] = float("nan") if sweep is None else \
                bootstrap_vertex_sd(sweep, n_boot=self.n_boot, seed=[self.seed, int(cell)])[0]
        return self._sd[cell]


def _covariates(cells: pd.DataFrame) -> pd.DataFrame:
    """ln N, ln D and ln B of cells (ln B NaN without a batch_size column)."""
    b = cells["batch_size"].astype(float) if "batch_size" in cells else pd.Series(np.nan, cells.index)
    return pd.DataFrame({"ln_n": np.log(cells["n_params"].astype(float)), "ln_d": np.log(cells["n_tokens"].astype(float)),
                         "ln_b": np.log(b)}, index=cells.index)


def _target_covariates(info: pd.Series) -> dict:
    """ln N, ln D and ln B of one cell."""
    b = float(info["batch_size"]) if "batch_size" in info and pd.notna(info["batch_size"]) else np.nan
    return {"ln_n": np.log(float(info["n_params"])), "ln_d": np.log(float(info["n_tokens"])), "ln_b": np.log(b)}


def _prefix_lattice(sub: RunsTable, fitted: list[int]) -> tuple[np.ndarray, float]:
    """The prefix's swept LRs (distinct ln LR over its cells, every run) and the lattice step:
    the median over its cells of each sweep's median ln-LR spacing."""
    runs = sub.runs[sub.runs["cell"].isin(fitted)]
    values = np.unique(np.round(np.log(runs["lr"].to_numpy(dtype=float)), 9))
    steps = [np.median(np.diff(u)) for _, r in runs.groupby("cell")
             if (u := np.unique(np.round(np.log(r["lr"].to_numpy(dtype=float)), 9))).size >= 2]
    return values, float(np.median(steps)) if steps else float("nan")


def lattice_point(grid: tuple[np.ndarray, float], log_lr: float) -> float:
    """A point prediction rounded to the prefix's swept LR lattice (ln LR).

    Inside the range of the LRs the prefix swept: the nearest of them. Beyond it: the edge LR
    plus the whole number of lattice steps nearest the point (the lattice extended past the
    sweeps, as a team extends its grid to a larger model).

    Parameters
    ----------
    grid : tuple of (numpy.ndarray, float)
        The swept ln LRs (ascending) and the lattice step (ln units).
    log_lr : float
        The point, ln LR.

    Returns
    -------
    float
        The snapped ln LR (the point itself when the grid is empty or the step unknown).

    Examples
    --------
    >>> import numpy as np
    >>> from scalefit.evaluation.calibrate import lattice_point
    >>> grid = (np.log([1e-3, 2e-3, 4e-3]), np.log(2.0))
    >>> [round(float(np.exp(lattice_point(grid, np.log(v)))), 6) for v in (1.3e-3, 1.5e-3, 7e-3, 1.2e-2)]
    [0.001, 0.002, 0.008, 0.016]
    """
    values, step = grid
    if not np.isfinite(log_lr) or values.size == 0:
        return float(log_lr)
    if values[0] <= log_lr <= values[-1]:
        return float(values[np.argmin(np.abs(values - log_lr))])
    edge = values[0] if log_lr < values[0] else values[-1]
    if not (np.isfinite(step) and step > 0):  # one LR swept: no lattice beyond it
        return float(edge)
    return float(edge + step * np.round((log_lr - edge) / step))


def _regret_cols(sweep: Sweep | None, log_lr: float) -> dict:
    """Regret of setting `log_lr` on the held-out sweep (3-point local fit; noise floor unit)."""
    if sweep is None or not np.isfinite(log_lr):
        return {"lr_rec": float(np.exp(log_lr)), "regret_nats": np.nan, "regret_noise": np.nan,
                "noise_sd": np.nan, "regret_inside": False}
    r = sc.regret(sweep, log_lr)
    return {"lr_rec": float(np.exp(log_lr)), "regret_nats": r.nats, "regret_noise": r.noise_units,
            "noise_sd": r.noise_sd, "regret_inside": r.inside}


def _aware_cols(s: dict) -> dict:
    """truth_noise_scores' output as the row's noise-aware columns."""
    return {"cover50_na": s["cover50"], "cover90_na": s["cover90"], "width90_na_dec": s["width90_dec"],
            "interval_score_na": s["interval_score"]}


def _point_aware(truth: float, truth_sd: float, center: float, intervals, sweep, spread=None) -> dict:
    """A point method's noise-aware scores (its intervals widened by the truth's bootstrap sd),
    its PIT (the truth against the prediction plus Gaussian truth noise) and its regret."""
    s = sc.truth_noise_scores(truth, truth_sd, center, intervals)
    pit = np.nan
    if np.isfinite(truth_sd) and truth_sd > 0 and np.isfinite(center):
        pred = np.asarray([center] if spread is None else spread, dtype=float)
        pit = float(np.mean(stats.norm.cdf((truth - pred) / truth_sd)))
    return _aware_cols(s) | {"pit_na": pit, "truth_sd": truth_sd} | _regret_cols(sweep, center)


def _ols_row(ols: sc.OLSPrediction, truth: float, truth_sd: float, sweep, rng) -> dict:
    """ols_pi's naive scores (its t prediction interval), noise-aware scores and regret."""
    if ols.reason:
        return _scores({"median": ols.center}, truth) | {"ols_reason": ols.reason, "truth_sd": truth_sd} | \
            {k: np.nan for k in ("cover50_na", "cover90_na", "width90_na_dec", "interval_score_na", "pit_na")} | \
            _regret_cols(sweep, ols.center)
    lo50, hi50 = ols.interval(0.5)
    lo90, hi90 = ols.interval(0.9)
    lpd = float(stats.t.logpdf((truth - ols.center) / ols.scale, ols.df) - np.log(ols.scale))
    naive = _scores({"median": ols.center, "lo50": lo50, "hi50": hi50, "lo90": lo90, "hi90": hi90, "lpd": lpd}, truth)
    aware = _point_aware(truth, truth_sd, ols.center, {0.5: (lo50, hi50), 0.9: (lo90, hi90)}, sweep)
    if np.isfinite(truth_sd):  # the PIT of t plus Gaussian noise, by simulation
        sims = ols.center + ols.scale * rng.standard_t(ols.df, 4000) + truth_sd * rng.standard_normal(4000)
        aware["pit_na"] = float(np.mean(sims < truth))
    return naive | aware | {"ols_reason": ""}


def _model_noise_aware(fit, info: pd.Series, batch, cell_runs: pd.DataFrame, sweep, rng) -> dict:
    """The model's noise-aware scores and regret at one held-out cell.

    Its predictive valley (`scalefit.fit.predict.target_valley_draws`, natural units) is swept at
    the held-out sweep's LRs and seed counts (in eff_lr for an effective-LR fit, whose valleys
    live there); regret is read at the posterior's decision (the nominal LR minimizing expected
    loss), and the predicted regret per draw is that decision's loss above each draw's optimum.
    """
    from scalefit.fit.predict import decide, target_valley_draws
    from scalefit.model.valley import valley_rise

    effective = getattr(fit.config, "lr_kind", "nominal") == "effective"
    v = target_valley_draws(fit, info["n_params"], info["n_tokens"], batch_size=batch)
    out = {}
    measured = sweep
    if effective:
        try:
            measured = Sweep.from_frame(cell_runs, col="eff_lr")
        except (KeyError, ValueError):  # no finite eff_lr at the cell
            measured = None
    if measured is not None:
        draws = ValleyDraws(optimum=v["optimum"], width=np.exp(v["log_width"]), noise=v["noise"],
                            floor=v["floor"], asymmetry=v["asymmetry"])
        ps = sc.posterior_scores(draws, measured, nu=v["nu"], seed=rng)
        out |= {"cover50_na": ps["aware_cover50"], "cover90_na": ps["aware_cover90"],
                "width90_na_dec": ps["aware_width90_dec"], "interval_score_na": ps["aware_interval_score"],
                "pit_na": ps["aware_pit"], "p_bracketed": ps["p_bracketed"]}
    std = fit.std
    std_draws = {"m": v["optimum"] - std.x_center, "width": np.exp(v["log_width"]) / std.y_scale,
                 "asymmetry": v["asymmetry"]}
    x_dec = decide(std_draws)
    log_dec = x_dec + std.x_center
    if effective:
        try:
            log_dec = fit.eff_map.decide_nominal(std_draws, std.x_center, info["n_params"], info["n_tokens"])
        except ValueError:  # the map does not rise there: no nominal decision
            log_dec = float("nan")
    out |= _regret_cols(sweep, log_dec)
    predicted = np.exp(v["log_width"]) * valley_rise(x_dec - std_draws["m"], v["asymmetry"])
    s = sc.score_regret(predicted, out["regret_nats"], out["noise_sd"], seed=rng)
    out |= {"regret_pred": s["predicted"], "regret_pred_error": s["error"],
            "regret_pred_cover90": s.get("cover", np.nan), "regret_pred_pit": s.get("pit", np.nan)}
    return out


def _model_row(fit, info: pd.Series, batch, truth: float) -> dict:
    """The model's naive scores for one held-out cell. An effective-LR fit whose eff_lr map cannot be
    inverted at that cell (scalefit.fit.effective: too few map draws rise there) gives no nominal
    prediction: the row keeps the reason in ``error`` and stays out of the scores (``summarize``
    counts it as ``n_failed``) instead of ending the whole run."""
    from scalefit.fit.predict import nominal_log_lr_draws

    effective = getattr(fit.config, "lr_kind", "nominal") == "effective"
    # share of the eff_lr map's draws that rise at the cell (those the nominal draws go through)
    extra = {"map_rising": fit.eff_map.rising_fraction(info["n_params"], info["n_tokens"]) if effective else np.nan}
    try:
        draws = nominal_log_lr_draws(fit, info["n_params"], info["n_tokens"], batch_size=batch)
    except ValueError as err:
        if not effective:
            raise
        return _scores({"median": np.nan}, truth) | {"log10_err": np.nan, "error": str(err)} | extra
    if effective:  # the prediction before the map: the effective optimum's median at the cell
        from scalefit.fit.predict import fit_target_draws

        eff = fit_target_draws(fit, info["n_params"], info["n_tokens"], batch_size=batch)["m"] + fit.std.x_center
        extra["eff_lr_median"] = float(np.exp(np.median(eff)))
    return _scores(_score_draws(draws, truth), truth) | {"error": ""} | extra


def _identified(fitted: pd.DataFrame, family: str) -> bool:
    """A prefix can carry the family's law: >= 2 distinct values on each law axis, and for the
    joint law more cells than the log-linear law's 3 coefficients."""
    cols = {"N": ["n_params"], "D": ["n_tokens"], "ND": ["n_params", "n_tokens"]}[family]
    return all(fitted[c].nunique() >= 2 for c in cols) and len(fitted) >= len(cols) + 2


def _vertices(sub: RunsTable, fitted: list[int]) -> pd.Series:
    """Two-stage step one: each fitted cell's parabola vertex in ln LR (seed-averaged)."""
    out = {}
    for c in fitted:
        r = sub.runs[(sub.runs["cell"] == c) & (sub.runs["status"] == "ok")]
        mean = r.groupby("log_lr")["final_loss"].mean()
        out[c] = cell_vertex(mean.index.to_numpy(), mean.to_numpy())[0]
    return pd.Series(out)


def _scores(s: dict, truth: float) -> dict:
    """Scores in log10 units from ln-LR summaries."""
    out = {"lr_median": float(np.exp(s["median"])), "log10_err": float((s["median"] - truth) / LOG10)}
    if "lo90" not in s:
        return out | {k: np.nan for k in ("lr_lo90", "lr_hi90", "lo90", "cover50", "cover90", "width90_dec",
                                          "interval_score", "lpd")}
    return out | {
        "lr_lo90": float(np.exp(s["lo90"])), "lr_hi90": float(np.exp(s["hi90"])), "lo90": s["lo90"],
        "cover50": bool(s["lo50"] <= truth <= s["hi50"]), "cover90": bool(s["lo90"] <= truth <= s["hi90"]),
        "width90_dec": float((s["hi90"] - s["lo90"]) / LOG10),
        "interval_score": interval_score(s["lo90"] / LOG10, s["hi90"] / LOG10, truth / LOG10),
        "lpd": s["lpd"],
    }


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="backtests", unit="fit", file=sys.stderr)


def format_summary(summary: pd.DataFrame) -> str:
    """Markdown table of a summary frame (coverages as percentages, other floats to 3 decimals).

    Parameters
    ----------
    summary : pandas.DataFrame
        From `summarize` or `Calibration.summary`.

    Returns
    -------
    str
    """
    cols = [c for c in summary.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in summary.to_dict(orient="records"):
        cells = []
        for c in cols:
            v = rec[c]
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else (f"{v:.0%}" if c.startswith("cover") else f"{v:.3f}"))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ci(rec: dict, score: str) -> list[float]:
    return [float(rec.get(f"{score}_lo", np.nan)), float(rec.get(f"{score}_hi", np.nan))]


def method_records(summary: pd.DataFrame) -> dict:
    """The headline figures per method, keyed by method (what ``scalefit calibrate --json``
    carries under ``methods``).

    Parameters
    ----------
    summary : pandas.DataFrame
        `summarize` by ("method",).

    Returns
    -------
    dict
        ``method -> {n_cells, cover90_noise_aware, cover90_ci, width90_noise_aware,
        interval_score_noise_aware, interval_score_ci, abs_log10_err, abs_log10_err_median,
        regret_nats, regret_nats_ci, regret_noise, cover90, interval_score, converged}``; a CI is
        a [lo, hi] pair (cluster bootstrap, 90%).
    """
    out = {}
    for rec in summary.to_dict(orient="records"):
        get = lambda k: float(rec.get(k, np.nan))  # noqa: E731
        out[str(rec["method"])] = {
            "n_cells": int(rec.get("n_cells", 0)), "n": int(rec.get("n", 0)),
            "cover90_noise_aware": get("cover90_na"), "cover90_ci": _ci(rec, "cover90_na"),
            "cover50_noise_aware": get("cover50_na"),
            "width90_noise_aware": get("width90_na_dec"),
            "interval_score_noise_aware": get("interval_score_na"), "interval_score_ci": _ci(rec, "interval_score_na"),
            "pit_noise_aware": get("pit_na"),
            "abs_log10_err": get("abs_log10_err"), "abs_log10_err_median": get("abs_log10_err_median"),
            "regret_nats": get("regret_nats"), "regret_nats_ci": _ci(rec, "regret_nats"),
            "regret_noise": get("regret_noise"),
            "cover90": get("cover90"), "interval_score": get("interval_score"), "converged": get("converged")}
    return out


def _pct(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.0%}"


def _num(v: float, digits: int = 3) -> str:
    return "" if not np.isfinite(v) else f"{v:.{digits}f}"


def format_scores(summary: pd.DataFrame) -> str:
    """The compact v2 table of a summary: per group, cells, noise-aware 90% coverage [CI], the
    noise-aware 90% width, the noise-aware interval score [CI], |log10 error| mean (median),
    regret in nats [CI], and the naive 90% coverage beside it.

    Parameters
    ----------
    summary : pandas.DataFrame
        From `summarize` (any grouping).

    Returns
    -------
    str
        A Markdown table.
    """
    lead = [c for c in summary.columns if c not in ("n", "n_cells", "n_failed")
            and not any(c == s or c.startswith(s + "_") for s in SCORES)]
    head = [*lead, "cells", "cover90_na [CI]", "width90_na", "IS_na [CI]", "|err| mean (median)",
            "regret nats [CI]", "cover90 naive"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in summary.to_dict(orient="records"):
        g = lambda k: float(rec.get(k, np.nan))  # noqa: E731

        def ci(score, fmt):
            lo, hi = _ci(rec, score)
            return "" if not np.isfinite(g(score)) else f"{fmt(g(score))} [{fmt(lo)}, {fmt(hi)}]"
        cells = [str(rec[c]) for c in lead] + [str(int(rec.get("n_cells", 0) or 0)),
                                              ci("cover90_na", _pct), _num(g("width90_na_dec"), 2),
                                              ci("interval_score_na", _num),
                                              "" if not np.isfinite(g("abs_log10_err")) else
                                              f"{g('abs_log10_err'):.3f} ({g('abs_log10_err_median'):.3f})",
                                              ci("regret_nats", lambda v: _num(v, 4)), _pct(g("cover90"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
