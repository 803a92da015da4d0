"""The result store: ``DIR/runs/<id>/`` with atomic writes, claims and checkpoints.

A directory whose grid began with the old layout keeps ``DIR/cells/<id>/`` and goes on writing
there (:func:`run_dir`, :func:`scalefit.runs.schema.runs_root`): one folder per run, never two.

Layout of one run directory::

    config.json        the run (id, config, run cadences, meta); written once, atomically
    claim              JSON {host, pid, time, nonce}; exists while a worker owns the run; its
                       mtime is the heartbeat (touched by a thread, :class:`Heartbeat`)
    attempts.json      starts in a row without progress (:func:`count_start`)
    checkpoint.pt      model + optimizer + step + RNG + loss history + probe records (torch.save)
    trajectory.parquet the probe records (one row per matrix per probed step)
    result.json        the run's outcome; its existence means "finished, never re-run"

A claim is created whole: its JSON (host, pid, time, a random nonce) is written to a private temp
file, then hard-linked to ``claim`` (``link`` fails if the name exists: atomic on local and NFS
v3+ filesystems), so no reader ever sees an empty or half-written claim. A claim is stale when its
pid is dead on this host, or when its heartbeat is older than the lease. Taking over a stale claim
first creates ``.takeover.<claim fingerprint>`` with ``O_EXCL`` (one winner per stale claim), then
checks the claim still has that fingerprint, then replaces it: two contenders can never both own
the run, even when they read the stale claim at the same moment.

No torch here: workers (:mod:`scalefit.train.shard`), bracket extension
(:mod:`scalefit.grids.brackets`) and ``scalefit grid plan`` / ``status`` share it.

Examples
--------
>>> from scalefit.grids import store
>>> d = store.run_dir("out", run_id)  # doctest: +SKIP
>>> if store.try_claim(d, lease_s=600):  # doctest: +SKIP
...     with store.Heartbeat(d, period_s=15):
...         train()
...     store.release(d)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from scalefit.runs.schema import runs_root

__all__ = ["RESULT", "CLAIM", "CHECKPOINT", "CONFIG", "TRAJECTORY", "ATTEMPTS", "write_json_atomic",
           "read_json", "run_dir", "claim_is_stale", "try_claim", "owns_claim", "heartbeat", "Heartbeat",
           "release", "clean_leftovers", "count_start", "status"]

# The file names of one run directory (see the layout above).
RESULT = "result.json"
CLAIM = "claim"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
TRAJECTORY = "trajectory.parquet"
ATTEMPTS = "attempts.json"


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
    """Write ``obj`` as JSON so that readers see the old file or the new one, never a part.

    The JSON goes to a temp file named after this host and pid, is fsynced, then renamed over
    ``path``. NaN and infinities are written as null (JSON has neither).

    Parameters
    ----------
    path : Path
        The file to write.
    obj : object
        JSON-serialisable content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path):
    """Read a JSON file.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    object
        The parsed content.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not valid JSON.
    """
    with open(path) as f:
        return json.load(f)


def run_dir(out: Path, run_id: str) -> Path:
    """The folder of run ``run_id``: ``out/runs/<id>``, or ``out/cells/<id>`` in an old-layout grid.

    Parameters
    ----------
    out : Path
        The runner output directory.
    run_id : str
        The run's id.

    Returns
    -------
    Path
        The run directory (not created).
    """
    return runs_root(out) / run_id


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


