"""`scalefit` command line: check -> fit -> predict (plus synth, backtest and the runner commands).

    scalefit check runs.csv
    scalefit fit runs.csv --axis N -o fit.nc
    scalefit predict fit.nc --n-params 1.3e8 --n-tokens 4e8 --json

Each subcommand parses its arguments and calls the library floors; what it prints comes from
`scalefit.report`. The runner commands (``collect``, ``grid``), ``plot`` and ``suggest`` register
themselves from `scalefit.cli.grid`, `scalefit.cli.plots` and `scalefit.cli.suggest`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scalefit.cli.args import count, key_value

__all__ = ["build_parser", "main"]


def _plain(value):
    """JSON for numpy scalars."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _add_table_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", help="runs table (.csv, .tsv, .parquet)")
    p.add_argument("--where", type=key_value, action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep only rows where COLUMN equals VALUE (repeatable)")
    p.add_argument("--n-column", help="column to use as model size N (e.g. n_params_active for MoE)")
    p.add_argument("--cell-by", action="append", default=[], metavar="COLUMN",
                   help="extra column that separates scale cells (repeatable)")


def _load(args, **options):
    from scalefit.runs.table import load_runs

    return load_runs(args.runs, where=dict(args.where) or None, n_column=args.n_column,
                     cell_by=tuple(args.cell_by), **options)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from scalefit.model.config import AXES, DIVERGED_RULES, LAWS, LR_KINDS, VALLEYS

    p.add_argument("--axis", choices=("auto", *AXES), default="auto",
                   help="law covariate: N, D, or ND (joint); auto: ND when the table varies both, else the one it varies")
    p.add_argument("--lr-kind", choices=LR_KINDS, default="nominal")
    p.add_argument("--valley", choices=VALLEYS, default="asymmetric")
    p.add_argument("--law", choices=LAWS, default="quadratic")
    p.add_argument("--window-octaves", type=float, default=3.0)
    p.add_argument("--diverged", choices=DIVERGED_RULES, default="censor")
    p.add_argument("--loss-window", type=_fraction_or_none, default=0.05, metavar="FRACTION|none",
                   help="censor ok runs more than this fraction above their cell's best loss (default 0.05)")
    p.add_argument("--config", type=Path, help="model config JSON (overrides the flags above)")
    p.add_argument("--draws", type=int, default=3000, help="draws per chain at most (default 3000)")
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-ess", type=int, default=400, help=_TARGET_ESS_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide the sampler's progress bar")


_TARGET_ESS_HELP = ("nutpie stops once bulk and tail ESS reach this and r_hat <= 1.01, checked every 250 "
                    "draws (default 400; 0 takes every draw)")


def _add_sampling_options(p: argparse.ArgumentParser, draws: int, tune: int) -> None:
    """Sampler flags of the commands that fit many models (compare, calibrate), plus --json."""
    p.add_argument("--draws", type=int, default=draws)
    p.add_argument("--tune", type=int, default=tune)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-ess", type=int, default=400, help=_TARGET_ESS_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")


def _fraction_or_none(text: str):
    if text.strip().lower() == "none":
        return None
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'none', got {text!r}")
    return value


def _model_config(args, table=None):
    from scalefit.model.config import ModelConfig, auto_axis

    if args.config:
        return ModelConfig.from_json(args.config.read_text())
    axis = auto_axis(table.cells) if args.axis == "auto" else args.axis
    if args.axis == "auto":
        print(f"law axis: {axis} (auto; pass --axis to choose)", file=sys.stderr)
    return ModelConfig(axis=axis, lr_kind=args.lr_kind, valley=args.valley, law=args.law,
                       window_octaves=args.window_octaves, diverged=args.diverged, loss_window=args.loss_window)


def _settings(args):
    from scalefit.inference.sampling import SamplerSettings

    return SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, sampler=args.sampler,
                           target_ess=args.target_ess or None,
                           seed=args.seed, progress=not args.no_progress and sys.stderr.isatty())


