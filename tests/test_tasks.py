"""The gymnax adapter and the task registry.

Expected values come from gymnax itself (``gymnax.make``, ``env.reset``, ``env.step``,
``env.action_space``), never from the adapter under test.
"""

from __future__ import annotations

import re

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.policies.mlp import init_params
from evojax_lab.tasks.gymnax_tasks import missing_download

# ---------------------------------------------------------------------------------------------
# Smoke test over every registered gymnax environment
# ---------------------------------------------------------------------------------------------

FAST_ENVS = ("CartPole-v1", "Pendulum-v1", "Breakout-MinAtar", "MountainCarContinuous-v0")
SMOKE_STEPS = 6
SMOKE_POP = 2

def _mnist_cached() -> bool:
    return missing_download("MNISTBandit-bsuite") is None


def _env_param(name: str):
    marks = []
    if name not in FAST_ENVS:
        marks.append(pytest.mark.slow)
    if name == "MNISTBandit-bsuite":
        marks.append(
            pytest.mark.skipif(
                not _mnist_cached(),
                reason="MNISTBandit-bsuite downloads MNIST when it is constructed "
                "(gymnax.utils.load_mnist); not cached, and the tests must run offline",
            )
        )
    return pytest.param(name, marks=marks, id=name)


def test_fast_subset_is_registered():
    assert set(FAST_ENVS) <= set(gymnax.registered_envs)


@pytest.mark.parametrize("name", [_env_param(n) for n in gymnax.registered_envs])
def test_every_gymnax_env_runs(name):
    task = el.tasks.make(name, max_steps=SMOKE_STEPS)
    policy = el.policies.for_task(task, hidden=(4,))
    env, env_params = gymnax.make(name)
    space = env.action_space(env_params)

    # One compiled program per environment: init a population, evaluate it, and feed one
    # policy action to gymnax's own (jitted, auto-resetting) ``step``.
    @jax.jit
    def run(key):
        init_key, eval_key, reset_key, step_key = jax.random.split(key, 4)
        population = jax.vmap(lambda k: init_params(policy, k, task.observation_shape))(
            jax.random.split(init_key, SMOKE_POP)
        )
        evaluation = el.evaluate(eval_key, task, policy, population)
        obs, state = env.reset(reset_key, env_params)
        member = jax.tree.map(lambda x: x[0], population)
        action = policy.apply(member, obs)
        stepped = env.step(step_key, state, action, env_params)
        return evaluation, obs, state, action, stepped, space.contains(action)

    evaluation, obs, state, action, stepped, in_space = run(jax.random.key(0))

    # Specs agree with what gymnax actually produces.
    assert task.observation_shape == tuple(np.shape(obs))
    if name.endswith("-MinAtar"):
        # RAM-like behavior: every state variable but the step counter and the terminal flag.
        fields = {k: v for k, v in vars(state).items() if k not in ("time", "terminal")}
        assert task.behavior_size == sum(int(np.size(v)) for v in fields.values())
    else:
        assert task.behavior_size == int(np.prod(np.shape(obs)))
    assert task.max_steps == SMOKE_STEPS
    if isinstance(space, gymnax.environments.spaces.Discrete):
        assert task.action_space.kind == "discrete"
        assert task.action_space.n == space.n
        assert np.shape(action) == ()
        assert jnp.issubdtype(action.dtype, jnp.integer)
    else:
        assert isinstance(space, gymnax.environments.spaces.Box)
        assert task.action_space.kind == "continuous"
        assert task.action_space.shape == tuple(space.shape)
        assert np.shape(action) == tuple(space.shape)
        assert jnp.issubdtype(action.dtype, jnp.floating)
    assert bool(in_space), f"policy action {action} is outside {space}"

    # gymnax accepts the action: the stepped observation and state keep their shapes.
    next_obs, next_state, reward, terminated, truncated, _ = stepped
    assert np.shape(next_obs) == np.shape(obs)
    assert jax.tree.map(np.shape, next_state) == jax.tree.map(np.shape, state)
    assert np.isfinite(np.asarray(reward, np.float64)).all()
    assert np.shape(terminated) == () and np.shape(truncated) == ()

    # The evaluation has the documented shapes and sane values.
    assert evaluation.fitness.shape == (SMOKE_POP,)
    assert evaluation.steps.shape == (SMOKE_POP,)
    assert evaluation.behavior.shape == (SMOKE_POP, task.behavior_size)
    assert evaluation.fitness.dtype == jnp.float32
    assert evaluation.behavior.dtype == jnp.float32
    assert np.isfinite(evaluation.fitness).all()
    assert np.isfinite(evaluation.behavior).all()
    steps = np.asarray(evaluation.steps)
    assert ((steps >= 1) & (steps <= SMOKE_STEPS)).all(), steps


