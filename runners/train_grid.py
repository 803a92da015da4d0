"""Train an LR x N x D grid of GPT-2-style runs into OUT/runs/<id>/ (runbook: docs/runners.md).

    # 1 process (CPU or 1 GPU); several such processes may share --out
    python runners/train_grid.py runners/grids/cpu_ladder.toml --out runs/cpu [--threads 1]
    # 2 CPU processes, runs sharded dynamically (gloo; `--cpu --num_processes 2` starts only ONE)
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no runners/train_grid.py runners/grids/cpu_ladder.toml --out runs/cpu --cpu
    # 8 GPUs, runs sharded; add --ddp to train each run on all 8 instead
    accelerate launch --config_file runners/accelerate_configs/gpu8.yaml \
        runners/train_grid.py runners/grids/gpt2_ladder.toml --out runs/gpt2
    # progress (best LR per sweep, edges, ETA), then the runs table
    scalefit grid status runners/grids/cpu_ladder.toml --out runs/cpu
    scalefit collect runs/cpu -o runs/cpu.csv

Re-running the same command resumes: finished and failed runs are skipped (``--retry-failed``
re-trains failed ones), a killed run continues from its last checkpoint. An OUT begun with the
old layout (``OUT/cells/<id>/``) is resumed in place. Killing the launcher's process group stops
every worker.
"""
import sys
from pathlib import Path

try:
    from scalefit.train.shard import main
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from scalefit.train.shard import main

if __name__ == "__main__":
    raise SystemExit(main())
