"""Progress of the cpu_ladder_v1 collection: cells done, best LR per sweep, edges, divergences, ETA.

    python runners/grids/cpu_ladder_v1/status.py [--out data/cpu_ladder_v1] [--card DATA_CARD.md]

Prints a Markdown summary; with --card, replaces the text between the ``<!-- status:begin -->``
and ``<!-- status:end -->`` markers of that file. Reads only config.json / result.json (no torch).

A "sweep" is one (optimizer, size, token budget, seed): its LR window comes from the specs. Best LR =
lowest validation loss among finished, non-diverged runs. "bracketed" = the sweep is complete and
the best LR has a finished LR on each side inside the window; "EDGE low/high" = complete and the
best LR is the window's smallest/largest (widen the window on that side: make_specs.py).
"""
import argparse
import glob
import json
import math
import re
import time
from collections import defaultdict
from pathlib import Path

try:
    from scalefit.train import store  # no torch import
except ImportError:  # running from a checkout without `pip install -e .`
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from scalefit.train import store

HERE = Path(__file__).resolve().parent
# tokens/s of 1 niced thread when no measurement of a size exists yet (docs/runners.md; pilot)
FALLBACK_FLOPS_PER_S = 3.0e10


def load(out: Path):
    grid = json.loads((out / "grid.json").read_text())
    cells = []
    for cid in grid["cells"]:
        d = out / "cells" / cid
        cfg = json.loads((d / "config.json").read_text())
        res = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else None
        live = (d / "claim").exists() and not store.claim_is_stale(d / "claim", float("inf"))
        cells.append((cid, cfg, res, live))
    return grid, cells


