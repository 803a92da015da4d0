"""CLI subcommand ``scalefit suggest``: which cells to sweep next, as a table and a runnable spec."""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["register"]


def _recorded(fit, column: str) -> str | None:
    """A value every fitted run shares (the grid or ladder it was collected with), else None."""
    runs = fit.table.runs
    if column not in runs:
        return None
    values = runs.loc[runs["cell"].isin(fit.fitted_cells()), column].dropna().astype(str).unique()
    return values[0] if len(values) == 1 else None


def _find(path: Path | None, recorded: str | None, folder: str, what: str, flag: str) -> Path | None:
    """An explicit path, else the file named by the fitted table (``folder/<name>.toml`` here)."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{flag} {path}: {what} not found")
        return path
    if recorded and (Path(folder) / f"{recorded}.toml").is_file():
        print(f"{what}: {folder}/{recorded}.toml (recorded in the fitted runs; pass {flag} to choose)", file=sys.stderr)
        return Path(folder) / f"{recorded}.toml"
    return None


def cmd_suggest(args) -> int:
    """``scalefit suggest``: the proposal table, and optionally a runnable grid spec (-o)."""
    import tomllib

    from scalefit.fit.core import Fit
    from scalefit.design.suggest import candidates_from_ladder, default_tokens, format_suggestion, suggest
    from scalefit.grids.spec import load_ladder

    fit = Fit.load(args.fit)
    spec_path = _find(args.spec, _recorded(fit, "grid"), "runners/grids", "base spec", "--spec")
    ladder_path = _find(args.ladder, _recorded(fit, "ladder"), "models", "ladder", "--ladder")
    base = tomllib.loads(spec_path.read_text()) if spec_path else {}
    if ladder_path is None and spec_path is not None:
        from scalefit.grids.spec import find_ladder

        ladder_path = find_ladder(str(base["ladder"]), spec_path)
    tokens = args.tokens or default_tokens(fit)
    candidates = None
    if ladder_path is not None:
        data = base.get("data", {})
        vocab = int(data.get("vocab_size") or (50304 if data.get("kind") == "tokens" else 256))
        candidates = candidates_from_ladder(load_ladder(ladder_path), tokens, vocab_size=vocab,
                                            seq_len=base.get("seq_len"))
    s = suggest(fit, args.n_params, args.n_tokens, budget=args.budget, candidates=candidates, tokens=tokens,
                batch_size=args.batch_size, seeds=args.seeds, lattice=base.get("lr_lattice"), seed=args.seed)
    if args.output:
        if spec_path is None or ladder_path is None:
            raise ValueError("-o needs the recipe to continue: pass --spec (the grid spec that collected the "
                             "fitted runs) and --ladder; the fitted table names neither")
        if not s.proposals:
            raise ValueError("nothing to write: no affordable cell is expected to narrow the interval")
        from scalefit.design.spec_writer import write_spec

        optimizer = _recorded(fit, "optimizer") or "adamw"
        wd = fit.table.runs.loc[fit.table.runs["cell"].isin(fit.fitted_cells()), "weight_decay"].dropna().unique() \
            if "weight_decay" in fit.table.runs else []
        if len(wd) > 1:
            raise ValueError(f"the fitted runs mix weight decays {sorted(wd)}; fit one recipe to continue it")
        write_spec(s, args.output, base_spec=spec_path, ladder=ladder_path, optimizer=optimizer,
                   weight_decay=float(wd[0]) if len(wd) else 0.1)
    if args.table:
        s.table().to_csv(args.table, index=False)
    if args.json:
        print(json.dumps(s.to_dict() | {"fit_file": str(args.fit), "spec": str(args.output) if args.output else None},
                         default=float))
    else:
        print(format_suggestion(s))
        if args.output:
            print(f"spec written to {args.output}: scalefit grid plan {args.output} --out DIR; "
                  f"accelerate launch runners/collect.py {args.output} --out DIR")
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
