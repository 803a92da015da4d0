"""Real `accelerate launch` with two CPU processes: dynamic sharding and DDP (kill + resume:
test_collect_robust.py)."""
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from runner_helpers import REPO, write_grid  # noqa: E402

from scalefit.runs.harvest import collect_runs  # noqa: E402
from scalefit.grids.spec import load_spec  # noqa: E402

ACCELERATE = Path(sys.executable).parent / "accelerate"
# Accelerate 1.15: `--cpu --num_processes 2` starts ONE process; this starts two (gloo).
LAUNCH = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
          str(REPO / "runners" / "train_grid.py")]


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


def test_two_process_launch_trains_every_run_once(tmp_path):
    grid = write_grid(tmp_path / "grid.toml", GRID)
    out = tmp_path / "out"
    spec = load_spec(grid)
    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    ran = _ran_ids(p.stdout)
    assert set(ran) == {c.id for c in spec.runs} and set(ran.values()) == {1}, p.stdout
    assert {m for m in re.findall(r"^\[p(\d)\]", p.stdout, flags=re.M)} == {"0", "1"}  # both worked
    assert "2 process(es)" in p.stdout
    df = collect_runs(out)
    assert len(df) == len(spec.runs) == 6 and df.run_id.is_unique
    assert (df.status == "ok").all() and df.final_loss.notna().all() and df.eff_lr.gt(0).all()
    # a second launch finds everything done and re-runs nothing
    p2 = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                        capture_output=True, text=True, timeout=180)
    assert p2.returncode == 0 and not _ran_ids(p2.stdout) and "6 already done" in p2.stdout


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


def _early_checkpoint(d: Path, run) -> bool:
    """A checkpoint in the first half of an unfinished run (so it is still mid-run at the kill)."""
    try:
        step = torch.load(d / "checkpoint.pt", weights_only=False)["step"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return False
    return not (d / "result.json").exists() and step <= run.config["steps"] // 2


def test_ddp_mode_matches_a_single_process_run(tmp_path):
    """--ddp: both processes train each run on halves of the same global batch."""
    from scalefit.train.run import RunContext, training_function

    grid = write_grid(tmp_path / "grid.toml", GRID.replace('sizes = ["u16", "u32"]', 'sizes = ["u16"]')
                      .replace('optimizer = ["adamw", "adamh"]', 'optimizer = "adamw"')
                      .replace("values = [1e-3, 1e-2]", "values = [3e-3]"))
    (run,) = load_spec(grid).runs
    out = tmp_path / "out"
    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu", "--ddp"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    ddp = json.loads((out / "runs" / run.id / "result.json").read_text())
    (tmp_path / "single").mkdir()
    single = training_function(run.as_dict(), RunContext(run_dir=tmp_path / "single"))
    assert ddp["ddp_processes"] == 2 and single["ddp_processes"] == 1
    assert ddp["steps"] == single["steps"] == run.config["steps"]
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=2e-3)
    assert ddp["eff_lr"] == pytest.approx(single["eff_lr"], rel=1e-2)
