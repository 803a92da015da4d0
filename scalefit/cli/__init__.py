"""Floor 7 of the pipeline: the ``scalefit`` command line.

spec -> runner -> result files -> runs table -> model -> inference -> fit -> evaluation/design
-> report -> **CLI**. Argument parsing and calls into the library, nothing else: every number
comes from the floors below and every report from `scalefit.report`. ``scalefit --help`` and
``scalefit COMMAND --help`` document the commands.
"""

from scalefit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
