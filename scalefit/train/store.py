"""The result store: ``DIR/cells/<id>/`` with atomic writes, claims and checkpoints.

Layout of one cell directory::

    config.json        the cell (id, config, run cadences, meta); written once, atomically
    claim              JSON {host, pid, time}; exists while a worker owns the cell; its mtime is
                       the heartbeat
    checkpoint.pt      model + optimizer + step + RNG + loss history + probe records (torch.save)
    trajectory.parquet the probe records (one row per matrix per probed step)
    result.json        the run's outcome; its existence means "finished, never re-run"

A claim is taken with ``O_CREAT | O_EXCL`` (atomic on local and NFS v3+ filesystems). A claim is
stale when its pid is dead on this host, or when its heartbeat is older than the lease; a stale
claim is taken over by renaming it away first (only one contender's rename succeeds).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

RESULT, CLAIM, CHECKPOINT, CONFIG, TRAJECTORY = (
    "result.json", "claim", "checkpoint.pt", "config.json", "trajectory.parquet")


def _clean(o):
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def cell_dir(out: Path, cell_id: str) -> Path:
    return Path(out) / "cells" / cell_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed worker whose parent died too can linger as an unreaped zombie
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def claim_is_stale(path: Path, lease_s: float) -> bool:
    try:
        info = read_json(path)
        age = time.time() - path.stat().st_mtime
    except (FileNotFoundError, json.JSONDecodeError):
        return True  # vanished, or a half-written claim from a killed worker
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return age > lease_s


def try_claim(d: Path, lease_s: float) -> bool:
    """Claim cell directory ``d`` for this process; False if finished or owned by a live worker."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / RESULT).exists():
        return False
    path = d / CLAIM
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not claim_is_stale(path, lease_s):
                return False
            try:  # take over: only one contender's rename succeeds
                os.rename(path, d / f".claim.stale.{socket.gethostname()}.{os.getpid()}")
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
        if (d / RESULT).exists():  # finished between our check and our claim
            release(d)
            return False
        return True
    return False


def heartbeat(d: Path) -> None:
    try:
        os.utime(d / CLAIM)
    except FileNotFoundError:
        pass


def release(d: Path) -> None:
    try:
        os.remove(d / CLAIM)
    except FileNotFoundError:
        pass


def status(d: Path) -> str:
    """done | diverged | failed | running | stale | pending (for ``grid plan``)."""
    if (d / RESULT).exists():
        try:
            return read_json(d / RESULT).get("status", "done")
        except json.JSONDecodeError:
            return "failed"
    if (d / CLAIM).exists():
        return "stale" if claim_is_stale(d / CLAIM, lease_s=float("inf")) else "running"
    return "pending"


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path):
    import torch

    # weights_only=False: the checkpoint also holds RNG states and plain-Python histories we wrote
    return torch.load(path, map_location="cpu", weights_only=False)
