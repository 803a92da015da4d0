#!/bin/bash
# Train a grid on a Slurm cluster: one task per node, each node runs `accelerate launch` with
# its 8 GPUs; all nodes share --out (a shared filesystem) and claim runs from it.
#   sbatch runners/slurm_train.sh runners/grids/gpt2_ladder.toml /shared/runs/gpt2
# Resubmitting the same command resumes: finished runs are skipped, killed runs continue from
# their last checkpoint (a claim whose heartbeat is older than run.lease_s is taken over).
#SBATCH --job-name=scalefit-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one launcher per node; it starts the GPU processes
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
GRID=${1:?usage: sbatch runners/slurm_train.sh GRID.toml OUT_DIR [--ddp]}
OUT=${2:?usage: sbatch runners/slurm_train.sh GRID.toml OUT_DIR [--ddp]}
shift 2
GPUS_PER_NODE=8
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=29500
export OMP_NUM_THREADS=8
# Single quotes: \$SLURM_NODEID / \$SLURM_PROCID must expand on each node inside srun, not here.
srun --kill-on-bad-exit=1 bash -c 'accelerate launch \
    --multi_gpu --num_machines '"$SLURM_NNODES"' --num_processes '"$((SLURM_NNODES * GPUS_PER_NODE))"' \
    --machine_rank $SLURM_NODEID --main_process_ip '"$MASTER_ADDR"' --main_process_port '"$MASTER_PORT"' \
    --rdzv_backend static --mixed_precision no --dynamo_backend no \
    runners/train_grid.py '"$GRID"' --out '"$OUT"' --no-progress '"$*"''
