"""One training run: ``training_function(run, ctx)`` (Accelerate-examples style).

The loop, nanoGPT-like: set the LR from the schedule, draw the step's batch, forward/backward,
clip, (probe) step, keep the loss; every ``log_every`` steps check for divergence; every
``checkpoint_every`` steps save a checkpoint; at the end evaluate the fixed held-out windows and
write ``trajectory.parquet`` and ``result.json`` atomically.

Divergence: a non-finite loss, or a ``log_every`` window whose mean loss exceeds
``divergence_factor`` x the first loss, stops the run with ``status = "diverged"``.

A worker (:mod:`scalefit.train.shard`) claims a run, then calls :func:`training_function` with
the run's ``config.json`` content and a :class:`RunContext`; ``scalefit collect``
(:mod:`scalefit.runs.harvest`) later turns the ``result.json`` files into a runs table.

Examples
--------
>>> from scalefit.grids.spec import load_spec
>>> run = load_spec("runners/grids/micro.toml").runs[0]  # doctest: +SKIP
>>> result = training_function(run.as_dict(), RunContext(run_dir=Path("out/runs") / run.id))  # doctest: +SKIP
>>> result["status"], result["final_loss"], result["eff_lr"]  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scalefit.grids import store
from scalefit.train.corpus import load_corpus
from scalefit.train.gpt import GPT, GPTConfig
from scalefit.train.optim import build_optimizer
from scalefit.train.probe import TRAJECTORY_COLUMNS, WeightProbe, summarize
from scalefit.grids.schedule import lr_multiplier
from scalefit.runs.schema import LEGACY_RUN_ID, RUN_ID

__all__ = ["RunContext", "training_function", "failure_result", "evaluate", "code_version", "save_checkpoint",
           "load_checkpoint", "SMOOTH_FRACTION"]

SMOOTH_FRACTION = 0.1  # train_loss_smoothed = mean loss over the last 10% of steps


@dataclass
class RunContext:
    """What a worker hands a run: where to write and how it trains.

    Parameters
    ----------
    run_dir : Path
        The run's directory (``OUT/runs/<id>/``): checkpoint, trajectory and result go there.
    accelerator : accelerate.Accelerator, optional
        The process's Accelerator; None trains in this process alone, on CUDA if available.
    ddp : bool, default False
        Train this run on all processes (DistributedDataParallel); else this process alone.
    progress : bool, default False
        Show a per-run tqdm bar.
    trackers : tuple, default ()
        This process's trackers (:mod:`scalefit.train.tracking`); the writing process logs
        the training loss to them.
    """
    run_dir: Path
    accelerator: object = None   # accelerate.Accelerator (None: plain single process, CPU/GPU)
    ddp: bool = False            # train this run on all processes (else: this process alone)
    progress: bool = False       # per-run tqdm bar
    trackers: tuple = ()         # this process's trackers (scalefit.train.tracking)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``train-<sha256[:12]>`` of the training code: every ``scalefit/train/*.py`` (names and
    bytes, sorted). Unlike git HEAD it moves only when the code that trains a run does, and it
    needs no git checkout. (Older result files may carry ``git describe`` values instead.)

    Returns
    -------
    str
        ``train-`` and 12 hex digits.
    """
    h = hashlib.sha256()
    for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return f"train-{h.hexdigest()[:12]}"


def _device_info(acc):
    if acc is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return dev, 0, 1, True
    return acc.device, acc.process_index, acc.num_processes, acc.is_main_process


