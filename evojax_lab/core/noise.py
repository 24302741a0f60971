"""Noise sources: a perturbation is an index, never a stored array of floats.

Two interchangeable sources sit behind the same two functions:

* :func:`fold_in` (default): ``eps_i = normal(fold_in(key, i), [N])``. No memory at all.
* :func:`table`: the shared noise table of Salimans et al. (2017): one float32 vector built
  once on the device from a fixed seed (123 by default); member ``i`` reads
  ``table[o_i : o_i + N]`` at an offset ``o_i`` drawn from ``fold_in(key, i)``.

A source has ``init() -> noise_state`` (``None`` for fold-in, the table array otherwise), which a
strategy keeps in its state so the table is built inside the jitted run and passed around as an
array (never captured as a compile-time constant), and :func:`sample` /
:func:`sample_flat` return ``eps`` for ``(key, index)`` and a parameter shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab.core.tree import ravel


class NoiseSource(NamedTuple):
    """Description of a noise source (static Python values only)."""

    kind: str  # "fold_in" or "table"
    size: int = 0
    seed: int = 123

    def init(self) -> Any:
        """The source's device state: ``None`` for fold-in, the float32 table otherwise."""
        if self.kind == "fold_in":
            return None
        return jax.random.normal(jax.random.PRNGKey(self.seed), (self.size,), jnp.float32)


def fold_in() -> NoiseSource:
    """Noise generated from ``fold_in(key, index)``: no table, no memory."""
    return NoiseSource("fold_in")


def table(size: int = 25_000_000, seed: int = 123) -> NoiseSource:
    """A shared float32 noise table of ``size`` entries built from ``seed``.

    The ES paper used 250M entries (1 GB); the default here is 25M (100 MB). The table must be
    larger than the number of parameters.
    """
    if int(size) <= 0:
        raise ValueError(f"noise table size must be positive, got {size}")
    return NoiseSource("table", int(size), int(seed))


def offset(source: NoiseSource, key: jax.Array, index, dim: int) -> jax.Array:
    """The table offset of perturbation ``index`` (table sources only)."""
    if source.size < dim:
        raise ValueError(
            f"noise table has {source.size} entries but the parameters need {dim}; "
            "use a larger table (noise.table(size=...))"
        )
    return jax.random.randint(jax.random.fold_in(key, index), (), 0, source.size - dim + 1)


def sample_flat(source: NoiseSource, noise_state, key: jax.Array, index, dim: int) -> jax.Array:
    """``eps`` of perturbation ``index`` as a flat float32 vector of length ``dim``."""
    if source.kind == "fold_in":
        return jax.random.normal(jax.random.fold_in(key, index), (dim,), jnp.float32)
    if source.kind == "table":
        if noise_state is None:
            raise ValueError("a table noise source needs its table: pass source.init()")
        return jax.lax.dynamic_slice(noise_state, (offset(source, key, index, dim),), (dim,))
    raise ValueError(f"unknown noise source kind {source.kind!r}; use 'fold_in' or 'table'")


def sample(source: NoiseSource, noise_state, key: jax.Array, index, params):
    """``eps`` of perturbation ``index`` as a pytree shaped like ``params``."""
    flat, unravel = ravel(params)
    return unravel(sample_flat(source, noise_state, key, index, flat.shape[0]))


def sample_batch(source: NoiseSource, noise_state, key, indices: jax.Array, dim: int):
    """``[len(indices), dim]`` noise rows (vmapped :func:`sample_flat`)."""
    return jax.vmap(lambda i: sample_flat(source, noise_state, key, i, dim))(indices)
