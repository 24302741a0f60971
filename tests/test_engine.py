"""The Strategy protocol as a whole (docs/design.md).

1. The combination matrix: every strategy (two evosax algorithms wrapped by from_evosax among
   them) with every mutation it accepts, on a function task, CartPole-v1 (discrete actions), the
   Hard Maze (continuous) and a gymnax instance with other parameters (from_gymnax), two
   generations through
   make_train on the 2 host devices of the conftest: finite metrics, and the step budget is the
   population's steps plus the steps of the extra evaluations tell reports.
2. Every strategy once on a brax task, and 1 vs 2 devices bit for bit.
3. A hand-written loop per strategy (ask / fitness in NumPy outside JAX / tell, the extra
   evaluations through a host callback) reaches make_train's state after three generations.
4. An evosax-style loop (a fresh key for tell) gives the update of the population actually asked
   (OpenAI-ES, against NumPy) and a state that did not come from ask is refused.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_golden import key_free, leaves_equal

import evojax_lab as el
from evojax_lab.train import TELL_KEY

STRATEGIES = ("openai_es", "deep_ga", "random_search", "ns_es", "nsr_es", "nsra_es", "ga_ns")
# evosax algorithms wrapped by el.strategies.from_evosax: a distribution-based one and a
# population-based one (the test extra installs evosax). They join the matrix and the protocol
# checks; not the 1-vs-2-device bit-for-bit test (evosax's ask/tell run replicated, and XLA
# compiles their float32 arithmetic differently in the sharded program: ~1e-5 apart, stated in
# evojax_lab/strategies/evosax_adapter.py) nor the hand-written loop (tests/test_evosax.py
# compares them with evosax's own loop, to a stated tolerance).
EVOSAX = ("evosax:CMA_ES", "evosax:SimpleGA")
MUTATIONS = ("gaussian", "sum", "abs", "so", "r")
# The ES family perturbs with its own Gaussian noise, random search mutates nothing and evosax
# algorithms draw their own members: they accept only the default. The GAs accept every mutation.
ACCEPTS = {name: ("gaussian",) for name in (*STRATEGIES, *EVOSAX)} | {"deep_ga": MUTATIONS,
                                                                      "ga_ns": MUTATIONS}
# "gymnax_instance": a gymnax environment instance with other parameters, through
# el.tasks.from_gymnax (CartPole with a pole twice as long).
TASKS = ("function", "CartPole-v1", "hard_maze", "gymnax_instance")
P = 4
GENS = 2
K = 4  # experiences per parent for the safe mutations
# The function task: a tiny linear-head network fitted to 0.5 on fixed inputs; its behavior is
# the network's outputs on the first input. Safe mutations measure it on the same inputs.
NET = el.policies.MLP(2, hidden=(3,), head="linear")
INPUTS = jnp.asarray([[1.0, -0.5, 0.25], [0.0, 1.0, -1.0], [0.5, 0.5, 0.5]], jnp.float32)


def supervised(key, params):
    del key
    out = jax.vmap(lambda x: NET.apply(params, x))(INPUTS)
    return -jnp.mean(jnp.square(out - 0.5)), out[0]


@functools.cache
def task_of(kind):
    if kind == "function":
        return el.tasks.function(supervised, behavior_size=2)
    if kind == "brax":
        return el.tasks.make("brax/inverted_pendulum", max_steps=5)
    if kind == "gymnax_instance":
        import gymnax

        env, env_params = gymnax.make("CartPole-v1")
        return el.tasks.from_gymnax(env, env_params.replace(length=1.0), max_steps=8)
    return el.tasks.make(kind, max_steps=8)


def setup(kind):
    """(task, policy, params) of a task kind."""
    task = task_of(kind)
    if kind == "function":
        return task, None, NET.init(jax.random.PRNGKey(0), INPUTS[0])
    return task, el.policies.for_task(task, hidden=(4,)), None


def mutation_of(kind, name):
    if name == "gaussian":
        return el.mutations.gaussian
    if kind == "function":
        return el.mutations.safe_mutation(NET, name, inputs=INPUTS)
    task, policy, _ = setup(kind)
    return el.mutations.safe_mutation(policy, name, experiences=K,
                                      observation_shape=task.observation_shape)


def strategy_of(name, mutation, behavior_size):
    novelty = dict(behavior_size=behavior_size, k=2)
    if name in EVOSAX:
        return el.strategies.from_evosax(name.split(":")[1], P, sigma=0.1)
    if name == "openai_es":
        return el.strategies.openai_es(P, 0.1)
    if name == "deep_ga":
        return el.strategies.deep_ga(P, 0.05, 2, validation_episodes=2, validation_candidates=2,
                                     mutation=mutation, genome_capacity=GENS + 3)
    if name == "random_search":
        return el.strategies.random_search(P, validation_episodes=1, validation_candidates=2)
    if name in ("ns_es", "nsr_es", "nsra_es"):
        return getattr(el.strategies, name)(P, 0.1, num_agents=2, archive_capacity=8,
                                            patience=1, **novelty)
    return el.strategies.ga_ns(P, 0.05, 2, mutation=mutation, archive_capacity=16,
                               genome_capacity=GENS + 3, **novelty)


_RUNS = {}


def run(name, mutation, kind, mesh="auto", chunk_size=None):
    """make_train for GENS generations (cached: the 1-vs-2-device test reuses matrix cells)."""
    cell = (name, mutation, kind, mesh is None, chunk_size)
    if cell not in _RUNS:
        task, policy, params = setup(kind)
        strategy = strategy_of(name, mutation_of(kind, mutation), task.behavior_size)
        # (no solution scoring: one rollout program less to compile per cell)
        trainer = el.make_train(task, policy, strategy, generations=GENS, eval_episodes=0,
                                params=params, mesh=mesh, record=("steps",),
                                chunk_size=chunk_size)
        _RUNS[cell] = jax.block_until_ready(trainer(jax.random.PRNGKey(11)))
    return _RUNS[cell]


def check_finite_and_budget(result):
    for metric, values in result.metrics.items():
        values = np.asarray(values)
        assert values.shape[0] == GENS, metric
        if np.issubdtype(values.dtype, np.floating):
            assert np.all(np.isfinite(values)), (metric, values)
    m = {k: np.asarray(v) for k, v in result.metrics.items()}
    extra = m.get("extra_steps", np.zeros(GENS))
    spent = np.diff(np.concatenate([[0.0], m["steps"]]))
    np.testing.assert_array_equal(spent, m["population_steps"].sum(axis=1) + extra)
    np.testing.assert_array_equal(m["generation"], np.arange(1, GENS + 1))


MATRIX = [(s, m, t) for s in (*STRATEGIES, *EVOSAX) for m in ACCEPTS[s] for t in TASKS]


@pytest.mark.parametrize("name,mutation,kind", MATRIX)
def test_every_strategy_mutation_and_task_runs_through_make_train(name, mutation, kind):
    result = run(name, mutation, kind)
    check_finite_and_budget(result)
    state = result.state.ga if name == "ga_ns" else result.state
    if mutation != "gaussian" and kind != "function":
        # the parents' own experiences: K observations of a rollout of each parent
        assert state.parent_experiences.shape == (2, K, *task_of(kind).observation_shape)
        assert np.any(np.asarray(state.parent_experiences) != 0)
    if name in ("deep_ga", "random_search", "ns_es", "nsr_es", "nsra_es") or (
            name == "ga_ns" and mutation != "gaussian" and kind != "function"):
        assert np.all(np.asarray(result.metrics["extra_steps"]) > 0)  # evaluate was used


@pytest.mark.slow
@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_runs_on_a_brax_task(name):
    check_finite_and_budget(run(name, "gaussian", "brax"))


@pytest.mark.parametrize("name", STRATEGIES)
def test_one_and_two_devices_agree_bit_for_bit(name):
    two = run(name, "gaussian", "CartPole-v1")
    one = run(name, "gaussian", "CartPole-v1", mesh=None)
    leaves_equal(key_free_tree(one), key_free_tree(two))


@pytest.mark.parametrize("name", STRATEGIES)
def test_bounded_layout_agrees_on_one_and_two_devices_bit_for_bit(name):
    """chunk_size: members rebuilt from the state, pair by pair for the mirrored ES family
    (Strategy.pair), one by one for the GAs (member)."""
    two = run(name, "gaussian", "CartPole-v1", chunk_size=1)
    one = run(name, "gaussian", "CartPole-v1", mesh=None, chunk_size=1)
    check_finite_and_budget(two)
    leaves_equal(key_free_tree(one), key_free_tree(two))


def key_free_tree(result):
    return jax.tree.map(key_free, result)


# -- 3. hand-written loops --------------------------------------------------------------------
TEMPLATE = {"w": jnp.asarray([0.5, -1.0, 0.25, 2.0, -0.5], jnp.float32)}


def jax_fitness(key, params):
    """Exact in float32 both here and in NumPy (one addition; behavior copies parameters)."""
    del key
    w = params["w"]
    return w[0] + w[1], jnp.stack([w[0], w[2]])


def numpy_fitness(w):
    """The same fitness and behavior computed in NumPy from ``[C, 5]`` parameters."""
    w = np.asarray(w, np.float32)
    return (w[:, 0] + w[:, 1]).astype(np.float32), np.stack([w[:, 0], w[:, 2]], axis=1)


def host_evaluate(key, population, *, episodes=1, experiences=0):
    """An evaluate for tell's extra evaluations: NumPy on the host behind jax.pure_callback."""
    del key
    assert experiences == 0  # the Gaussian mutations need none
    n = population["w"].shape[0]

    def on_host(w):
        fitness, behavior = numpy_fitness(w)
        return fitness, behavior, np.full(n, episodes, np.int32)

    shapes = (jax.ShapeDtypeStruct((n,), jnp.float32), jax.ShapeDtypeStruct((n, 2), jnp.float32),
              jax.ShapeDtypeStruct((n,), jnp.int32))
    fitness, behavior, steps = jax.pure_callback(on_host, shapes, population["w"])
    return el.Evaluation(fitness, behavior, steps)