def _read_claim(path: Path) -> tuple[bytes, dict, float] | None:
    """(raw bytes, parsed JSON or {}, mtime) of a claim; None if it does not exist."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(blob)
    except ValueError:  # a claim written by an old version that was killed mid-write
        info = {}
    return blob, info if isinstance(info, dict) else {}, mtime


def _fingerprint(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def _is_stale(info: dict, mtime: float, lease_s: float) -> bool:
    if info.get("host") == socket.gethostname() and "pid" in info and not _pid_alive(int(info["pid"])):
        return True
    # an unreadable claim is judged by its age only: it may be a live worker of an older version
    return time.time() - mtime > lease_s


def claim_is_stale(path: Path, lease_s: float) -> bool:
    """Whether a claim may be taken over.

    Parameters
    ----------
    path : Path
        The ``claim`` file.
    lease_s : float
        Seconds a heartbeat stays valid.

    Returns
    -------
    bool
        True if the claim does not exist, names a dead pid on this host, or its heartbeat is
        older than ``lease_s``.
    """
    c = _read_claim(path)
    return True if c is None else _is_stale(c[1], c[2], lease_s)


def _claim_blob() -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                       "nonce": secrets.token_hex(8)}).encode()


def _write_private(d: Path, blob: bytes) -> Path:
    tmp = d / f".claim.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _create_claim(d: Path) -> bool:
    """Create ``claim`` with its full content, or return False if it exists."""
    tmp = _write_private(d, _claim_blob())
    try:
        os.link(tmp, d / CLAIM)
        return True
    except (FileExistsError, FileNotFoundError):  # taken, or our temp swept by the run's new owner
        return False
    finally:
        tmp.unlink(missing_ok=True)


TAKEOVER_GRACE_S = 60.0  # a takeover token older than this belongs to a contender that died mid-way


def _take_over(d: Path, blob: bytes) -> bool:
    """Replace the stale claim whose content is ``blob`` by ours; False if another contender won."""
    token = d / f".takeover.{_fingerprint(blob)}"
    try:
        os.close(os.open(token, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        try:
            if time.time() - token.stat().st_mtime > TAKEOVER_GRACE_S:
                token.unlink()  # its owner died between winning and replacing; retry next time
        except FileNotFoundError:
            pass
        return False
    try:
        now = _read_claim(d / CLAIM)
        if now is None:  # released meanwhile: create it the ordinary way
            return _create_claim(d)
        if now[0] != blob:  # replaced (a late contender holding an old fingerprint)
            return False
        tmp = _write_private(d, _claim_blob())
        try:
            os.replace(tmp, d / CLAIM)
        except FileNotFoundError:
            return False
        return True
    finally:
        token.unlink(missing_ok=True)


def try_claim(d: Path, lease_s: float) -> bool:
    """Claim run directory ``d`` for this process; False if finished or owned by a live worker.

    A stale claim is taken over (see the module docstring). On success leftover temp files and
    takeover tokens of earlier owners are removed.

    Parameters
    ----------
    d : Path
        The run directory (created if missing).
    lease_s : float
        Seconds after which a claim without a heartbeat is stale.

    Returns
    -------
    bool
        True if this process now owns the run.
    """
    d.mkdir(parents=True, exist_ok=True)
    if (d / RESULT).exists():
        return False
    if not _create_claim(d):
        c = _read_claim(d / CLAIM)
        if c is None:
            won = _create_claim(d)  # released between our two looks
        else:
            won = _is_stale(c[1], c[2], lease_s) and _take_over(d, c[0])
        if not won:
            return False
    if (d / RESULT).exists():  # finished between our check and our claim
        release(d)
        return False
    clean_leftovers(d)
    return True


def owns_claim(d: Path) -> bool:
    """True if ``d``'s claim is this process's (a takeover by another worker makes it False).

    Parameters
    ----------
    d : Path
        The run directory.

    Returns
    -------
    bool
        Whether the claim names this host and pid.
    """
    c = _read_claim(d / CLAIM)
    return c is not None and c[1].get("pid") == os.getpid() and c[1].get("host") == socket.gethostname()


def heartbeat(d: Path) -> bool:
    """Touch this process's claim; False if it is no longer ours.

    Parameters
    ----------
    d : Path
        The run directory.

    Returns
    -------
    bool
        True if the claim was ours and its mtime is now.
    """
    if not owns_claim(d):
        return False
    try:
        os.utime(d / CLAIM)
        return True
    except FileNotFoundError:
        return False


class Heartbeat:
    """Keep a claim alive from a daemon thread, independent of how long a step or an eval takes.

    Parameters
    ----------
    d : Path
        The claimed run directory.
    period_s : float
        Seconds between heartbeats (the spec's ``run.heartbeat_s``).

    Attributes
    ----------
    lost : bool
        Set when a heartbeat found the claim no longer ours (another worker took it over); the
        thread then stops.

    Examples
    --------
    >>> with Heartbeat(run_dir, period_s=15) as beat:  # doctest: +SKIP
    ...     train()
    >>> beat.lost  # doctest: +SKIP
    False
    """

    def __init__(self, d: Path, period_s: float):
        self.d, self.period_s = Path(d), period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.d.name}", daemon=True)
        self.lost = False  # set when another worker took the claim over

    def _beat(self) -> None:
        while not self._stop.wait(self.period_s):
            if not heartbeat(self.d):
                self.lost = True
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def release(d: Path) -> None:
    """Remove this process's claim (never another worker's).

    Parameters
    ----------
    d : Path
        The run directory.
    """
    if owns_claim(d):
        try:
            os.remove(d / CLAIM)
        except FileNotFoundError:
            pass


def clean_leftovers(d: Path) -> list[Path]:
    """Remove temp files, takeover tokens and stale-claim copies in a run directory this process
    has just claimed: whoever wrote them no longer owns the run.

    Claim temp files and takeover tokens younger than the takeover grace are kept: a contender may
    be mid-claim, and it loses anyway.

    Parameters
    ----------
    d : Path
        The run directory.

    Returns
    -------
    list of Path
        The files removed.
    """
    gone = []
    for pat in (".*.tmp", ".claim.stale.*", ".takeover.*"):
        for f in d.glob(pat):
            try:
                young = time.time() - f.stat().st_mtime < TAKEOVER_GRACE_S
                if young and f.name.startswith((".claim.", ".takeover.")) and not f.name.startswith(".claim.stale."):
                    continue  # a contender may be mid-claim: it loses anyway, let it finish cleanly
                f.unlink()
                gone.append(f)
            except FileNotFoundError:
                pass
    return gone


def count_start(d: Path) -> int:
    """Record that this process starts training claimed run ``d``; return how many starts in a row
    found no progress since the previous one (no result, checkpoint unchanged), this one included.
    A run that kills its worker (segfault, OOM kill, a hang ended by a timeout) climbs by one per
    relaunch; any new checkpoint resets the count, so preempted long runs are not penalised.

    Parameters
    ----------
    d : Path
        The claimed run directory (``attempts.json`` is written there).

    Returns
    -------
    int
        Starts in a row without progress, this one included.
    """
    ck = d / CHECKPOINT
    mark = ck.stat().st_mtime_ns if ck.exists() else None
    try:
        prev = read_json(d / ATTEMPTS)
    except (FileNotFoundError, ValueError):
        prev = {}
    n = prev.get("starts", 0) + 1 if prev.get("checkpoint_mtime_ns") == mark else 1
    write_json_atomic(d / ATTEMPTS, {"starts": n, "checkpoint_mtime_ns": mark, "pid": os.getpid(),
                                     "host": socket.gethostname(), "time": time.time()})
    return n


def status(d: Path) -> str:
    """The state of one run directory, for ``grid plan`` and ``grid status``.

    Parameters
    ----------
    d : Path
        The run directory.

    Returns
    -------
    str
        The result's status (``ok``, ``diverged``, ``failed``; ``done`` if it names none;
        ``failed`` if unreadable), else ``running`` or ``stale`` (a claim whose pid is dead on
        this host), else ``pending``.
    """
    if (d / RESULT).exists():
        try:
            return read_json(d / RESULT).get("status", "done")
        except json.JSONDecodeError:
            return "failed"
    if (d / CLAIM).exists():
        return "stale" if claim_is_stale(d / CLAIM, lease_s=float("inf")) else "running"
    return "pending"
