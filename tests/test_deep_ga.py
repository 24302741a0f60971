"""Deep GA and random search: NumPy goldens of selection and mutation, elite validation,
bit-exact genomes after many generations (MLP and CNN, sharded and bounded-memory runs), bad
input, and CartPole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_golden import leaves_equal, normal_np, round12_np

import evojax_lab as el
from evojax_lab import genome as G

P = 8
SIGMA = 0.1
KEY0, KEY1 = jax.random.PRNGKey(10), jax.random.PRNGKey(11)
TELL_KEY = jax.random.PRNGKey(12)  # tell's own key: the seeds come from the state ask returned
# stable descending order: [1, 3, 7, 5, 0, 6, 2, 4] -> parents (T=3) 1, 3, 7; elite 1
FITNESS0 = np.array([3.0, 7.0, 1.0, 7.0, 0.0, 5.0, 2.0, 6.0], np.float32)


def evaluation(fitness):
    fitness = jnp.asarray(fitness, jnp.float32)
    n = fitness.shape[0]
    return el.Evaluation(fitness, jnp.zeros((n, 0)), jnp.ones(n, jnp.int32))


def row(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def flat(tree):
    return np.asarray(el.tree.ravel(tree)[0])


def genomes_of(state, indices):
    """The genomes of members ``indices`` of the population the state ``ask`` returned."""
    return jax.vmap(lambda i: el.strategies.member_genome(state, i))(indices)


def compiled(strategy):
    return {
        "ask": jax.jit(strategy.ask),
        "tell": jax.jit(strategy.tell),
        "genomes": jax.jit(genomes_of),
    }


def scripted_tell(strategy):
    """``strategy.tell`` with a scripted ``evaluate``, jitted once.

    ``tell(key, population, evaluation, state, scores, steps)`` runs ``strategy.tell`` with an
    ``evaluate`` that returns the predetermined ``scores`` (and ``steps``) and records what it
    was given; it returns ``(state, metrics, calls)``, each call a dict of the ``key`` and
    ``population`` it got and its ``episodes`` and ``experiences``.
    """

    @jax.jit
    def tell(key, population, evaluation_, state, scores, steps):
        calls = []

        def evaluate(k, candidates, *, episodes=1, experiences=0):
            calls.append(dict(key=k, population=candidates, episodes=episodes,
                              experiences=experiences))
            return el.Evaluation(scores, jnp.zeros((scores.shape[0], 0)), steps)

        new_state, metrics = strategy.tell(key, population, evaluation_, state,
                                           evaluate=evaluate)
        return new_state, metrics, calls

    def call(key, population, evaluation_, state, scores, steps=None):
        scores = jnp.asarray(scores, jnp.float32)
        steps = jnp.ones(scores.shape, jnp.int32) if steps is None else steps
        return tell(key, population, evaluation_, state, scores, jnp.asarray(steps, jnp.int32))

    return call


@pytest.fixture(scope="module")
def template():
    policy = el.policies.MLP(2, hidden=(3,))
    return jax.jit(policy.init)(jax.random.key(0), jnp.zeros(4))  # 23 parameters


@pytest.fixture(scope="module")
def golden(template):
    """Generation 0 -> tell(FITNESS0) -> generation 1, T=3, one elite, no validation."""
    strategy = el.strategies.deep_ga(
        P, SIGMA, 3, elites=1, validation_episodes=0, genome_capacity=4
    )
    fn = compiled(strategy)
    pop0, state0 = fn["ask"](KEY0, strategy.init(jax.random.key(1), template))
    genomes0 = fn["genomes"](state0, jnp.arange(P))
    state1, metrics = fn["tell"](TELL_KEY, pop0, evaluation(FITNESS0), state0)
    pop1, asked1 = fn["ask"](KEY1, state1)
    genomes1 = fn["genomes"](asked1, jnp.arange(P))
    return dict(strategy=strategy, fn=fn, state0=state0, pop0=pop0, genomes0=genomes0,
                state1=state1, metrics=metrics, pop1=pop1, asked1=asked1, genomes1=genomes1)


def test_generation_zero_is_random_networks_from_seeds(golden, template):
    g0 = golden["genomes0"]
    np.testing.assert_array_equal(np.asarray(g0.length), 0)
    assert len(set(np.asarray(g0.init_seed).tolist())) == P
    for i in range(P):
        expected = G.reference_init(G.seed_key(g0.init_seed[i]), template)
        leaves_equal(row(golden["pop0"], i), expected)


def test_truncation_selection_and_elite_golden(golden):
    top = np.argsort(-FITNESS0, kind="stable")[:3]
    assert top.tolist() == [1, 3, 7]
    state1, m = golden["state1"], golden["metrics"]
    leaves_equal(state1.parents, jax.tree.map(lambda x: x[top], golden["pop0"]))
    leaves_equal(state1.parent_genomes, jax.tree.map(lambda x: x[top], golden["genomes0"]))
    np.testing.assert_array_equal(np.asarray(state1.parent_fitness), FITNESS0[top])
    leaves_equal(golden["strategy"].solution(state1), row(golden["pop0"], 1))
    leaves_equal(el.strategies.elite_genome(state1), row(golden["genomes0"], 1))
    assert int(m["elite_index"]) == 1 and float(m["elite_fitness"]) == 7.0
    assert float(m["truncation_fitness"]) == 6.0
    assert float(m["best_fitness"]) == 7.0 and float(m["mean_fitness"]) == FITNESS0.mean()
    assert int(state1.generation) == 1


def test_elite_is_copied_unmodified(golden):
    leaves_equal(row(golden["pop1"], 0), row(golden["pop0"], 1))
    leaves_equal(row(golden["genomes1"], 0), row(golden["genomes0"], 1))


def test_offspring_are_parent_plus_sigma_noise_golden(golden, template):
    """Offspring i = parents[j] + round12(sigma) * round12(normal(seed_i)), in NumPy float32,
    with parent j identified by the genome prefix and drawn among the top T."""
    g0, g1 = golden["genomes0"], golden["genomes1"]
    top_seeds = np.asarray(g0.init_seed)[[1, 3, 7]]
    sigma_q = round12_np(SIGMA)
    for i in range(1, P):
        assert int(g1.length[i]) == 1
        j = int(np.flatnonzero(top_seeds == int(g1.init_seed[i]))[0])
        parent = flat(row(golden["pop0"], [1, 3, 7][j]))
        eps = round12_np(normal_np(int(g1.seeds[i, 0]), parent.size))
        expected = parent + (sigma_q * eps).astype(np.float32)
        np.testing.assert_array_equal(flat(row(golden["pop1"], i)), expected)
        assert float(g1.sigmas[i, 0]) == sigma_q
    # and every member decodes to exactly what was asked
    leaves_equal(G.decode(g1, template), golden["pop1"])


def test_member_alone_equals_ask(golden):
    member = jax.jit(golden["strategy"].member)
    for i in (0, 3, P - 1):
        leaves_equal(member(golden["asked1"], i), row(golden["pop1"], i))


def test_parents_are_drawn_uniformly_among_the_top_t(golden):
    g = golden["fn"]["genomes"](golden["asked1"], jnp.arange(1, 601))
    top_seeds = np.asarray(golden["genomes0"].init_seed)[[1, 3, 7]]
    counts = [(np.asarray(g.init_seed) == s).sum() for s in top_seeds]
    assert sum(counts) == 600 and min(counts) > 150, counts  # ~200 each


def test_nan_fitness_ranks_last(golden):
    fitness = FITNESS0.copy()
    fitness[1] = np.nan
    state, m = golden["fn"]["tell"](TELL_KEY, golden["pop0"], evaluation(fitness),
                                    golden["state0"])
    assert int(m["num_nan"]) == 1 and int(m["elite_index"]) == 3
    leaves_equal(state.parents, jax.tree.map(lambda x: x[np.array([3, 7, 5])], golden["pop0"]))


# -- elite validation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validated(template):
    strategy = el.strategies.deep_ga(
        P, SIGMA, 2, elites=1, validation_episodes=2, validation_candidates=3, genome_capacity=4
    )
    fn = compiled(strategy)
    fn["tell"] = scripted_tell(strategy)
    pop0, asked0 = fn["ask"](KEY0, strategy.init(jax.random.key(1), template))
    # validation prefers candidate 2 (member 7) over the training-best member 1; the scripted
    # evaluate reports 1 + 2 + 3 = 6 validation steps
    state1, m, calls = fn["tell"](TELL_KEY, pop0, evaluation(FITNESS0), asked0,
                                  [4.0, 5.0, 6.0], steps=[1, 2, 3])
    # generation 0: no elite yet; the candidates are the top 3 by fitness: 1, 3, 7
    (call,) = calls
    leaves_equal(call["population"], jax.tree.map(lambda x: x[np.array([1, 3, 7])], pop0))
    assert int(call["episodes"]) == 2 and int(call["experiences"]) == 0
    # the validation episodes' key is tell's own (fold_in(tell_key, 1)), not ask's
    np.testing.assert_array_equal(call["key"], jax.random.fold_in(TELL_KEY, 1))
    assert int(m["elite_index"]) == 7 and float(m["elite_fitness"]) == 6.0
    assert float(m["validation_steps"]) == 6.0 and float(m["extra_steps"]) == 6.0
    leaves_equal(strategy.solution(state1), row(pop0, 7))
    leaves_equal(state1.parents, jax.tree.map(lambda x: x[np.array([1, 3])], pop0))
    return dict(strategy=strategy, fn=fn, state1=state1, pop0=pop0, asked0=asked0)


def test_validation_candidates_include_the_previous_elite(validated):
    strategy, fn, state1 = validated["strategy"], validated["fn"], validated["state1"]
    pop1, asked1 = fn["ask"](KEY1, state1)
    leaves_equal(row(pop1, 0), row(validated["pop0"], 7))
    # the elite (member 0) has the worst training fitness but is still a candidate, first
    fitness = np.array([0.0, 9.0, 8.0, 7.0, 1.0, 2.0, 3.0, 4.0], np.float32)
    expected = jax.tree.map(lambda x: x[np.array([0, 1, 2])], pop1)
    _, m, calls = fn["tell"](TELL_KEY, pop1, evaluation(fitness), asked1, [5.0, 4.0, 6.0])
    (call,) = calls
    leaves_equal(call["population"], expected)
    assert int(call["episodes"]) == 2
    assert int(m["elite_index"]) == 2 and float(m["elite_fitness"]) == 6.0
    # a tie keeps the previous elite
    state2, m, calls = fn["tell"](TELL_KEY, pop1, evaluation(fitness), asked1, [5.0, 5.0, 4.0])
    leaves_equal(calls[0]["population"], expected)
    assert int(m["elite_index"]) == 0
    leaves_equal(strategy.solution(state2), row(pop1, 0))
    # bounded memory: without the population the candidates are rebuilt identically, the
    # parents are still the top T by training fitness: the same state
    again, _, calls = fn["tell"](TELL_KEY, None, evaluation(fitness), asked1, [5.0, 5.0, 4.0])
    (call,) = calls
    leaves_equal(call["population"], expected)
    assert int(call["episodes"]) == 2
    leaves_equal(again, state2)


def test_tell_needs_the_evaluate_its_validation_runs(validated):
    with pytest.raises(ValueError, match="evaluate="):
        validated["strategy"].tell(TELL_KEY, validated["pop0"], evaluation(FITNESS0),
                                   validated["asked0"])


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pop_size=8, sigma=0.1, truncation=9), "truncation"),
        (dict(pop_size=8, sigma=0.1, truncation=-1), "truncation"),
        (dict(pop_size=8, sigma=0.1, truncation=2, elites=8), "elites"),
        (dict(pop_size=8, sigma=0.1, truncation=2, elites=-1), "elites"),
        (dict(pop_size=8, sigma=0.0, truncation=2), "sigma"),
        (dict(pop_size=8, sigma=-0.1, truncation=2), "sigma"),
        (dict(pop_size=1, sigma=0.1, truncation=1), "pop_size"),
        (dict(pop_size=8, sigma=0.1, truncation=2, elites=3, validation_candidates=2),
         "validation_candidates"),
        (dict(pop_size=8, sigma=0.1, truncation=2, validation_episodes=-1),
         "validation_episodes"),
        (dict(pop_size=8, sigma=0.1, truncation=2, genome_capacity=-1), "genome_capacity"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        el.strategies.deep_ga(**kwargs)


def test_sigma_override_is_checked(template):
    strategy = el.strategies.deep_ga(8, 0.1, 2)
    with pytest.raises(ValueError, match="sigma"):
        strategy.init(KEY0, template, sigma=0.0)


# -- whole runs: bit-exact genomes, validated elites, frames --------------------------------------

GENS = 30


def target_sum(key, params):
    """Deterministic fitness: -(sum of the parameters - 5)^2."""
    del key
    total = sum(jnp.sum(x) for x in jax.tree.leaves(params))
    return -((total - 5.0) ** 2)


def run(template, strategy, **kwargs):
    task = el.tasks.function(target_sum)
    trainer = el.make_train(task, None, strategy, generations=GENS, params=template,
                            eval_episodes=0, **kwargs)
    return jax.block_until_ready(trainer(jax.random.PRNGKey(3)))


def check_bit_exact(strategy, state, template, min_length):
    """Cached parents and elites and a fresh population all decode bit for bit (one batched
    decode), and so does the solution from its serialized genome."""
    assert int(np.max(np.asarray(state.parent_genomes.length))) >= min_length
    population, asked = jax.jit(strategy.ask)(jax.random.PRNGKey(99), state)
    genomes = jax.jit(genomes_of)(asked, jnp.arange(strategy.pop_size))
    # the solution's genome also goes through bytes (same capacity: one batched decode)
    data = G.to_bytes(el.strategies.elite_genome(state))
    read = jax.tree.map(lambda x: x[None], G.from_bytes(data, capacity=GENS))
    cat = lambda *trees: jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)  # noqa: E731
    leaves_equal(
        G.decode(cat(state.parent_genomes, state.elite_genomes, genomes, read), template),
        cat(state.parents, state.elites, population,
            jax.tree.map(lambda x: x[None], strategy.solution(state))),
    )


@pytest.fixture(scope="module")
def cnn_run():
    policy = el.policies.MinAtarCNN(3, features=4, hidden=8)
    template = jax.jit(policy.init)(jax.random.key(0), jnp.zeros((6, 6, 2)))
    strategy = el.strategies.deep_ga(16, 0.05, 4, validation_episodes=0, genome_capacity=GENS)
    return template, strategy, run(template, strategy)  # default mesh: 2 devices, sharded


def test_cnn_genomes_decode_bit_exactly_after_30_generations(cnn_run):
    template, strategy, result = cnn_run
    check_bit_exact(strategy, result.state, template, min_length=5)
    assert int(np.asarray(result.metrics["genome_overflow"]).sum()) == 0


def test_elite_fitness_never_decreases_without_validation(cnn_run):
    elite = np.asarray(cnn_run[2].metrics["elite_fitness"])
    assert np.all(np.diff(elite) >= 0), elite
    assert elite[-1] > elite[0]


@pytest.fixture(scope="module")
def mlp_run(template):
    # Bounded memory (members rebuilt chunk by chunk, population=None in tell), two elites,
    # 3 candidates (padded to 4 over the 2 devices) re-evaluated on 2 episodes.
    strategy = el.strategies.deep_ga(16, 0.05, 4, elites=2, validation_episodes=2,
                                     validation_candidates=3, genome_capacity=GENS)
    return strategy, run(template, strategy, chunk_size=4)


def test_mlp_genomes_decode_bit_exactly_bounded_memory(mlp_run, template):
    strategy, result = mlp_run
    check_bit_exact(strategy, result.state, template, min_length=5)


def test_validated_elite_never_decreases_on_a_deterministic_task(mlp_run):
    m = {k: np.asarray(v) for k, v in mlp_run[1].metrics.items()}
    elite = m["elite_fitness"]
    assert np.all(np.diff(elite) >= 0), elite
    assert elite[-1] > elite[0]
    # where the elite did not improve, the previous elite (member 0) kept its place
    same = np.flatnonzero(np.diff(elite) == 0) + 1
    assert same.size and np.all(m["elite_index"][same] == 0)
    # frames: 16 members x 1 evaluation + 3 candidates x 2 validation episodes per generation;
    # the validation episodes are the only extra evaluations, and they count in the steps
    np.testing.assert_array_equal(m["validation_steps"], 6)
    np.testing.assert_array_equal(m["extra_steps"], 6)
    per_generation = np.diff(np.concatenate([[0], m["steps"]]))
    np.testing.assert_array_equal(per_generation, 16 + m["extra_steps"])
    np.testing.assert_array_equal(per_generation, 16 + 6)


def test_random_search_runs(template):
    strategy = el.strategies.random_search(8, validation_episodes=0)
    task = el.tasks.function(target_sum)
    trainer = el.make_train(task, None, strategy, generations=6, params=template,
                            eval_episodes=0)
    result = trainer(jax.random.PRNGKey(4))
    elite = np.asarray(result.metrics["elite_fitness"])
    assert np.all(np.diff(elite) >= 0), elite
    population, asked = jax.jit(strategy.ask)(jax.random.PRNGKey(5), result.state)
    genomes = genomes_of(asked, jnp.arange(8))
    np.testing.assert_array_equal(np.asarray(genomes.length), 0)  # fresh networks, no chain
    leaves_equal(row(population, 0), strategy.solution(result.state))  # the best so far
    leaves_equal(G.decode(genomes, template), population)
    assert "truncation_fitness" not in result.metrics


@pytest.mark.slow
def test_deep_ga_solves_cartpole():
    task = el.tasks.make("CartPole-v1")
    policy = el.policies.for_task(task, hidden=(16,))
    strategy = el.strategies.deep_ga(32, 0.05, 8, validation_episodes=5,
                                     validation_candidates=4)
    train = el.make_train(task, policy, strategy, generations=8, eval_episodes=0)
    result = train(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(123), 20)
    returns = jax.jit(jax.vmap(lambda k: el.rollout(k, task, policy, result.solution)[0]))(keys)
    assert float(returns.mean()) >= 475, returns
    assert float(result.metrics["mean_fitness"][0]) < 150  # generation 0 was far from solved
    params = train.initial_params(jax.random.split(jax.random.PRNGKey(0), 3)[0])
    leaves_equal(G.decode(el.strategies.elite_genome(result.state), params), result.solution)
