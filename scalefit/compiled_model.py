"""A nutpie model whose compiled code survives the process.

`nutpie.compile_pymc_model` wraps PyTensor's numba functions in two C callbacks (logp+gradient,
and the expansion to trace variables). PyTensor caches its own numba code on disk, but nutpie's
callbacks close over run-time objects, so numba recompiles them, and through them the whole model,
in every new process: ~35 of the ~45 s of a warm-cache compile on the bundled grid (2 cores).

Here the callbacks are generated as source whose only free names are importable objects and the
PyTensor function, and are registered with PyTensor's numba cache under a key derived from that
function's own cache key. A new process with a warm cache then loads them instead of compiling.
They read the data through nutpie's own pointer record, so the result is a regular nutpie
`CompiledPyMCModel`: `with_data` swaps data without recompiling, and sampling is unchanged.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Bump when the generated source changes: old cache entries must not match new code.
_TEMPLATE_VERSION = "1"

_LOGP_SIGNATURE = ("int64", "uint64", "double*", "double*", "double*", "voidptr")
_EXPAND_SIGNATURE = ("int64", "uint64", "uint64", "double*", "double*", "voidptr")


def compile_cached(model, initial_points=None):
    """Like `nutpie.compile_pymc_model(model, initial_points=...)` (numba backend), but cacheable."""
    import numba
    from nutpie import compile_pymc as nc
    from pymc.initial_point import make_initial_point_fn

    point_fn = nc._wrap_with_lock(make_initial_point_fn(
        model=model, overrides=initial_points, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs), return_transformed=True))
    n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = nc._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=point_fn)

    shared_data, shared_keys = {}, {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if var not in shared_keys:
            key = f"s{len(shared_keys)}"  # stable across processes, unlike nutpie's uuids
            shared_data[key] = np.array(var.get_value(), order="C", copy=True)
            shared_data[key].flags.writeable = False
            shared_keys[var] = key
    user_data = nc.make_user_data(shared_keys, shared_data)
    layout = _record_layout(shared_keys, shared_data)

    logp_c = _callback(numba, "logp", logp_pt, [shared_keys[v] for v in logp_pt.get_shared()], layout,
                       dict(n_dim=n_dim))
    expand_c = _callback(numba, "expand", expand_pt, [shared_keys[v] for v in expand_pt.get_shared()], layout,
                         dict(n_dim=n_dim, n_expanded=n_expanded))
    dims, coords = nc._prepare_dims_and_coords(model, shape_info, reparameterized)
    return nc.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=initial_point_fn,
        shared_data=shared_data, shared_var_keys=shared_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt, reparameterized_names=reparameterized,
    )


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


def _callback(numba, kind: str, function, keys: list[str], layout: dict, sizes: dict):
    """A numba C callback around a PyTensor numba function, cached on disk when PyTensor caches it."""
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    inner = function.vm.jit_fn
    args = "".join(f", a{j}" for j in range(len(keys)))
    body = _unpack_lines(keys, layout) if keys else []
    if kind == "logp":
        src = "\n".join([
            "def logp_callback(dim, x_, out_, logp_, user_data_):",
            f"    if dim != {sizes['n_dim']}:",
            "        return -1",
            *body,
            f"    x = numba.carray(x_, ({sizes['n_dim']},))",
            f"    out = numba.carray(out_, ({sizes['n_dim']},))",
            "    logp = numba.carray(logp_, ())",
            "    try:",
            f"        value, grad = inner(x{args})",
            "    except Exception:",
            "        return 1",
            "    logp[()] = value",
            "    out[...] = grad",
            "    if not np.all(np.isfinite(out)):",
            "        return 3",
            "    if not np.isfinite(value):",
            "        return 4",
            "    return 0",
        ])
        name, signature = "logp_callback", _LOGP_SIGNATURE
    else:
        src = "\n".join([
            "def expand_callback(dim, expanded, x_, out_, user_data_):",
            f"    if dim != {sizes['n_dim']} or expanded != {sizes['n_expanded']}:",
            "        return -1",
            *body,
            f"    x = numba.carray(x_, ({sizes['n_dim']},))",
            f"    out = numba.carray(out_, ({sizes['n_expanded']},))",
            "    try:",
            f"        (values,) = inner(x{args})",
            "    except Exception:",
            "        return -2",
            "    out[...] = values",
            "    return 0",
        ])
        name, signature = "expand_callback", _EXPAND_SIGNATURE
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    cache_key = None
    if inner_key is not None:
        cache_key = hashlib.sha256("\n".join([_TEMPLATE_VERSION, inner_key, src]).encode()).hexdigest()
    fn = compile_numba_function_src(
        # __name__ lets numba rebuild the function's environment when it loads it from the cache
        src, name, global_env={"__name__": __name__, "numba": numba, "np": np, "inner": inner,
                               "address_as_void_pointer": address_as_void_pointer},
        cache_key=cache_key)
    sig = numba.types.int64(*[_numba_type(numba, t) for t in signature[1:]])
    return numba.cfunc(sig, cache=cache_key is not None)(fn)


def _numba_type(numba, name: str):
    t = numba.types
    return {"uint64": t.uint64, "double*": t.CPointer(t.double), "voidptr": t.voidptr}[name]
