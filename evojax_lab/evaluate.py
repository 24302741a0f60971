"""Rollouts over a population: vmap over members and episodes, a done-masked loop over steps.

Episodes never auto-reset: a member's loop stops counting at ``done`` and keeps its final
observation and state for the behavior descriptor. Nothing per step is stored; a rollout
returns its return, its length and the behavior.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from evojax_lab.core.tree import batch_size
from evojax_lab.core.types import Evaluation


def apply_fn_of(policy) -> Callable[[Any, Any], Any]:
    """``apply(params, obs) -> action`` of a flax module (or a plain callable)."""
    apply = getattr(policy, "apply", None)
    if apply is not None:
        return apply
    if callable(policy):
        return policy
    raise TypeError(f"policy must be a flax module or a callable, got {type(policy).__name__}")


def rollout(key: jax.Array, task, policy, params, *, max_steps: int | None = None):
    """One episode of ``policy`` with ``params`` on ``task``.

    Returns:
        ``(episode_return, length, behavior)``. The loop runs until ``done`` or the cutoff
        (``max_steps``, default ``task.max_steps``); under vmap it runs until every member is
        done, finished members frozen by the loop's own mask.
    """
    apply = apply_fn_of(policy)
    max_steps = task.max_steps if max_steps is None else int(max_steps)
    key, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)

    def cond(carry):
        t, _, _, done, _, _ = carry
        return jnp.logical_and(t < max_steps, jnp.logical_not(done))

    def body(carry):
        t, obs, state, _, ret, key = carry
        key, step_key = jax.random.split(key)
        action = apply(params, obs)
        obs, state, reward, done = task.step(step_key, state, action)
        return t + 1, obs, state, done, ret + reward, key

    init = (jnp.zeros((), jnp.int32), obs, state, jnp.zeros((), bool), jnp.zeros(()), key)
    t, obs, state, _, ret, _ = jax.lax.while_loop(cond, body, init)
    return ret, t, task.behavior(obs, state)


def evaluate(
    key: jax.Array,
    task,
    policy,
    population,
    *,
    episodes: int = 1,
    chunk_size: int | None = None,
    common_random_numbers: bool = True,
    max_steps: int | None = None,
) -> Evaluation:
    """Evaluate every member of ``population`` (a params pytree with a leading axis).

    Args:
        key: PRNG key.
        task: a :class:`~evojax_lab.tasks.Task`.
        policy: a flax module whose ``apply(params, obs)`` returns an action.
        population: parameter pytree with leading population axis ``P``.
        episodes: episodes per member; fitness is their mean return.
        chunk_size: if set, members are evaluated ``chunk_size`` at a time (``lax.map``), so
            rollout memory is bounded by the chunk, not by ``P``. Results equal the unchunked ones.
        common_random_numbers: all members see the same episode keys (same starting states),
            which lowers the variance of comparisons between members. If False each member gets
            its own keys ``fold_in(key, member)``.
        max_steps: episode cutoff (default ``task.max_steps``).

    Returns:
        :class:`~evojax_lab.Evaluation` with ``fitness [P]``, ``behavior [P, B]`` (last
        episode) and ``steps [P]`` (environment steps actually taken).
    """
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    pop_size = batch_size(population)
    if common_random_numbers:
        keys = jnp.broadcast_to(
            jax.random.split(key, episodes)[None], (pop_size, episodes, *key.shape)
        )
    else:
        keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i), episodes))(
            jnp.arange(pop_size)
        )

    def one_member(args):
        params, member_keys = args
        ret, length, behavior = jax.vmap(
            lambda k: rollout(k, task, policy, params, max_steps=max_steps)
        )(member_keys)
        return ret.mean(), length.sum(), behavior[-1]

    if chunk_size is None or int(chunk_size) >= pop_size:
        fitness, steps, behavior = jax.vmap(one_member)((population, keys))
    else:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        fitness, steps, behavior = jax.lax.map(
            one_member, (population, keys), batch_size=int(chunk_size)
        )
    return Evaluation(fitness=fitness, behavior=behavior, steps=steps)
