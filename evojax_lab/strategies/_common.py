"""Validation helpers shared by the strategy factories."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evojax_lab.core.checks import check_nonnegative, check_positive, check_positive_int

__all__ = [
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
    "fitness_metrics",
    "fitness_of",
]


def fitness_of(evaluation, pop_size: int) -> jax.Array:
    """The ``[P]`` fitness vector of an Evaluation (or a bare array), shape-checked."""
    fitness = getattr(evaluation, "fitness", evaluation)
    fitness = jnp.asarray(fitness)
    if fitness.shape != (pop_size,):
        raise ValueError(
            f"fitness must have shape ({pop_size},) (one value per member), got {fitness.shape}"
        )
    return fitness.astype(jnp.float32)


def fitness_metrics(fitness: jax.Array) -> dict:
    nan = jnp.isnan(fitness)
    finite = jnp.where(nan, 0.0, fitness)
    count = jnp.maximum(jnp.sum(~nan), 1)
    return {
        "best_fitness": jnp.max(jnp.where(nan, -jnp.inf, fitness)),
        "mean_fitness": jnp.sum(finite) / count,
        "num_nan": jnp.sum(nan).astype(jnp.int32),
    }
