"""Adapter for every gymnax environment (gymnax 1.x: six-value ``step``).

:func:`from_gymnax` wraps an environment instance and its parameters (data: they may be traced,
so a ``vmap`` over parameter settings is one program); :func:`make_gymnax` builds one by name.

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
    """Wrap gymnax environment ``name``: :func:`from_gymnax` of ``gymnax.make(name)``.

    Args:
        name: a gymnax id, e.g. ``"CartPole-v1"``, ``"Breakout-MinAtar"``.
        max_steps: episode cutoff; defaults to the environment's ``max_steps_in_episode``.
        **env_kwargs: passed to ``gymnax.make``.
    """
    import gymnax

    if (problem := missing_download(name)) is not None:
        raise ValueError(problem)
    env, params = gymnax.make(name, **env_kwargs)
    return from_gymnax(env, params, max_steps=max_steps, name=name)


def _check_scalars(env_params, default) -> None:
    """Refuse a batch of parameters where the task takes one setting (a scalar field given as
    an array: stacked settings passed without ``vmap``)."""
    if jax.tree.structure(env_params) != jax.tree.structure(default):
        return  # _static_params names the mismatch when it matters
    for (path, leaf), ref in zip(jax.tree_util.tree_leaves_with_path(env_params),
                                 jax.tree.leaves(default), strict=True):
        if np.ndim(ref) == 0 and np.ndim(leaf) != 0:
            raise TypeError(
                f"env_params{jax.tree_util.keystr(path)} has shape {tuple(np.shape(leaf))}, "
                f"a scalar in default_params: a task takes one setting (vmap over stacked ones)"
            )


def _static_params(env_params, default):
    """``env_params`` with every traced leaf replaced by its value in ``default``: the values
    the static information (cutoff, spaces, behavior size) is read from."""
    traced = lambda leaf: isinstance(leaf, jax.core.Tracer)  # noqa: E731
    if not any(traced(leaf) for leaf in jax.tree.leaves(env_params)):
        return env_params
    if jax.tree.structure(env_params) != jax.tree.structure(default):
        raise TypeError(
            f"env_params must have the structure of the environment's default_params, got "
            f"{jax.tree.structure(env_params)}"
        )
    return jax.tree.map(lambda leaf, d: d if traced(leaf) else leaf, env_params, default)


def from_gymnax(env, env_params=None, *, max_steps: int | None = None,
                name: str | None = None) -> Task:
    """A task from a gymnax environment instance and its parameters.

    ``env_params`` are data: ``reset`` and ``step`` pass them to ``env.reset_env`` /
    ``env.step_env`` as they are, so they may be traced. Build the task inside the function you
    transform and the parameters become that function's input: one compiled program serves every
    value, and a ``vmap`` over stacked parameters runs all settings at once::

        env, params = gymnax.make("CartPole-v1")
        both = jax.tree.map(lambda a, b: jnp.stack([a, b]), params,
                            params.replace(length=1.0))
        fitness = jax.jit(jax.vmap(lambda p: el.evaluate(
            key, el.tasks.from_gymnax(env, p, max_steps=500), policy, population).fitness))(both)

    Static information — what must be a Python value when the program is built: the cutoff
    ``max_steps``, the observation shape, the action space (kind, size, bounds) and the behavior
    size — is read from ``env_params`` with each traced leaf (inside ``jit``/``vmap``) replaced
    by its value in ``env.default_params``: never from traced values. So a traced
    ``max_steps_in_episode`` ends episodes through gymnax's own time limit, but never after the
    cutoff (then the default's; ``max_steps`` sets both to one value), and traced bounds
    (Pendulum's ``max_torque``) act inside ``step_env`` while the task's :class:`ActionSpace`
    reports the static ones.

    The rules of :func:`make_gymnax` apply: ``step`` is gymnax's ``step_env`` (no auto-reset)
    with ``done = terminated | is_truncated``, keyed like gymnax's ``step``; MinAtar games are
    described by :func:`minatar_ram`, every other environment by its final observation.

    Args:
        env: a gymnax environment (``gymnax.environments.environment.Environment``); gymnax's
            wrappers are refused: they auto-reset or change observations through ``step``,
            which the task does not call.
        env_params: the environment's parameters (``env.default_params`` if ``None``), a value
            of the same type as ``env.default_params``; concrete or traced.
        max_steps: episode cutoff. If given, it also replaces ``max_steps_in_episode`` in
            ``env_params`` (so gymnax's time limit agrees with it). Default: the static
            ``max_steps_in_episode`` (see above).
        name: the task's name; default ``env.name``.

    Raises:
        TypeError: ``env`` is not a gymnax environment, or ``env_params`` is not of the type of
            ``env.default_params``.
        ValueError: ``max_steps < 1``.
    """
    from gymnax.environments.environment import Environment

    if not isinstance(env, Environment):
        raise TypeError(
            f"env must be a gymnax environment (gymnax.environments.environment.Environment, "
            f"not a wrapper), got {type(env).__name__}"
        )
    default = env.default_params
    if env_params is None:
        env_params = default
    elif type(env_params) is not type(default):
        raise TypeError(
            f"env_params must be a {type(default).__module__}.{type(default).__name__} "
            f"(the type of {env.name}'s default_params), got {type(env_params).__name__}"
        )
    else:
        _check_scalars(env_params, default)
    static = _static_params(env_params, default)
    if max_steps is not None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        # Keep the field's own type: some environments declare it as a float (BernoulliBandit:
        # ``100.0``) and mix it with other floats in ``lax.select``, which rejects an int.
        field = default.max_steps_in_episode
        cutoff_value = float(int(max_steps)) if isinstance(field, float) else int(max_steps)
        env_params = env_params.replace(max_steps_in_episode=cutoff_value)
        static = static.replace(max_steps_in_episode=cutoff_value)
    cutoff = int(static.max_steps_in_episode)
    obs_shape = tuple(env.observation_space(static).shape)
    action_space = _action_space(env.action_space(static))
    params = env_params

    def reset(key):
        return env.reset_env(key, params)

    def step(key, state, action):
        # gymnax's ``step`` hands ``split(key)[0]`` to ``step_env`` (and the other half to its
        # auto-reset); do the same so stochastic transitions match ``env.step`` key for key.
        key_step, _ = jax.random.split(key)
        obs, state, reward, terminated, _ = env.step_env(key_step, state, action, params)
        done = jnp.logical_or(terminated, env.is_truncated(state, params))
        return obs, state, jnp.asarray(reward, jnp.float32).reshape(()), done.reshape(())

    minatar = env.name.endswith("-MinAtar") or type(env).__module__.startswith(
        "gymnax.environments.minatar")
    if minatar:
        behavior = minatar_ram
        obs0, state0 = jax.eval_shape(lambda k: env.reset_env(k, static), jax.random.PRNGKey(0))
        behavior_size = int(jax.eval_shape(minatar_ram, obs0, state0).shape[0])
    else:
        behavior = flat_observation_behavior
        behavior_size = int(np.prod(obs_shape))
    return Task(
        name=env.name if name is None else str(name),
        reset=reset,
        step=step,
        behavior=behavior,
        observation_shape=obs_shape,
        action_space=action_space,
        max_steps=cutoff,
        behavior_size=behavior_size,
    )
