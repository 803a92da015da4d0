"""The columns of the runs table and of a run's ``result.json``, defined once.

A runs table has one row per training run. The fitter needs the required columns; the runner
writes every contract column into each run's ``result.json`` and `scalefit.runs.harvest` puts
them first, in this order, followed by the runner's own columns. Any other column is kept and
may be used with ``--where``, ``--cell-by`` or ``--n-column``. What each column means to the
model: docs/model.md#runs-table.

It also fixes where a runner output directory keeps its result files: ``OUT/runs/<run_id>/``.
Grids started before that name keep theirs in ``OUT/cells/<run_id>/``; :func:`runs_root` picks
the folder that exists, so every reader (and a resumed worker) sees one layout per directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "CONTRACT_COLUMNS", "NUMERIC_COLUMNS", "POSITIVE_COLUMNS",
           "POSITIVE_IF_SET_COLUMNS", "RUNNER_COLUMNS", "DROPPED_COLUMNS", "STATUSES", "RUN_ID",
           "LEGACY_RUN_ID", "RUNS_DIR", "LEGACY_RUNS_DIR", "runs_root"]

# name -> (required, numeric, meaning), in the order `scalefit collect` writes them
COLUMNS: dict[str, tuple[bool, bool, str]] = {
    "n_params": (True, True, "model size N: non-embedding parameters (MoE: pass --n-column for active ones)"),
    "n_params_total": (False, True, "all parameters, embeddings included"),
    "n_tokens": (True, True, "training tokens D"),
    "batch_size": (False, True, "tokens per optimizer step; a covariate of the law when it varies"),
    "lr": (True, True, "peak nominal learning rate"),
    "eff_lr": (False, True, "measured effective learning rate (per-step relative update), for --lr-kind effective"),
    "weight_decay": (False, True, "decoupled weight decay"),
    "optimizer": (False, False, "optimizer name; one per fit"),
    "schedule": (False, False, "LR schedule (cosine, wsd, constant)"),
    "warmup": (False, True, "warmup steps"),
    "seed": (False, True, "seed of a repeated run"),
    "final_loss": (True, True, "the loss the fit reads (empty for diverged or failed runs)"),
    "loss_kind": (False, False, "which loss final_loss is (val: held-out evaluation)"),
    "train_loss_smoothed": (False, True, "mean training loss over the last 10% of steps"),
    "status": (False, False, "ok, diverged or failed; empty means ok"),
    "steps": (False, True, "optimizer steps taken"),
}
REQUIRED_COLUMNS = tuple(c for c, (required, _, _) in COLUMNS.items() if required)
CONTRACT_COLUMNS = list(COLUMNS)
NUMERIC_COLUMNS = REQUIRED_COLUMNS + ("n_params_total", "batch_size", "eff_lr", "weight_decay", "warmup", "seed")
POSITIVE_COLUMNS = ("n_params", "n_tokens", "lr")  # finite and > 0 on every row
POSITIVE_IF_SET_COLUMNS = ("n_params_total", "batch_size")  # may be empty, else > 0
STATUSES = ("ok", "diverged", "failed")

# What the built-in runner adds after the contract columns (any trainer may add others).
RUN_ID = "run_id"            # the runner's id of one training run (a content hash of its config)
LEGACY_RUN_ID = "cell_id"    # the same id in older result files; read as run_id
RUNNER_COLUMNS = [RUN_ID, "eff_lr_whole_run", "eff_lr_stable", "rel_update_eff", "theta_sum",
                  "rms_final", "t_eq", "transient_frac", "equilibration_number", "ladder", "size",
                  "d_model", "n_layer", "n_head", "seq_len", "steps_planned", "tokens_seen", "wall_s",
                  "corpus", "corpus_sha256", "code_version"]
DROPPED_COLUMNS = ["traceback"]  # too long for a table; stays in result.json

# Where a runner output directory keeps one folder per run.
RUNS_DIR = "runs"
LEGACY_RUNS_DIR = "cells"  # the layout of older grids (and of the shipped data/), still read and resumed


def runs_root(out: str | Path) -> Path:
    """The folder of a runner output directory that holds one folder per run.

    ``OUT/cells`` when that folder exists (a grid begun with the old layout keeps writing there,
    so a resumed grid never trains a run twice or splits across two folders), else ``OUT/runs``.

    Parameters
    ----------
    out : str or Path
        The runner output directory.

    Returns
    -------
    Path
        ``out/cells`` or ``out/runs`` (which need not exist yet).

    Examples
    --------
    >>> runs_root("/nonexistent/out").name
    'runs'
    """
    out = Path(out)
    legacy = out / LEGACY_RUNS_DIR
    return legacy if legacy.is_dir() else out / RUNS_DIR
