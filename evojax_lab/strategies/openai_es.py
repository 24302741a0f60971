"""OpenAI-ES: Salimans, Ho, Chen, Sidor, Sutskever (2017), "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning", arXiv:1703.03864.

Defaults as in the paper's reference code: mirrored sampling, centered-rank fitness shaping,
sigma = 0.02, Adam(lr 0.01, b1 0.9, b2 0.999, eps 1e-8), L2 coefficient 0.005 applied inside the
optimizer step. The gradient estimate carries no 1/sigma (the step size absorbs it)::

    g = (1/P) sum_i u_i eps_i        (mirrored: (1/P) sum_i (u_i+ - u_i-) eps_i, P = 2n)
    theta <- theta + optimizer_step(-g + weight_decay * theta)

Perturbations are never stored: ``ask`` draws member ``i``'s noise from ``(key, i)`` and records
``key`` in the state it returns (``noise_key``); ``tell`` regenerates the noise from the state
(optionally ``chunk_size`` rows at a time, so ``tell`` never holds ``P x N`` floats), whatever key
``tell`` itself is given. The population is laid out as ``[+eps_1 .. +eps_n, -eps_1 .. -eps_n]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec

from evojax_lab.core import noise as noise_lib
from evojax_lab.core import shaping as shaping_lib
from evojax_lab.core.sharding import (
    POP_AXIS,
    constrain_population,
    constrain_replicated,
    population_axis_size,
)
from evojax_lab.core.tree import ravel
from evojax_lab.core.types import Strategy
from evojax_lab.strategies._common import (
    check_asked,
    check_nonnegative,
    check_positive,
    check_positive_int,
    fitness_metrics,
    fitness_of,
)


class OpenAIESState(NamedTuple):
    """State of OpenAI-ES.

    Attributes:
        mean: the parameters (a pytree like ``params``).
        opt_state: the optimizer's state.
        sigma, weight_decay: the (traceable) hyperparameters.
        noise: the noise source's state: ``None`` (fold-in) or the table.
        generation: generations told so far.
        noise_key: the key the last ``ask`` drew its perturbations from.
        asked: whether this state came from ``ask`` (``tell`` refuses one that did not).
    """

    mean: Any
    opt_state: Any
    sigma: jax.Array
    weight_decay: jax.Array
    noise: Any
    generation: jax.Array
    noise_key: jax.Array
    asked: jax.Array


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
        noise: a noise source, ``noise.fold_in()`` or ``noise.table(...)``. ``None`` (default):
            chosen from the problem size by :func:`evojax_lab.noise.choose` when ``init`` sees
            the parameters: the ES paper's shared table once a generation draws
            ``P/2 x N >= 2^22`` normals (e.g. ``N = 1M``, ``P = 1,024``: ~14x faster on a CPU),
            fold-in keys below (every small problem: the same numbers as before the table was a
            default). Pass ``noise.fold_in()`` to keep fold-in keys at any size.
        chunk_size: if set, ``tell`` regenerates and accumulates the noise this many
            perturbations at a time (bounded memory); it also sets the block size of the
            fixed-order gradient reduction (see ``tell``).
        fitness_shaping: maps the fitness vector to utilities (centered ranks by default).

    Returns:
        A :class:`~evojax_lab.Strategy` with ``member``. ``init(key, params, *, sigma=None,
        learning_rate=None, weight_decay=None)`` accepts traced overrides of the numeric
        hyperparameters. ``tell`` needs no ``evaluate``; its metrics: ``best_fitness``,
        ``mean_fitness``, ``num_nan``, ``grad_norm``, ``sigma``.
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
    num_noise = pop_size // 2 if mirrored else pop_size

    def source(dim: int) -> noise_lib.NoiseSource:
        """The noise source for ``dim`` parameters (a pure function of the sizes)."""
        return noise if noise is not None else noise_lib.choose(dim, num_noise)

    def init(key, params, *, sigma=sigma, learning_rate=None, weight_decay=weight_decay):
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
            noise=source(ravel(params)[0].shape[0]).init(),
            generation=jnp.zeros((), jnp.int32),
            noise_key=key,
            asked=jnp.zeros((), bool),
        )

    def _eps(key, state, indices, dim):
        # Rows are split over the devices of the mesh in context (if any): each device draws
        # only its own perturbations (threefry is partitionable: the values do not change).
        return constrain_population(
            noise_lib.sample_batch(source(dim), state.noise, key, indices, dim)
        )

    def ask(key, state):
        state = state._replace(noise_key=key, asked=jnp.ones((), bool))
        flat_mean, unravel = ravel(state.mean)
        eps = _eps(key, state, jnp.arange(num_noise), flat_mean.shape[0])
        scaled = state.sigma * eps
        flat = jnp.concatenate([flat_mean + scaled, flat_mean - scaled]) if mirrored else (
            flat_mean + scaled
        )
        return constrain_population(jax.vmap(unravel)(constrain_population(flat))), state

    def member(state, index):
        """Member ``index`` of the population the last ``ask`` drew (one O(N) row)."""
        key = state.noise_key
        flat_mean, unravel = ravel(state.mean)
        if mirrored:
            sign = jnp.where(index < num_noise, 1.0, -1.0)
            index = jnp.where(index < num_noise, index, index - num_noise)
        else:
            sign = 1.0
        dim = flat_mean.shape[0]
        eps = noise_lib.sample_flat(source(dim), state.noise, key, index, dim)
        return unravel(flat_mean + sign * state.sigma * eps)

    def pair(state, index):
        """Members ``index`` and ``index + P/2`` (a leading axis 2) from one draw of their noise,
        with ``member``'s arithmetic (see ``Strategy.pair``)."""
        flat_mean, unravel = ravel(state.mean)
        dim = flat_mean.shape[0]
        eps = noise_lib.sample_flat(source(dim), state.noise, state.noise_key, index, dim)
        signs = jnp.array([1.0, -1.0], jnp.float32)
        return jax.vmap(lambda sign: unravel(flat_mean + sign * state.sigma * eps))(signs)

    def weighted_noise_sum(key, state, weights, dim):
        """``sum_i weights_i eps_i`` with regenerated noise, in a fixed blocked order.

        The perturbations are cut into blocks of ``chunk_size`` (default ``ceil(n / 8)``) and the
        number of blocks is padded to a multiple of 8 with zero-weight blocks. Each block's
        partial sum is one ``[B] @ [B, N]`` product (or, for a tiled table, windows accumulated
        tile by tile: :func:`evojax_lab.noise.weighted_sums`); the partials are summed in one
        fixed reduction. Spread over the devices of the mesh in context (1, 2, 4 or 8 of them),
        every device computes the partials of its own blocks with exactly the same operations,
        so the result is bit-identical to a single device. Memory: ``B x N`` per device at a
        time (a tiled table: one tile) plus the ``[blocks, N]`` partials.

        Small fold-in problems (``n x N`` below :data:`evojax_lab.noise.AUTO_TABLE_MIN_DRAWS`,
        no ``chunk_size``, ``n`` a multiple of the 8 blocks, blocks of 2 or more: a block of
        one is a product XLA fuses into the draw, with other roundings) draw the noise as
        ``ask`` did, in one batch with the same key, and take the same per-block products from
        it, in one product. The values equal the block-by-block path's bit for bit (tests pin
        it). XLA does not merge this draw with ``ask``'s inside one generation of
        ``make_train`` (jax 0.10.2: the optimized CartPole train, P = 2,048, holds two threefry
        and two normal-transform fusions of ``[1024, 1282]``; loop-invariant code motion hoists
        each copy's indices before common subexpressions are merged), so the noise is still
        drawn twice per generation; the compile-time gain once reported for this path was
        within the measurement's noise. What the path does buy is run time: one batched draw
        and one product instead of a loop over blocks, the CartPole train (P = 2,048, 20
        generations, one device) 1.06-1.26x faster in interleaved calls (median 0.34 s against
        0.39 s), the same floats.
        """
        block = chunk_size if chunk_size is not None else max(1, -(-num_noise // 8))
        block = min(block, num_noise)
        num_blocks = -(-num_noise // block)
        num_blocks = -(-num_blocks // 8) * 8
        padded = num_blocks * block
        w = jnp.zeros(padded, jnp.float32).at[:num_noise].set(weights)
        blocks = (w.reshape(num_blocks, block), jnp.arange(padded).reshape(num_blocks, block))

        def partial_sums(context, blocks):
            key, noise_state = context
            return noise_lib.weighted_sums(source(dim), noise_state, key, *blocks, dim)

        devices = population_axis_size()
        context = (key, state.noise)
        if (source(dim).kind == "fold_in" and chunk_size is None and padded == num_noise
                and block > 1 and num_noise * dim < noise_lib.AUTO_TABLE_MIN_DRAWS
                and num_blocks % devices == 0):
            eps = _eps(key, state, jnp.arange(num_noise), dim)  # ask's draw, rows split
            partials = jnp.einsum("kb,kbn->kn", blocks[0], eps.reshape(num_blocks, block, dim))
            return jnp.sum(constrain_replicated(partials), axis=0)
        if devices > 1 and num_blocks % devices == 0:
            spec = PartitionSpec(POP_AXIS)
            partials = jax.shard_map(
                partial_sums, in_specs=(PartitionSpec(), spec), out_specs=spec, check_vma=False
            )(context, blocks)
            partials = constrain_replicated(partials)
        else:
            partials = partial_sums(context, blocks)
        return jnp.sum(partials, axis=0)

    def tell(key, population, evaluation, state, evaluate=None):
        del key, population, evaluate  # the noise is regenerated from state.noise_key
        check_asked(state)
        fitness = fitness_of(evaluation, pop_size)
        utility = fitness_shaping(fitness)
        weights = utility[:num_noise] - utility[num_noise:] if mirrored else utility
        flat_mean, unravel = ravel(state.mean)
        g = weighted_noise_sum(state.noise_key, state, weights, flat_mean.shape[0]) / pop_size
        flat_grad = -g + state.weight_decay * flat_mean
        updates, opt_state = optimizer.update(unravel(flat_grad), state.opt_state, state.mean)
        mean = optax.apply_updates(state.mean, updates)
        metrics = fitness_metrics(fitness)
        metrics["grad_norm"] = jnp.linalg.norm(g)
        metrics["sigma"] = state.sigma
        new_state = state._replace(
            mean=mean, opt_state=opt_state, generation=state.generation + 1,
            asked=jnp.zeros((), bool),
        )
        return new_state, metrics

    def solution(state):
        return state.mean

    return Strategy(
        init=init, ask=ask, tell=tell, solution=solution, pop_size=pop_size, member=member,
        pair=pair if mirrored else None,
    )
