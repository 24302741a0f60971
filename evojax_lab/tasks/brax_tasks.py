"""Adapter for brax environments (``el.tasks.make("brax/<env>", backend=...)``) and the
deceptive U-traps of the novelty-search paper (``brax/humanoid_trap``, ``brax/ant_trap``).

brax is imported lazily (inside :func:`make_brax` and :func:`from_brax`, which wraps any brax
environment instance): importing evojax_lab stays light.

Episodes: ``reset`` calls the environment's ``reset`` and ``step`` its ``step`` (brax envs do not
auto-reset unless wrapped, and we never wrap them). The task's ``done`` is brax's termination
(``state.done``, e.g. the ant's or the humanoid's torso leaving the healthy height range) or the
cutoff ``max_steps`` (brax's own ``episode_length`` is 1,000). The rollout
(:func:`evojax_lab.evaluate.rollout`) stops counting at ``done``: no reward after termination,
and the final (terminating) state is the one the behavior descriptor sees. A step whose
observation or reward is not finite (a physics blow-up) also ends the episode, with reward 0.

Behavior: the final ``(x, y)`` of the torso (the root body, link 0), or of the centre of mass
(the mass-weighted positions of every link's centre of mass) with ``behavior="com"``, the
default for the humanoids (the NS-ES paper's humanoid behavior).

Backends (``backend=``): ``"spring"`` (the default: the cheapest on a CPU), ``"positional"``,
``"generalized"`` (brax's own default) and ``"mjx"``. On a busy 2-core CPU, hopper with random
actions and 64 parallel episodes ran at about 20,000 steps/s on spring, 3,500 positional,
1,800 generalized and 1,200 mjx; compiling one 100-step rollout took 65-115 s (ant on spring:
2,900 steps/s).

Traps (REFERENCE §6): three fixed box walls (``contype=0 conaffinity=1``: they touch what the
robot's own collision geoms touch, its feet, and nothing else) added to the environment's MJCF
before brax loads it, so they take part in the contacts of every backend. The humanoid's walls
are the paper's (centre, half sizes): front ``(5.5, 0) (0.1, 1.5, 2)``, sides ``(4, +-1.5)
(1.5, 0.1, 2)``, a U opening toward the start, standing on the floor (centre height = half
height). The ant is about 2.3 m across (feet 1.1 m from its centre), so its U is wider and
starts a little closer (``ANT_TRAP_WALLS``): front ``(5, 0) (0.1, 2, 1)``, sides ``(3.5, +-2)
(1.5, 0.1, 1)``. Rewards are the environment's own (forward velocity + alive bonus - costs): walking
straight at the wall is the deceptive local optimum.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.core.extras import require
from evojax_lab.tasks.base import ActionSpace, Task, flat_observation_behavior

#: brax 0.14's environments (``brax.envs.get_environment`` names), registered as
#: ``"brax/<name>"``.
BRAX_ENVS = (
    "ant",
    "fast",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)
BACKENDS = ("spring", "positional", "generalized", "mjx")
BEHAVIORS = ("torso", "com", "observation")
#: The trap tasks added on top of brax's environments.
TRAPS = ("ant_trap", "humanoid_trap")


class Wall(NamedTuple):
    """A fixed box: ``center`` ``(x, y, z)`` and ``half_size`` ``(hx, hy, hz)`` in metres."""

    center: tuple
    half_size: tuple


def _u_trap(front_x: float, half_width: float, depth: float, half_height: float,
            thickness: float = 0.1) -> tuple[Wall, ...]:
    side_x = front_x - depth / 2.0
    return (
        Wall((front_x, 0.0, half_height), (thickness, half_width, half_height)),
        Wall((side_x, half_width, half_height), (depth / 2.0, thickness, half_height)),
        Wall((side_x, -half_width, half_height), (depth / 2.0, thickness, half_height)),
    )


#: REFERENCE §6: front (5.5, 0) (0.1, 1.5, 2); sides (4, +-1.5) (1.5, 0.1, 2).
HUMANOID_TRAP_WALLS = _u_trap(front_x=5.5, half_width=1.5, depth=3.0, half_height=2.0)
#: The same U for the (wider) ant: front (5, 0) (0.1, 2, 1); sides (3.5, +-2) (1.5, 0.1, 1).
ANT_TRAP_WALLS = _u_trap(front_x=5.0, half_width=2.0, depth=3.0, half_height=1.0)


class BraxTaskState(NamedTuple):
    """The task state: brax's ``State`` and the step counter."""

    env_state: Any
    time: jax.Array


