"""Does `scalefit suggest` buy a narrower interval than the obvious choices, and does it keep
its promise? Two experiments, figures printed as they finish:

1. A simulated campaign over synthetic worlds with a known law (power-law-pair valleys, outliers,
   divergences: not the model's own family). Every world starts from the same small grid (4 sizes
   x 2 budgets) and gets the same FLOP budget per round for 3 rounds, spent by
   (a) `suggest`, (b) the next rung of a uniform ladder (the next size up at the starting
   budgets) and (c) random cells of the lattice. All three use the same LR windows (centred on
   the current fit's prediction) and pay 6 N D FLOPs per run. Per round: the target's 90% width,
   coverage of the true optimum and the error of the median; for suggest, the width it expected
   against the width the refit got (the check of the linearized preposterior).
2. A replay on steplaw_moe (../shared/data): per batch size, fit 6 of the 16 cells, let suggest
   choose among 9 hidden ones within a budget, reveal its choice and refit; compare the target's
   error and width with random choices of the same budget.

Every world and every replay shares one model structure (cells not yet swept are held out), so
the model compiles once and every refit swaps data.

    python scripts/experiments/suggest_campaign.py                       # 20 worlds x 3 rounds, then the replay
    python scripts/experiments/suggest_campaign.py --worlds 4 --rounds 2 --no-replay
    python scripts/experiments/suggest_campaign.py --from-csv scripts/experiments/results/suggest_campaign.csv
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
STEPLAW = REPO.parent / "shared" / "data" / "steplaw_moe" / "runs.csv"
RESULTS = REPO / "scripts" / "experiments" / "results"

SIZES = tuple(float(round(v)) for v in np.geomspace(2e6, 128e6, 7))
BUDGETS = (2e8, 4e8, 8e8, 1.6e9)
START = [(n, d) for n in SIZES[:4] for d in BUDGETS[:2]]
TARGET = (512e6, 1.6e9)
BATCH = 65536
LATTICE = {"base": 1e-3, "per_octave": 2, "digits": 4}
# one rung of the uniform ladder (the next size at both starting budgets, 7 LRs) per round
ROUND_FLOPS = 6 * SIZES[4] * sum(BUDGETS[:2]) * 7
STRATEGIES = ("suggest", "uniform", "random")


def world(seed: int):
    from scalefit.runs.synthetic import SyntheticTruth

    r = np.random.default_rng([seed, 11])
    return SyntheticTruth(intercept=float(np.log(r.uniform(1.5e-3, 8e-3))), slope_n=float(r.uniform(-0.7, -0.2)),
                          curvature_n=float(r.uniform(0.0, 0.06)), slope_d=float(r.uniform(-0.35, 0.25)),
                          curvature_d=float(r.uniform(-0.02, 0.02)), width=float(r.uniform(0.02, 0.06)),
                          noise_sd=float(r.uniform(0.002, 0.008)))


def start_lrs(truth, n, d, rng) -> np.ndarray:
    """The starting grid's sweeps: 7 half-octave LRs about the truth, jittered (a human's bracket)."""
    centre = truth.log_lr_opt(n, d) / np.log(2) + rng.uniform(-0.5, 0.5)
    return 2.0 ** (centre + 0.5 * (np.arange(7) - 3))


def table_of(truth, swept: dict, rng):
    """Runs table over the whole lattice: swept cells with their runs, the rest held out with 3
    placeholder runs each (never fitted), so every table has the same cells."""
    from scalefit.runs.table import load_runs
    from scalefit.runs.synthetic import sweep_rows

    rows = []
    for n in SIZES:
        for d in BUDGETS:
            rows += swept.get((n, d)) or sweep_rows(truth, n, d, BATCH, start_lrs(truth, n, d, rng)[2:5], [0], rng)
    table = load_runs(pd.DataFrame(rows))
    cells = table.cells
    held = [int(c) for c, r in cells.iterrows()
            if (float(r["n_params"]), float(r["n_tokens"])) not in swept]
    return table, held


def scores(fit, truth) -> dict:
    p = fit.predict(*TARGET, batch_size=None)
    true = float(np.exp(truth.log_lr_opt(*TARGET)))
    return {"width": math.log10(p.lr_high / p.lr_low), "covered": bool(p.lr_low <= true <= p.lr_high),
            "abs_err": abs(math.log10(p.lr_median / true)), "converged": bool(fit.convergence.converged)}


def choose(strategy: str, fit, swept: dict, rng) -> tuple[list, float | None]:
    """The cells (with their LRs) a strategy buys this round, and suggest's expected width."""
    from scalefit.design.suggest import Candidate, plan_candidates, suggest

    open_cells = [(n, d) for n in SIZES for d in BUDGETS if (n, d) not in swept]
    cands = [Candidate(n, d, 6.0 * n * d) for n, d in open_cells]
    if strategy == "suggest":
        s = suggest(fit, *TARGET, budget=ROUND_FLOPS, candidates=cands, lattice=LATTICE)
        return [((p.n_params, p.n_tokens), p.lrs) for p in s.proposals], s.width_after
    plans = plan_candidates(fit, cands, lattice=LATTICE)
    order = list(range(len(cands)))
    if strategy == "uniform":  # the next size up at the starting budgets
        order = sorted((i for i in order if open_cells[i][1] in BUDGETS[:2]), key=lambda i: open_cells[i])
    else:
        rng.shuffle(order)
    chosen, spent = [], 0.0
    for i in order:
        if spent + plans[i].flops <= ROUND_FLOPS:
            chosen.append((open_cells[i], plans[i].lrs))
            spent += plans[i].flops
    return chosen, None


