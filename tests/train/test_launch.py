"""Real `accelerate launch` with two CPU processes: dynamic sharding, and kill -9 + resume."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from runner_helpers import REPO, write_grid  # noqa: E402

from scalefit.collect import collect_runs  # noqa: E402
from scalefit.train.spec import load_spec  # noqa: E402

ACCELERATE = Path(sys.executable).parent / "accelerate"
# DESIGN.md "Stack facts": `--cpu --num_processes 2` starts ONE process; this starts two (gloo).
LAUNCH = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
          str(REPO / "runners" / "collect.py")]


def _env():
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _ran_ids(stdout: str) -> Counter:
    return Counter(re.findall(r"^\[p\d\] ([0-9a-f]{16}) ", stdout, flags=re.M))


GRID = """
    name = "launch"
    sizes = ["u16", "u32"]
    optimizer = ["adamw", "adamh"]
    batch_size = 8
    seq_len = 32
    [tokens]
    absolute = [12800]
    [lr]
    values = [1e-3, 1e-2]
    [lr.adamh]
    values = [0.02]
    [schedule]
    warmup = 5
    [data]
    eval_tokens = 2048
    [run]
    checkpoint_every = 25
    probe_every = 10
    log_every = 5
"""


def test_two_process_launch_runs_every_cell_once(tmp_path):
    grid = write_grid(tmp_path / "grid.toml", GRID)
    out = tmp_path / "out"
    spec = load_spec(grid)
    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    ran = _ran_ids(p.stdout)
    assert set(ran) == {c.id for c in spec.cells} and set(ran.values()) == {1}, p.stdout
    assert {m for m in re.findall(r"^\[p(\d)\]", p.stdout, flags=re.M)} == {"0", "1"}  # both worked
    assert "2 process(es)" in p.stdout
    df = collect_runs(out)
    assert len(df) == len(spec.cells) == 6 and df.cell_id.is_unique
    assert (df.status == "ok").all() and df.final_loss.notna().all() and df.eff_lr.gt(0).all()
    # a second launch finds everything done and re-runs nothing
    p2 = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                        capture_output=True, text=True, timeout=180)
    assert p2.returncode == 0 and not _ran_ids(p2.stdout) and "6 already done" in p2.stdout


KILL_GRID = """
    name = "kill"
    sizes = ["u32"]
    optimizer = "adamw"
    batch_size = 8
    seq_len = 32
    [tokens]
    absolute = [38400, 76800]         # 150 and 300 steps
    [lr]
    values = [1e-3, 3e-3]
    [schedule]
    warmup = 10
    [data]
    eval_tokens = 2048
    [run]
    checkpoint_every = 15
    probe_every = 10
    log_every = 5
"""


def _descendants(pid: int) -> list[int]:
    """pid and all its descendants (torch elastic puts workers in their own sessions, so
    killing the launcher's process group would leave them running)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _early_checkpoint(d: Path, cell) -> bool:
    """A checkpoint in the first half of an unfinished run (so it is still mid-run at the kill)."""
    try:
        step = torch.load(d / "checkpoint.pt", weights_only=False)["step"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return False
    return not (d / "result.json").exists() and step <= cell.config["steps"] // 2


def test_kill_9_then_relaunch_resumes(tmp_path):
    grid = write_grid(tmp_path / "grid.toml", KILL_GRID)
    out = tmp_path / "out"
    cells = {c.id: c for c in load_spec(grid).cells}
    proc = subprocess.Popen(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until one cell is finished and another is mid-run with a checkpoint, then kill -9 all
    deadline, state = time.time() + 120, None
    while time.time() < deadline and proc.poll() is None:
        done = [i for i in cells if (out / "cells" / i / "result.json").exists()]
        mid = [i for i in cells if i not in done and _early_checkpoint(out / "cells" / i, cells[i])]
        if done and mid:
            state = (done, mid)
            break
        time.sleep(0.02)
    for pid in _descendants(proc.pid):  # kill -9 the launcher and both workers at once
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    assert state is not None, "grid finished or stalled before a mid-run checkpoint was seen"
    done = [i for i in cells if (out / "cells" / i / "result.json").exists()]
    before = {i: ((out / "cells" / i / "result.json").stat().st_mtime_ns,
                  (out / "cells" / i / "result.json").read_bytes()) for i in done}
    ckpt_steps = {i: torch.load(out / "cells" / i / "checkpoint.pt", weights_only=False)["step"]
                  for i in cells if i not in done and (out / "cells" / i / "checkpoint.pt").exists()}
    assert ckpt_steps and len(done) < len(cells)

    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    ran = _ran_ids(p.stdout)
    assert not set(ran) & set(done), "a finished cell was re-run"
    assert set(ran) | set(done) == set(cells) and set(ran.values()) == {1}
    for i, (mtime, blob) in before.items():  # finished cells untouched
        f = out / "cells" / i / "result.json"
        assert f.stat().st_mtime_ns == mtime and f.read_bytes() == blob
    for i, step in ckpt_steps.items():
        r = json.loads((out / "cells" / i / "result.json").read_text())
        assert r["resumed_from_step"] == step > 0
        assert r["steps"] == r["steps_planned"] == cells[i].config["steps"]
        assert not (out / "cells" / i / "checkpoint.pt").exists()
        traj = pd.read_parquet(out / "cells" / i / "trajectory.parquet")
        assert traj.step.min() == 0 and traj.step.max() == r["steps"] - 1  # history kept across the kill
        assert not traj.duplicated(["step", "matrix"]).any()
    df = collect_runs(out)
    assert len(df) == len(cells) and df.cell_id.is_unique and (df.status == "ok").all()


def test_ddp_mode_matches_a_single_process_run(tmp_path):
    """--ddp: both processes train each cell on halves of the same global batch."""
    from scalefit.train.cell import RunContext, training_function

    grid = write_grid(tmp_path / "grid.toml", GRID.replace('sizes = ["u16", "u32"]', 'sizes = ["u16"]')
                      .replace('optimizer = ["adamw", "adamh"]', 'optimizer = "adamw"')
                      .replace("values = [1e-3, 1e-2]", "values = [3e-3]"))
    (cell,) = load_spec(grid).cells
    out = tmp_path / "out"
    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu", "--ddp"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    ddp = json.loads((out / "cells" / cell.id / "result.json").read_text())
    (tmp_path / "single").mkdir()
    single = training_function(cell.as_dict(), RunContext(cell_dir=tmp_path / "single"))
    assert ddp["ddp_processes"] == 2 and single["ddp_processes"] == 1
    assert ddp["steps"] == single["steps"] == cell.config["steps"]
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=2e-3)
    assert ddp["eff_lr"] == pytest.approx(single["eff_lr"], rel=1e-2)