def loop_strategy(name):
    if name == "openai_es":
        return el.strategies.openai_es(6, 0.1)
    if name == "deep_ga":
        return el.strategies.deep_ga(6, 0.1, 3, validation_episodes=2, validation_candidates=3)
    if name == "random_search":
        return el.strategies.random_search(6, validation_episodes=1, validation_candidates=2)
    if name == "ga_ns":
        return el.strategies.ga_ns(6, 0.1, 3, behavior_size=2, k=2, archive_probability=0.5,
                                   archive_capacity=32)
    if name in EVOSAX:
        return el.strategies.from_evosax(name.split(":")[1], 6, sigma=0.1)
    return getattr(el.strategies, name)(6, 0.1, behavior_size=2, num_agents=3, k=2,
                                        archive_capacity=16, patience=1)


@pytest.mark.parametrize("name", STRATEGIES)
def test_hand_written_loop_reaches_make_train_state(name):
    strategy = loop_strategy(name)
    key, gens = jax.random.PRNGKey(21), 3
    trainer = el.make_train(el.tasks.function(jax_fitness, behavior_size=2), None, strategy,
                            generations=gens, eval_episodes=0, params=TEMPLATE, mesh=None)
    expected = trainer(key)

    # The loop: the same keys as make_train (docs/design.md), no make_train.
    ask = jax.jit(strategy.ask)
    tell = jax.jit(functools.partial(strategy.tell, evaluate=host_evaluate))
    _, strategy_key, run_key = jax.random.split(key, 3)
    state = strategy.init(strategy_key, TEMPLATE)
    for g in range(gens):
        gen_key = jax.random.fold_in(run_key, g)
        ask_key, _, _ = jax.random.split(gen_key, 3)
        population, state = ask(ask_key, state)
        fitness, behavior = numpy_fitness(population["w"])  # outside JAX
        evaluation = el.Evaluation(jnp.asarray(fitness), jnp.asarray(behavior),
                                   jnp.ones(strategy.pop_size, jnp.int32))
        state, _ = tell(jax.random.fold_in(gen_key, TELL_KEY), population, evaluation, state)
    leaves_equal(state, expected.state)
    leaves_equal(strategy.solution(state), expected.solution)


