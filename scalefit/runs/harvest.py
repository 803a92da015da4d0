"""Collect a runner output directory into the runs table ``scalefit fit`` reads. No torch here.

``DIR/runs/<id>/result.json`` (``DIR/cells/<id>/`` for grids begun with the old layout,
:func:`scalefit.runs.schema.runs_root`) -> one row per finished run (status ok, diverged or
failed), contract columns first (`scalefit.runs.schema`), then the runner's extras (run_id,
eff_lr_* ...). Runs still in progress or never started are left out (``scalefit grid plan`` lists
them). A result file that names its id ``cell_id`` (older runners) gives the ``run_id`` column.

    scalefit collect runs/cpu -o runs/cpu.csv      # or .parquet
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scalefit.runs.schema import (CONTRACT_COLUMNS, DROPPED_COLUMNS as DROP, LEGACY_RUN_ID, RUN_ID,
                                  RUNNER_COLUMNS as FIRST_EXTRAS, runs_root)


def read_result(path: str | Path) -> dict:
    """One ``result.json``, its id under ``run_id`` whichever name the runner that wrote it used."""
    row = json.loads(Path(path).read_text())
    if LEGACY_RUN_ID in row:
        legacy = row.pop(LEGACY_RUN_ID)
        row.setdefault(RUN_ID, legacy)
    return row


def collect_runs(out_dir: str | Path) -> pd.DataFrame:
    """The runs table of every finished run under ``out_dir``."""
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
    """Write CSV or Parquet by suffix (.csv, .tsv, .parquet, .pq)."""
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