@torch.no_grad()
def evaluate(model, corpus, seq_len: int, eval_tokens: int, device, autocast, batch: int = 32) -> float:
    """Mean next-token loss on the corpus's fixed held-out windows.

    Parameters
    ----------
    model : GPT
        The model (unwrapped: evaluated in this process only).
    corpus : Corpus
        The run's corpus (:meth:`scalefit.train.corpus.Corpus.eval_windows`).
    seq_len : int
        Window length.
    eval_tokens : int
        Held-out tokens to read (the spec's ``data.eval_tokens``).
    device : torch.device
        Where the model is.
    autocast : callable
        A context-manager factory (bf16 autocast, or ``contextlib.nullcontext``).
    batch : int, default 32
        Windows per forward pass.

    Returns
    -------
    float
        The token-weighted mean cross-entropy, in nats.
    """
    x_all, y_all = corpus.eval_windows(eval_tokens, seq_len)
    total, n = 0.0, 0
    model.eval()
    for i in range(0, len(x_all), batch):
        x = torch.from_numpy(x_all[i:i + batch]).to(device)
        y = torch.from_numpy(y_all[i:i + batch]).to(device)
        with autocast():
            _, loss = model(x, y)
        total += float(loss) * x.numel()
        n += x.numel()
    model.train()
    return total / n


