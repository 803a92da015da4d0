"""CLI subcommands of the runner half: ``scalefit collect``, ``scalefit grid plan`` and
``scalefit grid status``.

``register(subparsers)`` adds them to the main ``scalefit`` parser. Nothing here imports torch,
and each command imports what it needs only when it runs, so ``scalefit --help`` stays fast.

Examples
--------
A shell, not Python::

    scalefit grid plan runners/grids/micro.toml --out out/micro
    scalefit grid status runners/grids/micro.toml --out out/micro
    scalefit collect out/micro -o out/micro/runs.csv
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "cmd_collect", "cmd_grid_plan", "cmd_grid_status", "plan_table"]


def cmd_collect(args) -> int:
    """``scalefit collect DIR -o FILE``: write a runner output directory's runs table.

    Parameters
    ----------
    args : argparse.Namespace
        ``dir`` (the runner output directory) and ``output`` (.csv, .tsv, .parquet or .pq).

    Returns
    -------
    int
        0, or 2 after a one-line error (no runs folder, an unreadable result, a bad suffix).
    """
    from scalefit.runs.harvest import collect_runs, write_runs

    try:
        df = collect_runs(args.dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"scalefit collect: {e}", file=sys.stderr)
        return 2
    try:
        path = write_runs(df, args.output)
    except ValueError as e:
        print(f"scalefit collect: {e}", file=sys.stderr)
        return 2
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print(f"wrote {len(df)} runs to {path} ({', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'})")
    return 0


def plan_table(spec, out=None):
    """One row per run (the plan, plus LRs added by bracket extension in ``out``): id, sweep, size,
    N, D, optimizer, LR, seed, steps, FLOPs, status.

    Parameters
    ----------
    spec : GridSpec
        The grid spec.
    out : str or Path, optional
        A runner output directory; without it no extensions are listed and every status is
        ``-``.

    Returns
    -------
    pandas.DataFrame
        Columns run_id, sweep, size, n_params, n_tokens, optimizer, lr, wd, seed, steps, flops,
        status (:func:`scalefit.grids.store.status`), in claim order.
    """
    import pandas as pd

    from scalefit.grids import brackets, store

    rows, runs = [], spec.ordered(spec.runs + (brackets.load(spec, out) if out else []))
    for c in runs:
        st = store.status(store.run_dir(out, c.id)) if out else "-"
        rows.append(dict(run_id=c.id, sweep=c.meta["sweep"], size=c.meta["size"], n_params=c.meta["n_params"],
                         n_tokens=c.meta["n_tokens"], optimizer=c.config["optimizer"],
                         lr=c.config["lr"], wd=c.config["weight_decay"], seed=c.config["seed"],
                         steps=c.config["steps"], flops=c.meta["flops"], status=st))
    return pd.DataFrame(rows)


def _load_spec(args, command: str):
    """The grid spec, or None after a one-line error naming the command (the caller exits 2)."""
    from scalefit.grids.spec import SpecError, load_spec

    try:
        return load_spec(args.grid)
    except SpecError as e:
        print(f"scalefit grid {command}: {e}", file=sys.stderr)
        return None


def cmd_grid_plan(args) -> int:
    """``scalefit grid plan GRID [--out DIR]``: print a grid's runs, FLOPs and states.

    Parameters
    ----------
    args : argparse.Namespace
        ``grid`` (the spec) and ``out`` (optional runner output directory).

    Returns
    -------
    int
        0, or 2 after a one-line error for an invalid spec.
    """
    spec = _load_spec(args, "plan")
    if spec is None:
        return 2
    df = plan_table(spec, args.out)
    with_pd = df.copy()
    with_pd["flops"] = with_pd["flops"].map(lambda f: f"{f:.3g}")
    print(with_pd.to_string(index=False))
    total = df["flops"].sum()
    msg = f"\n{spec.name}: {len(df)} runs, {total:.3g} FLOPs in all"
    if args.out:
        counts = df["status"].value_counts().to_dict()
        left = df.loc[~df["status"].isin(["ok", "diverged", "failed"]), "flops"].sum()
        msg += f"; {', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}; {left:.3g} FLOPs left"
    print(msg)
    return 0


def cmd_grid_status(args) -> int:
    """``scalefit grid status GRID --out DIR [--card FILE]``: print a grid's progress (Markdown).

    Parameters
    ----------
    args : argparse.Namespace
        ``grid`` (the spec), ``out`` (the runner output directory) and ``card`` (optional
        Markdown file whose ``<!-- status:begin -->`` / ``<!-- status:end -->`` block is
        replaced by the summary).

    Returns
    -------
    int
        0, or 2 after a one-line error (invalid spec, nothing trained in ``out``, a card without
        the markers).
    """
    import re
    from pathlib import Path

    from scalefit.grids.status import status_markdown
    from scalefit.runs.schema import runs_root

    spec = _load_spec(args, "status")
    if spec is None:
        return 2
    if not runs_root(args.out).is_dir():
        print(f"scalefit grid status: {args.out}: no runs/ directory (nothing trained there yet)", file=sys.stderr)
        return 2
    text = status_markdown(spec, args.out)
    if args.card:
        card = Path(args.card)
        old = card.read_text()
        if "<!-- status:begin -->" not in old:
            print(f"scalefit grid status: {card}: no <!-- status:begin --> / <!-- status:end --> markers",
                  file=sys.stderr)
            return 2
        card.write_text(re.sub(r"(<!-- status:begin -->).*?(<!-- status:end -->)",
                               lambda m: m.group(1) + "\n" + text + "\n" + m.group(2), old, flags=re.S))
    print(text)
    return 0


def register(subparsers) -> None:
    """Add ``collect``, ``grid plan`` and ``grid status`` to the main CLI's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned for the main ``scalefit`` parser.
    """
    p = subparsers.add_parser("collect", help="runner output DIR -> runs table (CSV/Parquet)",
                              description="Collect DIR/runs/*/result.json (DIR/cells/*/ in an old-layout "
                              "directory) into a runs table.")
    p.add_argument("dir", help="runner output directory (the --out of runners/train_grid.py)")
    p.add_argument("-o", "--output", required=True, help="runs table to write (.csv or .parquet)")
    p.set_defaults(func=cmd_collect)

    g = subparsers.add_parser("grid", help="grid specs: plan, status", description="Inspect grid specs.")
    gsub = g.add_subparsers(dest="grid_command", required=True)
    pl = gsub.add_parser("plan", help="list a grid's runs, their FLOPs and which are done")
    pl.add_argument("grid", help="grid spec TOML (runners/grids/*.toml)")
    pl.add_argument("--out", default=None, help="runner output directory, to show each run's status")
    pl.set_defaults(func=cmd_grid_plan)
    st = gsub.add_parser("status", help="progress of a grid: best LR per sweep, edges, divergences, "
                         "seed noise, ETA (no fit)")
    st.add_argument("grid", help="grid spec TOML (runners/grids/*.toml)")
    st.add_argument("--out", required=True, help="runner output directory")
    st.add_argument("--card", default=None, help="also write the summary between the <!-- status:begin --> "
                    "and <!-- status:end --> markers of this Markdown file (a data card)")
    st.set_defaults(func=cmd_grid_status)
