"""Runner speed: tokens/s of `training_function` against a minimal plain-torch loop of the same
model, in the same process, plus the weight-norm probe's overhead (and MFU on a GPU).

    python benchmarks/runner_speed.py                         # CPU: cpu ladder's c96 (0.33M params)
    python benchmarks/runner_speed.py --threads 1             # one thread, as under 2-process launch
    python benchmarks/runner_speed.py --ladder gpt2 --size g85m --batch 32 --precision bf16 --steps 60
                                                               # GPU: ~85M non-emb (124M total), MFU

Runs are interleaved (plain, runner with probe, runner without probe) `--repeats` times and the
best and median tokens/s are reported (the best is the least disturbed by other load). Every
variant times all its steps, the first included. What to look for: runner/plain close to 1 with
the probe on (the runner adds little to nanoGPT's loop), and a high MFU with bf16 on a GPU.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scalefit.train.run import RunContext, training_function
from scalefit.train.corpus import load_corpus
from scalefit.train.gpt import GPT, GPTConfig
from scalefit.grids.spec import expand, flops_per_token

REPO = Path(__file__).resolve().parent.parent
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks


def make_run(a, probe_every: int) -> dict:
    raw = {"ladder": str(REPO / "models" / f"{a.ladder}.toml"), "sizes": [a.size], "optimizer": a.optimizer,
           "batch_size": a.batch, "tokens": {"absolute": [a.steps * a.batch * a.seq_len]},
           "lr": {"values": [a.lr]}, "seq_len": a.seq_len, "schedule": {"kind": "cosine", "warmup": 0},
           "data": {"kind": "stdlib", "eval_tokens": a.seq_len},  # eval is outside the timed loop
           "run": {"precision": a.precision, "probe_every": probe_every, "probe_dense_until": 0,
                   "checkpoint_every": 0, "log_every": 10}}
    (run,) = expand(raw, REPO / "benchmarks" / "runner_speed.toml").runs
    return run.as_dict()


def plain_loop(run: dict, device) -> float:
    """nanoGPT's loop, nothing else: same model, batches, AdamW, clipping and autocast."""
    cfg = cfg_ = run["config"]
    corpus = load_corpus(cfg["data"])
    torch.manual_seed(cfg["seed"])
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, **cfg["model"])).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg_["lr"], betas=cfg["betas"], weight_decay=0.1)
    bsz, seq = cfg["batch_size"], cfg["model"]["seq_len"]
    ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg["precision"] == "bf16")
    t0 = time.perf_counter()
    for step in range(cfg["steps"]):
        xb, yb = corpus.batch(step, cfg["seed"], bsz, seq)
        x, y = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
        with ctx:
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    float(loss.detach())  # wait for the device
    return cfg["steps"] * bsz * seq / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ladder", default="cpu")
    p.add_argument("--size", default="c96")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--probe-every", type=int, default=10)
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on, off = make_run(a, a.probe_every), make_run(a, 0)
    m = on["config"]["model"]
    print(f"device={device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}) "
          f"size={a.size} n_params={on['meta']['n_params']:,} total={on['meta']['n_params_total']:,} "
          f"batch={a.batch}x{a.seq_len} steps={a.steps} precision={a.precision} probe_every={a.probe_every}")
    # warm-up every path once (allocator, kernels, corpus, the probe's float64 ops)
    warm = argparse.Namespace(**{**vars(a), "steps": 5})
    plain_loop(make_run(warm, 0), device)
    with tempfile.TemporaryDirectory() as d:
        training_function(make_run(warm, 1), RunContext(run_dir=Path(d)))
    res = {"plain": [], "runner+probe": [], "runner-probe": [], "probe_share": []}
    for _ in range(a.repeats):
        res["plain"].append(plain_loop(off, device))
        with tempfile.TemporaryDirectory() as d:
            r = training_function(on, RunContext(run_dir=Path(d)))
            res["runner+probe"].append(r["train_tokens_per_s"])
            res["probe_share"].append(r["probe_s"] / r["train_s"])
        with tempfile.TemporaryDirectory() as d:
            res["runner-probe"].append(training_function(off, RunContext(run_dir=Path(d)))["train_tokens_per_s"])
    med = {k: statistics.median(v) for k, v in res.items()}
    best = {k: max(v) for k, v in res.items()}  # least disturbed by other load on a shared machine
    for k in ("plain", "runner+probe", "runner-probe"):
        print(f"{k:>14}: best {best[k]:10,.0f}  median {med[k]:10,.0f} tokens/s   "
              f"(runs: {', '.join(f'{v:,.0f}' for v in res[k])})")
    for k in ("runner+probe", "runner-probe"):
        print(f"ratio {k} / plain: best {best[k] / best['plain']:.3f}, median {med[k] / med['plain']:.3f}"
              + ("   (target >= 0.95)" if k == "runner+probe" else ""))
    print(f"probe time / train time: {100 * med['probe_share']:.2f}% (median; every {a.probe_every} steps"
          f"); throughput cost best-vs-best "
          f"{100 * (1 - best['runner+probe'] / best['runner-probe']):.1f}%")
    if device.type == "cuda":
        fpt = flops_per_token(on["meta"]["n_params"], m["d_model"], m["n_layer"], on["config"]["data"]["vocab_size"],
                              m["seq_len"])
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        for k in ("plain", "runner+probe"):
            achieved = fpt * med[k]
            print(f"MFU {k:>13}: {achieved / 1e12:.1f} TFLOP/s" +
                  (f" = {100 * achieved / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16 peak (target >= 45%)" if peak else ""))


if __name__ == "__main__":
    main()
