"""The task protocol: explicit state and key, no auto-reset, a behavior descriptor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class ActionSpace(NamedTuple):
    """``kind`` is ``"discrete"`` (``n`` actions, int scalar) or ``"continuous"`` (``shape``,
    bounds ``low`` / ``high`` as floats or arrays)."""

    kind: str
    n: int = 0
    shape: tuple = ()
    low: Any = None
    high: Any = None


class Task(NamedTuple):
    """A JAX-native episodic task.

    Attributes:
        name: registry name.
        reset: ``reset(key) -> (obs, state)``.
        step: ``step(key, state, action) -> (obs, state, reward, done)``. ``done`` covers both
            termination and the episode cutoff; the task never auto-resets (the rollout stops
            counting at ``done`` and keeps the final state).
        behavior: ``behavior(obs, state) -> [B]`` float32 behavior descriptor of a (final) state.
        observation_shape: shape of one observation.
        action_space: an :class:`ActionSpace`.
        max_steps: episode cutoff (the rollout never runs longer).
        behavior_size: ``B``.
    """

    name: str
    reset: Callable[[jax.Array], tuple[Any, Any]]
    step: Callable[[jax.Array, Any, Any], tuple[Any, Any, jax.Array, jax.Array]]
    behavior: Callable[[Any, Any], jax.Array]
    observation_shape: tuple
    action_space: ActionSpace
    max_steps: int
    behavior_size: int


def flat_observation_behavior(obs, state) -> jax.Array:
    """Default behavior descriptor: the final observation, flattened, as float32."""
    del state
    return jnp.ravel(jnp.asarray(obs, jnp.float32))


class FunctionTask(NamedTuple):
    """A task that is a plain function of the parameters (no environment, no policy).

    ``fn(key, params) -> fitness`` (a scalar, maximized) or ``-> (fitness, behavior[B])``.
    ``steps`` in an Evaluation of a function task counts function evaluations.
    """

    name: str
    fn: Callable[[jax.Array, Any], Any]
    behavior_size: int = 0


def function(fn: Callable[[jax.Array, Any], Any], *, name: str = "function",
             behavior_size: int = 0) -> FunctionTask:
    """Wrap ``fn(key, params) -> fitness`` (or ``(fitness, behavior)``) as a task.

    The fitness is **maximized** (as everywhere in evojax_lab): to minimize a loss, return
    ``-loss``. ``fitness`` is a scalar per call; ``behavior`` a ``[behavior_size]`` vector."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return FunctionTask(name=name, fn=fn, behavior_size=int(behavior_size))
