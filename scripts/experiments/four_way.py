"""The four-way comparison on cpu_ladder_v1's AdamW runs, backtested: nominal vs effective LR x
extrapolation along N, along D, and the joint N,D law.

    python scripts/experiments/four_way.py --save scripts/experiments/results/four_way_cpu_ladder_v1.csv
    python scripts/experiments/four_way.py --from-csv scripts/experiments/results/four_way_cpu_ladder_v1.csv   # re-print, no fitting
    python scripts/experiments/four_way.py --curvature scripts/experiments/results/four_way_cpu_ladder_v1_curvature.csv

Every score is in NOMINAL LR space (the LR a user sets): an effective-LR fit's draws go through
the fitted eff_lr -> lr map (scalefit.fit.effective, its coefficient and scatter draws included).
The truth of a held-out cell is its own sweep's optimum (scalefit.evaluation.calibrate.sweep_optimum), the
competitor is the two-stage log-linear point fit in nominal LR on the same fitted cells, and
both LR kinds are scored on the same held-out cells.

- **N, N,D**: `scalefit.evaluation.calibrate` (rolling leave-largest-out chains: along N at each D; every
  cell ordered by ln N + ln D for the joint law).
- **D**: the grid has only 3 budgets, and a calibrate chain needs 4 (3 fitted + 1 held out), so
  there is no along-D chain at fixed N. Instead the largest budget (2M tokens, 5 cells) is held
  out and predicted by a law along D fitted on the 10 cells at 0.5M and 1M, N left to the
  cell scatter (as `scalefit compare`'s D variants do); the point fit is ln LR* on ln D
  through those 10 vertices. Scored with calibrate's own functions.

Each effective prediction's error is also split (``decompose``): the law's in effective space
(its median against the held-out cell's own effective optimum) and the map's alone (that true
effective optimum carried back to nominal by the map refitted on the same cells).
``--curvature`` fits the joint law and the per-budget N laws on every cell instead and writes the
curvature posteriors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "data/cpu_ladder_v1/runs.csv"
KINDS = ("nominal", "effective")
D_CHAIN = "D: largest budget held out, law along D (N in the scatter)"


def d_holdout(table, config, settings) -> pd.DataFrame:
    """Hold out the largest budget; law along D on the rest; calibrate-style rows."""
    from scalefit.evaluation.calibrate import _model_row, _scores, _score_draws, _vertices, bootstrap_draws, \
        distance_efolds, sweep_optimum
    from scalefit.fit.core import fit_runs

    cells = table.cells
    held = [int(c) for c in cells.index[np.isclose(cells["n_tokens"], cells["n_tokens"].max())]]
    fitted = [int(c) for c in cells.index if c not in held]
    fit = fit_runs(table, config.replace(axis="D"), settings, held_out=held)
    conv = fit.convergence
    vertices = _vertices(table, fitted)
    design = pd.DataFrame({"ln_d": np.log(cells.loc[fitted, "n_tokens"])}, index=fitted)
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(design)), design["ln_d"]]), vertices.to_numpy(float),
                               rcond=None)
    rows = []
    for c in held:
        info = cells.loc[c]
        truth, bracketed = sweep_optimum(table.runs[table.runs["cell"] == c])
        target = {"ln_d": float(np.log(info["n_tokens"]))}
        base = {"family": "D", "chain": D_CHAIN,
                "prefix": len(fitted), "n_fitted": len(fitted), "cell_label": info["label"],
                "n_params": float(info["n_params"]), "n_tokens": float(info["n_tokens"]),
                "distance_efolds": distance_efolds(cells.loc[fitted], info, "D"), "truth_lr": float(np.exp(truth)),
                "bracketed": bracketed, "converged": conv.converged}
        point = coef[0] + coef[1] * target["ln_d"]
        rows.append(base | {"method": "model"} | _model_row(fit, info, None, truth))
        rows.append(base | {"method": "point"} | _scores({"median": point}, truth))
        boot = bootstrap_draws(vertices, design, target)
        rows.append(base | {"method": "bootstrap"} | _scores(_score_draws(boot, truth), truth))
    fits = pd.DataFrame([{"family": "D", "chain": rows[0]["chain"], "prefix": len(fitted), "converged": conv.converged,
                          "max_rhat": conv.max_rhat, "min_ess_bulk": conv.min_ess_bulk,
                          "divergences": conv.divergences}])
    return pd.DataFrame(rows), fits


def cell_eff_optimum(runs: pd.DataFrame, ln_lr: float) -> float:
    """A cell's effective optimum: its (seed-averaged) ln eff_lr, linear in ln lr, read at ln_lr."""
    ok = runs[(runs["status"] == "ok") & (runs["eff_lr"] > 0)]
    mean = ok.groupby(np.log(ok["lr"].to_numpy(dtype=float)))["eff_lr"].apply(lambda e: np.log(e).mean()).sort_index()
    return float(np.interp(ln_lr, mean.index.to_numpy(), mean.to_numpy()))


