"""Fitness shaping against NumPy re-computations written out by hand (REFERENCE section 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el

# Jitted once per shape: much cheaper than op-by-op dispatch on a small CPU.
centered_rank = jax.jit(el.shaping.centered_rank)
ranks = jax.jit(el.shaping.ranks)
z_score = jax.jit(el.shaping.z_score)


def np_ranks(fitness):
    """Ascending average ranks from the definition: rank_i = #{j: f_j < f_i} +
    (#{j: f_j == f_i} - 1) / 2 (tied values share the mean of the positions they occupy).

    NaN counts as worse than everything (including -inf); NaNs tie with each other.
    Deliberately O(P^2) and sort-free, so it shares nothing with the code.
    """
    f = np.asarray(fitness, np.float64)
    p = f.shape[0]
    nan = np.isnan(f)

    def less(a, b):  # is member a strictly worse than member b?
        if nan[a] and nan[b]:
            return False
        if nan[a]:
            return True
        if nan[b]:
            return False
        return f[a] < f[b]

    def equal(a, b):
        return (nan[a] and nan[b]) or (not nan[a] and not nan[b] and f[a] == f[b])

    out = np.zeros(p, np.float64)
    for i in range(p):
        ties = sum(equal(j, i) for j in range(p))  # i itself included
        out[i] = sum(less(j, i) for j in range(p)) + (ties - 1) / 2
    return out


def np_centered_rank(fitness):
    p = len(fitness)
    return np_ranks(fitness) / (p - 1) - 0.5


CASES = {
    "distinct": [3.0, -1.0, 2.5, 10.0, 0.0],
    "ties": [1.0, 2.0, 1.0, 1.0, 0.5, 2.0, -3.0, 1.0],
    "all_equal": [4.0, 4.0, 4.0, 4.0],
    "two": [2.0, 1.0],
    "infinities": [np.inf, 0.0, -np.inf, 1.0, -np.inf],
    "signed_zeros": [0.0, -0.0, 1.0, -0.0, -1.0],  # -0.0 == 0.0: the three zeros tie
    "random": list(np.random.default_rng(0).normal(size=33)),
    "random_int_ties": list(np.random.default_rng(1).integers(0, 5, size=40).astype(float)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_centered_rank_matches_numpy(name):
    fitness = np.asarray(CASES[name], np.float32)
    u = np.asarray(centered_rank(jnp.asarray(fitness)))
    expected = np_centered_rank(fitness)
    assert u.shape == fitness.shape
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-6)
    assert u.min() >= -0.5 - 1e-7 and u.max() <= 0.5 + 1e-7
    assert abs(float(u.sum())) < 1e-5
    # The ranks sum to P(P-1)/2; without ties they are 0..P-1 and the extremes are exactly
    # -0.5 and +0.5; all equal: every u is 0.
    r = np.asarray(ranks(fitness))
    assert float(r.sum()) == pytest.approx(len(u) * (len(u) - 1) / 2)
    if len(set(CASES[name])) == len(u):
        np.testing.assert_array_equal(np.sort(r), np.arange(len(u)))
        np.testing.assert_allclose([u.min(), u.max()], [-0.5, 0.5], atol=1e-7)
    if len(set(CASES[name])) == 1:
        np.testing.assert_array_equal(u, np.zeros_like(u))


def test_ranks_match_numpy_with_ties_eagerly():
    # Eager (op-by-op) on purpose: the jitted tests above cover the compiled path.
    fitness = np.asarray(CASES["ties"] + [np.nan], np.float32)
    np.testing.assert_array_equal(np.asarray(el.shaping.ranks(fitness)), np_ranks(fitness))
    np.testing.assert_allclose(
        np.asarray(el.shaping.centered_rank(fitness)), np_centered_rank(fitness), atol=1e-6
    )
    # Hand-checked: NaN 0, -3 1, 0.5 2, the four 1.0 share positions 3..6 (4.5), the two 2.0
    # share 7..8 (7.5).
    np.testing.assert_array_equal(np_ranks(fitness), [4.5, 7.5, 4.5, 4.5, 2, 7.5, 1, 4.5, 0])


def test_centered_rank_is_invariant_to_monotone_transforms():
    f = np.random.default_rng(2).normal(size=16).astype(np.float32)
    a = centered_rank(f)
    b = centered_rank(np.exp(f) * 7.0 - 3.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "fitness",
    [
        [1.0, np.nan, 3.0, 2.0],
        [np.nan, -np.inf, 0.0, np.nan, 5.0, -1e30],
        [np.nan, np.nan, np.nan],
    ],
)
def test_nan_gets_the_worst_rank(fitness):
    fitness = np.asarray(fitness, np.float32)
    u = np.asarray(centered_rank(fitness))
    np.testing.assert_allclose(u, np_centered_rank(fitness), rtol=0, atol=1e-6)
    assert np.all(np.isfinite(u))
    nan = np.isnan(fitness)
    # Every NaN ranks below every non-NaN member.
    if nan.any() and (~nan).any():
        assert u[nan].max() < u[~nan].min()
    # The NaNs share the worst ranks: all NaN gives u = 0 everywhere (no information).
    k = int(nan.sum())
    if k:
        assert u[nan] == pytest.approx(np.full(k, (k - 1) / 2 / (len(u) - 1) - 0.5))
    assert abs(float(u.sum())) < 1e-5


def test_centered_rank_under_jit_and_vmap():
    f = np.random.default_rng(3).normal(size=(4, 9)).astype(np.float32)
    u = jax.jit(jax.vmap(el.shaping.centered_rank))(f)
    for row, expected_row in zip(np.asarray(u), f, strict=True):
        np.testing.assert_allclose(row, np_centered_rank(expected_row), rtol=0, atol=1e-6)


def test_centered_rank_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        el.shaping.centered_rank(jnp.ones(1))


def np_z_score(fitness, eps=1e-8):
    f = np.asarray(fitness, np.float64)
    finite = np.isfinite(f)
    f = np.where(finite, f, f[finite].min() if finite.any() else 0.0)
    return (f - f.mean()) / (f.std() + eps)


@pytest.mark.parametrize(
    "fitness",
    [
        list(np.random.default_rng(4).normal(3.0, 2.0, size=20)),
        [1.0, 2.0, 2.0, 7.0],
        [1.0, np.nan, 3.0, -2.0, np.nan],
    ],
)
def test_z_score_matches_numpy(fitness):
    fitness = np.asarray(fitness, np.float32)
    z = np.asarray(z_score(fitness))
    expected = np_z_score(fitness)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 1e-6
    np.testing.assert_allclose(z.std(), 1.0, rtol=1e-5)


def test_z_score_nan_is_worst_finite():
    z = np.asarray(z_score(np.asarray([4.0, np.nan, -1.0, 2.0], np.float32)))
    assert z[1] == pytest.approx(z[2], abs=1e-6)
    assert z[1] == pytest.approx(z.min(), abs=1e-6)


def test_z_score_constant_fitness_is_zero():
    z = np.asarray(z_score(np.full(5, 3.0, np.float32)))
    np.testing.assert_array_equal(z, np.zeros(5))
