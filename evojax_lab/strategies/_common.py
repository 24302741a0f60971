"""Validation helpers shared by the strategy factories."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(name: str, value) -> None:
    """Raise if a concrete ``value`` is not > 0 (traced values cannot be checked here)."""
    try:
        v = float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")


def check_nonnegative(name: str, value) -> None:
    try:
        v = float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")


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
