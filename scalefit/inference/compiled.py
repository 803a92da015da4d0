"""A nutpie model whose compiled code survives the process.

`nutpie.compile_pymc_model` wraps PyTensor's numba functions in two C callbacks (logp+gradient,
and the expansion to trace variables). PyTensor caches its own numba code on disk, but nutpie's
callbacks close over run-time objects, so numba recompiles them, and through them the whole model,
in every new process: most of the time of a compile whose PyTensor cache is already warm.

Here the callbacks are generated as source whose only free names are importable objects and the
PyTensor function, and are registered with PyTensor's numba cache under a key derived from that
function's own cache key. A new process with a warm cache then loads them instead of compiling.
They read the data through nutpie's own pointer record, so the result is a regular nutpie
`CompiledPyMCModel`: `with_data` swaps data without recompiling, and sampling is unchanged.

The compiled functions are shape-generic: each free variable's place in the flat point and its
shape are computed in the graph from the model's dimension lengths and data (nutpie bakes them
in as constants). So one compiled model serves tables of any number of cells and walk
positions, and a new table of a known structure loads in seconds instead of compiling afresh
(see the model page, docs/model.md, "Compiling once").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["compile_cached"]

# Bump when the generated source changes (or the module it names moves): old cache entries
# must not match new code.
_TEMPLATE_VERSION = "3"


_CALLBACKS: dict = {}  # cache key -> compiled callback, so a process loads each one once


def compile_cached(model, initial_points=None, structure_key: str | None = None):
    """Like `nutpie.compile_pymc_model(model, initial_points=...)` (numba backend), but cacheable.

    With a `structure_key` (which the caller guarantees changes whenever the model's graph
    could; the sizes of dimensions the graph leaves symbolic may differ), a process that finds
    the key's record in the cache skips PyTensor's graph building and rewriting too and only
    loads the two callbacks; any mismatch or cache miss falls back to the full path.

    Parameters
    ----------
    model : pymc.Model
        The model to compile.
    initial_points : dict, optional
        Start values by variable name (`scalefit.model.graph.initial_values`).
    structure_key : str, optional
        The record's key in the on-disk cache (`scalefit.inference.sampling.structure_key`);
        None compiles without looking up or writing a record.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        A regular nutpie model: ``with_data`` swaps data without recompiling.
    """
    from pymc.initial_point import make_initial_point_fn

    from scalefit.inference.backend import import_nutpie

    import_nutpie()
    from nutpie import compile_pymc as nc

    point_fn = nc._wrap_with_lock(make_initial_point_fn(
        model=model, overrides=initial_points, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs), return_transformed=True))
    record = _record_path(structure_key) if structure_key else None
    if record is not None and record.exists():
        loaded = _load(model, point_fn, json.loads(record.read_text()))
        if loaded is not None:
            return loaded
    compiled, meta = _compile(model, point_fn)
    if record is not None and meta is not None:  # None: PyTensor does not cache this graph
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, record)
    return compiled


def _functions(model):
    """PyTensor (numba) functions of the flat unconstrained point: logp with its gradient, and
    the expansion to every trace variable. Unlike nutpie's, each free variable's slice of the
    point and its shape are symbolic, so the compiled code does not depend on the table's size."""
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import clone_replace, rewrite_graph

    rewrites = ["canonicalize", "stabilize"]  # as nutpie does before differentiating
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = rewrite_graph(model.logp(), include=rewrites)
    values, remaining = _trace_parts(model)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in pt.grad(logp, values)])
    point = pt.dvector("_unconstrained_point")
    start = pt.constant(0, dtype="int64")
    pieces = {}
    for rv, value in zip(model.free_RVs, values):
        shape = _symbolic_shape(model, rv)
        size = pt.prod(shape, dtype="int64") if value.ndim else pt.constant(1, dtype="int64")
        piece = point[start:start + size]
        pieces[value] = (piece.reshape(shape, ndim=value.ndim) if value.ndim else piece[0]).astype(value.dtype)
        start = start + size
    logp, grad = clone_replace([logp, grad], pieces)
    expanded = pt.concatenate([point, *(pt.as_tensor(v).ravel() for v in remaining)])
    with model:
        return (compile_pymc((point,), (logp, grad), mode="NUMBA"),
                compile_pymc((point,), [expanded], givens=list(pieces.items()), mode="NUMBA"))