def cmd_check(args) -> int:
    """``scalefit check``: validate a runs table and print its cells; 1 when it does not load."""
    from scalefit.runs.table import RunsTableError
    from scalefit.report.text import check_report

    try:
        table = _load(args, split_optimizers=True)
    except RunsTableError as err:
        print(err, file=sys.stderr)
        return 1
    note = ""
    if "optimizer" in table.cell_by and "optimizer" not in args.cell_by:
        opts = sorted(table.runs["optimizer"].astype(str).str.lower().unique())
        note = (f"note: the table holds {len(opts)} optimizers ({', '.join(opts)}), checked as separate "
                f"cells; a fit uses one: --where optimizer={opts[0]}")
    print(check_report(table))
    if note:
        print(note)
    return 0


def cmd_fit(args) -> int:
    """``scalefit fit``: sample the posterior, write the fit file, print the fit report."""
    from scalefit.fit.core import fit_runs
    from scalefit.report.text import fit_report

    table = _load(args)
    config, settings = _model_config(args, table), _settings(args)
    print(f"fitting {len(table.runs)} runs in {len(table.cells)} cells with {settings.sampler} "
          f"({settings.chains} chains x {settings.tune} tune + up to {settings.draws} draws); "
          "compiling the model first (~1 min on 2 cores, once per law structure; ~2 s once cached)...", file=sys.stderr, flush=True)
    fit = fit_runs(table, config, settings)
    fit.save(args.output)
    print(fit_report(fit))
    print(f"saved {args.output}")
    return 0


def cmd_predict(args) -> int:
    """``scalefit predict``: the optimal LR at a target scale from a fit file (text or JSON)."""
    from scalefit.fit.core import Fit
    from scalefit.report.text import is_synthetic, prediction_report

    fit = Fit.load(args.fit)
    pred = fit.predict(args.n_params, args.n_tokens, prob=args.prob, seed=args.seed, batch_size=args.batch_size)
    synthetic = is_synthetic(fit.table.runs)
    if args.json:
        out = pred.to_dict() | {"synthetic_data": synthetic, "fit_file": str(args.fit)}
        print(json.dumps(out, default=_plain))
    else:
        print(prediction_report(pred, synthetic=synthetic))
    return 0


def cmd_backtest(args) -> int:
    """``scalefit backtest``: hold out the largest scale, predict it, score it (text or JSON)."""
    from scalefit.evaluation.backtest import leave_largest_out
    from scalefit.report.text import backtest_report

    table = _load(args)
    bt = leave_largest_out(table, _model_config(args, table), _settings(args), prob=args.prob)
    if args.json:
        print(json.dumps({"summary": bt.summary(), "rows": bt.rows.to_dict(orient="records")}, default=_plain))
    else:
        print(backtest_report(bt))
    return 0


