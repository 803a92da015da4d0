"""Grid specs (TOML) -> cells with content-hash ids, parameter counts and FLOPs. No torch here.

A grid spec names an architecture ladder (``models/<name>.toml``) and the axes to sweep
(sizes x token budgets x LRs x seeds x optimizers x weight decays). See
``runners/grids/micro.toml`` for an annotated example and ``docs/runners.md`` for every field.

Parameter-counting convention (Kaplan et al. 2020): ``n_params`` is the *non-embedding* count,
i.e. every parameter of the transformer blocks and the final LayerNorm; the token embedding, the
learned position embedding and the LM head (tied or not) are excluded. ``n_params_total`` counts
every distinct parameter tensor once (a tied LM head is counted once, as the embedding).

FLOPs per training token (PaLM appendix B convention, attention included, causal mask ignored):
``6 * (n_params + d_model * vocab) + 12 * n_layer * d_model * seq_len``.

A cell id is the first 16 hex digits of the sha256 of the canonical JSON of everything that
changes the training trajectory (architecture, data, optimizer, LR, schedule, batch, steps, seed,
precision). Probe / checkpoint / logging cadences are not part of it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalefit.train.schedule import SCHEDULES

OPTIMIZERS = ("adamw", "adamh")
DATA_KINDS = ("stdlib", "tokens", "text")
PRECISIONS = ("fp32", "bf16")


class SpecError(ValueError):
    """A grid spec or ladder is invalid; the message names the file and the field."""


# --------------------------------------------------------------------------- helpers
def _err(src: str, fld: str, msg: str) -> SpecError:
    return SpecError(f"{src}: field '{fld}': {msg}")


def _check_keys(src: str, prefix: str, table: dict, allowed: set[str]) -> None:
    for k in table:
        if k not in allowed:
            name = f"{prefix}{k}"
            raise _err(src, name, f"unknown field; allowed here: {sorted(allowed)}")


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _num(src: str, fld: str, v: Any, *, positive: bool = True, integer: bool = False,
         allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(src, fld, f"expected a number, got {v!r}")
    if not math.isfinite(v):
        raise _err(src, fld, f"must be finite, got {v!r}")
    if positive and (v < 0 or (v == 0 and not allow_zero)):
        raise _err(src, fld, f"must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    if integer and int(v) != v:
        raise _err(src, fld, f"must be an integer, got {v!r}")
    return int(v) if integer else float(v)


def _round_sig(x: float, sig: int = 4) -> float:
    """Round to ``sig`` significant digits so log-spaced LRs give stable, readable ids."""
    return float(f"{x:.{sig}g}")


def canonical_hash(obj: dict) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- model counting
def count_params(d_model: int, n_layer: int, vocab_size: int, seq_len: int, *, mlp_ratio: int = 4,
                 bias: bool = False, tie_embeddings: bool = True, **_: Any) -> tuple[int, int]:
    """(non-embedding, total) parameter counts of :class:`scalefit.train.model.GPT`."""
    d, h = d_model, mlp_ratio * d_model
    ln = d * (2 if bias else 1)  # LayerNorm gain (+ bias)
    block = 2 * ln + 4 * d * d + 2 * d * h + ((4 * d + h + d) if bias else 0)
    non_emb = n_layer * block + ln
    emb = vocab_size * d + seq_len * d + (0 if tie_embeddings else vocab_size * d)
    return non_emb, non_emb + emb


def flops_per_token(n_params: int, d_model: int, n_layer: int, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs per token: 6 x (matmul params incl. LM head) + attention (PaLM convention)."""
    return 6 * (n_params + d_model * vocab_size) + 12 * n_layer * d_model * seq_len


# --------------------------------------------------------------------------- ladders
LADDER_SIZE_KEYS = {"name", "d_model", "n_layer", "n_head", "seq_len", "mlp_ratio", "bias",
                    "qk_norm", "tie_embeddings", "init_std"}
ARCH_DEFAULTS = {"seq_len": 128, "mlp_ratio": 4, "bias": False, "qk_norm": False,
                 "tie_embeddings": True, "init_std": 0.02}


@dataclass
class Ladder:
    name: str
    path: str
    sizes: dict[str, dict]  # size name -> architecture dict (defaults applied)
    description: str = ""


