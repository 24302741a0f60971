"""Bring your own tasks (issue 21): ``from_gymnax`` with the environment parameters as data,
``from_brax`` on an environment instance, and the worked example of ``docs/tasks.md``.

Expected returns come from gymnax itself (its own ``env.reset`` / ``env.step``, stepped by hand
and stopped at ``done``), not from the adapter.
"""

from __future__ import annotations

import re
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.core.compiles import count_compilations

MAX_STEPS = 50
POP = 4
KEY = jax.random.key(7)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "tasks.md"


@pytest.fixture(scope="module")
def cartpole():
    """gymnax's CartPole, its default parameters, and a pole twice as long."""
    env, default = gymnax.make("CartPole-v1")
    return env, default, default.replace(length=1.0)


@pytest.fixture(scope="module")
def policy_population(cartpole):
    env, default, _ = cartpole
    task = el.tasks.from_gymnax(env, default)
    policy = el.policies.for_task(task, hidden=(4,))
    shapes = jax.eval_shape(policy.init, KEY, jnp.zeros(task.observation_shape))
    rng = np.random.default_rng(0)
    population = jax.tree.map(
        lambda s: jnp.asarray(rng.normal(size=(POP, *s.shape)), jnp.float32), shapes
    )
    return policy, population


def _member(population, i):
    return jax.tree.map(lambda x: x[i], population)


def _gymnax_episode(env, env_params, policy, params, key):
    """One episode by hand with gymnax's own ``reset`` and ``step``, the rollout's keys
    (``reset`` gets ``split(key)[1]``, each step ``split(key)[1]`` of the running key), stopped
    at gymnax's ``done`` (its auto-reset is never used)."""
    act = jax.jit(policy.apply)
    key, reset_key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)
    episode_return = np.float32(0.0)
    for t in range(1, MAX_STEPS + 1):
        key, step_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = env.step(
            step_key, state, act(params, obs), env_params
        )
        episode_return += np.float32(reward)
        if bool(terminated | truncated):
            return episode_return, t, np.asarray(info["final_observation"])
    raise AssertionError(f"gymnax's episode did not end within {MAX_STEPS} steps")


# ---------------------------------------------------------------------------------------------
# 1. from_gymnax equals gymnax's own loop, and the parameters matter
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rollouts(cartpole, policy_population):
    """Every member's rollout on the task of each setting (tasks built outside jit: concrete
    parameters)."""
    env, default, long_pole = cartpole
    policy, population = policy_population
    out = {}
    for label, env_params in (("default", default), ("long", long_pole)):
        task = el.tasks.from_gymnax(env, env_params, max_steps=MAX_STEPS)
        run = jax.jit(jax.vmap(lambda p, task=task: el.rollout(KEY, task, policy, p)))
        out[label] = jax.tree.map(np.asarray, run(population))
    return out


@pytest.mark.parametrize("label", ["default", "long"])
def test_from_gymnax_equals_gymnax_step_loop(cartpole, policy_population, rollouts, label):
    env, default, long_pole = cartpole
    policy, population = policy_population
    env_params = {"default": default, "long": long_pole}[label]
    # The task's cutoff replaces max_steps_in_episode: gymnax's time limit is the same one.
    gymnax_params = env_params.replace(max_steps_in_episode=MAX_STEPS)
    returns, lengths, behaviors = rollouts[label]
    for i in range(POP):
        ret, length, final_obs = _gymnax_episode(env, gymnax_params, policy,
                                                 _member(population, i), KEY)
        assert returns[i] == ret, (label, i)
        assert lengths[i] == length, (label, i)
        # The behavior is the final observation; separately compiled programs: a few ulps.
        np.testing.assert_allclose(behaviors[i], final_obs, rtol=1e-5, atol=1e-6)


def test_modified_parameters_change_returns(rollouts):
    default_returns, long_returns = rollouts["default"][0], rollouts["long"][0]
    assert (default_returns < MAX_STEPS).any()  # some episodes end by the pole falling
    assert not np.array_equal(default_returns, long_returns)


# ---------------------------------------------------------------------------------------------
# 2. A vmap over parameter settings: one program, the same results as each setting alone
# ---------------------------------------------------------------------------------------------


