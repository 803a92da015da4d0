"""The runner half of scalefit: GPT-2-style training cells driven by Accelerate.

Importing this package does not import torch: ``spec``, ``schedule`` and ``store`` are
torch-free so ``scalefit grid plan`` works without the ``train`` extra. ``model``, ``optim``,
``probe``, ``cell`` and ``shard`` need torch (and ``shard`` needs accelerate).

Data flow: grid spec (TOML) -> :mod:`spec` cells -> :mod:`shard` workers claim cells ->
:func:`cell.training_function` trains one -> ``DIR/cells/<id>/result.json`` + trajectory ->
:mod:`scalefit.runs.harvest` -> runs table.
"""
