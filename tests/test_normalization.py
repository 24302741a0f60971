"""Observation normalization (ES paper, REFERENCE §1) and virtual batch norm.

Expected values come from NumPy: a hand-written float64 Welford loop over observations recorded
by a NumPy replay of the rollouts, the paper's formula ``clip((o - mean) / sqrt(max(var, 1e-2)),
-5, 5)``, and a NumPy forward pass of the VBN network.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.policies import normalization as nz

T_MAX = 12


def welford(rows):
    """Float64 Welford over ``rows`` (independent of the library): ``(count, mean, m2)``."""
    count, mean, m2 = 0, None, None
    for x in np.asarray(rows, np.float64):
        if mean is None:
            mean, m2 = np.zeros_like(x), np.zeros_like(x)
        count += 1
        delta = x - mean
        mean = mean + delta / count
        m2 = m2 + delta * (x - mean)
    return count, mean, m2


def np_normalize(count, mean, m2, obs):
    if count == 0:
        mean, var = np.zeros_like(obs), np.ones_like(obs)
    else:
        var = np.maximum(m2 / count, 1e-2)
    return np.clip((obs - mean) / np.sqrt(var), -5.0, 5.0)


# -- a deterministic task whose trajectory depends on the policy ------------------------------


class _State(NamedTuple):
    x: jax.Array
    t: jax.Array


def _toy_task():
    """2-D linear system: x' = 0.8 x + (a, -2a) + (0.3, 0.1); done when x0 > 2 or t == T_MAX."""

    def reset(key):
        del key
        x = jnp.array([0.5, -1.0], jnp.float32)
        return x, _State(x, jnp.zeros((), jnp.int32))

    def step(key, state, action):
        del key
        a = jnp.asarray(action, jnp.float32).reshape(())
        x = 0.8 * state.x + jnp.stack([a, -2.0 * a]) + jnp.array([0.3, 0.1], jnp.float32)
        t = state.t + 1
        done = (x[0] > 2.0) | (t >= T_MAX)
        return x, _State(x, t), x[0], done

    return el.tasks.Task(
        name="toy", reset=reset, step=step, behavior=lambda obs, s: obs,
        observation_shape=(2,), action_space=el.tasks.ActionSpace("continuous", shape=(1,),
                                                                  low=-1.0, high=1.0),
        max_steps=T_MAX, behavior_size=2,
    )


def _toy_policy(params, obs):
    return jnp.tanh(jnp.dot(params["w"], obs) + params["b"])


def _np_replay(task_norm, w, b):
    """NumPy replay of the toy rollout: the raw observations the policy acted on, and the
    return."""
    x, seen, ret = np.array([0.5, -1.0]), [], 0.0
    for t in range(1, T_MAX + 1):
        seen.append(x.copy())
        a = np.tanh(w @ np_normalize(*task_norm, x) + b)
        x = 0.8 * x + np.array([a, -2 * a]) + np.array([0.3, 0.1])
        ret += x[0]
        if x[0] > 2.0 or t >= T_MAX:
            break
    return np.array(seen), ret


@pytest.fixture(scope="module")
def toy_population():
    rng = np.random.default_rng(3)
    return {"w": rng.normal(size=(4, 2)).astype(np.float32),
            "b": np.array([0.9, -0.5, 0.1, 0.6], np.float32)}


def test_welford_update_merge_reduce_match_numpy():
    rng = np.random.default_rng(0)
    rows = rng.normal(3.0, 2.0, size=(40, 3)).astype(np.float32)
    count, mean, m2 = welford(rows)
    s = nz.obs_stats_init((3,))
    for x in rows:
        s = nz.obs_stats_update(s, x)
    np.testing.assert_allclose(s.count, count)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(s.m2, m2, rtol=1e-4)

    def stats_of(part):
        t = nz.obs_stats_init((3,))
        for x in part:
            t = nz.obs_stats_update(t, x)
        return t

    parts = [stats_of(rows[:7]), nz.obs_stats_init((3,)), stats_of(rows[7:8]),
             stats_of(rows[8:])]
    merged = parts[0]
    for p in parts[1:]:
        merged = nz.obs_stats_merge(merged, p)
    reduced = nz.obs_stats_reduce(jax.tree.map(lambda *a: jnp.stack(a), *parts))
    for got in (merged, reduced):
        np.testing.assert_allclose(got.count, 40)
        np.testing.assert_allclose(got.mean, mean, rtol=1e-5)
        np.testing.assert_allclose(got.m2, m2, rtol=1e-4)


