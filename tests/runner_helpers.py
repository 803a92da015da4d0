"""Helpers for the runner tests (a top-level module: pyproject puts tests/ on the path)."""
from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MICRO_LADDER = REPO / "models" / "micro.toml"


def write_grid(path: Path, body: str, *, ladder: Path = MICRO_LADDER) -> Path:
    """A grid spec whose ladder is the repo's micro ladder (absolute path)."""
    path.write_text(f'ladder = "{ladder}"\n' + textwrap.dedent(body))
    return path


BASE = """
    name = "t"
    sizes = ["u32"]
    optimizer = "adamw"
    weight_decay = 0.1
    batch_size = 8
    seq_len = 32
    [tokens]
    absolute = [12800]
    [lr]
    values = [3e-3]
    [schedule]
    kind = "cosine"
    warmup = 5
    [data]
    eval_tokens = 2048
    [run]
    checkpoint_every = 20
    probe_every = 5
    log_every = 5
"""
