"""The Deep GA with a safe mutation: rollouts record the parent's own experiences (a bounded
reservoir of its observations), tell records them with one extra rollout of each new parent
(through the evaluate it is given), the state keeps them, and children are safe mutations of
their parent measured on them."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.policies.actors import fill_reservoir, reservoir_add


@pytest.fixture(scope="module")
def maze():
    task = el.tasks.breadcrumb_hard_maze(max_steps=60, action_repeat=3)  # 20 policy steps
    policy = el.policies.deep_mlp(3, 6, action_dim=2)
    params = policy.init(jax.random.key(0), jnp.zeros(task.observation_shape))
    return task, policy, params


_STEPPERS = {}


def _stepper(task, policy):
    """One policy step ``(key, state, params, obs) -> (obs, state, reward, done)``, jitted once
    per task and policy (an episode is still stepped one call at a time, in Python)."""
    k = (id(task), id(policy))
    if k not in _STEPPERS:
        _STEPPERS[k] = (task, policy, jax.jit(
            lambda key, state, params, obs: task.step(key, state, policy.apply(params, obs))))
    return _STEPPERS[k][2]


def _observations(task, policy, params, key):
    """Every observation the policy sees in one episode, stepped in Python (no reservoir)."""
    step = _stepper(task, policy)
    key, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)
    seen = []
    for _ in range(task.max_steps):
        seen.append(np.asarray(obs))
        key, step_key = jax.random.split(key)
        obs, state, _, done = step(step_key, state, params, obs)
        if bool(done):
            break
    return np.stack(seen)


def test_reservoir_is_uniform_and_bounded():
    # Algorithm R keeps each of n items with probability K / n: count over many keys.
    K, n, trials = 3, 8, 4000

    def run(key):
        buf = jnp.full((K,), -1.0)
        for t in range(n):
            buf = reservoir_add(buf, jax.random.fold_in(key, t), jnp.int32(t), jnp.float32(t))
        return buf

    bufs = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), trials)))
    assert (bufs >= 0).all()
    for row in bufs[:50]:
        assert len(set(row.tolist())) == K  # without replacement
    freq = np.array([(bufs == t).any(axis=1).mean() for t in range(n)])
    np.testing.assert_allclose(freq, K / n, atol=0.035)


def test_short_episode_fills_cyclically():
    buf = jnp.arange(5.0)[:, None] * jnp.ones((5, 2))
    out = np.asarray(fill_reservoir(buf, jnp.int32(2)))
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
    assert isinstance(op, el.mutations.Mutation)
    assert op.experiences == 0 and op.decodable is False
    with pytest.raises(ValueError, match="no fixed inputs"):
        el.mutations.safe_mutation(apply, "abs", experiences=3, observation_shape=(2,))(
            jax.random.key(0), jnp.ones(2), 0.1)


PARENTS = 3


@pytest.fixture(scope="module")
def safe_ga_run(maze):
    task, policy, params = maze
    op = el.mutations.safe_mutation(policy, "abs", experiences=16,
                                    observation_shape=task.observation_shape)
    strategy = el.strategies.deep_ga(8, 0.05, PARENTS, validation_episodes=0, mutation=op)
    trainer = el.make_train(task, policy, strategy, generations=2, eval_episodes=0,
                            params=params)
    carry = trainer.init(jax.random.key(5))
    carry1, metrics1 = trainer.run(carry, 1)
    carry2, metrics2 = trainer.run(carry1, 1)
    metrics = {k: np.concatenate([np.asarray(metrics1[k]), np.asarray(metrics2[k])])
               for k in ("extra_steps", "steps")}
    return task, policy, strategy, op, carry1, carry2, metrics


def test_safe_ga_strategy_surface(safe_ga_run):
    task, _, _, op, carry1, carry2, metrics = safe_ga_run
    assert op.experiences == 16
    assert op.observation_shape == task.observation_shape
    assert op.decodable is False  # genomes are a lineage record, not decodable from seeds
    for carry in (carry1, carry2):
        exp = carry.state.parent_experiences
        assert exp.shape == (PARENTS, 16, 11)
        assert bool(jnp.all(jnp.isfinite(exp))) and float(jnp.abs(exp).sum()) > 0
    # one extra episode (20 policy steps) per new parent, counted in the run's steps
    np.testing.assert_array_equal(metrics["extra_steps"], PARENTS * 20)
    np.testing.assert_array_equal(np.diff(np.concatenate([[0], metrics["steps"]])),
                                  8 * 20 + PARENTS * 20)


def test_safe_ga_experiences_are_observations_of_each_parents_rollout(safe_ga_run):
    """Every stored row of parent j is one of the observations parent j itself sees in an
    episode (stepped in Python; the maze is deterministic, so any key gives that episode): a
    reservoir sample of 16 of its 20 steps. A parent whose robot moves sees 20 distinct
    observations; its 16 rows are then distinct steps, and not all seen by another parent."""
    task, policy, _, _, carry1, carry2, _ = safe_ga_run
    for carry in (carry1, carry2):
        state = carry.state
        episodes = [
            _observations(task, policy, jax.tree.map(lambda x, j=j: x[j], state.parents),
                          jax.random.key(0))
            for j in range(PARENTS)
        ]
        moving = [len(np.unique(seen, axis=0)) == len(seen) for seen in episodes]
        assert any(moving)  # the distinctness checks below really run
        for j, seen in enumerate(episodes):
            assert len(seen) == 20
            got = np.asarray(state.parent_experiences[j])
            idx = [int(np.argmin(np.abs(seen - row).sum(axis=1))) for row in got]
            np.testing.assert_allclose(got, seen[idx], rtol=1e-5, atol=1e-5)
            if not moving[j]:
                continue
            assert len(set(idx)) == 16
            for o, other in enumerate(episodes):
                if o != j:  # some row is far (>> the 1e-5 match above) from all of o's
                    dist = np.abs(other[None] - got[:, None]).sum(axis=2).min(axis=1)
                    assert dist.max() > 1e-4, (j, o)


def test_safe_ga_children_are_safe_mutations_on_the_parents_experiences(safe_ga_run):
    _, policy, strategy, _, carry1, _, _ = safe_ga_run
    gen_key = jax.random.fold_in(carry1.key, carry1.generation)
    ask_key = jax.random.split(gen_key, 3)[0]
    population, state = jax.jit(strategy.ask)(ask_key, carry1.state)
    sigma = el.genome.round_significand(state.sigma)
    for i in (1, 5):  # member 0 is the elite
        member_key = jax.random.fold_in(ask_key, i)
        seed = jax.random.bits(jax.random.fold_in(member_key, 0), (), jnp.uint32)
        parent = int(jax.random.randint(jax.random.fold_in(member_key, 1), (), 0, PARENTS))
        expected = el.mutations.safe_mutate(
            el.genome.seed_key(seed), jax.tree.map(lambda x, p=parent: x[p], state.parents),
            el.policies.output_fn(policy), state.parent_experiences[parent], sigma, "abs")
        got = jax.tree.map(lambda x, i=i: x[i], population)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        plain = jax.tree.map(lambda x, p=parent: x[p], state.parents)
        delta = np.concatenate([np.ravel(a - b) for a, b in
                                zip(jax.tree.leaves(got), jax.tree.leaves(plain), strict=True)])
        assert 0 < np.abs(delta).max() <= 0.2 + 1e-6  # the clip of REFERENCE §3


def test_tell_without_experiences_is_an_error(maze):
    task, policy, params = maze
    op = el.mutations.safe_mutation(policy, "sum", experiences=4,
                                    observation_shape=task.observation_shape)
    strategy = el.strategies.deep_ga(4, 0.05, 2, validation_episodes=0, mutation=op)
    # jitted: the errors are raised while tell is traced (nothing is compiled)
    population, state = jax.jit(strategy.ask)(jax.random.key(1),
                                              strategy.init(jax.random.key(0), params))
    ev = el.Evaluation(jnp.arange(4.0), jnp.zeros((4, 2)), jnp.ones(4, jnp.int32))
    # the new parents' experiences come from evaluate: without one, tell cannot record them
    with pytest.raises(ValueError, match="evaluate="):
        jax.jit(strategy.tell)(jax.random.key(2), population, ev, state)

    def no_experiences(key, parents, *, episodes=1, experiences=0):
        n = jax.tree.leaves(parents)[0].shape[0]
        return el.Evaluation(jnp.zeros(n), jnp.zeros((n, 2)), jnp.ones(n, jnp.int32))

    with pytest.raises(ValueError, match="experiences"):
        jax.jit(functools.partial(strategy.tell, evaluate=no_experiences))(
            jax.random.key(2), population, ev, state)


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
    # Starts at the guess (no member of the first generation clears the bar: a GA that did not
    # learn would fail), ends well above it.
    assert -0.8 < best[0] < -0.6, best[0]
    assert best[-1] > -0.45, best[-1]
