"""Seed-chain genomes: exact operators (NumPy goldens), reference init, bytes and their errors."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy_golden import leaves_equal, normal_np, round12_np

import evojax_lab as el
from evojax_lab import genome as G

DQN_PARAMS = 4_052_658


@pytest.fixture(scope="module")
def mlp_template():
    return el.policies.MLP(2, hidden=(5,)).init(jax.random.key(0), jnp.zeros(3))


def test_round_significand_matches_numpy_and_makes_products_exact():
    x = np.random.default_rng(0).normal(size=4096).astype(np.float32) * 10.0 ** np.arange(
        -4, 4
    ).repeat(512).astype(np.float32)
    r = np.asarray(G.round_significand(x))
    np.testing.assert_array_equal(r, round12_np(x))
    assert np.all(np.abs(r - x) <= np.abs(x) * 2.0**-12)
    np.testing.assert_array_equal(np.asarray(G.round_significand(r)), r)  # idempotent
    # two 12-bit significands: the float32 product is exact (equals the float64 product)
    s = round12_np(np.float32(0.0123))
    np.testing.assert_array_equal((r * s).astype(np.float64), r.astype(np.float64) * float(s))


def test_gaussian_mutation_equals_numpy_two_step_golden(mlp_template):
    """theta + sigma * eps under jit equals NumPy's separately rounded multiply and add, bit for
    bit: XLA's FMA contraction cannot change an exact product."""
    flat, unravel = el.tree.ravel(mlp_template)
    theta = np.random.default_rng(1).normal(size=flat.shape).astype(np.float32)
    sigma = 0.0123
    got = jax.jit(lambda t: G.gaussian(G.seed_key(77), unravel(t), sigma))(theta)
    eps = round12_np(normal_np(77, flat.shape[0]))
    expected = theta + (round12_np(sigma) * eps).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(el.tree.ravel(got)[0]), expected)
    np.testing.assert_array_equal(np.asarray(G.noise(77, flat.shape[0])), eps)


def test_reference_init_golden(mlp_template):
    params = G.reference_init(jnp.uint32(5), mlp_template)
    eps = round12_np(normal_np(5, 3 * 5 + 5 + 5 * 2 + 2))
    # tree order: Dense_0 {bias, kernel}, Dense_1 {bias, kernel}
    p = jax.tree.map(np.asarray, params["params"])
    np.testing.assert_array_equal(p["Dense_0"]["bias"], 0.0)
    np.testing.assert_array_equal(p["Dense_1"]["bias"], 0.0)
    k0 = eps[5:20].reshape(3, 5) * round12_np(1.0 / np.sqrt(3))
    k1 = eps[22:32].reshape(5, 2) * round12_np(0.1 / np.sqrt(5))  # output layer: std 0.1
    np.testing.assert_array_equal(p["Dense_0"]["kernel"], k0.astype(np.float32))
    np.testing.assert_array_equal(p["Dense_1"]["kernel"], k1.astype(np.float32))
    # a key or a seed gives the same parameters; a template of shapes works too
    shapes = jax.eval_shape(lambda: mlp_template)
    leaves_equal(G.reference_init(G.seed_key(5), shapes), params)


def test_reference_init_statistics_and_output_layer_detection():
    # Naturally sorted paths: Dense_10 (not Dense_9) is the output layer.
    template = {"params": {f"Dense_{i}": {"kernel": jnp.zeros((64, 64)),
                                          "bias": jnp.zeros(64)} for i in range(11)}}
    assert G.output_kernel(template) == ("params", "Dense_10", "kernel")
    p = G.reference_init(jnp.uint32(3), template)["params"]
    assert abs(float(jnp.std(p["Dense_10"]["kernel"])) - 0.1 / 8) < 0.1 / 8 * 0.1
    assert abs(float(jnp.std(p["Dense_9"]["kernel"])) - 1.0 / 8) < 1.0 / 8 * 0.1
    assert G.output_kernel(template, "Dense_3") == ("params", "Dense_3", "kernel")
    with pytest.raises(ValueError, match="output_layer"):
        G.output_kernel(template, "Conv_0")
    conv = {"params": {"Conv_0": {"kernel": jnp.zeros((3, 3, 4, 16))}, "scale": jnp.zeros(4),
                       "Dense_0": {"kernel": jnp.zeros((100, 3))}}}
    p = G.reference_init(jnp.uint32(1), conv)["params"]
    np.testing.assert_array_equal(np.asarray(p["scale"]), 1.0)  # normalization scales are 1
    assert abs(float(jnp.std(p["Conv_0"]["kernel"])) - 1 / 6) < 1 / 6 * 0.15  # fan_in 36


def test_append_and_overflow():
    g = G.new(9, 2)
    g = G.append(g, 11, 0.5)
    g = G.append(g, 12, 0.0123)
    np.testing.assert_array_equal(np.asarray(g.seeds), [11, 12])
    np.testing.assert_array_equal(np.asarray(g.sigmas), [0.5, round12_np(0.0123)])
    assert int(g.length) == 2 and not bool(G.overflowed(g))
    over = G.append(g, 13, 0.5)
    assert int(over.length) == 3 and bool(G.overflowed(over))
    np.testing.assert_array_equal(np.asarray(over.seeds), [11, 12])  # nothing overwritten
    with pytest.raises(ValueError, match="overflowed"):
        G.to_bytes(over)
    with pytest.raises(ValueError, match="overflowed"):
        G.decode(over, {"w": jnp.zeros((2, 2))})


