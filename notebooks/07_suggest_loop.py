# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which runs to buy next: `scalefit suggest`, and the loop closed on real runs
#
# After a fit, the question is: *the interval at my target is too wide; which small runs should I
# train next, and how much will they help?* This notebook answers it on the bundled grid
# (`data/cpu_ladder_v1`, AdamW, joint N,D law, target N = 2M, D = 4M):
#
# 1. fit and predict the target;
# 2. `Fit.suggest`: every `models/cpu.toml` size at the fitted token budgets and at twice the
#    largest, scored by the expected shrinkage of the target's 90% interval per FLOP (a
#    linearized preposterior analysis: `scalefit/suggest.py`), within 3e13 FLOPs; write the batch
#    as a runnable grid spec and plan it;
# 3. the runs of that batch, collected with the runners (`data/cpu_ladder_v1_suggested`: 8 runs of
#    c48 at 4M tokens on a lent GPU, since they take ~25 CPU-minutes here, plus two seed repeats);
# 4. refit with them and compare the interval before, expected, and after.
#
# `SCALEFIT_FAST=1` samples fewer draws (smoke test).

# %%
# %matplotlib inline
import tempfile
import tomllib
import sys
from pathlib import Path

sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
from nbsetup import FAST, ROOT, settings  # noqa: E402

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scalefit import ModelConfig, fit_runs, load_runs
from scalefit.report.text import prediction_report
from scalefit.design.suggest import candidates_from_ladder, default_tokens, format_suggestion, suggest
from scalefit.design.spec_writer import write_spec
from scalefit.grids.spec import load_ladder, load_spec

SETTINGS = settings()
V1 = ROOT / "data" / "cpu_ladder_v1" / "runs.csv"
BASE_SPEC = ROOT / "runners" / "grids" / "cpu_ladder_v1.toml"
NEW = ROOT / "data" / "cpu_ladder_v1_suggested" / "runs.csv"
TARGET = (2e6, 4e6)
BUDGET = 3e13
CONFIG = ModelConfig(axis="ND")

# %% [markdown]
# ## 1. Fit and predict the target

# %%
fit = fit_runs(load_runs(V1, where={"optimizer": "adamw"}), CONFIG, SETTINGS)
before = fit.predict(*TARGET)
print(prediction_report(before))

# %% [markdown]
# ## 2. Suggest, write the spec, plan it
# Candidates: every ladder size at the fitted budgets and at twice the largest (4M tokens), each
# with a window of lattice LRs covering its predicted optimum's 90% interval plus a step each
# side, and its FLOPs as the runners count them. The LR lattice is the one the grid was collected
# on, so suggested LRs coincide with collected ones.

# %%
lattice = tomllib.loads(BASE_SPEC.read_text())["lr_lattice"]
candidates = candidates_from_ladder(load_ladder(ROOT / "models" / "cpu.toml"), default_tokens(fit))
suggestion = suggest(fit, *TARGET, budget=BUDGET, candidates=candidates, lattice=lattice)
print(format_suggestion(suggestion))
suggestion.table()

# %%
spec_file = Path(tempfile.mkdtemp()) / "next.toml"
write_spec(suggestion, spec_file, base_spec=BASE_SPEC, ladder=ROOT / "models" / "cpu.toml",
           optimizer="adamw", weight_decay=0.1)
planned = load_spec(spec_file).runs
print(f"{spec_file.name}: {len(planned)} runs, {sum(c.meta['flops'] for c in planned):.3g} FLOPs")
for c in planned:
    print(f"  {c.meta['size']} D={c.meta['n_tokens']:.3g} lr={c.config['lr']:.4g} steps={c.config['steps']}")
shipped = [c for c in load_spec(ROOT / "runners" / "grids" / "cpu_ladder_v1_suggested.toml").runs
           if c.config["seed"] == 0]
same = sorted(c.id for c in planned) == sorted(c.id for c in shipped if c.meta["lr_k"] != 4)
print("the batch collected in data/cpu_ladder_v1_suggested (seed 0, less the runner's extension) is "
      + ("this one" if same else "the one a full-settings fit suggested (this run's draws chose differently)"))

# %% [markdown]
# ## 3. The collected batch
# The fit predicted c48's optimum at 4M tokens from its rise with D at 0.5M-2M. The runs put it
# lower: the runner extended the window by one LR below (its best LR sat on the low edge), and two
# seed repeats confirm the valley.

# %%
new = pd.read_csv(NEW)
cell = fit.predict(55536, 4001792)  # the new cell as the fit saw it before its runs existed
fig, ax = plt.subplots(figsize=(6.5, 4))
for seed, g in new.groupby("seed"):
    g = g.sort_values("lr")
    ax.plot(g["lr"], g["final_loss"], "o-", alpha=1.0 if seed == 0 else 0.45,
            label=f"seed {seed}" + (" (the suggested batch)" if seed == 0 else " (repeat)"))
ax.axvspan(cell.lr_low, cell.lr_high, color="C3", alpha=0.12, label="fit's 90% interval for this cell")
ax.axvline(cell.lr_median, color="C3", lw=1)
ax.set_xscale("log")
ax.set_xlabel("learning rate")
ax.set_ylabel("final validation loss (nats/byte)")
ax.set_title("c48 at 4M tokens: the cell suggest bought")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4. Refit with the suggested batch, compare the target's interval

# %%
seed0 = new[new["seed"] == 0]
both = pd.concat([pd.read_csv(V1), seed0], ignore_index=True)
after_fit = fit_runs(load_runs(both, where={"optimizer": "adamw"}), CONFIG, SETTINGS)
after = after_fit.predict(*TARGET)
rows = [("before", before.lr_median, before.lr_low, before.lr_high),
        ("expected (suggest)", suggestion.lr_median, *suggestion.interval_after),
        ("after refit", after.lr_median, after.lr_low, after.lr_high)]
frame = pd.DataFrame(rows, columns=["fit", "median", "lo90", "hi90"])
frame["width_decades"] = np.log10(frame["hi90"] / frame["lo90"])
print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

fig, ax = plt.subplots(figsize=(6.5, 2.6))
for i, (name, med, lo, hi) in enumerate(rows):
    ax.plot([lo, hi], [i, i], lw=6, alpha=0.5, color=f"C{i}")
    ax.plot(med, i, "k|", ms=14)
ax.set_yticks(range(len(rows)), [r[0] for r in rows])
ax.set_xscale("log")
ax.set_xlabel(f"optimal LR at N = {TARGET[0]:.0e}, D = {TARGET[1]:.0e} (90% ETI)")
plt.tight_layout()
plt.show()
