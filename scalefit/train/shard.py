"""Workers: train a grid's runs under ``accelerate launch``, one Accelerator per process.

Sharded mode (default): every process walks the runs in the same order (the spec's priorities,
high first; within one, largest or smallest FLOPs first per the spec's ``order``) and trains the
next run it can claim (:func:`scalefit.grids.store.try_claim`), alone. Claims live on the
filesystem, so processes on several nodes sharing ``--out`` cooperate. ``--ddp``: the main
process claims, all processes train that run together (DistributedDataParallel), the main
process writes the result. When a pass finds nothing left to claim, sweeps with
``[sweep.extend]`` may add LRs (:mod:`scalefit.grids.brackets`) and the walk goes on.

While a worker owns a run a daemon thread keeps its claim's heartbeat fresh, however long a step
or an eval takes. A run that raises is recorded as ``failed`` with its error and traceback (in
``--ddp`` too, when every process raises alike) and the grid goes on; ``--retry-failed`` re-runs
it. Workers started by ``accelerate launch`` / torchrun exit when the launcher dies (torch elastic
puts them in sessions of their own, so killing the launcher's process group alone would
leave them training).

Usage: see ``runners/train_grid.py`` and ``docs/runners.md``.

Examples
--------
A shell, not Python::

    accelerate launch --num_processes 4 runners/train_grid.py runners/grids/micro.toml --out out/micro
    python runners/train_grid.py runners/grids/micro.toml --out out/micro --cpu
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from scalefit.grids import brackets, store
from scalefit.grids.spec import GridSpec, Run, SpecError, load_spec
from scalefit.runs.schema import LEGACY_RUNS_DIR, runs_root

__all__ = ["all_runs", "write_plan", "exit_with_launcher", "run_worker", "main", "say"]


def say(*parts, file=None, flush: bool = True, sep: str = " ") -> None:
    """`print` that writes each line in one call: several workers share one stdout pipe, and with
    unbuffered output (``PYTHONUNBUFFERED``) print's separate newline lets their lines interleave.

    Parameters
    ----------
    *parts
        What to print, joined by `sep`.
    file : text stream, optional
        Default ``sys.stdout``.
    flush : bool, default True
    sep : str, default " "
    """
    stream = file or sys.stdout
    stream.write(sep.join(map(str, parts)) + "\n")
    if flush:
        stream.flush()


def _fmt_s(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    h, r = divmod(int(s), 3600)
    return f"{h}h{r // 60:02d}m" if h else f"{r // 60}m{r % 60:02d}s"


def _finished(out: Path, c: Run) -> bool:
    return (store.run_dir(out, c.id) / store.RESULT).exists()


def _prepare_for_retry(d: Path) -> None:
    """Move a failed result aside so the run can be claimed again (``--retry-failed``)."""
    r = d / store.RESULT
    try:
        if store.read_json(r).get("status") == "failed":
            r.rename(d / f"result.failed.{int(time.time())}.json")
            (d / store.ATTEMPTS).unlink(missing_ok=True)
    except (FileNotFoundError, ValueError):
        pass


def _claim_and_count(c: Run, d: Path, log) -> bool:
    """try_claim, then give up on a run whose previous ``run.max_attempts`` starts all died
    without a result or a new checkpoint: record it ``failed`` so relaunches stop dying on it."""
    if not store.try_claim(d, c.cadences["lease_s"]):
        return False
    n = store.count_start(d)
    limit = c.cadences.get("max_attempts", 3)
    if n <= limit:
        return True
    from scalefit.train.run import failure_result

    msg = (f"{limit} starts in a row died without a result or a new checkpoint (crash, kill or "
           "hang); not started again: see the workers' logs, then --retry-failed")
    res = failure_result(c.as_dict(), RuntimeError(msg))
    res["traceback"] = None
    store.write_json_atomic(d / store.RESULT, res)
    store.release(d)
    log(f"run {c.id} FAILED: {msg}", file=sys.stderr, flush=True)
    return False


def all_runs(spec: GridSpec, out: Path) -> list[Run]:
    """The plan's runs plus the bracket extensions recorded in ``out``, in claim order, unique.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : Path
        The runner output directory.

    Returns
    -------
    list of Run
        :meth:`scalefit.grids.spec.GridSpec.ordered` of the plan and the extensions.
    """
    seen, runs = set(), []
    for c in spec.runs + brackets.load(spec, out):
        if c.id not in seen:
            seen.add(c.id)
            runs.append(c)
    return spec.ordered(runs)


def write_plan(out: Path, spec: GridSpec) -> None:
    """``grid.json`` (the plan's run ids) and every planned run's ``config.json``. An old-layout
    directory (``cells/``) keeps its ``grid.json`` key ``cells`` too, so the two stay alike.

    A ``config.json`` that exists is left as it is; a finished run's leftover temp files are
    swept.

    Parameters
    ----------
    out : Path
        The runner output directory (created if missing).
    spec : GridSpec
        The grid spec.
    """
    out.mkdir(parents=True, exist_ok=True)
    legacy = runs_root(out).name == LEGACY_RUNS_DIR
    store.write_json_atomic(out / "grid.json", {"name": spec.name, "spec": spec.path,
                                                "ladder": spec.ladder.path,
                                                "cells" if legacy else "runs": [c.id for c in spec.runs]})
    for c in spec.runs:
        d = store.run_dir(out, c.id)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / store.CONFIG).exists():
            store.write_json_atomic(d / store.CONFIG, c.as_dict())
        elif (d / store.RESULT).exists() and not (d / store.CLAIM).exists():
            store.clean_leftovers(d)  # a finished run is never claimed again: sweep it here


def exit_with_launcher(poll_s: float = 0.5) -> bool:
    """Under torch elastic, exit as soon as the launcher (our parent) is gone. The claim of the
    run in flight then names a dead pid, so the relaunch takes it over at once and resumes from
    its checkpoint.

    Parameters
    ----------
    poll_s : float, default 0.5
        Seconds between checks of the parent pid.

    Returns
    -------
    bool
        Whether the watch was started (only under torch elastic: ``TORCHELASTIC_RUN_ID`` set).
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:  # plain `python runners/train_grid.py`: nohup-safe
        return False
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(143)  # no cleanup on purpose: every file we write is committed atomically

    threading.Thread(target=watch, name="exit-with-launcher", daemon=True).start()
    return True


def _train(c: Run, d: Path, acc, *, ddp: bool, progress: bool, trackers, log) -> dict:
    """Train one claimed run; a raise becomes a ``failed`` result written by the run's writer."""
    from scalefit.train.run import RunContext, failure_result, training_function

    ctx = RunContext(run_dir=d, accelerator=acc, ddp=ddp, progress=progress, trackers=trackers)
    writer = acc.is_main_process or not ddp
    beat = store.Heartbeat(d, c.cadences["heartbeat_s"]) if writer else None
    try:
        if beat:
            beat.__enter__()
        try:
            return training_function(c.as_dict(), ctx)
        except Exception as e:  # record and move on; the traceback is in result.json
            res = failure_result(c.as_dict(), e)
            if writer:
                store.write_json_atomic(d / store.RESULT, res)
                log(f"[p{acc.process_index}] run {c.id} FAILED: {e!r}", file=sys.stderr, flush=True)
            return res
    finally:
        if beat:
            beat.__exit__(None, None, None)
            if beat.lost:
                log(f"[p{acc.process_index}] run {c.id}: another worker took the claim over",
                    file=sys.stderr, flush=True)
        if writer:
            store.release(d)


def _claim(c: Run, d: Path, acc, *, ddp: bool, retry_failed: bool, log) -> bool:
    if ddp:
        from accelerate.utils import broadcast_object_list

        mine = [None]
        if acc.is_main_process:
            if retry_failed:
                _prepare_for_retry(d)
            mine = [_claim_and_count(c, d, log)]
        broadcast_object_list(mine)
        return bool(mine[0])
    if retry_failed:
        _prepare_for_retry(d)
    return _claim_and_count(c, d, log)


def _extend(spec: GridSpec, out: Path, acc, *, ddp: bool, log) -> bool:
    """Add due bracket extensions; True if any were added (all processes agree under --ddp)."""
    if ddp:
        from accelerate.utils import broadcast_object_list

        added = [bool(brackets.extend(spec, out, log=log)) if acc.is_main_process else None]
        broadcast_object_list(added)
        return bool(added[0])
    return bool(brackets.extend(spec, out, log=lambda m: log(f"[p{acc.process_index}] {m}", flush=True)))


def run_worker(spec: GridSpec, out: Path, acc, *, ddp: bool = False, progress: bool = False,
               retry_failed: bool = False, trackers=(), log=say) -> dict:
    """Train every run this process can claim; returns {run_id: status} for the runs it trained.

    Walks the runs in claim order, trains each one it claims, and when a pass finds nothing left,
    adds due bracket extensions and walks again; returns once a pass adds nothing and every run
    has been tried.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : Path
        The runner output directory.
    acc : accelerate.Accelerator
        This process's Accelerator.
    ddp : bool, default False
        Train each run on all processes together (the main process claims and writes).
    progress : bool, default False
        Per-run progress bars.
    retry_failed : bool, default False
        Move ``failed`` results aside and train those runs again.
    trackers : sequence, default ()
        This process's trackers (:func:`scalefit.train.tracking.open_trackers`).
    log : callable, default print
        Where progress lines go.

    Returns
    -------
    dict of str to str
        Run id -> status (``ok``, ``diverged`` or ``failed``) of the runs trained here.
    """
    rank, world = acc.process_index, acc.num_processes
    ran: dict[str, str] = {}
    t0, flops_here = time.perf_counter(), 0.0
    tried: set[str] = set()
    while True:
        runs = all_runs(spec, out)
        fresh = [c for c in runs if c.id not in tried]
        for c in fresh:
            tried.add(c.id)
            d = store.run_dir(out, c.id)
            if not _claim(c, d, acc, ddp=ddp, retry_failed=retry_failed, log=log):
                continue
            res = _train(c, d, acc, ddp=ddp, progress=progress, trackers=trackers, log=log)
            if ddp:
                acc.wait_for_everyone()
            ran[c.id] = res["status"]
            flops_here += c.meta["flops"]
            if not (acc.is_main_process or not ddp):
                continue
            for t in trackers:
                t.log({"run_id": c.id, "status": res["status"], "final_loss": res.get("final_loss"),
                       "lr": c.config["lr"], "n_params": c.meta["n_params"], "n_tokens": c.meta["n_tokens"]})
            remaining = sum(c2.meta["flops"] for c2 in runs if not _finished(out, c2))
            total = sum(c2.meta["flops"] for c2 in runs)
            rate = flops_here / (time.perf_counter() - t0)  # this process's FLOP/s
            eta = remaining / (rate * (1 if ddp else world)) if rate > 0 else float("inf")
            loss = res.get("final_loss")
            log(f"[p{rank}] {c.id} {c.meta['size']} {c.config['optimizer']} lr={c.config['lr']:.4g} "
                f"D={c.meta['n_tokens']:.3g} seed={c.config['seed']} -> {res['status']} "
                f"val={loss if loss is None else round(loss, 4)} ({res.get('wall_s', 0):.1f}s) | grid "
                f"{sum(_finished(out, c2) for c2 in runs)}/{len(runs)} done "
                f"({100 * (1 - remaining / total):.0f}% of FLOPs), ETA {_fmt_s(eta)}", flush=True)
        # nothing left to claim: widen finished edge sweeps (or pick up another worker's widening)
        added = _extend(spec, out, acc, ddp=ddp, log=log)
        if not added and all(c.id in tried for c in all_runs(spec, out)):
            return ran


def main(argv=None) -> int:
    """The command line of ``runners/train_grid.py``: parse, plan, train, exit.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``): ``GRID --out DIR`` and the options ``--ddp``,
        ``--cpu``, ``--threads``, ``--progress``, ``--log_with``, ``--retry-failed``.

    Returns
    -------
    int
        0, or 2 after a one-line error for an invalid spec.
    """
    p = argparse.ArgumentParser(
        prog="runners/train_grid.py",
        description="Train a grid of runs (launch with `accelerate launch`, or plain python).")
    p.add_argument("grid", help="grid spec TOML (runners/grids/*.toml)")
    p.add_argument("--out", required=True, help="output directory (shared filesystem across nodes)")
    p.add_argument("--ddp", action="store_true", help="train each run on all processes (large models)")
    p.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is visible")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads per process")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="per-run progress bars (default: when stderr is a terminal)")
    p.add_argument("--log_with", default=None,
                   help="trackers, comma-separated: jsonl (built in), tensorboard, wandb, ...; every "
                        "process logs the runs it trains as tracker run p<rank>")
    p.add_argument("--retry-failed", action="store_true", help="re-run runs whose status is failed")
    args = p.parse_args(argv)

    try:  # fail fast on a bad spec, before any process group exists: one line, no traceback
        spec = load_spec(args.grid)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    exit_with_launcher()
    import torch
    from accelerate import Accelerator

    from scalefit.train.tracking import open_trackers

    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = args.cpu or not torch.cuda.is_available()
    acc = Accelerator(cpu=cpu)
    out = Path(args.out)
    if acc.is_main_process:
        write_plan(out, spec)
    acc.wait_for_everyone()
    names = [n for n in (args.log_with or "").split(",") if n]
    trackers = []
    if names and (not args.ddp or acc.is_main_process):
        trackers = open_trackers(names, out, acc.process_index, spec.name,
                                 {"grid": spec.name, "runs": len(spec.runs), "mode": "ddp" if args.ddp else "sharded"})
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if acc.is_main_process:
        runs = all_runs(spec, out)
        print(f"grid {spec.name}: {len(runs)} runs, {sum(_finished(out, c) for c in runs)} already done; "
              f"{acc.num_processes} process(es), mode={'ddp' if args.ddp else 'sharded'}, "
              f"device={acc.device}", flush=True)
    try:
        run_worker(spec, out, acc, ddp=args.ddp, progress=progress, retry_failed=args.retry_failed,
                   trackers=trackers)
    finally:
        for t in trackers:
            t.finish()
    # Every rank leaves its last collective before any tears the process group down: without
    # this, a rank that destroyed its group early can abort its peer at exit (DDP mode after a
    # failed run: "terminate called without an active exception", exit -6).
    acc.wait_for_everyone()
    acc.end_training()
    return 0