def campaign(worlds: int, rounds: int, settings, out: list) -> None:
    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs
    from scalefit.runs.synthetic import sweep_rows

    config = ModelConfig(axis="ND")
    for w in range(worlds):
        truth = world(w)
        rng = np.random.default_rng([w, 12])
        start = {c: sweep_rows(truth, *c, BATCH, start_lrs(truth, *c, rng), [0], rng) for c in START}
        t0 = time.perf_counter()
        table, held = table_of(truth, start, rng)
        fit0 = fit_runs(table, config, settings, held_out=held)
        base = scores(fit0, truth)
        for strategy in STRATEGIES:
            out.append({"world": w, "strategy": strategy, "round": 0, "flops": 0.0, "cells": len(start), **base})
        for strategy in STRATEGIES:
            swept, fit, spent = dict(start), fit0, 0.0
            srng = np.random.default_rng([w, 13, STRATEGIES.index(strategy)])
            for r in range(1, rounds + 1):
                chosen, expected = choose(strategy, fit, swept, srng)
                for cell, lrs in chosen:
                    swept[cell] = sweep_rows(truth, *cell, BATCH, lrs, [0], srng)
                    spent += 6.0 * cell[0] * cell[1] * len(lrs)
                table, held = table_of(truth, swept, srng)
                fit = fit_runs(table, config, settings, held_out=held)
                out.append({"world": w, "strategy": strategy, "round": r, "flops": spent, "cells": len(swept),
                            "expected_width": expected, **scores(fit, truth)})
        last = pd.DataFrame([o for o in out if o["world"] == w and o["round"] == rounds])
        print(f"world {w}: " + ", ".join(f"{s} width {v:.3f}" for s, v in zip(last["strategy"], last["width"]))
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)