def decompose(table, rows: pd.DataFrame, families) -> pd.DataFrame:
    """Split each effective-LR prediction's error into the law's (effective space) and the map's.

    For every effective model row: ``truth_eff_lr``, the held-out cell's own effective optimum
    (its eff_lr at the truth); ``map_only_lr``, the median nominal LR the eff_lr map (refitted on
    the same fitted cells, as the fit did: no sampling) gives for that *true* effective optimum,
    so its error is the map's alone; ``map_slope``, the map's median local slope
    d ln eff_lr / d ln lr there."""
    from scalefit.evaluation.calibrate import chains
    from scalefit.model.config import ModelConfig
    from scalefit.fit.effective import fit_effective_map
    from scalefit.model.data import prepare

    plans = [(ch.family, ch.label, k, list(ch.cells[:k]), list(ch.cells[k:]))
             for ch in chains(table, [f for f in families if f in ("N", "ND")]) for k in range(3, len(ch.cells))]
    cells = table.cells
    if "D" in families:
        held = [int(c) for c in cells.index[np.isclose(cells["n_tokens"], cells["n_tokens"].max())]]
        plans.append(("D", D_CHAIN, len(cells) - len(held), [int(c) for c in cells.index if c not in held], held))
    rows = rows.copy()
    for col in ("truth_eff_lr", "map_only_lr", "map_slope"):
        rows[col] = np.nan
    eff_rows = rows[(rows["lr_kind"] == "effective") & (rows["method"] == "model")]
    for family, label, k, fitted, held in plans:
        mine = eff_rows[(eff_rows["family"] == family) & (eff_rows["chain"] == label) & (eff_rows["prefix"] == k)]
        if mine.empty:
            continue
        ids = sorted(fitted + held)
        sub = table.subset(np.array(ids))
        new = {old: i for i, old in enumerate(ids)}
        held_new = [new[c] for c in held]
        std = prepare(sub.runs, sub.cells, ModelConfig(axis=family, lr_kind="effective"), held_out=held_new).std
        emap = fit_effective_map(sub.runs, std, held_new)
        for c_old, c_new in zip(held, held_new):
            info = sub.cells.loc[c_new]
            idx = mine.index[mine["cell_label"] == info["label"]]
            if not len(idx):
                continue
            truth = np.log(float(rows.loc[idx[0], "truth_lr"]))
            ln_eff = cell_eff_optimum(table.runs[table.runs["cell"] == c_old], truth)
            rows.loc[idx, "truth_eff_lr"] = np.exp(ln_eff)
            try:
                back = emap.to_nominal(np.full(4000, ln_eff), info["n_params"], info["n_tokens"])
                rows.loc[idx, "map_only_lr"] = float(np.exp(np.median(back)))
            except ValueError:
                pass
            slopes = emap._slopes(info["n_params"], info["n_tokens"])
            u = truth - emap.lr_center
            c6 = emap.coef_draws[:, 6]
            rows.loc[idx, "map_slope"] = float(np.median(slopes + 2 * c6 * u))
    return rows


