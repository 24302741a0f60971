"""Fitness shaping: plain, composable functions of a fitness vector (always maximized)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _nan_to_worst(fitness: jax.Array) -> jax.Array:
    return jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)


def ranks(fitness: jax.Array) -> jax.Array:
    """Ascending ranks in ``[0, P-1]`` (``float32``); tied values share their average rank; NaN
    counts as the worst fitness.

    A NaN ranks below every number, ``-inf`` included; NaNs tie with each other. The ranks sum
    to ``P(P-1)/2``; with no ties they are a permutation of ``0..P-1``.
    """
    fitness = jnp.asarray(fitness)
    p = fitness.shape[0]
    nan = jnp.isnan(fitness)
    # One stable sort, lexicographic by (not NaN, fitness): NaNs first, ties in index order.
    present, value, order = jax.lax.sort(
        (jnp.logical_not(nan), _nan_to_worst(fitness), jnp.arange(p, dtype=jnp.int32)),
        num_keys=2, is_stable=True)
    missing = jnp.logical_not(present)
    new = jnp.concatenate([jnp.ones(1, bool), (value[1:] != value[:-1])
                           | (missing[1:] != missing[:-1])])
    group = jnp.cumsum(new) - 1  # ties share a group (consecutive in sorted order)
    position = jnp.arange(p, dtype=jnp.float32)
    first = jax.ops.segment_min(position, group, num_segments=p)
    last = jax.ops.segment_max(position, group, num_segments=p)
    return jnp.zeros(p, jnp.float32).at[order].set(((first + last) / 2)[group])


def centered_rank(fitness: jax.Array) -> jax.Array:
    """Centered ranks of Salimans et al. (2017): ``u = rank / (P - 1) - 0.5``.

    ``u`` lies in ``[-0.5, 0.5]`` and sums to 0; a NaN fitness gets the worst rank. Tied values
    get equal utility, their average rank (REFERENCE section 1), so a generation without
    information (every fitness equal, or every one NaN) gives every member ``u = 0`` and an ES
    step of zero. **Differs from the reference code**, which breaks ties by position: there it
    costs little because the returns are laid out pair by pair (``+e1, -e1, +e2, ...``); with
    our ``[+e..., -e...]`` layout a positional tie-break would give every tied pair
    ``u+ - u- ~ -0.5``, a large step in a random direction.
    """
    fitness = jnp.asarray(fitness)
    p = fitness.shape[0]
    if p < 2:
        raise ValueError(f"centered_rank needs at least 2 fitness values, got {p}")
    r = ranks(fitness)
    # the middle rank is exactly 0 (``r / (P-1)`` may round to 0.5 + 1 ulp): an all-tied
    # generation moves nothing at all
    return jnp.where(2 * r == p - 1, 0.0, r / (p - 1) - 0.5)


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

