"""The Deep GA with a safe mutation: rollouts record the parent's own experiences (a bounded
reservoir of its observations), the state keeps them, and children are safe mutations of their
parent measured on them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.evaluate import _fill_reservoir, _reservoir_add


@pytest.fixture(scope="module")
def maze():
    task = el.tasks.breadcrumb_hard_maze(max_steps=60, action_repeat=3)  # 20 policy steps
    policy = el.policies.deep_mlp(3, 6, action_dim=2)
    params = policy.init(jax.random.key(0), jnp.zeros(task.observation_shape))
    return task, policy, params


def _observations(task, policy, params, key):
    """Every observation the policy sees in one episode, stepped in Python (no reservoir)."""
    key, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)
    seen = []
    for _ in range(task.max_steps):
        seen.append(np.asarray(obs))
        key, step_key = jax.random.split(key)
        obs, state, _, done = task.step(step_key, state, policy.apply(params, obs))
        if bool(done):
            break
    return np.stack(seen)


def test_reservoir_is_uniform_and_bounded():
    # Algorithm R keeps each of n items with probability K / n: count over many keys.
    K, n, trials = 3, 8, 4000

    def run(key):
        buf = jnp.full((K,), -1.0)
        for t in range(n):
            buf = _reservoir_add(buf, jax.random.fold_in(key, t), jnp.int32(t), jnp.float32(t))
        return buf

    bufs = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), trials)))
    assert (bufs >= 0).all()
    for row in bufs[:50]:
        assert len(set(row.tolist())) == K  # without replacement
    freq = np.array([(bufs == t).any(axis=1).mean() for t in range(n)])
    np.testing.assert_allclose(freq, K / n, atol=0.035)


def test_short_episode_fills_cyclically():
    buf = jnp.arange(5.0)[:, None] * jnp.ones((5, 2))
    out = np.asarray(_fill_reservoir(buf, jnp.int32(2)))
    np.testing.assert_array_equal(out[:, 0], [0, 1, 0, 1, 0])


def test_experiences_are_observations_of_the_episode_and_leave_fitness_alone(maze):
    task, policy, params = maze
    population = jax.tree.map(lambda x: jnp.stack([x, x * 1.5]), params)
    key = jax.random.key(3)
    plain = el.evaluate(key, task, policy, population)
    recorded = el.evaluate(key, task, policy, population, experiences=50)
    np.testing.assert_array_equal(plain.fitness, recorded.fitness)
    np.testing.assert_array_equal(plain.behavior, recorded.behavior)
    assert plain.experiences is None
    assert recorded.experiences.shape == (2, 50, *task.observation_shape)
    # common random numbers: the evaluation's episode key for every member
    episode_key = jax.random.split(key, 1)[0]
    for m in range(2):
        seen = _observations(task, policy, jax.tree.map(lambda x, m=m: x[m], population),
                             episode_key)
        assert len(seen) <= 50  # 20 policy steps: all kept, then repeated
        got = np.asarray(recorded.experiences[m])
        np.testing.assert_allclose(got[: len(seen)], seen, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[len(seen): 2 * len(seen)], seen[: 50 - len(seen)],
                                   rtol=1e-5, atol=1e-5)


def test_experiences_subsample_long_episodes(maze):
    task, policy, params = maze
    population = jax.tree.map(lambda x: x[None], params)
    ev = el.evaluate(jax.random.key(4), task, policy, population, experiences=7)
    seen = _observations(task, policy, params, jax.random.split(jax.random.key(4), 1)[0])
    got = np.asarray(ev.experiences[0])
    # every recorded row is one of the episode's observations, all distinct rows of it
    idx = [int(np.argmin(np.abs(seen - row).sum(axis=1))) for row in got]
    np.testing.assert_allclose(got, seen[idx], rtol=1e-5, atol=1e-5)
    assert len(set(idx)) == 7


def test_function_task_has_no_experiences():
    task = el.tasks.function(lambda k, p: -jnp.sum(p ** 2))
    with pytest.raises(ValueError, match="experiences"):
        el.evaluate(jax.random.key(0), task, None, jnp.zeros((2, 3)), experiences=4)


def test_safe_mutation_arguments():
    apply = lambda p, x: p * x
    with pytest.raises(ValueError, match="observation_shape"):
        el.mutations.safe_mutation(apply, "sum", experiences=10)
    with pytest.raises(ValueError, match="experiences"):
        el.mutations.safe_mutation(apply, "sum", experiences=0, observation_shape=(2,))
    with pytest.raises(ValueError, match="kind"):
        el.mutations.safe_mutation(apply, "nope", inputs=jnp.ones((2, 2)))
    op = el.mutations.safe_mutation(apply, "abs", inputs=jnp.ones((2, 2)))
    assert op.num_experiences == 0
    with pytest.raises(ValueError, match="no fixed inputs"):
        el.mutations.safe_mutation(apply, "abs", experiences=3, observation_shape=(2,))(
            jax.random.key(0), jnp.ones(2), 0.1)


@pytest.fixture(scope="module")
def safe_ga_run(maze):
    task, policy, params = maze
    op = el.mutations.safe_mutation(policy.apply, "abs", experiences=16,
                                    observation_shape=task.observation_shape)
    strategy = el.strategies.deep_ga(8, 0.05, 3, validation_episodes=0, mutation=op)
    trainer = el.make_train(task, policy, strategy, generations=2, eval_episodes=0,
                            params=params)
    carry = trainer.init(jax.random.key(5))
    carry1, _ = trainer.run(carry, 1)
    carry2, _ = trainer.run(carry1, 1)
    return task, policy, strategy, op, carry1, carry2


def test_safe_ga_strategy_surface(safe_ga_run):
    _, _, strategy, _, carry1, _ = safe_ga_run
    assert strategy.experiences == 16
    assert strategy.member_genome is None  # not decodable from seeds
    exp = carry1.state.parent_experiences
    assert exp.shape == (3, 16, 11)
    assert bool(jnp.all(jnp.isfinite(exp))) and float(jnp.abs(exp).sum()) > 0


def test_safe_ga_children_are_safe_mutations_on_the_parents_experiences(safe_ga_run):
    task, policy, strategy, op, carry1, _ = safe_ga_run
    state = carry1.state
    gen_key = jax.random.fold_in(carry1.key, carry1.generation)
    ask_key = jax.random.split(gen_key, 3)[0]
    population = strategy.ask(ask_key, state)
    for i in (1, 5):  # member 0 is the elite
        member_key = jax.random.fold_in(ask_key, i)
        seed = jax.random.bits(jax.random.fold_in(member_key, 0), (), jnp.uint32)
        parent = int(jax.random.randint(jax.random.fold_in(member_key, 1), (), 0, 3))
        sigma = el.genome.round_significand(state.sigma)
        expected = el.mutations.safe_mutate(
            el.genome.seed_key(seed), jax.tree.map(lambda x, p=parent: x[p], state.parents),
            policy.apply, state.parent_experiences[parent], sigma, "abs")
        got = jax.tree.map(lambda x, i=i: x[i], population)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        plain = jax.tree.map(lambda x, p=parent: x[p], state.parents)
        delta = np.concatenate([np.ravel(a - b) for a, b in
                                zip(jax.tree.leaves(got), jax.tree.leaves(plain), strict=True)])
        assert 0 < np.abs(delta).max() <= 0.2 + 1e-6  # the clip of REFERENCE §3


def test_tell_without_experiences_is_an_error(maze):
    task, policy, params = maze
    op = el.mutations.safe_mutation(policy.apply, "sum", experiences=4,
                                    observation_shape=task.observation_shape)
    strategy = el.strategies.deep_ga(4, 0.05, 2, validation_episodes=0, mutation=op)
    state = strategy.init(jax.random.key(0), params)
    ev = el.Evaluation(jnp.arange(4.0), jnp.zeros((4, 2)), jnp.ones(4, jnp.int32))
    with pytest.raises(ValueError, match="experiences"):
        strategy.tell(jax.random.key(1), strategy.ask(jax.random.key(1), state), ev, state)


@pytest.mark.slow
def test_safe_ga_learns_recurrent_parity():
    """Learning threshold: the GA with SM-R on the 16 parity sequences lowers the NLL from the
    50/50 guess (ln 2 = 0.693) well below it in 60 generations of 48."""
    from evojax_lab.tasks.parity import parity_data

    model = el.policies.Recurrent(cell="rnn", hidden=15, layers=2, outputs=2)
    sequences, _ = parity_data()
    task = el.tasks.parity(model.apply)
    template = model.init(jax.random.key(0), jnp.zeros((4, 1)))
    op = el.mutations.safe_mutation(model.apply, "r", inputs=jnp.asarray(sequences))
    strategy = el.strategies.deep_ga(48, 0.01, 8, validation_episodes=0, mutation=op,
                                     genome_capacity=0)
    trainer = el.make_train(task, None, strategy, generations=60, eval_episodes=0,
                            params=template)
    result = trainer(jax.random.key(0))
    best = np.asarray(result.metrics["best_fitness"])
    assert best[0] > -0.8  # starts near -ln 2
    assert best[-1] > -0.45, best[-1]
