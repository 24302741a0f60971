"""The plain Gaussian mutation of the Deep GA (Such et al. 2017, arXiv:1712.06567)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from evojax_lab.core.exact import round_significand, to_key
from evojax_lab.core.tree import ravel
from evojax_lab.mutations.base import Mutation


def _gaussian(key: jax.Array, params, sigma, experiences=None):
    """``theta + sigma * eps`` with ``eps = round12(normal(key, [N]))`` and ``sigma`` rounded to 12
    bits. ``key`` is a seed's key (:func:`~evojax_lab.genome.seed_key`) or a ``uint32`` seed.

    The product ``sigma * eps`` is exact in float32, so the result is bit-identical however XLA
    fuses the operation (see :mod:`evojax_lab.genome`). One O(N) pass over the parameters.
    """
    del experiences
    flat, unravel = ravel(params)
    eps = round_significand(jax.random.normal(to_key(key), flat.shape, jnp.float32))
    return unravel(flat + round_significand(sigma) * eps.astype(flat.dtype))


#: The Deep GA mutation ``theta + sigma * eps`` (decodable: seed genomes rebuild it bit for bit).
#: Call it as ``gaussian(key, params, sigma)``.
gaussian = Mutation(apply=_gaussian, decodable=True, name="gaussian")
