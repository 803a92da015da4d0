"""Collect a runner output directory into the runs table ``scalefit fit`` reads. No torch here.

``DIR/runs/<id>/result.json`` (``DIR/cells/<id>/`` for grids begun with the old layout,
:func:`scalefit.runs.schema.runs_root`) -> one row per finished run (status ok, diverged or
failed), contract columns first (`scalefit.runs.schema`; the columns and their meaning:
docs/model.md#runs-table), then the runner's extras (run_id, eff_lr_* ...). Runs still in
progress or never started are left out (``scalefit grid plan`` lists them). A result file that
names its id ``cell_id`` (older runners) gives the ``run_id`` column.

The command line does the same::

    scalefit collect runs/cpu -o runs/cpu.csv      # or .parquet

Examples
--------
>>> from scalefit.runs.harvest import collect_runs, write_runs
>>> df = collect_runs("out/micro")  # doctest: +SKIP
>>> write_runs(df, "out/micro/runs.csv")  # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scalefit.runs.schema import (CONTRACT_COLUMNS, DROPPED_COLUMNS as DROP, LEGACY_RUN_ID, RUN_ID,
                                  RUNNER_COLUMNS as FIRST_EXTRAS, runs_root)

__all__ = ["read_result", "collect_runs", "write_runs"]


def read_result(path: str | Path) -> dict:
    """One ``result.json``, its id under ``run_id`` whichever name the runner that wrote it used.

    Parameters
    ----------
    path : str or Path
        The result file.

    Returns
    -------
    dict
        Its content; a ``cell_id`` key is renamed ``run_id``.

    Raises
    ------
    json.JSONDecodeError
        If the file is not valid JSON.
    """
    row = json.loads(Path(path).read_text())
    if LEGACY_RUN_ID in row:
        legacy = row.pop(LEGACY_RUN_ID)
        row.setdefault(RUN_ID, legacy)
    return row


def collect_runs(out_dir: str | Path) -> pd.DataFrame:
    """The runs table of every finished run under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        A runner output directory (``--out`` of ``runners/train_grid.py``).

    Returns
    -------
    pandas.DataFrame
        One row per ``result.json``: the contract columns first (missing ones empty), then the
        runner's columns, then the rest sorted; rows sorted by n_params, n_tokens, optimizer,
        lr, seed. The ``traceback`` column is dropped. No result yet gives an empty table with
        the columns.

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` has no ``runs/`` (or old-layout ``cells/``) folder.
    ValueError
        If a ``result.json`` is unreadable.

    Examples
    --------
    >>> df = collect_runs("out/micro")  # doctest: +SKIP
    >>> df["status"].value_counts()  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    root = runs_root(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{out_dir}: no runs/ directory; is this a runner output directory "
                                "(runners/train_grid.py ... --out DIR)?")
    rows = []
    for f in sorted(root.glob("*/result.json")):
        try:
            rows.append(read_result(f))
        except json.JSONDecodeError as e:  # cannot happen with atomic writes; say where if it does
            raise ValueError(f"{f}: unreadable result.json ({e})") from None
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=CONTRACT_COLUMNS + FIRST_EXTRAS)
    for c in CONTRACT_COLUMNS:
        if c not in df:
            df[c] = None
    df = df.drop(columns=[c for c in DROP if c in df])
    for c in ("final_loss", "eff_lr", "train_loss_smoothed"):  # JSON null -> NaN
        df[c] = pd.to_numeric(df[c], errors="coerce")
    first = CONTRACT_COLUMNS + [c for c in FIRST_EXTRAS if c in df]
    rest = sorted(c for c in df.columns if c not in first)
    df = df[first + rest]
    return df.sort_values(["n_params", "n_tokens", "optimizer", "lr", "seed"], kind="stable").reset_index(drop=True)


def write_runs(df: pd.DataFrame, path: str | Path) -> Path:
    """Write CSV or Parquet by suffix (.csv, .tsv, .parquet, .pq).

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (:func:`collect_runs`).
    path : str or Path
        Where to write; parent folders are created.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix is none of the four.
    """
    path = Path(path)
    suf = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suf in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    elif suf in (".csv", ".tsv"):
        df.to_csv(path, index=False, sep="\t" if suf == ".tsv" else ",")
    else:
        raise ValueError(f"{path}: unknown suffix {path.suffix!r}; use .csv, .tsv, .parquet or .pq")
    return path
