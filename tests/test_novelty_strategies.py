"""NS-ES / NSR-ES / NSRA-ES and GA-NS: NumPy goldens of one generation (novelty, centered
ranks, utilities, the ES step, the archive), novelty-proportional agent selection, NSRA's
weight schedule, a deceptive task ES cannot solve, GA-NS selection by novelty, bad input and
determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy_golden import leaves_equal

import evojax_lab as el

P, SIGMA, M, B, K, CAP = 8, 0.1, 3, 2, 2, 16
FACTORIES = {"ns": el.strategies.ns_es, "nsr": el.strategies.nsr_es,
             "nsra": el.strategies.nsra_es}
NSRA_W = 0.3  # the golden NSRA weight: both ranks matter
KEY = jax.random.key(5)


# ------------------------------------------------------------------------ NumPy references
def np_knn(queries, references, k, exclude=None):
    """Brute force: mean of the min(k, n) smallest Euclidean distances (0 with no reference);
    query ``i`` leaves out reference row ``exclude[i]``."""
    queries = np.asarray(queries, np.float64)
    references = np.asarray(references, np.float64).reshape(-1, queries.shape[1])
    out = np.zeros(len(queries))
    for i, q in enumerate(queries):
        keep = np.ones(len(references), bool)
        if exclude is not None:
            keep[exclude[i]] = False
        if keep.any():
            out[i] = np.sort(np.linalg.norm(references[keep] - q, axis=1))[:k].mean()
    return out


def np_centered_rank(x):
    """REFERENCE: rank r in 0..P-1 (ascending, ties by order) -> r / (P - 1) - 0.5."""
    x = np.asarray(x, np.float64)
    ranks = np.empty(len(x))
    for r, i in enumerate(sorted(range(len(x)), key=lambda i: (x[i], i))):
        ranks[i] = r
    return ranks / (len(x) - 1) - 0.5


def np_utilities(variant, fitness, novelty, weight):
    rank_n = np_centered_rank(novelty)
    if variant == "ns":
        return rank_n
    rank_f = np_centered_rank(fitness)
    if variant == "nsr":
        return (rank_f + rank_n) / 2
    w = np.float64(np.float32(weight))
    return w * rank_f + (1 - w) * rank_n


def np_es_step(theta, population, u):
    """SGD(1), no weight decay: theta + (1/P) sum_i u_i eps_i with eps_i = (pop_i - theta)/sigma
    recovered from the float32 population (exact in float64)."""
    sigma = np.float64(np.float32(SIGMA))
    out, grads = {}, {}
    for name, t in theta.items():
        t = np.asarray(t, np.float64)
        eps = (np.asarray(population[name], np.float64) - t[None]) / sigma
        grads[name] = np.tensordot(u, eps, axes=1) / len(u)
        out[name] = t + grads[name]
    return out, grads


def row(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def as_np(tree):
    return jax.tree.map(np.asarray, tree)


def evaluation(fitness, behavior):
    fitness = jnp.asarray(fitness, jnp.float32)
    return el.Evaluation(fitness, jnp.asarray(behavior, jnp.float32),
                         jnp.ones(fitness.shape[0], jnp.int32))


def random_evaluation(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    fitness = rng.integers(0, 3, n).astype(np.float32) if ties else rng.normal(size=n)
    return evaluation(fitness, rng.normal(size=(n, B)) * 2.0)


# ------------------------------------------------------------------------ shared strategies
TEMPLATE = {"w": jnp.asarray([0.5, -1.0, 0.25], jnp.float32),
            "b": jnp.asarray([1.5, -0.75], jnp.float32)}


def same_init(key, params):
    return params


def differ_init(key, params):
    flat, unravel = el.tree.ravel(params)
    return unravel(flat + jax.random.normal(key, flat.shape))


class Compiled:
    """One variant's ask/candidates/tell jitted once (compile time dominates on CPU).

    ``agent_init`` only acts in ``init`` (eager, not jitted); the state of the strategy built
    with ``differ_init`` has the same structure, so the same compiled functions serve both.
    """

    def __init__(self, variant):
        def build(agent_init):
            return FACTORIES[variant](
                P, SIGMA, optax.sgd(1.0), behavior_size=B, num_agents=M, k=K,
                archive_capacity=CAP, weight_decay=0.0, agent_init=agent_init,
            )

        self.variant = variant
        self.strategy = build(same_init)
        self.differ = build(differ_init)
        self.ask = jax.jit(self.strategy.ask)
        self.candidates = jax.jit(self.strategy.validation.candidates)
        self.tell = jax.jit(self.strategy.tell)

    def init(self, key, agents="same", **hparams):
        strategy = self.strategy if agents == "same" else self.differ
        if self.variant == "nsra":
            hparams.setdefault("weight", NSRA_W)
        return strategy.init(key, TEMPLATE, **hparams)


_CACHE = {}


def compiled(variant):
    if variant not in _CACHE:
        _CACHE[variant] = Compiled(variant)
    return _CACHE[variant]


# ------------------------------------------------------------------------ 1. goldens
@pytest.mark.parametrize("agents", ["same", "differ"])
@pytest.mark.parametrize("variant", ["ns", "nsr", "nsra"])
def test_one_generation_matches_numpy(variant, agents):
    c = compiled(variant)
    state0 = c.init(KEY, agents)
    means0 = as_np(state0.means)
    for name, x in TEMPLATE.items():
        assert means0[name].shape == (M, *x.shape)
    if agents == "same":
        for j in range(M):
            leaves_equal(row(means0, j), TEMPLATE)
    else:
        flat = np.stack([el.tree.ravel(row(means0, j))[0] for j in range(M)])
        assert np.all(np.abs(flat[0] - flat[1:]) > 1e-4)
    assert int(state0.generation) == 0 and int(state0.archive.size) == 0
    assert 0 <= int(state0.agent) < M

    # ---- generation 0: the validation holds the initial agents; they seed the archive.
    k0, k1 = jax.random.fold_in(KEY, 10), jax.random.fold_in(KEY, 11)
    m0 = int(state0.agent)
    pop0 = c.ask(k0, state0)
    ev0 = random_evaluation(P, 1, ties=True)
    leaves_equal(c.candidates(k0, pop0, ev0, state0), state0.means)
    # The initial agents' behaviors: all but agent `target` share one point, so (k = 2 with
    # the archive holding both copies) only `target` has a novelty > 0 and must be drawn next.
    target = 2 if agents == "same" else 1
    b = np.random.default_rng(2).normal(size=(M, B)) * 2.0
    b[np.arange(M) != target] = b[(target + 1) % M]
    val0 = evaluation(np.random.default_rng(2).normal(size=M), b)
    state1, metrics0 = c.tell(k0, pop0, ev0, state0, validation=val0)

    b_val0 = np.asarray(val0.behavior)
    nov0 = np_knn(ev0.behavior, b_val0, K)  # against the seeded archive
    u0 = np_utilities(variant, ev0.fitness, nov0, NSRA_W)
    expected0, _ = np_es_step(row(means0, m0), pop0, u0)
    for j in range(M):
        if j == m0:
            for name in TEMPLATE:
                np.testing.assert_allclose(
                    np.asarray(state1.means[name][j], np.float64), expected0[name],
                    rtol=0, atol=1e-5, err_msg=name,
                )
        else:
            leaves_equal(row(state1.means, j), row(means0, j))
    np.testing.assert_array_equal(np.asarray(state1.archive.behaviors)[:M], b_val0)
    assert int(state1.archive.size) == M and int(state1.generation) == 1
    np.testing.assert_array_equal(np.asarray(state1.behaviors), b_val0)
    np.testing.assert_array_equal(np.asarray(state1.fitness), np.asarray(val0.fitness))
    np.testing.assert_allclose(float(metrics0["mean_novelty"]), nov0.mean(), atol=1e-5)

    # ---- generation 1: perturb agent m1; the validation holds the updated agents.
    m1 = int(state1.agent)
    assert m1 == target
    means1 = as_np(state1.means)
    pop1 = c.ask(k1, state1)
    d = {n: np.asarray(pop1[n], np.float64) - means1[n][m1][None] for n in TEMPLATE}
    for n in TEMPLATE:  # mirrored perturbations of agent m1
        np.testing.assert_allclose(d[n][: P // 2], -d[n][P // 2:], rtol=0, atol=1e-6)
        assert np.abs(d[n]).max() > 1e-3
    ev1 = random_evaluation(P, 3, ties=True)
    nov1 = np_knn(ev1.behavior, b_val0, K)
    u1 = np_utilities(variant, ev1.fitness, nov1, NSRA_W)
    expected1, grads1 = np_es_step(row(means1, m1), pop1, u1)
    assert max(np.abs(expected1[n] - means1[n][m1]).max() for n in TEMPLATE) > 1e-3

    candidates = c.candidates(k1, pop1, ev1, state1)
    val1 = random_evaluation(M, 4)
    state2, metrics = c.tell(k1, pop1, ev1, state1, validation=val1)
    for after in (candidates, state2.means):
        for j in range(M):
            if j == m1:
                for name in TEMPLATE:
                    np.testing.assert_allclose(
                        np.asarray(after[name][j], np.float64), expected1[name],
                        rtol=0, atol=1e-5, err_msg=name,
                    )
            else:
                leaves_equal(row(after, j), row(means1, j))

    b_val1 = np.asarray(val1.behavior)
    archive = np.concatenate([b_val0, b_val1[m1:m1 + 1]])
    assert int(state2.archive.size) == M + 1 and int(state2.archive.num_added) == M + 1
    np.testing.assert_array_equal(np.asarray(state2.archive.behaviors)[: M + 1], archive)
    np.testing.assert_array_equal(np.asarray(state2.archive.behaviors)[M + 1:], 0.0)
    np.testing.assert_array_equal(np.asarray(state2.behaviors), b_val1)
    np.testing.assert_array_equal(np.asarray(state2.fitness), np.asarray(val1.fitness))
    assert int(state2.generation) == 2

    f_val1 = np.asarray(val1.fitness)
    g = np.concatenate([grads1[n].ravel() for n in sorted(grads1)])
    np.testing.assert_allclose(float(metrics["grad_norm"]), np.linalg.norm(g), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["mean_novelty"]), nov1.mean(), atol=1e-5)
    np.testing.assert_allclose(float(metrics["max_novelty"]), nov1.max(), atol=1e-5)
    assert float(metrics["best_fitness"]) == np.asarray(ev1.fitness).max()
    assert int(metrics["agent"]) == m1
    assert float(metrics["agent_fitness"]) == f_val1[m1]
    np.testing.assert_array_equal(np.asarray(metrics["agent_behavior"]), b_val1[m1])
    assert float(metrics["best_agent_fitness"]) == f_val1.max()
    assert int(metrics["archive_size"]) == M + 1
    leaves_equal(c.strategy.solution(state2), row(state2.means, int(np.argmax(f_val1))))
    if variant == "nsra":
        improved = f_val1[m1] > np.asarray(val0.fitness).max()
        w = np.float32(NSRA_W) + (np.float32(0.05) if improved else 0)
        np.testing.assert_allclose(float(metrics["weight"]), w, atol=1e-6)
        np.testing.assert_allclose(float(state2.weight), w, atol=1e-6)
    else:
        assert "weight" not in metrics


def test_golden_utilities_differ_between_variants():
    """The three utilities give three different steps on the same data (so each golden above
    pins its own variant)."""
    ev = random_evaluation(P, 3, ties=True)
    nov = np_knn(ev.behavior, np.asarray(random_evaluation(M, 2).behavior), K)
    us = [np_utilities(v, ev.fitness, nov, NSRA_W) for v in FACTORIES]
    assert not np.allclose(us[0], us[1]) and not np.allclose(us[1], us[2])
    assert not np.allclose(us[0], us[2])


# ------------------------------------------------------------------------ 2. agent selection
@pytest.fixture(scope="module")
def choose():
    """``choose(state, population, evaluation, validation, keys) -> next agents`` vmapped."""
    c = compiled("ns")

    def next_agent(key, population, evaluation, state, validation):
        return c.strategy.tell(key, population, evaluation, state, validation=validation)[0].agent

    return jax.jit(jax.vmap(next_agent, in_axes=(0, None, None, None, None)))


def selection_state(archive_rows):
    c = compiled("ns")
    state = c.init(KEY)
    archive = el.novelty.add(state.archive, jnp.asarray(archive_rows, jnp.float32))
    return state._replace(archive=archive, generation=jnp.int32(1), agent=jnp.int32(0),
                          best_fitness=jnp.float32(0.0))


def draw_agents(choose, archive_rows, agent_behaviors, n=2000):
    c = compiled("ns")
    state = selection_state(archive_rows)
    pop = c.ask(KEY, state)
    ev = random_evaluation(P, 6)
    val = evaluation(np.zeros(M), agent_behaviors)
    keys = jax.random.split(jax.random.key(77), n)
    agents = np.asarray(choose(keys, pop, ev, state, val))
    # NumPy: novelty of each agent against the archive after tell (agent 0's behavior added).
    after = np.concatenate([np.asarray(archive_rows, np.float64), agent_behaviors[:1]])
    return agents, np_knn(agent_behaviors, after, K)


def test_next_agent_is_drawn_proportionally_to_novelty(choose):
    archive_rows = np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 0.0]])
    behaviors = np.array([[1.0, 0.0], [0.0, 3.0], [5.0, 0.0]])  # agent 2 sits on 2 copies
    agents, nov = draw_agents(choose, archive_rows, behaviors)
    np.testing.assert_allclose(nov, [0.5, (3.0 + np.sqrt(10.0)) / 2, 0.0])
    p = nov / nov.sum()
    n = len(agents)
    counts = np.bincount(agents, minlength=M)
    assert counts[2] == 0  # novelty 0: never chosen
    for j in range(2):
        assert abs(counts[j] - n * p[j]) < 5 * np.sqrt(n * p[j] * (1 - p[j])), (counts, p)


def test_all_zero_novelty_draws_uniformly(choose):
    same = np.ones((M, B))
    agents, nov = draw_agents(choose, np.ones((2, B)), same)
    np.testing.assert_array_equal(nov, 0.0)
    n = len(agents)
    counts = np.bincount(agents, minlength=M)
    bound = 5 * np.sqrt(n * (1 / M) * (1 - 1 / M))
    assert np.all(np.abs(counts - n / M) < bound), counts


# ------------------------------------------------------------------------ 3. NSRA weight
def run_weight_schedule(updated_fitness, **hparams):
    """Gen 0 (all agents fitness 1), then one tell per entry of ``updated_fitness`` (the
    updated agent's validated fitness; the other agents get 100, which must not count)."""
    c = compiled("nsra")
    state = c.init(KEY, **hparams)
    pop0 = c.ask(KEY, state)
    ev = random_evaluation(P, 8)
    state, _ = c.tell(KEY, pop0, ev, state, validation=evaluation(np.ones(M), np.zeros((M, B))))
    weights = [float(state.weight)]
    for t, f in enumerate(updated_fitness):
        key = jax.random.fold_in(KEY, t)
        m = int(state.agent)
        pop = c.ask(key, state)
        fitness = np.full(M, 100.0)
        fitness[m] = f
        behaviors = np.random.default_rng(t).normal(size=(M, B))
        state, metrics = c.tell(key, pop, ev, state, validation=evaluation(fitness, behaviors))
        assert float(metrics["weight"]) == float(state.weight)
        weights.append(float(state.weight))
    return np.array(weights)


def test_nsra_weight_falls_after_stagnation_and_rises_after_improvement():
    # patience 3, delta 0.05, w0 = 1: stagnant gens 1-6 (fitness 1 = best, not above it),
    # improvements at 7, 8, 9 (clipped at 1), stagnant again 10-12.
    fitness = [1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0]
    w = run_weight_schedule(fitness, weight=1.0, delta=0.05, patience=3)
    expected = [1.0, 1.0, 1.0, 0.95, 0.95, 0.95, 0.90, 0.95, 1.0, 1.0, 1.0, 1.0, 0.95]
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)


