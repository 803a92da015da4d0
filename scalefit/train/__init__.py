"""The runner half of scalefit: GPT-2-style training runs driven by Accelerate.

Torch and Accelerate live here only; the torch-free half (grid specs, schedules, the on-disk
store, brackets, status) is :mod:`scalefit.grids`, so ``scalefit grid plan`` works without the
``train`` extra. ``gpt``, ``optim``, ``probe``, ``run`` and ``shard`` need torch (and ``shard``
needs accelerate).

Data flow: grid spec (TOML) -> :mod:`scalefit.grids.spec` runs -> :mod:`shard` workers claim
runs -> :func:`run.training_function` trains one -> ``DIR/runs/<id>/result.json`` + trajectory
-> :mod:`scalefit.runs.harvest` -> runs table.
"""
