"""Fitness shaping: plain, composable functions of a fitness vector (always maximized)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _nan_to_worst(fitness: jax.Array) -> jax.Array:
    return jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)


def ranks(fitness: jax.Array) -> jax.Array:
    """Ascending ranks 0..P-1; ties keep their order; NaN counts as the worst fitness.

    A NaN ranks below every number, ``-inf`` included (NaNs tie with each other, by order).
    """
    fitness = jnp.asarray(fitness)
    nan = jnp.isnan(fitness)
    # Two stable sorts = lexicographic order by (not NaN, fitness): NaNs first, by index.
    by_value = jnp.argsort(_nan_to_worst(fitness), stable=True)
    order = by_value[jnp.argsort(jnp.logical_not(nan[by_value]), stable=True)]
    return jnp.zeros(fitness.shape[0], jnp.int32).at[order].set(
        jnp.arange(fitness.shape[0], dtype=jnp.int32)
    )


def centered_rank(fitness: jax.Array) -> jax.Array:
    """Centered ranks of Salimans et al. (2017): ``u = rank / (P - 1) - 0.5``.

    ``u`` lies in ``[-0.5, 0.5]`` and sums to 0. Ties are broken by order (stable sort) and a
    NaN fitness gets the worst rank.
    """
    fitness = jnp.asarray(fitness)
    p = fitness.shape[0]
    if p < 2:
        raise ValueError(f"centered_rank needs at least 2 fitness values, got {p}")
    return ranks(fitness).astype(jnp.float32) / (p - 1) - 0.5


def z_score(fitness: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(f - mean) / std``; NaN fitness is first replaced by the worst finite value."""
    fitness = jnp.asarray(fitness, jnp.float32)
    finite = jnp.isfinite(fitness)
    worst = jnp.min(jnp.where(finite, fitness, jnp.inf))
    worst = jnp.where(jnp.any(finite), worst, 0.0)
    fitness = jnp.where(finite, fitness, worst)
    return (fitness - fitness.mean()) / (fitness.std() + eps)


def weight_decay(fitness: jax.Array, flat_params: jax.Array, coeff: float) -> jax.Array:
    """Fitness minus an L2 penalty ``coeff * mean(theta**2)`` per member.

    This is the fitness-space form used by some ES variants; OpenAI-ES instead applies its L2
    coefficient inside the optimizer step (see ``openai_es``). ``flat_params`` is ``[P, N]``.
    """
    return fitness - coeff * jnp.mean(jnp.square(flat_params), axis=-1)

