"""CLI subcommand ``scalefit suggest``: which cells to sweep next, as a table and a runnable spec."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["register"]


def cmd_suggest(args) -> int:
    """``scalefit suggest``: the proposal table, and optionally a runnable grid spec (-o)."""
    from scalefit.design.recipe import find_recipe
    from scalefit.design.suggest import default_tokens, format_suggestion, suggest
    from scalefit.fit.core import Fit

    fit = Fit.load(args.fit)
    recipe = find_recipe(fit, args.spec, args.ladder)
    tokens = args.tokens or default_tokens(fit)
    s = suggest(fit, args.n_params, args.n_tokens, budget=args.budget, candidates=recipe.candidates(tokens),
                tokens=tokens, batch_size=args.batch_size, seeds=args.seeds, lattice=recipe.lattice, seed=args.seed)
    if args.output:
        optimizer, weight_decay = recipe.continuation(fit)
        if not s.proposals:
            raise ValueError("nothing to write: no affordable cell is expected to narrow the interval")
        from scalefit.design.spec_writer import write_spec

        write_spec(s, args.output, base_spec=recipe.spec_path, ladder=recipe.ladder_path, optimizer=optimizer,
                   weight_decay=weight_decay)
    if args.table:
        s.table().to_csv(args.table, index=False)
    if args.json:
        print(json.dumps(s.to_dict() | {"fit_file": str(args.fit), "spec": str(args.output) if args.output else None},
                         default=float))
    else:
        print(format_suggestion(s))
        if args.output:
            print(f"spec written to {args.output}: scalefit grid plan {args.output} --out DIR; "
                  f"accelerate launch runners/train_grid.py {args.output} --out DIR")
    return 0


def register(sub) -> None:
    """Add ``suggest`` to the ``scalefit`` subcommand parsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        From ``parser.add_subparsers()`` in `scalefit.cli.main.build_parser`.
    """
    from scalefit.cli.args import count

    p = sub.add_parser("suggest", help="which cells to sweep next: expected shrinkage of the target's 90%% interval "
                       "per FLOP, as a table and a runnable grid spec")
    p.add_argument("fit", type=Path)
    p.add_argument("--n-params", type=count, required=True)
    p.add_argument("--n-tokens", type=count, required=True)
    p.add_argument("--batch-size", type=count, help="tokens per step at the target (when the law depends on it)")
    p.add_argument("--budget", type=count, required=True, help="FLOPs to spend on the whole batch (e.g. 3e13)")
    p.add_argument("--ladder", type=Path, help="models/X.toml: candidate sizes (default: the ladder the fitted "
                   "runs record, else the fitted sizes)")
    p.add_argument("--spec", type=Path, help="the grid spec that collected the fitted runs: the new spec copies its "
                   "recipe and LR lattice (default: the grid the fitted runs record, under runners/grids)")
    p.add_argument("--tokens", type=count, nargs="+", help="candidate token budgets (default: the fitted ones "
                   "and twice the largest)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per proposed LR (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new cells' random effects")
    p.add_argument("-o", "--output", type=Path, help="write the batch as a runnable grid spec (TOML)")
    p.add_argument("--table", type=Path, help="write the proposal table (CSV)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_suggest)
