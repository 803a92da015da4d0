"""Curvature of the optimal-LR law on cpu_ladder_v1, one slice at a time.

    python runners/grids/cpu_ladder_v1/laws.py [data/cpu_ladder_v1/runs.csv] [--draws 3000] [--json]

`scalefit compare` fits each law on the whole AdamW grid, so a law along N also has to absorb the
strong D trend of this grid in its residual. Here every slice gets its own fit: the law along N
at each token budget (5 sizes) in nominal and in effective LR, AdamH along N (its LR is already
an angle), and the law along D at each size (3 budgets). Printed per fit: slope and curvature of
ln(optimal LR) per e-fold of N or D (raw units, not standardized), P(curvature > 0), tau, and
convergence.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from scalefit.sampling import SamplerSettings, use_compile_cache  # noqa: E402

use_compile_cache()

from scalefit.config import ModelConfig  # noqa: E402
from scalefit.fit import fit_runs  # noqa: E402
from scalefit.grid import load_runs  # noqa: E402


def per_efold(fit, axis: str) -> dict:
    """Posterior slope and curvature of ln lr* per e-fold of the axis at the slice's centre."""
    post = fit.posterior.to_dataset()
    scale = fit.std.log_n_sd if axis == "N" else fit.std.log_d_sd  # z = (ln N - mean) / sd
    slope = post[f"law_slope_{axis}"].values.ravel() / scale
    curv = post[f"law_curvature_{axis}"].values.ravel() / scale**2
    q = lambda v: [float(x) for x in np.quantile(v, [0.05, 0.5, 0.95])]  # noqa: E731
    return {"slope": q(slope), "curvature": q(curv), "p_curvature_positive": float((curv > 0).mean()),
            "tau": q(post["law_residual_sd"].values.ravel()), "converged": fit.convergence.converged}


def slices(runs_path: str):
    base = load_runs(runs_path, where={"optimizer": "adamw"})
    for d in sorted(base.cells["n_tokens"].unique()):
        where = {"optimizer": "adamw", "n_tokens": d}
        yield f"AdamW along N @ D={d:.2g}", where, "N", "nominal"
        yield f"AdamW along N @ D={d:.2g}", where, "N", "effective"
    yield "AdamH along N @ D=5e+05", {"optimizer": "adamh"}, "N", "nominal"
    for n in sorted(base.cells["n_params"].unique()):
        yield f"AdamW along D @ N={n:.3g}", {"optimizer": "adamw", "n_params": n}, "D", "nominal"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="?", default=str(REPO / "data" / "cpu_ladder_v1" / "runs.csv"))
    p.add_argument("--draws", type=int, default=3000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    settings = SamplerSettings(draws=args.draws)
    rows = []
    for name, where, axis, kind in slices(args.runs):
        table = load_runs(args.runs, where=where)
        if table.cells[{"N": "n_params", "D": "n_tokens"}[axis]].nunique() < 3:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_runs(table, ModelConfig(axis=axis, lr_kind=kind), settings)
        row = {"slice": name, "lr_kind": kind, "cells": len(table.cells), "runs": len(table.runs)} | per_efold(fit, axis)
        rows.append(row)
        if not args.json:
            s, c = row["slope"], row["curvature"]
            print(f"{name:28s} {kind:9s} slope {s[1]:+.3f} [{s[0]:+.3f}, {s[2]:+.3f}]  curvature {c[1]:+.3f} "
                  f"[{c[0]:+.3f}, {c[2]:+.3f}]  P(curv>0) {row['p_curvature_positive']:.2f}  tau {row['tau'][1]:.3f}"
                  f"  {'converged' if row['converged'] else 'NOT converged'}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