# -- 4. evosax-style loops and the key contract -------------------------------------------------
def np_centered_rank(x):
    """REFERENCE §1 with distinct values: rank / (P - 1) - 0.5."""
    ranks = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    return ranks / (len(x) - 1) - 0.5


def test_evosax_style_loop_with_a_fresh_tell_key_applies_the_asked_update():
    """OpenAI-ES on a 5-parameter quadratic: ask with one key, tell with another; the update is
    the one of the population actually asked (NumPy: eps from the population, centered ranks,
    the mirrored estimate, L2 inside, one Adam step)."""
    lr, sigma, wd = 0.05, 0.1, 0.005
    strategy = el.strategies.openai_es(8, sigma, learning_rate=lr, weight_decay=wd)
    mean = np.asarray([0.5, -1.0, 0.25, 2.0, -0.5], np.float32)
    state = strategy.init(jax.random.PRNGKey(0), {"w": jnp.asarray(mean)})
    ask_key, tell_key = jax.random.split(jax.random.PRNGKey(1))
    population, state = strategy.ask(ask_key, state)
    w = np.asarray(population["w"], np.float64)
    fitness = -np.sum(np.square(w - 1.0), axis=1)
    new_state, _ = strategy.tell(tell_key, population, jnp.asarray(fitness, jnp.float32), state)

    n = 4
    eps = (w[:n] - mean) / np.float32(sigma)
    u = np_centered_rank(fitness)
    g = ((u[:n] - u[n:]) @ eps) / 8
    grad = -g + wd * mean
    m, v = 0.1 * grad, 0.001 * grad**2  # Adam's first moments
    step = lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(np.asarray(new_state.mean["w"]), mean - step, rtol=0, atol=2e-6)
    # the old contract's trap: tell's own key does not matter any more
    again, _ = strategy.tell(jax.random.PRNGKey(99), population, jnp.asarray(fitness), state)
    leaves_equal(again, new_state)


