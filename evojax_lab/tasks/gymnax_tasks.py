"""Adapter for every gymnax environment (gymnax 1.x: six-value ``step``).

The adapter calls ``step_env`` (no auto-reset, so the final observation and state are kept) and
combines its ``terminated`` with gymnax's own time-limit check (``is_truncated``), exactly the
``done`` that gymnax's ``step`` reports as ``terminated | truncated``. The step key is split the
way gymnax's ``step`` splits it, so ``task.step(key, state, action)`` reproduces the
observation, state, reward and done of ``env.step(key, state, action, params)`` up to (and
including) the step that ends the episode, where gymnax would auto-reset and we do not.

Behavior descriptors: MinAtar games (``*-MinAtar``) describe an episode by their final
"RAM-like" state — every variable of the game's state (positions, timers, entity tables, brick
and alien maps; :func:`minatar_ram`) flattened to float32 in declaration order, leaving out the
step counter ``time`` and the ``terminal`` flag (the counter would make episode length dominate
distances). This plays the role of the Atari RAM the novelty-search papers use (final RAM
state). Every other environment is described by its final observation, flattened.

Observations are passed through unchanged (MinAtar frames stay ``[10, 10, C]``, FrozenLake's is
a scalar state index); policies flatten what they need. Actions are what gymnax expects: an int32
scalar for ``Discrete`` spaces, a float array of the ``Box`` shape (``(1,)`` for Pendulum) for
continuous ones.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.tasks.base import ActionSpace, Task, flat_observation_behavior


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def _action_space(space) -> ActionSpace:
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):
        return ActionSpace("discrete", n=int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(space.shape) if space.shape is not None else ()
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return ActionSpace("continuous", shape=shape, low=low, high=high)
    raise TypeError(f"unsupported gymnax action space {type(space).__name__}")


_RAM_SKIP = ("time", "terminal")


def minatar_ram(obs, state) -> jax.Array:
    """The RAM-like behavior of a MinAtar state: its variables flattened to float32, in
    declaration order, without ``time`` and ``terminal``."""
    del obs
    parts = [
        jnp.ravel(jnp.asarray(leaf, jnp.float32))
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if getattr(path[-1], "name", None) not in _RAM_SKIP
    ]
    return jnp.concatenate(parts)


#: gymnax environments that download data when built: the folder gymnax caches it in and its
#: files. evojax_lab never downloads at run time, so these build only once the files are there.
NEEDS_DOWNLOAD = {
    "MNISTBandit-bsuite": ("/tmp/mnist", ("train-images-idx3-ubyte.gz",
                                          "train-labels-idx1-ubyte.gz",
                                          "t10k-images-idx3-ubyte.gz",
                                          "t10k-labels-idx1-ubyte.gz")),
}


def missing_download(name: str) -> str | None:
    """Why gymnax environment ``name`` cannot be built offline, or ``None`` if it can."""
    if name not in NEEDS_DOWNLOAD:
        return None
    folder, files = NEEDS_DOWNLOAD[name]
    absent = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
    if not absent:
        return None
    return (f"{name} needs a download: gymnax fetches its data set from the internet when the "
            f"task is built, and evojax_lab does not download at run time; put "
            f"{', '.join(absent)} in {folder} first")


def make_gymnax(name: str, *, max_steps: int | None = None, **env_kwargs) -> Task:
    """Wrap gymnax environment ``name``.

    Args:
        name: a gymnax id, e.g. ``"CartPole-v1"``, ``"Breakout-MinAtar"``.
        max_steps: episode cutoff; defaults to the environment's ``max_steps_in_episode``.
        **env_kwargs: passed to ``gymnax.make``.
    """
    import gymnax

    if (problem := missing_download(name)) is not None:
        raise ValueError(problem)
    env, params = gymnax.make(name, **env_kwargs)
    if max_steps is not None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        # Keep the field's own type: some environments declare it as a float (BernoulliBandit:
        # ``100.0``) and mix it with other floats in ``lax.select``, which rejects an int.
        default = params.max_steps_in_episode
        cutoff_value = float(int(max_steps)) if isinstance(default, float) else int(max_steps)
        params = params.replace(max_steps_in_episode=cutoff_value)
    cutoff = int(params.max_steps_in_episode)
    obs_shape = tuple(env.observation_space(params).shape)
    action_space = _action_space(env.action_space(params))

    def reset(key):
        return env.reset_env(key, params)

    def step(key, state, action):
        # gymnax's ``step`` hands ``split(key)[0]`` to ``step_env`` (and the other half to its
        # auto-reset); do the same so stochastic transitions match ``env.step`` key for key.
        key_step, _ = jax.random.split(key)
        obs, state, reward, terminated, _ = env.step_env(key_step, state, action, params)
        done = jnp.logical_or(terminated, env.is_truncated(state, params))
        return obs, state, jnp.asarray(reward, jnp.float32).reshape(()), done.reshape(())

    if name.endswith("-MinAtar"):
        behavior = minatar_ram
        obs0, state0 = jax.eval_shape(reset, jax.random.PRNGKey(0))
        behavior_size = int(jax.eval_shape(minatar_ram, obs0, state0).shape[0])
    else:
        behavior = flat_observation_behavior
        behavior_size = int(np.prod(obs_shape))
    return Task(
        name=name,
        reset=reset,
        step=step,
        behavior=behavior,
        observation_shape=obs_shape,
        action_space=action_space,
        max_steps=cutoff,
        behavior_size=behavior_size,
    )