def test_max_steps_keeps_float_field_type():
    # BernoulliBandit declares ``max_steps_in_episode: float = 100.0`` and mixes it with floats
    # in ``lax.select``; an int cutoff used to raise a dtype error when the task was built.
    task = el.tasks.make("BernoulliBandit-misc", max_steps=5)
    assert task.max_steps == 5
    ret, length, behavior = jax.jit(
        lambda k: el.rollout(k, task, lambda params, obs: jnp.int32(1), None, max_steps=50)
    )(jax.random.key(3))
    assert int(length) == 5  # the float cutoff ends the episode, not the loop limit
    assert 0.0 <= float(ret) <= 5.0  # Bernoulli rewards
    assert behavior.shape == (4,)


def test_scalar_box_action_keeps_scalar_shape():
    # A continuous head for a scalar Box used to return shape (1,) (``() or (n,)``).
    policy = el.policies.MLP(action_dim=1, hidden=(2,), head="continuous", action_shape=())
    params = policy.init(jax.random.key(0), jnp.zeros(3))
    action = policy.apply(params, jnp.ones(3))
    assert action.shape == ()
    assert -1.0 <= float(action) <= 1.0


# ---------------------------------------------------------------------------------------------
# done == gymnax's terminated | truncated, key for key
# ---------------------------------------------------------------------------------------------