def test_nsra_weight_is_clipped_at_zero():
    # patience 1: every stagnant generation steps down; 0.07 -> 0.02 -> 0 (clipped) -> 0,
    # then an improvement -> 0.05.
    w = run_weight_schedule([1.0, 1.0, 1.0, 2.0], weight=0.07, delta=0.05, patience=1)
    np.testing.assert_allclose(w, [0.07, 0.02, 0.0, 0.0, 0.05], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------ 4. deceptive task
TRAP = np.array([1.0, 0.0], np.float32)
RADIUS = 3.0


def deceptive(key, params):
    """Inside the disk of radius 3 the fitness is -||x - trap|| (a local optimum of 0 at
    (1, 0), whose gradient everything near the origin follows); outside it is 5 + ||x||, above
    anything inside. Behavior: x itself."""
    del key
    x = params["x"]
    r = jnp.linalg.norm(x)
    return jnp.where(r < RADIUS, -jnp.linalg.norm(x - TRAP), 5.0 + r), x


DECEPTIVE = el.tasks.function(deceptive, behavior_size=2)
X0 = {"x": jnp.zeros(2, jnp.float32)}


@pytest.mark.slow
def test_ns_es_escapes_a_deceptive_trap_that_openai_es_falls_into():
    generations, seeds = 80, range(3)
    es = el.strategies.openai_es(16, 0.1, optax.adam(0.1), weight_decay=0.0)
    es_train = el.make_train(DECEPTIVE, None, es, generations=generations, params=X0,
                             eval_episodes=0)
    ns = el.strategies.ns_es(16, 0.1, optax.adam(0.1), behavior_size=2, num_agents=2, k=5,
                             archive_capacity=128, weight_decay=0.0, agent_init=same_init)
    ns_train = el.make_train(DECEPTIVE, None, ns, generations=generations, params=X0,
                             eval_episodes=0)
    for seed in seeds:
        x = np.asarray(es_train(jax.random.key(seed)).solution["x"], np.float64)
        assert np.linalg.norm(x - TRAP) < 0.3, (seed, x)  # stuck in the trap

        result = ns_train(jax.random.key(seed))
        fitness = np.asarray(result.state.fitness)
        assert fitness.max() > 5.0, (seed, fitness)  # an agent lives in the far region
        x = np.asarray(result.solution["x"], np.float64)
        assert np.linalg.norm(x) >= RADIUS, (seed, x)
        # The archive's spread grew well past the trap's neighbourhood.
        rows = np.asarray(result.state.archive.behaviors)[: int(result.state.archive.size)]
        assert int(result.state.archive.size) == 2 + generations - 1
        spread = np.max(np.linalg.norm(rows[:, None] - rows[None], axis=-1))
        assert spread > 2 * RADIUS, (seed, spread)


# ------------------------------------------------------------------------ 5. GA-NS
GA_TEMPLATE = {"Dense_0": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}
GA_P, GA_T = 8, 3


@pytest.fixture(scope="module")
def ga():
    strategy = el.strategies.ga_ns(
        GA_P, 0.1, GA_T, behavior_size=B, elites=1, k=3, archive_probability=1.0,
        archive_capacity=128, genome_capacity=4,
    )
    return dict(
        strategy=strategy,
        ask=jax.jit(strategy.ask),
        tell=jax.jit(strategy.tell),
        genomes=jax.jit(
            lambda k, s: jax.vmap(lambda i: strategy.member_genome(k, s, i))(jnp.arange(GA_P))
        ),
    )


def ga_generation(ga, key, state, behaviors, fitness_of_novelty):
    """One GA-NS generation; fitness is a function of the NumPy novelty (self-excluded)."""
    pop = ga["ask"](key, state)
    genomes = ga["genomes"](key, state)
    archive = np.asarray(state.archive.behaviors)[: int(state.archive.size)]
    nov = np_knn(behaviors, np.concatenate([archive, behaviors]), 3,
                 exclude=len(archive) + np.arange(GA_P))
    fitness = fitness_of_novelty(nov)
    new_state, metrics = ga["tell"](key, pop, evaluation(fitness, behaviors), state)
    return pop, genomes, nov, fitness, new_state, metrics


def test_ga_ns_selects_by_novelty_and_keeps_the_fittest(ga):
    strategy = ga["strategy"]
    state0 = strategy.init(jax.random.key(1), GA_TEMPLATE)
    rng = np.random.default_rng(12)
    best_fitness = -np.inf
    state = state0
    for gen in range(2):
        key = jax.random.fold_in(KEY, 100 + gen)
        behaviors = rng.normal(size=(GA_P, B))
        # The fittest member is the least novel one; the most novel are the least fit.
        offset = 10.0 * gen
        pop, genomes, nov, fitness, state, metrics = ga_generation(
            ga, key, state, behaviors, lambda nov, o=offset: (o - nov).astype(np.float32)
        )
        top = np.argsort(-nov, kind="stable")[:GA_T]
        fittest = int(np.argmax(fitness))
        assert fittest == int(np.argmin(nov)) and fittest not in top
        if gen == 1:
            assert fittest != 0  # an offspring (member 0 is the elite copy): a real mutation

        np.testing.assert_allclose(np.asarray(state.ga.parent_fitness), nov[top], atol=1e-5)
        leaves_equal(state.ga.parents, jax.tree.map(lambda x, t=top: np.asarray(x)[t], pop))
        leaves_equal(state.ga.parent_genomes,
                     jax.tree.map(lambda x, t=top: np.asarray(x)[t], genomes))
        leaves_equal(strategy.solution(state), row(pop, fittest))
        np.testing.assert_allclose(float(state.ga.elite_fitness[0]), nov.max(), atol=1e-5)
        leaves_equal(row(state.ga.elites, 0), row(pop, top[0]))

        best_fitness = max(best_fitness, fitness.max())
        assert float(state.best_fitness) == best_fitness
        assert float(metrics["best_ever_fitness"]) == best_fitness
        np.testing.assert_allclose(float(metrics["mean_novelty"]), nov.mean(), atol=1e-5)
        np.testing.assert_allclose(float(metrics["max_novelty"]), nov.max(), atol=1e-5)
        # Every evaluated behavior entered the archive (probability 1).
        assert int(metrics["archive_size"]) == GA_P * (gen + 1)
        np.testing.assert_array_equal(
            np.asarray(state.archive.behaviors)[GA_P * gen: GA_P * (gen + 1)],
            behaviors.astype(np.float32),
        )
        genome = el.strategies.elite_genome(state)
        leaves_equal(genome, row(genomes, fittest))
        assert int(genome.length) == gen
        leaves_equal(el.genome.decode(genome, GA_TEMPLATE), strategy.solution(state))


def test_ga_ns_keeps_the_best_ever_when_a_generation_is_worse(ga):
    strategy = ga["strategy"]
    state = strategy.init(jax.random.key(2), GA_TEMPLATE)
    rng = np.random.default_rng(13)
    pop0, _, _, f0, state, _ = ga_generation(
        ga, KEY, state, rng.normal(size=(GA_P, B)), lambda nov: (5.0 - nov).astype(np.float32)
    )
    first = as_np(strategy.solution(state))
    leaves_equal(first, row(pop0, int(np.argmax(f0))))
    _, _, _, _, state, metrics = ga_generation(
        ga, jax.random.fold_in(KEY, 1), state, rng.normal(size=(GA_P, B)),
        lambda nov: (-5.0 - nov).astype(np.float32),
    )
    leaves_equal(strategy.solution(state), first)
    assert float(metrics["best_ever_fitness"]) == f0.max()
    assert float(metrics["best_fitness"]) < f0.max()
    leaves_equal(el.genome.decode(el.strategies.elite_genome(state), GA_TEMPLATE), first)


@pytest.mark.parametrize("probability", [0.0, 0.25])
def test_ga_ns_archive_grows_by_about_p_times_pop(ga, probability):
    strategy = ga["strategy"]
    state = strategy.init(jax.random.key(3), GA_TEMPLATE, archive_probability=probability)
    pop = ga["ask"](KEY, state)
    rng = np.random.default_rng(14)
    offered = []
    generations = 12
    for gen in range(generations):
        behaviors = rng.normal(size=(GA_P, B)).astype(np.float32)
        offered.append(behaviors)
        state, metrics = ga["tell"](jax.random.fold_in(KEY, gen), pop,
                                    evaluation(rng.normal(size=GA_P), behaviors), state)
    n = GA_P * generations
    size = int(state.archive.size)
    assert int(metrics["archive_size"]) == size
    if probability == 0.0:
        assert size == 0
        return
    assert abs(size - probability * n) < 5 * np.sqrt(n * probability * (1 - probability))
    assert 0 < size < n
    # What entered is a subsequence of what was offered, in order.
    offered = np.concatenate(offered)
    stored = np.asarray(state.archive.behaviors)[:size]
    where = [int(np.flatnonzero(np.all(offered == r, axis=1))[0]) for r in stored]
    assert np.all(np.diff(where) > 0)


# ------------------------------------------------------------------------ 6. bad input
def test_bad_input():
    c = compiled("ns")
    s = c.strategy
    state = c.init(KEY)
    pop = c.ask(KEY, state)
    good_val = random_evaluation(M, 2)
    wrong = evaluation(np.zeros(P), np.zeros((P, B + 1)))
    with pytest.raises(ValueError, match=r"\[P, 2\]"):
        s.tell(KEY, pop, wrong, state, validation=good_val)
    with pytest.raises(ValueError, match=r"\[P, 2\]"):
        s.tell(KEY, pop, random_evaluation(P, 1), state,
               validation=evaluation(np.zeros(M), np.zeros((M, 1))))
    with pytest.raises(ValueError, match="validation="):
        s.tell(KEY, pop, random_evaluation(P, 1), state)
    with pytest.raises(ValueError, match=r"fitness must have shape \(8,\)"):
        s.tell(KEY, pop, evaluation(np.zeros(P + 1), np.zeros((P + 1, B))), state,
               validation=good_val)

    for factory in FACTORIES.values():
        with pytest.raises(ValueError, match="even"):
            factory(7, behavior_size=B)
        factory(7, behavior_size=B, mirrored=False)
        with pytest.raises(ValueError, match="behavior_size"):
            factory(8, behavior_size=0)
        with pytest.raises(ValueError, match="num_agents"):
            factory(8, behavior_size=B, num_agents=0)
    for w in (-0.1, 1.5):
        with pytest.raises(ValueError, match="weight must be in"):
            el.strategies.nsra_es(8, behavior_size=B, weight=w)
        with pytest.raises(ValueError, match="weight must be in"):
            compiled("nsra").init(KEY, weight=w)

    with pytest.raises(ValueError, match="archive_probability"):
        el.strategies.ga_ns(8, truncation=2, behavior_size=B, archive_probability=1.5)
    with pytest.raises(ValueError, match="archive_probability"):
        el.strategies.ga_ns(8, truncation=2, behavior_size=B).init(
            KEY, GA_TEMPLATE, archive_probability=1.01
        )
    with pytest.raises(ValueError, match="behavior_size"):
        el.strategies.ga_ns(8, truncation=2, behavior_size=0)


def test_ga_ns_rejects_behaviors_of_the_wrong_shape(ga):
    state = ga["strategy"].init(KEY, GA_TEMPLATE)
    pop = ga["ask"](KEY, state)
    with pytest.raises(ValueError, match=r"\(8, 2\)"):
        ga["strategy"].tell(KEY, pop, evaluation(np.zeros(GA_P), np.zeros((GA_P, 3))), state)
    with pytest.raises(ValueError, match=r"\(8, 2\)"):
        ga["strategy"].tell(KEY, pop, evaluation(np.zeros(GA_P), np.zeros((GA_P, 0))), state)


# ------------------------------------------------------------------------ 7. determinism
def test_same_key_gives_bit_identical_runs():
    ns = el.strategies.nsra_es(8, 0.1, optax.adam(0.1), behavior_size=2, num_agents=2, k=3,
                               archive_capacity=32, weight_decay=0.0, agent_init=same_init,
                               patience=2)
    trainer = el.make_train(DECEPTIVE, None, ns, generations=6, params=X0, eval_episodes=0)
    a, b = trainer(jax.random.key(4)), trainer(jax.random.key(4))
    leaves_equal(a.metrics, b.metrics)
    leaves_equal(a.state, b.state)
    assert int(a.state.archive.size) == 2 + 5
    assert float(np.asarray(a.metrics["mean_novelty"]).max()) > 0
    c = trainer(jax.random.key(5))
    assert not np.array_equal(np.asarray(a.metrics["mean_novelty"]),
                              np.asarray(c.metrics["mean_novelty"]))


def test_jit_and_eager_tell_agree():
    c = compiled("nsra")
    state = c.init(KEY, "differ")
    pop = c.ask(KEY, state)
    state, _ = c.tell(KEY, pop, random_evaluation(P, 1), state,
                      validation=random_evaluation(M, 2))
    key = jax.random.fold_in(KEY, 1)
    pop = c.ask(key, state)
    args = (key, pop, random_evaluation(P, 3, ties=True), state)
    val = random_evaluation(M, 4)
    jitted = c.tell(*args, validation=val)
    eager = c.strategy.tell(*args, validation=val)
    assert jax.tree.structure(jitted) == jax.tree.structure(eager)
    for x, y in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                   rtol=0, atol=1e-6)
