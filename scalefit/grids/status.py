"""Model-free summaries of an LR grid: best LR per sweep, edges, divergences, seed noise, ETA.

Two entry points, no torch and no fit:

- from a runner output directory and its spec (``scalefit grid status SPEC --out DIR``):
  :func:`grid_table` (one row per planned or bracket-added run, with its state) and
  :func:`status_markdown` (progress, ETA, per-sweep table, edges, divergences, seed noise);
- from a runs table (``scalefit collect`` output): :func:`sweeps`, :func:`seed_noise`,
  :func:`log_slopes`, the numbers a data card's findings quote.

A *sweep* is one LR scan: (optimizer, size, token budget, seed, weight decay). Its best LR is the
lowest validation loss among finished ``ok`` runs; ``vertex_lr`` refines it with a parabola in
ln(lr) through the best run and its two neighbours (on a half-octave grid the argmin alone is
coarse). "EDGE low/high": the sweep is finished and its best LR is its smallest/largest.

Examples
--------
>>> from scalefit.grids.spec import load_spec
>>> from scalefit.grids.status import status_markdown, sweeps
>>> print(status_markdown(load_spec("runners/grids/micro.toml"), "out/micro"))  # doctest: +SKIP
>>> sweeps(pd.read_csv("data/cpu_ladder_v1/runs.csv"))  # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.grids import brackets, store
from scalefit.grids.spec import GridSpec

__all__ = ["SWEEP_COLUMNS", "vertex", "sweeps", "seed_noise", "log_slopes", "grid_table", "sweep_states",
           "eta_seconds", "status_markdown"]

SWEEP_COLUMNS = ["optimizer", "size", "n_tokens", "seed", "weight_decay"]
FALLBACK_FLOPS_PER_S = 3.0e10  # a rough one-CPU-thread rate: the ETA's guess until a run has finished


# --------------------------------------------------------------------------- runs-table summaries
def vertex(lr: np.ndarray, loss: np.ndarray) -> float:
    """ln-space parabola vertex through the argmin and its neighbours; the argmin at an edge.

    Parameters
    ----------
    lr : numpy.ndarray
        The sweep's LRs (any order).
    loss : numpy.ndarray
        Their losses.

    Returns
    -------
    float
        The LR at the vertex; the argmin LR when it is an end point or the parabola opens
        downwards.
    """
    order = np.argsort(lr)
    x, y = np.log(np.asarray(lr, float)[order]), np.asarray(loss, float)[order]
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(np.exp(x[i]))
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    return float(np.exp(-b / (2 * a))) if a > 0 else float(np.exp(x[i]))


def _with_wd(runs: pd.DataFrame) -> pd.DataFrame:
    """A weight_decay column (0 where absent or NaN), so sweeps at two weight decays stay apart."""
    wd = runs["weight_decay"] if "weight_decay" in runs else pd.Series(0.0, index=runs.index)
    return runs.assign(weight_decay=pd.to_numeric(wd, errors="coerce").fillna(0.0))


def sweeps(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (optimizer, size, D, seed, weight decay) sweep of ``ok`` runs: best and vertex
    LR, bracketing.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table with optimizer, size, n_params, n_tokens, seed, lr, final_loss, status
        (weight_decay and eff_lr if present).

    Returns
    -------
    pandas.DataFrame
        Columns optimizer, size, n_params, n_tokens, seed, weight_decay, n_lrs, best_lr,
        vertex_lr, best_loss, eff_lr_at_best, bracketed (the best LR is neither end).
    """
    ok = _with_wd(runs[runs["status"] == "ok"])
    rows = []
    for (opt, size, d, seed, wd), g in ok.groupby(["optimizer", "size", "n_tokens", "seed", "weight_decay"]):
        best = g.loc[g["final_loss"].idxmin()]
        rows.append({"optimizer": opt, "size": size, "n_params": int(best["n_params"]), "n_tokens": int(d),
                     "seed": int(seed), "weight_decay": float(wd), "n_lrs": len(g), "best_lr": best["lr"],
                     "vertex_lr": vertex(g["lr"].to_numpy(), g["final_loss"].to_numpy()),
                     "best_loss": best["final_loss"], "eff_lr_at_best": best.get("eff_lr", np.nan),
                     "bracketed": bool(g["lr"].min() < best["lr"] < g["lr"].max())})
    return pd.DataFrame(rows).sort_values(["optimizer", "seed", "n_params", "n_tokens"]).reset_index(drop=True)