def brax_names() -> list[str]:
    """Every brax task name: ``"brax/<env>"`` and the traps."""
    return [f"brax/{n}" for n in (*BRAX_ENVS, *TRAPS)]


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def walls_xml(walls) -> str:
    """MJCF ``<geom>`` elements of fixed, colliding boxes (for ``<worldbody>``)."""
    parts = []
    for i, wall in enumerate(walls):
        c = " ".join(f"{v:g}" for v in wall.center)
        s = " ".join(f"{v:g}" for v in wall.half_size)
        parts.append(
            f'<geom name="trap_wall_{i}" type="box" pos="{c}" size="{s}" contype="0" '
            f'conaffinity="1" condim="3" rgba="0.7 0.2 0.2 1"/>'
        )
    return "\n".join(parts)


def _asset_xml(asset: str) -> str:
    from etils import epath

    return (epath.resource_path("brax") / "envs" / "assets" / asset).read_text()


def add_walls(xml: str, walls) -> str:
    """``xml`` (an MJCF string) with ``walls`` inserted at the top of its ``<worldbody>``."""
    marker = "<worldbody>"
    if xml.count(marker) != 1:
        raise ValueError("the MJCF must have exactly one <worldbody>")
    return xml.replace(marker, marker + "\n" + walls_xml(walls), 1)


def _with_walls(env, asset: str, walls):
    """Give ``env`` (a brax PipelineEnv) the system of its MJCF plus ``walls``.

    The environment's constructor adapts its system to the backend (time step, actuator gears,
    solver options); those fields are copied over from the system it built, so the walled
    system differs only by the walls.
    """
    from brax.io import mjcf

    sys = mjcf.loads(add_walls(_asset_xml(asset), walls))
    sys = sys.replace(opt=env.sys.opt, actuator=env.sys.actuator)
    env.sys = sys
    return env


def make_brax_env(name: str, *, backend: str = "spring", **env_kwargs):
    """The brax environment object behind task ``name`` (walls included for the traps), e.g.
    to render a trajectory or to start from chosen positions (``env.pipeline_init(q, qd)``)."""
    _check_backend(backend)
    envs = require("brax.envs", "brax", "the brax tasks")

    if name in TRAPS:
        base, asset, walls = {
            "ant_trap": ("ant", "ant.xml", ANT_TRAP_WALLS),
            "humanoid_trap": ("humanoid", "humanoid.xml", HUMANOID_TRAP_WALLS),
        }[name]
        env = envs.get_environment(base, backend=backend, **env_kwargs)
        return _with_walls(env, asset, walls)
    try:
        return envs.get_environment(name, backend=backend, **env_kwargs)
    except KeyError:
        known = ", ".join(brax_names())
        raise ValueError(f"unknown brax environment {name!r}; known: {known}") from None


def torso_xy(pipeline_state) -> jax.Array:
    """``(x, y)`` of link 0 (the torso / root body)."""
    pos = jnp.atleast_2d(jnp.asarray(pipeline_state.x.pos, jnp.float32))  # 1-D: "fast" env
    return jnp.pad(pos[0, :2], (0, max(0, 2 - pos.shape[1])))


def com_xy(sys, pipeline_state) -> jax.Array:
    """``(x, y)`` of the centre of mass: link centres of mass weighted by the link masses."""
    inertia = sys.link.inertia
    centers = jax.vmap(lambda x, t: x.do(t).pos)(pipeline_state.x, inertia.transform)
    mass = jnp.asarray(inertia.mass, jnp.float32)
    com = jnp.sum(mass[:, None] * centers, axis=0) / jnp.sum(mass)
    return jnp.asarray(com[:2], jnp.float32)


