"""Calibration harness: rolling leave-largest-out backtests on the user's own grid, scored.

A *chain* is a line of cells ordered along one direction of scale: along N at fixed D (or at a
fixed tokens-per-parameter ratio when every size has its own D), along D at fixed N, or every
cell for the joint N,D law; one chain per batch size when the table has several. For every
prefix of a chain with at least `min_cells` cells the model is fitted on the prefix and predicts
every later cell of the chain, so one chain yields predictions at several extrapolation
distances. Competitors on the same held-out cells:

- ``point``: the two-stage log-linear fit (per-cell parabola vertex, least squares through the
  vertices), what StepLaw and Marin report; a point, no interval;
- ``bootstrap``: a cell bootstrap around that point fit (resample the prefix's cells with
  replacement, refit the law), the interval StepLaw computes internally and never shows.

The truth for a held-out cell is its own sweep's optimum: seed-averaged loss per LR, then the
vertex of the parabola in ln LR through the best LR and its two neighbours (so it is not
quantized to the sweep's grid). A cell whose best LR is at an edge of its sweep is unbracketed:
it is listed, flagged, and kept out of every score.

Scores (log10 LR units unless noted): mean |log10 error| of the median; 50% and 90% coverage;
mean 90% width in decades; the interval score of Gneiting & Raftery (2007, JASA 102:359) at
alpha = 0.1, in decades; the held-out log predictive density of ln LR* (nats, from a Gaussian KDE
of the draws).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scalefit.fit.baseline import cell_vertex
from scalefit.model.config import ModelConfig
from scalefit.runs.table import RunsTable, batch_swept
from scalefit.model.law import fit_law_axes
from scalefit.inference.sampling import SamplerSettings

__all__ = ["calibrate", "Calibration", "Chain", "chains", "summarize", "format_summary", "sweep_optimum",
           "distance_efolds", "bootstrap_draws", "interval_score", "FAMILIES", "ALPHA"]

FAMILIES = ("N", "D", "ND")
ALPHA = 0.1  # interval-score level: the 90% interval
LOG10 = np.log(10.0)


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
    """

    family: str  # "N", "D" or "ND": the law's axis
    label: str
    cells: tuple[int, ...]  # table cell ids, smallest scale first


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
                    out.append(Chain("ND", _label("N,D", _group_keys(table, []), key), tuple(int(c) for c in order)))
            continue
        col, fixed = ("n_params", "n_tokens") if family == "N" else ("n_tokens", "n_params")
        keys = _group_keys(table, [fixed])
        found = []
        for key, g in cells.groupby(keys, dropna=False):
            if g[col].nunique() > min_cells:
                found.append(Chain(family, _label(f"{family}", keys, key),
                                   tuple(int(c) for c in g.sort_values(col, kind="stable").index)))
        if not found and family == "N":
            # Every size has its own D (e.g. D = 20 N): a chain along N at ~fixed tokens-per-parameter.
            # If the batch size grows with the size too (a scaled recipe), the chain spans it.
            for base in (_group_keys(table, []), list(table.cell_by)):
                groups = cells.groupby(base, dropna=False) if base else [((), cells)]
                for key, g in groups:
                    if g[col].nunique() > min_cells and g[col].nunique() == len(g) and \
                            stats.spearmanr(g["n_params"], g["n_tokens"]).statistic > 0.99:
                        ratio = float(np.median(g["n_tokens"] / g["n_params"]))
                        found.append(Chain("N", _label(f"N (D/N ~ {ratio:.3g})", base, key),
                                           tuple(int(c) for c in g.sort_values(col, kind="stable").index)))
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
    ok = runs[(runs["status"] == "ok") & np.isfinite(runs["final_loss"])]
    mean = ok.groupby(np.round(np.log(ok["lr"].to_numpy(dtype=float)), 9))["final_loss"].mean().sort_index()
    x, y = mean.index.to_numpy(dtype=float), mean.to_numpy(dtype=float)
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i]), False
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    vertex = -b / (2 * a) if a > 0 else x[i]
    return float(np.clip(vertex, x[i - 1], x[i + 1])), True


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
    return float((hi - lo) + (2 / alpha) * max(lo - truth, 0.0) + (2 / alpha) * max(truth - hi, 0.0))


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
        One row per held-out cell, chain prefix and method ("model", "point", "bootstrap"):
        family, chain, prefix, cell_label, n_params, n_tokens, distance_efolds, truth_lr,
        bracketed, lr_median, log10_err, the 50% and 90% coverage, width90_dec, interval_score,
        lpd; model rows also carry ``error`` (why no nominal answer, else "").
    fits : pandas.DataFrame
        One row per backtest fit: family, chain, prefix, converged, max_rhat, min_ess_bulk,
        divergences.
    """

    rows: pd.DataFrame
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self, by=("method",)) -> pd.DataFrame:
        """Scores per method (and any other grouping), over bracketed held-out cells.

        Parameters
        ----------
        by : tuple of str, default ("method",)
            Columns of `rows` to group by.

        Returns
        -------
        pandas.DataFrame
            See `summarize`.
        """
        return summarize(self.rows, by)


def summarize(rows: pd.DataFrame, by=("method",)) -> pd.DataFrame:
    """Scores over bracketed held-out cells.

    Rows with an ``error`` (no prediction) are counted in ``n_failed``, and the same cell leaves
    every method's scores, so the methods stay compared on the same cells.

    Parameters
    ----------
    rows : pandas.DataFrame
        `Calibration.rows` (or rows of the same form).
    by : tuple of str, default ("method",)
        Columns to group by.

    Returns
    -------
    pandas.DataFrame
        Per group: n, n_failed, abs_log10_err, cover50, cover90, width90_dec, interval_score,
        lpd (interval scores NaN for a method without intervals).
    """
    scored = rows[rows["bracketed"]]
    failed = pd.Series(False, scored.index)
    if "error" in scored:  # a cell without a model prediction leaves every method's score, so all
        keys = [c for c in ("dataset", "subset", "lr_kind", "family", "chain", "prefix", "cell_label")
                if c in scored]  # compare the same cells
        bad = scored["error"].fillna("").astype(str).ne("")
        failed = bad.groupby([scored[k] for k in keys], dropna=False).transform("any").astype(bool) if keys else bad
    out = []
    for key, g in scored.groupby(list(by), sort=False):
        bad = failed.loc[g.index]
        g = g[~bad]
        has_interval = len(g) > 0 and g["lo90"].notna().all()
        out.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                    "n": int(len(g)), "n_failed": int(bad.sum()),
                    "abs_log10_err": float(g["log10_err"].abs().mean()),
                    "cover50": float(g["cover50"].mean()) if has_interval else np.nan,
                    "cover90": float(g["cover90"].mean()) if has_interval else np.nan,
                    "width90_dec": float(g["width90_dec"].mean()) if has_interval else np.nan,
                    "interval_score": float(g["interval_score"].mean()) if has_interval else np.nan,
                    "lpd": float(g["lpd"].mean()) if has_interval else np.nan})
    return pd.DataFrame(out)


def calibrate(table: RunsTable, families=FAMILIES, config: ModelConfig = ModelConfig(),
              settings: SamplerSettings = SamplerSettings(draws=1000, tune=500), min_cells: int = 3,
              n_boot: int = 1000, progress: bool = True) -> Calibration:
    """Run every rolling backtest of every chain; score the model, the point fit and the bootstrap.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table.
    families : iterable of str, default FAMILIES
        Law families to backtest: any of "N", "D", "ND".
    config : scalefit.model.config.ModelConfig, default ModelConfig()
        The model; each chain's family sets its axis.
    settings : scalefit.inference.sampling.SamplerSettings, default SamplerSettings(draws=1000, tune=500)
        Sampler settings of every backtest fit.
    min_cells : int, default 3
        The smallest prefix fitted.
    n_boot : int, default 1000
        Bootstrap refits per held-out cell.
    progress : bool, default True
        Show a progress bar on stderr.

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
    >>> from scalefit.evaluation.calibrate import calibrate, format_summary
    >>> result = calibrate(load_runs("runs.csv"), families=["N"])  # doctest: +SKIP
    >>> print(format_summary(result.summary()))  # doctest: +SKIP
    """
    from scalefit.fit.core import fit_runs

    work = [(ch, k) for ch in chains(table, families, min_cells) for k in range(min_cells, len(ch.cells))
            if _identified(table.cells.loc[list(ch.cells[:k])], ch.family)]
    if not work:
        raise ValueError(f"no chain of more than {min_cells} cells along {'/'.join(families)} in {table.source}: "
                         "nothing to backtest")
    bar = _progress(len(work), progress)
    truths = {c: sweep_optimum(table.runs[table.runs["cell"] == c]) for c in table.cells.index}
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
        design = pd.DataFrame({"ln_n": np.log(fitted_cells["n_params"]), "ln_d": np.log(fitted_cells["n_tokens"])},
                              index=fitted)[_law_columns(chain.family)]
        for c_new, c_old in zip(held, chain.cells[k:]):
            info = sub.cells.loc[c_new]
            truth, bracketed = truths[c_old]
            target = {"ln_n": np.log(info["n_params"]), "ln_d": np.log(info["n_tokens"])}
            base = {"family": chain.family, "chain": chain.label, "prefix": k, "n_fitted": k,
                    "cell_label": info["label"], "n_params": float(info["n_params"]),
                    "n_tokens": float(info["n_tokens"]), "distance_efolds": distance_efolds(fitted_cells, info, chain.family),
                    "truth_lr": float(np.exp(truth)), "bracketed": bracketed, "converged": conv.converged}
            # the held-out cell's batch size, where the law has a batch-size term
            batch = float(info["batch_size"]) if "B" in fit_law_axes(fit.config, fit.std) else None
            rows.append(base | {"method": "model"} | _model_row(fit, info, batch, truth))
            boot = bootstrap_draws(vertices, design, target, n_boot=n_boot)
            coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(design)), design.to_numpy(float)]),
                                       vertices.to_numpy(float), rcond=None)
            point = float(np.concatenate([[1.0], [target[c] for c in design.columns]]) @ coef)
            rows.append(base | {"method": "point"} | _scores({"median": point}, truth))
            rows.append(base | {"method": "bootstrap"} | _scores(_score_draws(boot, truth), truth))
        bar.update(1)
    bar.close()
    return Calibration(rows=pd.DataFrame(rows), fits=pd.DataFrame(fits))


def _model_row(fit, info: pd.Series, batch, truth: float) -> dict:
    """The model's scores for one held-out cell. An effective-LR fit whose eff_lr map cannot be
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
