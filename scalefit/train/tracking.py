"""Experiment trackers from every process, not only the main one.

Accelerate starts trackers on the main process only, so in sharded mode the runs trained by every
other process would never reach W&B / TensorBoard. Here each process opens its own run of the same tracker
class (Accelerate's classes, with ``main_process_only`` turned off), named ``p<rank>``, and logs
the runs it trains. ``jsonl`` is a built-in tracker with no dependency: one
``OUT/trackers/p<rank>.jsonl`` per process, a JSON object per line.
"""
from __future__ import annotations

import json
from pathlib import Path

from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker


class JsonlTracker(GeneralTracker):
    """Append-only JSON lines; ``{"config": ...}`` first, then ``{"step": s, **values}``."""
    name = "jsonl"
    requires_logging_directory = True
    main_process_only = False

    def __init__(self, run_name: str, logging_dir):
        super().__init__()
        self.path = Path(logging_dir) / f"{run_name}.jsonl"
        self._f = None

    def start(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")

    @property
    def tracker(self):
        return self._f

    def _write(self, obj):
        self._f.write(json.dumps(obj, default=str) + "\n")
        self._f.flush()

    def store_init_configuration(self, values: dict):
        self._write({"config": values})

    def log(self, values: dict, step=None, **kwargs):
        self._write({"step": step, **values})

    def finish(self):
        if self._f:
            self._f.close()


def open_trackers(names: list[str], out: Path, rank: int, grid: str, config: dict) -> list:
    """Start one run per tracker name for this process (``jsonl`` or any Accelerate tracker)."""
    trackers = []
    for name in names:
        if name == "jsonl":
            t = JsonlTracker(f"p{rank}", Path(out) / "trackers")
        elif name in LOGGER_TYPE_TO_CLASS:
            cls = LOGGER_TYPE_TO_CLASS[name]
            every = type(f"EveryProcess{cls.__name__}", (cls,), {"main_process_only": False})
            kw = {"logging_dir": str(Path(out) / "trackers")} if cls.requires_logging_directory else {}
            if name == "wandb":  # one W&B project, one run per process, grouped by grid
                kw.update(name=f"{grid}-p{rank}", group=grid)
            t = every(f"p{rank}" if cls.requires_logging_directory else "scalefit", **kw)
        else:
            raise ValueError(f"--log_with {name!r}: not one of {['jsonl', *sorted(LOGGER_TYPE_TO_CLASS)]}")
        t.start()
        t.store_init_configuration({**config, "process": rank})
        trackers.append(t)
    return trackers