def summarize_campaign(rows: pd.DataFrame) -> str:
    lines = _scores_table(rows, ["round", "strategy"], {"worlds": ("world", "nunique")},
                          ["round", "strategy", "worlds"], "coverage of truth", "FLOPs spent")
    s = rows[(rows["strategy"] == "suggest") & (rows["round"] > 0)].copy()
    if len(s):
        prev = rows[rows["strategy"] == "suggest"].set_index(["world", "round"])["width"]
        s["before"] = [prev.get((w, r - 1), np.nan) for w, r in zip(s["world"], s["round"])]
        s = s.dropna(subset=["expected_width", "before"])
        exp_gain = s["before"] - s["expected_width"]
        got_gain = s["before"] - s["width"]
        lines.append(f"\nsuggest's promise: expected width {s['expected_width'].mean():.3f} vs refit {s['width'].mean():.3f} "
                     f"decades (mean over {len(s)} world-rounds); expected shrinkage {exp_gain.mean():.3f}, realized "
                     f"{got_gain.mean():.3f}; Spearman(expected, realized width) "
                     f"{s['expected_width'].rank().corr(s['width'].rank()):.2f}")
        final = rows[rows["round"] == rows["round"].max()].pivot(index="world", columns="strategy", values="width")
        for other in ("uniform", "random"):
            if other in final and "suggest" in final:
                wins = int((final["suggest"] < final[other]).sum())
                lines.append(f"last round: suggest narrower than {other} in {wins} of {len(final)} worlds "
                             f"(median ratio {np.median(final['suggest'] / final[other]):.2f})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ replay

def replay(settings, out: list, n_random: int = 5) -> None:
    """steplaw_moe per batch size: 6 fitted cells, 9 hidden candidates, the largest cell the target."""
    from scalefit.evaluation.calibrate import sweep_optimum
    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs
    from scalefit.runs.table import load_runs
    from scalefit.design.suggest import Candidate, suggest

    raw = pd.read_csv(STEPLAW)
    config = ModelConfig(axis="ND")
    for b in sorted(raw["batch_size"].unique()):
        t0 = time.perf_counter()
        table = load_runs(raw[raw["batch_size"] == b], n_column="n_params_active")
        cells = table.cells
        ns, ds = sorted(cells["n_params"].unique()), sorted(cells["n_tokens"].unique())
        cell_of = {(float(r["n_params"]), float(r["n_tokens"])): int(c) for c, r in cells.iterrows()}
        target = (float(ns[-1]), float(ds[-1]))
        start = [(float(n), float(d)) for n in ns[:3] for d in ds[:2]]
        hidden = [k for k in cell_of if k not in start and k != target]
        runs_of = {k: table.runs[table.runs["cell"] == cell_of[k]] for k in cell_of}
        truth_ln, bracketed = sweep_optimum(runs_of[target])
        cands = [Candidate(n, d, 6.0 * n * d, lrs=tuple(sorted(runs_of[(n, d)]["lr"].unique()))) for n, d in hidden]
        budget = 0.3 * sum(c.flops_per_run * len(c.lrs) for c in cands)

        def score(revealed, method, expected=None, draw=0):
            held = [cell_of[k] for k in cell_of if k not in start and k not in revealed]
            fit = fit_runs(table, config, settings, held_out=held)
            p = fit.predict(*target)
            flops = sum(6.0 * k[0] * k[1] * len(runs_of[k]["lr"].unique()) for k in revealed)
            out.append({"batch_size": b, "method": method, "draw": draw, "revealed": len(revealed), "flops": flops,
                        "budget": budget, "width": math.log10(p.lr_high / p.lr_low),
                        "abs_err": abs(math.log10(p.lr_median) - truth_ln / math.log(10)),
                        "covered": bool(p.lr_low <= math.exp(truth_ln) <= p.lr_high), "bracketed": bracketed,
                        "expected_width": expected, "converged": bool(fit.convergence.converged)})
            return fit

        fit0 = score([], "start")
        s = suggest(fit0, *target, budget=budget, candidates=cands)
        score([(p.n_params, p.n_tokens) for p in s.proposals], "suggest", s.width_after)
        rng = np.random.default_rng([int(b), 7])
        for r in range(n_random):
            order, spent, pick = rng.permutation(len(cands)), 0.0, []
            for i in order:
                cost = cands[i].flops_per_run * len(cands[i].lrs)
                if spent + cost <= budget:
                    pick.append(hidden[i])
                    spent += cost
            score(pick, "random", draw=r)
        rows = pd.DataFrame([o for o in out if o["batch_size"] == b])
        print(f"steplaw_moe B={b}: " + ", ".join(
            f"{m} width {g['width'].mean():.3f} err {g['abs_err'].mean():.3f}" for m, g in rows.groupby("method", sort=False))
            + f" ({time.perf_counter() - t0:.0f} s)", flush=True)


def summarize_replay(rows: pd.DataFrame) -> str:
    return "\n".join(_scores_table(rows, ["method"], {"replays": ("batch_size", "nunique"), "fits": ("width", "size")},
                                    ["method", "batch sizes", "fits"], "coverage", "FLOPs revealed"))


def _scores_table(rows: pd.DataFrame, by: list, counts: dict, heads: list, coverage: str, flops: str) -> list[str]:
    """Markdown rows of the mean scores per group: width, coverage, error, FLOPs, converged share."""
    t = rows.groupby(by, sort=False).agg(**counts, width=("width", "mean"), coverage=("covered", "mean"),
                                         abs_err=("abs_err", "mean"), flops=("flops", "mean"),
                                         converged=("converged", "mean")).reset_index()
    cols = heads + ["mean 90% width (dec)", coverage, "mean abs log10 err", flops, "converged"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        lines.append("| " + " | ".join(str(r[k]) for k in by + list(counts)) + f" | {r['width']:.3f} | "
                     f"{r['coverage']:.0%} | {r['abs_err']:.3f} | {r['flops']:.3g} | {r['converged']:.0%} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--no-replay", action="store_true")
    ap.add_argument("--no-campaign", action="store_true")
    ap.add_argument("--from-csv", type=Path, nargs="+", help="re-print saved rows (campaign and/or replay CSVs)")
    args = ap.parse_args()
    if args.from_csv:
        for path in args.from_csv:
            rows = pd.read_csv(path)
            print(summarize_campaign(rows) if "world" in rows else summarize_replay(rows))
        return
    from scalefit.inference.sampling import SamplerSettings

    settings = SamplerSettings(draws=args.draws, tune=args.tune)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.no_campaign:
        rows: list = []
        campaign(args.worlds, args.rounds, settings, rows)
        frame = pd.DataFrame(rows)
        frame.to_csv(RESULTS / "suggest_campaign.csv", index=False)
        print(summarize_campaign(frame), flush=True)
    if not args.no_replay:
        if not STEPLAW.exists():
            print(f"skip the replay: {STEPLAW} absent")
            return
        rows = []
        replay(settings, rows)
        frame = pd.DataFrame(rows)
        frame.to_csv(RESULTS / "suggest_replay.csv", index=False)
        print(summarize_replay(frame), flush=True)


if __name__ == "__main__":
    main()