def make_brax(name: str, *, backend: str = "spring", max_steps: int = 1000,
              behavior: str | None = None, **env_kwargs) -> Task:
    """Wrap brax environment ``name`` (``"hopper"``, ``"ant"``, ... or a trap).

    Args:
        name: a brax environment name (without the ``"brax/"`` prefix), or ``"ant_trap"`` /
            ``"humanoid_trap"``.
        backend: brax physics pipeline: ``"spring"`` (default, cheapest on CPU),
            ``"positional"``, ``"generalized"`` or ``"mjx"``.
        max_steps: episode cutoff (brax's usual episode length is 1,000).
        behavior: ``"torso"`` (final ``(x, y)`` of the root body), ``"com"`` (of the centre
            of mass) or ``"observation"`` (the final observation); default ``"com"`` for the
            humanoids, ``"torso"`` otherwise.
        **env_kwargs: passed to ``brax.envs.get_environment`` (e.g. ``healthy_z_range``,
            ``terminate_when_unhealthy``).

    Returns:
        A :class:`~evojax_lab.tasks.Task` with a continuous action space (the actuators'
        control ranges), observation shape ``(obs_size,)`` and behavior size 2 (the
        observation size with ``behavior="observation"``); built by :func:`from_brax`.
    """
    _check_backend(backend)
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    max_steps = int(max_steps)
    if behavior is None:
        behavior = "com" if name.startswith("humanoid") else "torso"
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior must be one of {list(BEHAVIORS)}, got {behavior!r}")
    env = make_brax_env(name, backend=backend, **env_kwargs)
    return from_brax(env, max_steps=max_steps, name=f"brax/{name}", behavior=behavior)


def _check_brax_env(env) -> None:
    """Refuse what is not a brax environment, and brax's wrappers that reset inside ``step``
    or add a batch axis."""
    base = require("brax.envs.base", "brax", "from_brax")
    training = require("brax.envs.wrappers.training", "brax", "from_brax")

    if not isinstance(env, base.Env):
        raise TypeError(f"env must be a brax environment (brax.envs.Env), got "
                        f"{type(env).__name__}")
    refused = (training.AutoResetWrapper, training.VmapWrapper,
               training.DomainRandomizationVmapWrapper)
    inner = env
    while isinstance(inner, base.Wrapper):
        if isinstance(inner, refused):
            raise TypeError(
                f"env: brax's {type(inner).__name__} is not supported (a task never "
                f"auto-resets and steps one episode; the rollout batches); pass the "
                f"environment it wraps"
            )
        inner = inner.env


