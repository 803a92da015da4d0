"""The model-free facts of the cpu_ladder_v1 grid: optima per sweep, seed noise, AdamW vs AdamH.

    python runners/grids/cpu_ladder_v1/findings.py [data/cpu_ladder_v1/runs.csv] [--json]

Reads only the runs table (no fit), so every number in the data card's findings that does not
come from `scalefit compare` comes from here. A sweep's optimum is located two ways: the argmin
run, and the vertex of a parabola in ln(lr) through the best run and its two neighbours (the
half-octave grid makes the argmin alone coarse: one step is 0.5 octave).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT = Path(__file__).resolve().parents[3] / "data" / "cpu_ladder_v1" / "runs.csv"


def vertex(lr: np.ndarray, loss: np.ndarray) -> float:
    """ln-space parabola vertex through the argmin and its neighbours; the argmin at an edge."""
    order = np.argsort(lr)
    x, y = np.log(lr[order]), loss[order]
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(np.exp(x[i]))
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    return float(np.exp(-b / (2 * a))) if a > 0 else float(np.exp(x[i]))


def sweeps(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (optimizer, size, D, seed) sweep."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for (opt, size, d, seed), g in ok.groupby(["optimizer", "size", "n_tokens", "seed"]):
        g = g.sort_values("lr")
        best = g.loc[g["final_loss"].idxmin()]
        rows.append({"optimizer": opt, "size": size, "n_params": int(best["n_params"]), "n_tokens": int(d),
                     "seed": int(seed), "n_lrs": len(g), "best_lr": best["lr"],
                     "vertex_lr": vertex(g["lr"].to_numpy(), g["final_loss"].to_numpy()),
                     "best_loss": best["final_loss"], "eff_lr_at_best": best.get("eff_lr", np.nan),
                     "bracketed": bool(g["lr"].min() < best["lr"] < g["lr"].max())})
    return pd.DataFrame(rows).sort_values(["optimizer", "seed", "n_params", "n_tokens"]).reset_index(drop=True)


def seed_noise(runs: pd.DataFrame) -> dict:
    """Run-to-run noise where 3 seeds share (size, D, lr): loss sd per LR, and the optimum's spread."""
    ok = runs[(runs["status"] == "ok") & (runs["optimizer"] == "adamw")]
    out = {}
    for (size, d), g in ok.groupby(["size", "n_tokens"]):
        if g["seed"].nunique() < 3:
            continue
        shared = g.groupby("lr").filter(lambda h: h["seed"].nunique() >= 3)
        per_lr = shared.groupby("lr")["final_loss"].agg(["mean", "std"])
        opt = [vertex(h["lr"].to_numpy(), h["final_loss"].to_numpy()) for _, h in shared.groupby("seed")]
        argmins = [h.loc[h["final_loss"].idxmin(), "lr"] for _, h in shared.groupby("seed")]
        out[f"{size}@{d:.0e}"] = {
            "lrs": len(per_lr), "seeds": int(shared["seed"].nunique()),
            "loss_sd_median": float(per_lr["std"].median()), "loss_sd_max": float(per_lr["std"].max()),
            "loss_sd_by_lr": {f"{k:.4g}": round(float(v), 4) for k, v in per_lr["std"].items()},
            "argmin_lr_by_seed": [float(a) for a in argmins],
            "vertex_lr_by_seed": [round(v, 6) for v in opt],
            "vertex_sd_octaves": float(np.std(np.log2(opt), ddof=1)),
        }
    return out


def log_slopes(table: pd.DataFrame, along: str, at: str) -> pd.DataFrame:
    """Per fixed value of `at`: OLS slope (and quadratic coefficient) of ln vertex_lr on ln `along`."""
    rows = []
    for v, g in table.groupby(at):
        if len(g) < 3:
            continue
        x, y = np.log(g[along].to_numpy(float)), np.log(g["vertex_lr"].to_numpy(float))
        slope = np.polyfit(x, y, 1)[0]
        quad = np.polyfit(x - x.mean(), y, 2)[0] if len(g) >= 4 else np.nan
        rows.append({at: v, "points": len(g), "slope": slope, "quad_coef": quad})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="?", default=str(DEFAULT))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runs = pd.read_csv(args.runs)
    sw = sweeps(runs)
    main_aw = sw[(sw["optimizer"] == "adamw") & (sw["seed"] == 0)]
    result = {
        "runs": len(runs), "diverged": int((runs["status"] == "diverged").sum()),
        "failed": int((runs["status"] == "failed").sum()),
        "sweeps": sw.to_dict(orient="records"),
        "seed_noise": seed_noise(runs),
        "adamw_slope_along_N": log_slopes(main_aw, "n_params", "n_tokens").to_dict(orient="records"),
        "adamw_slope_along_D": log_slopes(main_aw, "n_tokens", "n_params").to_dict(orient="records"),
        # How much of the optima's spread across cells the effective LR removes (ln sd across sweeps).
        "adamw_ln_sd_nominal_opt": float(np.log(main_aw["best_lr"]).std()),
        "adamw_ln_sd_effective_opt": float(np.log(main_aw["eff_lr_at_best"]).std()),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=1, default=float)
        print()
        return 0
    with pd.option_context("display.width", 140, "display.max_rows", 200):
        print(f"{result['runs']} runs; diverged {result['diverged']}, failed {result['failed']}\n")
        print(sw.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "\n")
        print("seed noise:", json.dumps(result["seed_noise"], indent=1), "\n")
        print("AdamW: d ln(lr*) / d ln N at each D\n", log_slopes(main_aw, "n_params", "n_tokens").to_string(index=False))
        print("AdamW: d ln(lr*) / d ln D at each N\n", log_slopes(main_aw, "n_tokens", "n_params").to_string(index=False))
        print(f"ln-sd of the optima across AdamW sweeps: nominal {result['adamw_ln_sd_nominal_opt']:.3f}, "
              f"effective {result['adamw_ln_sd_effective_opt']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
