"""NS-ES / NSR-ES / NSRA-ES and GA-NS: NumPy goldens of one generation (novelty, centered
ranks, utilities, the ES step, the agent evaluations tell runs through ``evaluate``, the
archive), novelty-proportional agent selection, NSRA's weight schedule, a deceptive task ES
cannot solve, GA-NS selection by novelty, bad input and determinism.

The NS-ES family's ``tell`` evaluates agents itself: a *scripted* ``evaluate`` returns what the
test chose (by batch size: ``M`` for the generation-0 call on the initial agents, 1 for the
updated agent), so the goldens control what the agents scored."""

from typing import NamedTuple

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
SEED_KEY, AGENT_KEY = 0x5EED, 0xA6E7  # tell's fold-ins for the two agent evaluations


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
    """REFERENCE section 1: rank r in [0, P-1] (ascending, tied values at their average rank)
    -> r / (P - 1) - 0.5."""
    x = np.asarray(x, np.float64)
    ranks = np.array([np.sum(x < v) + (np.sum(x == v) - 1) / 2 for v in x])
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


def np_flat(params):
    """One agent's parameters as a flat float64 vector (leaf order, as ``el.tree.ravel``)."""
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(params)])


def row(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def as_np(tree):
    return jax.tree.map(np.asarray, tree)


def with_row(x, i, value):
    """A copy of ``x`` with row ``i`` replaced."""
    x = np.array(x, copy=True)
    x[i] = value
    return x


def evaluation(fitness, behavior, steps=None):
    fitness = jnp.asarray(fitness, jnp.float32)
    if steps is None:
        steps = np.ones(fitness.shape[0])
    return el.Evaluation(fitness, jnp.asarray(behavior, jnp.float32),
                         jnp.asarray(steps, jnp.int32))


def random_evaluation(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    fitness = rng.integers(0, 3, n).astype(np.float32) if ties else rng.normal(size=n)
    return evaluation(fitness, rng.normal(size=(n, B)) * 2.0)


def key_free(tree):
    """``tree`` with PRNG key leaves (a state's ``noise_key``) as their raw key data."""
    def data(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(data, tree)


def keys_equal(a, b):
    return np.array_equal(np.asarray(jax.random.key_data(a)),
                          np.asarray(jax.random.key_data(b)))


# ------------------------------------------------------------------------ scripted evaluate
class Script(NamedTuple):
    """What the scripted ``evaluate`` returns: ``initial`` for the ``M`` initial agents (the
    generation-0 call), ``updated`` for the updated agent (a batch of one)."""

    initial: el.Evaluation
    updated: el.Evaluation


def scripted(script):
    """``evaluate(key, population, *, episodes=1, experiences=0)`` returning ``script``'s
    evaluation for the population's batch size (traceable: it returns the script's arrays)."""

    def evaluate(key, population, *, episodes=1, experiences=0):
        n = jax.tree.leaves(population)[0].shape[0]
        assert n in (M, 1), n
        return script.initial if n == M else script.updated

    return evaluate


def random_script(seed):
    return Script(random_evaluation(M, seed), random_evaluation(1, seed + 100))


def recording(calls, steps=7):
    """``evaluate`` that records its calls and scores the parameters it gets, in JAX:
    behavior = the first ``B`` parameters, fitness = their sum, ``steps`` per member."""

    def evaluate(key, population, *, episodes=1, experiences=0):
        flat = jax.vmap(lambda p: el.tree.ravel(p)[0])(population)
        calls.append(dict(key=key, population=population, n=flat.shape[0], episodes=episodes,
                          experiences=experiences))
        n = flat.shape[0]
        return el.Evaluation(jnp.sum(flat, axis=1), flat[:, :B], jnp.full((n,), steps, jnp.int32))

    return evaluate


# ------------------------------------------------------------------------ shared strategies
TEMPLATE = {"w": jnp.asarray([0.5, -1.0, 0.25], jnp.float32),
            "b": jnp.asarray([1.5, -0.75], jnp.float32)}


def same_init(key, params):
    return params


def differ_init(key, params):
    flat, unravel = el.tree.ravel(params)
    return unravel(flat + jax.random.normal(key, flat.shape))


def build(variant, agent_init, **kwargs):
    return FACTORIES[variant](
        P, SIGMA, optax.sgd(1.0), behavior_size=B, num_agents=M, k=K,
        archive_capacity=CAP, weight_decay=0.0, agent_init=agent_init, **kwargs,
    )


class Compiled:
    """One variant's ask/tell jitted once (compile time dominates on CPU).

    ``tell(key, population, evaluation, state, script)`` runs the strategy's tell with
    ``evaluate=scripted(script)``; the script is a traced argument, so every script of the same
    shapes reuses one program. ``agent_init`` only acts in ``init`` (eager, not jitted); the
    state of the strategy built with ``differ_init`` has the same structure, so the same
    compiled functions serve both.
    """

    def __init__(self, variant):
        self.variant = variant
        self.strategy = build(variant, same_init)
        self.differ = build(variant, differ_init)
        self.ask = jax.jit(self.strategy.ask)
        strategy = self.strategy

        def tell(key, population, evaluation, state, script):
            return strategy.tell(key, population, evaluation, state, evaluate=scripted(script))

        self.tell = jax.jit(tell)

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
def check_means(after, before, m, expected):
    """Agent ``m`` took the golden step ``expected``; every other agent is unchanged."""
    for j in range(M):
        if j == m:
            for name in TEMPLATE:
                np.testing.assert_allclose(
                    np.asarray(after[name][j], np.float64), expected[name],
                    rtol=0, atol=1e-5, err_msg=name,
                )
        else:
            leaves_equal(row(after, j), row(before, j))


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

    # ---- generation 0: the initial agents are evaluated (they seed the archive), agent m0
    # takes the ES step, the updated agent is evaluated and its behavior enters the archive.
    k0, k1 = jax.random.fold_in(KEY, 10), jax.random.fold_in(KEY, 11)
    m0 = int(state0.agent)
    pop0, asked0 = c.ask(k0, state0)
    assert bool(asked0.asked) and not bool(state0.asked)
    ev0 = random_evaluation(P, 1, ties=True)
    # Behaviors: agent m0 starts at x, agent `target` at t, the third agent at s, and the
    # updated m0 lands on s. The archive then holds x, t, s, s: with k = 2 every agent but
    # `target` sits on two copies (novelty 0), so `target` must be drawn next.
    target = (m0 + 1 + (agents == "differ")) % M
    (other,) = set(range(M)) - {m0, target}
    rng = np.random.default_rng(2)
    x, t, s = (rng.normal(size=(3, B)) * 2.0).astype(np.float32)
    b_init = np.zeros((M, B), np.float32)
    b_init[m0], b_init[target], b_init[other] = x, t, s
    f_init = rng.normal(size=M).astype(np.float32)
    # "same": the updated agent beats the initial ones; "differ": it does not.
    f_u0 = np.float32(f_init.max() + 1.0 if agents == "same" else f_init.min() - 1.0)
    script0 = Script(evaluation(f_init, b_init, [3, 5, 7]), evaluation([f_u0], s[None], [11]))
    state1, metrics0 = c.tell(k0, pop0, ev0, asked0, script0)

    nov0 = np_knn(ev0.behavior, b_init, K)  # against the seeded archive (initial agents only)
    u0 = np_utilities(variant, ev0.fitness, nov0, NSRA_W)
    expected0, grads0 = np_es_step(row(means0, m0), pop0, u0)
    check_means(state1.means, means0, m0, expected0)
    archive1 = np.concatenate([b_init, s[None]])
    assert int(state1.archive.size) == M + 1 and int(state1.archive.num_added) == M + 1
    np.testing.assert_array_equal(np.asarray(state1.archive.behaviors)[: M + 1], archive1)
    np.testing.assert_array_equal(np.asarray(state1.archive.behaviors)[M + 1:], 0.0)
    behaviors1 = with_row(b_init, m0, s)
    fitness1 = with_row(f_init, m0, f_u0)
    np.testing.assert_array_equal(np.asarray(state1.behaviors), behaviors1)
    np.testing.assert_array_equal(np.asarray(state1.fitness), fitness1)
    assert int(state1.generation) == 1 and not bool(state1.asked)
    best1 = max(f_init.max(), f_u0)
    assert float(state1.best_fitness) == best1
    assert int(state1.stagnation) == 0
    g0 = np.concatenate([grads0[n].ravel() for n in sorted(grads0)])
    np.testing.assert_allclose(float(metrics0["grad_norm"]), np.linalg.norm(g0), rtol=1e-5)
    np.testing.assert_allclose(float(metrics0["mean_novelty"]), nov0.mean(), atol=1e-5)
    np.testing.assert_allclose(float(metrics0["max_novelty"]), nov0.max(), atol=1e-5)
    assert int(metrics0["agent"]) == m0
    assert float(metrics0["agent_fitness"]) == f_u0
    np.testing.assert_array_equal(np.asarray(metrics0["agent_behavior"]), s)
    assert float(metrics0["best_agent_fitness"]) == fitness1.max()
    assert int(metrics0["archive_size"]) == M + 1
    assert float(metrics0["extra_steps"]) == 3 + 5 + 7 + 11  # the M initial agents + 1
    leaves_equal(c.strategy.solution(state1), row(state1.means, int(np.argmax(fitness1))))
    if variant == "nsra":  # no weight change at generation 0 (even when "same" improved)
        np.testing.assert_allclose(float(metrics0["weight"]), NSRA_W, rtol=0, atol=1e-7)
        np.testing.assert_allclose(float(state1.weight), NSRA_W, rtol=0, atol=1e-7)

    # ---- generation 1: perturb agent m1; only the updated agent is evaluated.
    m1 = int(state1.agent)
    assert m1 == target
    means1 = as_np(state1.means)
    pop1, asked1 = c.ask(k1, state1)
    d = {n: np.asarray(pop1[n], np.float64) - means1[n][m1][None] for n in TEMPLATE}
    for n in TEMPLATE:  # mirrored perturbations of agent m1
        np.testing.assert_allclose(d[n][: P // 2], -d[n][P // 2:], rtol=0, atol=1e-6)
        assert np.abs(d[n]).max() > 1e-3
    ev1 = random_evaluation(P, 3, ties=True)
    nov1 = np_knn(ev1.behavior, archive1, K)  # the archive includes the updated m0's behavior
    u1 = np_utilities(variant, ev1.fitness, nov1, NSRA_W)
    expected1, grads1 = np_es_step(row(means1, m1), pop1, u1)
    assert max(np.abs(expected1[n] - means1[n][m1]).max() for n in TEMPLATE) > 1e-3

    u1_behavior = (rng.normal(size=B) * 2.0).astype(np.float32)
    # "same": below the best so far (the updated m0's); "differ": above it.
    f1 = np.float32(best1 - 0.5 if agents == "same" else best1 + 0.5)
    # The initial-agents part must not be used after generation 0: wild values would show.
    unused = evaluation(np.full(M, 1e3), np.full((M, B), 99.0), [1000] * M)
    state2, metrics = c.tell(k1, pop1, ev1, asked1,
                             Script(unused, evaluation([f1], u1_behavior[None], [13])))
    check_means(state2.means, means1, m1, expected1)

    archive2 = np.concatenate([archive1, u1_behavior[None]])
    assert int(state2.archive.size) == M + 2 and int(state2.archive.num_added) == M + 2
    np.testing.assert_array_equal(np.asarray(state2.archive.behaviors)[: M + 2], archive2)
    np.testing.assert_array_equal(np.asarray(state2.archive.behaviors)[M + 2:], 0.0)
    fitness2 = with_row(fitness1, m1, f1)
    np.testing.assert_array_equal(np.asarray(state2.behaviors), with_row(behaviors1, m1,
                                                                         u1_behavior))
    np.testing.assert_array_equal(np.asarray(state2.fitness), fitness2)
    assert int(state2.generation) == 2
    assert float(state2.best_fitness) == max(best1, f1)

    g = np.concatenate([grads1[n].ravel() for n in sorted(grads1)])
    np.testing.assert_allclose(float(metrics["grad_norm"]), np.linalg.norm(g), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["mean_novelty"]), nov1.mean(), atol=1e-5)
    np.testing.assert_allclose(float(metrics["max_novelty"]), nov1.max(), atol=1e-5)
    assert float(metrics["best_fitness"]) == np.asarray(ev1.fitness).max()
    assert int(metrics["agent"]) == m1
    assert float(metrics["agent_fitness"]) == f1
    np.testing.assert_array_equal(np.asarray(metrics["agent_behavior"]), u1_behavior)
    assert float(metrics["best_agent_fitness"]) == fitness2.max()
    assert int(metrics["archive_size"]) == M + 2
    assert float(metrics["extra_steps"]) == 13  # the updated agent alone
    leaves_equal(c.strategy.solution(state2), row(state2.means, int(np.argmax(fitness2))))
    if variant == "nsra":
        w = np.float32(NSRA_W) + (np.float32(0.05) if agents == "differ" else 0)
        np.testing.assert_allclose(float(metrics["weight"]), w, atol=1e-6)
        np.testing.assert_allclose(float(state2.weight), w, atol=1e-6)
        assert int(state2.stagnation) == (0 if agents == "differ" else 1)
    else:
        assert "weight" not in metrics


def test_tell_evaluates_the_initial_agents_then_the_updated_one():
    """Eagerly, with an evaluate that records its calls and scores the parameters it gets:
    generation 0 evaluates the M initial agents (key fold_in(key, 0x5EED)) and then the updated
    agent alone (a batch of one, key fold_in(key, 0xA6E7)); generation 1 only the updated
    agent; both with ``validation_episodes`` episodes."""
    strategy = build("nsr", differ_init, validation_episodes=2)
    state0 = strategy.init(KEY, TEMPLATE)
    means0 = as_np(state0.means)
    m0 = int(state0.agent)
    k0, k1 = jax.random.fold_in(KEY, 20), jax.random.fold_in(KEY, 21)
    pop0, asked0 = strategy.ask(k0, state0)
    ev0 = random_evaluation(P, 1)
    calls = []
    state1, metrics0 = strategy.tell(k0, pop0, ev0, asked0, evaluate=recording(calls))

    assert [c["n"] for c in calls] == [M, 1]
    seed, agent = calls
    assert keys_equal(seed["key"], jax.random.fold_in(k0, SEED_KEY))
    assert keys_equal(agent["key"], jax.random.fold_in(k0, AGENT_KEY))
    assert all(c["episodes"] == 2 and c["experiences"] == 0 for c in calls)
    nov0 = np_knn(ev0.behavior, [np_flat(row(means0, j))[:B] for j in range(M)], K)
    expected0, _ = np_es_step(row(means0, m0), pop0, np_utilities("nsr", ev0.fitness, nov0, 0))
    updated0 = row(agent["population"], 0)
    assert jax.tree.structure(updated0) == jax.tree.structure(TEMPLATE)
    for name in TEMPLATE:
        assert agent["population"][name].shape == (1, *TEMPLATE[name].shape)
        np.testing.assert_allclose(np.asarray(updated0[name], np.float64), expected0[name],
                                   rtol=0, atol=1e-5, err_msg=name)
    leaves_equal(updated0, row(state1.means, m0))
    # What was scored: the initial agents' parameters, then the updated agent's.
    scored = [np_flat(row(means0, j)) for j in range(M)] + [np_flat(updated0)]
    np.testing.assert_allclose(np.asarray(state1.archive.behaviors)[: M + 1],
                               [f[:B] for f in scored], rtol=0, atol=1e-6)
    assert int(state1.archive.size) == M + 1
    initial = [f.sum() for f in scored[:M]]
    np.testing.assert_allclose(np.asarray(state1.fitness), with_row(initial, m0, scored[M].sum()),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state1.behaviors),
                               with_row([f[:B] for f in scored[:M]], m0, scored[M][:B]),
                               rtol=0, atol=1e-6)
    assert float(metrics0["extra_steps"]) == 7 * (M + 1)

    m1 = int(state1.agent)
    pop1, asked1 = strategy.ask(k1, state1)
    calls.clear()
    state2, metrics1 = strategy.tell(k1, pop1, random_evaluation(P, 3), asked1,
                                     evaluate=recording(calls))
    ran = [c for c in calls
           if not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(c["population"]))]
    assert [c["n"] for c in ran] == [1]  # the initial agents are not evaluated again
    assert keys_equal(ran[0]["key"], jax.random.fold_in(k1, AGENT_KEY))
    assert ran[0]["episodes"] == 2
    leaves_equal(row(ran[0]["population"], 0), row(state2.means, m1))
    assert float(metrics1["extra_steps"]) == 7
    assert int(state2.archive.size) == M + 2
    np.testing.assert_allclose(np.asarray(state2.archive.behaviors)[M + 1],
                               np_flat(row(state2.means, m1))[:B], rtol=0, atol=1e-6)


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
    """``choose(keys, population, evaluation, state, script) -> next agents`` vmapped."""
    c = compiled("ns")

    def next_agent(key, population, evaluation, state, script):
        return c.strategy.tell(key, population, evaluation, state,
                               evaluate=scripted(script))[0].agent

    return jax.jit(jax.vmap(next_agent, in_axes=(0, None, None, None, None)))


def selection_state(archive_rows, agent_behaviors):
    """Generation 1, agent 0 perturbed; agents 1.. hold ``agent_behaviors[1:]``; agent 0's
    stored behavior is stale (far away): its updated behavior comes from the evaluation."""
    c = compiled("ns")
    state = c.init(KEY)
    archive = el.novelty.add(state.archive, jnp.asarray(archive_rows, jnp.float32))
    stale = with_row(agent_behaviors, 0, [100.0, -100.0])
    state = state._replace(archive=archive, generation=jnp.int32(1), agent=jnp.int32(0),
                           best_fitness=jnp.float32(0.0),
                           behaviors=jnp.asarray(stale, jnp.float32),
                           fitness=jnp.zeros(M, jnp.float32))
    return c.ask(KEY, state)


def draw_agents(choose, archive_rows, agent_behaviors, n=2000):
    pop, state = selection_state(archive_rows, agent_behaviors)
    ev = random_evaluation(P, 6)
    script = Script(evaluation(np.zeros(M), np.zeros((M, B))),
                    evaluation(np.zeros(1), agent_behaviors[:1]))
    keys = jax.random.split(jax.random.key(77), n)
    agents = np.asarray(choose(keys, pop, ev, state, script))
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
def run_weight_schedule(updated_fitness, initial=(1.0, 1.0, 1.0), first=1.0, **hparams):
    """Gen 0 (the initial agents score ``initial``, the updated agent ``first``), then one
    tell per entry of ``updated_fitness`` (the updated agent's fitness; the other agents'
    stored fitness is set to 100 before each tell, which must not count). Returns the weight
    and the best fitness after each generation."""
    c = compiled("nsra")
    state = c.init(KEY, **hparams)
    pop0, state = c.ask(KEY, state)
    ev = random_evaluation(P, 8)
    script = Script(evaluation(initial, np.zeros((M, B))), evaluation([first], np.ones((1, B))))
    state, metrics = c.tell(KEY, pop0, ev, state, script)
    weights, best = [float(metrics["weight"])], [float(state.best_fitness)]
    for t, f in enumerate(updated_fitness):
        key = jax.random.fold_in(KEY, t)
        m = int(state.agent)
        others = with_row(np.full(M, 100.0, np.float32), m, np.asarray(state.fitness)[m])
        pop, state = c.ask(key, state._replace(fitness=jnp.asarray(others)))
        behavior = np.random.default_rng(t).normal(size=(1, B))
        state, metrics = c.tell(key, pop, ev, state,
                                Script(script.initial, evaluation([f], behavior)))
        assert float(metrics["weight"]) == float(state.weight)
        weights.append(float(state.weight))
        best.append(float(state.best_fitness))
    return np.array(weights), np.array(best)


def test_nsra_weight_falls_after_stagnation_and_rises_after_improvement():
    # patience 3, delta 0.05, w0 = 1: stagnant gens 1-6 (fitness 1 = best, not above it),
    # improvements at 7, 8, 9 (clipped at 1), stagnant again 10-12.
    fitness = [1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0]
    w, best = run_weight_schedule(fitness, weight=1.0, delta=0.05, patience=3)
    expected = [1.0, 1.0, 1.0, 0.95, 0.95, 0.95, 0.90, 0.95, 1.0, 1.0, 1.0, 1.0, 0.95]
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(best, np.maximum.accumulate([1.0, *fitness]))


def test_nsra_weight_is_clipped_at_zero():
    # patience 1: every stagnant generation steps down; 0.07 -> 0.02 -> 0 (clipped) -> 0,
    # then an improvement -> 0.05.
    w, _ = run_weight_schedule([1.0, 1.0, 1.0, 2.0], weight=0.07, delta=0.05, patience=1)
    np.testing.assert_allclose(w, [0.07, 0.02, 0.0, 0.0, 0.05], rtol=0, atol=1e-6)


def test_nsra_generation_zero_sets_the_best_from_initial_and_updated_agents():
    # The updated agent beats the initial ones at generation 0: the best becomes 3 with no
    # weight change; 2 and then 3 are no improvement (patience 2: down), 3.5 is (up).
    w, best = run_weight_schedule([2.0, 3.0, 3.5], first=3.0, weight=0.5, delta=0.05,
                                  patience=2)
    np.testing.assert_allclose(w, [0.5, 0.5, 0.45, 0.5], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(best, [3.0, 3.0, 3.0, 3.5])
    # An initial agent beats the updated one: the best is 4, so 3 is no improvement.
    w, best = run_weight_schedule([3.0, 4.5], initial=(1.0, 4.0, 1.0), first=0.0, weight=0.5,
                                  delta=0.05, patience=5)
    np.testing.assert_allclose(w, [0.5, 0.5, 0.55], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(best, [4.0, 4.0, 4.5])


# ------------------------------------------------------------------------ 4. deceptive task
TRAP = np.array([1.0, 0.0], np.float32)
RADIUS = 3.0


def deceptive(key, params):
    """Inside the disk of radius 3 the fitness is -||x - trap|| (a local optimum of 0 at
    (1, 0), whose gradient everything near the origin follows); outside it is 5 + ||x||, above
    anything inside. Behavior: x + 0.1 x^2 (elementwise). Not x itself: an agent starts on its
    own archived behavior, so with a behavior linear in x every mirrored pair +e/-e is exactly
    as novel and ties; tied utilities are equal (average ranks), so NS-ES would never move.
    (Until tied values got their average rank, this test passed with behavior x only through
    the positional tie-break, which pushed every tied pair the same way.)"""
    del key
    x = params["x"]
    r = jnp.linalg.norm(x)
    return jnp.where(r < RADIUS, -jnp.linalg.norm(x - TRAP), 5.0 + r), x + 0.1 * x**2


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
        # The archive's spread grew well past the trap's neighbourhood; it holds the M initial
        # behaviors and one updated agent's per generation.
        rows = np.asarray(result.state.archive.behaviors)[: int(result.state.archive.size)]
        assert int(result.state.archive.size) == 2 + generations
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
        genomes=jax.jit(lambda s: jax.vmap(
            lambda i: el.strategies.member_genome(s.ga, i))(jnp.arange(GA_P))),
    )


def ga_generation(ga, key, state, behaviors, fitness_of_novelty):
    """One GA-NS generation; fitness is a function of the NumPy novelty (self-excluded)."""
    pop, asked = ga["ask"](key, state)
    genomes = ga["genomes"](asked)
    archive = np.asarray(state.archive.behaviors)[: int(state.archive.size)]
    nov = np_knn(behaviors, np.concatenate([archive, behaviors]), 3,
                 exclude=len(archive) + np.arange(GA_P))
    fitness = fitness_of_novelty(nov)
    new_state, metrics = ga["tell"](key, pop, evaluation(fitness, behaviors), asked)
    assert "extra_steps" not in metrics  # the Gaussian mutation needs no extra evaluation
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
    rng = np.random.default_rng(14)
    offered = []
    generations = 12
    for gen in range(generations):
        key = jax.random.fold_in(KEY, gen)
        pop, state = ga["ask"](key, state)
        behaviors = rng.normal(size=(GA_P, B)).astype(np.float32)
        offered.append(behaviors)
        state, metrics = ga["tell"](key, pop, evaluation(rng.normal(size=GA_P), behaviors),
                                    state)
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
    fresh = c.init(KEY)
    pop, state = c.ask(KEY, fresh)
    good = scripted(random_script(2))
    wrong = evaluation(np.zeros(P), np.zeros((P, B + 1)))
    with pytest.raises(ValueError, match=r"\(8, 2\)"):
        s.tell(KEY, pop, wrong, state, evaluate=good)
    # The agents' evaluations must have the strategy's behavior size too: the initial agents'
    # (generation 0) and the updated agent's.
    bad_initial = Script(evaluation(np.zeros(M), np.zeros((M, 1))), random_evaluation(1, 3))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        s.tell(KEY, pop, random_evaluation(P, 1), state, evaluate=scripted(bad_initial))
    bad_updated = Script(random_evaluation(M, 2), evaluation(np.zeros(1), np.zeros((1, 3))))
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        s.tell(KEY, pop, random_evaluation(P, 1), state, evaluate=scripted(bad_updated))
    with pytest.raises(ValueError, match="evaluate="):
        s.tell(KEY, pop, random_evaluation(P, 1), state)
    with pytest.raises(ValueError, match=r"fitness must have shape \(8,\)"):
        s.tell(KEY, pop, evaluation(np.zeros(P + 1), np.zeros((P + 1, B))), state,
               evaluate=good)
    with pytest.raises(ValueError, match="did not come from ask"):
        s.tell(KEY, pop, random_evaluation(P, 1), fresh, evaluate=good)

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
    pop, state = ga["ask"](KEY, state)
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
    leaves_equal(key_free(a.state), key_free(b.state))
    assert int(a.state.archive.size) == 2 + 6
    assert float(np.asarray(a.metrics["mean_novelty"]).max()) > 0
    c = trainer(jax.random.key(5))
    assert not np.array_equal(np.asarray(a.metrics["mean_novelty"]),
                              np.asarray(c.metrics["mean_novelty"]))


def test_jit_and_eager_tell_agree():
    c = compiled("nsra")
    state = c.init(KEY, "differ")
    for gen, (ev_seed, script_seed) in enumerate([(1, 2), (3, 4)]):
        key = jax.random.fold_in(KEY, gen)
        pop, state = c.ask(key, state)
        args = (key, pop, random_evaluation(P, ev_seed, ties=gen == 1), state)
        script = random_script(script_seed)
        jitted = c.tell(*args, script)
        eager = c.strategy.tell(*args, evaluate=scripted(script))
        assert jax.tree.structure(jitted) == jax.tree.structure(eager)
        for x, y in zip(jax.tree.leaves(key_free(jitted)), jax.tree.leaves(key_free(eager)),
                        strict=True):
            np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                       rtol=0, atol=1e-6)
        state = jitted[0]