def summary(out: Path) -> str:
    grid, cells = load(out)
    n, done = len(cells), [c for c in cells if c[2] is not None]
    st = defaultdict(int)
    for c in done:
        st[c[2]["status"]] += 1
    running = [c for c in cells if c[2] is None and c[3]]
    # FLOP rate per size from finished ok runs (train + eval + probe overhead: use wall_s)
    rate = defaultdict(list)
    for cid, cfg, res, _ in done:
        if res["status"] == "ok" and res.get("wall_s"):
            rate[cfg["meta"]["size"]].append(cfg["meta"]["flops"] / res["wall_s"])
    med = {s: sorted(v)[len(v) // 2] for s, v in rate.items()}
    # an unmeasured (larger) size: the rate of the largest measured size (CPU FLOP efficiency rises with size)
    by_n = {cfg["meta"]["size"]: cfg["meta"]["n_params"] for _, cfg, _, _ in cells}
    fallback = med[max(med, key=by_n.get)] if med else FALLBACK_FLOPS_PER_S
    left_s = sum(cfg["meta"]["flops"] / med.get(cfg["meta"]["size"], fallback)
                 for cid, cfg, res, _ in cells if res is None)
    lines = [f"Updated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: **{len(done)} of {n} cells finished** "
             f"({', '.join(f'{k}: {v}' for k, v in sorted(st.items())) or 'none'}); "
             f"{n - len(done)} remaining, est. **{left_s / 3600 / max(1, len(running)):.1f} h** with "
             f"{max(1, len(running))} worker(s) at the per-worker FLOP rates measured so far "
             f"({', '.join(f'{s} {r / 1e9:.0f} GFLOP/s' for s, r in sorted(med.items(), key=lambda kv: kv[0])) or 'none yet'}; "
             f"unmeasured sizes at {fallback / 1e9:.0f})."]
    if running:
        lines.append("Running now: " + ", ".join(f"{c[1]['meta']['size']} {c[1]['config']['optimizer']} "
                                                 f"lr={c[1]['config']['lr']:.4g} D={c[1]['meta']['n_tokens']:.3g}"
                                                 for c in running) + ".")
    sweeps = defaultdict(list)
    for cid, cfg, res, _ in cells:
        k = (cfg["config"]["optimizer"], cfg["meta"]["n_params"], cfg["meta"]["size"], cfg["meta"]["n_tokens"],
             cfg["config"]["seed"])
        sweeps[k].append((cfg["config"]["lr"], res))
    lines += ["", "| optimizer | size | D (tokens) | seed | LRs done | LR window | best LR | best val loss | state |",
              "|---|---|---|---|---|---|---|---|---|"]
    edges, diverged = [], []
    for k in sorted(sweeps):
        opt, _, size, D, seed = k
        runs = sorted(sweeps[k], key=lambda t: t[0])
        lrs = [lr for lr, _ in runs]
        fin = [(lr, r) for lr, r in runs if r is not None]
        for lr, r in fin:
            if r["status"] != "ok":
                diverged.append(f"{opt} {size} D={D:.3g} seed={seed} lr={lr:.4g}: {r['status']} "
                                f"(steps {r.get('steps')}/{r.get('steps_planned', '?')}, val {r.get('final_loss')})")
        ok = [(lr, r["final_loss"]) for lr, r in fin if r["status"] == "ok" and r.get("final_loss") is not None
              and math.isfinite(r["final_loss"])]
        if not fin:
            continue
        state, best, bl = "", "-", "-"
        if ok:
            blr, bloss = min(ok, key=lambda t: t[1])
            best, bl = f"{blr:.4g}", f"{bloss:.4f}"
            if len(fin) == len(runs):
                if blr == lrs[0]:
                    state = "**EDGE low**"
                elif blr == lrs[-1]:
                    state = "**EDGE high**"
                else:
                    state = "bracketed"
                if state != "bracketed":
                    edges.append(f"{opt} {size} D={D:.3g} seed={seed}: best {blr:.4g} at the {state[7:-2]} end")
            else:
                state = "in progress"
        lines.append(f"| {opt} | {size} | {D:.3g} | {seed} | {len(fin)}/{len(runs)} | {lrs[0]:.4g}-{lrs[-1]:.4g} "
                     f"| {best} | {bl} | {state} |")
    lines += ["", "Diverged / failed runs: " + ("; ".join(diverged) if diverged else "none so far.")]
    lines += ["", "Sweeps whose best LR sits at an edge of the window (need a wider range): "
              + ("; ".join(edges) if edges else "none so far.")]
    # seed noise: per (size, D, lr) std of val loss over seeds, when >= 2 seeds are done
    noise = defaultdict(dict)
    for cid, cfg, res, _ in cells:
        if res is not None and res["status"] == "ok" and res.get("final_loss") is not None:
            noise[(cfg["meta"]["size"], cfg["meta"]["n_tokens"], cfg["config"]["optimizer"],
                   cfg["config"]["lr"])][cfg["config"]["seed"]] = res["final_loss"]
    rows = [(k, v) for k, v in sorted(noise.items()) if len(v) >= 2]
    if rows:
        lines += ["", "Seed noise (validation loss over seeds):", "",
                  "| size | D | optimizer | lr | seeds | mean | std | max-min |", "|---|---|---|---|---|---|---|---|"]
        for (size, D, opt, lr), v in rows:
            x = list(v.values())
            m = sum(x) / len(x)
            sd = math.sqrt(sum((a - m) ** 2 for a in x) / (len(x) - 1))
            lines.append(f"| {size} | {D:.3g} | {opt} | {lr:.4g} | {sorted(v)} | {m:.4f} | {sd:.4f} | {max(x) - min(x):.4f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="data/cpu_ladder_v1")
    p.add_argument("--card", default=None)
    a = p.parse_args()
    text = summary(Path(a.out))
    if a.card:
        card = Path(a.card)
        old = card.read_text()
        new = re.sub(r"(<!-- status:begin -->).*?(<!-- status:end -->)",
                     lambda m: m.group(1) + "\n" + text + "\n" + m.group(2), old, flags=re.S)
        card.write_text(new)
    print(text)


if __name__ == "__main__":
    main()
