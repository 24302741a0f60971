"""make_train: one jitted run; no recompilation across hyperparameters (counted with JAX's own
trace events); sweeps; blocks; eager; the mesh inside an outer transformation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.core.compiles import count_compilations

POP = 8
GENS = 3
MAX_STEPS = 20
KEY = jax.random.PRNGKey(0)
METRICS = ("best_fitness", "mean_fitness", "solution_fitness", "steps", "num_nan")


def hp(sigma=0.1, learning_rate=0.01):
    # float32 arrays (not Python floats): the same avals as one element of a vmapped sweep.
    return {"sigma": jnp.float32(sigma), "learning_rate": jnp.float32(learning_rate)}


def make_trainer(mesh="auto"):
    task = el.tasks.make("CartPole-v1", max_steps=MAX_STEPS)
    policy = el.policies.for_task(task, hidden=(8,))
    strategy = el.strategies.openai_es(POP, sigma=0.1)
    return el.make_train(task, policy, strategy, generations=GENS, eval_episodes=2, mesh=mesh)


def leaves_close(a, b, atol):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def leaves_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def trainer():
    """Only ever called as ``trainer(key, hp(...))`` (one trace) in this module."""
    return make_trainer()


@pytest.fixture(scope="module")
def traced():
    """The trace events of the module's first ``trainer(KEY, hp())`` call."""
    return {}


@pytest.fixture(scope="module")
def result(trainer, traced):
    with count_compilations() as seen:
        out = jax.block_until_ready(trainer(KEY, hp()))
    traced["first_call"] = seen.traced("train_run")
    return out


def test_metrics_shapes_and_consistency(result):
    m = {k: np.asarray(v) for k, v in result.metrics.items()}
    for name in METRICS:
        assert name in m, name
        assert m[name].shape == (GENS,), name
    np.testing.assert_array_equal(m["num_nan"], 0)
    assert np.all(m["mean_fitness"] <= m["best_fitness"])
    # CartPole pays 1 per step, so a member's fitness is its episode length (<= MAX_STEPS) ...
    assert np.all((m["best_fitness"] >= 1) & (m["best_fitness"] <= MAX_STEPS))
    assert np.all((m["solution_fitness"] >= 1) & (m["solution_fitness"] <= MAX_STEPS))
    # one episode per member: a whole number of steps; the solution's mean of 2 episodes: a
    # multiple of 1/2 (a discounted, rescaled or per-step-averaged return is neither)
    np.testing.assert_array_equal(m["best_fitness"], np.round(m["best_fitness"]))
    np.testing.assert_array_equal(2 * m["solution_fitness"], np.round(2 * m["solution_fitness"]))
    # ... and the cumulative step count grows by POP * mean episode length each generation.
    increments = np.diff(np.concatenate([[0.0], m["steps"]]))
    np.testing.assert_allclose(increments, POP * m["mean_fitness"], rtol=1e-6)
    np.testing.assert_array_equal(m["generation"], np.arange(1, GENS + 1))
    np.testing.assert_allclose(m["sigma"], 0.1, rtol=1e-7)
    # The solution is the final mean.
    leaves_equal(result.solution, result.state.mean)
    assert int(result.state.generation) == GENS


def test_same_key_same_run_and_no_recompilation(trainer, result, traced):
    assert traced["first_call"] == 1  # the first call traced the run (the counter sees it)
    # (arguments built first: eager array operations are traced programs of their own)
    args = [(KEY, hp()), (jax.random.PRNGKey(1), hp()), (KEY, hp(sigma=0.05)),
            (KEY, hp(learning_rate=0.05))]
    with count_compilations() as seen:
        again, other_key, other_sigma, other_lr = [trainer(*a) for a in args]
        jax.block_until_ready((again, other_key, other_sigma, other_lr))
    assert seen.traced("train_run") == 0  # new keys and hyperparameter values reuse the program
    assert seen.traces == 0  # and nothing else was traced either
    leaves_equal(again, result)
    np.testing.assert_allclose(other_sigma.metrics["sigma"], 0.05, rtol=1e-7)
    np.testing.assert_allclose(
        other_lr.state.opt_state.hyperparams["learning_rate"], 0.05, rtol=1e-7
    )
    w0 = np.asarray(result.solution["params"]["Dense_0"]["kernel"])
    for run in (other_key, other_sigma, other_lr):
        assert not np.allclose(np.asarray(run.solution["params"]["Dense_0"]["kernel"]), w0)


def test_vmap_sweep_equals_individual_runs(trainer, result):
    del result  # the single-run program is traced first
    sigmas = jnp.array([0.05, 0.1, 0.2], jnp.float32)
    lrs = jnp.array([0.01, 0.03, 0.01], jnp.float32)
    with count_compilations() as first:
        sweep = trainer.sweep(KEY, {"sigma": sigmas, "learning_rate": lrs})
    assert first.traced("train_run") == 1  # one trace for the whole sweep
    other = {"sigma": sigmas * 2, "learning_rate": lrs / 2}
    with count_compilations() as seen:
        again = trainer.sweep(KEY, other)
    assert seen.traces == 0  # new values reuse the sweep's program
    assert not np.allclose(np.asarray(again.metrics["sigma"]), np.asarray(sweep.metrics["sigma"]))
    # A user's own jit(vmap(train)) runs sharded when the trainer's mesh is set around it ...
    assert trainer.mesh is not None and trainer.mesh.size == 2  # conftest: 2 host devices
    user_fn = jax.jit(jax.vmap(lambda s, lr: trainer(KEY, {"sigma": s, "learning_rate": lr})))
    with jax.set_mesh(trainer.mesh):
        user = user_fn(sigmas, lrs)
    leaves_close(user, sweep, atol=1e-5)
    # ... and without it the trainer says why instead of quietly running unsharded.
    with pytest.raises(ValueError, match="set_mesh"):
        user_fn(sigmas, lrs)
    for name in METRICS:
        assert sweep.metrics[name].shape == (3, GENS)
    np.testing.assert_allclose(sweep.metrics["sigma"][:, 0], sigmas)
    for i in range(3):
        single = trainer(KEY, hp(float(sigmas[i]), float(lrs[i])))
        leaves_close(jax.tree.map(lambda x, i=i: x[i], sweep), single, atol=1e-5)


