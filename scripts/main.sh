#!/usr/bin/env bash
# Main job: fit the bundled default grid and print the credible interval at the target scale.
# The bundled default is SYNTHETIC (scalefit synth --seed 0) until our runners ship a real grid.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SCALEFIT_CACHE="${SCALEFIT_CACHE:-$PWD/.cache}"
RUNS=data/synthetic_default/runs.csv
mkdir -p out
.venv/bin/scalefit check "$RUNS"
.venv/bin/scalefit fit "$RUNS" --axis N -o out/default_fit.nc
# target: 4x the largest swept model, at the middle token budget
.venv/bin/scalefit predict out/default_fit.nc --n-params 128M --n-tokens 400M
