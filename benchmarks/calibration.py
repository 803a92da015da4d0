"""Calibration on real sweeps: `scalefit calibrate` over every public table in ../shared/data
(skipped when absent) and the bundled grids; one table per dataset, then the pooled ones.

    python benchmarks/calibration.py [--draws 3000] [--config model.json]
    python benchmarks/calibration.py --only hyperball_130m --save /tmp/rows.csv
    python benchmarks/calibration.py --from-csv benchmarks/results/calibration.csv

Every scored row goes to ONE current result file, benchmarks/results/calibration.csv (--save
moves it). Tables are the harness's v2 ones (`scalefit.evaluation.calibrate.format_scores`):
every held-out cell weighs once, 90% cluster-bootstrap intervals, noise-aware coverage and
interval score, regret. Pooled tables weight every dataset equally (cells resampled within each
dataset), so a dataset with many long chains (hyperball's 13 budgets) does not drown one with a
single chain; a public-only view and an every-cell-equal view follow, then the pooled tables by
family and by extrapolation distance.
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
    ("cpu_ladder_v2_h100_wd1", REPO / "data/cpu_ladder_v2_h100/runs.csv",
     [{"where": {"optimizer": "adamw", "weight_decay": 1.0}}], "N,D,ND", None),
]


OURS = ("cpu_ladder_v1", "cpu_ladder_v1_adamh", "cpu_ladder_v2_h100_wd1")  # our own grids; the rest are public
RESULT = REPO / "benchmarks/results/calibration.csv"


def print_dataset(name: str, rows: pd.DataFrame, n_boot: int) -> None:
    """One dataset's tables: per method, by family, by extrapolation distance."""
    from scalefit.evaluation.calibrate import format_scores, summarize

    print(format_scores(summarize(rows, ("method",), n_boot=n_boot)))
    print(f"\n{name} by family:")
    print(format_scores(summarize(rows, ("family", "method"), n_boot=n_boot)))
    print(f"\n{name} by distance (joint e-folds beyond the fitted N and D ranges):")
    print(format_scores(summarize(rows, ("distance_bin", "method"), n_boot=n_boot)))


def print_pooled(rows: pd.DataFrame, n_boot: int = 2000) -> None:
    """Pooled scores: every dataset weighted equally (over all datasets and over the public ones),
    every held-out cell weighted equally over the public ones, then by family and by distance
    with datasets weighted equally."""
    from scalefit.evaluation.calibrate import format_scores, summarize

    public = rows[~rows["dataset"].isin(OURS)]
    views = [("all datasets, each weighted equally", rows, "dataset", ("method",)),
             ("public datasets, each weighted equally", public, "dataset", ("method",)),
             ("public datasets, every held-out cell weighted equally", public, None, ("method",)),
             ("all datasets by family, each dataset weighted equally", rows, "dataset", ("family", "method")),
             ("all datasets by distance, each dataset weighted equally", rows, "dataset", ("distance_bin", "method"))]
    for title, frame, equal, by in views:
        if frame.empty:
            continue
        print(f"\n## pooled: {title} ({frame['dataset'].nunique()} datasets)")
        print(format_scores(summarize(frame, by, equal=equal, n_boot=n_boot)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=3000, help="draws per chain at most (scalefit fit's default)")
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--target-ess", type=int, default=400, help="the ESS stopping rule (0: every draw)")
    ap.add_argument("--config", type=Path, help="model config JSON")
    ap.add_argument("--only", action="append", help="dataset name (repeatable)")
    ap.add_argument("--save", type=Path, help=f"write every scored row here (default {RESULT}; a run restricted by "
                    "--only or --families writes nothing unless --save is given, so it cannot clobber the full result)")
    ap.add_argument("--families", help="only these law families (e.g. ND), where a dataset has them")
    ap.add_argument("--n-boot", type=int, default=2000, help="cluster-bootstrap replicates of the pooled tables")
    ap.add_argument("--from-csv", type=Path, help="re-print the tables from saved rows (no fitting)")
    args = ap.parse_args()
    if args.from_csv:
        rows = pd.read_csv(args.from_csv)
        if "distance_bin" not in rows:  # rows of the first harness: no noise-aware scores, no joint distance
            print("(rows of the first harness: naive scores only)")
            rows["distance_bin"] = "?"
        for name, g in rows.groupby("dataset", sort=False):
            print(f"\n## {name}")
            print_dataset(name, g, args.n_boot)
        print_pooled(rows, args.n_boot)
        return
    from scalefit.inference.sampling import SamplerSettings

    import scalefit.fit.core  # noqa: F401  (import the model stack before any file can change under us)
    import scalefit.fit.predict  # noqa: F401
    from scalefit.evaluation.calibrate import calibrate
    from scalefit.model.config import ModelConfig
    from scalefit.runs.table import load_runs

    config = ModelConfig.from_json(args.config.read_text()) if args.config else ModelConfig()
    settings = SamplerSettings(draws=args.draws, tune=args.tune, target_ess=args.target_ess or None, seed=0)
    all_rows = []
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
        model = rows[rows["method"] == "model"]
        n_unbr = int((~model["bracketed"].astype(bool)).sum())
        print(f"\n## {name}: {n_fits} fits ({n_conv} converged), {len(model)} held-out predictions of "
              f"{model['cell_label'].nunique()} cells, {n_unbr} unbracketed (not scored), "
              f"{time.perf_counter() - t0:.0f} s")
        print_dataset(name, rows, args.n_boot)
    if not all_rows:
        return
    rows = pd.concat(all_rows, ignore_index=True)
    print_pooled(rows, args.n_boot)
    save = args.save or (None if args.only or args.families else RESULT)
    if save is None:
        print(f"partial run: rows not saved (pass --save to keep them; {RESULT} is the full run's)")
        return
    save.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(save, index=False)
    print(f"rows saved to {save}")


if __name__ == "__main__":
    main()
