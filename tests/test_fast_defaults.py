"""Defaults chosen from the problem size (issue 18): the noise source of OpenAI-ES and the
evaluation layout of make_train. Small problems keep exactly the old path (same numbers for the
same key); large ones get the ES paper's shared table and bounded-memory evaluation; an explicit
choice is always kept."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_golden import leaves_equal

import evojax_lab as el
from evojax_lab.core import noise
from evojax_lab.train import evaluation_layout


@pytest.mark.parametrize(
    "num_params, draws, expected",
    [
        (1_282, 128, ("fold_in", 0)),                # CartPole MLP, P = 256: 164k normals
        (131_072, 31, ("fold_in", 0)),               # just below 2^22 normals
        (131_072, 32, ("table", 25_000_000)),         # 2^22: the table, default size
        (1_000_000, 512, ("table", 25_000_000)),      # N = 1M, P = 1,024
        (4_000_000, 512, ("table", 64_000_000)),      # 16 windows of N
        (16_777_216, 8, ("table", 1 << 28)),          # 16 N = 2^28 floats: still fits
        (16_777_217, 8, ("fold_in", 0)),              # a table over 1 GiB: fold-in keys
    ],
)
def test_choose_picks_the_table_for_large_problems(num_params, draws, expected):
    source = noise.choose(num_params, draws)
    assert (source.kind, source.size) == expected


def quadratic(key, params):
    del key
    return -jnp.sum(jnp.square(params["x"]))


def run(strategy, n, generations=2):
    task = el.tasks.function(quadratic)
    trainer = el.make_train(task, None, strategy, generations=generations, eval_episodes=0,
                            params={"x": jnp.full((n,), 0.1)}, mesh=None)
    return trainer(jax.random.PRNGKey(0))


def test_small_problem_default_is_exactly_fold_in():
    default = run(el.strategies.openai_es(16, 0.1), 100)
    explicit = run(el.strategies.openai_es(16, 0.1, noise=el.noise.fold_in()), 100)
    assert default.state.noise is None
    leaves_equal(default, explicit)


def test_large_problem_default_is_the_shared_table():
    n = 131_072  # P/2 x N = 2^22 normals per draw
    default = run(el.strategies.openai_es(64, 0.02), n, generations=1)
    explicit = run(el.strategies.openai_es(64, 0.02, noise=el.noise.table(
        25_000_000, tile=noise.AUTO_TILE, block=noise.AUTO_BLOCK)), n, generations=1)
    table = np.asarray(default.state.noise)
    assert table.shape == (25_000_000,)
    # the table holds normals from the fixed seed 123, built a block of 2^20 at a time
    seed = jax.random.PRNGKey(123)
    first = jax.random.normal(jax.random.fold_in(seed, 0), (noise.AUTO_BLOCK,))
    last = jax.random.normal(jax.random.fold_in(seed, 23), (noise.AUTO_BLOCK,))
    np.testing.assert_array_equal(table[:5], np.asarray(first[:5]))
    np.testing.assert_array_equal(table[-5:], np.asarray(last[-5:]))
    leaves_equal(default, explicit)
    # and the old behaviour stays available by argument
    kept = run(el.strategies.openai_es(64, 0.02, noise=el.noise.fold_in()), n, generations=1)
    assert kept.state.noise is None


def test_table_built_block_by_block_matches_numpy_assembly():
    """size 10 in blocks of 4: blocks 0 and 1 at offsets 0 and 4, block 2 at 10 - 4 = 6 (it
    overwrites entries 6 and 7 of block 1); block 0 (no blocks) is the one-draw table."""
    seed = jax.random.PRNGKey(5)
    blocks = [np.asarray(jax.random.normal(jax.random.fold_in(seed, b), (4,))) for b in range(3)]
    expected = np.concatenate([blocks[0], blocks[1][:2], blocks[2]])
    np.testing.assert_array_equal(np.asarray(noise.build_table(10, 5, 4)), expected)
    np.testing.assert_array_equal(np.asarray(el.noise.table(10, seed=5, block=4).init()), expected)
    np.testing.assert_array_equal(np.asarray(noise.build_table(10, 5, 0)),
                                  np.asarray(jax.random.normal(seed, (10,))))
    np.testing.assert_array_equal(np.asarray(noise.build_table(3, 5, 4)),  # block > size
                                  np.asarray(jax.random.normal(jax.random.fold_in(seed, 0), (3,))))
    with pytest.raises(ValueError, match="block must be >= 0"):
        el.noise.table(10, block=-1)


def test_default_table_builds_without_table_sized_temporaries():
    """Building the automatic 25M table needs under half a table of scratch memory, not the
    300 MB of one normal(key, [25M]) draw (XLA's compiled memory analysis, no run)."""
    auto = noise.choose(1_000_000, 512)
    scratch = jax.jit(auto.init).lower().compile().memory_analysis().temp_size_in_bytes
    assert scratch < 0.5 * auto.size * 4  # measured: 25 MB (6 blocks), against 3 x 100 MB


def layout(pop_size, n, chunk_size=None, member=True):
    strategy = el.strategies.openai_es(pop_size, 0.1, noise=el.noise.fold_in())
    if not member:
        strategy = strategy._replace(member=None)
    state = jax.eval_shape(strategy.init, jax.random.PRNGKey(0), {"x": jnp.zeros(n)})
    return evaluation_layout(strategy, state, chunk_size)


def test_evaluation_layout_bounds_memory_only_for_large_populations():
    assert layout(1024, 1_282) == (False, None)          # 5 MB of parameters: built by ask
    assert layout(256, 262_144) == (False, None)          # exactly 256 MiB: still built
    assert layout(256, 262_145) == (True, 2)              # over: 4 MiB of members a chunk
    assert layout(1024, 1_000_000) == (True, 1)           # N = 1M: one member at a time
    assert layout(1024, 1_000_000, chunk_size=64) == (True, 64)  # an explicit choice is kept
    assert layout(8, 1_282, chunk_size=4) == (True, 4)
    assert layout(1024, 1_000_000, member=False) == (False, None)  # no member: nothing to build


def test_tiled_table_sums_match_numpy():
    """weighted_sums of a tiled table = the sum of the weighted windows, computed in NumPy from
    the table and the offsets; 50 parameters in tiles of 16 (the last tile overlaps)."""
    source = el.noise.table(1_000, tile=16)
    table = source.init()
    key, dim = jax.random.PRNGKey(7), 50
    weights = jax.random.normal(jax.random.PRNGKey(8), (3, 5))
    indices = jnp.arange(15).reshape(3, 5)
    got = np.asarray(noise.weighted_sums(source, table, key, weights, indices, dim))
    offsets = np.asarray(jax.vmap(lambda i: noise.offset(source, key, i, dim))(jnp.arange(15)))
    t, w = np.asarray(table, np.float64), np.asarray(weights, np.float64).reshape(-1)
    windows = np.stack([t[o:o + dim] for o in offsets])
    expected = (w[:, None] * windows).reshape(3, 5, dim).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # the untiled product gives the same sums
    plain = noise.weighted_sums(source._replace(tile=0), table, key, weights, indices, dim)
    np.testing.assert_allclose(got, np.asarray(plain), rtol=1e-6, atol=1e-6)


def test_tiled_table_sums_are_the_rows_in_order_at_any_tile():
    """Each block's sum is its rows added in order, in float32 (NumPy by hand: ``acc = acc +
    w_j * window_j``), whatever the tile: 16 (overlapping last tile), 25, 50 and 4M (one
    full-width tile, the automatic one) give the same floats bit for bit."""
    key, dim = jax.random.PRNGKey(7), 50
    table = el.noise.table(1_000).init()
    weights = jax.random.normal(jax.random.PRNGKey(8), (3, 5))
    indices = jnp.arange(15).reshape(3, 5)
    source = el.noise.table(1_000, tile=16)
    offsets = np.asarray(jax.vmap(lambda i: noise.offset(source, key, i, dim))(indices.ravel()))
    t, w = np.asarray(table), np.asarray(weights).reshape(-1)
    expected = np.zeros((3, dim), np.float32)
    for row, o in enumerate(offsets):
        expected[row // 5] = expected[row // 5] + np.float32(w[row]) * t[o:o + dim]
    for tile in (16, 25, 50, noise.AUTO_TILE):
        got = noise.weighted_sums(source._replace(tile=tile), table, key, weights, indices, dim)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(
            noise.weighted_sums(source, table, key, weights, indices, dim)))


def test_tiled_table_es_is_the_same_run_on_one_and_two_devices():
    strategy = el.strategies.openai_es(8, 0.1, noise=el.noise.table(10_000, tile=64))
    task = el.tasks.function(quadratic)
    runs = [el.make_train(task, None, strategy, generations=2, eval_episodes=0,
                          params={"x": jnp.full((300,), 0.1)}, mesh=mesh)(jax.random.PRNGKey(1))
            for mesh in (None, "auto")]
    leaves_equal(runs[0], runs[1])


# ----------------------------------------------- OpenAI-ES tell reuses ask's draw (small problems)
@pytest.mark.parametrize("pop_size", [32, 48, 2048])
def test_tell_from_asks_draw_equals_block_by_block_regeneration(pop_size):
    """Small fold-in problems: tell takes its per-block products from one draw made as ask's
    (one product over the whole draw); an explicit chunk_size of the same block keeps the
    block-by-block regeneration. Same blocks, same products: the same run bit for bit."""
    block = -(-(pop_size // 2) // 8)  # tell's default block: ceil(n / 8)
    one_draw = run(el.strategies.openai_es(pop_size, 0.1), 100, generations=3)
    blockwise = run(el.strategies.openai_es(pop_size, 0.1, chunk_size=block), 100,
                    generations=3)
    assert not np.array_equal(np.asarray(one_draw.state.mean["x"]), np.full(100, 0.1))
    leaves_equal(one_draw, blockwise)


def test_tell_alone_equals_tell_in_one_program_with_ask():
    s = el.strategies.openai_es(32, 0.1)
    blockwise = el.strategies.openai_es(32, 0.1, chunk_size=2)
    state = s.init(jax.random.PRNGKey(1), {"x": jnp.linspace(-1.0, 1.0, 50)})
    key = jax.random.PRNGKey(2)
    population, asked = jax.jit(s.ask)(key, state)
    fitness = -jnp.sum(jnp.square(population["x"]), axis=1)
    alone, _ = jax.jit(s.tell)(key, population, fitness, asked)
    expected, _ = jax.jit(blockwise.tell)(key, population, fitness, asked)
    np.testing.assert_array_equal(np.asarray(alone.mean["x"]), np.asarray(expected.mean["x"]))
    # and the step follows the ES formula (NumPy): g = sum_i w_i eps_i / P, Adam's first step
    eps = (np.asarray(population["x"][:16]) - np.asarray(state.mean["x"])) / 0.1
    f = np.asarray(fitness)
    ranks = np.argsort(np.argsort(f, kind="stable"), kind="stable")
    u = ranks / 31 - 0.5
    g = (u[:16] - u[16:]) @ eps / 32
    grad = -g + 0.005 * np.asarray(state.mean["x"])
    step = -0.01 * np.sign(grad)  # Adam's first step: lr * m_hat / sqrt(v_hat) = lr * sign
    np.testing.assert_allclose(np.asarray(alone.mean["x"]), np.asarray(state.mean["x"]) + step,
                               atol=1e-6)


# ------------------------------------------------ rollouts split a key every step
@pytest.mark.parametrize("name", ["CartPole-v1", "Asterix-MinAtar"])
def test_rollout_equals_a_loop_that_splits_a_key_every_step(name):
    """The rollout is the done-masked loop that splits a key every step, written out here: the
    same returns and lengths, for a deterministic task (CartPole) and a stochastic one (Asterix
    spawns enemies from the key)."""
    task = el.tasks.make(name, max_steps=40)
    policy = el.policies.for_task(task)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    members = jax.vmap(lambda k: policy.init(k, jnp.zeros(task.observation_shape)))(keys)

    def by_hand(key, params):
        key, reset_key = jax.random.split(key)
        obs, state = task.reset(reset_key)

        def one_step(_, carry):
            key, obs, state, ret, t, done = carry
            key, step_key = jax.random.split(key)
            obs2, state2, reward, done2 = task.step(step_key, state, policy.apply(params, obs))
            live = ~done
            obs, state = jax.tree.map(lambda a, b: jnp.where(live, a, b), (obs2, state2),
                                      (obs, state))
            return key, obs, state, ret + jnp.where(live, reward, 0.0), t + live, done | done2

        init = (key, obs, state, jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
        return jax.lax.fori_loop(0, 40, one_step, init)[3:5]

    key = jax.random.PRNGKey(4)
    expected = jax.jit(jax.vmap(by_hand, in_axes=(None, 0)))(key, members)
    got = jax.jit(jax.vmap(lambda p: el.rollout(key, task, policy, p)[:2]))(members)
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(expected[1]))
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(expected[0]))
    assert len(np.unique(np.asarray(expected[0]))) > 1  # the members' episodes differ
