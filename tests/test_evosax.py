"""el.strategies.from_evosax: evosax 0.3 algorithms as strategies in make_train.

Pinned here: the same means as evosax's own ask/eval/tell loop with make_train's keys (the
sign, the keys and evosax's params handled inside; 1 and 2 devices), CMA-ES solving a sphere,
checkpoint and resume bit for bit (and a resume by another algorithm refused), the CLI's
``--strategy evosax:<Algorithm>``, the maximization sign, NaN ranked worst, hyperparameter
overrides and the one-line errors."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("evosax")
import evosax.algorithms as ea  # noqa: E402

import evojax_lab as el  # noqa: E402
from evojax_lab import checkpoint as ckpt  # noqa: E402
from evojax_lab import cli, storage  # noqa: E402
from evojax_lab.strategies import registry  # noqa: E402
from evojax_lab.train import TELL_KEY  # noqa: E402

POP = 8
GENS = 3
TARGET = jnp.array([0.5, -1.0, 2.0, 0.25, -0.75], jnp.float32)
# A pytree of two leaves, so evosax's ravel/unravel of the solution template is exercised.
START = {"x": jnp.zeros(3, jnp.float32), "y": jnp.zeros(2, jnp.float32)}
KEY = jax.random.PRNGKey(11)


def loss(params):
    """The quadratic evosax minimizes; our task maximizes ``-loss``."""
    return jnp.sum((params["x"] - TARGET[:3]) ** 2) + jnp.sum((params["y"] - TARGET[3:]) ** 2)


TASK = el.tasks.function(lambda key, params: -loss(params), name="quadratic")


def make_keys(key, generations):
    """make_train's key schedule (evojax_lab/train.py), written out independently: the
    strategy key is the second of ``split(key, 3)``; generation ``g`` uses
    ``gen_key = fold_in(run_key, g)``, its ask key is the first of ``split(gen_key, 3)`` and
    its tell key ``fold_in(gen_key, TELL_KEY)``."""
    _, strategy_key, run_key = jax.random.split(key, 3)
    steps = []
    for g in range(generations):
        gen_key = jax.random.fold_in(run_key, g)
        steps.append((jax.random.split(gen_key, 3)[0], jax.random.fold_in(gen_key, TELL_KEY)))
    return strategy_key, steps


def evosax_means(algorithm, key, generations):
    """evosax's own loop (its jitted init/ask/tell, fitness = loss: minimized), the mean
    after every generation."""
    strategy_key, steps = make_keys(key, generations)
    params = algorithm.default_params
    state = algorithm.init(strategy_key, START, params)
    means = []
    for ask_key, tell_key in steps:
        population, state = algorithm.ask(ask_key, state, params)
        state, _ = algorithm.tell(tell_key, population, jax.vmap(loss)(population), state, params)
        means.append(algorithm.get_mean(state))
    return means


def adapter_means(strategy, key, generations):
    """The wrapped strategy driven by hand with the same keys (fitness = -loss)."""
    strategy_key, steps = make_keys(key, generations)
    state = strategy.init(strategy_key, START)
    means = []
    for ask_key, tell_key in steps:
        population, state = strategy.ask(ask_key, state)
        state, _ = strategy.tell(tell_key, population, -jax.vmap(loss)(population), state)
        means.append(strategy.solution(state))
    return means


def trainer_means(trainer, key, generations):
    """make_train, one generation per jitted block (blocks equal one call: test_train.py)."""
    carry = trainer.init(key)
    means = []
    for _ in range(generations):
        carry, _ = trainer.run(carry, 1)
        means.append(trainer.strategy.solution(carry.state))
    return means


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# Tolerance of make_train's means against evosax's own loop, and between 1 and 2 devices
# (values of order 1; sigma is 1, so a wrong key, sign or parameter moves the mean by O(1)).
# The adapter performs evosax's operations (checked bit for bit when driven step by step), but
# make_train compiles a whole generation (ask, evaluation, tell) as one XLA program, where
# evosax jits ask and tell apart, and the sharded program differs again from the one-device
# one: XLA fuses and orders some float32 sums differently, ~1 ulp per operation. Measured over
# 30 seeds on one CPU: OpenAI-ES and PGPE exact; SNES 2.4e-7 at most, so 1e-6. CMA-ES's
# covariance after the first generation differs in the last bit (< 1e-7) and the
# eigendecomposition in the next ask amplifies that by 1 / (eigenvalue gap), small because C
# starts at the identity: 2.2e-5 against evosax and 6.9e-6 between 1 and 2 devices at most
# after 3 generations, so 1e-4.
TOLERANCE = {"Open_ES": 1e-6, "PGPE": 1e-6, "SNES": 1e-6, "CMA_ES": 1e-4}


@pytest.fixture(scope="module", params=list(TOLERANCE))
def wrapped(request):
    """An evosax algorithm, its wrapped strategy, and make_train on 2 devices and on 1."""
    algorithm = getattr(ea, request.param)(population_size=POP, solution=START)
    strategy = el.strategies.from_evosax(algorithm)
    options = dict(generations=GENS, params=START, eval_episodes=0)
    sharded = el.make_train(TASK, None, strategy, **options)
    single = el.make_train(TASK, None, strategy, mesh=None, **options)
    return request.param, algorithm, strategy, sharded, single


def test_same_means_as_evosax_own_loop(wrapped):
    name, algorithm, strategy, sharded, single = wrapped
    assert sharded.mesh is not None and sharded.mesh.size == 2  # the default path is sharded
    reference = evosax_means(algorithm, KEY, GENS)
    # The adapter itself, with make_train's keys: evosax's numbers bit for bit.
    for ours, theirs in zip(adapter_means(strategy, KEY, GENS), reference, strict=True):
        assert_trees_equal(ours, theirs)
    # Through make_train on 2 devices and on 1: within the tolerance above.
    trained = trainer_means(sharded, KEY, GENS)
    for other in (reference, trainer_means(single, KEY, GENS)):
        for g, (ours, theirs) in enumerate(zip(trained, other, strict=True)):
            for x, y in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0,
                                           atol=TOLERANCE[name],
                                           err_msg=f"{name} generation {g}")
    # The test can fail: the mean moved by far more than the tolerance.
    moved = np.max(np.abs(np.asarray(trained[-1]["x"])))
    assert moved > 100 * TOLERANCE[name]


def test_cma_es_solves_a_10d_sphere():
    task = el.tasks.function(lambda key, x: -jnp.sum(x ** 2), name="sphere")
    strategy = el.strategies.from_evosax("CMA_ES", 16)
    trainer = el.make_train(task, None, strategy, generations=150,
                            params=jnp.full((10,), 3.0, jnp.float32), eval_episodes=0)
    result = trainer(jax.random.PRNGKey(0))
    assert float(jnp.sum(result.solution ** 2)) < 1e-6
    assert float(result.metrics["best_fitness"][-1]) > -1e-6  # maximized: -f


def test_larger_fitness_moves_the_mean_up():
    """Fitness sum(x) is larger for larger x: the mean of every wrapped ES must increase."""
    task = el.tasks.function(lambda key, x: jnp.sum(x), name="slope")
    for name in ("CMA_ES", "SNES", "PGPE"):
        strategy = el.strategies.make(f"evosax:{name}", pop_size=POP, sigma=0.5)
        trainer = el.make_train(task, None, strategy, generations=5,
                                params=jnp.zeros(4, jnp.float32), eval_episodes=0)
        result = trainer(jax.random.PRNGKey(1))
        assert np.all(np.asarray(result.solution) > 0), name
        assert np.all(np.diff(np.asarray(result.metrics["mean_fitness"])) > -1.0), name
    # Population-based (no mean): the best member of the GA's population climbs too.
    strategy = el.strategies.from_evosax("SimpleGA", POP, sigma=0.5)
    trainer = el.make_train(task, None, strategy, generations=5,
                            params=jnp.zeros(4, jnp.float32), eval_episodes=0)
    assert float(jnp.sum(trainer(jax.random.PRNGKey(1)).solution)) > 0


def test_nan_is_worst_and_an_all_nan_generation_changes_nothing():
    algorithm = ea.CMA_ES(population_size=POP, solution=START)
    strategy = el.strategies.from_evosax(algorithm)
    state = strategy.init(jax.random.PRNGKey(0), START)
    population, asked = strategy.ask(jax.random.PRNGKey(1), state)
    fitness = -jax.vmap(loss)(population)
    fitness = fitness.at[jnp.array([0, 3])].set(jnp.nan)
    told, metrics = strategy.tell(jax.random.PRNGKey(2), population, fitness, asked)
    # evosax got +inf for the NaNs (its worst) and -fitness for the others.
    minimized = jnp.where(jnp.isnan(fitness), jnp.inf, -fitness)
    expected, _ = algorithm.tell(jax.random.PRNGKey(2), population, minimized, asked.state,
                                 asked.params)
    assert_trees_equal(told.state.mean, expected.mean)
    assert_trees_equal(told.state.C, expected.C)
    assert int(metrics["num_nan"]) == 2
    assert float(metrics["best_fitness"]) == float(jnp.nanmax(fitness))
    # Every member NaN: no information, the state stays (only the counter advances).
    nan = jnp.full((POP,), jnp.nan)
    told, metrics = strategy.tell(jax.random.PRNGKey(2), population, nan, asked)
    assert int(told.state.generation_counter) == int(asked.state.generation_counter) + 1
    for field in ("mean", "std", "C", "p_std", "p_c"):
        np.testing.assert_array_equal(getattr(told.state, field), getattr(asked.state, field))
    assert np.isnan(float(metrics["best_fitness"])) and int(metrics["num_nan"]) == POP


def test_init_overrides_map_onto_evosax_params():
    strategy = el.strategies.from_evosax("CMA_ES", POP)
    key = jax.random.PRNGKey(0)
    assert float(strategy.init(key, START).params.std_init) == 1.0  # evosax's default
    assert float(strategy.init(key, START, std_init=0.3).params.std_init) == pytest.approx(0.3)
    assert float(strategy.init(key, START, sigma=0.3).params.std_init) == pytest.approx(0.3)
    assert float(strategy.init(key, START, sigma=0.3).state.std) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="CMA_ES has no hyperparameter bogus"):
        strategy.init(key, START, bogus=1.0)
    with pytest.raises(ValueError, match="sigma or std_init, not both"):
        strategy.init(key, START, sigma=0.3, std_init=0.2)
    # sigma of the factory: the default std_init (CMA-ES) or a constant std_schedule (OpenAI-ES).
    assert float(el.strategies.from_evosax("CMA_ES", POP, sigma=0.2).init(key, START)
                 .state.std) == pytest.approx(0.2)
    open_es = el.strategies.from_evosax("Open_ES", POP, sigma=0.2)
    assert float(open_es.init(key, START).state.std) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="std_schedule"):
        open_es.init(key, START, sigma=0.1)  # fixed at construction, not traceable
    # The solution is the mean as our pytree; the initial mean is the params given.
    assert_trees_equal(strategy.solution(strategy.init(key, START)), START)
    # A template that does not match the instance's is refused.
    instance = el.strategies.from_evosax(ea.SNES(population_size=POP, solution=START))
    with pytest.raises(ValueError, match="do not match the evosax SNES solution template"):
        instance.init(key, {"x": jnp.zeros(4)})


def test_a_sweep_traces_sigma():
    strategy = el.strategies.from_evosax("SNES", POP)
    trainer = el.make_train(TASK, None, strategy, generations=2, params=START, eval_episodes=0)
    swept = trainer.sweep(KEY, {"sigma": jnp.array([0.1, 1.0], jnp.float32)})
    assert swept.state.params.std_init.shape == (2,)
    single = trainer(KEY, {"sigma": jnp.float32(1.0)})
    np.testing.assert_allclose(np.asarray(swept.solution["x"][1]),
                               np.asarray(single.solution["x"]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(swept.solution["x"][0], swept.solution["x"][1])


def test_checkpoint_and_resume_bit_for_bit(tmp_path):
    strategy = el.strategies.from_evosax(ea.CMA_ES(population_size=POP, solution=START))
    trainer = el.make_train(TASK, None, strategy, generations=4, params=START, eval_episodes=0)
    reference = trainer(KEY)

    def stop_at_3(generation, metrics):
        if generation == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.run_with_checkpoints(trainer, KEY, tmp_path, every=2, block=1,
                                     loggers=[stop_at_3])
    assert storage.steps(tmp_path) == [2]
    record = storage.manifest(tmp_path)
    assert record["run"]["strategy"] == ("evojax_lab.strategies.evosax_adapter."
                                         "from_evosax[evosax.CMA_ES]")
    result = storage.run_with_checkpoints(trainer, KEY, tmp_path, every=2, block=1)
    assert_trees_equal(result.state, reference.state)
    assert_trees_equal(result.metrics, reference.metrics)
    assert_trees_equal(result.solution, reference.solution)
    # Another evosax algorithm (same population size and parameters) cannot resume it.
    other = el.strategies.from_evosax(ea.SNES(population_size=POP, solution=START))
    snes = el.make_train(TASK, None, other, generations=4, params=START, eval_episodes=0)
    with pytest.raises(ckpt.CheckpointError, match=r"CMA_ES.*SNES"):
        storage.run_with_checkpoints(snes, KEY, tmp_path, every=2, block=1)


def test_registry_names_and_run_config_round_trip():
    settings = registry.settings("evosax:CMA_ES")
    assert settings == dict(pop_size=64, sigma=None, generations=100, episodes=1,
                            hidden=(32, 32))
    assert "sigma" not in registry.settings("evosax:GradientlessDescent")  # no std to set
    assert "evosax:CMA_ES" not in el.strategies.names()  # only the registered ones
    config = el.runs.RunConfig.resolve("CartPole-v1", "evosax:CMA_ES", pop_size=8, sigma=0.5)
    again = el.runs.RunConfig.from_json(config.to_json())
    assert again == config and again.strategy == "evosax:CMA_ES"
    assert again.settings["sigma"] == 0.5
    strategy = el.strategies.make("evosax:CMA_ES", pop_size=8, sigma=0.5)
    assert strategy.pop_size == 8
    state = strategy.init(jax.random.PRNGKey(0), START)
    assert float(state.params.std_init) == 0.5
    with pytest.raises(ValueError, match="evosax:CMA_ES has no setting or keyword bogus"):
        el.strategies.make("evosax:CMA_ES", bogus=1)
    with pytest.raises(ValueError, match="unknown evosax algorithm 'CMAES'; did you mean"):
        el.strategies.make("evosax:CMAES")
    with pytest.raises(ValueError, match="Population size must be even"):
        el.strategies.make("evosax:Open_ES", pop_size=7)
    # Constructor keywords pass through.
    made = el.strategies.make("evosax:Open_ES", pop_size=4, use_antithetic_sampling=False)
    population, _ = made.ask(jax.random.PRNGKey(1), made.init(jax.random.PRNGKey(0), START))
    assert not np.allclose(population["x"][0], -population["x"][2])


def test_missing_evosax_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "evosax", None)
    monkeypatch.setitem(sys.modules, "evosax.algorithms", None)
    with pytest.raises(ImportError, match=r"pip install 'evojax_lab\[evosax\]'") as err:
        el.strategies.from_evosax("CMA_ES", POP)
    assert "\n" not in str(err.value)


def _cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_trains_resumes_and_refuses_an_unknown_algorithm(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--eval-episodes", "1", "--final-episodes", "2", "--no-progress"]
    code, _, err = _cli(["train", "--strategy", "evosax:CMA_ES", "--pop-size", "8",
                         "--generations", "2", "--hidden", "4", "--log-every", "1",
                         "--checkpoint-every", "1", "--run-dir", str(run), *common], capsys)
    assert code == 0, err
    for name in ("config.json", "metrics.jsonl", "params.msgpack", "summary.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "evosax:CMA_ES" and config["pop_size"] == 8
    first = (run / "metrics.jsonl").read_text().splitlines()
    assert len(first) == 2
    # Resume to 4 generations: the first two rows stay, two more follow.
    code, _, err = _cli(["train", "--resume", str(run), "--generations", "4", "--no-progress"],
                        capsys)
    assert code == 0, err
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert rows[:2] == first and [json.loads(r)["generation"] for r in rows] == [1, 2, 3, 4]
    # ... and ends where an uninterrupted 4-generation run ends.
    loaded = el.load_run(run)
    assert loaded.generation == 4
    config4 = {**config, "generations": 4}
    trainer = el.runs.build(config4)[3]
    assert_trees_equal(loaded.solution, trainer(jax.random.PRNGKey(0)).solution)
    # An unknown algorithm: one line, exit 2, no folder.
    code, _, err = _cli(["train", "--strategy", "evosax:NoSuch", "--run-dir",
                         str(tmp_path / "no"), *common], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "unknown evosax algorithm 'NoSuch'" in err
    assert "CMA_ES" in err and not (tmp_path / "no").exists()