def test_blocks_equal_one_call_bit_for_bit(result):
    blocks = make_trainer()  # its own instance: ``run`` is a second traced program
    carry = blocks.init(KEY, hp())
    metrics = []
    carry, m = blocks.run(carry, 1)
    metrics.append(m)
    with count_compilations() as seen:
        for _ in range(GENS - 1):
            carry, m = blocks.run(carry, 1)
            metrics.append(m)
    assert seen.traced("run_generations") == 0  # run(carry, 1) compiled once, reused by all
    assert int(carry.generation) == GENS
    leaves_equal(blocks.result(carry, metrics), result)


def test_eager_generations_equal_the_jitted_run(result):
    # The whole run jitted vs. the same generations dispatched op by op, outside any jit (and
    # so without a mesh: eager arrays live on one device).
    eager = make_trainer(mesh=None)
    metrics = []
    with jax.disable_jit():
        carry = eager.init(KEY, hp())
        for _ in range(GENS):
            carry, m = eager.step(carry)
            metrics.append(m)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)
    leaves_close(stacked, result.metrics, atol=1e-5)
    leaves_close(carry.state, result.state, atol=1e-5)
    leaves_close(eager.strategy.solution(carry.state), result.solution, atol=1e-5)


@pytest.mark.parametrize(
    "kw,match",
    [({"generations": 0}, "generations"), ({"episodes": 0}, "episodes"),
     ({"eval_episodes": -1}, "eval_episodes")],
)
def test_bad_arguments_raise(kw, match):
    task = el.tasks.make("CartPole-v1", max_steps=MAX_STEPS)
    policy = el.policies.for_task(task, hidden=(8,))
    args = {"generations": 1, **kw}
    with pytest.raises(ValueError, match=match):
        el.make_train(task, policy, el.strategies.openai_es(POP), **args)


def test_record_keeps_every_members_fitness_and_behavior():
    """record= keeps each generation's per-member results; they match an independent
    re-evaluation of the same populations (fitness = -||x||^2, behavior = x)."""

    def fn(key, params):
        return -jnp.sum(params["x"] ** 2), params["x"]

    task = el.tasks.function(fn, behavior_size=3)
    strategy = el.strategies.openai_es(6, sigma=0.5)
    params = {"x": jnp.ones(3)}
    trainer = el.make_train(task, None, strategy, generations=2, params=params,
                            eval_episodes=0, record=("fitness", "behavior"))
    result = trainer(KEY)
    fit, beh = result.metrics["population_fitness"], result.metrics["population_behavior"]
    assert fit.shape == (2, 6) and beh.shape == (2, 6, 3)
    behaviors = np.asarray(beh)
    np.testing.assert_allclose(np.asarray(fit), -np.sum(behaviors**2, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(result.metrics["best_fitness"]),
                               np.max(np.asarray(fit), axis=1), rtol=1e-6)
    # Generation 0's members are the initial mean +/- sigma * eps (mirrored pairs).
    np.testing.assert_allclose(behaviors[0, :3] + behaviors[0, 3:], 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown field"):
        el.make_train(task, None, strategy, generations=1, params=params, record=("novelty",))


def test_params_function_gives_each_seed_its_own_start_and_vmaps_over_seeds():
    """params=f(key) is called with the run's init key (the first of split(key, 3)); vmapping
    the trainer over seeds equals running each seed with its own start."""

    def fn(key, params):
        return -jnp.sum(params["x"] ** 2), params["x"]

    def start(key):
        return {"x": jax.random.normal(key, (3,))}

    task = el.tasks.function(fn, behavior_size=3)
    strategy = el.strategies.openai_es(4, sigma=0.1)
    kw = dict(generations=2, eval_episodes=0, record=("behavior",))
    by_function = el.make_train(task, None, strategy, params=start, **kw)
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
    with jax.set_mesh(by_function.mesh):
        batched = jax.vmap(by_function)(keys)
    for i in range(2):
        init_key = jax.random.split(keys[i], 3)[0]
        x0 = np.asarray(start(init_key)["x"])
        fixed = el.make_train(task, None, strategy, params=start(init_key), **kw)(keys[i])
        beh = np.asarray(batched.metrics["population_behavior"][i])
        np.testing.assert_allclose(beh, np.asarray(fixed.metrics["population_behavior"]),
                                   rtol=0, atol=1e-6)
        # Generation 0's mirrored pairs are centred on this seed's own start.
        np.testing.assert_allclose((beh[0, :2] + beh[0, 2:]) / 2, np.stack([x0, x0]), atol=1e-5)