def test_evosax_style_ga_keeps_the_members_actually_asked():
    strategy = el.strategies.deep_ga(8, 0.1, 2, validation_episodes=0)
    state = strategy.init(jax.random.PRNGKey(0), TEMPLATE)
    population, state = strategy.ask(jax.random.PRNGKey(1), state)
    fitness = np.asarray(population["w"][:, 0])  # best: the largest first weight
    state, _ = strategy.tell(jax.random.PRNGKey(2), population, jnp.asarray(fitness), state)
    top = np.argsort(-fitness, kind="stable")[:2]
    leaves_equal(state.parents, jax.tree.map(lambda x: x[top], population))
    leaves_equal(strategy.solution(state), jax.tree.map(lambda x: x[top[0]], population))
    # and the elite's genome still decodes to it
    leaves_equal(el.genome.decode(el.strategies.elite_genome(state), TEMPLATE),
                 strategy.solution(state))


@pytest.mark.parametrize("name", (*STRATEGIES, *EVOSAX))
def test_tell_refuses_a_state_that_did_not_come_from_ask(name):
    strategy = loop_strategy(name)
    state = strategy.init(jax.random.PRNGKey(0), TEMPLATE)
    population, asked = strategy.ask(jax.random.PRNGKey(1), state)
    evaluation = el.Evaluation(jnp.zeros(6), jnp.zeros((6, 2)), jnp.ones(6, jnp.int32))
    with pytest.raises(ValueError, match="did not come from ask"):
        strategy.tell(jax.random.PRNGKey(2), population, evaluation, state,
                      evaluate=host_evaluate)
    told, _ = strategy.tell(jax.random.PRNGKey(2), population, evaluation, asked,
                            evaluate=host_evaluate)
    with pytest.raises(ValueError, match="did not come from ask"):  # told twice
        strategy.tell(jax.random.PRNGKey(2), population, evaluation, told,
                      evaluate=host_evaluate)


def test_a_tell_that_evaluates_must_report_its_steps():
    """make_train refuses a strategy whose tell calls evaluate without extra_steps."""
    inner = el.strategies.openai_es(4, 0.1)

    def tell(key, population, evaluation, state, evaluate=None):
        evaluate(key, population)  # an extra evaluation, not reported
        return inner.tell(key, population, evaluation, state)

    strategy = inner._replace(tell=tell)
    task = el.tasks.function(jax_fitness, behavior_size=2)
    trainer = el.make_train(task, None, strategy, generations=1, eval_episodes=0,
                            params=TEMPLATE, mesh=None)
    with pytest.raises(ValueError, match="extra_steps"):
        trainer(jax.random.PRNGKey(0))


def test_bounded_memory_never_holds_the_population():
    """With chunk_size the members are built from the state ask returned, chunk by chunk: the
    population ask also returns is unused and compiled away, so the compiled run's scratch
    memory stays far below one P x N array (measured: 39 MB against 205 MB here)."""
    n, p = 200_000, 256
    task = el.tasks.function(lambda key, params: -jnp.sum(params["x"] ** 2))
    strategy = el.strategies.openai_es(p, 0.1, chunk_size=8)
    trainer = el.make_train(task, None, strategy, generations=2, eval_episodes=0,
                            params={"x": jnp.zeros(n)}, chunk_size=8, mesh=None)
    compiled = jax.jit(lambda key: trainer(key)).lower(jax.random.PRNGKey(0)).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < p * n * 4 / 4
