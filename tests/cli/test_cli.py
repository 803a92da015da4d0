"""The CLI end to end, in-process (so the compiled model is shared with the other tests)."""

import json

import numpy as np
import pytest

from scalefit.cli.main import count, main
from scalefit.runs.synthetic import SyntheticTruth


def test_count_parses_suffixes():
    assert count("130M") == 130e6 and count("1.5B") == 1.5e9 and count("2e8") == 2e8
    with pytest.raises(Exception, match="not a number"):
        count("lots")


@pytest.mark.slow
def test_synth_check_fit_predict(tmp_path, capsys):
    runs, fit = tmp_path / "runs.csv", tmp_path / "fit.nc"
    assert main(["synth", "-o", str(runs)]) == 0
    assert main(["synth", "-o", str(runs)]) == 1  # never overwrite collected data silently
    assert main(["check", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "15 cells" in out
    assert main(["fit", str(runs), "--axis", "N", "--draws", "500", "--tune", "500", "--no-progress",
                 "-o", str(fit)]) == 0
    out = capsys.readouterr().out
    assert "P(curvature along N > 0)" in out and "r_hat" in out
    assert "law_slope_N            Normal(-0.4, 0.4)" in out and "per e-fold" in out  # priors, stated
    assert main(["predict", str(fit), "--n-params", "128M", "--n-tokens", "4e8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("lr_median", "lr_low", "lr_high", "prob", "interval_kind", "lr_decision", "baseline_lr",
                "p_curvature_positive"):
        assert key in result
    assert result["prob"] == 0.9 and result["interval_kind"] == "ETI" and result["synthetic_data"] is True
    truth = float(np.exp(SyntheticTruth().log_lr_opt(128e6, 4e8)))
    assert result["lr_low"] < truth < result["lr_high"]
    assert main(["predict", str(fit), "--n-params", "128M", "--n-tokens", "4e8"]) == 0
    assert "90% ETI" in capsys.readouterr().out
    # bad input: a batch size on a table that has one; a prior in the old z units
    assert main(["predict", str(fit), "--n-params", "128M", "--n-tokens", "4e8", "--batch-size", "1M"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one batch size (6.554e+04 tokens/step)" in err and "--batch-size" in err
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"axis": "N", "priors": {"law_curvature": {"mu": 0.0, "sigma": 0.5}}}))
    assert main(["fit", str(runs), "--config", str(old), "-o", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err
    assert "'law_curvature' is in the old standardized z units" in err and "law_curvature_N" in err


def test_check_reports_bad_rows(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("n_params,n_tokens,lr,final_loss\n1e6,1e8,0.001,3.1\n1e6,1e8,-0.002,3.0\n1e6,1e8,0.004,3.2\n")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 2" in err and "'lr'" in err


def test_check_accepts_two_optimizers_but_fit_needs_one(tmp_path, capsys):
    """A table with AdamW and AdamH sweeps is valid data; check splits the cells, a fit must choose."""
    import pandas as pd

    from scalefit.runs.synthetic import make_grid

    a = make_grid(SyntheticTruth(), seed=3).assign(optimizer="adamw")
    both = tmp_path / "both.csv"
    pd.concat([a, a.assign(optimizer="adamh", final_loss=a["final_loss"] + 0.1)]).to_csv(both, index=False)
    assert main(["check", str(both)]) == 0
    out = capsys.readouterr().out
    assert "2 optimizers" in out and "--where optimizer=adamh" in out
    n_cells = a.groupby(["n_params", "n_tokens"]).ngroups
    assert f"{2 * n_cells} cells" in out
    assert main(["fit", str(both), "--axis", "N", "-o", str(tmp_path / "f.nc")]) != 0
    assert "mixes 2 optimizers" in capsys.readouterr().err and not (tmp_path / "f.nc").exists()
    bad = a.assign(optimizer="adamh")
    bad.loc[3, "lr"] = -1.0
    pd.concat([a, bad]).to_csv(both, index=False)
    assert main(["check", str(both)]) == 1  # real problems still fail, with their row
    assert "'lr'" in capsys.readouterr().err


def test_predict_missing_file(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.nc"), "--n-params", "1e8", "--n-tokens", "1e9"]) == 2
    assert "nope.nc" in capsys.readouterr().err


def test_bundled_default_is_the_documented_generator_output():
    """data/synthetic_default/runs.csv must be exactly `scalefit synth --seed 0` (nothing edited)."""
    import pandas as pd

    from sf_testing import REPO
    from scalefit.runs.synthetic import make_grid

    shipped = pd.read_csv(REPO / "data" / "synthetic_default" / "runs.csv")
    regenerated = make_grid()
    pd.testing.assert_frame_equal(shipped, regenerated.astype(shipped.dtypes.to_dict()), check_exact=False, rtol=1e-12)
