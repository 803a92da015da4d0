"""Floor 1 of the pipeline: the runs table, one row per training run.

The pipeline runs spec -> runner -> result files -> **runs table** -> model -> inference -> fit ->
evaluation/design -> report -> CLI. This floor is the contract between the runners and the
fitter: `scalefit.runs.schema` defines the columns once, `scalefit.runs.harvest` turns result
files into a table, `scalefit.runs.table` reads, validates and groups it into scale cells,
`scalefit.runs.synthetic` makes tables with a known law, and `scalefit.runs.equilibrium` measures
weight-norm equilibrium states from run trajectories. It imports no other floor.

Examples
--------
>>> from scalefit.runs import load_runs, RunsTableError
>>> try:  # doctest: +SKIP
...     table = load_runs("runs.csv")
... except RunsTableError as e:
...     print(e)  # every problem, with file, row and column
"""

from scalefit.runs.table import Problem, RunsTable, RunsTableError, load_runs, validate

__all__ = ["load_runs", "RunsTable", "RunsTableError", "Problem", "validate"]
