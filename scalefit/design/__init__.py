"""Floor 5 of the pipeline: what to run next.

spec -> runner -> result files -> runs table -> model -> inference -> fit -> evaluation/**design**
-> report -> CLI. `scalefit.design.suggest.suggest` picks the cells whose sweeps are expected to
shrink the target's interval most per FLOP (a linearized preposterior analysis) and returns a
`Suggestion`; `write_spec` writes it as a runnable grid spec for the runner, continuing the
recipe of the grid that was fitted.

`suggest` is not re-exported here: the name would shadow the `scalefit.design.suggest` module.
"""

from scalefit.design.spec_writer import write_spec
from scalefit.design.suggest import Candidate, Proposal, Suggestion, candidates_from_ladder, format_suggestion

__all__ = ["Suggestion", "Proposal", "Candidate", "candidates_from_ladder", "format_suggestion", "write_spec"]
