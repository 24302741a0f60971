"""ES vs finite differences on low-dimensional fitness functions (Lehman et al. 2017,
arXiv:1712.06568): two optimizers that differ only in the gradient they follow.

* :func:`fd_ascent`: plain gradient ascent ``x <- x + lr * g`` with ``g`` the central
  finite-difference gradient (step ``h``, tiny) or ``jax.grad`` — it follows ``grad F``;
* :func:`es_ascent`: the same update with ``g`` the mirrored ES estimate with raw fitness
  differences (:func:`~evojax_lab.analysis.es_gradient`) — it follows the gradient of the
  smoothed ``E F(x + sigma eps)``; with ``sigma -> 0`` it becomes FD.

Both work on a flat parameter vector ``x [d]`` and return the whole trajectory (for drawing).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from evojax_lab.analysis.gradients import es_gradient
from evojax_lab.core.checks import check_positive, check_positive_int

_METHODS = ("central", "grad")


def _flat(x0) -> jax.Array:
    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a flat vector [d], got shape {x0.shape}")
    return x0


def finite_difference_gradient(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                               h: float = 1e-4) -> jax.Array:
    """Central differences ``(F(x + h e_j) - F(x - h e_j)) / (2h)`` for every coordinate ``j``
    of a flat ``x``."""
    x = _flat(x)
    steps = h * jnp.eye(x.shape[0], dtype=x.dtype)
    f = jax.vmap(lambda v: jnp.asarray(fn(v), jnp.float32).reshape(()))
    return (f(x + steps) - f(x - steps)) / (2.0 * h)


def fd_ascent(fn: Callable[[jax.Array], jax.Array], x0, *, steps: int, learning_rate: float,
              h: float = 1e-4, method: str = "central") -> jax.Array:
    """Gradient ascent on ``fn`` following the finite-difference (or exact) gradient.

    Args:
        fn: ``fn(x [d]) -> scalar`` fitness (maximized).
        x0: start ``[d]``.
        steps: number of updates.
        learning_rate: ``x <- x + learning_rate * g``.
        h: finite-difference step (``method="central"``).
        method: ``"central"`` (central differences) or ``"grad"`` (``jax.grad``).

    Returns:
        The trajectory ``[steps + 1, d]`` (the start first).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    steps = check_positive_int("steps", steps)
    check_positive("learning_rate", learning_rate)
    check_positive("h", h)
    grad = (lambda x: finite_difference_gradient(fn, x, h)) if method == "central" else (
        jax.grad(lambda x: jnp.asarray(fn(x), jnp.float32).reshape(())))

    def body(x, _):
        x = x + learning_rate * grad(x)
        return x, x

    x0 = _flat(x0)
    _, xs = jax.lax.scan(body, x0, None, length=steps)
    return jnp.concatenate([x0[None], xs])


def es_ascent(key: jax.Array, fn: Callable[[jax.Array], jax.Array], x0, *, steps: int,
              learning_rate: float, sigma: float, num_pairs: int,
              shaping: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
    """Gradient ascent on ``fn`` following the mirrored ES gradient estimate.

    Args:
        key: PRNG key (step ``t`` uses ``fold_in(key, t)``).
        fn: ``fn(x [d]) -> scalar`` fitness (maximized).
        x0: start ``[d]``.
        steps: number of updates.
        learning_rate: ``x <- x + learning_rate * g``.
        sigma: ES perturbation scale.
        num_pairs: mirrored pairs per step (population ``2 * num_pairs``).
        shaping: see :func:`~evojax_lab.analysis.es_gradient` (``None``: raw differences, an
            unbiased estimate of the smoothed gradient).

    Returns:
        The trajectory ``[steps + 1, d]`` (the start first).
    """
    steps = check_positive_int("steps", steps)
    check_positive("learning_rate", learning_rate)
    num_pairs = check_positive_int("num_pairs", num_pairs)
    check_positive("sigma", sigma)

    def body(x, t):
        g = es_gradient(jax.random.fold_in(key, t), fn, x, num_pairs, sigma, shaping=shaping)
        x = x + learning_rate * g
        return x, x

    x0 = _flat(x0)
    _, xs = jax.lax.scan(body, x0, jnp.arange(steps))
    return jnp.concatenate([x0[None], xs])
