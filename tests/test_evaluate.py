"""el.evaluate: vmap vs Python loops, chunking, episodes, step counts, random numbers.

Key derivation under test (``evojax_lab.evaluate``): with common random numbers every member
uses ``jax.random.split(key, episodes)``; without, member ``i`` uses
``jax.random.split(jax.random.fold_in(key, i), episodes)``. ``rollout(k)`` resets with
``split(k)[1]`` and draws step ``t``'s key by ``k, step_key = split(k)``; the gymnax adapter
hands ``split(step_key)[0]`` to ``step_env``, as gymnax's own ``step`` does.

Compiled programs are shared through module-scoped fixtures: compilation dominates.
"""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el

CUTOFF = 40
EPISODES = 3
POP = 4


def _random_population(shapes, size, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(scale * rng.normal(size=(size, *s.shape)), jnp.float32), shapes
    )


def _balancer(shapes):
    """MLP params with action = 1 iff theta + theta_dot > 0: survives hundreds of steps."""
    params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)
    p = params["params"]
    p["Dense_0"]["kernel"][2, 0] = 1.0
    p["Dense_0"]["kernel"][3, 0] = 1.0
    p["Dense_1"]["kernel"][0] = [-1.0, 1.0]
    return jax.tree.map(jnp.asarray, params)


@pytest.fixture(scope="module")
def setup():
    task = el.tasks.make("CartPole-v1", max_steps=CUTOFF)
    policy = el.policies.for_task(task, hidden=(4,))
    shapes = jax.eval_shape(policy.init, jax.random.key(0), jnp.zeros(task.observation_shape))
    random = _random_population(shapes, POP, seed=1)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)  # always action 0
    members = [zeros, _balancer(shapes)] + [el.tree.take(random, i) for i in range(2, POP)]
    population = el.tree.stack(members)
    return task, policy, shapes, population


@pytest.fixture(scope="module")
def evaluate_crn(setup):
    task, policy, _, _ = setup
    return jax.jit(lambda k, pop: el.evaluate(k, task, policy, pop, episodes=EPISODES))


@pytest.fixture(scope="module")
def rollout_one(setup):
    task, policy, _, _ = setup
    return jax.jit(lambda k, params: el.rollout(k, task, policy, params))


def _rollout_loop(rollout_one, population, member_keys):
    """Per member, per episode: (returns [P, E], lengths [P, E], behaviors [P, E, B])."""
    rets, lens, behs = [], [], []
    for i in range(el.tree.batch_size(population)):
        params = el.tree.take(population, i)
        out = [rollout_one(k, params) for k in member_keys[i]]
        rets.append([float(r) for r, _, _ in out])
        lens.append([int(n) for _, n, _ in out])
        behs.append([np.asarray(b) for _, _, b in out])
    return np.array(rets, np.float32), np.array(lens), np.array(behs)


@pytest.fixture(scope="module")
def crn_results(setup, evaluate_crn, rollout_one):
    _, _, _, population = setup
    key = jax.random.key(42)
    evaluation = evaluate_crn(key, population)
    episode_keys = jax.random.split(key, EPISODES)
    loop = _rollout_loop(rollout_one, population, [episode_keys] * POP)
    return key, evaluation, loop


def _gymnax_episode(env, env_params, apply, params, key, cutoff):
    """One episode with gymnax's own API only (no evojax_lab code but the policy apply)."""
    key, reset_key = jax.random.split(key)
    obs, state = env.reset_env(reset_key, env_params)
    total, steps = 0.0, 0
    while steps < cutoff:
        key, step_key = jax.random.split(key)
        env_key, _ = jax.random.split(step_key)
        action = apply(params, obs)
        obs, state, reward, terminated, _ = env.step_env(env_key, state, action, env_params)
        total += float(reward)
        steps += 1
        if bool(terminated):
            break
    return total, steps, np.asarray(obs, np.float32)


# ---------------------------------------------------------------------------------------------


def test_population_is_diverse(crn_results):
    # Guards the other tests against vacuity: early failure, cutoff and in between all occur.
    _, _, (rets, lens, _) = crn_results
    assert lens[0].max() < CUTOFF  # all-zero params: constant push, falls in ~10 steps
    assert (lens[1] == CUTOFF).all()  # the balancer is stopped by the cutoff
    assert len(np.unique(lens)) >= 3


