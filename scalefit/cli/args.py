"""Argument types shared by the subcommands: counts with suffixes, COLUMN=VALUE filters."""

from __future__ import annotations

import argparse

__all__ = ["count", "key_value", "SUFFIXES"]

SUFFIXES = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def count(text: str) -> float:
    """Parse 1.3e8, 130M, 7B, 2T as a positive number (an argparse ``type``).

    Parameters
    ----------
    text : str
        A number, optionally with a suffix K, M, B (or G) or T.

    Returns
    -------
    float

    Raises
    ------
    argparse.ArgumentTypeError
        When `text` is not a number or not positive.
    """
    t = text.strip().upper()
    mult = SUFFIXES.get(t[-1:], None)
    try:
        value = float(t[:-1]) * mult if mult else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (use e.g. 1.3e8 or 130M)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def key_value(text: str) -> tuple[str, str]:
    """Parse COLUMN=VALUE (the ``--where`` filter; an argparse ``type``).

    Parameters
    ----------
    text : str
        ``COLUMN=VALUE``; the value may itself contain "=".

    Returns
    -------
    tuple of (str, str)
        Column and value, stripped.

    Raises
    ------
    argparse.ArgumentTypeError
        When `text` has no "=".
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--where needs COLUMN=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()
