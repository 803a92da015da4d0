"""`scalefit collect` and `scalefit grid plan` (torch-free), and the runs-table contract."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from runner_helpers import REPO

from scalefit.cli.main import main as cli_main
from scalefit.runs.harvest import CONTRACT_COLUMNS, collect_runs
from scalefit.grids import store
from scalefit.grids.spec import load_spec


def _fake_out(tmp_path):
    """Result files as the runner writes them, for three LRs, one diverged and one failed."""
    out = tmp_path / "out"
    rows = []
    for i, (lr, status, loss) in enumerate([(1e-3, "ok", 3.1), (3e-3, "ok", 3.0), (1e-2, "ok", 3.2),
                                            (1e-1, "diverged", None), (3e-2, "failed", None)]):
        r = dict(run_id=f"{i:016x}", status=status, n_params=24736, n_params_total=33952,
                 n_tokens=25600, batch_size=256, lr=lr, eff_lr=None if loss is None else 10 * lr,
                 weight_decay=0.1, optimizer="adamw", schedule="cosine", warmup=10, seed=0,
                 final_loss=loss, loss_kind="val", train_loss_smoothed=loss, steps=100,
                 traceback="long text" if status == "failed" else None, wall_s=1.0)
        d = out / "runs" / r["run_id"]
        d.mkdir(parents=True)
        store.write_json_atomic(d / "result.json", r)
        rows.append(r)
    (out / "runs" / "ffffffffffffffff").mkdir()  # a pending run: not a row
    return out


def test_collect_writes_contract_columns(tmp_path, capsys):
    out = _fake_out(tmp_path)
    for name in ("runs.csv", "runs.parquet"):
        assert cli_main(["collect", str(out), "-o", str(tmp_path / name)]) == 0
        df = pd.read_csv(tmp_path / name) if name.endswith("csv") else pd.read_parquet(tmp_path / name)
        assert list(df.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
        assert len(df) == 5 and df.run_id.is_unique and "traceback" not in df
        assert sorted(df.status) == ["diverged", "failed", "ok", "ok", "ok"]
        assert np.isnan(df.loc[df.status == "diverged", "final_loss"]).all()
    assert "wrote 5 runs" in capsys.readouterr().out
    assert cli_main(["collect", str(out), "-o", str(tmp_path / "runs.xlsx")]) == 2
    assert cli_main(["collect", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r.csv")]) == 2
    assert "no runs/ directory" in capsys.readouterr().err


def test_collected_table_loads_in_the_fit_side(tmp_path):
    grid = pytest.importorskip("scalefit.runs.table")
    out = _fake_out(tmp_path)
    df = collect_runs(out)
    df = df[df.status != "failed"]
    df.to_csv(tmp_path / "runs.csv", index=False)
    runs = grid.load_runs(tmp_path / "runs.csv", where={"optimizer": "adamw"})
    assert len(runs.runs) == 4


def test_grid_plan_lists_runs_flops_and_status(tmp_path, capsys):
    spec = load_spec(REPO / "runners/grids/micro.toml")
    out = tmp_path / "out"
    done = spec.runs[0]
    d = store.run_dir(out, done.id)
    d.mkdir(parents=True)
    store.write_json_atomic(d / "result.json", {"status": "ok"})
    assert cli_main(["grid", "plan", str(REPO / "runners/grids/micro.toml"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(c.id in text for c in spec.runs)
    line = next(ln for ln in text.splitlines() if done.id in ln)
    assert line.split()[-1] == "ok" and f"{done.meta['flops']:.3g}" in line
    assert "pending: 5" in text and "ok: 1" in text
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "runners/grids/micro.toml").read_text().replace("batch_size = 8", "batch_size = 0"))
    assert cli_main(["grid", "plan", str(bad)]) == 2
    assert "field 'batch_size'" in capsys.readouterr().err


def test_fit_side_modules_do_not_import_torch():
    code = ("import sys, scalefit.runs.harvest, scalefit.cli.grid, scalefit.grids.spec, "
            "scalefit.grids.store, scalefit.grids.schedule; "
            "assert 'torch' not in sys.modules and 'accelerate' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_result_json_is_strict_json(tmp_path):
    store.write_json_atomic(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: 1 / 0) == \
        {"a": None, "b": [None, 1.0]}
