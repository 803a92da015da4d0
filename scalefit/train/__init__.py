"""The runner half that trains: GPT-2-style training runs driven by Accelerate.

The pipeline runs spec -> **runner** -> **result files** -> runs table -> model -> inference ->
fit -> evaluation/design -> report -> CLI. Torch and Accelerate live here only; the torch-free
half (grid specs, schedules, the on-disk store, brackets, status) is `scalefit.grids`, so
``scalefit grid plan`` works without the ``train`` extra.

Data flow::

    grid spec (TOML)                       scalefit.grids.spec.load_spec
      -> runs (content-hash ids)           scalefit.grids.spec.Run
      -> workers claim runs                scalefit.train.shard (claims: scalefit.grids.store)
      -> training_function(run, ctx)       scalefit.train.run
      -> OUT/runs/<id>/result.json + trajectory.parquet
      -> scalefit.runs.harvest             (scalefit collect)
      -> runs table

Modules: `scalefit.train.run` (one run: the training loop, checkpoints, the result),
`scalefit.train.gpt` (the model), `scalefit.train.optim` (AdamW and AdamH),
`scalefit.train.probe` (the weight-norm probe and its effective-LR aggregates),
`scalefit.train.shard` (workers under ``accelerate launch``), `scalefit.train.tracking`
(trackers on every process) and `scalefit.train.corpus` (the corpora). ``gpt``, ``optim``,
``run`` and ``shard`` need torch, ``shard`` and ``tracking`` accelerate.

Importing this package imports no torch: the names below load their module on first use.

Examples
--------
>>> from scalefit.grids.spec import load_spec
>>> from scalefit.train import RunContext, training_function
>>> run = load_spec("runners/grids/micro.toml").runs[0]  # doctest: +SKIP
>>> result = training_function(run.as_dict(), RunContext(run_dir="out/runs/" + run.id))  # doctest: +SKIP
>>> result["status"], result["final_loss"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "training_function": "scalefit.train.run",
    "RunContext": "scalefit.train.run",
    "failure_result": "scalefit.train.run",
    "GPT": "scalefit.train.gpt",
    "GPTConfig": "scalefit.train.gpt",
    "AdamH": "scalefit.train.optim",
    "build_optimizer": "scalefit.train.optim",
    "WeightProbe": "scalefit.train.probe",
    "summarize": "scalefit.train.probe",
    "run_worker": "scalefit.train.shard",
    "load_corpus": "scalefit.train.corpus",
}

__all__ = ["training_function", "RunContext", "failure_result", "GPT", "GPTConfig", "AdamH", "build_optimizer",
           "WeightProbe", "summarize", "run_worker", "load_corpus"]

if TYPE_CHECKING:  # for type checkers and documentation tools; at run time the names load lazily
    from scalefit.train.corpus import load_corpus
    from scalefit.train.gpt import GPT, GPTConfig
    from scalefit.train.optim import AdamH, build_optimizer
    from scalefit.train.probe import WeightProbe, summarize
    from scalefit.train.run import RunContext, failure_result, training_function
    from scalefit.train.shard import run_worker


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # AttributeError lets `from scalefit.train import corpus` import the submodule
        raise AttributeError(f"module 'scalefit.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
