"""Accuracy on public sweeps (../shared/data, skipped when absent): hold out the largest D,
predict its optimal LR from the smaller budgets, and compare with the two-stage baseline.

    python benchmarks/shared_backtests.py [--draws 2000]
Prints one line per held-out cell and a summary table (log10 error of the posterior median vs
the held-out cell's best swept LR, 90% ETI coverage, the baseline's log10 error).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

CASES = [
    # name, file, load options, note
    ("steplaw_moe, all batch sizes", "steplaw_moe", {"n_column": "n_params_active"}, "batch size left to the law residual"),
    *[(f"steplaw_moe, batch {b} seqs", "steplaw_moe", {"n_column": "n_params_active", "where": {"batch_size_seqs": b}}, "")
      for b in (32, 64, 128, 256, 512)],
    ("hyperball_130m, muon", "hyperball_130m_lr_x_tokens", {"where": {"optimizer": "muon"}}, "64B-128B cells unbracketed"),
    ("hyperball_130m, muonh", "hyperball_130m_lr_x_tokens", {"where": {"optimizer": "muonh"}}, ""),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    from scalefit.sampling import SamplerSettings, use_compile_cache

    use_compile_cache()
    from scalefit.backtest import leave_largest_out
    from scalefit.config import ModelConfig
    from scalefit.grid import load_runs

    summary = []
    for name, folder, options, note in CASES:
        path = SHARED / folder / "runs.csv"
        if not path.exists():
            print(f"skip {name}: {path} absent")
            continue
        table = load_runs(path, **options)
        t0 = time.perf_counter()
        bt = leave_largest_out(table, ModelConfig(axis="D"), SamplerSettings(draws=args.draws, seed=0))
        s = bt.summary() | {"case": name, "cells": len(table.cells), "wall_s": round(time.perf_counter() - t0, 1),
                            "note": note}
        for row in bt.rows.to_dict(orient="records"):
            print(json.dumps({"case": name} | row))
        summary.append(s)
    print()
    print("| case | cells | held out | model mean abs log10 err | 90% coverage | baseline mean abs log10 err | converged | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['case']} | {s['cells']} | {s['held_out_cells']} | {s['mean_abs_log10_err']:.3f} | {s['coverage']:.0%} | "
              f"{s['baseline_mean_abs_log10_err']:.3f} | {s['converged']} | {s['wall_s']} |")


if __name__ == "__main__":
    main()
