"""OpenAI-ES: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning", arXiv:1703.03864.

Defaults as in the paper's reference code: mirrored sampling, centered-rank fitness shaping,
sigma = 0.02, Adam(lr 0.01, b1 0.9, b2 0.999, eps 1e-8), L2 coefficient 0.005 applied inside the
optimizer step. The gradient estimate carries no 1/sigma (the step size absorbs it)::

    g = (1/P) sum_i u_i eps_i        (mirrored: (1/P) sum_i (u_i+ - u_i-) eps_i, P = 2n)
    theta <- theta + optimizer_step(-g + weight_decay * theta)

Perturbations are never stored: ``ask`` draws member ``i``'s noise from ``(key, i)`` and ``tell``
regenerates it from the same key (optionally ``chunk_size`` rows at a time, so ``tell`` never holds
``P x N`` floats). The population is laid out as ``[+eps_1 .. +eps_n, -eps_1 .. -eps_n]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from evojax_lab.core import noise as noise_lib
from evojax_lab.core import shaping as shaping_lib
from evojax_lab.core.tree import ravel
from evojax_lab.core.types import Strategy
from evojax_lab.strategies._common import (
    check_nonnegative,
    check_positive,
    check_positive_int,
    fitness_metrics,
    fitness_of,
)


class OpenAIESState(NamedTuple):
    mean: Any  # parameter pytree
    opt_state: Any
    sigma: jax.Array
    weight_decay: jax.Array
    noise: Any  # noise-source state: None (fold-in) or the table
    generation: jax.Array


def adam(learning_rate: float = 0.01) -> optax.GradientTransformation:
    """The paper's Adam with an injectable (traceable) learning rate."""
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=learning_rate, b1=0.9, b2=0.999, eps=1e-8
    )