def seed_noise(runs: pd.DataFrame, optimizer: str = "adamw") -> dict:
    """Where >= 3 seeds share (size, D, weight decay, lr): loss sd per LR, and the spread of the
    located optimum.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table (as for :func:`sweeps`).
    optimizer : str, default "adamw"
        The optimizer whose runs are read.

    Returns
    -------
    dict
        Keyed ``size@D``, plus `` wd=<wd>`` when the runs hold several weight decays; each value
        holds lrs, seeds, loss_sd_median, loss_sd_max, loss_sd_by_lr, argmin_lr_by_seed,
        vertex_lr_by_seed and vertex_sd_octaves.
    """
    ok = _with_wd(runs[(runs["status"] == "ok") & (runs["optimizer"] == optimizer)])
    several = ok["weight_decay"].nunique() > 1
    out = {}
    for (size, d, wd), g in ok.groupby(["size", "n_tokens", "weight_decay"]):
        if g["seed"].nunique() < 3:
            continue
        shared = g.groupby("lr").filter(lambda h: h["seed"].nunique() >= 3)
        per_lr = shared.groupby("lr")["final_loss"].agg(["mean", "std"])
        opt = [vertex(h["lr"].to_numpy(), h["final_loss"].to_numpy()) for _, h in shared.groupby("seed")]
        argmins = [h.loc[h["final_loss"].idxmin(), "lr"] for _, h in shared.groupby("seed")]
        out[f"{size}@{d:.0e}" + (f" wd={wd:g}" if several else "")] = {
            "lrs": len(per_lr), "seeds": int(shared["seed"].nunique()),
            "loss_sd_median": float(per_lr["std"].median()), "loss_sd_max": float(per_lr["std"].max()),
            "loss_sd_by_lr": {f"{k:.4g}": round(float(v), 4) for k, v in per_lr["std"].items()},
            "argmin_lr_by_seed": [float(a) for a in argmins],
            "vertex_lr_by_seed": [round(v, 6) for v in opt],
            "vertex_sd_octaves": float(np.std(np.log2(opt), ddof=1)),
        }
    return out


def log_slopes(table: pd.DataFrame, along: str, at: str) -> pd.DataFrame:
    """Per value of ``at``: OLS slope (and quadratic coefficient) of ln vertex_lr on ln ``along``.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`sweeps` table.
    along : str
        The column regressed on (e.g. ``n_params``).
    at : str
        The column held fixed (e.g. ``n_tokens``); groups of fewer than 3 sweeps are skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``at``, points, slope, quad_coef (NaN below 4 points).
    """
    rows = []
    for v, g in table.groupby(at):
        if len(g) < 3:
            continue
        x, y = np.log(g[along].to_numpy(float)), np.log(g["vertex_lr"].to_numpy(float))
        quad = np.polyfit(x - x.mean(), y, 2)[0] if len(g) >= 4 else np.nan
        rows.append({at: v, "points": len(g), "slope": np.polyfit(x, y, 1)[0], "quad_coef": quad})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a grid in progress
def _state(d: Path) -> tuple[str, dict | None]:
    st = store.status(d)
    if st in ("pending", "running", "stale"):
        return st, None
    try:
        return st, store.read_json(d / store.RESULT)
    except (FileNotFoundError, ValueError):
        return st, None