def cmd_compare(args) -> int:
    """``scalefit compare``: every (LR space, axis) variant side by side (text or JSON)."""
    import warnings

    from scalefit.evaluation.compare import available_variants, compare
    from scalefit.report.text import comparison_report, is_synthetic

    table = _load(args)
    variants = [tuple(v.split("/")) for v in args.variants] if args.variants else available_variants(table)
    print(f"comparing {len(variants)} variants: {', '.join('/'.join(v) for v in variants)} "
          f"(each compiles once, ~20 s, then backtests reuse it)", file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings are reported in the table instead
        result = compare(table, args.n_params, args.n_tokens, _settings(args), prob=args.prob, variants=variants)
    if args.json:
        print(json.dumps(result.to_dict(), default=_plain))
    else:
        print(comparison_report(result, synthetic=is_synthetic(table.runs)))
    return 0


def cmd_calibrate(args) -> int:
    """``scalefit calibrate``: rolling backtests of the model scored against the point fit, the
    point fit on the swept lattice, the OLS prediction interval and the cell bootstrap."""
    from scalefit.evaluation.calibrate import calibrate, format_scores, method_records
    from scalefit.model.config import ModelConfig

    families = [f.strip().upper() for f in args.families.split(",") if f.strip()]
    table = _load(args)
    config = ModelConfig.from_json(args.config.read_text()) if args.config else ModelConfig()
    result = calibrate(table, families, config, _settings(args), progress=not args.no_progress, seed=args.seed)
    summary = result.summary(("method",))
    by_family = result.summary(("family", "method"))
    by_distance = result.summary(("distance_bin", "method"))
    fits = result.fits
    if args.json:
        print(json.dumps({"summary": summary.to_dict(orient="records"),
                          "methods": method_records(summary),
                          "by_family": by_family.to_dict(orient="records"),
                          "by_distance": by_distance.to_dict(orient="records"),
                          "converged_share": float(fits["converged"].mean()) if len(fits) else float("nan"),
                          "fits": fits.to_dict(orient="records"),
                          "rows": result.rows.to_dict(orient="records")}, default=_plain))
        return 0
    rows = result.rows
    model = rows[rows["method"] == "model"]
    n_unbr = int((~model["bracketed"].astype(bool)).sum())
    n_failed = int(model["error"].fillna("").ne("").sum())
    print(f"{table.source}: {len(fits)} backtest fits ({int(fits['converged'].sum())}/{len(fits)} converged), "
          f"{len(model)} held-out predictions of {model['cell_label'].nunique()} cells ({n_unbr} of unbracketed "
          "cells, left out of the scores"
          + (f"; {n_failed} without a nominal answer, the eff_lr map not rising there, left out of every "
             "method's scores" if n_failed else "") + ")")
    print("every held-out cell weighs once; [90% cluster-bootstrap CI]; _na = noise-aware (the measured optimum's "
          "own noise counted); widths, errors and interval scores (IS, alpha = 0.1) in decades; regret in loss "
          "units above the held-out sweep's best")
    print(format_scores(summary))
    print("\nby family:")
    print(format_scores(by_family))
    print("\nby distance beyond the fitted range (e-folds, joint over N and D; inside = interpolation):")
    print(format_scores(by_distance))
    return 0


def cmd_synth(args) -> int:
    """``scalefit synth``: write a SYNTHETIC runs table with a known curved law."""
    from scalefit.runs.synthetic import SyntheticTruth, make_grid

    truth = SyntheticTruth(curvature_n=args.curvature_n)
    frame = make_grid(truth, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; pass --force to overwrite", file=sys.stderr)
        return 1
    frame.to_csv(args.output, index=False)
    print(f"wrote {len(frame)} SYNTHETIC runs to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``scalefit`` argument parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
        Each subcommand sets ``func``, the function that runs it.
    """
    parser = argparse.ArgumentParser(prog="scalefit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a runs table; exit 1 on errors")
    _add_table_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fit", help="fit the hierarchical model and save the posterior")
    _add_table_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="fit file (.nc)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="credible interval for the optimal LR at a target scale")
    p.add_argument("fit", type=Path)
    p.add_argument("--n-params", type=count, required=True)
    p.add_argument("--n-tokens", type=count, required=True)
    p.add_argument("--batch-size", type=count, help="tokens per step at the target (needed when the fit's law "
                   "depends on batch size)")
    p.add_argument("--prob", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0, help="seed for the new cell's random effects")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backtest", help="hold out the largest scale along the axis and predict it")
    _add_table_options(p)
    _add_model_options(p)
    p.add_argument("--prob", type=float, default=0.9)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("compare", help="every variant (nominal/effective x N/D/ND): target interval, backtests, LOO")
    _add_table_options(p)
    p.add_argument("--n-params", type=count, required=True)
    p.add_argument("--n-tokens", type=count, required=True)
    p.add_argument("--variants", nargs="*", metavar="KIND/AXIS", help="e.g. nominal/N effective/N (default: all)")
    p.add_argument("--prob", type=float, default=0.9)
    _add_sampling_options(p, draws=2000, tune=1000)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("calibrate", help="rolling leave-largest-out backtests on your grid: error, coverage, "
                       "width, interval score and regret, against the point fit, the OLS prediction "
                       "interval and a cell bootstrap")
    _add_table_options(p)
    p.add_argument("--families", default="N,D,ND", help="comma-separated law families to backtest (N, D, ND)")
    p.add_argument("--config", type=Path, help="model config JSON (the family sets the axis)")
    _add_sampling_options(p, draws=3000, tune=1000)  # scalefit fit's: the ESS stopping rule decides
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("synth", help="write a SYNTHETIC grid with a known curved law")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curvature-n", type=float, default=0.06)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_synth)

    from scalefit.cli import grid, plots, suggest

    for module in (grid, plots, suggest):  # runner, plot and suggest commands
        module.register(sub)
    return parser


def main(argv=None) -> int:
    """Run the ``scalefit`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a command refuses (a table that does not load,
        an output that exists, matplotlib missing), 2 for a ValueError or FileNotFoundError
        from the library (its message goes to stderr).

    Examples
    --------
    >>> from scalefit.cli import main
    >>> main(["check", "runs.csv"])  # doctest: +SKIP
    0
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
