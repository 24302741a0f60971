"""The novelty archive and k-NN novelty: NumPy brute-force goldens, ring-buffer insertion,
insertion probability and mask, self-exclusion, bad input, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_lab import novelty

B = 3
# Jitted once per shape: one fused program compiles faster than eager op-by-op dispatch.
knn = jax.jit(novelty.knn, static_argnums=2)


# ------------------------------------------------------------------------ NumPy references
def np_knn(queries, references, k, exclude=None):
    """Brute force: mean of the min(k, n) smallest Euclidean distances (0 with no reference).

    ``exclude[i]`` is a row of ``references`` query ``i`` leaves out (-1: none).
    """
    queries = np.asarray(queries, np.float64)
    references = np.asarray(references, np.float64).reshape(-1, queries.shape[1])
    out = np.zeros(len(queries))
    for i, q in enumerate(queries):
        rows = [
            r for j, r in enumerate(references) if exclude is None or j != exclude[i]
        ]
        if not rows:
            continue
        d = np.sort(np.linalg.norm(np.asarray(rows) - q, axis=1))
        out[i] = d[:k].mean()
    return out


def filled(rows, capacity):
    archive = novelty.init(capacity, np.shape(rows)[1])
    return novelty.add(archive, jnp.asarray(rows, jnp.float32))


def rows_of(archive):
    """The valid rows, as NumPy."""
    return np.asarray(archive.behaviors)[: int(archive.size)]


def rng_rows(n, seed, b=B):
    return np.random.default_rng(seed).normal(size=(n, b)).astype(np.float32)


# ------------------------------------------------------------------------ knn
def test_knn_matches_numpy_brute_force():
    refs = rng_rows(37, 0)
    queries = rng_rows(20, 1)
    archive = filled(refs, 64)
    assert int(archive.size) == 37 and archive.capacity == 64
    got = np.asarray(knn(jnp.asarray(queries), archive, 10))
    assert got.shape == (20,)
    np.testing.assert_allclose(got, np_knn(queries, refs, 10), rtol=0, atol=1e-5)
    # The unused (zero) rows of the archive do not count: a query at the origin is far from
    # every valid row.
    origin = float(knn(jnp.zeros(B), archive, 1))
    np.testing.assert_allclose(origin, np_knn(np.zeros((1, B)), refs, 1)[0], atol=1e-5)
    assert origin > 0.1


def test_knn_with_fewer_references_than_k_averages_over_those():
    refs = rng_rows(3, 2)
    queries = rng_rows(5, 3)
    archive = filled(refs, 16)
    got = np.asarray(knn(jnp.asarray(queries), archive, 10))
    expected = np.array([np.linalg.norm(refs - q, axis=1).mean() for q in queries])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_knn_of_empty_archive_is_zero():
    archive = novelty.init(8, B)
    got = np.asarray(knn(jnp.asarray(rng_rows(4, 4)), archive, 3))
    np.testing.assert_array_equal(got, np.zeros(4))


def test_single_query_returns_a_scalar():
    refs = rng_rows(6, 5)
    archive = filled(refs, 8)
    q = rng_rows(1, 6)[0]
    got = knn(jnp.asarray(q), archive, 2)
    assert got.shape == ()
    np.testing.assert_allclose(float(got), np_knn(q[None], refs, 2)[0], atol=1e-5)


def test_population_joins_the_archive_with_self_exclusion():
    refs = rng_rows(5, 7)
    pop = rng_rows(9, 8)
    archive = filled(refs, 8)
    got = np.asarray(knn(jnp.asarray(pop), archive, 4, population=jnp.asarray(pop)))
    union = np.concatenate([refs, pop])
    expected = np_knn(pop, union, 4, exclude=5 + np.arange(9))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # Without self-exclusion every query would have a neighbour at distance 0.
    assert not np.allclose(expected, np_knn(pop, union, 4), atol=1e-3)


def test_population_with_duplicates_still_counts_them_at_distance_zero():
    refs = rng_rows(4, 9)
    pop = rng_rows(6, 10)
    pop[3] = pop[1]  # rows 1 and 3 are the same behavior
    archive = filled(refs, 8)
    got = np.asarray(knn(jnp.asarray(pop), archive, 1, population=jnp.asarray(pop)))
    assert got[1] == 0.0 and got[3] == 0.0
    expected = np_knn(pop, np.concatenate([refs, pop]), 1, exclude=4 + np.arange(6))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.all(expected[[0, 2, 4, 5]] > 0)


def test_population_with_an_empty_archive_is_the_population_alone():
    pop = rng_rows(7, 11)
    got = np.asarray(
        knn(jnp.asarray(pop), novelty.init(4, B), 3, population=jnp.asarray(pop))
    )
    np.testing.assert_allclose(got, np_knn(pop, pop, 3, exclude=np.arange(7)), atol=1e-5)


def test_knn_distance_valid_and_exclude():
    refs = rng_rows(10, 12)
    queries = rng_rows(4, 13)
    valid = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    exclude = np.array([-1, 2, 9, 0])
    got = np.asarray(
        novelty.knn_distance(
            jnp.asarray(queries), jnp.asarray(refs), 3, valid=jnp.asarray(valid),
            exclude=jnp.asarray(exclude),
        )
    )
    expected = []
    for q, skip in zip(queries, exclude, strict=True):
        ok = valid & (np.arange(10) != skip)
        expected.append(np.sort(np.linalg.norm(refs[ok] - q, axis=1))[:3].mean())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_knn_rejects_bad_shapes_and_k():
    archive = novelty.init(4, B)
    with pytest.raises(ValueError, match=r"\[K, 3\]"):
        knn(jnp.zeros((2, 4)), archive, 2)
    with pytest.raises(ValueError, match="one row per query"):
        knn(jnp.zeros((2, B)), archive, 2, population=jnp.zeros((3, B)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn(jnp.zeros((2, B)), archive, 0)


# ------------------------------------------------------------------------ add
def test_add_inserts_in_order():
    a = novelty.init(8, B)
    assert a.behaviors.shape == (8, B) and a.behaviors.dtype == jnp.float32
    assert int(a.size) == 0 and int(a.num_added) == 0 and a.capacity == 8
    first, second = rng_rows(3, 14), rng_rows(2, 15)
    a = novelty.add(a, jnp.asarray(first))
    a = novelty.add(a, jnp.asarray(second[0]))  # a single [B] row
    a = novelty.add(a, jnp.asarray(second[1:]))
    assert int(a.size) == 5 and int(a.num_added) == 5
    np.testing.assert_array_equal(rows_of(a), np.concatenate([first, second]))
    np.testing.assert_array_equal(np.asarray(a.behaviors)[5:], 0.0)


def test_add_more_rows_than_capacity_keeps_the_last_ones():
    rows = rng_rows(11, 16)
    a = novelty.add(novelty.init(4, B), jnp.asarray(rows))
    assert int(a.size) == 4 and int(a.num_added) == 11
    # The ring buffer's oldest row is at num_added % capacity = 3.
    stored = np.asarray(a.behaviors)
    order = [(11 + i) % 4 for i in range(4)]  # oldest first
    np.testing.assert_array_equal(stored[order], rows[-4:])


def test_add_across_calls_overwrites_the_oldest():
    rows = rng_rows(7, 17)
    a = novelty.init(4, B)
    a = novelty.add(a, jnp.asarray(rows[:3]))
    a = novelty.add(a, jnp.asarray(rows[3:6]))  # fills slot 3, then overwrites slots 0, 1
    expected = np.stack([rows[4], rows[5], rows[2], rows[3]])
    np.testing.assert_array_equal(np.asarray(a.behaviors), expected)
    assert int(a.size) == 4 and int(a.num_added) == 6
    a = novelty.add(a, jnp.asarray(rows[6]))
    expected[2] = rows[6]
    np.testing.assert_array_equal(np.asarray(a.behaviors), expected)
    assert int(a.size) == 4 and int(a.num_added) == 7
    # knn sees exactly the kept rows
    q = rng_rows(3, 18)
    np.testing.assert_allclose(
        np.asarray(knn(jnp.asarray(q), a, 2)), np_knn(q, expected, 2), atol=1e-5
    )


def test_add_with_mask():
    rows = rng_rows(6, 19)
    mask = np.array([True, False, False, True, True, False])
    a = novelty.add(novelty.init(8, B), jnp.asarray(rows), mask=jnp.asarray(mask))
    assert int(a.size) == 3 and int(a.num_added) == 3
    np.testing.assert_array_equal(rows_of(a), rows[mask])
    none = novelty.add(novelty.init(8, B), jnp.asarray(rows), mask=jnp.zeros(6, bool))
    assert int(none.size) == 0 and int(none.num_added) == 0
    np.testing.assert_array_equal(np.asarray(none.behaviors), 0.0)


def test_add_with_probability():
    key = jax.random.key(3)
    rows = rng_rows(4000, 20, b=1)
    zero = novelty.add(novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=0.0)
    assert int(zero.size) == 0 and int(zero.num_added) == 0
    one = novelty.add(novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=1.0)
    assert int(one.size) == 4000
    np.testing.assert_array_equal(np.asarray(one.behaviors), rows)
    # A traced probability of 1 (with a key) also adds everything.
    one_traced = novelty.add(
        novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=jnp.float32(1.0)
    )
    assert int(one_traced.size) == 4000

    half = novelty.add(novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=0.5)
    n = int(half.size)
    assert abs(n - 2000) < 5 * np.sqrt(4000 * 0.25)  # binomial(4000, 0.5): 5 sigma
    assert int(half.num_added) == n
    # The kept rows are a subsequence of the offered rows (all distinct), in order.
    kept = rows_of(half)[:, 0]
    index = {float(v): i for i, v in enumerate(rows[:, 0])}
    where = np.array([index[float(v)] for v in kept])
    assert np.all(np.diff(where) > 0)
    # Deterministic for the same key, different for another.
    again = novelty.add(novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=0.5)
    np.testing.assert_array_equal(np.asarray(again.behaviors), np.asarray(half.behaviors))
    other = novelty.add(
        novelty.init(4000, 1), jnp.asarray(rows), key=jax.random.key(4), probability=0.5
    )
    assert not np.array_equal(np.asarray(other.behaviors), np.asarray(half.behaviors))
    # Probability and mask combine: masked rows never enter.
    mask = np.arange(4000) % 2 == 0
    both = novelty.add(
        novelty.init(4000, 1), jnp.asarray(rows), key=key, probability=0.5,
        mask=jnp.asarray(mask),
    )
    assert abs(int(both.size) - 1000) < 5 * np.sqrt(2000 * 0.25)
    assert all(mask[index[float(v)]] for v in rows_of(both)[:, 0])


def test_add_with_probability_needs_a_key():
    with pytest.raises(ValueError, match="needs a key"):
        novelty.add(novelty.init(4, B), jnp.zeros((2, B)), probability=0.5)


def test_add_rejects_wrong_shapes():
    a = novelty.init(4, B)
    with pytest.raises(ValueError, match=r"shape \[K, 3\]"):
        novelty.add(a, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"shape \[K, 3\]"):
        novelty.add(a, jnp.zeros((2,)))
    with pytest.raises(ValueError, match=r"shape \[K, 3\]"):
        novelty.add(a, jnp.zeros((1, 2, B)))


def test_init_errors():
    with pytest.raises(ValueError, match="capacity"):
        novelty.init(0, B)
    with pytest.raises(ValueError, match="behavior_size"):
        novelty.init(4, 0)


# ------------------------------------------------------------------------ jit and vmap
def test_jit_equals_eager():
    refs, queries, pop = rng_rows(13, 21), rng_rows(6, 22), rng_rows(6, 23)
    archive = filled(refs, 16)
    knn = jax.jit(novelty.knn, static_argnums=2)
    np.testing.assert_allclose(
        np.asarray(knn(jnp.asarray(queries), archive, 4)),
        np.asarray(novelty.knn(jnp.asarray(queries), archive, 4)),
        rtol=0, atol=1e-6,
    )
    knn_pop = jax.jit(lambda q, a: novelty.knn(q, a, 4, population=q))
    np.testing.assert_allclose(
        np.asarray(knn_pop(jnp.asarray(pop), archive)),
        np_knn(pop, np.concatenate([refs, pop]), 4, exclude=13 + np.arange(6)),
        rtol=0, atol=1e-5,
    )
    add = jax.jit(lambda a, x, k, p: novelty.add(a, x, key=k, probability=p))
    key = jax.random.key(0)
    jitted = add(archive, jnp.asarray(pop), key, 0.5)
    eager = novelty.add(archive, jnp.asarray(pop), key=key, probability=0.5)
    for x, y in zip(jitted, eager, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_vmap_over_archives_equals_a_loop():
    sizes = [0, 3, 9]
    archives = [filled(rng_rows(n, 30 + n), 12) if n else novelty.init(12, B) for n in sizes]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *archives)
    queries = jnp.asarray(rng_rows(5, 40))
    batched = np.asarray(jax.vmap(lambda a: novelty.knn(queries, a, 4))(stacked))
    assert batched.shape == (3, 5)
    for i, a in enumerate(archives):
        np.testing.assert_allclose(
            batched[i], np.asarray(knn(queries, a, 4)), rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(batched[i], np_knn(queries, rows_of(a), 4), atol=1e-5)
    # vmap of add over archives too
    new = jnp.asarray(rng_rows(3, 50))
    added = jax.vmap(lambda a: novelty.add(a, new))(stacked)
    for i, a in enumerate(archives):
        one = novelty.add(a, new)
        np.testing.assert_array_equal(np.asarray(added.behaviors[i]), np.asarray(one.behaviors))
        assert int(added.size[i]) == min(sizes[i] + 3, 12)


def test_non_finite_behaviors_never_enter_the_archive():
    archive = novelty.init(4, 2)
    rows = np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, np.inf], [5.0, 6.0]], np.float32)
    archive = novelty.add(archive, rows)
    assert int(archive.size) == 2 and int(archive.num_added) == 2
    np.testing.assert_array_equal(np.asarray(archive.behaviors[:2]), rows[[0, 3]])
    # Distances stay finite for finite queries; a NaN query gets NaN (ranked worst later).
    out = np.asarray(novelty.knn(np.array([[1.0, 2.0], [np.nan, 1.0]], np.float32), archive, k=2))
    np.testing.assert_allclose(out[0], (0.0 + np.hypot(4.0, 4.0)) / 2, rtol=1e-6)
    assert np.isnan(out[1])