def _read_toml(path: Path, what: str) -> dict:
    """Parse a TOML file; a missing file or bad syntax becomes a SpecError naming the file."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None


def load_ladder(path: str | Path) -> Ladder:
    path = Path(path)
    src = str(path)
    raw = _read_toml(path, "ladder file")
    _check_keys(src, "", raw, {"name", "description", "convention", "defaults", "sizes"})
    defaults = dict(ARCH_DEFAULTS)
    d = raw.get("defaults", {})
    _check_keys(src, "defaults.", d, LADDER_SIZE_KEYS - {"name"})
    defaults.update(d)
    if not raw.get("sizes"):
        raise _err(src, "sizes", "a ladder needs at least one [[sizes]] entry")
    sizes: dict[str, dict] = {}
    for i, s in enumerate(raw["sizes"]):
        _check_keys(src, f"sizes[{i}].", s, LADDER_SIZE_KEYS)
        if "name" not in s:
            raise _err(src, f"sizes[{i}].name", "missing")
        arch = {**defaults, **{k: v for k, v in s.items() if k != "name"}}
        for k in ("d_model", "n_layer", "n_head", "seq_len", "mlp_ratio"):
            if k not in arch:
                raise _err(src, f"sizes[{i}].{k}", "missing")
            arch[k] = _num(src, f"sizes[{i}].{k}", arch[k], integer=True)
        arch["init_std"] = _num(src, f"sizes[{i}].init_std", arch["init_std"])
        if arch["d_model"] % arch["n_head"]:
            raise _err(src, f"sizes[{i}].n_head", f"d_model={arch['d_model']} is not divisible by "
                       f"n_head={arch['n_head']}")
        if s["name"] in sizes:
            raise _err(src, f"sizes[{i}].name", f"duplicate size name {s['name']!r}")
        sizes[s["name"]] = arch
    return Ladder(name=raw.get("name", path.stem), path=src, sizes=sizes,
                  description=raw.get("description", ""))


def find_ladder(ref: str, spec_path: Path) -> Path:
    """A ladder reference is a path (``*.toml``, relative to the spec file or the cwd) or a
    bare name looked up as ``models/<name>.toml`` in the spec's directory, its parents, or the cwd."""
    if ref.endswith(".toml"):
        for base in (spec_path.parent, Path.cwd()):
            if (base / ref).exists():
                return (base / ref).resolve()
        return Path(ref)
    for base in [spec_path.parent.resolve(), *spec_path.parent.resolve().parents, Path.cwd()]:
        cand = base / "models" / f"{ref}.toml"
        if cand.exists():
            return cand
    raise _err(str(spec_path), "ladder", f"no models/{ref}.toml found next to or above the spec "
               "or in the current directory; give a path ending in .toml instead")


# --------------------------------------------------------------------------- grid specs
TOP_KEYS = {"name", "description", "ladder", "sizes", "seeds", "optimizer", "weight_decay",
            "batch_size", "seq_len", "tokens", "lr", "schedule", "optim", "data", "run"}
SCHEDULE_KEYS = {"kind", "warmup", "min_ratio", "decay"}
OPTIM_KEYS = {"beta1", "beta2", "eps", "grad_clip", "adamh_adam_lr"}
DATA_KEYS = {"kind", "path", "val_path", "vocab_size", "val_fraction", "eval_tokens"}
RUN_KEYS = {"precision", "checkpoint_every", "probe_every", "probe_dense_until", "log_every",
            "divergence_factor", "lease_s", "keep_checkpoint"}
RUN_DEFAULTS = {"precision": "fp32", "checkpoint_every": 200, "probe_every": 10,
                "probe_dense_until": 20, "log_every": 10, "divergence_factor": 2.0,
                "lease_s": 600.0, "keep_checkpoint": False}


@dataclass
class Cell:
    """One training run: ``config`` fixes the trajectory (and the id), ``run`` the cadences,
    ``meta`` derived facts (sizes, counts, FLOPs)."""
    id: str
    config: dict
    run: dict
    meta: dict

    def as_dict(self) -> dict:
        return {"cell_id": self.id, "config": self.config, "run": self.run, "meta": self.meta}


@dataclass
class GridSpec:
    name: str
    path: str
    ladder: Ladder
    cells: list[Cell] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def _lr_values(src: str, fld: str, t: Any) -> list[float]:
    if isinstance(t, list):
        vals = [_num(src, fld, v) for v in t]
    elif isinstance(t, dict):
        _check_keys(src, f"{fld}.", t, {"values", "min", "max", "per_octave"} | set(OPTIMIZERS))
        if "values" in t:
            if {"min", "max", "per_octave"} & set(t):
                raise _err(src, fld, "give either 'values' or 'min'/'max'/'per_octave', not both")
            vals = [_num(src, f"{fld}.values", v) for v in _as_list(t["values"])]
        elif "min" in t or "max" in t:
            for k in ("min", "max"):
                if k not in t:
                    raise _err(src, f"{fld}.{k}", "missing (a range needs min, max, per_octave)")
            lo, hi = _num(src, f"{fld}.min", t["min"]), _num(src, f"{fld}.max", t["max"])
            per = _num(src, f"{fld}.per_octave", t.get("per_octave", 2))
            if hi < lo:
                raise _err(src, f"{fld}.max", f"max={hi} is below min={lo}")
            n = int(round(math.log2(hi / lo) * per)) + 1
            vals = [_round_sig(lo * 2 ** (i / per)) for i in range(n)]
        else:
            return []
    else:
        raise _err(src, fld, "expected a list of LRs or a table with values or min/max/per_octave")
    if not vals:
        raise _err(src, fld, "no learning rates given")
    return vals


