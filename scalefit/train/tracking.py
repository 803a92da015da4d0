"""Experiment trackers from every process, not only the main one.

Accelerate starts trackers on the main process only, so in sharded mode the runs trained by every
other process would never reach W&B / TensorBoard. Here each process opens its own run of the same tracker
class (Accelerate's classes, with ``main_process_only`` turned off), named ``p<rank>``, and logs
the runs it trains. ``jsonl`` is a built-in tracker with no dependency: one
``OUT/trackers/p<rank>.jsonl`` per process, a JSON object per line.

Workers open them with ``--log_with`` (``runners/train_grid.py``, :func:`scalefit.train.shard.main`).
"""
from __future__ import annotations

import json
from pathlib import Path

from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker

__all__ = ["JsonlTracker", "open_trackers"]


class JsonlTracker(GeneralTracker):
    """Append-only JSON lines; ``{"config": ...}`` first, then ``{"step": s, **values}``.

    Parameters
    ----------
    run_name : str
        The file's stem (``p<rank>``).
    logging_dir : str or Path
        The folder of the file (``OUT/trackers``).
    """
    name = "jsonl"
    requires_logging_directory = True
    main_process_only = False

    def __init__(self, run_name: str, logging_dir):
        super().__init__()
        self.path = Path(logging_dir) / f"{run_name}.jsonl"
        self._f = None

    def start(self):
        """Open the file for appending (creating its folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")

    @property
    def tracker(self):
        """The open file (None before :meth:`start`)."""
        return self._f

    def _write(self, obj):
        self._f.write(json.dumps(obj, default=str) + "\n")
        self._f.flush()

    def store_init_configuration(self, values: dict):
        """Write ``{"config": values}``.

        Parameters
        ----------
        values : dict
            The configuration to record.
        """
        self._write({"config": values})

    def log(self, values: dict, step=None, **kwargs):
        """Write ``{"step": step, **values}``.

        Parameters
        ----------
        values : dict
            What to log.
        step : int, optional
            The step it belongs to.
        **kwargs
            Ignored (Accelerate's tracker interface).
        """
        self._write({"step": step, **values})

    def finish(self):
        """Close the file."""
        if self._f:
            self._f.close()


def open_trackers(names: list[str], out: Path, rank: int, grid: str, config: dict) -> list:
    """Start one run per tracker name for this process (``jsonl`` or any Accelerate tracker).

    Parameters
    ----------
    names : list of str
        Tracker names: ``jsonl`` or a key of Accelerate's ``LOGGER_TYPE_TO_CLASS``.
    out : Path
        The runner output directory (trackers that log to files use ``out/trackers``).
    rank : int
        This process's index: the tracker run is named ``p<rank>`` (W&B: ``<grid>-p<rank>``,
        grouped by grid).
    grid : str
        The grid's name.
    config : dict
        Recorded as the tracker run's configuration, with ``process = rank`` added.

    Returns
    -------
    list
        The started trackers.

    Raises
    ------
    ValueError
        If a name is not a known tracker.
    """
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
