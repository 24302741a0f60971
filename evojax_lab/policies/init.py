"""Parameter initializers (pure functions of a key and a parameter template)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.core.exact import round_significand, round_significand_np, to_key


def _path_names(path) -> tuple[str, ...]:
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
        else:
            names.append(str(entry))
    return tuple(names)


def _natural(names: tuple[str, ...]):
    return tuple(
        tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)) for name in names
    )


def output_kernel(params_template, output_layer: str | None = None) -> tuple[str, ...] | None:
    """The path of the output layer's kernel, as :func:`reference_init` picks it.

    Kernels are the leaves with 2 or more dimensions (Dense ``[in, out]``, Conv
    ``[kh, kw, in, out]``). The output layer is, in this order: the kernel inside a module named
    ``output_layer`` if given; else the kernel of a module named ``"output"`` (our CNN policies
    name their last layer so); else the last kernel when the paths are sorted naturally
    (``Dense_2`` before ``Dense_10``), which is the last layer of flax's auto-named
    ``Dense_0 .. Dense_k`` MLPs and ``Conv_* .. Dense_*`` networks.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params_template)[0]
    kernels = [_path_names(p) for p, x in leaves if len(np.shape(x)) >= 2]
    if not kernels:
        return None
    if output_layer is not None:
        hits = [p for p in kernels if output_layer in p[:-1]]
        if len(hits) != 1:
            raise ValueError(
                f"output_layer={output_layer!r} matches {len(hits)} kernels; kernels: {kernels}"
            )
        return hits[0]
    named = [p for p in kernels if len(p) >= 2 and p[-2] == "output"]
    if len(named) == 1:
        return named[0]
    return max(kernels, key=_natural)


def reference_init(
    key: jax.Array,
    params_template,
    *,
    std: float = 1.0,
    output_std: float = 0.1,
    output_layer: str | None = None,
):
    """The Deep GA's initialization (Such et al. 2017, GPU code): for every kernel
    ``w ~ N(0, 1) * std / sqrt(fan_in)`` with ``std = 1`` (``output_std = 0.1`` for the output
    layer), biases 0.

    Works for any flax Dense/Conv parameter pytree: a leaf with 2 or more dimensions is a kernel
    with ``fan_in = prod(shape[:-1])`` (``in`` for Dense, ``kh * kw * in`` for Conv); the output
    layer is found by :func:`output_kernel`; a 1-D leaf named ``"scale"`` (a normalization
    layer's) is 1 and every other leaf 0. The samples come from one ``normal(key, [N])`` over the
    leaves in tree order; samples and scales are rounded to 12 significant bits so every weight
    is an exact product (see the module docstring). ``params_template`` is only read for its
    structure, shapes and dtypes (arrays or ``jax.ShapeDtypeStruct``).

    ``key`` may be a PRNG key or a ``uint32`` seed.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params_template)
    out_path = output_kernel(params_template, output_layer)
    sizes = [int(np.prod(np.shape(x), dtype=np.int64)) for _, x in leaves]
    eps = round_significand(jax.random.normal(to_key(key), (sum(sizes),), jnp.float32))
    out, offset = [], 0
    for (path, leaf), size in zip(leaves, sizes, strict=True):
        shape, dtype = tuple(np.shape(leaf)), getattr(leaf, "dtype", jnp.float32)
        names = _path_names(path)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1]))
            scale = (output_std if names == out_path else std) / np.sqrt(fan_in)
            scale = round_significand_np(scale)
            value = eps[offset:offset + size].reshape(shape) * scale
        elif names and names[-1] == "scale":
            value = jnp.ones(shape, jnp.float32)
        else:
            value = jnp.zeros(shape, jnp.float32)
        out.append(value.astype(dtype))
        offset += size
    return jax.tree_util.tree_unflatten(treedef, out)


__all__ = ["output_kernel", "reference_init"]