def load_spec(path: str | Path) -> GridSpec:
    """Parse and validate a grid spec, then expand it into cells."""
    path = Path(path)
    return expand(_read_toml(path, "grid spec"), path)


def expand(raw: dict, path: Path) -> GridSpec:
    src = str(path)
    _check_keys(src, "", raw, TOP_KEYS)
    for req in ("ladder", "tokens", "lr", "batch_size"):
        if req not in raw:
            raise _err(src, req, "missing (required)")
    ladder = load_ladder(find_ladder(str(raw["ladder"]), path))

    sizes = _as_list(raw.get("sizes", list(ladder.sizes)))
    for s in sizes:
        if s not in ladder.sizes:
            raise _err(src, "sizes", f"{s!r} is not in ladder {ladder.name!r} "
                       f"(has {list(ladder.sizes)})")
    seeds = [_num(src, "seeds", s, integer=True, allow_zero=True) for s in _as_list(raw.get("seeds", [0]))]
    optimizers = _as_list(raw.get("optimizer", ["adamw"]))
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise _err(src, "optimizer", f"{o!r} is not one of {OPTIMIZERS}")
    wds = [_num(src, "weight_decay", w, allow_zero=True) for w in _as_list(raw.get("weight_decay", [0.1]))]
    batch_size = _num(src, "batch_size", raw["batch_size"], integer=True)
    seq_override = raw.get("seq_len")
    if seq_override is not None:
        seq_override = _num(src, "seq_len", seq_override, integer=True)

    tok = raw["tokens"]
    if not isinstance(tok, dict):
        raise _err(src, "tokens", "expected a table with 'absolute' or 'per_param'")
    _check_keys(src, "tokens.", tok, {"absolute", "per_param"})
    if ("absolute" in tok) == ("per_param" in tok):
        raise _err(src, "tokens", "give exactly one of 'absolute' (tokens) or 'per_param' (tokens per "
                   "non-embedding parameter)")
    tkind = "absolute" if "absolute" in tok else "per_param"
    budgets = [_num(src, f"tokens.{tkind}", v) for v in _as_list(tok[tkind])]

    lr_raw = raw["lr"]
    lr_default = _lr_values(src, "lr", lr_raw)
    lr_by_opt = {}
    for o in optimizers:
        if isinstance(lr_raw, dict) and o in lr_raw:
            lr_by_opt[o] = _lr_values(src, f"lr.{o}", lr_raw[o])
        elif lr_default:
            lr_by_opt[o] = lr_default
        else:
            raise _err(src, "lr", f"no LRs for optimizer {o!r}: give lr.values, lr.min/max or lr.{o}")

    sch = {"kind": "cosine", "warmup": 0.0, "min_ratio": 0.1, "decay": 0.2, **raw.get("schedule", {})}
    _check_keys(src, "schedule.", sch, SCHEDULE_KEYS)
    if sch["kind"] not in SCHEDULES:
        raise _err(src, "schedule.kind", f"{sch['kind']!r} is not one of {SCHEDULES}")
    warm = _num(src, "schedule.warmup", sch["warmup"], allow_zero=True)
    min_ratio = _num(src, "schedule.min_ratio", sch["min_ratio"], allow_zero=True)
    if min_ratio > 1:
        raise _err(src, "schedule.min_ratio", f"must be in [0, 1], got {min_ratio}")
    decay = _num(src, "schedule.decay", sch["decay"])
    if decay > 1:
        raise _err(src, "schedule.decay", f"is a fraction of the steps, must be in (0, 1], got {decay}")

    opt = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "grad_clip": 1.0, "adamh_adam_lr": 3e-3,
           **raw.get("optim", {})}
    _check_keys(src, "optim.", opt, OPTIM_KEYS)
    for k in ("beta1", "beta2"):
        if not 0 <= _num(src, f"optim.{k}", opt[k], allow_zero=True) < 1:
            raise _err(src, f"optim.{k}", f"must be in [0, 1), got {opt[k]}")
    _num(src, "optim.eps", opt["eps"])
    _num(src, "optim.grad_clip", opt["grad_clip"], allow_zero=True)  # 0 = no clipping
    _num(src, "optim.adamh_adam_lr", opt["adamh_adam_lr"])

    data = {"kind": "stdlib", "path": None, "val_path": None, "vocab_size": None,
            "val_fraction": 0.01, "eval_tokens": 65536, **raw.get("data", {})}
    _check_keys(src, "data.", data, DATA_KEYS)
    if data["kind"] not in DATA_KINDS:
        raise _err(src, "data.kind", f"{data['kind']!r} is not one of {DATA_KINDS}")
    if data["kind"] != "stdlib" and not data["path"]:
        raise _err(src, "data.path", f"required for data.kind = {data['kind']!r}")
    if data["kind"] == "tokens":
        data["vocab_size"] = _num(src, "data.vocab_size", data["vocab_size"] or 50304, integer=True)
    else:
        if data["vocab_size"] not in (None, 256):
            raise _err(src, "data.vocab_size", "byte-level corpora (stdlib, text) have vocab 256")
        data["vocab_size"] = 256
    vf = _num(src, "data.val_fraction", data["val_fraction"])
    if vf >= 0.5:
        raise _err(src, "data.val_fraction", f"must be < 0.5, got {vf}")
    data["eval_tokens"] = _num(src, "data.eval_tokens", data["eval_tokens"], integer=True)

    run = {**RUN_DEFAULTS, **raw.get("run", {})}
    _check_keys(src, "run.", run, RUN_KEYS)
    if run["precision"] not in PRECISIONS:
        raise _err(src, "run.precision", f"{run['precision']!r} is not one of {PRECISIONS}")
    for k in ("checkpoint_every", "probe_every", "probe_dense_until"):
        run[k] = _num(src, f"run.{k}", run[k], integer=True, allow_zero=True)
    run["log_every"] = _num(src, "run.log_every", run["log_every"], integer=True)
    run["divergence_factor"] = _num(src, "run.divergence_factor", run["divergence_factor"])
    run["lease_s"] = _num(src, "run.lease_s", run["lease_s"])
    precision = run.pop("precision")

    cells: list[Cell] = []
    seen: set[str] = set()
    for size, budget, o, seed in itertools.product(sizes, budgets, optimizers, seeds):
        arch = dict(ladder.sizes[size])
        if seq_override:
            arch["seq_len"] = seq_override
        n_params, n_total = count_params(vocab_size=data["vocab_size"], **arch)
        tokens_per_step = batch_size * arch["seq_len"]
        want = budget if tkind == "absolute" else budget * n_params
        steps = max(1, round(want / tokens_per_step))
        warmup = int(round(warm * steps)) if warm < 1 else int(warm)
        if warmup >= steps:
            raise _err(src, "schedule.warmup", f"{warmup} warmup steps >= {steps} total steps for size "
                       f"{size!r} at {want:.3g} tokens; lower the warmup or raise the budget")
        for lr, wd in itertools.product(lr_by_opt[o], wds if o == "adamw" else [0.0]):
            config = {
                "model": {k: arch[k] for k in sorted(arch)},
                "data": {k: data[k] for k in ("kind", "path", "val_path", "vocab_size",
                                              "val_fraction", "eval_tokens")},
                "optimizer": o, "lr": lr, "weight_decay": wd,
                "betas": [opt["beta1"], opt["beta2"]], "eps": opt["eps"],
                "grad_clip": opt["grad_clip"],
                "adam_lr": opt["adamh_adam_lr"] if o == "adamh" else None,
                "schedule": {"kind": sch["kind"], "warmup": warmup, "min_ratio": min_ratio,
                             "decay": decay},
                "batch_size": batch_size, "steps": steps, "seed": seed, "precision": precision,
            }
            cid = canonical_hash(config)
            if cid in seen:  # e.g. the same LR listed twice
                continue
            seen.add(cid)
            n_tokens = steps * tokens_per_step
            meta = {"grid": raw.get("name", path.stem), "ladder": ladder.name, "size": size,
                    "n_params": n_params, "n_params_total": n_total, "n_tokens": n_tokens,
                    "tokens_per_step": tokens_per_step,
                    "tokens_per_param": n_tokens / n_params,
                    "flops": flops_per_token(n_params, arch["d_model"], arch["n_layer"],
                                             data["vocab_size"], arch["seq_len"]) * n_tokens}
            cells.append(Cell(id=cid, config=config, run=dict(run), meta=meta))
    return GridSpec(name=raw.get("name", path.stem), path=src, ladder=ladder, cells=cells, raw=raw)
