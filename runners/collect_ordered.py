"""Collect the cells of one or more grid specs into one output directory, in a chosen priority.

    python runners/collect_ordered.py SPEC [SPEC ...] --out DIR [--threads 1] [--retry-failed]

Why: ``runners/collect.py`` takes one spec and walks its cells largest-FLOPs first (so long runs do
not straggle across many workers). For a single slow worker that is interrupted between sessions,
the opposite is wanted: finish small, complete LR sweeps first so partial data is useful. And a
spec is a full product (sizes x budgets x LRs x seeds x optimizers), so a grid with AdamH only at
one budget, or extra seeds only at two cells, needs several specs in one output directory.

Order: spec by spec, in the order given on the command line; within a spec, FLOPs ascending
(ties by cell id, so the LR sweep of one (size, budget) cell finishes as a block). A cell that is
listed by two specs (same config, same id) runs once, at its first position.

The cells, ids, files and resume semantics are exactly those of ``runners/collect.py``: the same
``scalefit.train`` claim store and ``training_function``; re-running the same command skips
finished cells and resumes a killed run from its checkpoint. Several processes may run it at once
(claims keep them apart). No ``accelerate launch`` needed; one process, CPU unless a GPU is visible.
"""
import argparse
import sys
import time
from pathlib import Path

try:
    import scalefit  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scalefit.train import store
from scalefit.train.shard import _fmt_s, _prepare_for_retry
from scalefit.train.spec import GridSpec, load_spec


def ordered_cells(specs):
    seen, out = set(), []
    for spec in specs:
        for c in sorted(spec.cells, key=lambda c: (c.meta["flops"], c.id)):
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="runners/collect_ordered.py", description=__doc__.split("\n\n")[0])
    p.add_argument("grids", nargs="+", help="grid spec TOMLs, highest priority first")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is visible")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--retry-failed", action="store_true", help="re-run cells whose status is failed")
    p.add_argument("--dry-run", action="store_true", help="print the order and exit")
    args = p.parse_args(argv)

    specs = [load_spec(g) for g in args.grids]  # fail fast on a bad spec
    cells = ordered_cells(specs)
    out = Path(args.out)
    done = lambda c: (store.cell_dir(out, c.id) / store.RESULT).exists()  # noqa: E731
    if args.dry_run:
        for i, c in enumerate(cells):
            print(f"{i:4d} {c.id} {c.meta['grid']:>16s} {c.meta['size']:>5s} {c.config['optimizer']} "
                  f"lr={c.config['lr']:.4g} D={c.meta['n_tokens']:.3g} seed={c.config['seed']} "
                  f"flops={c.meta['flops']:.3g} {'done' if done(c) else ''}")
        return 0

    import torch
    from accelerate import Accelerator

    from scalefit.train.cell import RunContext, failure_result, training_function

    if args.threads:
        torch.set_num_threads(args.threads)
    acc = Accelerator(cpu=args.cpu or not torch.cuda.is_available())
    merged = GridSpec(name=specs[0].name, path=" ".join(s.path for s in specs), ladder=specs[0].ladder,
                      cells=cells)
    out.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(out / "grid.json", {
        "name": merged.name, "spec": [s.path for s in specs], "ladder": sorted({s.ladder.path for s in specs}),
        "order": "spec by spec as listed; FLOPs ascending within a spec",
        "cells": [c.id for c in cells]})
    for c in cells:
        d = store.cell_dir(out, c.id)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / store.CONFIG).exists():
            store.write_json_atomic(d / store.CONFIG, c.as_dict())

    total_flops = sum(c.meta["flops"] for c in cells)
    print(f"grid {merged.name}: {len(cells)} cells from {len(specs)} spec(s), "
          f"{sum(map(done, cells))} already done; device={acc.device}, torch threads={torch.get_num_threads()}",
          flush=True)
    t0, flops_here = time.perf_counter(), 0.0
    for c in cells:
        d = store.cell_dir(out, c.id)
        if args.retry_failed:
            _prepare_for_retry(d)
        if not store.try_claim(d, c.run["lease_s"]):
            continue
        try:
            res = training_function(c.as_dict(), RunContext(cell_dir=d, accelerator=acc))
        except Exception as e:  # record and move on; the traceback is in result.json
            res = failure_result(c.as_dict(), e)
            store.write_json_atomic(d / store.RESULT, res)
            print(f"cell {c.id} FAILED: {e!r}", file=sys.stderr, flush=True)
        finally:
            store.release(d)
        flops_here += c.meta["flops"]
        n_done = sum(map(done, cells))
        remaining = sum(c2.meta["flops"] for c2 in cells if not done(c2))
        rate = flops_here / (time.perf_counter() - t0)
        eta = remaining / rate if rate > 0 else float("inf")
        loss = res.get("final_loss")
        print(f"{time.strftime('%H:%M:%S')} {c.id} {c.meta['size']} {c.config['optimizer']} "
              f"lr={c.config['lr']:.4g} D={c.meta['n_tokens']:.3g} seed={c.config['seed']} -> {res['status']} "
              f"val={loss if loss is None else round(loss, 4)} ({res.get('wall_s', 0):.1f}s, "
              f"{res.get('train_tokens_per_s', 0):.0f} tok/s) | {n_done}/{len(cells)} done "
              f"({100 * (1 - remaining / total_flops):.0f}% of FLOPs), ETA {_fmt_s(eta)} at this rate",
              flush=True)
    acc.end_training()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
