"""Grid specs (TOML) -> runs with content-hash ids, parameter counts and FLOPs. No torch here.

A grid spec names an architecture ladder (``models/<name>.toml``), the settings every run shares
(batch, schedule, optimizer constants, data, cadences) and what to sweep. The sweep is either the
top level itself (one product: sizes x token budgets x LRs x seeds x optimizers x weight decays)
or any number of ``[[sweep]]`` blocks, each a product of its own over the top level's defaults;
their runs are unioned and de-duplicated by id. LRs may sit on a lattice indexed by an integer k
(``[lr_lattice]``), so ids do not move when a window does; ``[[sweep.window]]`` sets the k range
per (size[, budget]); ``[sweep.extend]`` lets the runner widen a window whose best LR lands on its
edge (:mod:`scalefit.grids.brackets`). See ``runners/grids/micro.toml`` (one product),
``runners/grids/cpu_ladder_v1.toml`` (sweep blocks) and ``docs/runners.md`` for every field.

Parameter-counting convention (Kaplan et al. 2020): ``n_params`` is the *non-embedding* count,
i.e. every parameter of the transformer blocks and the final LayerNorm; the token embedding, the
learned position embedding and the LM head (tied or not) are excluded. ``n_params_total`` counts
every distinct parameter tensor once (a tied LM head is counted once, as the embedding).

FLOPs per training token (PaLM appendix B convention, attention included, causal mask ignored):
``6 * (n_params + d_model * vocab) + 12 * n_layer * d_model * seq_len``.

A run id is the first 16 hex digits of the sha256 of the canonical JSON of everything that
changes the training trajectory (architecture, data, optimizer, LR, schedule, batch, steps, seed,
precision). Probe / checkpoint / logging cadences are not part of it.

Examples
--------
>>> from scalefit.grids.spec import load_spec
>>> spec = load_spec("runners/grids/micro.toml")  # doctest: +SKIP
>>> [(r.id, r.meta["size"], r.config["lr"]) for r in spec.ordered()][:2]  # doctest: +SKIP
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

from scalefit.grids.schedule import SCHEDULES

__all__ = ["SpecError", "Ladder", "load_ladder", "find_ladder", "Run", "Sweep", "GridSpec", "load_spec",
           "expand", "sweep_runs", "window_of", "lattice_lr", "count_params", "flops_per_token",
           "canonical_hash", "OPTIMIZERS", "DATA_KINDS", "PRECISIONS", "ORDERS", "SWEEP_KEYS",
           "ARCH_DEFAULTS", "RUN_DEFAULTS", "LATTICE_DEFAULTS", "EXTEND_DEFAULTS",
           "DECAY_EMBEDDINGS_DEFAULT"]

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
    """The run id of a config: 16 hex digits of the sha256 of its canonical JSON.

    Keys are sorted and separators fixed, so equal configs hash alike whatever their key order.

    Parameters
    ----------
    obj : dict
        A JSON-serialisable config (a run's ``config``).

    Returns
    -------
    str
        The first 16 hex digits of the digest.
    """
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- model counting
def count_params(d_model: int, n_layer: int, vocab_size: int, seq_len: int, *, mlp_ratio: int = 4,
                 bias: bool = False, tie_embeddings: bool = True, **_: Any) -> tuple[int, int]:
    """Parameter counts of :class:`scalefit.train.gpt.GPT`, without building it.

    Parameters
    ----------
    d_model, n_layer : int
        Width and depth.
    vocab_size : int
        Vocabulary size (the embedding and an untied LM head).
    seq_len : int
        Context length (the learned position embedding).
    mlp_ratio : int, default 4
        MLP hidden width over ``d_model``.
    bias : bool, default False
        Whether the Linear layers and LayerNorms have biases.
    tie_embeddings : bool, default True
        Whether the LM head is the token embedding.
    **_
        Other architecture fields (``n_head``, ``qk_norm``, ``init_std``): no parameters of their
        own, accepted so a ladder size dict can be passed whole.

    Returns
    -------
    tuple of int
        ``(non_embedding, total)``: the Kaplan et al. (2020) count (blocks and final LayerNorm)
        and every distinct parameter tensor once (see the module docstring).
    """
    d, h = d_model, mlp_ratio * d_model
    ln = d * (2 if bias else 1)  # LayerNorm gain (+ bias)
    block = 2 * ln + 4 * d * d + 2 * d * h + ((4 * d + h + d) if bias else 0)
    non_emb = n_layer * block + ln
    emb = vocab_size * d + seq_len * d + (0 if tie_embeddings else vocab_size * d)
    return non_emb, non_emb + emb


def flops_per_token(n_params: int, d_model: int, n_layer: int, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs per token: 6 x (matmul params incl. LM head) + attention (PaLM convention).

    Parameters
    ----------
    n_params : int
        Non-embedding parameters (:func:`count_params`).
    d_model, n_layer, vocab_size, seq_len : int
        The architecture: the LM head adds ``d_model * vocab_size`` matmul parameters, attention
        ``12 * n_layer * d_model * seq_len`` FLOPs.

    Returns
    -------
    int
        ``6 * (n_params + d_model * vocab_size) + 12 * n_layer * d_model * seq_len``.
    """
    return 6 * (n_params + d_model * vocab_size) + 12 * n_layer * d_model * seq_len


# --------------------------------------------------------------------------- ladders
LADDER_SIZE_KEYS = {"name", "d_model", "n_layer", "n_head", "seq_len", "mlp_ratio", "bias",
                    "qk_norm", "tie_embeddings", "init_std"}
ARCH_DEFAULTS = {"seq_len": 128, "mlp_ratio": 4, "bias": False, "qk_norm": False,
                 "tie_embeddings": True, "init_std": 0.02}


@dataclass
class Ladder:
    """An architecture ladder (``models/<name>.toml``): named model sizes.

    Attributes
    ----------
    name : str
        The ladder's name (its ``name`` field, else the file stem).
    path : str
        The file it was read from.
    sizes : dict of str to dict
        Size name -> architecture dict (``d_model``, ``n_layer``, ``n_head``, ``seq_len``,
        ``mlp_ratio``, ``bias``, ``qk_norm``, ``tie_embeddings``, ``init_std``), the ladder's
        ``[defaults]`` and :data:`ARCH_DEFAULTS` applied.
    description : str
        Free text from the file.
    """
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
    """Read and validate a ladder file.

    Parameters
    ----------
    path : str or Path
        A ladder TOML: optional ``name``, ``description``, ``convention``, ``[defaults]``, and one
        ``[[sizes]]`` table per size.

    Returns
    -------
    Ladder
        The sizes, defaults applied.

    Raises
    ------
    SpecError
        If the file is missing or not TOML, a field is unknown or missing, a size is duplicated,
        or ``d_model`` is not divisible by ``n_head``.
    """
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
    """Resolve a grid spec's ``ladder`` field to a file.

    A ladder reference is a path (``*.toml``, relative to the spec file or the cwd) or a bare name
    looked up as ``models/<name>.toml`` in the spec's directory, its parents, or the cwd.

    Parameters
    ----------
    ref : str
        The ``ladder`` value of the spec.
    spec_path : Path
        The grid spec file the reference is relative to.

    Returns
    -------
    Path
        The ladder file (a ``*.toml`` path that exists nowhere is returned as given, so that
        :func:`load_ladder` reports it missing).

    Raises
    ------
    SpecError
        If a bare name matches no ``models/<name>.toml``.
    """
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
SWEEP_KEYS = {"sizes", "seeds", "optimizer", "weight_decay", "tokens", "lr"}
TOP_KEYS = {"name", "description", "ladder", "batch_size", "seq_len", "schedule", "optim", "data",
            "run", "lr_lattice", "sweep", "order"} | SWEEP_KEYS
BLOCK_KEYS = SWEEP_KEYS | {"name", "priority", "window", "extend"}
SCHEDULE_KEYS = {"kind", "warmup", "min_ratio", "decay"}
OPTIM_KEYS = {"beta1", "beta2", "eps", "grad_clip", "adamh_adam_lr", "decay_embeddings"}
DATA_KEYS = {"kind", "path", "val_path", "vocab_size", "val_fraction", "eval_tokens"}
RUN_KEYS = {"precision", "checkpoint_every", "probe_every", "probe_dense_until", "log_every",
            "divergence_factor", "lease_s", "heartbeat_s", "max_attempts", "keep_checkpoint"}
RUN_DEFAULTS = {"precision": "fp32", "checkpoint_every": 200, "probe_every": 10,
                "probe_dense_until": 20, "log_every": 10, "divergence_factor": 2.0,
                "lease_s": 600.0, "heartbeat_s": 15.0, "max_attempts": 3, "keep_checkpoint": False}
LATTICE_DEFAULTS = {"base": 1e-3, "per_octave": 2, "digits": 4}
EXTEND_DEFAULTS = {"max": 3, "cliff": 0.1}
ORDERS = ("large_first", "small_first")
# AdamW decays the token/position embeddings (nanoGPT's "every 2-D parameter" rule) unless
# ``optim.decay_embeddings = false``; the default is recorded nowhere in a run's config, so grids
# collected before the field existed keep their ids.
DECAY_EMBEDDINGS_DEFAULT = True


@dataclass
class Run:
    """One training run of a grid.

    Attributes
    ----------
    id : str
        :func:`canonical_hash` of ``config``; also the name of the run's folder
        (``OUT/runs/<id>/``).
    config : dict
        Everything that fixes the trajectory (model, data, optimizer, LR, weight decay, schedule,
        batch, steps, seed, precision).
    cadences : dict
        The spec's ``[run]`` settings (probe / checkpoint / log cadences, lease, heartbeat,
        attempts); not part of the id.
    meta : dict
        Derived facts: grid, ladder, size, sweep, priority, budget, lattice index ``lr_k``,
        ``n_params``, ``n_params_total``, ``n_tokens``, ``tokens_per_step``, ``tokens_per_param``,
        ``flops``.
    """
    id: str
    config: dict
    cadences: dict
    meta: dict

    def as_dict(self) -> dict:
        """What ``config.json`` holds and :func:`scalefit.train.run.training_function` takes.

        Returns
        -------
        dict
            ``{"run_id", "config", "run" (the cadences), "meta"}``.
        """
        return {"run_id": self.id, "config": self.config, "run": self.cadences, "meta": self.meta}


@dataclass
class Sweep:
    """One sweep block, parsed: a product of its axes with one LR plan per optimizer.

    Attributes
    ----------
    name : str
        The block's ``name`` (``sweep<i>`` if unnamed; the grid's name for a top-level sweep).
    index : int
        Position among the spec's sweep blocks.
    sizes : list of str
        Ladder sizes swept.
    tkind : str
        ``"absolute"`` (budgets in tokens) or ``"per_param"`` (tokens per non-embedding
        parameter).
    budgets : list of float
        Token budgets, in the unit of ``tkind``.
    optimizers : list of str
        Optimizers swept (of :data:`OPTIMIZERS`).
    seeds : list of int
        Seeds swept.
    wds : list of float
        Weight decays swept (AdamW only; AdamH runs use 0).
    lrs : dict of str to list of float
        Optimizer -> explicit LRs, for optimizers whose LRs are not on the lattice.
    ks : dict of str to tuple of int
        Optimizer -> default lattice window ``(k_lo, k_hi)``, both included.
    windows : dict of tuple to tuple of int
        ``(size, budget or None)`` -> lattice window, overriding ``ks`` (``[[sweep.window]]``).
    priority : int
        Higher trains first.
    extend : dict or None
        ``{"max": int, "cliff": float}`` when the runner may widen edge windows
        (:mod:`scalefit.grids.brackets`), else None.
    """
    name: str
    index: int
    sizes: list[str]
    tkind: str                      # "absolute" | "per_param"
    budgets: list[float]
    optimizers: list[str]
    seeds: list[int]
    wds: list[float]
    lrs: dict[str, list[float]]     # optimizer -> explicit LRs (no lattice)
    ks: dict[str, tuple[int, int]]  # optimizer -> default lattice window (inclusive)
    windows: dict[tuple, tuple[int, int]]  # (size, budget or None) -> lattice window
    priority: int = 0
    extend: dict | None = None      # {"max": int, "cliff": float} or None


@dataclass
class GridSpec:
    """A parsed grid spec and the runs it plans.

    Built by :func:`load_spec` (or :func:`expand`); bracket extensions recorded in an output
    directory are added on top by :func:`scalefit.grids.brackets.load`.

    Attributes
    ----------
    name : str
        The spec's ``name`` (else the file stem).
    path : str
        The spec file.
    ladder : Ladder
        The architecture ladder it names.
    runs : list of Run
        Every planned run, unique by id, in sweep-priority order (see :meth:`ordered`).
    raw : dict
        The parsed TOML.
    sweeps : list of Sweep
        The sweep blocks (one for a spec without ``[[sweep]]``).
    order : str
        ``"large_first"`` or ``"small_first"``: FLOPs order within one priority.
    lattice : dict or None
        ``{"base", "per_octave", "digits"}`` of ``[lr_lattice]``, or None.
    shared : dict
        The validated settings every run shares (batch, schedule, optimizer constants, data,
        ``[run]`` cadences, precision, lattice).
    """
    name: str
    path: str
    ladder: Ladder
    runs: list[Run] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    sweeps: list[Sweep] = field(default_factory=list)
    order: str = "large_first"
    lattice: dict | None = None
    shared: dict = field(default_factory=dict)

    def lr_at(self, k: int) -> float:
        """The lattice LR of index k (the spec must have ``[lr_lattice]``).

        Parameters
        ----------
        k : int
            Lattice index.

        Returns
        -------
        float
            :func:`lattice_lr` of the spec's lattice.
        """
        return lattice_lr(self.lattice, k)

    def make_run(self, sweep: Sweep, size: str, budget: float, optimizer: str, seed: int, wd: float,
                 lr: float, k: int | None = None) -> Run:
        """One run of ``sweep`` at the given axes, with its id, counts and FLOPs.

        Parameters
        ----------
        sweep : Sweep
            The sweep block it belongs to (its name, priority and budget kind).
        size : str
            Ladder size.
        budget : float
            Token budget, in the unit of ``sweep.tkind``.
        optimizer : str
            ``"adamw"`` or ``"adamh"``.
        seed : int
            Seed.
        wd : float
            Weight decay.
        lr : float
            Peak LR.
        k : int, optional
            Lattice index of ``lr`` (None for an explicit LR).

        Returns
        -------
        Run
            The run.

        Raises
        ------
        SpecError
            If the warmup is not shorter than the run, or ``lr * wd >= 1`` for AdamW.
        """
        return _make_run(self, sweep, size, budget, optimizer, seed, wd, lr, k)

    def ordered(self, runs: list[Run] | None = None) -> list[Run]:
        """Runs in the order workers take them: priority (high first), then FLOPs per ``order``.

        Parameters
        ----------
        runs : list of Run, optional
            The runs to order (default: :attr:`runs`).

        Returns
        -------
        list of Run
            Sorted by priority, then FLOPs (largest first for ``large_first``), then id.
        """
        sign = -1 if self.order == "large_first" else 1
        return sorted(self.runs if runs is None else runs,
                      key=lambda r: (-r.meta["priority"], sign * r.meta["flops"], r.id))


def lattice_lr(lattice: dict, k: int) -> float:
    """The LR at index k of an LR lattice: ``base * 2 ** (k / per_octave)``.

    Rounded to ``digits`` significant digits, so a given k always gives the same LR (and the same
    run id) however the window around it moves.

    Parameters
    ----------
    lattice : dict
        ``{"base": float, "per_octave": int, "digits": int}`` (a spec's ``[lr_lattice]``).
    k : int
        Lattice index (0 is ``base``).

    Returns
    -------
    float
        The LR.

    Examples
    --------
    >>> lattice_lr({"base": 1e-3, "per_octave": 2, "digits": 4}, 2)
    0.002
    """
    return float(f"{lattice['base'] * 2 ** (k / lattice['per_octave']):.{lattice['digits']}g}")


def _lr_values(src: str, fld: str, t: Any) -> list[float]:
    if isinstance(t, list):
        vals = [_num(src, fld, v) for v in t]
    elif isinstance(t, dict):
        if "values" in t:
            if {"min", "max", "per_octave", "k"} & set(t):
                raise _err(src, fld, "give one of 'values', 'min'/'max'/'per_octave' or 'k'")
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
        raise _err(src, fld, "expected a list of LRs or a table with values, min/max/per_octave or k")
    if not vals:
        raise _err(src, fld, "no learning rates given")
    return vals


def _k_range(src: str, fld: str, v: Any) -> tuple[int, int]:
    if not (isinstance(v, list) and len(v) == 2):
        raise _err(src, fld, f"expected [k_lo, k_hi] (lattice indices, both included), got {v!r}")
    lo, hi = (int(_num(src, fld, x, positive=False, integer=True)) for x in v)
    if hi < lo:
        raise _err(src, fld, f"k_hi={hi} is below k_lo={lo}")
    return lo, hi


def load_spec(path: str | Path) -> GridSpec:
    """Parse and validate a grid spec, then expand it into runs.

    Parameters
    ----------
    path : str or Path
        A grid spec TOML (``runners/grids/*.toml``; every field in ``docs/runners.md``).

    Returns
    -------
    GridSpec
        The spec with every planned run (bracket extensions not included).

    Raises
    ------
    SpecError
        If the file is missing or not TOML, or any field is unknown or invalid; the message names
        the file and the field.

    Examples
    --------
    >>> spec = load_spec("runners/grids/micro.toml")  # doctest: +SKIP
    >>> len(spec.runs), spec.ladder.name  # doctest: +SKIP
    """
    path = Path(path)
    return expand(_read_toml(path, "grid spec"), path)


def _shared(src: str, raw: dict) -> dict:
    """The settings every run of the grid shares (validated)."""
    batch_size = _num(src, "batch_size", raw["batch_size"], integer=True)
    seq_override = raw.get("seq_len")
    if seq_override is not None:
        seq_override = _num(src, "seq_len", seq_override, integer=True)

    sch = {"kind": "cosine", "warmup": 0.0, "min_ratio": 0.1, "decay": 0.2, **raw.get("schedule", {})}
    _check_keys(src, "schedule.", sch, SCHEDULE_KEYS)
    if sch["kind"] not in SCHEDULES:
        raise _err(src, "schedule.kind", f"{sch['kind']!r} is not one of {SCHEDULES}")
    sch["warmup"] = _num(src, "schedule.warmup", sch["warmup"], allow_zero=True)
    sch["min_ratio"] = _num(src, "schedule.min_ratio", sch["min_ratio"], allow_zero=True)
    if sch["min_ratio"] > 1:
        raise _err(src, "schedule.min_ratio", f"must be in [0, 1], got {sch['min_ratio']}")
    sch["decay"] = _num(src, "schedule.decay", sch["decay"])
    if sch["decay"] > 1:
        raise _err(src, "schedule.decay", f"is a fraction of the steps, must be in (0, 1], got {sch['decay']}")

    opt = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "grad_clip": 1.0, "adamh_adam_lr": 3e-3,
           "decay_embeddings": DECAY_EMBEDDINGS_DEFAULT, **raw.get("optim", {})}
    _check_keys(src, "optim.", opt, OPTIM_KEYS)
    for k in ("beta1", "beta2"):
        if not 0 <= _num(src, f"optim.{k}", opt[k], allow_zero=True) < 1:
            raise _err(src, f"optim.{k}", f"must be in [0, 1), got {opt[k]}")
    _num(src, "optim.eps", opt["eps"])
    _num(src, "optim.grad_clip", opt["grad_clip"], allow_zero=True)  # 0 = no clipping
    _num(src, "optim.adamh_adam_lr", opt["adamh_adam_lr"])
    if not isinstance(opt["decay_embeddings"], bool):
        raise _err(src, "optim.decay_embeddings", f"expected true or false, got {opt['decay_embeddings']!r}")

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
    if run["divergence_factor"] <= 1:
        raise _err(src, "run.divergence_factor", f"must be > 1 (a multiple of the first loss), got "
                   f"{run['divergence_factor']}")
    run["lease_s"] = _num(src, "run.lease_s", run["lease_s"])
    run["heartbeat_s"] = _num(src, "run.heartbeat_s", run["heartbeat_s"])
    if run["lease_s"] < 3 * run["heartbeat_s"]:  # one late beat must not hand a live run away
        raise _err(src, "run.lease_s", f"{run['lease_s']:g} s is below 3 x run.heartbeat_s "
                   f"({run['heartbeat_s']:g} s): another worker would take live runs over")
    run["max_attempts"] = _num(src, "run.max_attempts", run["max_attempts"], integer=True)
    if not isinstance(run["keep_checkpoint"], bool):
        raise _err(src, "run.keep_checkpoint", f"expected true or false, got {run['keep_checkpoint']!r}")
    precision = run.pop("precision")

    lattice = None
    if "lr_lattice" in raw:
        lattice = {**LATTICE_DEFAULTS, **raw["lr_lattice"]}
        _check_keys(src, "lr_lattice.", lattice, set(LATTICE_DEFAULTS))
        lattice["base"] = _num(src, "lr_lattice.base", lattice["base"])
        lattice["per_octave"] = _num(src, "lr_lattice.per_octave", lattice["per_octave"], integer=True)
        lattice["digits"] = _num(src, "lr_lattice.digits", lattice["digits"], integer=True)
        if not 2 <= lattice["digits"] <= 12:
            raise _err(src, "lr_lattice.digits", f"must be in [2, 12], got {lattice['digits']}")
    return dict(batch_size=batch_size, seq_override=seq_override, sch=sch, opt=opt, data=data, run=run,
                precision=precision, lattice=lattice)


