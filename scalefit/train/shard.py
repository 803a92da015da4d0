"""Workers: run a grid's cells under ``accelerate launch``, one Accelerator per process.

Sharded mode (default): every process walks the cells in the same order (largest FLOPs first, so
the long runs do not straggle at the end) and trains the next cell it can claim
(:func:`scalefit.train.store.try_claim`), alone. Claims live on the filesystem, so processes on
several nodes sharing ``--out`` cooperate. ``--ddp``: the main process claims, all processes
train that cell together (DistributedDataParallel), the main process writes the result.

Usage: see ``runners/collect.py`` and ``docs/runners.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scalefit.train import store
from scalefit.train.spec import Cell, GridSpec, load_spec


def _fmt_s(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    h, r = divmod(int(s), 3600)
    return f"{h}h{r // 60:02d}m" if h else f"{r // 60}m{r % 60:02d}s"


def _n_finished(out: Path, cells: list[Cell]) -> int:
    return sum((store.cell_dir(out, c.id) / store.RESULT).exists() for c in cells)


def _prepare_for_retry(d: Path) -> None:
    """Move a failed result aside so the cell can be claimed again (``--retry-failed``)."""
    r = d / store.RESULT
    try:
        if store.read_json(r).get("status") == "failed":
            r.rename(d / f"result.failed.{int(time.time())}.json")
    except (FileNotFoundError, ValueError):
        pass


def write_plan(out: Path, spec: GridSpec) -> None:
    out.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(out / "grid.json", {"name": spec.name, "spec": spec.path,
                                                "ladder": spec.ladder.path,
                                                "cells": [c.id for c in spec.cells]})
    for c in spec.cells:
        d = store.cell_dir(out, c.id)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / store.CONFIG).exists():
            store.write_json_atomic(d / store.CONFIG, c.as_dict())


def run_worker(spec: GridSpec, out: Path, acc, *, ddp: bool = False, progress: bool = False,
               retry_failed: bool = False, log=print) -> dict:
    """Train every cell this process can claim; returns {cell_id: status} for the cells it ran."""
    from accelerate.utils import broadcast_object_list

    from scalefit.train.cell import RunContext, failure_result, training_function

    cells = sorted(spec.cells, key=lambda c: (-c.meta["flops"], c.id))
    total_flops = sum(c.meta["flops"] for c in cells)
    rank, world = acc.process_index, acc.num_processes
    ran: dict[str, str] = {}
    t0, flops_here = time.perf_counter(), 0.0
    for c in cells:
        d = store.cell_dir(out, c.id)
        lease = c.run["lease_s"]
        if ddp:
            mine = [None]
            if acc.is_main_process:
                if retry_failed:
                    _prepare_for_retry(d)
                mine = [store.try_claim(d, lease)]
            broadcast_object_list(mine)
            if not mine[0]:
                continue
        else:
            if retry_failed:
                _prepare_for_retry(d)
            if not store.try_claim(d, lease):
                continue
        ctx = RunContext(cell_dir=d, accelerator=acc, ddp=ddp, progress=progress)
        try:
            res = training_function(c.as_dict(), ctx)
        except Exception as e:  # record and move on; the traceback is in result.json
            if ddp:
                raise
            res = failure_result(c.as_dict(), e)
            store.write_json_atomic(d / store.RESULT, res)
            log(f"[p{rank}] cell {c.id} FAILED: {e!r}", file=sys.stderr)
        finally:
            if acc.is_main_process or not ddp:
                store.release(d)
        if ddp:
            acc.wait_for_everyone()
        ran[c.id] = res["status"]
        flops_here += c.meta["flops"]
        done = _n_finished(out, cells)
        remaining = sum(c2.meta["flops"] for c2 in cells
                        if not (store.cell_dir(out, c2.id) / store.RESULT).exists())
        rate = flops_here / (time.perf_counter() - t0)  # this process's FLOP/s
        eta = remaining / (rate * (1 if ddp else world)) if rate > 0 else float("inf")
        if acc.is_main_process or not ddp:
            loss = res.get("final_loss")
            log(f"[p{rank}] {c.id} {c.meta['size']} {c.config['optimizer']} lr={c.config['lr']:.3g} "
                f"D={c.meta['n_tokens']:.3g} -> {res['status']} val={loss if loss is None else round(loss, 4)} "
                f"({res.get('wall_s', 0):.1f}s) | grid {done}/{len(cells)} done "
                f"({100 * (1 - remaining / total_flops):.0f}% of FLOPs), ETA {_fmt_s(eta)}", flush=True)
    return ran


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="runners/collect.py",
        description="Collect a grid of training runs (launch with `accelerate launch`).")
    p.add_argument("grid", help="grid spec TOML (runners/grids/*.toml)")
    p.add_argument("--out", required=True, help="output directory (shared filesystem across nodes)")
    p.add_argument("--ddp", action="store_true", help="train each cell on all processes (large models)")
    p.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is visible")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="per-run progress bars (default: when stderr is a terminal)")
    p.add_argument("--log_with", default=None,
                   help="optional Accelerate tracker (tensorboard, wandb, ...); main process only")
    p.add_argument("--retry-failed", action="store_true", help="re-run cells whose status is failed")
    args = p.parse_args(argv)

    spec = load_spec(args.grid)  # fail fast on a bad spec, before any process group exists
    import torch
    from accelerate import Accelerator

    cpu = args.cpu or not torch.cuda.is_available()
    acc = Accelerator(cpu=cpu, log_with=args.log_with, project_dir=args.out if args.log_with else None)
    out = Path(args.out)
    if acc.is_main_process:
        write_plan(out, spec)
    if args.log_with:
        acc.init_trackers("scalefit", config={"grid": spec.name, "cells": len(spec.cells)})
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if acc.is_main_process:
        print(f"grid {spec.name}: {len(spec.cells)} cells, {_n_finished(out, spec.cells)} already done; "
              f"{acc.num_processes} process(es), mode={'ddp' if args.ddp else 'sharded'}, "
              f"device={acc.device}", flush=True)
    run_worker(spec, out, acc, ddp=args.ddp, progress=progress, retry_failed=args.retry_failed)
    acc.end_training()
    return 0
