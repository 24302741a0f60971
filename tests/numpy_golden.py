"""Independent NumPy references shared by the genome and Deep GA tests."""

import jax
import numpy as np


def round12_np(x):
    """Round float32 values to 12 significant bits (nearest, ties away from zero) in NumPy."""
    x = np.asarray(x, np.float32)
    mantissa, exponent = np.frexp(x.astype(np.float64))  # x = m * 2^e, 0.5 <= |m| < 1
    scaled = mantissa * 2.0**12
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.ldexp(rounded / 2.0**12, exponent).astype(np.float32)


def normal_np(seed, n):
    """The noise spec: jax.random.normal of the seed's threefry key, as a NumPy array."""
    return np.asarray(jax.random.normal(jax.random.key(int(seed), impl="threefry2x32"), (n,)))


def key_free(x):
    """A typed PRNG key as its raw data (NumPy cannot hold keys); anything else as is."""
    if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
        return jax.random.key_data(x)
    return x


def leaves_equal(a, b):
    """Bit-exact equality of two pytrees (typed PRNG keys compared by their data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(key_free(x)), np.asarray(key_free(y)))
