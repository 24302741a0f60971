"""OpenAI-ES: golden values re-computed in NumPy (REFERENCE section 1), structure, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import evojax_lab as el
from evojax_lab.core import noise

SIGMA = 0.1
KEY = jax.random.PRNGKey(7)
TELL_KEY = jax.random.PRNGKey(8)  # tell's own key: the noise comes from the state ask returned


# ------------------------------------------------------------------------ NumPy references
def np_centered_rank(fitness):
    """u = rank/(P-1) - 0.5, ranks ascending, tied values at their average rank, NaN below
    everything and tied with NaN (REFERENCE section 1, by hand)."""
    f = np.asarray(fitness, np.float64)
    p = len(f)
    key = [(0, 0.0) if np.isnan(x) else (1, x) for x in f]
    ranks = np.array([sum(k < key[i] for k in key) + (key.count(key[i]) - 1) / 2
                      for i in range(p)])
    return ranks / (p - 1) - 0.5


def np_es_step(params, population, fitness, sigma, weight_decay):
    """theta' = theta + g - wd * theta with g = (1/P) sum_i u_i eps_i, in float64.

    ``eps_i`` is recovered from the float32 population as ``(pop_i - theta) / sigma``: the
    subtraction is exact in float64, so the only error left is the float32 rounding of
    ``theta + sigma * eps`` when ``ask`` built the population (<= ulp(theta)/sigma per entry,
    and averaged by the 1/P sum). ``sigma`` is the float32 value the state holds.
    """
    u = np_centered_rank(fitness)
    p = len(u)
    sigma = np.float64(np.float32(sigma))
    wd = np.float64(np.float32(weight_decay))
    out, grads = {}, {}
    for name, theta in params.items():
        theta = np.asarray(theta, np.float64)
        eps = (np.asarray(population[name], np.float64) - theta[None]) / sigma
        g = np.tensordot(u, eps, axes=1) / p
        grads[name] = g
        out[name] = theta + g - wd * theta
    return out, grads


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(3, 2)) * 0.5, jnp.float32),
        "b": jnp.asarray(rng.normal(size=(4,)) * 0.5, jnp.float32),
    }


def evaluation(fitness):
    fitness = jnp.asarray(fitness, jnp.float32)
    p = fitness.shape[0]
    return el.Evaluation(fitness, jnp.zeros((p, 0)), jnp.ones(p, jnp.int32))


def tie_fitness(p, seed=1):
    """Integer fitness with plenty of ties (exercises the tie-breaking order)."""
    return np.random.default_rng(seed).integers(0, 4, size=p).astype(np.float32)


def assert_tree_close(actual, expected, atol=1e-6):
    assert set(actual) == set(expected)
    for name in expected:
        np.testing.assert_allclose(
            np.asarray(actual[name], np.float64), expected[name], rtol=0, atol=atol, err_msg=name
        )


class Jitted:
    """A strategy's ask/tell/member jitted once (compile time dominates on CPU)."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.ask = jax.jit(strategy.ask)
        self.tell = jax.jit(strategy.tell)
        self.member = jax.jit(strategy.member)


_CACHE = {}


def es(pop_size, mirrored=True, chunk_size=None, noise=None):
    """Jitted strategies shared between tests (same configuration -> same compiled code)."""
    k = (pop_size, mirrored, chunk_size, noise)
    if k not in _CACHE:
        _CACHE[k] = Jitted(
            el.strategies.openai_es(
                pop_size, SIGMA, optax.sgd(1.0), mirrored=mirrored, chunk_size=chunk_size,
                noise=noise,
            )
        )
    return _CACHE[k]


# ------------------------------------------------------------------------ golden tell
CONFIGS = [
    pytest.param(True, 10, None, id="mirrored"),  # 5 pairs
    pytest.param(False, 7, None, id="plain"),
    pytest.param(True, 10, 3, id="mirrored-chunk3"),
    pytest.param(False, 7, 3, id="plain-chunk3"),
]


