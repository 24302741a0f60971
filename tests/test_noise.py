"""Noise sources: fold-in and the shared noise table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.core import noise

KEY = jax.random.PRNGKey(42)


def params_template():
    return {
        "w": jnp.zeros((3, 2), jnp.float32),
        "b": jnp.zeros((4,), jnp.float32),
        "nested": {"s": jnp.zeros((), jnp.float32)},
    }


def np_flatten(tree):
    """Concatenate leaves in pytree order (what ``ravel`` does), written with NumPy."""
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


def find_slice(table, eps):
    """All offsets o with table[o:o+len(eps)] == eps (NumPy brute force)."""
    d = len(eps)
    windows = np.lib.stride_tricks.sliding_window_view(table, d)
    return np.flatnonzero(np.all(windows == eps[None], axis=1))


# ---------------------------------------------------------------------------- fold-in
def test_fold_in_shapes_and_dtypes():
    source = noise.fold_in()
    assert source.kind == "fold_in"
    assert source.init() is None
    eps = noise.sample_flat(source, None, KEY, 3, 11)
    assert eps.shape == (11,) and eps.dtype == jnp.float32
    batch = noise.sample_batch(source, None, KEY, jnp.arange(5), 11)
    assert batch.shape == (5, 11) and batch.dtype == jnp.float32


def test_fold_in_is_deterministic_and_index_dependent():
    source = noise.fold_in()
    a = np.asarray(noise.sample_flat(source, None, KEY, 7, 64))
    b = np.asarray(noise.sample_flat(source, None, KEY, 7, 64))
    c = np.asarray(noise.sample_flat(source, None, KEY, 8, 64))
    d = np.asarray(noise.sample_flat(source, None, jax.random.PRNGKey(43), 7, 64))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, d)


def _assert_standard_normal(draws) -> None:
    """N(0, 1) draws (the keys are fixed, so the verdict is too): the mean and the standard
    deviation within 5 standard errors (1/sqrt(n), 1/sqrt(2n)), and the shape by
    Kolmogorov-Smirnov (a uniform with the same mean and variance is rejected: from about 2,000
    draws; at 500 a uniform table passed, p = 0.028)."""
    from scipy import stats

    x = np.ravel(np.asarray(draws, np.float64))
    n = x.size
    assert n >= 2000, f"{n} draws are too few for the shape test to reject a uniform"
    assert abs(x.mean()) < 5 / np.sqrt(n), x.mean()
    assert abs(x.std() - 1.0) < 5 / np.sqrt(2 * n), x.std()
    assert stats.kstest(x, "norm").pvalue > 0.01


def test_fold_in_batch_equals_loop_and_is_standard_normal():
    source = noise.fold_in()
    idx = jnp.arange(6)
    batch = np.asarray(noise.sample_batch(source, None, KEY, idx, 2000))
    for i in range(6):
        np.testing.assert_array_equal(batch[i], noise.sample_flat(source, None, KEY, i, 2000))
    # Rows are (pseudo-)independent standard normals: 12k draws, the whole distribution.
    _assert_standard_normal(batch)
    corr = np.corrcoef(batch)
    assert np.max(np.abs(corr - np.eye(6))) < 0.1


# ---------------------------------------------------------------------------- table
def test_table_init_shape_dtype_and_seed():
    t = noise.table(size=5000, seed=7)
    assert (t.kind, t.size, t.seed) == ("table", 5000, 7)
    arr = np.asarray(t.init())
    assert arr.shape == (5000,) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, np.asarray(t.init()))
    assert not np.allclose(arr, np.asarray(noise.table(size=5000, seed=8).init()))
    _assert_standard_normal(arr)


def test_table_default_seed_is_123():
    assert noise.table(size=10).seed == 123


def test_table_slices_equal_numpy_slices():
    source = noise.table(size=300, seed=1)
    tab = source.init()
    np_tab = np.asarray(tab)
    dim = 17

    @jax.jit
    def rows_and_offsets(t):
        idx = jnp.arange(8)
        eps = jax.vmap(lambda i: noise.sample_flat(source, t, KEY, i, dim))(idx)
        return eps, jax.vmap(lambda i: noise.offset(source, KEY, i, dim))(idx)

    eps_rows, offsets = map(np.asarray, rows_and_offsets(tab))
    assert eps_rows.shape == (8, dim) and eps_rows.dtype == np.float32
    assert len(set(offsets.tolist())) > 1
    for eps, o in zip(eps_rows, offsets, strict=True):
        assert 0 <= o <= 300 - dim
        np.testing.assert_array_equal(eps, np_tab[o : o + dim])
        # The same offset, found independently by searching the table.
        assert o in find_slice(np_tab, eps)


def test_table_offsets_cover_the_whole_valid_range():
    # size - dim + 1 = 4 valid offsets: every one is used, none beyond the end.
    source = noise.table(size=20, seed=3)
    offsets = np.asarray(jax.vmap(lambda i: noise.offset(source, KEY, i, 17))(jnp.arange(200)))
    assert set(offsets.tolist()) == {0, 1, 2, 3}


def test_table_exactly_as_large_as_params():
    source = noise.table(size=10, seed=5)
    tab = source.init()
    eps = noise.sample_flat(source, tab, KEY, 3, 10)
    np.testing.assert_array_equal(np.asarray(eps), np.asarray(tab))


def test_table_batch_equals_loop_under_jit():
    source = noise.table(size=200, seed=2)
    tab = source.init()
    batch = jax.jit(lambda t: noise.sample_batch(source, t, KEY, jnp.arange(5), 9))(tab)
    for i in range(5):
        np.testing.assert_array_equal(batch[i], noise.sample_flat(source, tab, KEY, i, 9))


# ---------------------------------------------------------------------------- sample()
@pytest.mark.parametrize("kind", ["fold_in", "table"])
def test_sample_returns_a_pytree_like_params(kind):
    source = noise.fold_in() if kind == "fold_in" else noise.table(size=100, seed=4)
    state = source.init()
    params = params_template()
    eps = noise.sample(source, state, KEY, 2, params)
    assert jax.tree.structure(eps) == jax.tree.structure(params)
    for e, p in zip(jax.tree.leaves(eps), jax.tree.leaves(params), strict=True):
        assert e.shape == p.shape and e.dtype == p.dtype
    dim = el.tree.num_params(params)
    assert dim == 11
    np.testing.assert_array_equal(
        np_flatten(eps), np.asarray(noise.sample_flat(source, state, KEY, 2, dim))
    )
    if kind == "table":
        assert len(find_slice(np.asarray(state), np_flatten(eps))) >= 1


# ---------------------------------------------------------------------------- errors
def test_table_too_small_raises_clear_error():
    source = noise.table(size=5)
    with pytest.raises(ValueError, match=r"noise table has 5 entries.*need 11"):
        noise.sample(source, source.init(), KEY, 0, params_template())
    with pytest.raises(ValueError, match="larger table"):
        noise.sample_flat(source, source.init(), KEY, 0, 6)


@pytest.mark.parametrize("size", [0, -3])
def test_table_size_must_be_positive(size):
    with pytest.raises(ValueError, match="size must be positive"):
        noise.table(size=size)


def test_table_without_its_state_raises():
    with pytest.raises(ValueError, match="needs its table"):
        noise.sample_flat(noise.table(size=50), None, KEY, 0, 4)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown noise source"):
        noise.sample_flat(noise.NoiseSource("nope"), None, KEY, 0, 4)
