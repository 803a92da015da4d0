#!/usr/bin/env bash
# Main job: fit the bundled default grid and print the credible interval at the target scale.
# The bundled default is cpu_ladder_v1: real AdamW/AdamH sweeps our runners collected on this
# 2-core CPU (data/cpu_ladder_v1/DATA_CARD.md). The fit uses its AdamW runs (all seeds) with the
# joint N,D law, and predicts the next rung: ~2x the largest model (c128, 0.98M) at 2x its largest
# token budget (2M).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SCALEFIT_CACHE="${SCALEFIT_CACHE:-$PWD/.cache}"
RUNS=data/cpu_ladder_v1/runs.csv
mkdir -p out
.venv/bin/scalefit check "$RUNS"
.venv/bin/scalefit fit "$RUNS" --where optimizer=adamw --axis ND --no-progress -o out/default_fit.nc
.venv/bin/scalefit predict out/default_fit.nc --n-params 2M --n-tokens 4M
