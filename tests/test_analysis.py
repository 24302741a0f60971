"""el.analysis: the ES-gradient cosine law, the SGD proxy, robustness, FD/ES ascent.

Expected values are closed forms (sqrt(n / (n + d - 1)), a quadratic's gradient and gradient
descent iterates, E|sigma eps|^2 = sigma^2 d) or NumPy computations, never the code under test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import evojax_lab as el
from evojax_lab.analysis import (
    cosine,
    degrade_gradient,
    es_ascent,
    es_gradient,
    expected_cosine,
    fd_ascent,
    finite_difference_gradient,
    gradient_correlation,
    robustness,
    sgd_proxy,
)

# ---------------------------------------------------------------------------------------------
# the cosine law on a random linear objective (acceptance)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [10, 100, 1000])
def test_cosine_law_on_random_linear_objective(dim):
    a = jax.random.normal(jax.random.PRNGKey(dim), (dim,))
    params = {"w": jnp.zeros((dim,))}
    fn = lambda p: jnp.dot(a, p["w"])
    num_pairs = [20, 200]
    res = gradient_correlation(jax.random.PRNGKey(0), fn, params, num_pairs, sigma=0.1,
                               num_trials=200)
    law = np.sqrt(np.array(num_pairs) / (np.array(num_pairs) + dim - 1.0))
    np.testing.assert_allclose(res.expected, law)
    np.testing.assert_array_equal(res.pop_sizes, 2 * np.array(num_pairs))
    assert res.dim == dim
    rel = np.abs(res.mean - law) / law
    assert np.all(rel < 0.05), (res.mean, law)
    assert np.all(res.std >= 0)


def test_cosine_law_with_centered_ranks_matches_raw_for_linear():
    # For a linear objective the mirrored differences are monotone in a.eps, so rank shaping
    # changes the weights but keeps the estimate close to the raw one's direction.
    dim = 50
    a = jax.random.normal(jax.random.PRNGKey(5), (dim,))
    fn = lambda p: jnp.dot(a, p)
    res = gradient_correlation(jax.random.PRNGKey(1), fn, jnp.zeros(dim), [50], sigma=0.1,
                               num_trials=100, shaping=el.shaping.centered_rank)
    law = expected_cosine(50, dim)
    assert abs(res.mean[0] - law) / law < 0.1


def test_es_gradient_is_unbiased_on_a_linear_function():
    dim = 8
    a = np.linspace(-1.0, 2.0, dim).astype(np.float32)
    fn = lambda p: jnp.dot(jnp.asarray(a), p)
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    g = jax.vmap(lambda k: es_gradient(k, fn, jnp.zeros(dim), 4, 0.5))(keys)
    # the mean of 4,000 estimates: standard error about |a| sqrt(d / n) / sqrt(4000) ~ 0.1
    np.testing.assert_allclose(np.asarray(g).mean(0), a, atol=0.15)


def test_expected_cosine_and_cosine():
    np.testing.assert_allclose(expected_cosine([1, 10], 1), [1.0, 1.0])
    np.testing.assert_allclose(expected_cosine(10, 91), np.sqrt(10 / 100))
    with pytest.raises(ValueError, match="num_pairs"):
        expected_cosine(0, 5)
    x, y = {"a": jnp.array([1.0, 0.0])}, {"a": jnp.array([1.0, 1.0])}
    np.testing.assert_allclose(float(cosine(x, y)), 1 / np.sqrt(2), rtol=1e-6)
    assert float(cosine(x, {"a": jnp.zeros(2)})) == 0.0


def test_gradient_correlation_bad_input():
    fn = lambda p: jnp.sum(p)
    with pytest.raises(ValueError, match="num_pairs"):
        gradient_correlation(jax.random.PRNGKey(0), fn, jnp.zeros(3), [0])
    with pytest.raises(ValueError, match="sigma"):
        gradient_correlation(jax.random.PRNGKey(0), fn, jnp.zeros(3), [4], sigma=0.0)
    with pytest.raises(ValueError, match="num_trials"):
        gradient_correlation(jax.random.PRNGKey(0), fn, jnp.zeros(3), [4], num_trials=0)


# ---------------------------------------------------------------------------------------------
# the SGD proxy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1.0, 0.5, 0.1, 0.0, -0.3])
def test_degrade_gradient_has_the_target_cosine_and_norm(c):
    g = {"a": jnp.array([3.0, -1.0, 2.0]), "b": jnp.array([[0.5, 4.0]])}
    out = degrade_gradient(jax.random.PRNGKey(4), g, c)
    fg = np.concatenate([np.ravel(g["a"]), np.ravel(g["b"])])
    fo = np.concatenate([np.ravel(out["a"]), np.ravel(out["b"])])
    np.testing.assert_allclose(np.linalg.norm(fo), np.linalg.norm(fg), rtol=1e-5)
    np.testing.assert_allclose(fo @ fg / np.linalg.norm(fo) / np.linalg.norm(fg), c, atol=1e-5)
    assert out["b"].shape == (1, 2)


def test_degrade_gradient_edge_cases():
    zero = degrade_gradient(jax.random.PRNGKey(0), jnp.zeros(4), 0.3)
    np.testing.assert_array_equal(np.asarray(zero), 0.0)
    with pytest.raises(ValueError, match="cosine"):
        degrade_gradient(jax.random.PRNGKey(0), jnp.ones(4), 1.5)
    with pytest.raises(ValueError, match="cosine"):
        sgd_proxy(lambda k, p: -jnp.sum(p**2), optax.sgd(0.1), cosine=-2.0)


def test_sgd_proxy_exact_step_matches_hand_computed_sgd():
    target = np.array([1.0, -2.0, 0.5], np.float32)
    fn = lambda key, p: -jnp.sum((p - jnp.asarray(target)) ** 2)
    trainer = sgd_proxy(fn, optax.sgd(0.1))
    state = trainer.init(jnp.zeros(3))
    state, metrics = jax.jit(trainer.update)(jax.random.PRNGKey(0), state)
    # gradient of the fitness at 0 is 2 * target; SGD on -fitness moves by 0.1 * 2 * target
    np.testing.assert_allclose(np.asarray(state.params), 0.2 * target, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["fitness"]), -np.sum(target**2), rtol=1e-6)
    assert int(state.step) == 1


def test_sgd_proxy_degraded_step_has_the_cosine():
    target = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    fn = lambda key, p: -jnp.sum((p - jnp.asarray(target)) ** 2)
    trainer = sgd_proxy(fn, optax.sgd(0.1), cosine=0.3)
    state, _ = trainer.update(jax.random.PRNGKey(1), trainer.init(jnp.zeros(4)))
    step = np.asarray(state.params)
    np.testing.assert_allclose(step @ target / np.linalg.norm(step) / np.linalg.norm(target),
                               0.3, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(step), 0.2 * np.linalg.norm(target), rtol=1e-5)


def test_sgd_proxy_trains_with_weak_correlation():
    target = np.linspace(-1, 1, 20).astype(np.float32)
    fn = lambda key, p: -jnp.sum((p - jnp.asarray(target)) ** 2)
    trainer = sgd_proxy(fn, optax.sgd(0.02), cosine=0.3)

    @jax.jit
    def run(state):
        return jax.lax.scan(lambda s, _: trainer.update(jax.random.PRNGKey(3), s), state,
                            None, length=500)

    state, metrics = run(trainer.init(jnp.zeros(20)))
    assert float(metrics["fitness"][-1]) > 0.1 * float(metrics["fitness"][0])


# ---------------------------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------------------------


def test_robustness_statistics_on_a_function_task():
    dim, sigma = 100, 0.3
    task = el.tasks.function(lambda key, p: -jnp.sum(p["w"] ** 2))
    returns = robustness(jax.random.PRNGKey(0), task, None, {"w": jnp.zeros(dim)}, sigma,
                         num_samples=2000)
    assert returns.shape == (2000,)
    # -|sigma eps|^2: mean -sigma^2 d, std sigma^2 sqrt(2 d)
    np.testing.assert_allclose(float(returns.mean()), -sigma**2 * dim, rtol=0.02)
    np.testing.assert_allclose(float(returns.std()), sigma**2 * np.sqrt(2 * dim), rtol=0.1)


def test_robustness_zero_sigma_is_the_solution_and_bad_input():
    params = {"w": jnp.array([0.5, -1.0, 2.0])}
    task = el.tasks.function(lambda key, p: -jnp.sum(p["w"] ** 2))
    key = jax.random.PRNGKey(3)
    returns = robustness(key, task, None, params, 0.0, num_samples=3)
    np.testing.assert_allclose(np.asarray(returns), -5.25, rtol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        robustness(key, task, None, params, -0.1)
    with pytest.raises(ValueError, match="num_samples"):
        robustness(key, task, None, params, 0.1, num_samples=0)


def test_robustness_copies_share_episode_starts():
    # The return depends on the episode key only: with common random numbers every perturbed
    # copy sees the same key, so the spread is zero; without, the copies differ.
    task = el.tasks.function(lambda key, p: jax.random.normal(key) + 0.0 * jnp.sum(p))
    same = robustness(jax.random.PRNGKey(0), task, None, jnp.zeros(2), 0.1, num_samples=4)
    assert len(set(np.asarray(same).tolist())) == 1
    own = robustness(jax.random.PRNGKey(0), task, None, jnp.zeros(2), 0.1, num_samples=4,
                     common_random_numbers=False)
    assert len(set(np.asarray(own).tolist())) == 4


# ---------------------------------------------------------------------------------------------
# FD / ES ascent
# ---------------------------------------------------------------------------------------------


def quad(x):
    return -jnp.sum((x - jnp.array([1.0, -0.5])) ** 2)


def test_finite_difference_gradient_matches_the_closed_form():
    x = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(np.asarray(finite_difference_gradient(quad, x, 1e-3)),
                               -2 * (np.array([0.3, 0.7]) - [1.0, -0.5]), atol=1e-3)


@pytest.mark.parametrize("method", ["central", "grad"])
def test_fd_ascent_follows_gradient_descent_iterates(method):
    lr, steps = 0.1, 20
    traj = np.asarray(fd_ascent(quad, jnp.zeros(2), steps=steps, learning_rate=lr,
                                h=1e-3, method=method))
    # x_t = x* + (1 - 2 lr)^t (x0 - x*)
    opt = np.array([1.0, -0.5])
    expected = opt + (1 - 2 * lr) ** np.arange(steps + 1)[:, None] * (0 - opt)
    assert traj.shape == (steps + 1, 2)
    np.testing.assert_allclose(traj, expected, atol=2e-3)


def test_es_ascent_on_a_linear_function_moves_along_the_gradient():
    a = jnp.array([1.0, 0.5])
    traj = np.asarray(es_ascent(jax.random.PRNGKey(0), lambda x: jnp.dot(a, x), jnp.zeros(2),
                                steps=200, learning_rate=0.01, sigma=0.5, num_pairs=50))
    assert traj.shape == (201, 2)
    # expected displacement lr * steps * a = (2, 1); the noise per step is ~ lr |a| / sqrt(n)
    np.testing.assert_allclose(traj[-1], [2.0, 1.0], atol=0.15)


def test_ascent_bad_input():
    with pytest.raises(ValueError, match="method"):
        fd_ascent(quad, jnp.zeros(2), steps=1, learning_rate=0.1, method="forward")
    with pytest.raises(ValueError, match="x0"):
        fd_ascent(quad, jnp.zeros((2, 1)), steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="sigma"):
        es_ascent(jax.random.PRNGKey(0), quad, jnp.zeros(2), steps=1, learning_rate=0.1,
                  sigma=0.0, num_pairs=2)