def openai_es(
    pop_size: int,
    sigma: float = 0.02,
    optimizer: optax.GradientTransformation | None = None,
    *,
    learning_rate: float = 0.01,
    mirrored: bool = True,
    weight_decay: float = 0.005,
    noise: noise_lib.NoiseSource | None = None,
    chunk_size: int | None = None,
    fitness_shaping: Callable[[jax.Array], jax.Array] = shaping_lib.centered_rank,
) -> Strategy:
    """Build an OpenAI-ES strategy.

    Args:
        pop_size: population size P (even when ``mirrored``).
        sigma: perturbation standard deviation (> 0); traceable via ``init(..., sigma=...)``.
        optimizer: any optax transformation; defaults to the paper's Adam built with
            ``optax.inject_hyperparams`` so ``learning_rate`` stays traceable.
        learning_rate: the default optimizer's step size (ignored when ``optimizer`` is given).
        mirrored: antithetic pairs (+eps, -eps).
        weight_decay: L2 coefficient added to the minimized gradient (``-g + wd * theta``).
        noise: a noise source (``noise.fold_in()`` by default, or ``noise.table(...)``).
        chunk_size: if set, ``tell`` regenerates and accumulates the noise this many
            perturbations at a time (bounded memory) instead of all at once.
        fitness_shaping: maps the fitness vector to utilities (centered ranks by default).

    Returns:
        A :class:`~evojax_lab.Strategy`. ``init(key, params, *, sigma=None, learning_rate=None,
        weight_decay=None)`` accepts traced overrides of the numeric hyperparameters.
    """
    pop_size = check_positive_int("pop_size", pop_size, 2)
    if mirrored and pop_size % 2:
        raise ValueError(
            f"pop_size must be even with mirrored sampling (pairs +eps/-eps), got {pop_size}"
        )
    check_positive("sigma", sigma)
    check_positive("learning_rate", learning_rate)
    check_nonnegative("weight_decay", weight_decay)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    optimizer = adam(learning_rate) if optimizer is None else optimizer
    noise = noise_lib.fold_in() if noise is None else noise
    num_noise = pop_size // 2 if mirrored else pop_size

    def init(key, params, *, sigma=sigma, learning_rate=None, weight_decay=weight_decay):
        del key
        check_positive("sigma", sigma)
        check_nonnegative("weight_decay", weight_decay)
        opt_state = optimizer.init(params)
        if learning_rate is not None:
            check_positive("learning_rate", learning_rate)
            hp = getattr(opt_state, "hyperparams", None)
            if hp is None or "learning_rate" not in hp:
                raise ValueError(
                    "learning_rate override needs an optimizer built with "
                    "optax.inject_hyperparams(...)(learning_rate=...)"
                )
            hp = dict(hp)
            hp["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
            opt_state = opt_state._replace(hyperparams=hp)
        return OpenAIESState(
            mean=params,
            opt_state=opt_state,
            sigma=jnp.asarray(sigma, jnp.float32),
            weight_decay=jnp.asarray(weight_decay, jnp.float32),
            noise=noise.init(),
            generation=jnp.zeros((), jnp.int32),
        )

    def _eps(key, state, indices, dim):
        return noise_lib.sample_batch(noise, state.noise, key, indices, dim)

    def ask(key, state):
        flat_mean, unravel = ravel(state.mean)
        eps = _eps(key, state, jnp.arange(num_noise), flat_mean.shape[0])
        scaled = state.sigma * eps
        flat = jnp.concatenate([flat_mean + scaled, flat_mean - scaled]) if mirrored else (
            flat_mean + scaled
        )
        return jax.vmap(unravel)(flat)

    def member(key, state, index):
        """Member ``index`` of the population ``ask(key, state)`` (one O(N) row)."""
        flat_mean, unravel = ravel(state.mean)
        if mirrored:
            sign = jnp.where(index < num_noise, 1.0, -1.0)
            index = jnp.where(index < num_noise, index, index - num_noise)
        else:
            sign = 1.0
        eps = noise_lib.sample_flat(noise, state.noise, key, index, flat_mean.shape[0])
        return unravel(flat_mean + sign * state.sigma * eps)

    def weighted_noise_sum(key, state, weights, dim):
        """``sum_i weights_i eps_i`` with regenerated noise, optionally chunk by chunk."""
        if chunk_size is None or chunk_size >= num_noise:
            return weights @ _eps(key, state, jnp.arange(num_noise), dim)
        num_chunks = -(-num_noise // chunk_size)
        padded = num_chunks * chunk_size
        w = jnp.zeros(padded, weights.dtype).at[:num_noise].set(weights)
        w = w.reshape(num_chunks, chunk_size)
        idx = jnp.arange(padded).reshape(num_chunks, chunk_size)

        def body(acc, chunk):
            wc, ic = chunk
            return acc + wc @ _eps(key, state, ic, dim), None

        acc, _ = jax.lax.scan(body, jnp.zeros(dim, jnp.float32), (w, idx))
        return acc

    def tell(key, population, evaluation, state):
        del population  # regenerated from the key instead of read back
        fitness = fitness_of(evaluation, pop_size)
        utility = fitness_shaping(fitness)
        weights = utility[:num_noise] - utility[num_noise:] if mirrored else utility
        flat_mean, unravel = ravel(state.mean)
        g = weighted_noise_sum(key, state, weights, flat_mean.shape[0]) / pop_size
        flat_grad = -g + state.weight_decay * flat_mean
        updates, opt_state = optimizer.update(unravel(flat_grad), state.opt_state, state.mean)
        mean = optax.apply_updates(state.mean, updates)
        metrics = fitness_metrics(fitness)
        metrics["grad_norm"] = jnp.linalg.norm(g)
        metrics["sigma"] = state.sigma
        new_state = state._replace(
            mean=mean, opt_state=opt_state, generation=state.generation + 1
        )
        return new_state, metrics

    def solution(state):
        return state.mean

    return Strategy(
        init=init, ask=ask, tell=tell, solution=solution, pop_size=pop_size, member=member
    )