def _trace_parts(model):
    """The free variables' values (the flat point, in order) and the other trace variables (the
    rest of the expansion, in order): one definition for the compiled functions and the layout."""
    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    free = {v.name for v in values}
    return values, [v for v in model.unobserved_value_vars if v.name not in free]


def _symbolic_shape(model, rv):
    """The shape of `rv`'s unconstrained value as a graph of the model's data and dimension
    lengths only (PyTensor's shape inference removes the draw itself)."""
    from pytensor.graph import rewrite_graph
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.type import RandomType

    transform = model.rvs_to_transforms.get(rv)
    value = transform.forward(rv, *rv.owner.inputs) if transform is not None else rv
    shape = rewrite_graph(value.shape, include=("canonicalize", "ShapeOpt"))
    if any(isinstance(v.type, RandomType) for v in ancestors([shape])):
        raise ValueError(f"the shape of {rv.name} depends on a random draw")
    return shape


def _layout(model, point_fn) -> dict:
    """Where each trace variable sits in the flat point and in the expansion, for this model's
    sizes: nutpie's `shape_info`, from the initial point and the other variables' shapes
    evaluated at it (uncompiled: a fraction of a second)."""
    import pytensor
    import pytensor.tensor as pt

    values, remaining = _trace_parts(model)
    free = [v.name for v in values]
    point = point_fn(0)
    shapes = {name: tuple(np.shape(point[name])) for name in free}
    if remaining:
        shape_fn = pytensor.function(values, [pt.as_tensor(v.shape) for v in remaining], mode="FAST_COMPILE",
                                     on_unused_input="ignore")
        shapes |= {v.name: tuple(map(int, shape)) for v, shape in zip(remaining, shape_fn(*(point[n] for n in free)))}
    names = free + [v.name for v in remaining]
    ends = np.cumsum([int(np.prod(shapes[n])) for n in names]).tolist()
    return {"n_dim": ends[len(free) - 1] if free else 0, "n_expanded": ends[-1] if ends else 0, "names": names,
            "slices": [slice(a, b) for a, b in zip([0, *ends[:-1]], ends)],
            "shapes": [shapes[n] for n in names],
            "reparameterized": [model.rvs_to_values[rv].name for rv in model.free_RVs
                                if model.rvs_to_transforms.get(rv) is not None]}


def _static_types(model) -> list[str]:
    """The free variables' names and static shapes (None where symbolic): a record compiled for
    a graph with other static sizes must not be loaded for this one."""
    return [f"{model.rvs_to_values[rv].name}:{rv.type.shape}" for rv in model.free_RVs]


