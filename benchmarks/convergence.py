"""Convergence at scale with default settings: a StepLaw-shaped SYNTHETIC table (17 (N, D)
cells x 10 batch sizes x 11 LRs, ~1,900 runs, batch size swept so ln B enters the law) and, when
../shared is present, the real steplaw_moe table (all batch sizes).

    python benchmarks/convergence.py [--only synthetic|steplaw_moe]

Prints wall time, max r_hat, min ESS (bulk, tail), divergences and the fitted B slope.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEPLAW = REPO.parent / "shared" / "data" / "steplaw_moe" / "runs.csv"


def steplaw_shaped():
    """17 (N, D) cells like StepLaw's dense grid, each swept over 10 batch sizes (SYNTHETIC)."""
    import pandas as pd

    from scalefit.runs.synthetic import SyntheticTruth, make_grid

    truth = SyntheticTruth(curvature_n=0.02, slope_b=0.35, noise_sd=0.003)
    pairs = [(n, d) for n in (2e6, 4e6, 8e6, 16e6) for d in (2e8, 4e8, 8e8, 1.6e9)] + [(32e6, 1.6e9)]
    batches = tuple(int(2**k) for k in range(13, 23))  # 8k .. 4M tokens per step
    frames = [make_grid(truth, n_params=(n,), n_tokens=(d,), n_lrs=11, seed=i, batch_sizes=batches)
              for i, (n, d) in enumerate(pairs)]
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("synthetic", "steplaw_moe"))
    args = ap.parse_args()
    from scalefit.inference.sampling import SamplerSettings

    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs
    from scalefit.runs.table import load_runs

    cases = []
    if args.only in (None, "synthetic"):
        cases.append(("StepLaw-shaped SYNTHETIC", lambda: load_runs(steplaw_shaped())))
    if args.only in (None, "steplaw_moe") and STEPLAW.exists():
        cases.append(("steplaw_moe (all batch sizes)", lambda: load_runs(STEPLAW, n_column="n_params_active")))
    print("| table | runs | cells | batch sizes | wall s | max r_hat | min ess_bulk | min ess_tail | divergences "
          "| converged | B slope per e-fold (90% ETI) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, load in cases:
        table = load()
        t0 = time.perf_counter()
        fit = fit_runs(table, ModelConfig(axis="ND"), SamplerSettings())
        wall = time.perf_counter() - t0
        c = fit.convergence
        slope = ""
        if "law_slope_B_natural" in fit.posterior:
            lo, med, hi = np.quantile(fit.posterior["law_slope_B_natural"].values, [0.05, 0.5, 0.95])
            slope = f"{med:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        print(f"| {name} | {len(table.runs)} | {len(table.cells)} | {table.cells['batch_size'].nunique()} | "
              f"{wall:.0f} | {c.max_rhat:.3f} | {c.min_ess_bulk:.0f} | {c.min_ess_tail:.0f} | {c.divergences} | "
              f"{c.converged} | {slope} |", flush=True)


if __name__ == "__main__":
    main()