def run(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    from scalefit.evaluation.calibrate import calibrate
    from scalefit.model.config import ModelConfig
    from scalefit.runs.table import load_runs
    from scalefit.inference.sampling import SamplerSettings

    table = load_runs(args.runs, where={"optimizer": "adamw"})
    settings = SamplerSettings(draws=args.draws, tune=args.tune, progress=False)
    families = [f for f in args.families.split(",") if f]
    rows, fits = [], []
    for kind in args.kinds.split(","):
        config = ModelConfig(lr_kind=kind)
        t0 = time.perf_counter()
        chain_families = [f for f in families if f in ("N", "ND")]
        if chain_families:
            cal = calibrate(table, chain_families, config, settings, progress=False)
            rows.append(cal.rows.assign(lr_kind=kind))
            fits.append(cal.fits.assign(lr_kind=kind))
        if "D" in families:
            r, f = d_holdout(table, config, settings)
            rows.append(r.assign(lr_kind=kind))
            fits.append(f.assign(lr_kind=kind))
        print(f"{kind}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    rows = pd.concat(rows, ignore_index=True)
    if "effective" in args.kinds.split(","):
        rows = decompose(table, rows, families)
    return rows, pd.concat(fits, ignore_index=True)


def common_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of held-out cells (family, chain, prefix, cell) that both LR kinds scored."""
    key = ["family", "chain", "prefix", "cell_label"]
    ok = rows[(rows["method"] == "model") & rows["bracketed"] & rows["error"].fillna("").eq("")]
    both = ok.groupby(key)["lr_kind"].nunique()
    keep = set(both[both == rows["lr_kind"].nunique()].index)
    return rows[[tuple(r) in keep for r in rows[key].itertuples(index=False)]]


def report(rows: pd.DataFrame, fits: pd.DataFrame | None = None) -> None:
    from scalefit.evaluation.calibrate import format_summary, summarize

    model = rows[(rows["method"] == "model") & rows["bracketed"]]
    failed = model[model["error"].fillna("").ne("")]
    print(f"held-out predictions (bracketed): {len(model)}; no nominal answer (eff_lr map not rising "
          f"at the cell): {len(failed)}")
    if fits is not None and len(fits):
        conv = fits.groupby(["lr_kind", "family"])["converged"].agg(["sum", "count"])
        print("fits converged:", ", ".join(f"{k}/{f} {int(s)}/{int(n)}" for (k, f), (s, n) in conv.iterrows()))
    same = common_cells(rows)
    # the point fit and the bootstrap are the same for both kinds (nominal, same fitted cells): keep one copy
    comp = pd.concat([same[same["method"] == "model"].assign(method=lambda d: d["lr_kind"] + " model"),
                      same[(same["method"] != "model") & (same["lr_kind"] == "nominal")]])
    for title, by in (("every family, same held-out cells", ("method",)),
                      ("per family, same held-out cells", ("family", "method"))):
        print(f"\n## {title}")
        print(format_summary(summarize(comp, by).drop(columns=["n_failed"])))
    print("\n## as run (each kind on every cell it could predict)")
    print(format_summary(summarize(rows, ("lr_kind", "family", "method"))))
    if rows["lr_kind"].nunique() < 2:
        return
    m = same[same["method"] == "model"].pivot_table(index=["family", "chain", "prefix", "cell_label"],
                                                    columns="lr_kind", values="log10_err")
    d = m["effective"].abs() - m["nominal"].abs()
    print(f"\nper cell |err| effective - nominal (log10): mean {d.mean():+.3f}, median {d.median():+.3f}, "
          f"effective closer on {int((d < 0).sum())} of {len(d)} cells")
    for fam, g in d.groupby(level="family"):
        boot = np.random.default_rng(0).choice(g.to_numpy(), (2000, len(g))).mean(axis=1)
        print(f"  {fam}: mean {g.mean():+.3f} (row bootstrap 90% [{np.quantile(boot, 0.05):+.3f}, "
              f"{np.quantile(boot, 0.95):+.3f}]; rows of one chain share cells and fits, so this is too narrow), "
              f"effective closer on {int((g < 0).sum())} of {len(g)}")
    if "map_only_lr" in same:
        e = same[(same["method"] == "model") & (same["lr_kind"] == "effective")].copy()
        n = same[(same["method"] == "model") & (same["lr_kind"] == "nominal")].set_index(
            ["family", "chain", "prefix", "cell_label"])["log10_err"]
        e["nominal_err"] = n.loc[list(e.set_index(["family", "chain", "prefix", "cell_label"]).index)].to_numpy()
        e["eff_space_err"] = np.log10(e["eff_lr_median"] / e["truth_eff_lr"]) if "eff_lr_median" in e else np.nan
        e["map_err"] = np.log10(e["map_only_lr"] / e["truth_lr"])
        print("\n## where the effective error comes from (same cells; log10; mean, and mean |.|)")
        print("| family | n | nominal model err | effective model err | its law, in effective space | "
              "its map alone (true eff optimum -> nominal) | map slope d ln eff / d ln lr (median) |")
        print("|---|---|---|---|---|---|---|")
        for fam, g in e.groupby("family", sort=False):
            cols = [g["nominal_err"], g["log10_err"], g["eff_space_err"], g["map_err"]]
            print(f"| {fam} | {len(g)} | " + " | ".join(f"{c.mean():+.3f} / {c.abs().mean():.3f}" for c in cols)
                  + f" | {g['map_slope'].median():.2f} |")


def curvature(args) -> pd.DataFrame:
    """Curvature posteriors on every AdamW cell, nominal vs effective: the joint N,D law (both
    axes), and the law along N one budget at a time (the slices of DATA_CARD finding 2)."""
    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs
    from scalefit.runs.table import load_runs
    from scalefit.inference.sampling import SamplerSettings

    table = load_runs(args.runs, where={"optimizer": "adamw"})
    settings = SamplerSettings(draws=args.curvature_draws, tune=1000, progress=False)
    slices = [("all cells", "ND", None)] + [(f"D = {d:.3g}", "N", d) for d in sorted(table.cells["n_tokens"].unique())]
    out = []
    for kind in args.kinds.split(","):
        for label, axis, d in slices:
            sub = table if d is None else load_runs(args.runs, where={"optimizer": "adamw", "n_tokens": d})
            fit = fit_runs(sub, ModelConfig(axis=axis, lr_kind=kind), settings)
            post = fit.posterior.to_dataset()
            conv = fit.convergence
            for a in ("N", "D") if axis == "ND" else (axis,):
                curv = post[f"law_curvature_{a}_natural"].values.ravel()
                slope = post[f"law_slope_{a}_natural"].values.ravel()
                q = np.quantile(curv, [0.05, 0.5, 0.95])
                out.append({"lr_kind": kind, "fit": label, "law": axis, "axis": a,
                            "p_curvature_positive": float(np.mean(curv > 0)),
                            "curvature_q05": q[0], "curvature_median": q[1], "curvature_q95": q[2],
                            "slope_median": float(np.median(slope)), "converged": conv.converged,
                            "max_rhat": conv.max_rhat, "min_ess_bulk": conv.min_ess_bulk,
                            "divergences": conv.divergences})
            print(f"{kind} {label}: done", file=sys.stderr, flush=True)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=RUNS)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--families", default="N,D,ND")
    ap.add_argument("--save", type=Path, help="write every scored row here (CSV); fits go to *_fits.csv")
    ap.add_argument("--from-csv", type=Path, help="re-print from rows saved by --save (no fitting)")
    ap.add_argument("--curvature", type=Path, help="instead of backtests: fit the joint law and the per-budget "
                    "N laws on every cell, both LR kinds, and write the curvature posteriors here (CSV)")
    ap.add_argument("--curvature-draws", type=int, default=2000)
    args = ap.parse_args()
    if args.curvature:
        frame = curvature(args)
        args.curvature.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.curvature, index=False, float_format="%.4g")
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        return
    if args.from_csv:
        fits_path = args.from_csv.with_name(args.from_csv.stem + "_fits.csv")
        report(pd.read_csv(args.from_csv), pd.read_csv(fits_path) if fits_path.exists() else None)
        return
    rows, fits = run(args)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.save, index=False, float_format="%.5g")
        fits.to_csv(args.save.with_name(args.save.stem + "_fits.csv"), index=False, float_format="%.5g")
    report(rows, fits)


if __name__ == "__main__":
    main()
