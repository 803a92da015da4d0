"""Recompute the effective-LR aggregates of a runner output directory from its stored
trajectories (no re-training), and rewrite its result files and runs table.

Grids collected before the probe counted every step once (``cpu_ladder_v1``) recorded ``eff_lr``
and ``theta_sum`` as plain means over *probed* steps: the probe is dense for the first 20 steps
(the early transient, where theta / s(t) is largest) and sparse after, so those values depend on
the cadence. This rewrites every ``runs/*/result.json`` (``cells/*/`` in an old-layout
directory) with the step-weighted aggregates of
:func:`scalefit.train.probe.summarize` (every step once; geometric mean over hidden matrices),
keeps the old two values as ``eff_lr_probe_mean_v1`` / ``theta_sum_probe_mean_v1`` (never
overwritten: running it twice is harmless), records ``eff_lr_method`` (``interpolated`` or
``every_step``) and regenerates the runs table with :func:`scalefit.runs.harvest.collect_runs`.

    python -m scripts.experiments.recompute_eff_lr data/cpu_ladder_v1            # rewrites runs.csv there too
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.train.probe import per_step, summarize

# summarize's outputs that replace the recorded ones (rms_final and equilibration_number are
# cadence-free already: the last probe, and the schedule)
RECOMPUTED = ("eff_lr", "eff_lr_whole_run", "eff_lr_stable", "rel_update_eff", "theta_sum",
              "t_eq", "transient_frac")
KEPT_V1 = {"eff_lr": "eff_lr_probe_mean_v1", "theta_sum": "theta_sum_probe_mean_v1"}


def recompute_result(result: dict, trajectory: pd.DataFrame) -> dict:
    """``result`` with the step-weighted aggregates of ``trajectory`` (a new dict)."""
    out = dict(result)
    for old, kept in KEPT_V1.items():
        out.setdefault(kept, result.get(old))
    agg = summarize(trajectory, steps=int(result["steps"]), lr=float(result["lr"]),
                    weight_decay=float(result["weight_decay"]), optimizer=str(result["optimizer"]))
    out.update({k: agg[k] for k in RECOMPUTED})
    out["eff_lr_method"] = per_step(trajectory, int(result["steps"]))[1]
    return out


def recompute_dir(out_dir: str | Path, runs_path: str | Path | None = None) -> pd.DataFrame:
    """Rewrite every finished run's result.json under ``out_dir`` that has a trajectory; with
    ``runs_path``, regenerate that runs table. Returns old vs new eff_lr per run."""
    from scalefit.grids.store import write_json_atomic
    from scalefit.runs.harvest import collect_runs, write_runs
    from scalefit.runs.schema import LEGACY_RUN_ID, RUN_ID, runs_root

    rows = []
    for f in sorted(runs_root(out_dir).glob("*/result.json")):
        traj = f.parent / "trajectory.parquet"
        result = json.loads(f.read_text())
        if not traj.exists() or result.get("status") == "failed":
            continue
        new = recompute_result(result, pd.read_parquet(traj))
        write_json_atomic(f, new)
        rows.append(dict(run_id=new.get(RUN_ID, new.get(LEGACY_RUN_ID)), optimizer=new["optimizer"], lr=new["lr"],
                         eff_lr_v1=new[KEPT_V1["eff_lr"]], eff_lr=new["eff_lr"],
                         method=new["eff_lr_method"]))
    if runs_path is not None:
        write_runs(collect_runs(out_dir), runs_path)
    table = pd.DataFrame(rows)
    if len(table):
        table["ratio_v1_to_new"] = table["eff_lr_v1"] / table["eff_lr"]
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="runner output directory (with runs/, or cells/ in the old layout)")
    ap.add_argument("--runs", help="runs table to regenerate (default: OUT_DIR/runs.csv if it exists)")
    a = ap.parse_args(argv)
    runs = a.runs or (Path(a.out_dir) / "runs.csv" if (Path(a.out_dir) / "runs.csv").exists() else None)
    t = recompute_dir(a.out_dir, runs)
    print(f"{len(t)} result files rewritten" + (f"; runs table {runs} regenerated" if runs else ""))
    if len(t):
        for opt, g in t.groupby("optimizer"):
            r = g["ratio_v1_to_new"]
            print(f"{opt}: v1 / step-weighted eff_lr median {np.median(r):.3f}, range {r.min():.3f}-{r.max():.3f}"
                  f" ({len(g)} runs; {', '.join(sorted(set(g['method'])))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
