"""el.strategies.make: strategies by name, their settings (defaults < task preset < config),
the capacities sized from ``generations``, factory keywords passed through, and one-line errors.

Expected strategies are built by hand with the factories (an independent path) and compared
by what they do: the population ``ask`` draws and the state ``tell`` returns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.strategies import registry

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6)}


def run_one_generation(strategy):
    """ask, a fitness computed by hand (-sum w^2 per member), tell: the arrays produced."""
    state = strategy.init(jax.random.PRNGKey(0), PARAMS)
    population, state = strategy.ask(jax.random.PRNGKey(1), state)
    fitness = -jnp.sum(population["w"] ** 2, axis=1)
    state, _ = strategy.tell(jax.random.PRNGKey(2), population, fitness, state)
    return population, strategy.solution(state)


def assert_same_generation(a, b):
    for x, y in zip(jax.tree.leaves(run_one_generation(a)), jax.tree.leaves(run_one_generation(b)),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_names_are_every_strategy():
    assert el.strategies.names() == ("openai_es", "deep_ga", "random_search", "ns_es",
                                     "nsr_es", "nsra_es", "ga_ns")


def test_defaults_then_preset_then_config():
    assert registry.settings("openai_es")["sigma"] == 0.02
    preset = registry.settings("openai_es", "CartPole-v1")
    assert (preset["sigma"], preset["learning_rate"], preset["generations"]) == (0.05, 0.03, 50)
    assert registry.settings("openai_es", "CartPole-v1", sigma=0.1)["sigma"] == 0.1
    task = el.tasks.make("CartPole-v1")  # a task object selects its preset by name
    assert registry.settings("openai_es", task) == preset
    assert registry.settings("openai_es", "Acrobot-v1") == registry.settings("openai_es")


def test_make_equals_the_factory_with_the_preset():
    made = el.strategies.make("openai_es", "CartPole-v1", pop_size=8)
    by_hand = el.strategies.openai_es(8, 0.05, learning_rate=0.03)
    assert_same_generation(made, by_hand)
    other = el.strategies.openai_es(8, 0.05, learning_rate=0.01)  # the comparison can fail
    with pytest.raises(AssertionError):
        assert_same_generation(made, other)


def test_factory_keywords_pass_through():
    made = el.strategies.make("openai_es", pop_size=4, noise=el.noise.table(1_000, seed=3))
    state = made.init(jax.random.PRNGKey(0), PARAMS)
    assert state.noise.shape == (1_000,)
    assert_same_generation(made, el.strategies.openai_es(4, 0.02, learning_rate=0.01,
                                                         noise=el.noise.table(1_000, seed=3)))


def test_capacities_come_from_generations_unless_given():
    ga = el.strategies.make("deep_ga", pop_size=8, truncation=2, generations=7)
    genomes = ga.init(jax.random.PRNGKey(0), PARAMS).parent_genomes
    assert genomes.seeds.shape == (2, 8)  # generations + 1 seeds
    ga = el.strategies.make("deep_ga", pop_size=8, truncation=2, genome_capacity=3)
    assert ga.init(jax.random.PRNGKey(0), PARAMS).parent_genomes.seeds.shape == (2, 3)
    ns = el.strategies.make("nsr_es", pop_size=4, agents=2, generations=5, behavior_size=2)
    assert ns.init(jax.random.PRNGKey(0), PARAMS).archive.behaviors.shape == (7, 2)


def test_novelty_strategies_take_the_behavior_size_of_a_task():
    maze = el.tasks.make("hard_maze")
    ns = el.strategies.make("ns_es", maze, pop_size=4, agents=2, generations=3)
    state = ns.init(jax.random.PRNGKey(0), PARAMS)
    assert state.archive.behaviors.shape[1] == maze.behavior_size == 2


@pytest.mark.parametrize("name, config, message", [
    ("nope", {}, "unknown strategy 'nope'; choose from openai_es, deep_ga"),
    ("openai_es", {"truncation": 3}, "openai_es has no setting or keyword truncation"),
    ("ns_es", {}, "ns_es needs a behavior descriptor"),
    ("ga_ns", {"behavior_size": 0}, "ga_ns needs a behavior descriptor .* got behavior_size 0"),
    ("openai_es", {"behavior_size": 2}, "openai_es takes no behavior_size"),
    ("ns_es", {"num_agents": 3, "behavior_size": 2}, "give 'agents', not 'num_agents'"),
])
def test_bad_requests_raise_one_line(name, config, message):
    with pytest.raises(ValueError, match=message) as err:
        el.strategies.make(name, **config)
    assert "\n" not in str(err.value)


def test_settings_refuse_an_unknown_override():
    with pytest.raises(ValueError, match="deep_ga has no setting agents; its settings are"):
        registry.settings("deep_ga", agents=3)
