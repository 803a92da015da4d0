#!/usr/bin/env bash
# Set up (with the runner extra) and run every test, slow sampling tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh train
export SCALEFIT_CACHE="${SCALEFIT_CACHE:-$PWD/.cache}"
exec .venv/bin/python -m pytest -q "$@"
