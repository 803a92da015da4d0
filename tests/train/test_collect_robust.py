"""Collection that never trains a run twice, with real `accelerate launch` on CPU: a run that
raises (sharded and --ddp), trackers from every process, and a kill of the launcher's process group."""
import json
import re
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from runner_helpers import REPO, write_grid  # noqa: E402
from test_launch import LAUNCH, _descendants, _early_checkpoint, _env, _ran_ids  # noqa: E402

from scalefit.train.run import code_version as train_code_version  # noqa: E402
from scalefit.grids.spec import load_spec  # noqa: E402

BAD_LR = 2e-3
GRID = """
    name = "robust"
    sizes = ["u16"]
    optimizer = "adamw"
    batch_size = 8
    seq_len = 32
    [tokens]
    absolute = [12800]
    [lr]
    values = [1e-3, 2e-3, 4e-3]
    [schedule]
    warmup = 5
    [data]
    eval_tokens = 2048
    [run]
    checkpoint_every = 25
    probe_every = 10
    log_every = 5
"""


def _failing_entry(tmp_path: Path) -> Path:
    """runners/train_grid.py, except that the run with lr = BAD_LR raises on every process (as a bad
    config or an unsupported op would), after the model exists and DDP has synchronised it."""
    p = tmp_path / "collect_failing.py"
    p.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from scalefit.train import run as run_module, shard

        real = run_module.training_function

        def training_function(c, ctx):
            if c["config"]["lr"] == {BAD_LR!r}:
                raise RuntimeError("injected failure in run " + c["run_id"])
            return real(c, ctx)

        run_module.training_function = training_function
        raise SystemExit(shard.main())
    """))
    return p


def _launch(entry, grid, out, *extra, timeout=240):
    cmd = LAUNCH[:-1] + [str(entry), str(grid), "--out", str(out), "--cpu", *extra]
    return subprocess.run(cmd, env=_env(), cwd=out.parent, capture_output=True, text=True, timeout=timeout)


def _results(out, spec):
    return {c.config["lr"]: json.loads((out / "runs" / c.id / "result.json").read_text()) for c in spec.runs}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sharded", "ddp"])
def test_a_run_that_raises_is_recorded_failed_and_the_grid_goes_on(tmp_path, mode):
    grid, out = write_grid(tmp_path / "grid.toml", GRID), tmp_path / "out"
    spec, entry = load_spec(grid), _failing_entry(tmp_path)
    extra = ["--ddp"] if mode == "ddp" else ["--log_with", "jsonl"]
    p = _launch(entry, grid, out, *extra)
    assert p.returncode == 0, p.stdout + p.stderr
    res = _results(out, spec)
    assert res[BAD_LR]["status"] == "failed" and "injected failure" in res[BAD_LR]["error"]
    assert "Traceback" in res[BAD_LR]["traceback"]
    assert all(r["status"] == "ok" for lr, r in res.items() if lr != BAD_LR)
    assert res[1e-3]["ddp_processes"] == (2 if mode == "ddp" else 1)
    assert {r["code_version"] for r in res.values()} == {train_code_version()}  # the training code, not HEAD
    assert re.fullmatch(r"train-[0-9a-f]{12}", train_code_version())
    if mode == "sharded":  # every process logged the runs it trained to its own tracker run
        logged = {}
        for rank in (0, 1):
            lines = [json.loads(x) for x in (out / "trackers" / f"p{rank}.jsonl").read_text().splitlines()]
            assert lines[0]["config"]["process"] == rank
            logged[rank] = {x["run_id"] for x in lines if "run_id" in x}
        assert logged[0] and logged[1] and not logged[0] & logged[1]
        assert logged[0] | logged[1] == {c.id for c in spec.runs}
        assert all(any(k.endswith("/train_loss") for k in x) for x in lines[1:] if "run_id" not in x)

    bad = next(c for c in spec.runs if c.config["lr"] == BAD_LR)
    before = (out / "runs" / bad.id / "result.json").read_bytes()
    p2 = _launch(entry, grid, out, *extra)  # a relaunch does not retry it ...
    assert p2.returncode == 0 and not _ran_ids(p2.stdout), p2.stdout
    assert (out / "runs" / bad.id / "result.json").read_bytes() == before
    if mode == "ddp":
        p3 = _launch(entry, grid, out, *extra, "--retry-failed")  # ... unless asked
        assert p3.returncode == 0 and set(_ran_ids(p3.stdout)) == {bad.id}, p3.stdout
        assert len(list((out / "runs" / bad.id).glob("result.failed.*.json"))) == 1


def test_bad_spec_is_one_line_no_traceback(tmp_path):
    grid = write_grid(tmp_path / "grid.toml", GRID.replace("warmup = 5", "warmup = 500"))
    p = subprocess.run([sys.executable, str(REPO / "runners" / "train_grid.py"), str(grid), "--out",
                        str(tmp_path / "out")], env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert str(grid) in line and "field 'schedule.warmup'" in line


KILL_GRID = GRID.replace("absolute = [12800]", "absolute = [38400, 76800]       # 150 and 300 steps") \
                .replace("values = [1e-3, 2e-3, 4e-3]", "values = [1e-3, 3e-3]") \
                .replace("checkpoint_every = 25", "checkpoint_every = 15").replace('"u16"', '"u32"')


@pytest.mark.slow
def test_killing_the_launchers_process_group_stops_every_worker_and_relaunch_resumes(tmp_path):
    grid, out = write_grid(tmp_path / "grid.toml", KILL_GRID), tmp_path / "out"
    runs = {c.id: c for c in load_spec(grid).runs}
    proc = subprocess.Popen(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, state = time.time() + 150, None
    while time.time() < deadline and proc.poll() is None:
        done = [i for i in runs if (out / "runs" / i / "result.json").exists()]
        mid = [i for i in runs if i not in done and _early_checkpoint(out / "runs" / i, runs[i])]
        if done and mid:
            state = done
            break
        time.sleep(0.02)
    family = [p for p in _descendants(proc.pid) if p != proc.pid]
    os.killpg(proc.pid, signal.SIGKILL)  # what Ctrl-C's big brother, or a job scheduler, does
    proc.wait()
    assert state is not None, "grid finished or stalled before a mid-run checkpoint was seen"
    assert len(family) >= 2  # the two workers (and any helper) were running

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    t = time.time()
    while any(map(alive, family)) and time.time() - t < 3:  # workers poll their parent every 0.5 s
        time.sleep(0.05)
    assert not any(map(alive, family)), "a worker outlived its launcher"
    done = [i for i in runs if (out / "runs" / i / "result.json").exists()]
    time.sleep(1)  # nobody is left to write: the directory is frozen
    assert done == [i for i in runs if (out / "runs" / i / "result.json").exists()]
    before = {i: (out / "runs" / i / "result.json").read_bytes() for i in done}
    ckpt = {i: torch.load(out / "runs" / i / "checkpoint.pt", weights_only=False)["step"]
            for i in runs if i not in done and (out / "runs" / i / "checkpoint.pt").exists()}
    assert ckpt

    p = subprocess.run(LAUNCH + [str(grid), "--out", str(out), "--cpu"], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    ran = _ran_ids(p.stdout)
    assert not set(ran) & set(done) and set(ran) | set(done) == set(runs) and set(ran.values()) == {1}
    for i, blob in before.items():
        assert (out / "runs" / i / "result.json").read_bytes() == blob
    for i, step in ckpt.items():
        r = json.loads((out / "runs" / i / "result.json").read_text())
        assert r["resumed_from_step"] == step > 0 and r["steps"] == r["steps_planned"]
        assert not (out / "runs" / i / "checkpoint.pt").exists()
        traj = pd.read_parquet(out / "runs" / i / "trajectory.parquet")
        assert traj.step.min() == 0 and traj.step.max() == r["steps"] - 1  # history kept across the kill
        assert not traj.duplicated(["step", "matrix"]).any()
    assert not list(out.glob("runs/*/.*.tmp")) and not list(out.glob("runs/*/claim"))


def test_a_run_that_kills_its_worker_is_given_up_after_max_attempts(tmp_path):
    """A segfault-like death (os._exit) leaves no result; each relaunch would die on the same run.
    After run.max_attempts starts without progress it is recorded failed and the grid completes."""
    grid = write_grid(tmp_path / "grid.toml", GRID.replace("log_every = 5", "log_every = 5\n    max_attempts = 2"))
    out = tmp_path / "out"
    spec = load_spec(grid)
    entry = _failing_entry(tmp_path)
    entry.write_text(entry.read_text().replace('raise RuntimeError("injected failure in run " + c["run_id"])',
                                               "import os; os._exit(7)"))
    env = dict(_env())
    codes = []
    for _ in range(3):
        p = subprocess.run([sys.executable, str(entry), str(grid), "--out", str(out), "--cpu"], env=env,
                           capture_output=True, text=True, timeout=120)
        codes.append(p.returncode)
    assert codes == [7, 7, 0], p.stdout + p.stderr
    res = _results(out, spec)
    assert res[BAD_LR]["status"] == "failed" and "2 starts in a row died" in res[BAD_LR]["error"]
    assert all(r["status"] == "ok" for lr, r in res.items() if lr != BAD_LR)
    bad = next(c for c in spec.runs if c.config["lr"] == BAD_LR)
    assert json.loads((out / "runs" / bad.id / "attempts.json").read_text())["starts"] == 3
