"""Fit speed from a fresh process: cold and warm compile cache, compile vs sampling, ESS per
second, a same-structure refit, and the two-stage least-squares fit timed in the same process.

Grids: the bundled grid (cpu_ladder_v1 AdamW, joint N,D law: what scripts/main.sh fits), a
2,000-run synthetic grid (10 sizes x 5 budgets x 8 LRs x 5 seeds), and steplaw_moe (708 runs,
80 cells, batch size in the law) when ../shared is present. Each grid gets three fresh processes
sharing one empty cache folder: "cold" compiles, "warm" loads what cold left, and "new sizes"
fits the grid without its largest model size (fewer cells and walk positions, a table the cache
has not seen), which loads the same compiled model: its sizes are symbolic. The warm process
then refits new data of the same structure (another noise draw; steplaw_moe: the same table),
which swaps data into the compiled model as backtests do, and fits again under sampler seeds
1..N-1 (`--seeds N`, default 5): how many attempts diverge depends on the seed, so one seed's
time is not the fit's time. Seed 0 is the CLI's default.

    python benchmarks/fit_speed.py                       # every grid (~10 min on 2 quiet cores)
    python benchmarks/fit_speed.py --grids bundled --samplers nutpie pymc
Targets (2 cores): bundled <= 10 s warm and <= 30 s cold per fresh process; 2,000
runs converged <= 30 s cold; a same-structure refit <= 1 s. The load average is printed: on a
shared machine every figure is a contended one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "data" / "cpu_ladder_v1" / "runs.csv"
STEPLAW = REPO.parent / "shared" / "data" / "steplaw_moe" / "runs.csv"
GRIDS = ("bundled", "synthetic2000", "steplaw_moe")


def table_for(grid: str, seed: int, smaller: bool = False):
    """The grid's runs table; `smaller` drops its largest model size (fewer cells and walk
    positions: a table the compiled model has not seen, of the same graph structure)."""
    import pandas as pd

    from scalefit.runs.table import load_runs
    from scalefit.runs.synthetic import make_grid

    if grid == "bundled":
        frame, options, size = pd.read_csv(BUNDLED), {"where": {"optimizer": "adamw"}}, "n_params"
    elif grid == "steplaw_moe":
        frame, options, size = pd.read_csv(STEPLAW), {"n_column": "n_params_active"}, "n_params_active"
    else:
        frame = make_grid(n_params=np.geomspace(1e6, 64e6, 10), n_tokens=np.geomspace(1e8, 1.6e9, 5),
                          n_lrs=8, seeds=range(5), seed=seed)
        options, size = {}, "n_params"
    if smaller:
        frame = frame[frame[size] < frame[size].max()]
    return load_runs(frame, **options)


def one(grid: str, sampler: str, refit: bool, seeds: int = 1, smaller: bool = False) -> dict:
    """Runs inside a fresh child process; returns one row."""
    t0 = time.perf_counter()
    from scalefit.inference.sampling import SamplerSettings

    from scalefit.fit.baseline import fit_baseline
    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs

    config = ModelConfig(axis="ND")
    settings = SamplerSettings(sampler=sampler)  # the CLI's defaults (seed 0)
    table = table_for(grid, seed=0, smaller=smaller)
    out = {"grid": grid, "sampler": sampler, "runs": len(table.runs), "cells": len(table.cells),
           "import_s": time.perf_counter() - t0}
    t1 = time.perf_counter()
    fit = fit_runs(table, config, settings)
    attrs = fit.tree.attrs
    out |= {"fit_s": time.perf_counter() - t1, "compile_s": attrs.get("compile_s", float("nan")),
            "sampling_s": attrs.get("sampling_s", float("nan")), "attempts": attrs.get("attempts", 1),
            "draws_kept": attrs.get("draws_kept", settings.draws)}
    # from the moment the parent launched this process: interpreter start-up included
    out["to_answer_s"] = time.time() - float(os.environ.get("FIT_SPEED_LAUNCHED", "nan"))
    out |= fit.convergence.to_dict()
    out["ess_per_s"] = fit.convergence.min_ess_bulk / out["sampling_s"] if sampler == "nutpie" else float("nan")
    t2 = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        fit_baseline(table.runs, table.cells, config)
    out["two_stage_s"] = (time.perf_counter() - t2) / repeats
    if refit:
        new = table_for(grid, seed=1) if grid == "synthetic2000" else table
        t3 = time.perf_counter()
        again = fit_runs(new, config, settings)
        out |= {"refit_s": time.perf_counter() - t3, "refit_swap_s": again.tree.attrs.get("compile_s"),
                "refit_sampling_s": again.tree.attrs.get("sampling_s"),
                "refit_converged": again.convergence.converged}
    # The sampler's seed decides how many attempts diverge: the fit again under other seeds, in
    # this process (each seed's sampling time replaces seed 0's in its launch-to-fitted figure).
    first = {"seed": settings.seed, "fit_s": out["fit_s"], "sampling_s": out["sampling_s"], "attempts": out["attempts"],
             "converged": out["converged"]}
    out["seed_fits"] = [first]
    for seed in range(1, seeds):
        t4 = time.perf_counter()
        other = fit_runs(table, config, dataclasses.replace(settings, seed=seed))
        out["seed_fits"].append({"seed": seed, "fit_s": time.perf_counter() - t4,
                                 "sampling_s": other.tree.attrs.get("sampling_s", float("nan")),
                                 "attempts": other.tree.attrs.get("attempts", 1),
                                 "converged": other.convergence.converged})
    return out


def child(grid: str, sampler: str, cache: str, refit: bool, seeds: int = 1, smaller: bool = False) -> dict:
    env = dict(os.environ, SCALEFIT_CACHE=cache, PYTENSOR_FLAGS="", FIT_SPEED_LAUNCHED=repr(time.time()))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", grid, sampler, "--seeds", str(seeds)]
                          + (["--refit"] if refit else []) + (["--smaller"] if smaller else []),
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        return {"grid": grid, "sampler": sampler, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = time.perf_counter() - t0
    return row


def fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_table(rows: list[dict]) -> None:
    print("| grid | runs | sampler | cache | launch to fitted s | process wall s | import s | compile s | sampling s | attempts "
          "| draws kept per chain | min ESS | ESS/s | max r_hat | div | converged | refit s (swap + sampling) "
          "| two-stage fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['grid']} | | {r['sampler']} | {r.get('cache')} | error: {r['error']} |")
            continue
        refit = (f"{fmt(r['refit_s'])} ({fmt(r['refit_swap_s'], 2)} + {fmt(r['refit_sampling_s'])})"
                 if "refit_s" in r else "")
        print(f"| {r['grid']} | {r['runs']} | {r['sampler']} | {r['cache']} | {fmt(r.get('to_answer_s'))} | "
              f"{fmt(r['process_wall_s'])} | "
              f"{fmt(r['import_s'])} | {fmt(r['compile_s'])} | {fmt(r['sampling_s'])} | {r['attempts']} | "
              f"{r.get('draws_kept', '')} | "
              f"{r['min_ess_bulk']:.0f} | {fmt(r['ess_per_s'], 0)} | {r['max_rhat']:.3f} | {r['divergences']} | "
              f"{fmt(r['converged'])} | {refit} | {r['two_stage_s']:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", nargs="*", default=list(GRIDS), choices=GRIDS)
    ap.add_argument("--samplers", nargs="*", default=["nutpie"], choices=["nutpie", "pymc"])
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--refit", action="store_true")
    ap.add_argument("--smaller", action="store_true", help="drop the grid's largest model size")
    ap.add_argument("--save", type=Path, help="write the rows as JSON lines here")
    ap.add_argument("--seeds", type=int, default=5, help="warm processes also fit under seeds 1..N-1")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], args.child[1], args.refit, args.seeds, args.smaller)))
        return
    grids = [g for g in args.grids if g != "steplaw_moe" or STEPLAW.exists()]
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)", flush=True)
    rows = []
    for grid in grids:
        for sampler in args.samplers:
            with tempfile.TemporaryDirectory() as cache:
                # "new sizes": a warm cache, and a table it has not seen (the largest size dropped)
                for state in ("cold", "warm", "new sizes"):
                    warm = state == "warm"
                    r = child(grid, sampler, cache, refit=warm and sampler == "nutpie", seeds=args.seeds if warm else 1,
                              smaller=state == "new sizes")
                    r |= {"cache": state, "load": os.getloadavg()[0]}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    if args.save:
        args.save.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    print_table(rows)
    print_seed_spread(rows)


def print_seed_spread(rows: list[dict]) -> None:
    """Launch to fitted under each seed: seed 0's process, with its sampling swapped for the seed's
    (start-up, import and loading the compiled model are the same in any fresh process)."""
    spread = [r for r in rows if len(r.get("seed_fits", [])) > 1]
    if not spread:
        return
    print("\n| grid | cache | seeds | launch to fitted s: median | max | attempts per seed | converged |")
    print("|---|---|---|---|---|---|---|")
    for r in spread:
        fits = r["seed_fits"]
        to_answer = [r["to_answer_s"] - r["sampling_s"] + f["sampling_s"] for f in fits]
        print(f"| {r['grid']} | {r['cache']} | {len(fits)} | {np.median(to_answer):.1f} | {max(to_answer):.1f} | "
              f"{' '.join(str(f['attempts']) for f in fits)} | {sum(f['converged'] for f in fits)}/{len(fits)} |")


if __name__ == "__main__":
    main()
