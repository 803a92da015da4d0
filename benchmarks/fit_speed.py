"""Fit speed and convergence: nutpie vs the default PyMC sampler, with the two-stage baseline
timed in the same run.

For each grid it starts fresh processes: "cold" with an empty compile cache, "warm" with the
cache the cold run left, and, inside the warm process, a "refit" on new data of the same shape
(a new noise draw), which reuses the compiled model by swapping data, as backtests do.

    python benchmarks/fit_speed.py                 # all grids, both samplers (~10 min on 2 cores)
    python benchmarks/fit_speed.py --sizes 2000 --samplers nutpie
Targets (2 cores): 2,000 runs converged in <= 30 s cold, <= 10 s warm; refit <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEPLAW = REPO.parent / "shared" / "data" / "steplaw_moe" / "runs.csv"
# (N sizes, D sizes, seeds) giving 8 LRs per cell
SHAPES = {200: (5, 5, 1), 1000: (5, 5, 5), 2000: (10, 5, 5), 4000: (10, 10, 5)}


def table_for(size, seed):
    from scalefit.grid import load_runs
    from scalefit.synthetic import make_grid

    if size == "steplaw_moe":
        return load_runs(STEPLAW, n_column="n_params_active")
    n_n, n_d, n_seeds = SHAPES[int(size)]
    frame = make_grid(n_params=np.geomspace(1e6, 64e6, n_n), n_tokens=np.geomspace(1e8, 1.6e9, n_d),
                      n_lrs=8, seeds=range(n_seeds), seed=seed)
    return load_runs(frame)


def one(size, sampler, refit: bool) -> dict:
    """Runs inside a child process; prints one JSON line."""
    t0 = time.perf_counter()
    from scalefit.sampling import SamplerSettings, use_compile_cache

    use_compile_cache(os.environ["SCALEFIT_CACHE"])
    from scalefit.baseline import fit_baseline
    from scalefit.config import ModelConfig
    from scalefit.fit import fit_runs

    axis = "D" if size == "steplaw_moe" else "N"
    config = ModelConfig(axis=axis)
    settings = SamplerSettings(draws=2000, tune=1000, sampler=sampler, seed=1)
    table = table_for(size, seed=0)
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    fit = fit_runs(table, config, settings)
    out = {"grid": str(size), "sampler": sampler, "runs": len(table.runs), "cells": len(table.cells),
           "import_s": round(t_import, 2), "fit_s": round(time.perf_counter() - t1, 2)} | {
        k: (round(v, 3) if isinstance(v, float) else v) for k, v in fit.convergence.to_dict().items()}
    t2 = time.perf_counter()
    fit_baseline(table.runs, table.cells, config)
    out["baseline_s"] = round(time.perf_counter() - t2, 4)
    if refit:
        new = table_for(size, seed=1) if size != "steplaw_moe" else table
        t3 = time.perf_counter()
        again = fit_runs(new, config, settings)
        out["refit_s"] = round(time.perf_counter() - t3, 2)
        out["refit_converged"] = again.convergence.converged
    return out


def child(size, sampler, cache, refit) -> dict:
    env = dict(os.environ, SCALEFIT_CACHE=str(cache), PYTENSOR_FLAGS="")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(size), sampler] + (["--refit"] if refit else []),
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        return {"grid": str(size), "sampler": sampler, "error": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["200", "1000", "2000", "4000", "steplaw_moe"])
    ap.add_argument("--samplers", nargs="*", default=["nutpie", "pymc"])
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--refit", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], args.child[1], args.refit)))
        return
    sizes = [s for s in args.sizes if s != "steplaw_moe" or STEPLAW.exists()]
    rows = []
    for size in sizes:
        for sampler in args.samplers:
            with tempfile.TemporaryDirectory() as cache:
                cold = child(size, sampler, cache, refit=False) | {"cache": "cold"}
                warm = child(size, sampler, cache, refit=sampler == "nutpie") | {"cache": "warm"}
            for r in (cold, warm):
                rows.append(r)
                print(json.dumps(r), flush=True)
    print()
    print("| grid | runs | sampler | cache | process wall s | fit s | refit s | max r_hat | min ess_bulk | divergences | baseline s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['grid']} | | {r['sampler']} | {r.get('cache')} | error: {r['error']} |")
            continue
        print(f"| {r['grid']} | {r['runs']} | {r['sampler']} | {r['cache']} | {r['process_wall_s']} | {r['fit_s']} | "
              f"{r.get('refit_s', '')} | {r['max_rhat']} | {r['min_ess_bulk']:.0f} | {r['divergences']} | {r['baseline_s']} |")


if __name__ == "__main__":
    main()