def _parse_sweep(src: str, pre: str, blk: dict, defaults: dict, ladder: Ladder, lattice: dict | None,
                 index: int, name: str) -> Sweep:
    """One sweep: ``blk`` (a ``[[sweep]]`` table, or the top level) over ``defaults``."""
    def get(k, default=None):
        return blk[k] if k in blk else defaults.get(k, default)

    def fld(k):  # where a value came from, for error messages
        return f"{pre}{k}" if k in blk else k

    def nonempty(k, vals):
        if not vals:
            raise _err(src, fld(k), "is empty: give at least one value")
        return vals

    sizes = nonempty("sizes", _as_list(get("sizes", list(ladder.sizes))))
    for s in sizes:
        if s not in ladder.sizes:
            raise _err(src, fld("sizes"), f"{s!r} is not in ladder {ladder.name!r} (has {list(ladder.sizes)})")
    seeds = nonempty("seeds", [_num(src, fld("seeds"), s, integer=True, allow_zero=True)
                               for s in _as_list(get("seeds", [0]))])
    optimizers = nonempty("optimizer", _as_list(get("optimizer", ["adamw"])))
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise _err(src, fld("optimizer"), f"{o!r} is not one of {OPTIMIZERS}")
    wds = nonempty("weight_decay", [_num(src, fld("weight_decay"), w, allow_zero=True)
                                    for w in _as_list(get("weight_decay", [0.1]))])

    tok = get("tokens")
    if tok is None:
        raise _err(src, "tokens", "missing (required, at the top level or in every sweep)")
    if not isinstance(tok, dict):
        raise _err(src, fld("tokens"), "expected a table with 'absolute' or 'per_param'")
    _check_keys(src, f"{fld('tokens')}.", tok, {"absolute", "per_param"})
    if ("absolute" in tok) == ("per_param" in tok):
        raise _err(src, fld("tokens"), "give exactly one of 'absolute' (tokens) or 'per_param' (tokens per "
                   "non-embedding parameter)")
    tkind = "absolute" if "absolute" in tok else "per_param"
    budgets = nonempty("tokens", [_num(src, f"{fld('tokens')}.{tkind}", v) for v in _as_list(tok[tkind])])

    lr_raw = get("lr")
    if lr_raw is None:
        raise _err(src, "lr", "missing (required, at the top level or in every sweep)")
    lf = fld("lr")
    if isinstance(lr_raw, dict):
        _check_keys(src, f"{lf}.", lr_raw, {"values", "min", "max", "per_octave", "k"} | set(OPTIMIZERS))

    def plan(t, f):
        if isinstance(t, dict) and "k" in t:
            if lattice is None:
                raise _err(src, f"{f}.k", "lattice indices need an [lr_lattice] table at the top level")
            if {"values", "min", "max", "per_octave"} & set(t):
                raise _err(src, f, "give one of 'values', 'min'/'max'/'per_octave' or 'k'")
            return None, _k_range(src, f"{f}.k", t["k"])
        return _lr_values(src, f, t), None

    default_vals, default_k = plan(lr_raw, lf)
    lrs, ks = {}, {}
    for o in optimizers:
        if isinstance(lr_raw, dict) and o in lr_raw:
            vals, k = plan(lr_raw[o], f"{lf}.{o}")
        else:
            vals, k = default_vals, default_k
        if k is not None:
            ks[o] = k
        elif vals:
            lrs[o] = vals
        else:
            raise _err(src, lf, f"no LRs for optimizer {o!r}: give lr.values, lr.min/max, lr.k or lr.{o}")

    windows = {}
    for j, w in enumerate(blk.get("window", [])):
        wf = f"{pre}window[{j}]"
        if not isinstance(w, dict):
            raise _err(src, wf, "expected a table (size, tokens, k)")
        _check_keys(src, f"{wf}.", w, {"size", "tokens", "k"})
        if lattice is None:
            raise _err(src, f"{wf}.k", "windows need an [lr_lattice] table at the top level")
        if "size" not in w or w["size"] not in sizes:
            raise _err(src, f"{wf}.size", f"{w.get('size')!r} is not one of this sweep's sizes {sizes}")
        b = None
        if "tokens" in w:
            b = _num(src, f"{wf}.tokens", w["tokens"])
            if b not in budgets:
                raise _err(src, f"{wf}.tokens", f"{b:g} is not one of this sweep's budgets {budgets}")
        if "k" not in w:
            raise _err(src, f"{wf}.k", "missing")
        if (w["size"], b) in windows:
            raise _err(src, wf, f"a second window for size {w['size']!r}"
                       + (f" at {b:g} tokens" if b is not None else ""))
        windows[(w["size"], b)] = _k_range(src, f"{wf}.k", w["k"])
    if windows and set(optimizers) - set(ks):
        raise _err(src, f"{pre}window", "windows set lattice indices: this sweep's LRs must use lr.k")

    extend = None
    if "extend" in blk:
        e = blk["extend"]
        if not isinstance(e, dict):
            raise _err(src, f"{pre}extend", "expected a table (max, cliff)")
        extend = {**EXTEND_DEFAULTS, **e}
        _check_keys(src, f"{pre}extend.", extend, set(EXTEND_DEFAULTS))
        extend["max"] = _num(src, f"{pre}extend.max", extend["max"], integer=True)
        extend["cliff"] = _num(src, f"{pre}extend.cliff", extend["cliff"])
        if set(optimizers) - set(ks):
            raise _err(src, f"{pre}extend", "extending a window adds lattice LRs: this sweep's LRs must use lr.k")
    priority = int(_num(src, f"{pre}priority", blk.get("priority", 0), positive=False, integer=True))
    return Sweep(name=name, index=index, sizes=sizes, tkind=tkind, budgets=budgets, optimizers=optimizers,
                 seeds=seeds, wds=wds, lrs=lrs, ks=ks, windows=windows, priority=priority, extend=extend)


