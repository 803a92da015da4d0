"""Collect a runner output directory into the runs table ``scalefit fit`` reads. No torch here.

``DIR/cells/<id>/result.json`` -> one row per finished run (status ok, diverged or failed),
contract columns first (`scalefit.runs.schema`), then the runner's extras (cell_id, eff_lr_* ...).
Cells still running or never started are left out (``scalefit grid plan`` lists them).

    scalefit collect runs/cpu -o runs/cpu.csv      # or .parquet
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scalefit.runs.schema import CONTRACT_COLUMNS, DROPPED_COLUMNS as DROP, RUNNER_COLUMNS as FIRST_EXTRAS


def collect_runs(out_dir: str | Path) -> pd.DataFrame:
    """The runs table of every finished cell under ``out_dir``."""
    out_dir = Path(out_dir)
    cells = out_dir / "cells"
    if not cells.is_dir():
        raise FileNotFoundError(f"{out_dir}: no cells/ directory; is this a runner output directory "
                                "(runners/collect.py ... --out DIR)?")
    rows = []
    for f in sorted(cells.glob("*/result.json")):
        try:
            rows.append(json.loads(f.read_text()))
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