def _assert_close(actual, desired):
    """Exact for ints and bools; floats to a few ulps (separately compiled programs)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    if np.issubdtype(desired.dtype, np.floating) or np.issubdtype(actual.dtype, np.floating):
        np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(actual, desired)


DONE_CASES = [
    ("CartPole-v1", None),  # ends by termination
    ("CartPole-v1", 6),  # ends by the cutoff
    ("Pendulum-v1", 12),  # continuous (1,) action, cutoff only
    ("Catch-bsuite", None),  # random reset, terminates
    ("DeepSea-bsuite", None),  # overrides gymnax's ``step``
    ("FourRooms-misc", 25),  # stochastic transitions: the step key must match gymnax's
]


@pytest.mark.parametrize(("name", "max_steps"), DONE_CASES)
def test_done_matches_gymnax_step(name, max_steps):
    kw = {} if max_steps is None else {"max_steps": max_steps}
    task = el.tasks.make(name, **kw)
    env, env_params = gymnax.make(name)
    if max_steps is not None:
        env_params = env_params.replace(max_steps_in_episode=max_steps)
    space = env.action_space(env_params)
    task_step = jax.jit(task.step)
    task_reset = jax.jit(task.reset)
    sample = jax.jit(space.sample)

    horizon = 200
    key = jax.random.key(11)
    for episode in range(2):
        key, reset_key = jax.random.split(key)
        obs, state = task_reset(reset_key)
        g_obs, g_state = env.reset(reset_key, env_params)
        _assert_close(obs, g_obs)
        ended_at = None
        for t in range(horizon):
            key, action_key, step_key = jax.random.split(key, 3)
            action = sample(action_key)
            # Both step from gymnax's state (identical up to here), so the comparison is one
            # transition at a time and separately compiled programs cannot drift apart.
            obs, state, reward, done = task_step(step_key, g_state, action)
            g_obs, g_state, g_reward, terminated, truncated, info = env.step(
                step_key, g_state, action, env_params
            )
            g_done = bool(terminated | truncated)
            assert bool(done) == g_done, (episode, t)
            assert done.shape == () and done.dtype == jnp.bool_
            assert reward.shape == () and reward.dtype == jnp.float32
            _assert_close(reward, g_reward)
            if g_done:
                # gymnax auto-resets; the adapter keeps the final observation.
                _assert_close(obs, info["final_observation"])
                ended_at = t + 1
                break
            _assert_close(obs, g_obs)
            jax.tree.map(_assert_close, state, g_state)
        assert ended_at is not None, f"{name}: no episode end within {horizon} steps"
        if max_steps is not None:
            assert ended_at <= max_steps


# ---------------------------------------------------------------------------------------------
# Episode cutoff
# ---------------------------------------------------------------------------------------------

CUTOFF = 7


def _balance(params, obs):
    """Push towards the side the pole falls to (keeps CartPole up for hundreds of steps)."""
    del params
    return (obs[2] + obs[3] > 0).astype(jnp.int32)


def test_cartpole_cutoff_ends_balanced_episode():
    task = el.tasks.make("CartPole-v1", max_steps=CUTOFF)
    assert task.max_steps == CUTOFF
    key = jax.random.key(5)
    # The loop limit is far above the cutoff: only the task's own ``done`` can stop it.
    ret, length, _ = jax.jit(lambda k: el.rollout(k, task, _balance, None, max_steps=100))(key)
    assert int(length) == CUTOFF
    assert float(ret) == float(CUTOFF)

    # Independently: with gymnax's default params the same controller, from the same start,
    # is not terminated in the first 50 steps, so the stop at 7 is the cutoff's doing.
    env, env_params = gymnax.make("CartPole-v1")
    _, reset_key = jax.random.split(key)
    obs, state = env.reset_env(reset_key, env_params)
    step = jax.jit(lambda s, a: env.step_env(key, s, a, env_params))
    for _ in range(50):
        obs, state, _, terminated, _ = step(state, int(obs[2] + obs[3] > 0))
        assert not bool(terminated)


def test_cartpole_cutoff_bounds_any_policy():
    task = el.tasks.make("CartPole-v1", max_steps=CUTOFF)
    policy = el.policies.for_task(task, hidden=(4,))
    shapes = jax.eval_shape(policy.init, jax.random.key(0), jnp.zeros(task.observation_shape))
    rng = np.random.default_rng(0)
    population = jax.tree.map(
        lambda s: jnp.asarray(rng.normal(size=(5, *s.shape)), jnp.float32), shapes
    )
    evaluation = jax.jit(lambda k, p: el.evaluate(k, task, policy, p, episodes=2, max_steps=100))(
        jax.random.key(1), population
    )
    steps = np.asarray(evaluation.steps)
    assert (steps >= 2).all() and (steps <= 2 * CUTOFF).all(), steps
    assert (np.asarray(evaluation.fitness) <= CUTOFF).all()


def test_max_steps_must_be_positive():
    with pytest.raises(ValueError, match="max_steps"):
        el.tasks.make("CartPole-v1", max_steps=0)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def _suggestions(message: str) -> list[str]:
    match = re.search(r"Did you mean (.*?)\?", message)
    return re.findall(r"'([^']*)'", match.group(1)) if match else []


@pytest.mark.parametrize("typo", ["cartpole-v1", "CartPol-v1", "CARTPOLE-V1", "CartPole-v2"])
def test_unknown_task_suggests_close_matches(typo):
    with pytest.raises(ValueError) as info:
        el.tasks.make(typo)
    message = str(info.value)
    assert repr(typo) in message  # names the task that was asked for
    assert "CartPole-v1" in _suggestions(message), message


def test_unknown_task_without_close_match():
    with pytest.raises(ValueError, match="unknown task 'zzqqxx'") as info:
        el.tasks.make("zzqqxx")
    assert _suggestions(str(info.value)) == []


def test_names_cover_gymnax():
    assert set(gymnax.registered_envs) <= set(el.tasks.names())


def test_task_name_must_be_str():
    with pytest.raises(TypeError):
        el.tasks.make(3)


def test_minatar_behavior_is_the_ram_like_state():
    """Breakout's behavior is its game variables in declaration order, by hand."""
    task = el.tasks.make("Breakout-MinAtar")
    obs, state = task.reset(jax.random.key(3))
    expected = np.concatenate([
        np.ravel(np.asarray(v, np.float32)) for v in (
            state.ball_y, state.ball_x, state.ball_dir, state.pos, state.brick_map,
            state.strike, state.last_y, state.last_x)
    ])
    assert task.behavior_size == 4 + 100 + 3
    np.testing.assert_array_equal(np.asarray(task.behavior(obs, state)), expected)