def from_brax(env, *, max_steps: int | None = None, name: str | None = None,
              behavior: str | None = None) -> Task:
    """A task from a brax environment instance: one of brax's
    (``brax.envs.get_environment("hopper", backend="generalized")``) or your own
    ``brax.envs.Env`` subclass.

    ``reset(key)`` calls ``env.reset(key)``; ``step`` calls ``env.step(state, action)`` (brax
    dynamics are deterministic: the step key is unused). ``done`` is the environment's own
    ``state.done``, the cutoff, or a non-finite observation or reward (a physics blow-up; its
    reward counts as 0). Wrappers that auto-reset or batch (``AutoResetWrapper``,
    ``VmapWrapper``, ``DomainRandomizationVmapWrapper``) are refused; ``EpisodeWrapper`` works
    (its episode length then ends episodes through ``state.done``).

    Static information is read from the environment object when the task is built: the
    observation shape (from ``jax.eval_shape`` of ``env.reset``: observations must be one
    array, not a dict), the action size ``env.action_size`` and the bounds: the actuators'
    control ranges when ``env.sys`` has them (unlimited actuators and environments without a
    system: ``[-1, 1]``). An environment's parameters live in its object (``env.sys``), so a
    task is built once per environment object.

    Args:
        env: a ``brax.envs.Env``.
        max_steps: episode cutoff; default 1,000 (brax's usual episode length).
        name: the task's name; default the environment's class name.
        behavior: the behavior descriptor of a final state: ``"torso"`` (``(x, y)`` of link 0),
            ``"com"`` (of the centre of mass; needs ``env.sys``) or ``"observation"`` (the final
            observation, flattened). Default: ``"torso"`` when the environment's state has link
            positions (``state.pipeline_state.x.pos``), else ``"observation"``.

    Raises:
        TypeError: ``env`` is not a brax environment, or is wrapped by a refused wrapper.
        ValueError: a bad ``max_steps`` or ``behavior``, or dict observations.
    """
    _check_brax_env(env)
    max_steps = 1000 if max_steps is None else max_steps
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    max_steps = int(max_steps)
    name = type(env.unwrapped).__name__ if name is None else str(name)
    shapes = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    if not isinstance(shapes.obs, jax.ShapeDtypeStruct):
        raise ValueError(f"{name}'s observations are a {type(shapes.obs).__name__}; a task "
                         "needs one array per observation")
    obs_shape = tuple(shapes.obs.shape)
    has_links = getattr(getattr(shapes.pipeline_state, "x", None), "pos", None) is not None
    if behavior is None:
        behavior = "torso" if has_links else "observation"
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior must be one of {list(BEHAVIORS)}, got {behavior!r}")
    sys = getattr(env, "sys", None)  # brax's "fast" test env and custom envs may have none
    if behavior == "com" and sys is None:
        raise ValueError(f"behavior='com' needs a brax system; {name} has none")
    if behavior in ("torso", "com") and not has_links:
        raise ValueError(f"behavior={behavior!r} needs link positions "
                         f"(state.pipeline_state.x.pos); {name}'s state has none")
    action_size = int(env.action_size)
    low, high = -np.ones(action_size, np.float32), np.ones(action_size, np.float32)
    ctrl_range = getattr(getattr(sys, "actuator", None), "ctrl_range", None)
    if ctrl_range is not None and np.shape(ctrl_range) == (action_size, 2):
        ctrl = np.asarray(ctrl_range, np.float32)
        limited = ctrl[:, 1] > ctrl[:, 0]
        low, high = np.where(limited, ctrl[:, 0], low), np.where(limited, ctrl[:, 1], high)

    def reset(key):
        env_state = env.reset(key)
        return env_state.obs, BraxTaskState(env_state, jnp.zeros((), jnp.int32))

    def step(key, state, action):
        del key  # brax dynamics are deterministic
        env_state = env.step(state.env_state, jnp.asarray(action, jnp.float32))
        time = state.time + 1
        reward = jnp.asarray(env_state.reward, jnp.float32).reshape(())
        finite = jnp.logical_and(jnp.all(jnp.isfinite(env_state.obs)), jnp.isfinite(reward))
        done = (
            (jnp.asarray(env_state.done).reshape(()) > 0)
            | (time >= max_steps)
            | jnp.logical_not(finite)
        )
        reward = jnp.where(finite, reward, 0.0)
        return env_state.obs, BraxTaskState(env_state, time), reward, done

    if behavior == "torso":
        def describe(obs, state):
            del obs
            return torso_xy(state.env_state.pipeline_state)
        behavior_size = 2
    elif behavior == "com":
        def describe(obs, state):
            del obs
            return com_xy(sys, state.env_state.pipeline_state)
        behavior_size = 2
    else:
        describe = flat_observation_behavior
        behavior_size = int(np.prod(obs_shape))

    return Task(
        name=name,
        reset=reset,
        step=step,
        behavior=describe,
        observation_shape=obs_shape,
        action_space=ActionSpace("continuous", shape=(action_size,), low=low, high=high),
        max_steps=max_steps,
        behavior_size=behavior_size,
    )


def ant_trap(*, backend: str = "spring", max_steps: int = 1000, **env_kwargs) -> Task:
    """brax's ant facing a U of walls (:data:`ANT_TRAP_WALLS`); behavior = final torso
    ``(x, y)``."""
    return make_brax("ant_trap", backend=backend, max_steps=max_steps, **env_kwargs)


def humanoid_trap(*, backend: str = "spring", max_steps: int = 1000, **env_kwargs) -> Task:
    """brax's humanoid facing the NS-ES paper's U of walls (:data:`HUMANOID_TRAP_WALLS`);
    behavior = final ``(x, y)`` of the centre of mass."""
    return make_brax("humanoid_trap", backend=backend, max_steps=max_steps, **env_kwargs)