def training_function(run: dict, ctx: RunContext) -> dict:
    """Train one run (``Run.as_dict()``), resuming from its checkpoint if there is one.

    The writing process (the main one under ``--ddp``, else this one) saves checkpoints and, at
    the end, ``trajectory.parquet`` and then ``result.json``: its existence marks the run
    finished. The checkpoint is removed then unless ``run.keep_checkpoint``.

    Parameters
    ----------
    run : dict
        ``{"run_id", "config", "run", "meta"}`` as :meth:`scalefit.grids.spec.Run.as_dict` gives
        (or a ``config.json``; an older one names the id ``cell_id``).
    ctx : RunContext
        Where to write and how to train.

    Returns
    -------
    dict
        The result: the runs-table contract columns (:mod:`scalefit.runs.schema`) with
        ``status`` ``ok`` or ``diverged``, the probe's effective-LR aggregates
        (:func:`scalefit.train.probe.summarize`), and provenance (corpus hash, code version,
        device, timings).

    Raises
    ------
    ValueError
        If ``batch_size`` is not divisible by the number of processes under ``--ddp``. Any error
        of the run itself propagates; the worker records it with :func:`failure_result`.

    Examples
    --------
    >>> result = training_function(run.as_dict(), RunContext(run_dir=d))  # doctest: +SKIP
    >>> result["status"]  # doctest: +SKIP
    'ok'
    """
    t_start = time.perf_counter()
    run_id = _run_id(run)
    cfg, cadences, meta = run["config"], run["run"], run["meta"]
    acc, d = ctx.accelerator, Path(ctx.run_dir)
    device, rank, world, is_main = _device_info(acc)
    if not ctx.ddp:
        rank, world = 0, 1  # sharded mode: this process trains the run alone
    writer = is_main or not ctx.ddp  # the process that owns the run's files

    corpus = load_corpus(cfg["data"])
    torch.manual_seed(cfg["seed"])  # same init on every rank
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, **cfg["model"])).to(device)
    optimizer = build_optimizer(model, cfg)
    raw = model
    if ctx.ddp and world > 1:
        model = acc.prepare_model(model)  # DDP: gradients averaged across processes
    if cfg["batch_size"] % world:
        raise ValueError(f"batch_size {cfg['batch_size']} not divisible by {world} processes")
    seq, steps = cfg["model"]["seq_len"], cfg["steps"]
    sched = cfg["schedule"]
    lr_at = functools.partial(lr_multiplier, total=steps, kind=sched["kind"], warmup=sched["warmup"],
                              min_ratio=sched["min_ratio"], decay=sched["decay"])
    bf16 = cfg["precision"] == "bf16"
    if device.type == "cuda" and not bf16:  # fp32 means fp32 on a GPU too (as on a CPU): no TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    autocast = functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16,
                                 enabled=bf16) if bf16 else contextlib.nullcontext
    probe = WeightProbe(raw, every=cadences["probe_every"], dense_until=cadences["probe_dense_until"])

    # ---- resume ---------------------------------------------------------------------------
    start, losses, elapsed, probe_s = 0, [], 0.0, 0.0
    ckpt_path = d / store.CHECKPOINT
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        raw.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        start, losses, probe.records = ck["step"], ck["losses"], ck["probe"]
        elapsed, probe_s = ck["train_s"], ck["probe_s"]
        torch.set_rng_state(ck["rng"])
    resumed_from = start

    # ---- train ----------------------------------------------------------------------------
    bar = None
    if ctx.progress and writer:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=start, desc=run_id[:8], position=acc.process_index if acc else 0, leave=False, dynamic_ncols=True)
    status, pending = "ok", []
    t0 = time.perf_counter()
    step = start
    while step < steps:
        s = lr_at(step)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * s
        xb, yb = corpus.batch(step, cfg["seed"], cfg["batch_size"], seq, rank, world)
        x, y = torch.from_numpy(xb).to(device, non_blocking=True), torch.from_numpy(yb).to(device, non_blocking=True)
        with autocast():
            _, loss = model(x, y)
        loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        probing = probe.due(step, steps)
        if probing:
            tp = time.perf_counter()
            probe.before()
        optimizer.step()
        if probing:
            probe.after(step, s)
            probe_s += time.perf_counter() - tp
        optimizer.zero_grad(set_to_none=True)
        pending.append(loss.detach())
        step += 1

        if step % cadences["log_every"] == 0 or step == steps:
            chunk = torch.stack(pending).float()
            if ctx.ddp and world > 1:  # every rank must take the same divergence decision
                chunk = acc.reduce(chunk, reduction="mean")
            chunk = chunk.cpu().tolist()  # one host sync per window
            pending = []
            losses += chunk
            if bar is not None:
                bar.update(len(chunk))
                bar.set_postfix(loss=f"{chunk[-1]:.3f}", lr=f"{cfg['lr'] * s:.2e}")
            if writer:
                for t in ctx.trackers:
                    t.log({f"{run_id}/train_loss": chunk[-1], f"{run_id}/lr_mult": s}, step=step)
            if not all(map(math.isfinite, chunk)) or np.mean(chunk) > cadences["divergence_factor"] * losses[0]:
                status = "diverged"
                break
            if cadences["checkpoint_every"] and step % cadences["checkpoint_every"] == 0 and step < steps and writer:
                save_checkpoint(ckpt_path, dict(
                    model=raw.state_dict(), optimizer=optimizer.state_dict(), step=step, losses=losses,
                    probe=probe.records, rng=torch.get_rng_state(), probe_s=probe_s,
                    train_s=elapsed + time.perf_counter() - t0, run_id=run_id))
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = elapsed + time.perf_counter() - t0
    if bar is not None:
        bar.close()

    # ---- evaluate and record --------------------------------------------------------------
    try:
        final_loss = evaluate(raw, corpus, seq, cfg["data"]["eval_tokens"], device, autocast)
    except RuntimeError:  # e.g. non-finite weights after a divergence
        final_loss = math.nan
    n_smooth = max(1, math.ceil(SMOOTH_FRACTION * len(losses)))
    tail = losses[-n_smooth:]
    wd = cfg["weight_decay"]
    agg = summarize(probe.records, steps=step, lr=cfg["lr"], weight_decay=wd, optimizer=cfg["optimizer"])
    agg["equilibration_number"] = 2 * wd * cfg["lr"] * sum(lr_at(t) for t in range(steps))
    m = cfg["model"]
    result = dict(
        run_id=run_id, status=status,
        n_params=meta["n_params"], n_params_total=meta["n_params_total"], n_tokens=meta["n_tokens"],
        batch_size=meta["tokens_per_step"], lr=cfg["lr"], eff_lr=agg.pop("eff_lr"),
        weight_decay=wd, optimizer=cfg["optimizer"], schedule=sched["kind"], warmup=sched["warmup"],
        seed=cfg["seed"], final_loss=final_loss, loss_kind="val",
        train_loss_smoothed=float(np.mean(tail)) if tail else math.nan,
        steps=step, steps_planned=steps, tokens_seen=step * meta["tokens_per_step"],
        **agg,
        first_loss=losses[0] if losses else math.nan,
        min_ratio=sched["min_ratio"], decay=sched["decay"], adam_lr=cfg["adam_lr"],
        batch_seqs=cfg["batch_size"], seq_len=seq, d_model=m["d_model"], n_layer=m["n_layer"],
        n_head=m["n_head"], qk_norm=m["qk_norm"], tie_embeddings=m["tie_embeddings"],
        ladder=meta["ladder"], size=meta["size"], grid=meta["grid"], flops=meta["flops"],
        precision=cfg["precision"], corpus=corpus.name, corpus_sha256=corpus.sha256,
        eval_tokens=cfg["data"]["eval_tokens"], resumed_from_step=resumed_from,
        wall_s=time.perf_counter() - t_start, train_s=train_s, probe_s=probe_s,
        train_tokens_per_s=(step - start) * meta["tokens_per_step"] / max(train_s - elapsed, 1e-9),
        device=str(device), ddp_processes=world, host=socket.gethostname(),
        code_version=code_version(), torch_version=torch.__version__, finished_at=time.time(),
    )
    if writer:
        import pandas as pd

        traj = pd.DataFrame(probe.records, columns=TRAJECTORY_COLUMNS)
        tmp = d / f".{store.TRAJECTORY}.{os.getpid()}.tmp"
        traj.to_parquet(tmp, index=False)
        os.replace(tmp, d / store.TRAJECTORY)
        store.write_json_atomic(d / store.RESULT, result)  # the commit point: the run is finished
        if not cadences["keep_checkpoint"] and ckpt_path.exists():
            ckpt_path.unlink()
    return result


