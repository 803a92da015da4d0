"""The runner side, torch-free: grid specs, ladders, LR lattices, schedules, the run store,
adaptive brackets and grid status.

The pipeline runs **spec** -> **runner** -> result files -> runs table -> model -> inference ->
fit -> evaluation/design -> report -> CLI. This subpackage is the spec and the bookkeeping half
of the runner: `scalefit.grids.spec` reads a grid spec (TOML) and its ladder into runs with
content-hash ids, parameter counts and FLOPs, on an LR lattice whose ids do not move when a
window does; `scalefit.grids.schedule` holds the LR schedules; `scalefit.grids.store` is the
on-disk run store (``OUT/runs/<id>/``; older grids ``OUT/cells/<id>/``) with atomic writes,
claims, leases and heartbeats; `scalefit.grids.brackets` widens sweeps whose best LR lands on an
edge; `scalefit.grids.status` summarises a grid in progress without a fit. The training itself
(torch + Accelerate) is `scalefit.train`; this subpackage needs neither, so ``scalefit grid
plan`` and ``scalefit grid status`` work without the ``train`` extra. It imports only
`scalefit.runs`.

The spec and schedule names below load with the package (standard library only); the status
functions load pandas on first use.

Examples
--------
>>> from scalefit.grids import load_spec, status_markdown
>>> spec = load_spec("runners/grids/micro.toml")  # doctest: +SKIP
>>> len(spec.runs), spec.ladder.name  # doctest: +SKIP
>>> print(status_markdown(spec, "out/micro"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scalefit.grids.schedule import SCHEDULES, lr_multiplier, mean_multiplier
from scalefit.grids.spec import (GridSpec, Ladder, Run, SpecError, Sweep, count_params, flops_per_token,
                                 lattice_lr, load_ladder, load_spec)

_LAZY = {"grid_table": "scalefit.grids.status", "status_markdown": "scalefit.grids.status"}

__all__ = ["load_spec", "GridSpec", "Run", "Sweep", "SpecError", "Ladder", "load_ladder", "lattice_lr",
           "count_params", "flops_per_token", "SCHEDULES", "lr_multiplier", "mean_multiplier", "grid_table",
           "status_markdown"]

if TYPE_CHECKING:  # for type checkers and documentation tools; at run time these load lazily
    from scalefit.grids.status import grid_table, status_markdown


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:  # AttributeError lets `from scalefit.grids import store` import the submodule
        raise AttributeError(f"module 'scalefit.grids' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