def test_normalize_obs_floor_clip_and_empty():
    empty = nz.obs_stats_init((3,))
    obs = np.array([0.5, 7.0, -9.0], np.float32)
    np.testing.assert_allclose(nz.normalize_obs(empty, obs), np_normalize(0, None, None, obs))
    stats = nz.ObsStats(jnp.float32(10.0), jnp.array([1.0, 2.0, 3.0]),
                        jnp.array([0.001, 40.0, 10.0]))  # var 1e-4 (floored), 4, 1
    want = np_normalize(10, np.array([1.0, 2.0, 3.0]), np.array([0.001, 40.0, 10.0]), obs)
    np.testing.assert_allclose(nz.normalize_obs(stats, obs), want, rtol=1e-6)
    assert float(want[0]) == pytest.approx(-5.0)  # (0.5 - 1) / 0.1, clipped


def test_evaluate_obs_stats_equal_numpy_welford(toy_population):
    task = _toy_task()
    prior_rows = np.random.default_rng(1).normal(1.0, 0.7, size=(9, 2))
    prior = welford(prior_rows)
    stats = nz.obs_stats_init((2,))
    for x in prior_rows:
        stats = nz.obs_stats_update(stats, x)
    ev = jax.jit(lambda pop, s: el.evaluate(jax.random.PRNGKey(0), task, _toy_policy, pop,
                                            obs_norm=s))(toy_population, stats)
    plain = el.evaluate(jax.random.PRNGKey(0), task, _toy_policy, toy_population)
    assert plain.obs_stats is None
    everything = []
    for i in range(4):
        seen, ret = _np_replay(prior, toy_population["w"][i], toy_population["b"][i])
        count, mean, m2 = welford(seen)
        everything.append(seen)
        np.testing.assert_allclose(ev.obs_stats.count[i], count)
        np.testing.assert_allclose(ev.obs_stats.mean[i], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ev.obs_stats.m2[i], m2, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ev.fitness[i], ret, rtol=1e-4)
        assert int(ev.steps[i]) == len(seen)
    # episodes end at different times: the masking matters
    assert len({len(s) for s in everything}) > 1
    count, mean, m2 = welford(np.concatenate(everything))
    total = nz.obs_stats_reduce(ev.obs_stats)
    np.testing.assert_allclose(total.count, count)
    np.testing.assert_allclose(total.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(total.m2, m2, rtol=1e-4)


def test_chunked_and_multi_episode_stats_agree(toy_population):
    task = _toy_task()
    stats = nz.obs_stats_init((2,))
    one = el.evaluate(jax.random.PRNGKey(0), task, _toy_policy, toy_population, obs_norm=stats,
                      chunk_size=4)
    chunked = el.evaluate(jax.random.PRNGKey(0), task, _toy_policy, toy_population,
                          obs_norm=stats, chunk_size=2)
    twice = el.evaluate(jax.random.PRNGKey(0), task, _toy_policy, toy_population,
                        obs_norm=stats, episodes=2)
    for a, b in zip(jax.tree.leaves(one.obs_stats), jax.tree.leaves(chunked.obs_stats),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # deterministic task: two identical episodes double the count, same mean and variance
    np.testing.assert_allclose(twice.obs_stats.count, 2 * one.obs_stats.count)
    np.testing.assert_allclose(twice.obs_stats.mean, one.obs_stats.mean, rtol=1e-5)
    np.testing.assert_allclose(twice.obs_stats.m2, 2 * one.obs_stats.m2, rtol=1e-4)


# -- make_train(obs_norm=True) ---------------------------------------------------------------

SEQ = np.array([[0.0, 10.0], [1.0, 10.5], [2.0, 9.5], [4.0, 11.0], [8.0, 10.0]], np.float32)


def _fixed_sequence_task():
    """Observations follow SEQ whatever the actions; reward = the action; 5 steps."""

    def reset(key):
        del key
        return jnp.asarray(SEQ[0]), jnp.zeros((), jnp.int32)

    def step(key, t, action):
        del key
        t = t + 1
        obs = jnp.asarray(SEQ)[jnp.minimum(t, len(SEQ) - 1)]
        return obs, t, jnp.asarray(action, jnp.float32).reshape(()), t >= len(SEQ)

    return el.tasks.Task(
        name="sequence", reset=reset, step=step, behavior=lambda obs, s: obs,
        observation_shape=(2,), action_space=el.tasks.ActionSpace("continuous", shape=(),
                                                                  low=-99.0, high=99.0),
        max_steps=len(SEQ), behavior_size=2,
    )


def _reading_policy(params, obs):
    """A nonlinear reading of the normalized observation (parameters only add 0)."""
    return jnp.exp(0.5 * obs[0]) + jnp.maximum(obs[1], 0.0) + 0.0 * params["w"]


def _np_reading(z):
    return (np.exp(0.5 * z[:, 0]) + np.maximum(z[:, 1], 0.0)).sum()


@pytest.fixture(scope="module")
def sequence_run():
    task = _fixed_sequence_task()
    trainer = el.make_train(task, _reading_policy, el.strategies.openai_es(4), generations=3,
                            params={"w": jnp.zeros((), jnp.float32)}, eval_episodes=1,
                            record=("fitness",), obs_norm=True)
    return trainer, trainer(jax.random.PRNGKey(0))


def test_train_statistics_shared_per_generation_and_updated_between(sequence_run):
    trainer, result = sequence_run
    pop = 4
    fitness = np.asarray(result.metrics["population_fitness"])
    # generation g sees statistics of generations < g: g copies of SEQ per member
    for g in range(3):
        if g == 0:
            want = _np_reading(np.clip(SEQ, -5, 5))
        else:
            count, mean, m2 = welford(np.tile(SEQ, (g * pop, 1)))
            want = _np_reading(np_normalize(count, mean, m2, SEQ))
        np.testing.assert_allclose(fitness[g], np.full(pop, want), rtol=1e-5)
    count, mean, m2 = welford(np.tile(SEQ, (3 * pop, 1)))
    np.testing.assert_allclose(result.metrics["obs_count"], [pop * 5, 2 * pop * 5, 3 * pop * 5])
    np.testing.assert_allclose(result.metrics["obs_mean"][-1], mean, rtol=1e-5)
    np.testing.assert_allclose(result.metrics["obs_std"][-1],
                               np.sqrt(np.maximum(m2 / count, 1e-2)), rtol=1e-5)
    # the solution is scored with the statistics after the generation
    count, mean, m2 = welford(np.tile(SEQ, (pop, 1)))
    np.testing.assert_allclose(result.metrics["solution_fitness"][0],
                               _np_reading(np_normalize(count, mean, m2, SEQ)), rtol=1e-5)


def test_train_obs_stats_live_in_the_carry(sequence_run):
    trainer, result = sequence_run
    carry = trainer.init(jax.random.PRNGKey(0))
    assert float(carry.obs_stats.count) == 0.0
    carry, m1 = trainer.run(carry, 2)
    carry, m2 = trainer.run(carry, 1)
    np.testing.assert_array_equal(np.concatenate([m1["obs_mean"], m2["obs_mean"]]),
                                  result.metrics["obs_mean"])
    count, mean, _ = welford(np.tile(SEQ, (12, 1)))
    assert float(carry.obs_stats.count) == count
    np.testing.assert_allclose(carry.obs_stats.mean, mean, rtol=1e-5)


def test_train_result_returns_the_final_obs_stats():
    """``TrainResult.obs_stats`` is the carry's statistics after the last generation (one call,
    blocks, ``run_with_progress``) and matches the last ``obs_mean`` / ``obs_std`` rows."""
    task = el.tasks.make("CartPole-v1", max_steps=20)
    policy = el.policies.for_task(task, hidden=(4,))
    key = jax.random.PRNGKey(3)
    trainer = el.make_train(task, policy, el.strategies.openai_es(4), generations=2,
                            eval_episodes=0, obs_norm=True)
    result = trainer(key)
    assert isinstance(result.obs_stats, nz.ObsStats)
    carry, metrics = trainer.run(trainer.init(key), 2)
    for got in (result.obs_stats, trainer.result(carry, [metrics]).obs_stats,
                el.checkpoint.run_with_progress(trainer, key, block=2, progress=False).obs_stats):
        for a, b in zip(got, carry.obs_stats, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(result.obs_stats.count) == float(result.metrics["obs_count"][-1]) > 0
    mean, std = nz.obs_stats_mean_std(result.obs_stats)
    np.testing.assert_array_equal(mean, result.metrics["obs_mean"][-1])
    np.testing.assert_array_equal(std, result.metrics["obs_std"][-1])
    # positional users of the first three fields are unaffected
    state, metrics_, solution = result[:3]
    assert metrics_ is result.metrics and solution is result.solution

    plain = el.make_train(task, policy, el.strategies.openai_es(4), generations=2,
                          eval_episodes=0)
    assert plain(key).obs_stats is None
    carry, metrics = plain.run(plain.init(key), 2)
    assert plain.result(carry, [metrics]).obs_stats is None


def test_obs_norm_rejects_function_tasks():
    task = el.tasks.function(lambda key, p: -jnp.sum(p["w"] ** 2))
    with pytest.raises(ValueError, match="obs_norm"):
        el.make_train(task, None, el.strategies.openai_es(4), generations=1,
                      params={"w": jnp.zeros(2)}, obs_norm=True)


def test_action_noise_has_the_requested_std():
    task = _fixed_sequence_task()._replace(max_steps=5)
    pop = {"w": jnp.zeros((256,), jnp.float32)}
    zero = lambda params, obs: 0.0 * params["w"]  # noqa: E731
    ev = el.evaluate(jax.random.PRNGKey(1), task, zero, pop, action_noise=0.5,
                     common_random_numbers=False)
    # return = sum of 5 N(0, 0.25) draws: std 0.5 * sqrt(5)
    assert np.std(np.asarray(ev.fitness)) == pytest.approx(0.5 * np.sqrt(5), rel=0.15)
    quiet = el.evaluate(jax.random.PRNGKey(1), task, zero, pop)
    np.testing.assert_array_equal(quiet.fitness, np.zeros(256))
    cartpole = el.tasks.make("CartPole-v1")
    with pytest.raises(ValueError, match="continuous"):
        el.evaluate(jax.random.PRNGKey(0), cartpole, el.policies.for_task(cartpole),
                    jax.tree.map(lambda x: x[None], el.policies.for_task(cartpole).init(
                        jax.random.PRNGKey(0), jnp.zeros(4))), action_noise=0.1)
    with pytest.raises(ValueError, match="action_noise"):
        el.make_train(task, zero, el.strategies.openai_es(4), generations=1,
                      params={"w": jnp.zeros(())}, action_noise=-1.0)


# -- virtual batch norm -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole_vbn():
    task = el.tasks.make("CartPole-v1", max_steps=30)
    ref = el.policies.reference_batch(jax.random.PRNGKey(0), task, size=16, stride=3)
    policy = el.policies.vbn_for_task(task, ref, hidden=(8, 8))
    return task, ref, policy


def np_vbn_logits(p, x, r, layers, normalize=True):
    """VBNMLP's forward pass by hand in float64: each hidden layer normalized by the statistics
    of the reference batch ``r`` pushed through the same layers (``normalize=False``: the same
    network with the normalization left out, scale and bias kept)."""
    for i in range(layers):
        d, v = p[f"Dense_{i}"], p[f"VirtualBatchNorm_{i}"]
        zx, zr = x @ d["kernel"] + d["bias"], r @ d["kernel"] + d["bias"]
        mu, var = (zr.mean(0), zr.var(0)) if normalize else (0.0, 1.0 - 1e-5)
        x = np.tanh((zx - mu) / np.sqrt(var + 1e-5) * v["scale"] + v["bias"])
        r = np.tanh((zr - mu) / np.sqrt(var + 1e-5) * v["scale"] + v["bias"])
    return x @ p["output"]["kernel"] + p["output"]["bias"]


def test_reference_batch_is_fixed_and_from_random_actions(cartpole_vbn):
    task, ref, _ = cartpole_vbn
    assert ref.array.shape == (16, 4)
    again = el.policies.reference_batch(jax.random.PRNGKey(0), task, size=16, stride=3)
    assert again == ref and hash(again) == hash(ref)
    assert np.std(ref.array, axis=0).min() > 0  # observations differ
    with pytest.raises(ValueError, match="size"):
        el.policies.reference_batch(jax.random.PRNGKey(0), task, size=1)


def test_vbn_mlp_matches_numpy_forward(cartpole_vbn):
    task, ref, _ = cartpole_vbn
    policy = el.policies.VBNMLP(action_dim=2, reference=ref, hidden=(5, 3), head="linear")
    params = policy.init(jax.random.PRNGKey(1), jnp.zeros(4))
    rng = np.random.default_rng(2)
    params = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
    p = jax.tree.map(np.asarray, params)["params"]

    def forward(x, r):
        return np_vbn_logits(p, x, r, layers=2)

    r = ref.array.astype(np.float64)
    for obs in rng.normal(size=(3, 4)):
        np.testing.assert_allclose(policy.apply(params, jnp.asarray(obs, jnp.float32)),
                                   forward(obs, r), rtol=1e-4, atol=1e-5)
    # statistics from the reference batch, not from the batch evaluated: vmap == one by one
    batch = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    np.testing.assert_allclose(jax.vmap(lambda o: policy.apply(params, o))(batch),
                               np.stack([forward(np.asarray(o, np.float64), r) for o in batch]),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["openai_es", "deep_ga"])
def test_vbn_policy_runs_a_generation(cartpole_vbn, kind):
    task, _, policy = cartpole_vbn
    strategy = (el.strategies.openai_es(8) if kind == "openai_es"
                else el.strategies.deep_ga(8, truncation=3, validation_episodes=1,
                                           validation_candidates=2))
    result = el.make_train(task, policy, strategy, generations=1, eval_episodes=1)(
        jax.random.PRNGKey(0))
    assert np.all(np.isfinite(result.metrics["mean_fitness"]))
    # CartPole pays 1 per step: the fitness is the episode length the evaluation counted (the
    # GA also spends validation episodes, counted on top)
    steps, mean = float(result.metrics["steps"][0]), float(result.metrics["mean_fitness"][0])
    if kind == "openai_es":
        assert steps == pytest.approx(8 * mean, rel=1e-6)
    else:
        assert steps > 8 * mean
    assert float(result.metrics["best_fitness"][0]) == round(float(
        result.metrics["best_fitness"][0])) >= mean
    assert jax.tree.structure(result.solution) == jax.tree.structure(
        policy.init(jax.random.PRNGKey(0), jnp.zeros(4)))
    # The trained solution acts with the reference batch's statistics: its rollout equals an
    # episode stepped here with actions from the NumPy forward pass (argmax of the logits), and
    # the same network without the normalization would have acted otherwise on that episode.
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), result.solution)["params"]
    ref = np.asarray(policy.reference.array, np.float64)
    key = jax.random.PRNGKey(4)
    ret, length = (float(v) for v in el.rollout(key, task, policy, result.solution)[:2])
    key, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)
    total, steps, differs = 0.0, 0, False
    while steps < 30:
        x = np.asarray(obs, np.float64)
        action = int(np.argmax(np_vbn_logits(p, x, ref, layers=2)))
        differs |= action != int(np.argmax(np_vbn_logits(p, x, ref, 2, normalize=False)))
        key, step_key = jax.random.split(key)
        obs, state, reward, done = task.step(step_key, state, jnp.asarray(action))
        total, steps = total + float(reward), steps + 1
        if bool(done):
            break
    assert (ret, length) == (total, steps)
    assert differs