def test_decode_replays_the_chain(mlp_template):
    g = G.new(4, 8)
    expected = G.reference_init(G.seed_key(4), mlp_template)
    for j in range(5):
        g = G.append(g, 100 + j, 0.05 * (j + 1))
        expected = G.gaussian(G.seed_key(100 + j), expected, G.round_significand(0.05 * (j + 1)))
    leaves_equal(G.decode(g, mlp_template), expected)
    leaves_equal(G.decode(G.to_bytes(g), mlp_template), expected)
    leaves_equal(G.decode(G.from_bytes(G.to_bytes(g), capacity=8), mlp_template), expected)


def test_bytes_round_trip_and_metadata(mlp_template):
    g = G.new(np.uint32(4_000_000_000), 10)
    for j in range(7):
        g = G.append(g, np.uint32(2**32 - 1 - j), 0.002)
    data = G.to_bytes(g, num_params=23, metadata={"task": "CartPole-v1", "policy": "MLP"})
    back = G.from_bytes(data)
    assert int(back.length) == 7 and back.seeds.shape == (7,)
    assert int(back.init_seed) == 4_000_000_000
    np.testing.assert_array_equal(np.asarray(back.seeds), np.asarray(g.seeds)[:7])
    np.testing.assert_array_equal(np.asarray(back.sigmas), np.asarray(g.sigmas)[:7])
    info = G.info(data)
    assert info["metadata"] == {"task": "CartPole-v1", "policy": "MLP"}
    assert info["num_params"] == 23 and info["num_mutations"] == 7
    assert len(G.to_bytes(g)) == G.num_bytes(g) == 32 + 8 * 7
    with pytest.raises(ValueError, match="23 parameters"):
        G.decode(data, {"w": jnp.zeros((5, 5))})
    with pytest.raises(ValueError, match="capacity"):
        G.from_bytes(data, capacity=3)


def test_dqn_genome_after_1000_generations_fits_in_16_kb():
    shapes = jax.eval_shape(
        el.policies.NatureCNN(18).init, jax.random.key(0), jnp.zeros((84, 84, 4))
    )
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    assert num_params == DQN_PARAMS
    rng = np.random.default_rng(0)
    g = G.Genome(
        init_seed=jnp.uint32(rng.integers(2**32)),
        seeds=jnp.asarray(rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)),
        sigmas=G.round_significand(jnp.full(1000, 0.002)),
        length=jnp.int32(1000),
    )
    data = G.to_bytes(g, num_params=num_params, metadata={"policy": "NatureCNN"})
    assert len(data) <= 16 * 1024, len(data)
    ratio = G.compression_ratio(g, shapes)
    assert ratio > 2000, ratio  # 16.2 MB of float32 weights vs 8 KB of seeds
    back = G.from_bytes(data)
    np.testing.assert_array_equal(np.asarray(back.seeds), np.asarray(g.seeds))


@pytest.fixture(scope="module")
def valid_bytes():
    g = G.new(1, 4)
    for j in range(4):
        g = G.append(g, 10 + j, 0.01)
    return G.to_bytes(g, metadata={"k": 1})


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b[:10], "truncated"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[: G.HEADER_SIZE + 5], "truncated"),
        (lambda b: b + b"\x00", "trailing"),
        (lambda b: b[:40] + bytes([b[40] ^ 0x01]) + b[41:], "corrupted"),
        (lambda b: b[:-2] + b"x}", "corrupted"),
        (lambda b: b[:8] + bytes([b[8] + 1]) + b[9:], "truncated.*corrupted"),
        (lambda b: b[:4] + b"\x02\x00" + b[6:], "version"),
        (lambda b: b"\x89PNG\r\n\x1a\n" + b[8:], "not an evojax_lab genome"),
        (lambda b: b"", "not an evojax_lab genome|truncated"),
        (lambda b: flax.serialization.to_bytes({"w": np.zeros(3)}), "not an evojax_lab genome"),
    ],
    ids=["header", "last-byte", "payload", "trailing", "bit-flip", "metadata", "length-field",
         "version", "foreign", "empty", "msgpack"],
)
def test_bad_bytes_raise_clear_errors(valid_bytes, mangle, message):
    bad = mangle(valid_bytes)
    assert bad != valid_bytes
    with pytest.raises(ValueError, match=message):
        G.from_bytes(bad)
    with pytest.raises(ValueError, match=message):
        G.decode(bad, {"w": jnp.zeros(3)})


def test_non_bytes_and_batches_are_rejected():
    with pytest.raises(TypeError, match="bytes"):
        G.from_bytes("EJGN")
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), G.new(1, 3))
    with pytest.raises(ValueError, match="one genome"):
        G.to_bytes(batch)
