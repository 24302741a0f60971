"""Sharding hints that read the mesh in context (``jax.set_mesh``); no-ops without one.

Strategies stay device-agnostic: they mark arrays whose leading axis is the population (or a
batch of perturbations) with :func:`constrain_population`, and the trainer decides the mesh.
"""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec

POP_AXIS = "pop"


def population_axis_size() -> int:
    """Number of devices the population axis is split over in the current context (1 if none)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or POP_AXIS not in mesh.axis_names:
        return 1
    return int(dict(mesh.shape)[POP_AXIS])


def constrain_population(tree):
    """Shard every leaf's leading axis over the population axis of the mesh in context."""
    if population_axis_size() <= 1:
        return tree
    return jax.tree.map(
        lambda x: jax.lax.with_sharding_constraint(
            x, PartitionSpec(POP_AXIS, *([None] * (x.ndim - 1)))
        ),
        tree,
    )


def constrain_replicated(tree):
    """Replicate every leaf over the mesh in context."""
    if population_axis_size() <= 1:
        return tree
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, PartitionSpec()), tree)
