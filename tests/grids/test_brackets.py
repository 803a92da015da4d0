"""Adaptive LR brackets: the decision rule on recorded results, and a real micro grid whose
optimum lies far above its initial window."""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from runner_helpers import REPO, write_grid

from scalefit.grids import brackets, store
from scalefit.grids.spec import load_spec

GRID = """
    name = "bracket"
    sizes = ["u16"]
    batch_size = 8
    seq_len = 32
    [lr_lattice]
    base = 1e-4
    per_octave = 1
    [schedule]
    warmup = 5
    [data]
    eval_tokens = 2048
    [run]
    checkpoint_every = 0
    probe_every = 10
    log_every = 5
    [[sweep]]
    name = "aw"
    optimizer = "adamw"
    tokens = { absolute = [12800] }
    lr = { k = [0, 1] }
    extend = { max = 9 }
"""


def _fake(out, spec, losses: dict, status: dict | None = None):
    """Write result.json for the runs of lattice index k (no training: the rule is what's tested)."""
    for c in spec.runs + brackets.load(spec, out):
        k = c.meta["lr_k"]
        if k in losses:
            d = store.run_dir(out, c.id)
            d.mkdir(parents=True, exist_ok=True)
            store.write_json_atomic(d / store.RESULT, {"status": (status or {}).get(k, "ok"),
                                                       "final_loss": losses[k]})


def _grow(spec, out):
    """Extend once; the added runs' ks."""
    return sorted(c.meta["lr_k"] for c in brackets.extend(spec, out))


@pytest.fixture
def spec(grid_file):
    return load_spec(grid_file(GRID.replace("lr = { k = [0, 1] }", "lr = { k = [0, 3] }")
                               .replace("max = 9", "max = 2")))


def test_rule_edges_cap_divergence_cliff_and_failures(spec, tmp_path):
    out = tmp_path / "a"
    _fake(out, spec, {0: 3.0, 1: 2.9, 2: 2.8})
    assert _grow(spec, out) == []                          # k=3 not finished: wait
    _fake(out, spec, {3: 2.7})
    assert _grow(spec, out) == [4]                         # best at the top: one more above
    assert _grow(spec, out) == []                          # idempotent: k=4 pending
    _fake(out, spec, {4: 2.6})
    assert _grow(spec, out) == [5]
    _fake(out, spec, {5: 2.5})
    assert _grow(spec, out) == []                          # max = 2 per side reached
    rec = json.loads((out / "brackets.json").read_text())["extensions"]
    assert [(r["side"], r["k"]) for r in rec] == [("high", 4), ("high", 5)]
    assert all(r["reason"].startswith("best LR at the high edge") for r in rec)

    out = tmp_path / "b"   # best at the low edge -> below
    _fake(out, spec, {0: 2.5, 1: 2.6, 2: 2.7, 3: 2.8})
    assert _grow(spec, out) == [-1]

    out = tmp_path / "c"   # a diverged run anywhere: the high side is closed
    _fake(out, spec, {0: 3.0, 1: 2.9, 2: 9.0, 3: 2.7}, {2: "diverged"})
    assert _grow(spec, out) == []

    out = tmp_path / "d"   # a cliff below the best (2.9 -> 3.3 going up, then 2.7): closed too
    _fake(out, spec, {0: 3.0, 1: 2.9, 2: 3.3, 3: 2.7})
    assert _grow(spec, out) == []

    out = tmp_path / "e"   # a failed run: valley unknown, leave it
    _fake(out, spec, {0: 3.0, 1: 2.9, 2: 2.8, 3: None}, {3: "failed"})
    assert _grow(spec, out) == []

    out = tmp_path / "f"   # everything diverged: look lower
    _fake(out, spec, {k: None for k in range(4)}, {k: "diverged" for k in range(4)})
    assert _grow(spec, out) == [-1]


def _collect(grid, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "runners" / "train_grid.py"), str(grid), "--out", str(out),
                             "--cpu"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_micro_grid_with_its_optimum_above_the_window_gets_bracketed(tmp_path):
    """Window 1e-4..2e-4 for a micro model whose best LR is ~1e-2: two workers share the
    directory, widen the window upwards one octave at a time until the best LR is interior,
    never train a run twice, and a restart adds nothing."""
    grid = write_grid(tmp_path / "grid.toml", GRID)
    out = tmp_path / "out"
    procs = [_collect(grid, out) for _ in range(2)]
    logs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    spec = load_spec(grid)
    rec = json.loads((out / "brackets.json").read_text())["extensions"]
    ks = [r["k"] for r in rec]
    assert ks == list(range(2, 2 + len(ks))) and {r["side"] for r in rec} == {"high"}  # no duplicates
    results = {c.meta["lr_k"]: store.read_json(store.run_dir(out, c.id) / store.RESULT)
               for c in spec.runs + brackets.load(spec, out)}
    assert sorted(results) == list(range(0, 2 + len(ks)))
    best = min((r["final_loss"], k) for k, r in results.items() if r["status"] == "ok")[1]
    top = max(results)
    assert 2 <= best < top and len(ks) < 9  # bracketed from inside the cap, optimum above the old window
    trained = Counter(line.split()[1] for o, _ in logs for line in o.splitlines() if line.startswith("[p0] ")
                      and "->" in line)
    assert set(trained.values()) == {1} and len(trained) == len(results)  # every run trained once
    again = _collect(grid, out)
    o, e = again.communicate(timeout=120)
    n = len(results)
    assert again.returncode == 0 and f"{n} runs, {n} already done" in o and "[p0]" not in o, o + e
    assert json.loads((out / "brackets.json").read_text())["extensions"] == rec
