"""Aggregate training throughput of K concurrent runner processes on the CPU or on one GPU.

    python benchmarks/device_throughput.py --device cpu --procs 16 --size c128 --steps 60
    python benchmarks/device_throughput.py --device cuda --procs 12 --size c128 --steps 400

Each worker is a separate process (as `runners/train_grid.py` workers sharing --out are) running
`training_function` (the runner's own loop: AdamW, grad clip, per-step probe, WSD schedule, fp32,
TF32 off) on one run of `--steps` steps, 1 torch thread. Workers start together; the figure is
sum(steps) / mean(train_s) (train_s: the training loop's own clock, CUDA init and the final eval
excluded), i.e. steps/s of the whole machine in that mode, plus tokens/s and FLOP/s.
Used to choose where to collect cpu_ladder_v2_h100 (data/cpu_ladder_v2_h100/DATA_CARD.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_run(size: str, steps: int, lr: float, wd: float) -> dict:
    sys.path.insert(0, str(REPO))
    from scalefit.grids.spec import expand

    raw = {"ladder": str(REPO / "models" / "cpu.toml"), "sizes": [size], "optimizer": "adamw",
           "weight_decay": wd, "batch_size": 16, "tokens": {"absolute": [steps * 16 * 128]},
           "lr": {"values": [lr]}, "schedule": {"kind": "wsd", "warmup": 0.05, "decay": 0.2},
           "optim": {"beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0},
           "data": {"kind": "stdlib", "eval_tokens": 128},
           "run": {"precision": "fp32", "probe_every": 20, "checkpoint_every": 0, "log_every": 10}}
    (run,) = expand(raw, REPO / "benchmarks" / "device_throughput.toml").runs
    return run.as_dict()


def worker(a) -> None:
    import torch

    torch.set_num_threads(1)
    from scalefit.train.run import RunContext, training_function

    with tempfile.TemporaryDirectory() as d:
        r = training_function(make_run(a.size, a.steps, 2e-3, 1.0), RunContext(run_dir=Path(d)))
    print(json.dumps({"train_s": r["train_s"], "steps": r["steps"], "device": r["device"],
                      "flops": r["flops"], "loss": r["final_loss"]}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--size", default="c128")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if a.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, __file__, "--worker", "--size", a.size, "--steps", str(a.steps)],
                           env=env, stdout=subprocess.PIPE, text=True) for _ in range(a.procs)]
    outs = [json.loads(pr.communicate()[0].strip().splitlines()[-1]) for pr in ps]
    wall = time.perf_counter() - t0
    mean_s = sum(o["train_s"] for o in outs) / len(outs)
    steps = sum(o["steps"] for o in outs)
    per_step_flops = outs[0]["flops"] / outs[0]["steps"]
    res = {"device": outs[0]["device"], "procs": a.procs, "size": a.size, "steps_each": a.steps,
           "mean_train_s": round(mean_s, 2), "wall_s": round(wall, 1),
           "steps_per_s": round(steps / mean_s, 1), "tokens_per_s": round(steps / mean_s * 2048),
           "gflop_per_s": round(steps / mean_s * per_step_flops / 1e9, 1),
           "per_proc_steps_per_s": round(a.steps / mean_s, 2)}
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