def failure_result(run: dict, exc: BaseException) -> dict:
    """result.json content for a run (``Run.as_dict()``) that raised (re-run with ``--retry-failed``).

    Parameters
    ----------
    run : dict
        The run (``Run.as_dict()``).
    exc : BaseException
        What it raised; its repr and the current traceback are recorded.

    Returns
    -------
    dict
        The contract columns with ``status = "failed"`` and no loss, plus ``error`` and
        ``traceback``.
    """
    meta, cfg = run["meta"], run["config"]
    return dict(run_id=_run_id(run), status="failed", error=repr(exc),
                traceback=traceback.format_exc(), n_params=meta["n_params"],
                n_params_total=meta["n_params_total"], n_tokens=meta["n_tokens"],
                batch_size=meta["tokens_per_step"], lr=cfg["lr"], eff_lr=None,
                weight_decay=cfg["weight_decay"], optimizer=cfg["optimizer"],
                schedule=cfg["schedule"]["kind"], warmup=cfg["schedule"]["warmup"], seed=cfg["seed"],
                final_loss=None, loss_kind="val", train_loss_smoothed=None, steps=0,
                ladder=meta["ladder"], size=meta["size"], grid=meta["grid"],
                host=socket.gethostname(), code_version=code_version(), finished_at=time.time())


def _run_id(run: dict) -> str:
    """The id of a ``Run.as_dict()`` (an older ``config.json`` says ``cell_id``)."""
    return run[RUN_ID] if RUN_ID in run else run[LEGACY_RUN_ID]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (``torch.save`` to a temp file, then rename).

    Parameters
    ----------
    path : Path
        The checkpoint file.
    state : dict
        Model and optimizer state dicts, step, losses, probe records, RNG state, timings.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path):
    """Read a checkpoint written by :func:`save_checkpoint`, onto the CPU.

    Parameters
    ----------
    path : Path
        The checkpoint file.

    Returns
    -------
    dict
        The saved state.
    """
    # weights_only=False: the checkpoint also holds RNG states and plain-Python histories we wrote
    return torch.load(path, map_location="cpu", weights_only=False)