@pytest.mark.parametrize("weight_decay", [0.0, 0.005])
@pytest.mark.parametrize("mirrored,pop_size,chunk_size", CONFIGS)
def test_tell_matches_numpy(mirrored, pop_size, chunk_size, weight_decay):
    s = es(pop_size, mirrored, chunk_size=chunk_size)
    params = make_params()
    state = s.strategy.init(KEY, params, weight_decay=weight_decay)
    ask_key = jax.random.fold_in(KEY, 1)
    population, state = s.ask(ask_key, state)
    for name in params:
        assert population[name].shape == (pop_size, *params[name].shape)
        assert population[name].dtype == jnp.float32
    fitness = tie_fitness(pop_size)
    new_state, metrics = s.tell(TELL_KEY, population, evaluation(fitness), state)

    expected, grads = np_es_step(params, population, fitness, SIGMA, weight_decay)
    assert_tree_close(new_state.mean, expected)
    assert_tree_close(s.strategy.solution(new_state), expected)
    assert int(new_state.generation) == 1
    # The step really moved the mean (a no-op update would not match the golden anyway).
    assert max(np.abs(expected[n] - np.asarray(params[n])).max() for n in params) > 1e-3

    g_flat = np.concatenate([grads[n].ravel() for n in sorted(grads)])
    np.testing.assert_allclose(float(metrics["grad_norm"]), np.linalg.norm(g_flat), rtol=1e-5)
    assert float(metrics["best_fitness"]) == fitness.max()
    np.testing.assert_allclose(float(metrics["mean_fitness"]), fitness.mean(), rtol=1e-6)
    assert int(metrics["num_nan"]) == 0
    np.testing.assert_allclose(float(metrics["sigma"]), SIGMA, rtol=1e-7)


def test_two_generations_match_numpy():
    s = es(10)
    params = make_params(4)
    state = s.strategy.init(KEY, params)
    expected = {n: np.asarray(v, np.float64) for n, v in params.items()}
    for gen in range(2):
        k = jax.random.fold_in(KEY, gen)
        population, state = s.ask(k, state)
        fitness = tie_fitness(10, seed=gen)
        mean = {n: np.asarray(v) for n, v in state.mean.items()}
        step, _ = np_es_step(mean, population, fitness, SIGMA, 0.005)
        state, _ = s.tell(jax.random.fold_in(TELL_KEY, gen), population, evaluation(fitness),
                          state)
        assert_tree_close(state.mean, step)
        expected = step
    assert int(state.generation) == 2
    assert_tree_close(state.mean, expected)


# ------------------------------------------------------------------------ structure
def test_mirrored_population_is_symmetric_about_the_mean():
    s = es(10)
    params = make_params()
    state = s.strategy.init(KEY, params)
    population, _ = s.ask(KEY, state)
    n = 5
    for name, theta in params.items():
        theta = np.asarray(theta, np.float64)
        d = np.asarray(population[name], np.float64) - theta[None]
        np.testing.assert_allclose(d[:n], -d[n:], rtol=0, atol=1e-7)
        # The n perturbations are distinct and of size ~sigma.
        flat = d[:n].reshape(n, -1)
        assert np.linalg.matrix_rank(flat) == min(flat.shape)
        assert 0.02 < np.abs(flat).mean() / SIGMA < 3.0


def test_plain_population_is_not_mirrored():
    s = es(7, mirrored=False)
    params = make_params()
    population, _ = s.ask(KEY, s.strategy.init(KEY, params))
    d = np.asarray(population["b"], np.float64) - np.asarray(params["b"])[None]
    assert not np.allclose(d[:3], -d[3:6], atol=1e-3)


