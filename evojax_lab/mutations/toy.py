"""The two-weight toy domains of Lehman et al. (2017), "Safe Mutations for Deep and Recurrent
Neural Networks through Output Gradients", arXiv:1712.06563 (REFERENCE §3).

A "network" with two weights and two outputs whose scales differ by 10^3::

    y = [100 * w0 * x0, 0.1 * w1 * x1]

fitness ``-sum_k sum_o (y_{k,o} - t_{k,o})^2`` with targets ``t = x`` (summed over the batch;
the optimum ``w = (0.01, 10)`` has fitness 0). Three input batches (``K = 2``):

* ``"easy"``    ``X = [[0, 1], [0, 1]]``: only ``w1`` matters;
* ``"medium"``  ``X = [[1, 0], [0, 1]]``: both matter, one example each;
* ``"washout"`` ``X = [[1, 1], [-1, -1]]``: both matter and the two examples' signed gradients
  cancel, so SM-G-SUM sees ``s = (0, 0)`` (it falls back to a plain mutation) while SM-G-ABS
  sees ``s = (100, 0.1)``.

A plain mutation of size ``m`` moves ``y0`` by ``100 m`` but ``y1`` only by ``0.1 m``: large enough
for ``w0`` it is far too small for ``w1``, and once ``w0`` is near its optimum almost every
mutation is rejected because it spoils ``y0``. The search is a (1+1) hill climber
(:func:`hill_climb`), 2,000 iterations, accepting strict improvements. Our start point is
``w = (0, 0)`` (:func:`toy_init`; fitness ``-sum x^2``): the paper's start point is not recorded
in REFERENCE, and a fixed start makes runs comparable across mutation operators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Input batches ``X`` (``K = 2`` examples of 2 inputs) of the three toy domains. NumPy, not
#: jax arrays: a jax array built at import would start the XLA backend, after which
#: ``jax.distributed.initialize`` (multi-host runs) refuses to run.
TOY_DOMAINS: dict[str, np.ndarray] = {
    "easy": np.array([[0.0, 1.0], [0.0, 1.0]], np.float32),
    "medium": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
    "washout": np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32),
}
#: Output scales: ``y = OUTPUT_SCALES * w * x``.
OUTPUT_SCALES = (100.0, 0.1)

Mutate = Callable[[jax.Array, Any, jax.Array], Any]


def toy_init() -> dict:
    """Our start point: ``{"w": [0, 0]}`` (float32)."""
    return {"w": jnp.zeros(2, jnp.float32)}


def toy_apply(params, x) -> jax.Array:
    """Outputs ``[100 w0 x0, 0.1 w1 x1]`` of ONE example ``x`` (float[2]); params ``{"w": [2]}``."""
    return jnp.asarray(OUTPUT_SCALES, jnp.float32) * params["w"] * x


def toy_fitness(params, inputs) -> jax.Array:
    """``-sum_k sum_o (y_{k,o} - x_{k,o})^2`` over the batch ``inputs [K, 2]`` (maximized)."""
    y = jax.vmap(lambda x: toy_apply(params, x))(inputs)
    return -jnp.sum(jnp.square(y - inputs))


class HillClimbResult(NamedTuple):
    """Outcome of :func:`hill_climb`.

    Attributes:
        params: the final (best) parameters.
        fitness: their fitness.
        num_accepted: accepted mutations (``int32``).
        history: ``[iterations]`` best fitness after each iteration.
    """

    params: Any
    fitness: jax.Array
    num_accepted: jax.Array
    history: jax.Array


def hill_climb(
    key: jax.Array,
    params0,
    inputs,
    mutate: Mutate,
    iterations: int = 2000,
    fitness_fn: Callable[[Any, Any], jax.Array] = toy_fitness,
) -> HillClimbResult:
    """A (1+1) hill climber: mutate the current point, keep the child if strictly fitter.

    The toy search of Lehman et al. (2017), arXiv:1712.06563 (2,000 iterations). Jittable and
    vmappable over ``key`` (one ``lax.scan``); ``mutate`` and ``iterations`` are static.

    Args:
        key: PRNG key; iteration ``i`` mutates with the ``i``-th key of
            ``jax.random.split(key, iterations)``.
        params0: the start point (our experiments use :func:`toy_init`, ``w = (0, 0)``).
        inputs: the domain's batch, e.g. ``TOY_DOMAINS["washout"]``; passed to ``mutate`` (the
            safe mutations compute their sensitivities on it) and to ``fitness_fn``.
        mutate: ``mutate(key, params, inputs) -> params``.
        iterations: number of mutations tried.
        fitness_fn: ``fitness_fn(params, inputs)`` (default :func:`toy_fitness`).
    """
    fit0 = fitness_fn(params0, inputs)

    def step(carry, k):
        params, fit, accepted = carry
        child = mutate(k, params, inputs)
        child_fit = fitness_fn(child, inputs)
        better = child_fit > fit
        params = jax.tree.map(lambda c, p: jnp.where(better, c, p), child, params)
        fit = jnp.where(better, child_fit, fit)
        return (params, fit, accepted + better.astype(jnp.int32)), fit

    (params, fit, accepted), history = jax.lax.scan(
        step, (params0, fit0, jnp.zeros((), jnp.int32)), jax.random.split(key, int(iterations))
    )
    return HillClimbResult(params, fit, accepted, history)


__all__ = [
    "OUTPUT_SCALES",
    "TOY_DOMAINS",
    "HillClimbResult",
    "hill_climb",
    "toy_apply",
    "toy_fitness",
    "toy_init",
]
