"""Adaptive LR brackets: widen a finished sweep whose best LR sits on an edge of its window.

A sweep block with ``[sweep.extend]`` (and its LRs on the ``[lr_lattice]``) is split into groups,
one per (size, budget, optimizer, seed, weight decay): one LR sweep. When every run of a group is
finished and its best run (lowest ``final_loss`` among ``ok`` runs) has the window's smallest k,
the next lattice LR below is added; at the largest k, the next one above, except once any run of
the group diverged or the sweep shows a loss cliff: somewhere below the best LR, raising the LR
raised the final loss by more than ``extend.cliff`` nats over every smaller LR (a valley is
monotone up to its optimum; a jump means some runs fell off an instability that the next LR up
will likely hit too). An extension that lands on a cliff or diverges ends the widening by itself:
its best LR is no longer on the edge. A group whose runs all diverged is extended downwards. At
most ``extend.max`` LRs are added per side. A group with a ``failed`` run is left alone (its
valley is unknown, and ``--retry-failed`` may still fill it).

Every extension is recorded in ``OUT/brackets.json`` (which run, which side, why, when) under a
lock file, so workers on several hosts agree and a restart re-derives the same runs: extending
is a function of the finished results and the record, hence idempotent. A record names its run
``run_id`` (older records say ``cell_id``; both are read). No torch here.

Workers call :func:`extend` when a pass finds nothing left to claim
(:func:`scalefit.train.shard.run_worker`); :func:`load` gives every reader the runs added so far.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

from scalefit.grids import store
from scalefit.grids.spec import GridSpec, Run, Sweep, sweep_runs, window_of
from scalefit.runs.schema import LEGACY_RUN_ID, RUN_ID

__all__ = ["RECORD", "LOCK", "load", "propose", "extend"]

RECORD = "brackets.json"
LOCK = ".brackets.lock"
LOCK_STALE_S = 60.0  # a lock older than this belongs to a worker that died holding it


def _group_key(c: Run) -> tuple:
    return (c.meta["size"], c.meta["budget"], c.config["optimizer"], c.config["seed"],
            c.config["weight_decay"])


def _records(out: Path) -> list[dict]:
    try:
        return store.read_json(Path(out) / RECORD)["extensions"]
    except FileNotFoundError:
        return []


def _record_id(r: dict) -> str:
    """The run id of one extension record, under its current or its old name."""
    return r[RUN_ID] if RUN_ID in r else r[LEGACY_RUN_ID]


def load(spec: GridSpec, out: Path) -> list[Run]:
    """The extension runs recorded in ``out`` for this spec's sweeps (in record order).

    Records of a sweep the spec no longer has, or no longer extends, are skipped (and kept).

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : Path
        The runner output directory (holding ``brackets.json``, if any extension was made).

    Returns
    -------
    list of Run
        The added runs; empty if nothing was recorded.
    """
    by_name = {s.name: s for s in spec.sweeps}
    runs = []
    for r in _records(out):
        sw = by_name.get(r["sweep"])
        if sw is None or sw.extend is None:
            continue  # the spec no longer asks for it: leave the record, train nothing new
        runs.append(spec.make_run(sw, r["size"], r["budget"], r["optimizer"], r["seed"],
                                  r["weight_decay"], spec.lr_at(r["k"]), r["k"]))
    return runs


def _result(out: Path, c: Run) -> dict | None:
    try:
        return store.read_json(store.run_dir(out, c.id) / store.RESULT)
    except (FileNotFoundError, ValueError):
        return None


def _has_cliff(ok: list[tuple[float, int]], best_k: int, cliff: float) -> bool:
    """A loss jump of more than ``cliff`` over every smaller LR, below the best LR."""
    lowest = math.inf
    for loss, k in sorted(ok, key=lambda t: t[1]):
        if k >= best_k:
            return False
        if loss > lowest + cliff:
            return True
        lowest = min(lowest, loss)
    return False


def _decide(sweep: Sweep, group: list[Run], results: list[dict], base: tuple[int, int]) -> list[tuple]:
    """(side, k, reason) for one finished group."""
    if any(r["status"] == "failed" for r in results):
        return []
    ks = [c.meta["lr_k"] for c in group]
    lo, hi = min(ks), max(ks)
    ok = [(r["final_loss"], c.meta["lr_k"]) for c, r in zip(group, results)
          if r["status"] == "ok" and r.get("final_loss") is not None and math.isfinite(r["final_loss"])]
    cap, out = sweep.extend["max"], []
    if not ok:
        if base[0] - lo < cap:
            out.append(("low", lo - 1, "no run of the sweep finished ok: trying lower"))
        return out
    best_loss, best_k = min(ok)
    if best_k == lo and base[0] - lo < cap:
        out.append(("low", lo - 1, f"best LR at the low edge (k={lo}, loss {best_loss:.4f})"))
    if best_k == hi and hi - base[1] < cap:
        diverged = any(r["status"] == "diverged" for r in results)
        if not (diverged or _has_cliff(ok, best_k, sweep.extend["cliff"])):
            out.append(("high", hi + 1, f"best LR at the high edge (k={hi}, loss {best_loss:.4f})"))
    return out


def propose(spec: GridSpec, out: Path, known: list[Run]) -> list[dict]:
    """Extension records due now, given the runs known so far (plan + recorded extensions).

    Writes nothing; :func:`extend` records them.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : Path
        The runner output directory (its result files decide).
    known : list of Run
        Runs already added by extension (:func:`load`).

    Returns
    -------
    list of dict
        One record per new LR: sweep, size, budget, optimizer, seed, weight_decay, side (``low``
        or ``high``), k, lr, run_id, reason, time. Groups with a run not finished yet propose
        nothing.
    """
    out, todo = Path(out), []
    for sw in spec.sweeps:
        if sw.extend is None:
            continue
        groups: dict[tuple, list[Run]] = {}
        mine = sweep_runs(spec, sw) + [c for c in known if c.meta["sweep"] == sw.name]
        for c in mine:
            g = groups.setdefault(_group_key(c), [])
            if c.id not in {x.id for x in g}:
                g.append(c)
        for key, group in groups.items():
            results = [_result(out, c) for c in group]
            if any(r is None for r in results):
                continue  # not finished yet
            size, budget, opt, seed, wd = key
            for side, k, reason in _decide(sw, group, results, window_of(sw, size, budget, opt)):
                c = spec.make_run(sw, size, budget, opt, seed, wd, spec.lr_at(k), k)
                todo.append(dict(sweep=sw.name, size=size, budget=budget, optimizer=opt, seed=seed,
                                 weight_decay=wd, side=side, k=k, lr=c.config["lr"], run_id=c.id,
                                 reason=reason, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    return todo


def _lock(out: Path) -> bool:
    path = out / LOCK
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        try:
            if time.time() - path.stat().st_mtime > LOCK_STALE_S:
                path.unlink()
        except FileNotFoundError:
            pass
        return False


def extend(spec: GridSpec, out: Path, log=None, wait_s: float = 30.0) -> list[Run]:
    """Record and plan the extensions due now; returns the runs added (empty if none).

    Writes each new run's ``config.json`` so ``grid plan`` / ``grid status`` see it. Runs under
    the lock file, so workers on several hosts never record the same extension twice.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : Path
        The runner output directory.
    log : callable, optional
        Called with one line per extension.
    wait_s : float, default 30.0
        How long to wait for another worker's lock before giving up (its extensions show up on
        the next pass).

    Returns
    -------
    list of Run
        The runs added now; empty if none is due, no sweep extends, or the lock was busy.
    """
    if not any(s.extend for s in spec.sweeps):
        return []
    out = Path(out)
    deadline = time.time() + wait_s
    while not _lock(out):
        if time.time() > deadline:
            return []  # another worker is extending; its runs show up on our next pass
        time.sleep(0.05)
    try:
        records = _records(out)
        known = load(spec, out)
        have = {_record_id(r) for r in records}
        new = [r for r in propose(spec, out, known) if r["run_id"] not in have]
        if not new:
            return []
        store.write_json_atomic(out / RECORD, {"extensions": records + new})
        runs = {c.id: c for c in load(spec, out)}
        added = [runs[r["run_id"]] for r in new]
        for c in added:
            d = store.run_dir(out, c.id)
            d.mkdir(parents=True, exist_ok=True)
            if not (d / store.CONFIG).exists():
                store.write_json_atomic(d / store.CONFIG, c.as_dict())
        for r in new:
            if log:
                log(f"bracket: {r['sweep']} {r['size']} D={r['budget']:g} {r['optimizer']} seed={r['seed']}: "
                    f"+{r['side']} k={r['k']} lr={r['lr']:.4g} ({r['reason']})")
        return added
    finally:
        (out / LOCK).unlink(missing_ok=True)
