"""`scalefit grid status` / `grid plan` on the shipped grid and on a grid in progress (no torch)."""
import math

import pytest

from runner_helpers import REPO, write_grid

from scalefit.cli.main import main as cli_main
from scalefit.grids.status import eta_seconds, grid_table, status_markdown, sweep_states
from scalefit.grids import store
from scalefit.grids.spec import load_spec

V1 = REPO / "runners/grids/cpu_ladder_v1.toml"


def test_one_spec_file_shows_the_whole_shipped_grid_done(capsys):
    assert cli_main(["grid", "plan", str(V1), "--out", str(REPO / "data/cpu_ladder_v1")]) == 0
    text = capsys.readouterr().out
    assert text.rstrip().endswith("ok: 198; 0 FLOPs left") and "cpu_ladder_v1: 198 runs" in text
    assert cli_main(["grid", "status", str(V1), "--out", str(REPO / "data/cpu_ladder_v1")]) == 0
    text = capsys.readouterr().out
    assert "**198 of 198 runs finished** (ok: 198)" in text
    assert "on an edge (widen them, or set [sweep.extend]): none." in text
    assert text.count("| bracketed |") == 24  # 15 AdamW + 4 repeat + 5 AdamH sweeps


GRID = """
    name = "prog"
    sizes = ["u16", "u32"]
    optimizer = "adamw"
    batch_size = 8
    seq_len = 32
    seeds = [0, 1]
    [tokens]
    absolute = [12800]
    [lr]
    values = [1e-3, 2e-3, 4e-3]
"""


def test_status_of_a_grid_in_progress(tmp_path, grid_file):
    spec = load_spec(grid_file(GRID))
    out = tmp_path / "out"
    runs = {(c.meta["size"], c.config["seed"], c.config["lr"]): c for c in spec.runs}

    def finish(key, loss, status="ok", wall=10.0):
        d = store.run_dir(out, runs[key].id)
        d.mkdir(parents=True, exist_ok=True)
        store.write_json_atomic(d / "result.json", {"status": status, "final_loss": loss, "wall_s": wall})

    # u16 seed 0: best at the top LR -> EDGE high; u16 seed 1: bracketed, with a divergence
    for lr, loss in ((1e-3, 3.0), (2e-3, 2.9), (4e-3, 2.8)):
        finish(("u16", 0, lr), loss)
    for lr, loss, st in ((1e-3, 3.01, "ok"), (2e-3, 2.85, "ok"), (4e-3, None, "diverged")):
        finish(("u16", 1, lr), loss, st)
    finish(("u32", 0, 1e-3), 2.7, wall=20.0)
    assert store.try_claim(store.run_dir(out, runs[("u32", 0, 2e-3)].id), lease_s=600)  # running: us

    table = grid_table(spec, out)
    assert table["status"].value_counts().to_dict() == {"ok": 6, "pending": 4, "running": 1, "diverged": 1}
    sw = sweep_states(table).set_index(["size", "seed"])
    assert sw.loc[("u16", 0), "state"] == "EDGE high" and sw.loc[("u16", 0), "best_lr"] == 4e-3
    assert sw.loc[("u16", 1), "state"] == "bracketed" and sw.loc[("u16", 1), "diverged"] == 1
    assert sw.loc[("u32", 0), "state"] == "in progress" and sw.loc[("u32", 1), "state"] == "pending"
    # ETA: u32 measured at flops / 20 s; 5 u32 runs not finished (1 running), one worker
    u32 = runs[("u32", 0, 1e-3)].meta["flops"]
    eta, rates = eta_seconds(table, workers=1)
    assert rates["u32"] == pytest.approx(u32 / 20.0)
    assert eta == pytest.approx(5 * 20.0)
    text = status_markdown(spec, out)
    assert "**7 of 12 runs finished**" in text and "Running now: u32 adamw lr=0.002" in text
    assert "u16 D=1.28e+04 seed=0 (high)" in text and "lr=0.004: diverged" in text
    assert not math.isnan(sw.loc[("u16", 1), "best_loss"])


def test_status_writes_between_the_card_markers_and_refuses_a_card_without_them(tmp_path, capsys):
    grid = write_grid(tmp_path / "g.toml", GRID)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    card = tmp_path / "CARD.md"
    card.write_text("# card\n<!-- status:begin -->\nold\n<!-- status:end -->\ntail\n")
    assert cli_main(["grid", "status", str(grid), "--out", str(out), "--card", str(card)]) == 0
    new = card.read_text()
    assert "old" not in new and "**0 of 12 runs finished**" in new and new.endswith("<!-- status:end -->\ntail\n")
    card.write_text("# no markers\n")
    assert cli_main(["grid", "status", str(grid), "--out", str(out), "--card", str(card)]) == 2
    assert "markers" in capsys.readouterr().err
