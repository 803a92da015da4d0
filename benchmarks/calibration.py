"""Calibration on real sweeps: `scalefit calibrate` over every public table in ../shared/data
(skipped when absent) and the bundled grid; one table per dataset, then the pooled one.

    python benchmarks/calibration.py [--draws 1000] [--config model.json] [--save rows.csv]
    python benchmarks/calibration.py --only hyperball_130m

Pooled scores weight every dataset equally (the mean of the per-dataset scores), so a dataset
with many long chains (hyperball's 13 budgets) does not drown one with a single chain.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _marin_adamw(path: Path) -> pd.DataFrame:
    """Marin's AdamW table: keep the LR-sweep rows and the cells that sweep >= 3 LRs."""
    df = pd.read_csv(path)
    df = df[df["lr_sweep_row"].astype(bool)]
    n_lrs = df.groupby(["n_params", "n_tokens"])["lr"].transform("nunique")
    return df[n_lrs >= 3]


# name, file, load options, families, optional pre-filter of the raw table
DATASETS = [
    ("steplaw_moe", SHARED / "steplaw_moe/runs.csv", [{"n_column": "n_params_active"}], "N,D,ND", None),
    ("marin_qwen3", SHARED / "marin_qwen3_sweeps/runs.csv",
     [{"where": {"optimizer": o}} for o in ("adamh", "adamc", "muonh")], "N", None),
    ("marin_adamw", SHARED / "marin_fantastic_adamw/runs.csv", [{}], "N,D", _marin_adamw),
    ("hyperball_130m", SHARED / "hyperball_130m_lr_x_tokens/runs.csv",
     [{"where": {"optimizer": o}} for o in ("muon", "muonh")], "D", None),
    ("cpu_ladder_v1", REPO / "data/cpu_ladder_v1/runs.csv",
     [{"where": {"optimizer": "adamw"}}], "N,D,ND", None),
    ("cpu_ladder_v1_adamh", REPO / "data/cpu_ladder_v1/runs.csv", [{"where": {"optimizer": "adamh"}}], "N", None),
]


SCORES = ("abs_log10_err", "cover50", "cover90", "width90_dec", "interval_score", "lpd")
OURS = ("cpu_ladder_v1", "cpu_ladder_v1_adamh")  # our own grids; every other dataset is public


def print_pooled(rows: pd.DataFrame) -> None:
    """Pooled scores: every dataset weighted equally, and every held-out cell weighted equally,
    over all datasets and over the public ones (data nobody here produced)."""
    from scalefit.evaluation.calibrate import format_summary, summarize

    per = pd.concat([summarize(g, ("method",)).assign(dataset=d) for d, g in rows.groupby("dataset", sort=False)])
    public = ~rows["dataset"].isin(OURS)
    views = [("all datasets, each weighted equally", per),
             ("public datasets, each weighted equally", per[~per["dataset"].isin(OURS)]),
             ("public datasets, every held-out cell weighted equally", None)]
    for title, frame in views:
        if frame is None:
            pooled = summarize(rows[public], ("method",))
        else:
            pooled = frame.groupby("method", sort=False).agg(
                datasets=("dataset", "nunique"), n=("n", "sum"), **{c: (c, "mean") for c in SCORES}).reset_index()
        print(f"\n## pooled: {title}")
        print(format_summary(pooled))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--config", type=Path, help="model config JSON")
    ap.add_argument("--only", action="append", help="dataset name (repeatable)")
    ap.add_argument("--save", type=Path, help="write every scored row here (CSV)")
    ap.add_argument("--families", help="only these law families (e.g. ND), where a dataset has them")
    ap.add_argument("--from-csv", type=Path, help="re-print the tables from rows saved by --save (no fitting)")
    args = ap.parse_args()
    if args.from_csv:
        from scalefit.evaluation.calibrate import format_summary, summarize

        rows = pd.read_csv(args.from_csv)
        for name, g in rows.groupby("dataset", sort=False):
            print(f"\n## {name}")
            print(format_summary(summarize(g, ("family", "method"))))
        print_pooled(rows)
        return
    from scalefit.inference.sampling import SamplerSettings

    import scalefit.fit.core  # noqa: F401  (import the model stack before any file can change under us)
    import scalefit.fit.predict  # noqa: F401
    from scalefit.evaluation.calibrate import calibrate, format_summary, summarize
    from scalefit.model.config import ModelConfig
    from scalefit.runs.table import load_runs

    config = ModelConfig.from_json(args.config.read_text()) if args.config else ModelConfig()
    settings = SamplerSettings(draws=args.draws, tune=args.tune, seed=0)
    all_rows, per_dataset = [], []
    for name, path, option_sets, families, prefilter in DATASETS:
        if args.only and name not in args.only:
            continue
        if not path.exists():
            print(f"skip {name}: {path} absent")
            continue
        t0 = time.perf_counter()
        frames, n_fits, n_conv = [], 0, 0
        for options in option_sets:
            source = prefilter(path) if prefilter else path
            table = load_runs(source, **options)
            wanted = [f for f in families.split(",") if not args.families or f in args.families.split(",")]
            try:
                result = calibrate(table, wanted, config, settings, progress=sys.stderr.isatty())
            except ValueError as err:
                print(f"skip {name} {options}: {err}")
                continue
            rows = result.rows.assign(dataset=name, subset=str(options.get("where", "")))
            frames.append(rows)
            n_fits += len(result.fits)
            n_conv += int(result.fits["converged"].sum())
        if not frames:
            continue
        rows = pd.concat(frames, ignore_index=True)
        all_rows.append(rows)
        n_unbr = int((~rows.loc[rows["method"] == "model", "bracketed"]).sum())
        print(f"\n## {name}: {n_fits} fits ({n_conv} converged), "
              f"{int((rows['method'] == 'model').sum())} held-out predictions, {n_unbr} unbracketed (not scored), "
              f"{time.perf_counter() - t0:.0f} s")
        print(format_summary(summarize(rows, ("family", "method"))))
        per_dataset.append(summarize(rows, ("method",)).assign(dataset=name))
    if not per_dataset:
        return
    rows = pd.concat(all_rows, ignore_index=True)
    print_pooled(rows)
    if args.save:
        rows.to_csv(args.save, index=False)
        print(f"rows saved to {args.save}")


if __name__ == "__main__":
    main()
