"""ES gradient estimates against the true gradient, and the SGD proxy (Zhang, Clune & Stanley
2017, "On the Relationship Between the OpenAI Evolution Strategy and Stochastic Gradient
Descent", arXiv:1712.06564).

The estimate used here (:func:`es_gradient`) is the OpenAI-ES estimate with mirrored sampling and,
by default, **raw fitness differences** instead of centered ranks::

    g = 1 / (2 n sigma) * sum_{i=1..n} (F(theta + sigma eps_i) - F(theta - sigma eps_i)) eps_i

an unbiased estimate of the gradient of the Gaussian-smoothed objective ``E F(theta + sigma
eps)``; for a linear ``F`` its expectation is ``grad F``. For a linear objective in ``d``
dimensions the cosine between ``g`` and ``grad F`` is ``sqrt(B)`` with ``B ~ Beta(n/2,
(d-1)/2)``, so ``E cos ~= sqrt(n / (n + d - 1))`` (:func:`expected_cosine`; Jensen makes the
exact mean slightly lower, by under 3% for ``n >= 10``). ``shaping=el.shaping.centered_rank``
gives the library's own OpenAI-ES estimate (ranks over all ``2n`` members, no ``1/sigma``;
the cosine does not depend on the scale).

The SGD proxy (:func:`degrade_gradient`, :func:`sgd_proxy`) is SGD whose gradient is replaced by
a vector with a prescribed cosine ``c`` to the true one and the same norm::

    g_c = |g| (c g_hat + sqrt(1 - c^2) u),   u a random unit vector orthogonal to g_hat

so training with ``c`` equal to the ES cosine at population size ``P`` asks how well "SGD as
noisy as ES" learns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from evojax_lab.core.checks import check_positive, check_positive_int
from evojax_lab.core.tree import ravel


def cosine(a, b) -> jax.Array:
    """Cosine similarity of two pytrees of the same structure (0 if either is zero)."""
    fa, _ = ravel(a)
    fb, _ = ravel(b)
    if fa.shape != fb.shape:
        raise ValueError(f"cosine: the pytrees hold {fa.size} and {fb.size} numbers")
    norm = jnp.linalg.norm(fa) * jnp.linalg.norm(fb)
    return jnp.where(norm > 0, jnp.dot(fa, fb) / jnp.where(norm > 0, norm, 1.0), 0.0)


def expected_cosine(num_pairs, dim) -> np.ndarray:
    """``sqrt(n / (n + d - 1))``: the mean cosine of the mirrored raw-difference ES estimate and
    the gradient of a linear objective (``n`` pairs, ``d`` dimensions)."""
    n = np.asarray(num_pairs, np.float64)
    d = np.asarray(dim, np.float64)
    if np.any(n < 1) or np.any(d < 1):
        raise ValueError(f"num_pairs and dim must be >= 1, got {num_pairs} and {dim}")
    return np.sqrt(n / (n + d - 1.0))


def es_gradient(
    key: jax.Array,
    fn: Callable[[Any], jax.Array],
    params,
    num_pairs: int,
    sigma: float,
    *,
    shaping: Callable[[jax.Array], jax.Array] | None = None,
):
    """Mirrored ES estimate of the gradient of ``fn`` (maximized) at ``params``.

    Args:
        key: PRNG key of the perturbations ``eps_i ~ N(0, I)``.
        fn: ``fn(params) -> scalar`` fitness.
        params: a parameter pytree.
        num_pairs: ``n`` (population ``P = 2n``).
        sigma: perturbation scale.
        shaping: ``None``: raw differences ``(F+ - F-) / (2 sigma)`` (module docstring); or a
            shaping function (``el.shaping.centered_rank``) applied to the ``2n`` fitness values
            laid out ``[F+_1..F+_n, F-_1..F-_n]``, weights ``u+_i - u-_i`` (no ``1/sigma``).

    Returns:
        The estimate, a pytree like ``params``.
    """
    n = check_positive_int("num_pairs", num_pairs)
    check_positive("sigma", sigma)
    flat, unravel = ravel(params)
    eps = jax.random.normal(key, (n, flat.shape[0]), flat.dtype)
    f = jax.vmap(lambda v: jnp.asarray(fn(unravel(v)), jnp.float32).reshape(()))
    plus, minus = f(flat + sigma * eps), f(flat - sigma * eps)
    if shaping is None:
        weights = (plus - minus) / (2.0 * sigma)
    else:
        u = shaping(jnp.concatenate([plus, minus]))
        weights = u[:n] - u[n:]
    return unravel(weights @ eps / n)


class GradientCorrelation(NamedTuple):
    """Result of :func:`gradient_correlation` (NumPy arrays, one entry per population size)."""

    num_pairs: np.ndarray  # n
    pop_sizes: np.ndarray  # 2n
    mean: np.ndarray  # mean cosine over trials
    std: np.ndarray  # standard deviation over trials
    expected: np.ndarray  # sqrt(n / (n + d - 1)), the linear-objective law
    dim: int


def gradient_correlation(
    key: jax.Array,
    fn: Callable[[Any], jax.Array],
    params,
    num_pairs: Sequence[int],
    *,
    sigma: float = 0.02,
    num_trials: int = 20,
    shaping: Callable[[jax.Array], jax.Array] | None = None,
    true_gradient=None,
) -> GradientCorrelation:
    """Cosine between the ES gradient estimate and the true gradient vs population size.

    Args:
        key: PRNG key (trial ``t`` of size ``n`` uses ``fold_in(fold_in(key, n), t)``).
        fn: ``fn(params) -> scalar`` fitness, differentiable (e.g. minus a minibatch loss:
            ``lambda p: task.fn(batch_key, p)`` of a supervised task).
        params: where the gradients are taken.
        num_pairs: the ``n`` values (mirrored pairs; population ``2n``).
        sigma: ES perturbation scale.
        num_trials: independent estimates per ``n``.
        shaping: see :func:`es_gradient` (``None``: raw differences).
        true_gradient: the reference gradient; default ``jax.grad(fn)(params)``.

    Returns:
        A :class:`GradientCorrelation`.
    """
    num_trials = check_positive_int("num_trials", num_trials)
    ns = [check_positive_int("num_pairs", n) for n in np.atleast_1d(num_pairs).tolist()]
    if not ns:
        raise ValueError("num_pairs must hold at least one population size")
    check_positive("sigma", sigma)
    true = jax.grad(fn)(params) if true_gradient is None else true_gradient
    dim = int(ravel(params)[0].shape[0])
    means, stds = [], []
    for n in ns:

        @jax.jit
        def trials(keys, params, true, n=n):
            return jax.lax.map(
                lambda k: cosine(es_gradient(k, fn, params, n, sigma, shaping=shaping), true),
                keys,
            )

        nkey = jax.random.fold_in(key, n)
        keys = jax.vmap(lambda t, k=nkey: jax.random.fold_in(k, t))(jnp.arange(num_trials))
        c = np.asarray(trials(keys, params, true), np.float64)
        means.append(c.mean())
        stds.append(c.std())
    n_arr = np.asarray(ns)
    return GradientCorrelation(n_arr, 2 * n_arr, np.asarray(means), np.asarray(stds),
                               expected_cosine(n_arr, dim), dim)


def degrade_gradient(key: jax.Array, grad, cosine: float):
    """A vector with cosine ``cosine`` to ``grad`` and the same norm (module docstring).

    Args:
        key: PRNG key of the random orthogonal direction.
        grad: a gradient pytree.
        cosine: target cosine in ``[-1, 1]`` (traceable).

    Returns:
        A pytree like ``grad`` (zeros if ``grad`` is zero).
    """
    try:
        c = float(cosine)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            TypeError):
        c = None
    if c is not None and not -1.0 <= c <= 1.0:
        raise ValueError(f"cosine must be in [-1, 1], got {c}")
    flat, unravel = ravel(grad)
    norm = jnp.linalg.norm(flat)
    g_hat = flat / jnp.where(norm > 0, norm, 1.0)
    r = jax.random.normal(key, flat.shape, flat.dtype)
    r = r - jnp.dot(r, g_hat) * g_hat
    u = r / jnp.maximum(jnp.linalg.norm(r), 1e-30)
    c = jnp.asarray(cosine, flat.dtype)
    return unravel(norm * (c * g_hat + jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0)) * u))


class GradientState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array


class GradientTrainer(NamedTuple):
    """``init(params) -> GradientState``; ``update(key, state) -> (state, metrics)``."""

    init: Callable[[Any], GradientState]
    update: Callable[[jax.Array, GradientState], tuple[GradientState, dict]]


def sgd_proxy(
    fn: Callable[[jax.Array, Any], jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    cosine: float | None = None,
) -> GradientTrainer:
    """Gradient ascent on ``fn`` with the true gradient or the degraded one (the SGD proxy).

    Args:
        fn: ``fn(key, params) -> fitness`` (maximized), e.g. a supervised task's ``task.fn``
            (the key draws the minibatch).
        optimizer: an optax transformation (it minimizes ``-fitness``).
        cosine: ``None``: the exact (minibatch) gradient, i.e. plain SGD; a number ``c``: every
            step's gradient is replaced by :func:`degrade_gradient` with cosine ``c``.

    Returns:
        A :class:`GradientTrainer`; ``update`` is pure and jittable; its metrics are the
        minibatch ``fitness`` (before the step) and ``grad_norm``.
    """
    if cosine is not None:
        c = float(cosine)
        if not -1.0 <= c <= 1.0:
            raise ValueError(f"cosine must be in [-1, 1], got {c}")

    def init(params):
        return GradientState(params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def update(key, state):
        batch_key, noise_key = jax.random.split(jax.random.fold_in(key, state.step))
        fitness, grad = jax.value_and_grad(fn, argnums=1)(batch_key, state.params)
        if cosine is not None:
            grad = degrade_gradient(noise_key, grad, cosine)
        updates, opt_state = optimizer.update(
            jax.tree.map(jnp.negative, grad), state.opt_state, state.params
        )
        params = optax.apply_updates(state.params, updates)
        metrics = {"fitness": fitness, "grad_norm": optax.tree.norm(grad)}
        return GradientState(params, opt_state, state.step + 1), metrics

    return GradientTrainer(init, update)
