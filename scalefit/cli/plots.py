"""`scalefit plot`: figures from fit files and runner trajectories (needs matplotlib, the dev extra).

    scalefit plot valleys fit.nc -o valleys.png [--cells 0 3 5]
    scalefit plot law fit.nc -o law.svg [--target 130M 400M ...] [--backtest bt.json]
    scalefit plot weights runs/micro -o weights.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scalefit.cli.args import count

__all__ = ["register"]


def _matplotlib_or_error() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("error: `scalefit plot` needs matplotlib: pip install 'scalefit-lr[dev]'", file=sys.stderr)
        return False
    return True


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"-o must end in .png, .svg or .pdf, got {path.name!r}")


def cmd_valleys(args) -> int:
    """``scalefit plot valleys``: per-cell loss valleys of a fit file."""
    if not _matplotlib_or_error():
        return 1
    _check_output(args.output)
    from scalefit.fit.core import Fit
    from scalefit.report.plots import plot_valleys, save

    fig = plot_valleys(Fit.load(args.fit), cells=args.cells, prob=args.prob)
    print(f"wrote {save(fig, args.output)}")
    return 0


def _backtest_rows(path: Path):
    """Rows of `scalefit backtest --json` output (or a bare list of row objects)."""
    import pandas as pd

    data = json.loads(path.read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    frame = pd.DataFrame(rows)
    missing = {"n_params", "n_tokens", "observed_best_lr"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: backtest rows lack {sorted(missing)} (use `scalefit backtest --json`)")
    return frame


def cmd_law(args) -> int:
    """``scalefit plot law``: the optimal-LR law of a fit file, with targets and backtest points."""
    if not _matplotlib_or_error():
        return 1
    _check_output(args.output)
    from scalefit.fit.core import Fit
    from scalefit.report.plots import plot_law, save

    backtest = _backtest_rows(args.backtest) if args.backtest else None
    fig = plot_law(Fit.load(args.fit), targets=[tuple(t) for t in args.target], backtest=backtest,
                   prob=args.prob)
    print(f"wrote {save(fig, args.output)}")
    return 0


def cmd_weights(args) -> int:
    """``scalefit plot weights``: hidden-matrix weight RMS vs step from runner trajectories."""
    if not _matplotlib_or_error():
        return 1
    _check_output(args.output)
    from scalefit.report.plots import plot_weight_norms, save

    fig = plot_weight_norms(args.paths, stat=args.stat, matrices="each" if args.each else "median",
                            scheduled=not args.no_scheduled)
    print(f"wrote {save(fig, args.output)}")
    return 0


def _prob(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--prob must be in (0, 1), got {text!r}")
    return value


def register(subparsers) -> None:
    """Add ``plot`` (valleys | law | weights) to the ``scalefit`` subcommand parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()`` in `scalefit.cli.main.build_parser`.
    """
    plot = subparsers.add_parser("plot", help="figures: loss valleys, the LR law, weight-norm trajectories")
    sub = plot.add_subparsers(dest="plot_command", required=True)

    p = sub.add_parser("valleys", help="per-cell loss vs LR with the posterior valley and its band")
    p.add_argument("fit", type=Path, help="fit file from `scalefit fit` (.nc)")
    p.add_argument("-o", "--output", type=Path, required=True, help="figure file (.png or .svg)")
    p.add_argument("--cells", type=int, nargs="+", metavar="CELL", help="cell ids (default: all)")
    p.add_argument("--prob", type=_prob, default=0.9, help="band probability (equal-tailed)")
    p.set_defaults(func=cmd_valleys)

    p = sub.add_parser("law", help="optimal LR vs N or D: cell optima, law, new-cell fan, baseline, targets")
    p.add_argument("fit", type=Path, help="fit file from `scalefit fit` (.nc)")
    p.add_argument("-o", "--output", type=Path, required=True, help="figure file (.png or .svg)")
    p.add_argument("--target", type=count, nargs=2, action="append", default=[], metavar=("N", "D"),
                   help="target scale, e.g. --target 130M 400M (repeatable)")
    p.add_argument("--backtest", type=Path, help="`scalefit backtest --json` output: mark held-out cells' best LR")
    p.add_argument("--prob", type=_prob, default=0.9, help="interval probability (equal-tailed)")
    p.set_defaults(func=cmd_law)

    p = sub.add_parser("weights", help="hidden-matrix weight RMS vs step from runner trajectories")
    p.add_argument("paths", nargs="+", type=Path,
                   help="grid output dirs (with runs/ or cells/), run dirs, or trajectory.parquet files")
    p.add_argument("-o", "--output", type=Path, required=True, help="figure file (.png or .svg)")
    p.add_argument("--stat", choices=("rms", "norm"), default="rms")
    p.add_argument("--each", action="store_true", help="one line per hidden matrix instead of the median")
    p.add_argument("--no-scheduled", action="store_true",
                   help="hide the equilibrium level at the scheduled lr_t (the peak-LR level stays)")
    p.set_defaults(func=cmd_weights)
