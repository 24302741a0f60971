"""Actors: how one member acts during an episode — its policy, and what is wrapped around it.

A rollout (:func:`evojax_lab.rollout`) steps a task with an :class:`Actor`::

    carry = actor.start(obs, reset_key)
    every step t:
        key, step_key = split(key)
        action, carry, key = actor.act(params, obs, carry, t, key)
        obs, env_state, reward, done = task.step(step_key, env_state, action)
    outputs = actor.finish(carry, length)       # a dict of per-episode results

The plain actor of a policy (:func:`acting`) carries nothing. Each wrapper adds one thing to
any actor, and its carry holds only what that thing needs:

* :func:`normalizing` — the ES paper's observation normalization: the inner actor sees
  ``normalize_obs(stats, obs)`` with statistics fixed for the generation, and the wrapper keeps
  Welford statistics of the raw observations (output ``"obs_stats"``, an :class:`ObsStats`);
* :func:`noisy` — Gaussian noise of std ``std`` on every action (the ES paper's 0.01 on MuJoCo),
  drawn from the loop's key;
* :func:`recording` — a uniform sample of ``K`` of the observations the inner actor sees
  (reservoir sampling with its own key; output ``"experiences"`` ``[K, *obs]``), the parent
  experiences of the safe mutations.

Wrappers compose from the inside out: ``normalizing(recording(noisy(acting(policy), 0.01), K),
stats)`` records the normalized observations a noisy policy acts on; :func:`actor_for` builds
exactly this stack from an evaluation's options (``obs_norm``, ``experiences``,
``action_noise``). The rollout passes any :class:`Actor` through, so a policy with state of its
own across steps is one more wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab.policies.normalization import (
    ObsStats,
    normalize_obs,
    obs_stats_init,
    obs_stats_update,
)


class Actor(NamedTuple):
    """How a member acts in an episode (see the module docstring).

    Attributes:
        start: ``start(obs, reset_key) -> carry`` at the start of an episode.
        act: ``act(params, obs, carry, t, key) -> (action, carry, key)`` at step ``t``;
            ``key`` is the loop's key after the step key was split off, returned (advanced if
            the actor drew from it).
        finish: ``finish(carry, length) -> dict`` of per-episode outputs.
    """

    start: Callable[[Any, jax.Array], Any]
    act: Callable[[Any, Any, Any, jax.Array, jax.Array], tuple[Any, Any, jax.Array]]
    finish: Callable[[Any, jax.Array], dict]


def apply_fn_of(policy) -> Callable[[Any, Any], Any]:
    """``apply(params, obs) -> action`` of a flax module (or a plain callable)."""
    apply = getattr(policy, "apply", None)
    if apply is not None:
        return apply
    if callable(policy):
        return policy
    raise TypeError(f"policy must be a flax module or a callable, got {type(policy).__name__}")


def acting(policy) -> Actor:
    """The plain actor: ``policy.apply(params, obs)``, no carry, no outputs."""
    if isinstance(policy, Actor):
        return policy
    apply = apply_fn_of(policy)
    return Actor(
        start=lambda obs, key: (),
        act=lambda params, obs, carry, t, key: (apply(params, obs), carry, key),
        finish=lambda carry, length: {},
    )


def normalizing(actor: Actor, stats: ObsStats) -> Actor:
    """The inner actor sees ``normalize_obs(stats, obs)``; Welford statistics of the raw
    observations are kept (output ``"obs_stats"``)."""

    def start(obs, key):
        return actor.start(obs, key), obs_stats_init(jnp.shape(obs))

    def act(params, obs, carry, t, key):
        inner, seen = carry
        action, inner, key = actor.act(params, normalize_obs(stats, obs), inner, t, key)
        return action, (inner, obs_stats_update(seen, obs)), key

    def finish(carry, length):
        return {**actor.finish(carry[0], length), "obs_stats": carry[1]}

    return Actor(start, act, finish)


def noisy(actor: Actor, std: float) -> Actor:
    """Gaussian noise of standard deviation ``std`` on every action (continuous actions)."""
    std = float(std)
    if not std >= 0:
        raise ValueError(f"action_noise must be >= 0, got {std}")

    def act(params, obs, carry, t, key):
        action, carry, key = actor.act(params, obs, carry, t, key)
        key, noise_key = jax.random.split(key)
        noise = jax.random.normal(noise_key, jnp.shape(action),
                                  jnp.result_type(action, jnp.float32))
        return action + std * noise, carry, key

    return actor._replace(act=act)


def reservoir_add(buffer, key, t, obs):
    """Reservoir sampling (Algorithm R): after ``t + 1`` observations every one of them is in
    the ``K``-slot ``buffer`` with probability ``K / (t + 1)``."""
    size = buffer.shape[0]
    j = jnp.where(t < size, t, jax.random.randint(key, (), 0, jnp.maximum(t + 1, 1)))
    keep = j < size
    slot = jnp.minimum(j, size - 1)
    row = jnp.where(keep, obs.astype(buffer.dtype), buffer[slot])
    return buffer.at[slot].set(row)


def fill_reservoir(buffer, count):
    """Slots past ``count`` (an episode shorter than ``K``) repeat the filled ones cyclically,
    so every row is a real observation (no mask needed downstream)."""
    size = buffer.shape[0]
    idx = jnp.arange(size)
    source = jnp.where(idx < count, idx, idx % jnp.maximum(count, 1))
    return buffer[source]


def recording(actor: Actor, size: int) -> Actor:
    """Keep a uniform sample of ``size`` of the observations the inner actor sees (output
    ``"experiences"``, ``[size, *obs]``; an episode shorter than ``size`` repeats its
    observations). The sample draws from its own key (``fold_in(reset_key, 0x5AFE)``), so
    returns do not change when it is asked for."""
    size = int(size)
    if size < 1:
        raise ValueError(f"experiences must be >= 1, got {size}")

    def start(obs, key):
        buffer = jnp.zeros((size, *jnp.shape(obs)), jnp.float32)
        return actor.start(obs, key), buffer, jax.random.fold_in(key, 0x5AFE)

    def act(params, obs, carry, t, key):
        inner, buffer, sample_key = carry
        buffer = reservoir_add(buffer, jax.random.fold_in(sample_key, t), t, obs)
        action, inner, key = actor.act(params, obs, inner, t, key)
        return action, (inner, buffer, sample_key), key

    def finish(carry, length):
        return {**actor.finish(carry[0], length), "experiences": fill_reservoir(carry[1], length)}

    return Actor(start, act, finish)


def actor_for(policy, *, obs_norm: ObsStats | None = None, experiences: int = 0,
              action_noise: float = 0.0, continuous: bool = True) -> Actor:
    """The actor an evaluation's options describe: ``policy``, with action noise, recording
    ``experiences`` observations, and normalizing with ``obs_norm``, each only when asked."""
    actor = acting(policy)
    if action_noise:
        if not continuous:
            raise ValueError("action_noise needs a continuous action space")
        actor = noisy(actor, action_noise)
    if experiences:
        actor = recording(actor, experiences)
    if obs_norm is not None:
        actor = normalizing(actor, obs_norm)
    return actor


__all__ = [
    "Actor",
    "actor_for",
    "acting",
    "apply_fn_of",
    "fill_reservoir",
    "normalizing",
    "noisy",
    "recording",
    "reservoir_add",
]