@pytest.mark.parametrize("mirrored,pop_size", [(True, 10), (False, 7)])
def test_member_equals_ask(mirrored, pop_size):
    s = es(pop_size, mirrored)
    population, state = s.ask(KEY, s.strategy.init(KEY, make_params(2)))
    for i in range(pop_size):
        one = s.member(state, i)
        for name in population:
            np.testing.assert_allclose(one[name], population[name][i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("source", [None, noise.table(size=1000)])
def test_pair_equals_its_two_members(source):
    """pair(state, j) = [member(state, j), member(state, j + P/2)], in OpenAI-ES and in NSR-ES
    (members of its current agent): bit for bit with a table (a window is a slice); with fold-in
    noise XLA fuses the normal's arithmetic into a different program, so up to float32 rounding
    of eps (sigma x a few ulps of eps, < 1e-7 here)."""
    strategies = [el.strategies.openai_es(10, SIGMA, noise=source),
                  el.strategies.nsr_es(10, SIGMA, behavior_size=2, num_agents=2, noise=source,
                                       agent_init=lambda key, _: make_params(3))]
    for strategy in strategies:
        _, state = strategy.ask(KEY, strategy.init(KEY, make_params(2)))
        pairs = jax.jit(jax.vmap(strategy.pair, (None, 0)))(state, jnp.arange(5))
        members = jax.jit(jax.vmap(strategy.member, (None, 0)))(state, jnp.arange(10))
        atol = 0.0 if source is not None else 1e-7
        for name in members:
            for sign in (0, 1):
                np.testing.assert_allclose(np.asarray(pairs[name][:, sign]),
                                           np.asarray(members[name][5 * sign:5 * sign + 5]),
                                           rtol=0, atol=atol)
    assert el.strategies.openai_es(7, SIGMA, mirrored=False).pair is None


def test_ask_is_deterministic_in_key():
    s = es(10)
    state = s.strategy.init(KEY, make_params())
    a, _ = s.ask(KEY, state)
    b, _ = s.ask(KEY, state)
    c, _ = s.ask(jax.random.fold_in(KEY, 9), state)
    np.testing.assert_array_equal(a["w"], b["w"])
    assert not np.allclose(a["w"], c["w"])


@pytest.mark.parametrize("mirrored,pop_size", [(True, 10), (False, 7)])
def test_chunked_tell_equals_unchunked(mirrored, pop_size):
    # 5 pairs (or 7 members) in chunks of 3: the last chunk is padded.
    full, chunked = es(pop_size, mirrored), es(pop_size, mirrored, chunk_size=3)
    params = make_params(6)
    population, state = full.ask(KEY, full.strategy.init(KEY, params))
    fitness = np.random.default_rng(8).normal(size=pop_size).astype(np.float32)
    a, ma = full.tell(TELL_KEY, population, evaluation(fitness), state)
    b, mb = chunked.tell(TELL_KEY, population, evaluation(fitness), state)
    assert_tree_close(b.mean, {n: np.asarray(v, np.float64) for n, v in a.mean.items()})
    np.testing.assert_allclose(float(mb["grad_norm"]), float(ma["grad_norm"]), rtol=1e-6)


def test_sigma_override_scales_the_perturbations():
    s = es(10)
    params = make_params()
    a, _ = s.ask(KEY, s.strategy.init(KEY, params))
    b, _ = s.ask(KEY, s.strategy.init(KEY, params, sigma=0.25))
    for name, theta in params.items():
        theta = np.asarray(theta, np.float64)
        eps_a = (np.asarray(a[name], np.float64) - theta) / np.float32(SIGMA)
        eps_b = (np.asarray(b[name], np.float64) - theta) / 0.25
        np.testing.assert_allclose(eps_a, eps_b, rtol=0, atol=1e-5)


def test_traced_hyperparameters_reach_adam():
    # sigma, learning_rate and weight_decay are traced (vmapped) through init/ask/tell of the
    # default optimizer. Adam's first step is -lr * m/(sqrt(v) + eps) with m = grad and
    # v = grad^2 after bias correction: theta - lr * grad / (|grad| + 1e-8) for the minimized
    # grad = -g + wd * theta.
    strategy = el.strategies.openai_es(10, SIGMA)
    params = make_params(9)
    fitness = tie_fitness(10, seed=4)

    @jax.jit
    @jax.vmap
    def step(sigma, lr, wd):
        state = strategy.init(KEY, params, sigma=sigma, learning_rate=lr, weight_decay=wd)
        population, state = strategy.ask(KEY, state)
        return population, strategy.tell(TELL_KEY, population, jnp.asarray(fitness), state)[0]

    sigmas, lrs, wds = [0.05, 0.2], [0.3, 0.02], [0.0, 0.01]
    populations, states = step(jnp.array(sigmas), jnp.array(lrs), jnp.array(wds))
    np.testing.assert_allclose(states.sigma, sigmas)
    np.testing.assert_allclose(states.opt_state.hyperparams["learning_rate"], lrs)
    for k, (sigma, lr, wd) in enumerate(zip(sigmas, lrs, wds, strict=True)):
        population = {n: v[k] for n, v in populations.items()}
        _, grads = np_es_step(params, population, fitness, sigma, 0.0)
        for name, theta in params.items():
            theta = np.asarray(theta, np.float64)
            eps = (np.asarray(population[name], np.float64) - theta) / np.float32(sigma)
            assert 0.05 < np.abs(eps).mean() < 3.0  # the spread really is sigma
            grad = -grads[name] + np.float32(wd) * theta
            expected = theta - lr * grad / (np.abs(grad) + 1e-8)
            np.testing.assert_allclose(states.mean[name][k], expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------ table noise
def test_table_noise_end_to_end():
    source = noise.table(size=2000, seed=0)
    s = es(10, noise=source)
    params = make_params(11)
    state = s.strategy.init(KEY, params)
    table = np.asarray(state.noise)
    assert table.shape == (2000,) and table.dtype == np.float32
    population, asked = s.ask(KEY, state)
    # Each perturbation is table[o : o + N] at the offset of its pair.
    dim = 10
    leaves = sorted(params)  # ravel order of a dict: sorted keys
    flat_pop = np.concatenate(
        [np.asarray(population[n], np.float64).reshape(10, -1) for n in leaves], axis=1
    )
    flat_theta = np.concatenate([np.asarray(params[n], np.float64).ravel() for n in leaves])
    eps = (flat_pop - flat_theta) / np.float32(SIGMA)
    offsets = [int(noise.offset(source, KEY, i, dim)) for i in range(5)]
    assert len(set(offsets)) == 5
    for i, o in enumerate(offsets):
        np.testing.assert_allclose(eps[i], table[o : o + dim], rtol=0, atol=1e-5)
        np.testing.assert_allclose(eps[i + 5], -table[o : o + dim], rtol=0, atol=1e-5)
    fitness = tie_fitness(10, seed=2)
    new_state, _ = s.tell(TELL_KEY, population, evaluation(fitness), asked)
    expected, _ = np_es_step(params, population, fitness, SIGMA, 0.005)
    assert_tree_close(new_state.mean, expected)
    np.testing.assert_array_equal(np.asarray(new_state.noise), table)


def test_learns_a_quadratic_with_table_noise():
    source = noise.table(size=1000, seed=3)
    target = {"w": jnp.full((3, 2), 0.7), "b": jnp.linspace(-1.0, 1.0, 4)}
    strategy = el.strategies.openai_es(
        16, 0.1, learning_rate=0.05, weight_decay=0.0, noise=source, chunk_size=3
    )

    def loss(params):
        return sum(jnp.sum((params[n] - target[n]) ** 2) for n in target)

    @jax.jit
    def run(key):
        state = strategy.init(key, jax.tree.map(jnp.zeros_like, target))

        def gen(state, k):
            population, state = strategy.ask(k, state)
            fitness = -jax.vmap(loss)(population)
            return strategy.tell(jax.random.fold_in(k, 1), population, fitness, state)

        state, metrics = jax.lax.scan(gen, state, jax.random.split(key, 60))
        return strategy.solution(state), metrics

    solution, metrics = run(KEY)
    start = float(loss(jax.tree.map(jnp.zeros_like, target)))
    assert float(loss(solution)) < 0.1 * start
    assert metrics["best_fitness"].shape == (60,)
    assert float(metrics["mean_fitness"][-5:].mean()) > float(metrics["mean_fitness"][:5].mean())


# ------------------------------------------------------------------------ NaN fitness
def test_nan_fitness_gets_the_worst_rank_and_is_counted():
    s = es(10)
    params = make_params(12)
    population, state = s.ask(KEY, s.strategy.init(KEY, params))
    fitness = np.random.default_rng(13).normal(size=10).astype(np.float32)
    fitness[[2, 7]] = np.nan
    fitness[4] = -np.inf  # a NaN still ranks below -inf
    new_state, metrics = s.tell(TELL_KEY, population, evaluation(fitness), state)
    assert int(metrics["num_nan"]) == 2
    finite = fitness[~np.isnan(fitness)]
    assert float(metrics["best_fitness"]) == finite.max()
    for name in params:
        assert np.all(np.isfinite(np.asarray(new_state.mean[name])))
    expected, _ = np_es_step(params, population, fitness, SIGMA, 0.005)
    assert_tree_close(new_state.mean, expected)
    assert np.isfinite(float(metrics["grad_norm"]))


@pytest.mark.parametrize("fitness", [np.full(10, np.nan), np.full(10, 3.0),
                                     np.array([np.nan] * 5 + [-np.inf] * 5)])
def test_a_generation_without_information_moves_nothing(fitness):
    """All NaN, all tied, or two tied halves laid out as the [+e..., -e...] pairs (every pair
    a tie): every utility is its average rank's, so the step is zero (SGD(1.0), no weight
    decay: the mean stays put to 1e-7). Metrics: NaN means stay NaN, counted."""
    s = el.strategies.openai_es(10, SIGMA, optimizer=optax.sgd(1.0), weight_decay=0.0)
    mean = make_params()
    population, state = s.ask(KEY, s.init(KEY, mean))
    fitness = np.asarray(fitness, np.float32)
    if not np.isnan(fitness).all() and np.isnan(fitness).any():
        fitness = np.concatenate([fitness[:5], fitness[:5]])  # pair i: +e_i and -e_i tie
    new_state, metrics = s.tell(TELL_KEY, population, evaluation(fitness), state)
    for got, want in zip(jax.tree.leaves(new_state.mean), jax.tree.leaves(mean), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-7)
    assert int(metrics["num_nan"]) == int(np.isnan(fitness).sum())
    if np.isnan(fitness).all():
        assert np.isnan(float(metrics["mean_fitness"])) and np.isnan(
            float(metrics["best_fitness"]))
    assert float(metrics["grad_norm"]) <= 1e-7


# ------------------------------------------------------------------------ errors
def test_odd_pop_size_with_mirrored_raises():
    with pytest.raises(ValueError, match="pop_size"):
        el.strategies.openai_es(7, SIGMA, mirrored=True)
    el.strategies.openai_es(7, SIGMA, mirrored=False)  # fine without mirroring


@pytest.mark.parametrize("pop_size", [0, 1])
def test_too_small_pop_size_raises(pop_size):
    with pytest.raises(ValueError, match="pop_size"):
        el.strategies.openai_es(pop_size, SIGMA, mirrored=False)


@pytest.mark.parametrize("shape", [(11,), (9,), (10, 1), ()])
def test_fitness_of_wrong_shape_raises(shape):
    s = es(10)
    # the state ask returned, so the asked-check passes and the fitness check is what fails
    population, state = s.ask(KEY, s.strategy.init(KEY, make_params()))
    with pytest.raises(ValueError, match="fitness"):
        s.strategy.tell(TELL_KEY, population, jnp.zeros(shape), state)


@pytest.mark.parametrize("sigma", [0.0, -0.1])
def test_nonpositive_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma"):
        el.strategies.openai_es(10, sigma)
    strategy = el.strategies.openai_es(10, SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        strategy.init(KEY, make_params(), sigma=sigma)


def test_negative_weight_decay_raises():
    with pytest.raises(ValueError, match="weight_decay"):
        el.strategies.openai_es(10, SIGMA, weight_decay=-0.005)
    strategy = el.strategies.openai_es(10, SIGMA)
    with pytest.raises(ValueError, match="weight_decay"):
        strategy.init(KEY, make_params(), weight_decay=-1.0)


def test_learning_rate_override_needs_inject_hyperparams():
    strategy = el.strategies.openai_es(10, SIGMA, optax.sgd(1.0))
    with pytest.raises(ValueError, match="learning_rate"):
        strategy.init(KEY, make_params(), learning_rate=0.1)
    injected = el.strategies.openai_es(
        10, SIGMA, optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    )
    state = injected.init(KEY, make_params(), learning_rate=0.1)
    np.testing.assert_allclose(float(state.opt_state.hyperparams["learning_rate"]), 0.1)


@pytest.mark.parametrize("lr", [0.0, -1.0])
def test_nonpositive_learning_rate_raises(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        el.strategies.openai_es(10, SIGMA, learning_rate=lr)
    with pytest.raises(ValueError, match="learning_rate"):
        el.strategies.openai_es(10, SIGMA).init(KEY, make_params(), learning_rate=lr)


def test_table_too_small_for_params_raises():
    s = el.strategies.openai_es(10, SIGMA, noise=noise.table(size=6))
    state = s.init(KEY, make_params())
    with pytest.raises(ValueError, match="noise table has 6 entries"):
        s.ask(KEY, state)


@pytest.mark.parametrize("fitness", [
    [1.0, -2.0, 3.0, 0.5],
    [np.nan, -np.inf, np.nan, -np.inf],  # every number -inf: best -inf, not NaN
    [np.nan, 2.0, np.inf, -1.0],
    [-0.0, 0.0, np.nan, -3.0],
    [np.nan, np.nan, np.nan, np.nan],
])
def test_fitness_metrics_match_numpy(fitness):
    """best / mean of the numbers (NaN when there is none) and the NaN count, against NumPy."""
    from evojax_lab.strategies._common import fitness_metrics

    f = np.asarray(fitness, np.float32)
    got = jax.jit(fitness_metrics)(jnp.asarray(f))
    numbers = f[~np.isnan(f)]
    best = numbers.max() if numbers.size else np.nan
    with np.errstate(invalid="ignore"):
        mean = numbers.mean() if numbers.size else np.nan
    np.testing.assert_array_equal(np.float32(got["best_fitness"]), np.float32(best))
    np.testing.assert_array_equal(np.float32(got["mean_fitness"]), np.float32(mean))
    assert int(got["num_nan"]) == int(np.isnan(f).sum())
    assert got["num_nan"].dtype == jnp.int32
