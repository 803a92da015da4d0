"""The on-disk layout of a runner output directory: a fresh grid writes ``OUT/runs/<id>/``; a grid
begun with the old layout (``OUT/cells/<id>/``, result files naming their id ``cell_id``) is read
everywhere and resumed in place: no finished run trained again, nothing split across two folders."""
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from runner_helpers import REPO, write_grid

from scalefit.cli.main import main as cli_main
from scalefit.grids import brackets, store
from scalefit.grids.spec import load_spec
from scalefit.grids.status import grid_table
from scalefit.runs.harvest import collect_runs
from scalefit.runs.schema import RUNNER_COLUMNS, runs_root

GRID = """
    name = "layout"
    sizes = ["u16"]
    optimizer = "adamw"
    weight_decay = 0.1
    batch_size = 8
    seq_len = 32
    [tokens]
    absolute = [2560]
    [lr]
    values = [1e-3, 1e-2]
    [schedule]
    warmup = 2
    [data]
    eval_tokens = 1024
    [run]
    checkpoint_every = 0
    probe_every = 5
    log_every = 5
"""


def _train(entry: str, grid, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "runners" / entry), str(grid), "--out", str(out), "--cpu",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)


def _trained(stdout: str) -> list[str]:
    return re.findall(r"^\[p0\] ([0-9a-f]{16}) ", stdout, flags=re.M)


def _to_old_layout(out):
    """What older runners wrote: cells/<id>/, ``cell_id`` in the JSON files."""
    (out / "runs").rename(out / "cells")
    plan = json.loads((out / "grid.json").read_text())
    plan["cells"] = plan.pop("runs")
    store.write_json_atomic(out / "grid.json", plan)
    for f in (out / "cells").glob("*/*.json"):
        d = json.loads(f.read_text())
        if "run_id" in d:
            d["cell_id"] = d.pop("run_id")
            store.write_json_atomic(f, d)


def test_runs_root_picks_the_folder_that_exists(tmp_path):
    assert runs_root(tmp_path) == tmp_path / "runs"            # nothing yet: the new layout
    (tmp_path / "runs").mkdir()
    assert runs_root(tmp_path) == tmp_path / "runs"
    (tmp_path / "cells").mkdir()                                # an old grid keeps its folder
    assert runs_root(tmp_path) == tmp_path / "cells"
    assert store.run_dir(tmp_path, "abc") == tmp_path / "cells" / "abc"
    assert RUNNER_COLUMNS[0] == "run_id"


@pytest.mark.slow
def test_fresh_grid_uses_runs_and_an_old_layout_grid_resumes_in_place(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    grid = write_grid(tmp_path / "grid.toml", GRID)
    spec = load_spec(grid)
    ids = sorted(r.id for r in spec.runs)
    assert len(ids) == 2

    # a fresh directory: runs/<id>/, run_id everywhere, no cells/
    new = tmp_path / "new"
    p = _train("train_grid.py", grid, new)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(_trained(p.stdout)) == ids
    assert not (new / "cells").exists() and sorted(x.name for x in (new / "runs").iterdir()) == ids
    assert json.loads((new / "grid.json").read_text())["runs"] == [r.id for r in spec.runs]
    for i in ids:
        assert json.loads((new / "runs" / i / "result.json").read_text())["run_id"] == i
        assert json.loads((new / "runs" / i / "config.json").read_text())["run_id"] == i
    df = collect_runs(new)
    assert sorted(df["run_id"]) == ids and "cell_id" not in df

    # the same grid as an old runner left it, one run finished and one never started
    old = tmp_path / "old"
    shutil.copytree(new, old)
    _to_old_layout(old)
    done, todo = ids
    shutil.rmtree(old / "cells" / todo)
    before = (old / "cells" / done / "result.json").read_bytes()
    assert store.status(store.run_dir(old, done)) == "ok"
    assert set(grid_table(spec, old)["status"]) == {"ok", "pending"}

    p = _train("collect.py", grid, old)  # the deprecated entry point still works
    assert p.returncode == 0, p.stdout + p.stderr
    assert "runners/collect.py is now runners/train_grid.py" in p.stderr
    assert "2 runs, 1 already done" in p.stdout
    assert _trained(p.stdout) == [todo]                         # the finished run is not trained again
    assert (old / "cells" / done / "result.json").read_bytes() == before
    assert not (old / "runs").exists()                           # nothing split into a second folder
    assert json.loads((old / "cells" / todo / "result.json").read_text())["run_id"] == todo
    assert "cells" in json.loads((old / "grid.json").read_text())

    # every reader sees the old layout: collect (cell_id -> run_id), grid plan and grid status
    df = collect_runs(old)
    assert sorted(df["run_id"]) == ids and "cell_id" not in df and (df["status"] == "ok").all()
    assert cli_main(["collect", str(old), "-o", str(tmp_path / "old.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "old.csv")["run_id"].sort_values()) == ids
    assert cli_main(["grid", "plan", str(grid), "--out", str(old)]) == 0
    assert "ok: 2; 0 FLOPs left" in capsys.readouterr().out
    assert cli_main(["grid", "status", str(grid), "--out", str(old)]) == 0
    assert "**2 of 2 runs finished** (ok: 2)" in capsys.readouterr().out
    again = _train("train_grid.py", grid, old)
    assert again.returncode == 0 and "2 runs, 2 already done" in again.stdout and not _trained(again.stdout)


BRACKET = """
    name = "bracket"
    sizes = ["u16"]
    batch_size = 8
    seq_len = 32
    [lr_lattice]
    base = 1e-4
    per_octave = 1
    [data]
    eval_tokens = 2048
    [[sweep]]
    name = "aw"
    optimizer = "adamw"
    tokens = { absolute = [12800] }
    lr = { k = [0, 1] }
    extend = { max = 3 }
"""


def test_old_layout_bracket_records_are_read_and_not_added_twice(tmp_path):
    """An extension recorded by the old runner (``cell_id``, in cells/) counts as recorded: the
    next pass adds only what is due beyond it, into cells/."""
    spec = load_spec(write_grid(tmp_path / "b.toml", BRACKET))
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)

    def finish(k, loss):
        for r in spec.runs + brackets.load(spec, out):
            if r.meta["lr_k"] == k:
                d = store.run_dir(out, r.id)
                d.mkdir(parents=True, exist_ok=True)
                store.write_json_atomic(d / store.RESULT, {"status": "ok", "final_loss": loss, "cell_id": r.id})

    finish(0, 3.0)
    finish(1, 2.9)
    (added,) = brackets.extend(spec, out)                        # best at the top edge: k = 2
    rec = json.loads((out / brackets.RECORD).read_text())["extensions"]
    rec[0]["cell_id"] = rec[0].pop("run_id")                     # as the old runner recorded it
    store.write_json_atomic(out / brackets.RECORD, {"extensions": rec})
    assert brackets.extend(spec, out) == []                      # k = 2 pending: nothing new
    assert (out / "cells" / added.id / store.CONFIG).exists() and not (out / "runs").exists()
    finish(2, 2.8)
    assert [r.meta["lr_k"] for r in brackets.extend(spec, out)] == [3]
    table = grid_table(spec, out)
    assert sorted(table["lr_k"]) == [0, 1, 2, 3] and table["added"].sum() == 2