def _stack(*trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@pytest.fixture(scope="module")
def sweep(cartpole, policy_population):
    env, _, _ = cartpole
    policy, population = policy_population

    def evaluation_of(env_params):
        task = el.tasks.from_gymnax(env, env_params, max_steps=MAX_STEPS)
        return el.evaluate(KEY, task, policy, population)

    return jax.jit(jax.vmap(evaluation_of))


def test_vmap_over_parameters_is_one_program(cartpole, policy_population, sweep):
    env, default, long_pole = cartpole
    policy, population = policy_population
    settings = _stack(default, long_pole)
    with count_compilations() as seen:
        both = jax.block_until_ready(sweep(settings))
    assert seen.traced("evaluation_of") == 1
    assert seen.traces == 1  # nothing else: both settings ran in that one program
    for i, env_params in enumerate((default, long_pole)):
        task = el.tasks.from_gymnax(env, env_params, max_steps=MAX_STEPS)
        alone = jax.jit(lambda p, task=task: el.evaluate(KEY, task, policy, p))(population)
        np.testing.assert_array_equal(both.fitness[i], alone.fitness)
        np.testing.assert_array_equal(both.steps[i], alone.steps)
        np.testing.assert_allclose(both.behavior[i], alone.behavior, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(both.fitness[0], both.fitness[1])

    # Parameters are data: new values (another pole, heavier cart) reuse the program.
    other = _stack(default.replace(length=0.7), long_pole.replace(masscart=2.0))
    with count_compilations() as seen:
        jax.block_until_ready(sweep(other))
    assert seen.traces == 0


def test_static_information_never_comes_from_traced_values(cartpole):
    env, default, _ = cartpole
    built = []

    def build(env_params, **kw):
        task = el.tasks.from_gymnax(env, env_params, **kw)
        built.append((task.max_steps, task.observation_shape, task.action_space.n))
        return env_params.length

    short = default.replace(max_steps_in_episode=100)
    assert el.tasks.from_gymnax(env, short).max_steps == 100  # concrete: read from env_params
    jax.eval_shape(jax.vmap(build), _stack(short, short))  # traced: env.default_params's
    jax.eval_shape(jax.vmap(lambda p: build(p, max_steps=30)), _stack(short, short))
    # Only the traced leaves fall back to the default: a concrete one is still read.
    jax.eval_shape(lambda length: build(default.replace(length=length,
                                                        max_steps_in_episode=100)), 1.0)
    assert built == [(500, (4,), 2), (30, (4,), 2), (100, (4,), 2)]


def test_make_gymnax_is_from_gymnax_of_gymnax_make():
    made = el.tasks.make_gymnax("Breakout-MinAtar", max_steps=9)
    env, env_params = gymnax.make("Breakout-MinAtar")
    wrapped = el.tasks.from_gymnax(env, env_params, max_steps=9)
    assert wrapped.name == made.name == "Breakout-MinAtar"
    for field in ("observation_shape", "max_steps", "behavior_size"):
        assert getattr(wrapped, field) == getattr(made, field)
    assert wrapped.behavior is made.behavior is el.tasks.gymnax_tasks.minatar_ram
    assert el.tasks.from_gymnax(env, name="mine").name == "mine"


# ---------------------------------------------------------------------------------------------
# 3. from_brax on environment instances, trained by OpenAI-ES
# ---------------------------------------------------------------------------------------------


def _point_mass_env():
    """A brax ``Env`` of our own: a point mass in the plane, no physics pipeline."""
    from brax.envs.base import Env, State

    class PointMass(Env):
        def reset(self, rng):
            pos = jax.random.uniform(rng, (2,), minval=-1.0, maxval=1.0)
            zero = jnp.zeros(())
            return State(pipeline_state=None, obs=pos, reward=zero, done=zero)

        def step(self, state, action):
            pos = state.obs + 0.1 * jnp.clip(action, -1.0, 1.0)
            distance = jnp.linalg.norm(pos)
            return state.replace(obs=pos, reward=-distance,
                                 done=(distance < 0.05).astype(jnp.float32))

        @property
        def observation_size(self):
            return 2

        @property
        def action_size(self):
            return 2

        @property
        def backend(self):
            return "none"

    return PointMass()


def _train_two_generations(task):
    policy = el.policies.for_task(task, hidden=(4,))
    strategy = el.strategies.openai_es(POP, sigma=0.1)
    trainer = el.make_train(task, policy, strategy, generations=2, eval_episodes=0,
                            record=("fitness", "steps"))
    template = jax.eval_shape(policy.init, KEY, jnp.zeros(task.observation_shape))
    return jax.block_until_ready(trainer(KEY)), template


def test_from_brax_own_env_trains_with_openai_es():
    pytest.importorskip("brax")
    task = el.tasks.from_brax(_point_mass_env(), max_steps=5)
    assert task.name == "PointMass"
    assert task.observation_shape == (2,) and task.action_space.shape == (2,)
    np.testing.assert_array_equal(task.action_space.low, -1.0)  # no system: [-1, 1]
    assert task.behavior_size == 2  # no link positions: the final observation
    result, template = _train_two_generations(task)
    best, steps = np.asarray(result.metrics["best_fitness"]), np.asarray(result.metrics["steps"])
    assert best.shape == (2,) and np.isfinite(best).all() and (best < 0).all()
    assert 0 < steps[0] <= POP * 5 and steps[1] - steps[0] <= POP * 5
    assert jax.tree.structure(result.solution) == jax.tree.structure(template)


def test_from_brax_instance_trains_with_openai_es():
    pytest.importorskip("brax")
    from brax import envs

    env = envs.get_environment("inverted_pendulum", backend="generalized")
    task = el.tasks.from_brax(env, max_steps=5)
    assert task.name == "InvertedPendulum" and task.max_steps == 5
    assert task.observation_shape == (4,) and task.behavior_size == 2  # torso (x, y)
    np.testing.assert_array_equal(task.action_space.low, [-3.0])  # the actuator's ctrlrange
    np.testing.assert_array_equal(task.action_space.high, [3.0])
    result, _ = _train_two_generations(task)
    fitness = np.asarray(result.metrics["population_fitness"])
    steps = np.asarray(result.metrics["population_steps"])
    # Reward 1 per step until the pole falls or the cutoff: fitness == steps, both <= 5.
    assert fitness.shape == (2, POP)
    np.testing.assert_array_equal(fitness, steps)
    assert (steps >= 1).all() and (steps <= 5).all() and (steps == 5).any()
    np.testing.assert_array_equal(result.metrics["steps"], np.cumsum(steps.sum(axis=1)))


# ---------------------------------------------------------------------------------------------
# 4. Bad input: one line, naming the argument
# ---------------------------------------------------------------------------------------------


def _one_line(excinfo, word):
    message = str(excinfo.value)
    assert "\n" not in message and word in message, message


def test_from_gymnax_refuses_what_is_not_a_gymnax_env(cartpole):
    env, default, _ = cartpole
    from gymnax.wrappers import FlattenObservationWrapper

    for bad in ("CartPole-v1", FlattenObservationWrapper(env), object()):
        with pytest.raises(TypeError) as excinfo:
            el.tasks.from_gymnax(bad, default)
        _one_line(excinfo, "env must be a gymnax environment")


def test_from_gymnax_refuses_parameters_of_another_type(cartpole):
    env, default, _ = cartpole
    _, pendulum_params = gymnax.make("Pendulum-v1")
    for bad in ({"length": 1.0}, pendulum_params, 1.0):
        with pytest.raises(TypeError) as excinfo:
            el.tasks.from_gymnax(env, bad)
        _one_line(excinfo, "env_params must be")
    with pytest.raises(TypeError) as excinfo:  # two settings stacked, no vmap
        el.tasks.from_gymnax(env, _stack(default, default.replace(length=1.0)))
    _one_line(excinfo, "has shape (2,)")
    assert str(excinfo.value).startswith("env_params.")
    with pytest.raises(ValueError) as excinfo:
        el.tasks.from_gymnax(env, default, max_steps=0)
    _one_line(excinfo, "max_steps")


def test_from_brax_refuses_bad_environments(cartpole):
    pytest.importorskip("brax")
    from brax.envs.wrappers.training import AutoResetWrapper, VmapWrapper

    env, _, _ = cartpole
    with pytest.raises(TypeError) as excinfo:
        el.tasks.from_brax(env)
    _one_line(excinfo, "env must be a brax environment")
    for wrapper in (AutoResetWrapper, VmapWrapper):
        with pytest.raises(TypeError) as excinfo:
            el.tasks.from_brax(wrapper(_point_mass_env()))
        _one_line(excinfo, wrapper.__name__)
    for behavior in ("torso", "com", "speed"):  # no link positions, no system, unknown
        with pytest.raises(ValueError) as excinfo:
            el.tasks.from_brax(_point_mass_env(), behavior=behavior)
        _one_line(excinfo, "behavior")


def test_from_brax_without_brax_names_the_extra(monkeypatch):
    import sys

    from evojax_lab.core.extras import MissingExtra

    # brax looks uninstalled: importing it fails as a missing module does.
    for loaded in [m for m in sys.modules if m == "brax" or m.startswith("brax.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, "brax", None)
    with pytest.raises(MissingExtra, match=r"pip install 'evojax_lab\[brax\]'"):
        el.tasks.from_brax(object())
    with pytest.raises(MissingExtra, match=r"pip install 'evojax_lab\[brax\]'"):
        el.tasks.make("brax/hopper")

# ---------------------------------------------------------------------------------------------
# docs/tasks.md: the task written from scratch runs as written
# ---------------------------------------------------------------------------------------------


def test_docs_task_from_scratch_runs():
    text = DOCS.read_text()
    section = text.split("## A task from scratch", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "docs/tasks.md has no Python example under 'A task from scratch'"
    namespace = {}
    exec(compile("\n".join(blocks), "docs/tasks.md", "exec"), namespace)
    task, result, fitness = namespace["task"], namespace["result"], namespace["fitness"]
    assert task.behavior_size == 1 and task.action_space.kind == "continuous"
    solution_fitness = np.asarray(result.metrics["solution_fitness"])
    assert np.isfinite(solution_fitness).all()
    assert solution_fitness[-1] > solution_fitness[0] + 5  # it learns (-30 -> -11.5 here)
    assert fitness.shape[0] == 3  # one row per friction of the sweep

