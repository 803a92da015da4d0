"""The ``scalefit`` command line: argument parsing and calls into the library, nothing else."""

from scalefit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