def grid_table(spec: GridSpec, out: str | Path) -> pd.DataFrame:
    """One row per run of the plan plus recorded bracket extensions: axes, state, loss, wall time.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : str or Path
        The runner output directory.

    Returns
    -------
    pandas.DataFrame
        Columns run_id, sweep, optimizer, size, n_params, n_tokens, seed, weight_decay, lr, lr_k,
        added (a bracket extension), flops, status (:func:`scalefit.grids.store.status`),
        final_loss, wall_s.
    """
    out, rows, seen = Path(out), [], set()
    extra = {c.id for c in brackets.load(spec, out)}
    for c in spec.runs + brackets.load(spec, out):
        if c.id in seen:
            continue
        seen.add(c.id)
        st, res = _state(store.run_dir(out, c.id))
        rows.append(dict(run_id=c.id, sweep=c.meta["sweep"], optimizer=c.config["optimizer"],
                         size=c.meta["size"], n_params=c.meta["n_params"], n_tokens=c.meta["n_tokens"],
                         seed=c.config["seed"], weight_decay=c.config["weight_decay"], lr=c.config["lr"],
                         lr_k=c.meta["lr_k"], added=c.id in extra, flops=c.meta["flops"], status=st,
                         final_loss=(res or {}).get("final_loss"), wall_s=(res or {}).get("wall_s")))
    df = pd.DataFrame(rows)
    df["final_loss"] = pd.to_numeric(df["final_loss"], errors="coerce")
    df["wall_s"] = pd.to_numeric(df["wall_s"], errors="coerce")
    return df


def sweep_states(runs: pd.DataFrame) -> pd.DataFrame:
    """Per sweep of a :func:`grid_table`: LRs done/planned, window, best LR and loss, and
    bracketed / EDGE / in progress.

    Parameters
    ----------
    runs : pandas.DataFrame
        A :func:`grid_table`.

    Returns
    -------
    pandas.DataFrame
        One row per :data:`SWEEP_COLUMNS` group: sweep, n_params, lrs_done, lrs, lr_min, lr_max,
        added, best_lr, best_loss, diverged, failed, state (``pending``, ``in progress``,
        ``bracketed``, ``EDGE low``, ``EDGE high`` or ``no ok run``).
    """
    rows = []
    for key, g in runs.groupby(SWEEP_COLUMNS):
        g = g.sort_values("lr")
        fin = g[g["status"].isin(["ok", "diverged", "failed"])]
        ok = fin[(fin["status"] == "ok") & fin["final_loss"].notna()]
        row = dict(zip(SWEEP_COLUMNS, key), sweep=g["sweep"].iloc[0], n_params=g["n_params"].iloc[0], lrs_done=len(fin), lrs=len(g),
                   lr_min=g["lr"].min(), lr_max=g["lr"].max(), added=int(g["added"].sum()),
                   best_lr=np.nan, best_loss=np.nan, diverged=int((fin["status"] == "diverged").sum()),
                   failed=int((fin["status"] == "failed").sum()), state="pending" if fin.empty else "in progress")
        if not ok.empty:
            best = ok.loc[ok["final_loss"].idxmin()]
            row.update(best_lr=best["lr"], best_loss=best["final_loss"])
            if len(fin) == len(g):
                row["state"] = ("EDGE low" if best["lr"] == g["lr"].min() else
                                "EDGE high" if best["lr"] == g["lr"].max() else "bracketed")
        elif len(fin) == len(g):
            row["state"] = "no ok run"
        rows.append(row)
    return pd.DataFrame(rows)


def eta_seconds(runs: pd.DataFrame, workers: int) -> tuple[float, dict]:
    """Remaining wall time at the per-size FLOP rates measured so far (finished ok runs), and the
    rates. An unmeasured size gets the rate of the largest measured one.

    Parameters
    ----------
    runs : pandas.DataFrame
        A :func:`grid_table`.
    workers : int
        Workers training in parallel (at least 1 is assumed).

    Returns
    -------
    tuple of (float, dict)
        Seconds left, and size -> median FLOP/s of its finished runs.
    """
    done = runs[(runs["status"] == "ok") & (runs["wall_s"] > 0)]
    rates = (done["flops"] / done["wall_s"]).groupby(done["size"]).median().to_dict()
    by_n = runs.groupby("size")["n_params"].first().to_dict()
    fallback = rates[max(rates, key=by_n.get)] if rates else FALLBACK_FLOPS_PER_S
    left = runs[runs["status"].isin(["pending", "running", "stale"])]
    secs = sum(f / rates.get(s, fallback) for f, s in zip(left["flops"], left["size"]))
    return secs / max(1, workers), rates