def window_of(sweep: Sweep, size: str, budget: float, optimizer: str) -> tuple[int, int] | None:
    """The lattice window of one (size, budget, optimizer) of a sweep; None for explicit LRs.

    Parameters
    ----------
    sweep : Sweep
        The sweep block.
    size : str
        Ladder size.
    budget : float
        Token budget, in the unit of ``sweep.tkind``.
    optimizer : str
        The optimizer.

    Returns
    -------
    tuple of int or None
        ``(k_lo, k_hi)``, both included: the ``(size, budget)`` window, else the ``size`` window,
        else the sweep's default; None when this optimizer's LRs are explicit.
    """
    if optimizer not in sweep.ks:
        return None
    return sweep.windows.get((size, budget), sweep.windows.get((size, None), sweep.ks[optimizer]))


def _make_run(spec: GridSpec, sweep: Sweep, size: str, budget: float, o: str, seed: int, wd: float,
              lr: float, k: int | None) -> Run:
    sh, src = spec.shared, spec.path
    arch = dict(spec.ladder.sizes[size])
    if sh["seq_override"]:
        arch["seq_len"] = sh["seq_override"]
    data, sch, opt = sh["data"], sh["sch"], sh["opt"]
    n_params, n_total = count_params(vocab_size=data["vocab_size"], **arch)
    tokens_per_step = sh["batch_size"] * arch["seq_len"]
    want = budget if sweep.tkind == "absolute" else budget * n_params
    steps = max(1, round(want / tokens_per_step))
    warm = sch["warmup"]
    warmup = int(round(warm * steps)) if warm < 1 else int(warm)
    if warmup >= steps:
        raise _err(src, "schedule.warmup", f"{warmup} warmup steps >= {steps} total steps for size "
                   f"{size!r} at {want:.3g} tokens; lower the warmup or raise the budget")
    if o == "adamw" and lr * wd >= 1:  # (1 - lr wd) W would flip or zero every matrix each step
        raise _err(src, "weight_decay", f"lr x weight_decay = {lr:g} x {wd:g} >= 1 in sweep {sweep.name!r}")
    config = {
        "model": {k2: arch[k2] for k2 in sorted(arch)},
        "data": {k2: data[k2] for k2 in ("kind", "path", "val_path", "vocab_size", "val_fraction",
                                         "eval_tokens")},
        "optimizer": o, "lr": lr, "weight_decay": wd,
        "betas": [opt["beta1"], opt["beta2"]], "eps": opt["eps"], "grad_clip": opt["grad_clip"],
        "adam_lr": opt["adamh_adam_lr"] if o == "adamh" else None,
        "schedule": {"kind": sch["kind"], "warmup": warmup, "min_ratio": sch["min_ratio"],
                     "decay": sch["decay"]},
        "batch_size": sh["batch_size"], "steps": steps, "seed": seed, "precision": sh["precision"],
    }
    if o == "adamw" and opt["decay_embeddings"] != DECAY_EMBEDDINGS_DEFAULT:
        config["decay_embeddings"] = opt["decay_embeddings"]  # only a departure enters the id
    n_tokens = steps * tokens_per_step
    meta = {"grid": spec.name, "ladder": spec.ladder.name, "size": size, "sweep": sweep.name,
            "priority": sweep.priority, "budget": budget, "lr_k": k,
            "n_params": n_params, "n_params_total": n_total, "n_tokens": n_tokens,
            "tokens_per_step": tokens_per_step, "tokens_per_param": n_tokens / n_params,
            "flops": flops_per_token(n_params, arch["d_model"], arch["n_layer"], data["vocab_size"],
                                     arch["seq_len"]) * n_tokens}
    return Run(id=canonical_hash(config), config=config, cadences=dict(sh["run"]), meta=meta)


