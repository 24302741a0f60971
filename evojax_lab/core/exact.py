"""Exact float32 building blocks of bit-exact seed genomes (see :mod:`evojax_lab.genome`).

XLA may contract ``a * b + c`` into one fused multiply-add depending on the surrounding program,
so ``theta + sigma * eps`` can round differently inside a training run and inside a decoder. Values
rounded to :data:`SIGNIFICANT_BITS` = 12 significant bits multiply exactly in float32 (at most 24
significant bits), which makes such sums independent of fusion. :func:`seed_key` turns a
``uint32`` seed into a threefry key whatever JAX's default PRNG is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Significant bits kept in noise samples and sigmas (their products are exact in float32).
SIGNIFICANT_BITS = 12


def round_significand(x, bits: int = SIGNIFICANT_BITS) -> jax.Array:
    """Round float32 ``x`` to ``bits`` significant bits (to nearest, ties away from zero).

    Pure integer operations on the bit pattern, so the result never depends on compilation. For
    ``bits = 12`` the relative change is at most 2^-12. Finite values only.
    """
    if not 1 <= int(bits) <= 24:
        raise ValueError(f"bits must be in [1, 24], got {bits}")
    drop = 24 - int(bits)
    u = jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.uint32)
    if drop == 0:
        return jax.lax.bitcast_convert_type(u, jnp.float32)
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return jax.lax.bitcast_convert_type((u + half) & mask, jnp.float32)


def round_significand_np(x, bits: int = SIGNIFICANT_BITS) -> np.float32:
    """:func:`round_significand` of a Python/NumPy scalar, in NumPy (for constants)."""
    drop = 24 - int(bits)
    u = np.asarray(x, np.float32).view(np.uint32)
    u = (u + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return u.view(np.float32)[()]


def seed_key(seed) -> jax.Array:
    """The PRNG key of a ``uint32`` seed (threefry2x32, independent of JAX's default)."""
    return jax.random.key(jnp.asarray(seed, jnp.uint32), impl="threefry2x32")


def to_key(key_or_seed) -> jax.Array:
    k = jnp.asarray(key_or_seed) if not isinstance(key_or_seed, jax.Array) else key_or_seed
    if jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        return k
    if k.shape == ():
        return seed_key(k)
    return k  # a raw uint32[2] key