def status_markdown(spec: GridSpec, out: str | Path) -> str:
    """The progress summary ``scalefit grid status`` prints (Markdown).

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : str or Path
        The runner output directory.

    Returns
    -------
    str
        Progress and ETA, the per-sweep table, sweeps with the best LR on an edge, diverged and
        failed runs, and seed noise where seeds repeat.

    Examples
    --------
    >>> print(status_markdown(load_spec("runners/grids/micro.toml"), "out/micro"))  # doctest: +SKIP
    """
    runs = grid_table(spec, out)
    counts = runs["status"].value_counts().to_dict()
    n_fin = sum(counts.get(k, 0) for k in ("ok", "diverged", "failed"))
    running = runs[runs["status"] == "running"]
    eta, rates = eta_seconds(runs, len(running))
    added = int(runs["added"].sum())
    lines = [f"{spec.name}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: **{n_fin} of {len(runs)} runs "
             f"finished** ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
             + (f", {added} of them added by bracket extension" if added else "")
             + f"; ETA **{eta / 3600:.1f} h** with {max(1, len(running))} worker(s) at the FLOP rates measured "
             f"so far ({', '.join(f'{s} {r / 1e9:.0f} GFLOP/s' for s, r in sorted(rates.items())) or 'none yet'})."]
    if len(running):
        lines.append("Running now: " + ", ".join(f"{r.size} {r.optimizer} lr={r.lr:.4g} D={r.n_tokens:.3g}"
                                                 for r in running.itertuples()) + ".")
    sw = sweep_states(runs)
    lines += ["", "| sweep | optimizer | size | D (tokens) | seed | LRs done | LR window | best LR | best val loss | state |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sw.sort_values(["optimizer", "seed", "n_params", "n_tokens"]).itertuples():
        best = "-" if math.isnan(r.best_lr) else f"{r.best_lr:.4g}"
        loss = "-" if math.isnan(r.best_loss) else f"{r.best_loss:.4f}"
        state = f"**{r.state}**" if r.state.startswith("EDGE") else r.state
        lines.append(f"| {r.sweep} | {r.optimizer} | {r.size} | {r.n_tokens:.3g} | {r.seed} | {r.lrs_done}/{r.lrs} "
                     f"| {r.lr_min:.4g}-{r.lr_max:.4g} | {best} | {loss} | {state} |")
    edges = sw[sw["state"].str.startswith("EDGE")]
    lines += ["", "Sweeps with the best LR on an edge (widen them, or set [sweep.extend]): "
              + ("; ".join(f"{r.optimizer} {r.size} D={r.n_tokens:.3g} seed={r.seed} ({r.state[5:]})"
                           for r in edges.itertuples()) or "none.")]
    bad = runs[runs["status"].isin(["diverged", "failed"])]
    lines += ["", "Diverged / failed runs: " + ("; ".join(f"{r.optimizer} {r.size} D={r.n_tokens:.3g} seed={r.seed} "
                                                          f"lr={r.lr:.4g}: {r.status}" for r in bad.itertuples())
                                                 or "none.")]
    ok = runs[runs["status"] == "ok"]
    noise = (_with_wd(ok).groupby(["optimizer", "size", "n_tokens", "weight_decay", "lr"])["final_loss"]
             .agg(["count", "mean", "std"]))
    noise = noise[noise["count"] >= 2]
    if len(noise):
        lines += ["", "Seed noise (validation loss over seeds at the same LR and weight decay):", "",
                  "| optimizer | size | D | wd | lr | seeds | mean | sd |", "|---|---|---|---|---|---|---|---|"]
        for (opt, size, d, wd, lr), r in noise.iterrows():
            lines.append(f"| {opt} | {size} | {d:.3g} | {wd:g} | {lr:.4g} | {int(r['count'])} | {r['mean']:.4f} "
                         f"| {r['std']:.4f} |")
    return "\n".join(lines)