def sweep_runs(spec: GridSpec, sweep: Sweep) -> list[Run]:
    """Every run one sweep block plans: its product of axes, one run per LR of each window.

    Parameters
    ----------
    spec : GridSpec
        The spec the sweep belongs to (its shared settings and lattice).
    sweep : Sweep
        The sweep block.

    Returns
    -------
    list of Run
        One run per (size, budget, optimizer, seed, LR, weight decay); AdamH runs take weight
        decay 0 only.

    Raises
    ------
    SpecError
        If a run is invalid (see :meth:`GridSpec.make_run`).
    """
    runs = []
    for size, budget, o, seed in itertools.product(sweep.sizes, sweep.budgets, sweep.optimizers, sweep.seeds):
        w = window_of(sweep, size, budget, o)
        lrs = [(spec.lr_at(k), k) for k in range(w[0], w[1] + 1)] if w else [(v, None) for v in sweep.lrs[o]]
        for (lr, k), wd in itertools.product(lrs, sweep.wds if o == "adamw" else [0.0]):
            runs.append(_make_run(spec, sweep, size, budget, o, seed, wd, lr, k))
    return runs


def expand(raw: dict, path: Path) -> GridSpec:
    """Validate a parsed grid spec and expand it into runs.

    Parameters
    ----------
    raw : dict
        The parsed TOML.
    path : Path
        Where it came from: error messages name it, and a ladder reference is resolved next to
        it (:func:`find_ladder`).

    Returns
    -------
    GridSpec
        The spec; a run listed by two sweeps appears once, under the higher priority.

    Raises
    ------
    SpecError
        If any field is unknown, missing or invalid.
    """
    src = str(path)
    _check_keys(src, "", raw, TOP_KEYS)
    for req in ("ladder", "batch_size"):
        if req not in raw:
            raise _err(src, req, "missing (required)")
    ladder = load_ladder(find_ladder(str(raw["ladder"]), path))
    shared = _shared(src, raw)
    order = raw.get("order", "large_first")
    if order not in ORDERS:
        raise _err(src, "order", f"{order!r} is not one of {ORDERS}")
    name = raw.get("name", path.stem)
    spec = GridSpec(name=name, path=src, ladder=ladder, raw=raw, order=order,
                    lattice=shared["lattice"], shared=shared)
    defaults = {k: raw[k] for k in SWEEP_KEYS if k in raw}
    blocks = raw.get("sweep")
    if blocks is None:
        spec.sweeps = [_parse_sweep(src, "", raw, {}, ladder, spec.lattice, 0, name)]
    else:
        if not isinstance(blocks, list) or not blocks:
            raise _err(src, "sweep", "expected one or more [[sweep]] tables")
        names = set()
        for i, blk in enumerate(blocks):
            pre = f"sweep[{i}]."
            _check_keys(src, pre, blk, BLOCK_KEYS)
            bname = blk.get("name", f"sweep{i}")
            if bname in names:
                raise _err(src, f"{pre}name", f"duplicate sweep name {bname!r}")
            names.add(bname)
            spec.sweeps.append(_parse_sweep(src, pre, blk, defaults, ladder, spec.lattice, i, bname))
    seen: set[str] = set()
    # a run listed by two sweeps (same config, same id) trains once, under the higher priority
    for sweep in sorted(spec.sweeps, key=lambda s: -s.priority):
        for r in sweep_runs(spec, sweep):
            if r.id not in seen:
                seen.add(r.id)
                spec.runs.append(r)
    return spec
