"""Checks and small pieces shared by the strategy factories."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evojax_lab.core.checks import check_nonnegative, check_positive, check_positive_int

__all__ = [
    "check_asked",
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
    "fitness_metrics",
    "fitness_of",
    "require_evaluate",
    "total_steps",
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
    """Best and mean of the non-NaN fitness values (NaN when every value is NaN, never a made-up
    0.0) and how many were NaN."""
    nan = jnp.isnan(fitness)
    # best and count in one pass (both exact in any order)
    best, count = jax.lax.reduce(
        (jnp.where(nan, -jnp.inf, fitness), (~nan).astype(jnp.int32)),
        (jnp.float32(-jnp.inf), jnp.int32(0)),
        lambda a, b: (jnp.maximum(a[0], b[0]), a[1] + b[1]), (0,))
    some = count > 0
    return {
        "best_fitness": jnp.where(some, best, jnp.nan),
        "mean_fitness": jnp.where(some, jnp.sum(jnp.where(nan, 0.0, fitness))
                                  / jnp.maximum(count, 1), jnp.nan),
        "num_nan": (fitness.shape[0] - count).astype(jnp.int32),
    }


def check_asked(state) -> None:
    """Raise if ``state`` (concrete, outside jit) did not come from ``ask``.

    ``tell`` rebuilds the population from what ``ask`` recorded in the state it returned; the
    state from before ``ask`` (or from the last ``tell``) would silently give another update.
    Under ``jit`` the flag is traced and cannot be read; ``make_train`` always passes ``ask``'s.
    """
    try:
        asked = bool(state.asked)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError):
        return
    if not asked:
        raise ValueError(
            "tell got a state that did not come from ask: pass the state ask returned "
            "(population, state = strategy.ask(key, state); then tell(..., state))"
        )


def require_evaluate(evaluate, who: str, why: str):
    """``evaluate``, or a clear error saying why ``who``'s tell needs one."""
    if evaluate is None:
        raise ValueError(
            f"{who} {why}: tell needs evaluate= (a function evaluate(key, population, *, "
            "episodes=1, experiences=0) -> Evaluation); make_train passes one"
        )
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable, got {type(evaluate).__name__}")
    return evaluate


def total_steps(*evaluations) -> jax.Array:
    """The summed environment steps of evaluations (float32, for ``metrics["extra_steps"]``)."""
    total = jnp.zeros((), jnp.float32)
    for evaluation in evaluations:
        total = total + jnp.sum(jnp.asarray(evaluation.steps, jnp.float32))
    return total
