"""Pooling held-out rows so every held-out cell counts once: cluster weights, weighted medians,
cluster-bootstrap intervals (clusters = held-out cells) and distance bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["DISTANCE_BINS", "CELL_KEYS", "POINT_KEYS", "cluster_weights", "weighted_median",
           "cluster_bootstrap", "distance_bin", "score_table"]

DISTANCE_BINS = ("inside", "<1", "1-2.3", ">2.3")  # e-folds beyond the fitted range; 2.3 e-folds ~ 10x


CELL_KEYS = ("dataset", "subset", "cell_label")  # one held-out cell (those present in the rows)


POINT_KEYS = ("dataset", "subset", "n_params", "n_tokens")  # one (N, D) point, over batch sizes


def _present(rows: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    found = [k for k in keys if k in rows]
    if not found:
        raise ValueError(f"none of the key columns {list(keys)} is in the rows")
    return found


def cluster_weights(rows: pd.DataFrame, cluster: Sequence[str] = CELL_KEYS, within: Sequence[str] = (),
                    equal: str | None = None) -> pd.Series:
    """Row weights under which every cluster (held-out cell) counts once within each group.

    A cell predicted by k prefixes gets 1/k per row. With `equal`, each of its levels (e.g. each
    dataset) then gets the same total weight within each group, so a dataset with many cells does
    not drown the rest.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per (held-out cell, prefix, method).
    cluster : sequence of str, default CELL_KEYS
        Columns naming a cluster (those present are used): `CELL_KEYS` counts each held-out cell
        once, `POINT_KEYS` each (N, D) point once over its batch sizes.
    within : sequence of str, default ()
        Groups in which the counting is done (e.g. ("method",)).
    equal : str, optional
        A column whose levels get equal total weight (e.g. "dataset").

    Returns
    -------
    pandas.Series
        Weights, aligned with `rows`; each group's weights sum to its number of clusters (to its
        number of `equal` levels when `equal` is set).

    Raises
    ------
    ValueError
        When no cluster column is present.

    Examples
    --------
    >>> import pandas as pd
    >>> from scalefit.evaluation.pooling import cluster_weights
    >>> rows = pd.DataFrame({"cell_label": ["a"] * 4 + ["b"]})
    >>> cluster_weights(rows).tolist()
    [0.25, 0.25, 0.25, 0.25, 1.0]
    """
    keys = [*within, *_present(rows, cluster)]
    codes = rows.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    w = pd.Series(1.0 / np.bincount(codes)[codes], index=rows.index)
    if equal is not None:
        w = w / w.groupby([rows[k] for k in [*within, equal]], dropna=False).transform("sum")
    return w


def weighted_median(values, weights) -> float:
    """The weighted median: where the cumulative weight reaches half (midpoint on an exact tie).

    Parameters
    ----------
    values, weights : array_like
        NaN values are dropped; weights must be non-negative.

    Returns
    -------
    float
        NaN when nothing has weight. Equal weights give `numpy.median`.
    """
    v, w = np.asarray(values, dtype=float).ravel(), np.asarray(weights, dtype=float).ravel()
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if v.size == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order]) / w.sum()
    i = int(np.searchsorted(cum, 0.5 - 1e-12))
    if np.isclose(cum[i], 0.5, rtol=0, atol=1e-12) and i + 1 < v.size:
        return float((v[i] + v[i + 1]) / 2.0)
    return float(v[i])


def cluster_bootstrap(values, weights, clusters, n_boot: int = 2000, level: float = 0.9, seed: int = 0,
                      strata=None) -> tuple[float, float]:
    """Percentile interval of a weighted mean, resampling whole clusters with replacement.

    Rows of one held-out cell share its sweep (its truth and its noise), so they are not
    independent; resampling them as rows understates the uncertainty (Cameron, Gelbach & Miller
    2008, REStat 90:414). With `strata`, clusters are resampled within each stratum (e.g. per
    dataset, whose share of the weight is then fixed by design).

    Parameters
    ----------
    values, weights : array_like
        Per row; rows with a NaN value are dropped.
    clusters : array_like
        Per row: its cluster label (pass one label per row for a row bootstrap).
    n_boot : int, default 2000
        Replicates.
    level : float, default 0.9
        The interval's probability.
    seed : int, default 0
        Seed of the resampling (the interval is deterministic given it).
    strata : array_like, optional
        Per row: its stratum; a cluster must lie in one stratum.

    Returns
    -------
    tuple of (float, float)
        The interval; NaN when nothing has weight.

    Examples
    --------
    >>> from scalefit.evaluation.pooling import cluster_bootstrap
    >>> lo, hi = cluster_bootstrap([0.0, 1.0, 1.0, 2.0], [1, 0.5, 0.5, 1], ["a", "b", "b", "c"])
    >>> lo <= 1.0 <= hi
    True
    """
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    if not keep.any():
        return float("nan"), float("nan")
    codes, labels = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)[keep]))
    sum_wv = np.bincount(codes, weights=w[keep] * v[keep], minlength=labels.size)
    sum_w = np.bincount(codes, weights=w[keep], minlength=labels.size)
    layer = np.zeros(labels.size, dtype=int)
    if strata is not None:
        layer[codes] = pd.factorize(pd.Series(np.asarray(strata, dtype=object)[keep]))[0]
    rng = np.random.default_rng(seed)
    n = labels.size
    counts = np.zeros(n_boot * n)
    for s in np.unique(layer):
        members = np.flatnonzero(layer == s)
        picks = members[rng.integers(0, members.size, size=(n_boot, members.size))]
        counts += np.bincount((np.arange(n_boot)[:, None] * n + picks).ravel(), minlength=n_boot * n)
    counts = counts.reshape(n_boot, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ sum_wv) / (counts @ sum_w)
    lo, hi = np.nanquantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def distance_bin(distance) -> np.ndarray:
    """The extrapolation-distance bin of each row: one of `DISTANCE_BINS`.

    "inside" is a distance of 0: to mean inside both fitted ranges (N and D), pass the joint
    distance (`scalefit.evaluation.calibrate.distance_efolds` with family "ND"); then "<1",
    "1-2.3" and ">2.3" e-folds beyond the fitted range (2.3 e-folds is a factor of 10).

    Parameters
    ----------
    distance : array_like
        E-folds beyond the fitted range (0 inside it).

    Returns
    -------
    numpy.ndarray of str
        "" where the distance is NaN.

    Examples
    --------
    >>> from scalefit.evaluation.pooling import distance_bin
    >>> distance_bin([0.0, 0.69, 1.39, 2.77]).tolist()
    ['inside', '<1', '1-2.3', '>2.3']
    """
    d = np.asarray(distance, dtype=float)
    conditions = [d <= 1e-9, d < 1.0, d < 2.3, d >= 2.3]
    return np.select(conditions, list(DISTANCE_BINS), default="")


def score_table(rows: pd.DataFrame, scores: Sequence[str], by: Sequence[str] = ("method",),
                cluster: Sequence[str] = CELL_KEYS, equal: str | None = None, n_boot: int = 2000,
                level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Pooled scores per group: weighted means (each held-out cell once), medians and cluster CIs.

    Per score, the rows where it is NaN are left out and the weights recomputed on the rest, so
    a cell with some unscored rows still counts once. Booleans (coverages) pool as shares.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per (held-out cell, prefix, method), with the `scores` columns (already
        restricted to the rows to score, e.g. bracketed cells).
    scores : sequence of str
        Score columns.
    by : sequence of str, default ("method",)
        Grouping columns (e.g. ("method", "family") or ("method", "distance_bin")).
    cluster : sequence of str, default CELL_KEYS
        The cluster columns (see `cluster_weights`); the bootstrap resamples these clusters.
    equal : str, optional
        A column whose levels weigh equally (e.g. "dataset"); the bootstrap then resamples
        clusters within each level.
    n_boot : int, default 2000
        Bootstrap replicates per score and group.
    level : float, default 0.9
        Probability of the bootstrap intervals.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Per group: the `by` columns, ``n_rows``, ``n_cells``, and per score its weighted mean
        (named as the score), ``<score>_lo``/``<score>_hi`` (the cluster-bootstrap interval) and
        ``<score>_median`` (weighted).

    Examples
    --------
    >>> import pandas as pd
    >>> from scalefit.evaluation.pooling import score_table
    >>> rows = pd.DataFrame({"method": "model", "cell_label": ["a", "a", "b"], "cover90": [True, True, False]})
    >>> float(score_table(rows, ["cover90"])["cover90"].iloc[0])
    0.5
    """
    keys = _present(rows, cluster)
    out = []
    groups = rows.groupby(list(by), sort=False, dropna=False) if by else [((), rows)]
    for key, g in groups:
        labels = g[keys].astype(object)
        cells = labels.where(labels.notna(), "").astype(str).agg("|".join, axis=1)  # NaN keys (an empty subset read back) as ""
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        rec |= {"n_rows": int(len(g)), "n_cells": int(cells.nunique())}
        for score in scores:
            v = g[score].astype(float)
            sub = g[v.notna()]
            if sub.empty:
                rec |= {score: np.nan, f"{score}_lo": np.nan, f"{score}_hi": np.nan, f"{score}_median": np.nan}
                continue
            w = cluster_weights(sub, keys, equal=equal).to_numpy()
            x = v[v.notna()].to_numpy()
            lo, hi = cluster_bootstrap(x, w, cells[v.notna()].to_numpy(), n_boot=n_boot, level=level, seed=seed,
                                       strata=None if equal is None else sub[equal].to_numpy())
            rec |= {score: float(np.average(x, weights=w)), f"{score}_lo": lo, f"{score}_hi": hi,
                    f"{score}_median": weighted_median(x, w)}
        out.append(rec)
    return pd.DataFrame(out)