def test_vmap_equals_rollout_loop(crn_results):
    _, evaluation, (rets, lens, behs) = crn_results
    np.testing.assert_allclose(evaluation.fitness, rets.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(evaluation.steps, lens.sum(axis=1))
    np.testing.assert_allclose(evaluation.behavior, behs[:, -1], rtol=1e-5, atol=1e-6)


def test_fitness_is_mean_of_episode_returns(crn_results):
    _, evaluation, (rets, _, _) = crn_results
    # The episodes differ (different starts), so the mean is not any single episode's return.
    assert any(len(set(r)) > 1 for r in rets.tolist())
    expected = [sum(r) / EPISODES for r in rets.tolist()]
    np.testing.assert_allclose(evaluation.fitness, expected, rtol=1e-6)


def test_matches_independent_gymnax_loop(setup, crn_results):
    _, policy, _, population = setup
    key, evaluation, _ = crn_results
    env, env_params = gymnax.make("CartPole-v1")  # default cutoff 500: ours is the loop's
    apply = jax.jit(policy.apply)
    episode_keys = jax.random.split(key, EPISODES)
    for i in range(POP):
        params = jax.tree.map(lambda x, i=i: x[i], population)
        episodes = [
            _gymnax_episode(env, env_params, apply, params, k, CUTOFF) for k in episode_keys
        ]
        returns = [r for r, _, _ in episodes]
        assert float(evaluation.fitness[i]) == pytest.approx(np.mean(returns), rel=1e-6)
        assert int(evaluation.steps[i]) == sum(n for _, n, _ in episodes)
        np.testing.assert_allclose(evaluation.behavior[i], episodes[-1][2], rtol=1e-4, atol=1e-5)


def test_steps_count_actual_env_steps(crn_results):
    _, evaluation, (_, lens, _) = crn_results
    steps = np.asarray(evaluation.steps)
    assert steps[0] < EPISODES * CUTOFF  # terminated early: not the cutoff
    assert steps[1] == EPISODES * CUTOFF  # ran to the cutoff every episode
    np.testing.assert_array_equal(steps, lens.sum(axis=1))
    # CartPole pays 1 per step taken, so the fitness is the mean episode length.
    np.testing.assert_allclose(evaluation.fitness, steps / EPISODES, rtol=1e-6)


def test_common_random_numbers_share_keys(setup, evaluate_crn):
    _, _, shapes, _ = setup
    same = el.tree.stack([el.tree.take(_random_population(shapes, 1, seed=7), 0)] * POP)
    evaluation = evaluate_crn(jax.random.key(3), same)  # same program as crn_results
    np.testing.assert_array_equal(evaluation.fitness, np.full(POP, evaluation.fitness[0]))
    np.testing.assert_array_equal(evaluation.behavior, np.tile(evaluation.behavior[:1], (POP, 1)))


def test_independent_random_numbers(setup, rollout_one):
    task, policy, shapes, population = setup
    key = jax.random.key(9)
    evaluate = jax.jit(
        lambda k, pop: el.evaluate(
            k, task, policy, pop, episodes=EPISODES, common_random_numbers=False
        )
    )
    # Identical members: any difference must come from their keys.
    same = el.tree.stack([el.tree.take(_random_population(shapes, 1, seed=7), 0)] * POP)
    evaluation = evaluate(key, same)
    behavior = np.asarray(evaluation.behavior)
    assert len({tuple(b) for b in behavior.tolist()}) == POP, behavior

    # And member i's keys are split(fold_in(key, i), episodes), not the shared split(key, E).
    evaluation = evaluate(key, population)
    member_keys = [jax.random.split(jax.random.fold_in(key, i), EPISODES) for i in range(POP)]
    rets, lens, behs = _rollout_loop(rollout_one, population, member_keys)
    np.testing.assert_allclose(evaluation.fitness, rets.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(evaluation.steps, lens.sum(axis=1))
    np.testing.assert_allclose(evaluation.behavior, behs[:, -1], rtol=1e-5, atol=1e-6)


def test_chunked_equals_unchunked(setup):
    task, policy, shapes, _ = setup
    population = _random_population(shapes, 8, seed=3)
    key = jax.random.key(5)
    run = lambda chunk: jax.jit(  # noqa: E731
        lambda k, pop: el.evaluate(k, task, policy, pop, chunk_size=chunk)
    )(key, population)
    whole, chunked, single = run(None), run(3), run(1)  # 8 = 3 + 3 + 2; 8 x 1
    assert len(np.unique(np.asarray(whole.steps))) > 1  # members differ
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    # one member a chunk: XLA compiles a batch of one differently (floats can differ in the
    # last bit), the episodes are the same
    np.testing.assert_array_equal(whole.steps, single.steps)
    for a, c in zip(jax.tree.leaves(whole), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)


def test_auto_chunk_size():
    from evojax_lab.evaluate import auto_chunk_size

    assert auto_chunk_size(1282, "cpu") == 128  # 4-32-32-2 MLP: 128 x 5 KB <= 1 MiB
    assert auto_chunk_size(4610, "cpu") == 32
    assert auto_chunk_size(34_434, "cpu") == 4  # 4-256-128-2 MLP
    assert auto_chunk_size(67_586, "cpu") == 4  # 2 x 270 KB fit, but the lower bound is 4
    assert auto_chunk_size(132_179, "cpu") == 4  # the MinAtar CNN on Breakout: lower bound
    assert auto_chunk_size(10_000_000, "cpu") == 4  # lower bound (not one member a chunk)
    assert auto_chunk_size(10, "cpu") == 256  # upper bound
    assert auto_chunk_size(1282, "gpu") is None


def test_default_chunks_on_cpu_equal_one_batch(setup, monkeypatch):
    """chunk_size=None evaluates cache-sized chunks on CPU: same numbers as one batch."""
    import importlib

    evaluate_module = importlib.import_module("evojax_lab.evaluate")  # (el.evaluate: function)
    task, policy, shapes, _ = setup
    population = _random_population(shapes, 10, seed=4)
    key = jax.random.key(6)
    monkeypatch.setattr(evaluate_module, "AUTO_CHUNK_MAX", 4)  # chunks 4 + 4 + 2
    default = lambda k, pop: el.evaluate(k, task, policy, pop)  # noqa: E731
    if jax.default_backend() == "cpu":
        assert "scan" in str(jax.make_jaxpr(default)(key, population))  # chunked: lax.map
    auto = jax.jit(default)(key, population)
    whole = jax.jit(lambda k, pop: el.evaluate(k, task, policy, pop, chunk_size=10))(
        key, population)
    assert "scan" not in str(jax.make_jaxpr(
        lambda k, pop: el.evaluate(k, task, policy, pop, chunk_size=10))(key, population))
    assert len(np.unique(np.asarray(whole.steps))) > 1
    for a, b in zip(whole, auto, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("episodes", [0, -1])
def test_episodes_must_be_positive(setup, episodes):
    task, policy, _, population = setup
    with pytest.raises(ValueError, match="episodes"):
        el.evaluate(jax.random.key(0), task, policy, population, episodes=episodes)


def test_an_actor_with_a_carry_of_its_own_runs_in_the_loop(setup):
    """A custom :class:`~evojax_lab.policies.Actor` (here: a policy with memory that alternates
    its actions, ignoring the observations) runs in the same loop; its returns equal a Python
    loop over the gymnax environment with the same keys. Wrappers stack on it."""
    task, _, _, _ = setup
    alternating = el.policies.Actor(
        start=lambda obs, key: jnp.int32(0),
        act=lambda params, obs, last, t, key: (1 - last, 1 - last, key),
        finish=lambda carry, length: {"last_action": carry},
    )
    key = jax.random.PRNGKey(4)
    ret, length, _ = jax.jit(lambda k: el.rollout(k, task, alternating, None))(key)
    # Python reference: split(k)[1] resets, k, step_key = split(k) per step
    k, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)
    total, steps, action = 0.0, 0, 0
    for _ in range(CUTOFF):
        k, step_key = jax.random.split(k)
        action = 1 - action
        obs, state, reward, done = task.step(step_key, state, action)
        total, steps = total + float(reward), steps + 1
        if bool(done):
            break
    assert (float(ret), int(length)) == (total, steps)
    # the recording wrapper on top of it samples the observations the actor saw
    recorded = el.evaluate(key, task, alternating, jnp.zeros((1, 1)), experiences=3)
    assert recorded.experiences.shape == (1, 3, *task.observation_shape)
    episode = el.rollout(jax.random.split(key, 1)[0], task, alternating, None)  # the CRN key
    np.testing.assert_array_equal(recorded.fitness, [episode[0]])
    np.testing.assert_array_equal(recorded.steps, [episode[1]])