def _compile(model, point_fn):
    """The full path: PyTensor functions, then the callbacks (compiled, or loaded from the cache).
    Returns the model and the record a later process needs to skip the PyTensor step."""
    import numba

    logp_pt, expand_pt = _functions(model)
    shared_vars, shared_keys = {}, {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if var not in shared_keys:
            shared_keys[var] = f"s{len(shared_keys)}"  # stable across processes, unlike nutpie's uuids
            shared_vars[shared_keys[var]] = var
    shared_data = _shared_values(shared_vars)
    layout = _record_layout(shared_keys, shared_data)
    meta = {"types": _static_types(model),
            "shared": {key: [var.name, shared_data[key].dtype.str, shared_data[key].ndim]
                       for key, var in shared_vars.items()}}
    callbacks = {}
    for kind, function in (("logp", logp_pt), ("expand", expand_pt)):
        keys = [shared_keys[v] for v in function.get_shared()]
        src = _source(kind, keys, layout)
        cache_key = _cache_key(function, src)
        callbacks[kind] = _cfunc(numba, kind, src, function.vm.jit_fn, cache_key)
        if cache_key is not None:
            _CALLBACKS[cache_key] = callbacks[kind]
        meta[kind] = {"src": src, "cache_key": cache_key}
    compiled = _assemble(model, point_fn, _layout(model, point_fn), callbacks, shared_vars, shared_data,
                         (logp_pt, expand_pt))
    cacheable = all(meta[k]["cache_key"] for k in ("logp", "expand"))
    return compiled, (meta if cacheable else None)


def _load(model, point_fn, meta):
    """The fast path: the callbacks from this process or the disk cache, everything else from
    `meta` and the model object. None when anything disagrees with the model or the cache has
    no entry."""
    import numba

    named = {**model.dim_lengths, **model.named_vars}  # dimension lengths are shared too
    try:
        shared_vars = {key: named[name] for key, (name, _, _) in meta["shared"].items()}
    except KeyError:
        return None
    shared_data = _shared_values(shared_vars)
    if any((shared_data[k].dtype.str, shared_data[k].ndim) != (dtype, ndim)
           for k, (_, dtype, ndim) in meta["shared"].items()):
        return None
    if meta.get("types") != _static_types(model):
        return None
    callbacks = {}
    for kind in ("logp", "expand"):
        key = meta[kind]["cache_key"]
        if key in _CALLBACKS:
            callbacks[kind] = _CALLBACKS[key]
            continue
        try:
            # `inner` is deliberately not compilable: on a cache miss numba fails here, loudly,
            # instead of compiling a callback around nothing.
            callbacks[kind] = _cfunc(numba, kind, meta[kind]["src"], object(), key)
        except Exception:  # noqa: BLE001  (a miss or a stale entry: take the full path)
            return None
        if callbacks[kind].cache_hits != 1:
            return None
        _CALLBACKS[key] = callbacks[kind]
    return _assemble(model, point_fn, _layout(model, point_fn), callbacks, shared_vars, shared_data)


def _assemble(model, point_fn, layout, callbacks, shared_vars, shared_data, functions=(None, None)):
    """nutpie's model object from the callbacks, the layout and the model's shared data."""
    from nutpie import compile_pymc as nc

    names, shapes = layout["names"], layout["shapes"]
    shape_info = (names, layout["slices"], shapes)
    n_free = len(model.free_RVs)
    shared_keys = {var: key for key, var in shared_vars.items()}
    dims, coords = nc._prepare_dims_and_coords(model, shape_info, layout["reparameterized"])
    return nc.CompiledPyMCModel(
        _n_dim=layout["n_dim"], dims=dims, _coords=coords, _shapes=dict(zip(names, shapes)),
        compiled_logp_func=callbacks["logp"], compiled_expand_func=callbacks["expand"],
        initial_point_func=nc._rv_dict_to_flat_array_wrapper(point_fn, names=names[:n_free], shapes=shapes[:n_free]),
        shared_data=shared_data, shared_var_keys=shared_keys, user_data=nc.make_user_data(shared_keys, shared_data),
        n_expanded=layout["n_expanded"], shape_info=shape_info, logp_func=functions[0], expand_func=functions[1],
        reparameterized_names=layout["reparameterized"],
    )


def _shared_values(shared_vars: dict) -> dict:
    out = {}
    for key, var in shared_vars.items():
        out[key] = np.array(var.get_value(), order="C", copy=True)
        out[key].flags.writeable = False
    return out


def _record_path(structure_key: str):
    import pytensor

    return Path(pytensor.config.base_compiledir) / "scalefit_models" / f"{structure_key}.json"


def _record_layout(shared_keys, shared_data) -> dict:
    """Where each shared variable's pointer, size and shape sit in nutpie's record, in uint64 slots.

    The record (nutpie's `make_user_data`) is packed: all pointers, then all sizes, then every
    variable's shape entries, each 8 bytes."""
    keys = list(shared_keys.values())
    n = len(keys)
    assert np.dtype(np.uintp).itemsize == np.dtype(np.uint).itemsize == 8
    offsets, at = {}, 2 * n
    for i, key in enumerate(keys):
        ndim = shared_data[key].ndim
        offsets[key] = (i, n + i, tuple(range(at, at + ndim)))
        at += ndim
    return {"offsets": offsets, "length": at, "dtypes": {k: shared_data[k].dtype for k in keys}}


def _unpack_lines(keys, layout) -> list[str]:
    lines = [f"    ud = numba.carray(user_data_, ({max(layout['length'], 1)},), np.uint64)"]
    for j, key in enumerate(keys):
        ptr, size, shape = layout["offsets"][key]
        dtype = np.dtype(layout["dtypes"][key]).name
        flat = f"numba.carray(address_as_void_pointer(ud[{ptr}]), int(ud[{size}]), np.{dtype})"
        dims = "".join(f"int(ud[{s}]), " for s in shape)
        lines.append(f"    a{j} = {flat}.reshape(({dims}))")
    return lines


def _source(kind: str, keys: list[str], layout: dict) -> str:
    """The callback's source: unpack the data pointers from nutpie's record, call `inner`. The
    point's length comes from nutpie at each call (the compiled code serves any size)."""
    # star-call on tuples of at most 20: numba cannot compile a call with over 30 arguments
    names = ["x", *(f"a{j}" for j in range(len(keys)))]
    call = "*(" + " + ".join(f"({', '.join(names[i:i + 20])},)" for i in range(0, len(names), 20)) + ")"
    body = _unpack_lines(keys, layout) if keys else []
    if kind == "logp":
        return "\n".join([
            "def logp_callback(dim, x_, out_, logp_, user_data_):",
            *body,
            "    x = numba.carray(x_, (dim,))",
            "    out = numba.carray(out_, (dim,))",
            "    logp = numba.carray(logp_, ())",
            "    try:",
            f"        value, grad = inner({call})",
            "    except Exception:",
            "        return 1",
            "    if grad.shape[0] != dim:",
            "        return -1",
            "    logp[()] = value",
            "    out[...] = grad",
            "    if not np.all(np.isfinite(out)):",
            "        return 3",
            "    if not np.isfinite(value):",
            "        return 4",
            "    return 0",
        ])
    return "\n".join([
        "def expand_callback(dim, expanded, x_, out_, user_data_):",
        *body,
        "    x = numba.carray(x_, (dim,))",
        "    out = numba.carray(out_, (expanded,))",
        "    try:",
        f"        (values,) = inner({call})",
        "    except Exception:",
        "        return -2",
        "    if values.shape[0] != expanded:",
        "        return -1",
        "    out[...] = values",
        "    return 0",
    ])


def _cache_key(function, src: str) -> str | None:
    """From PyTensor's own key for the wrapped function; None when PyTensor does not cache it."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(function.vm.jit_fn.py_func)
    if inner_key is None:
        return None
    return hashlib.sha256("\n".join([_TEMPLATE_VERSION, inner_key, src]).encode()).hexdigest()


def _cfunc(numba, kind: str, src: str, inner, cache_key: str | None):
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    name = f"{kind}_callback"
    fn = compile_numba_function_src(
        # __name__ lets numba rebuild the function's environment when it loads it from the cache
        src, name, global_env={"__name__": __name__, "numba": numba, "np": np, "inner": inner,
                               "address_as_void_pointer": address_as_void_pointer},
        cache_key=cache_key)
    t = numba.types
    ptr = t.CPointer(t.double)
    # nutpie's C signatures: logp(dim, x, grad, logp, data), expand(dim, n_expanded, x, out, data)
    args = (t.uint64, ptr, ptr, ptr, t.voidptr) if kind == "logp" else (t.uint64, t.uint64, ptr, ptr, t.voidptr)
    return numba.cfunc(t.int64(*args), cache=cache_key is not None)(fn)
