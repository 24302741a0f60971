"""Small pytree helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def num_params(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))


def ravel(params):
    """Flatten a pytree to one float vector; returns ``(flat, unravel)``."""
    return ravel_pytree(params)


def batch_size(population) -> int:
    """Leading-axis size of a batched pytree (checks all leaves agree)."""
    sizes = {x.shape[0] for x in jax.tree.leaves(population)}
    if len(sizes) != 1:
        raise ValueError(f"population leaves disagree on the population axis: sizes {sizes}")
    return sizes.pop()


def take(population, index):
    """Member ``index`` of a batched pytree."""
    return jax.tree.map(lambda x: x[index], population)


def stack(trees):
    """Stack a list of pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
