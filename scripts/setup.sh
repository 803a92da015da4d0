#!/usr/bin/env bash
# Create .venv with Python 3.12 and install scalefit with the given extras (idempotent).
#   scripts/setup.sh            core + dev (fitting, CLI, notebooks)
#   scripts/setup.sh train      also torch + accelerate (the runners)
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for cand in "${PYTHON:-}" python3.12 "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/3.12"*/bin/python3.12)"; do
    [ -n "$cand" ] || continue
    for p in $cand; do
      if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo "$p"; return 0; fi
    done
  done
  echo "scalefit needs Python 3.12 (PyMC 6 / ArviZ 1.x); set PYTHON=/path/to/python3.12" >&2
  return 1
}

extras="dev${1:+,$1}"
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-12)-${extras//,/_}"
if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
if [ ! -f "$stamp" ]; then
  if [[ "$extras" == *train* ]]; then
    # torch first and pinned: accelerate would otherwise pull a newer (CUDA) torch
    .venv/bin/pip install --quiet "torch==2.13.0"
  fi
  .venv/bin/pip install --quiet -e ".[${extras}]"
  touch "$stamp"
fi
