"""Safe mutations through output gradients: Lehman, Chen, Clune, Stanley (2017), "Safe Mutations
for Deep and Recurrent Neural Networks through Output Gradients", arXiv:1712.06563.

A plain mutation ``w' = w + m * eps`` treats every weight alike, although some weights (an output
layer scaled by 100, the recurrent weights of a long sequence) move the network's outputs far
more than others. Safe mutations measure, on a batch ``X`` of ``K`` experiences of the parent
(its own recent inputs; for recurrent networks whole input sequences), how much the outputs
``y_k in R^O`` react to each weight and scale the perturbation per weight (REFERENCE §3):

* **SM-G-SUM**: ``s_j = sqrt( sum_o ( (1/K) sum_k dy_{k,o}/dw_j )^2 )`` — the gradient of the
  batch-mean output; signed, so opposite examples can cancel.
* **SM-G-ABS**: ``s_j = sqrt( sum_o ( (1/K) sum_k |dy_{k,o}/dw_j| )^2 )`` — per-example
  gradients, no cancellation.
* **SM-G-SO** (second order): the divergence ``D(w') = (1/K) sum_k ||y_k(w') - y_k(w)||^2`` has
  the Hessian ``H = (2/K) sum_k J_k^T J_k`` at ``w``; with the direction ``d = eps / ||eps||``,
  ``s_j = sqrt(|(H d)_j|)``.

and then ``s_j = 0 -> 1``, ``s_j < 0.01 -> 0.01`` (at most 100x amplification),
``delta_j = m * eps_j / s_j`` clipped to ``±0.2`` and ``w' = w + delta``.

* **SM-R** (rescaling): keep the direction ``d = eps`` and pick a scalar ``x >= 0`` so that the
  mean squared output divergence ``Dbar(x) = mean_{k,o} (y_{k,o}(w + x d) - y_{k,o}(w))^2``
  equals the target ``m``; ``w' = w + x d``.

Our choices, where they differ from the paper's code: both gradient variants *average* over the
batch (the reference code sums in one and averages in the other); SM-R finds ``x`` with a bounded,
jittable search (a first-order initial guess, bracketing by doubling/halving, then Illinois
regula-falsi steps on ``sqrt(Dbar(x)) - sqrt(m)``) instead of SciPy's Brent method (≤ 15
iterations, tol 1e-4 in the reference). ``eps`` is an unrounded ``N(0, I)`` sample over the
flattened parameter vector.

Everything is written for one parent and one key, is jittable, and vmaps over keys (and over
parents); ``magnitude``, ``clip`` and ``floor`` may be traced. ``apply_fn`` and ``kind`` are
static. The cost of one sensitivity is about ``O`` backward passes of the batch (SUM), ``O``
per-example backward passes (ABS: memory ``K x N`` per output) or one forward-mode plus one
reverse-mode pass (SO); no ``K x N`` Jacobian is built for SUM and SO, and no ``O x N`` Jacobian
is kept beyond one chunk of outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from evojax_lab.core.checks import check_nonnegative
from evojax_lab.core.tree import ravel
from evojax_lab.mutations.base import Mutation
from evojax_lab.policies.outputs import output_fn

#: Sensitivity kinds accepted by :func:`sensitivity`.
SENSITIVITY_KINDS = ("sum", "abs", "so")
#: Kinds accepted by :func:`safe_mutate` (the sensitivity kinds plus SM-R, ``"r"``).
MUTATION_KINDS = ("sum", "abs", "so", "r")
#: Default number of floats a chunk of per-output gradients may occupy (16 MiB of float32).
CHUNK_ELEMENTS = 1 << 22

ApplyFn = Callable[[Any, Any], Any]


# -- helpers ---------------------------------------------------------------------------------


def _check_kind(kind, kinds: tuple[str, ...]) -> str:
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(map(repr, kinds))}")
    return kind


def _flat_output(y) -> jax.Array:
    leaves = [jnp.ravel(leaf) for leaf in jax.tree.leaves(y)]
    if not leaves:
        raise ValueError("apply_fn returned no arrays")
    return leaves[0] if len(leaves) == 1 else jnp.concatenate(leaves)


def _num_examples(inputs) -> int:
    leaves = jax.tree.leaves(inputs)
    if not leaves or any(jnp.ndim(x) == 0 for x in leaves):
        raise ValueError("inputs must be arrays with a leading axis of K experiences")
    sizes = {jnp.shape(x)[0] for x in leaves}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on the leading (experience) axis: sizes {sizes}")
    k = sizes.pop()
    if k == 0:
        raise ValueError("inputs hold no experiences (K = 0)")
    return k


def _setup(apply_fn: ApplyFn, params, inputs):
    """Flat parameters, ``unravel``, one-example flat output ``f(w, x)``, batched ``F(w)``, K, O."""
    flat, unravel = ravel(params)
    k = _num_examples(inputs)

    def f(w, x):
        return _flat_output(apply_fn(unravel(w), x))

    def batched(w):  # [K, O]
        return jax.vmap(lambda x: f(w, x))(inputs)

    example = jax.tree.map(lambda x: x[0], inputs)
    out = jax.eval_shape(f, flat, example)
    if not jnp.issubdtype(out.dtype, jnp.inexact):
        raise ValueError(
            f"the network's outputs are {out.dtype} (an argmax head?): safe mutations measure "
            "float outputs; pass the flax module (or el.policies.output_fn(policy)) so a "
            "discrete policy is measured through its logits"
        )
    return flat, unravel, f, batched, k, int(out.shape[0])


def _chunked_sum_of_squares(grads_of: Callable, num_outputs: int, chunk: int, n: int, dtype):
    """``sum_o grads_of(one_hot(o))**2`` over all outputs, ``chunk`` outputs at a time.

    ``grads_of(onehots [C, O]) -> [C, N]``. One chunk lives at a time (``lax.scan``), so memory
    is ``C x N`` (times what ``grads_of`` needs) rather than ``O x N``. Padding rows of the last
    chunk are all-zero cotangents and contribute nothing.
    """
    chunk = max(1, min(int(chunk), num_outputs))
    num_chunks = -(-num_outputs // chunk)
    index = jnp.arange(num_chunks * chunk).reshape(num_chunks, chunk)

    def body(acc, idx):
        g = grads_of(jax.nn.one_hot(idx, num_outputs, dtype=dtype))
        return acc + jnp.sum(jnp.square(g), axis=0), None

    if num_chunks == 1:
        return body(jnp.zeros(n, dtype), index[0])[0]
    return jax.lax.scan(body, jnp.zeros(n, dtype), index)[0]


def _auto_chunk(chunk_size, num_outputs: int, per_output_elements: int) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return int(chunk_size)
    return max(1, min(num_outputs, CHUNK_ELEMENTS // max(1, per_output_elements)))


# -- sensitivity -----------------------------------------------------------------------------


def _sensitivity_flat(apply_fn, params, inputs, kind, direction, chunk_size):
    flat, unravel, f, batched, k, o = _setup(apply_fn, params, inputs)
    n = flat.shape[0]
    if kind == "sum":
        # The gradient of the batch-mean output: O vector-Jacobian products of one function.
        _, vjp_mean = jax.vjp(lambda w: jnp.mean(batched(w), axis=0), flat)
        grads = jax.vmap(lambda e: vjp_mean(e)[0])
        chunk = _auto_chunk(chunk_size, o, n)
        return jnp.sqrt(_chunked_sum_of_squares(grads, o, chunk, n, flat.dtype)), unravel

    if kind == "abs":
        # Per-example gradients of a chunk of outputs: [K, C, N], |.| and mean over k.
        def grads(onehots):
            def one_example(x):
                _, vjp_x = jax.vjp(lambda w: f(w, x), flat)
                return jax.vmap(lambda e: vjp_x(e)[0])(onehots)

            return jnp.mean(jnp.abs(jax.vmap(one_example)(inputs)), axis=0)

        chunk = _auto_chunk(chunk_size, o, k * n)
        return jnp.sqrt(_chunked_sum_of_squares(grads, o, chunk, n, flat.dtype)), unravel

    # kind == "so": H d = (2/K) sum_k J_k^T (J_k d): one jvp of the batched outputs along d
    # gives every J_k d ([K, O]); one vjp of the same function with those as cotangents sums
    # J_k^T (J_k d) over k. No Jacobian, no [K, N] array.
    d = ravel(direction)[0]
    if d.shape != flat.shape:
        raise ValueError(
            f"direction has {d.shape[0]} values but params have {n}; pass a pytree like params"
        )
    _, jd = jax.jvp(batched, (flat,), (d.astype(flat.dtype),))
    _, vjp_all = jax.vjp(batched, flat)
    hd = (2.0 / k) * vjp_all(jd)[0]
    return jnp.sqrt(jnp.abs(hd)), unravel


def sensitivity(
    apply_fn: ApplyFn,
    params,
    inputs,
    kind: str = "sum",
    *,
    direction=None,
    chunk_size: int | None = None,
):
    """Per-weight output sensitivities ``s_j`` of Lehman et al. (2017), arXiv:1712.06563.

    Raw values: no floor is applied (see :func:`safe_mutate`).

    Args:
        apply_fn: ``apply_fn(params, x) -> y`` for ONE example ``x`` (any pytree of arrays; for a
            recurrent network ``x`` is a whole input sequence and ``y`` its outputs over the
            sequence). ``y`` may be any pytree of arrays; it is flattened to ``O`` values. A flax
            module works as ``lambda p, x: module.apply(p, x)``.
        params: the parent's parameters (any pytree).
        inputs: ``K`` experiences: ``x`` with a leading axis of size ``K``.
        kind: ``"sum"`` (SM-G-SUM), ``"abs"`` (SM-G-ABS) or ``"so"`` (SM-G-SO).
        direction: for ``"so"`` only (required): the direction ``d``, a pytree like ``params``
            (``safe_mutate`` passes ``eps / ||eps||``); used as given, not normalized.
        chunk_size: outputs whose gradients are computed together (static). Default: as many as
            fit in :data:`CHUNK_ELEMENTS` floats (``N`` per output for SUM, ``K N`` for ABS),
            at least 1; the chunks run one after another in a ``lax.scan``.

    Returns:
        A pytree like ``params`` of ``s_j >= 0``:

        * ``"sum"``: ``sqrt( sum_o ( (1/K) sum_k dy_{k,o}/dw_j )^2 )``;
        * ``"abs"``: ``sqrt( sum_o ( (1/K) sum_k |dy_{k,o}/dw_j| )^2 )``;
        * ``"so"``: ``sqrt(|(H d)_j|)`` with ``H = (2/K) sum_k J_k^T J_k``.

    Raises:
        ValueError: unknown ``kind``; ``"so"`` without ``direction`` or another kind with one;
            inputs without a common leading axis.
    """
    _check_kind(kind, SENSITIVITY_KINDS)
    if kind == "so" and direction is None:
        raise ValueError("kind='so' needs direction= (a pytree like params, e.g. eps / ||eps||)")
    if kind != "so" and direction is not None:
        raise ValueError(f"direction is only used by kind='so', got kind={kind!r}")
    s, unravel = _sensitivity_flat(apply_fn, params, inputs, kind, direction, chunk_size)
    return unravel(s)


# -- SM-R: rescaling along a direction --------------------------------------------------------


def output_divergence(apply_fn: ApplyFn, params, new_params, inputs) -> jax.Array:
    """``Dbar = mean over the K examples and O outputs of (y(new_params) - y(params))^2``."""
    _num_examples(inputs)

    def out(p):
        return jax.vmap(lambda x: _flat_output(apply_fn(p, x)))(inputs)

    return jnp.mean(jnp.square(out(new_params) - out(params)))


def _rescale_flat(f_batched, flat, d, target, max_bracket, max_iter, rtol):
    """SM-R search on flat vectors; returns ``(x, Dbar(x))``."""
    dtype = flat.dtype
    target = jnp.asarray(target, dtype)
    rtol = jnp.asarray(rtol, dtype)
    y0, jd = jax.jvp(f_batched, (flat,), (d,))

    def div(x):
        return jnp.mean(jnp.square(f_batched(flat + x * d) - y0))

    root_t = jnp.sqrt(target)

    def err(dx):  # distance to the target in sqrt space; NaN counts as infinitely far
        e = jnp.abs(jnp.sqrt(dx) - root_t)
        return jnp.where(jnp.isnan(e), jnp.inf, e)

    # First-order initial guess: Dbar(x) ~ x^2 mean((J d)^2) (exact for a linear network).
    d1 = jnp.mean(jnp.square(jd))
    x0 = jnp.sqrt(target / d1)
    x0 = jnp.where(jnp.isfinite(x0) & (x0 > 0), x0, jnp.ones((), dtype))
    dx0 = div(x0)

    # Bracket: double while below the target, halve while at/above it, until the side changes.
    def bracket_cond(c):
        _, da, _, db, i = c
        return (i < max_bracket) & ((i == 0) | ((da < target) == (db < target)))

    def bracket_body(c):
        _, _, xb, db, i = c
        xn = jnp.where(db < target, 2.0 * xb, 0.5 * xb)
        return xb, db, xn, div(xn), i + 1

    xa, da, xb, db, _ = jax.lax.while_loop(
        bracket_cond, bracket_body, (x0, dx0, x0, dx0, jnp.zeros((), jnp.int32))
    )
    bracketed = (da < target) != (db < target)
    a_below = da < target
    lo, dlo = jnp.where(a_below, xa, xb), jnp.where(a_below, da, db)
    hi, dhi = jnp.where(a_below, xb, xa), jnp.where(a_below, db, da)
    a_best = err(da) <= err(db)
    best_x, best_d = jnp.where(a_best, xa, xb), jnp.where(a_best, da, db)

    # Illinois regula falsi on h(x) = sqrt(Dbar(x)) - sqrt(target), h(lo) < 0 <= h(hi).
    def h(dx):
        return jnp.sqrt(dx) - root_t

    def done(bx, bd, lo, hi):
        return (jnp.abs(bd - target) <= rtol * target) | (hi - lo <= rtol * hi)

    def refine_cond(c):
        lo, _, hi, _, _, bx, bd, i = c
        return (i < max_iter) & bracketed & ~done(bx, bd, lo, hi)

    def refine_body(c):
        lo, hlo, hi, hhi, last, bx, bd, i = c
        xs = hi - hhi * (hi - lo) / (hhi - hlo)
        inside = jnp.isfinite(xs) & (xs > lo) & (xs < hi)
        xn = jnp.where(inside, xs, 0.5 * (lo + hi))
        dn = div(xn)
        hn = h(dn)
        below = ~(hn >= 0)  # NaN treated as below: the bracket shrinks from below
        # last: +1 if the previous step moved lo, -1 if it moved hi, 0 at the start.
        lo2 = jnp.where(below, xn, lo)
        hlo2 = jnp.where(below, hn, jnp.where(last == -1, 0.5 * hlo, hlo))
        hi2 = jnp.where(below, hi, xn)
        hhi2 = jnp.where(below, jnp.where(last == 1, 0.5 * hhi, hhi), hn)
        hlo2 = jnp.where(jnp.isfinite(hlo2), hlo2, -root_t)
        better = err(dn) < err(bd)
        bx, bd = jnp.where(better, xn, bx), jnp.where(better, dn, bd)
        return lo2, hlo2, hi2, hhi2, jnp.where(below, 1, -1), bx, bd, i + 1

    init = (lo, h(dlo), hi, h(dhi), jnp.zeros((), jnp.int32), best_x, best_d,
            jnp.zeros((), jnp.int32))
    *_, best_x, best_d, _ = jax.lax.while_loop(refine_cond, refine_body, init)
    zero_target = target <= 0
    zero = jnp.zeros((), dtype)
    return jnp.where(zero_target, zero, best_x), jnp.where(zero_target, zero, best_d)


def rescale_factor(
    apply_fn: ApplyFn,
    params,
    inputs,
    direction,
    target,
    *,
    max_bracket: int = 40,
    max_iter: int = 30,
    rtol: float = 1e-4,
):
    """SM-R's step size: ``x >= 0`` with ``Dbar(x) = mean_{k,o} (y(w + x d) - y(w))^2 = target``.

    Lehman et al. (2017), arXiv:1712.06563, SM-R (the reference code runs Brent's method, at most
    15 iterations, tol 1e-4). Our jittable, bounded search: the first-order guess
    ``x0 = sqrt(target / mean((J d)^2))`` (one jvp; ``1`` if the outputs do not move along
    ``d``), then doubling/halving until ``Dbar`` crosses the target (at most ``max_bracket``
    steps), then Illinois regula-falsi steps on ``sqrt(Dbar(x)) - sqrt(target)`` (at most
    ``max_iter``), stopping when ``|Dbar - target| <= rtol * target`` or the bracket is
    narrower than ``rtol * x``. Each step costs one forward pass over the ``K`` inputs.

    If the target cannot be bracketed (the outputs saturate below it, or do not depend on ``d``)
    the best point tried is returned; check the returned divergence. ``target = 0`` gives
    ``x = 0``.

    Args:
        apply_fn: ``apply_fn(params, x) -> y`` for one example (see :func:`sensitivity`).
        params: the parent's parameters ``w``.
        inputs: ``K`` experiences with a leading axis.
        direction: ``d``, a pytree like ``params`` (SM-R uses ``d = eps``).
        target: the target divergence ``m`` (>= 0; may be traced).
        max_bracket: bracketing steps (static).
        max_iter: refinement steps (static).
        rtol: relative tolerance (may be traced).

    Returns:
        ``(x, divergence)``: the scalar step and the ``Dbar(x)`` it achieves.
    """
    check_nonnegative("target", target)
    flat, _, _, batched, _, _ = _setup(apply_fn, params, inputs)
    d = ravel(direction)[0]
    if d.shape != flat.shape:
        raise ValueError(
            f"direction has {d.shape[0]} values but params have {flat.shape[0]}; pass a pytree "
            "like params"
        )
    return _rescale_flat(batched, flat, d.astype(flat.dtype), target, int(max_bracket),
                         int(max_iter), rtol)


# -- the mutation ----------------------------------------------------------------------------


def safe_mutate(
    key: jax.Array,
    params,
    apply_fn: ApplyFn,
    inputs,
    magnitude,
    kind: str = "sum",
    *,
    clip=0.2,
    floor=0.01,
    chunk_size: int | None = None,
):
    """One safe mutation of Lehman et al. (2017), arXiv:1712.06563 (REFERENCE §3).

    ``eps ~ N(0, I)`` is drawn from ``key`` over the flattened parameters. Then

    * ``"sum"``, ``"abs"``, ``"so"`` (SM-G-*): ``s = sensitivity(...)`` (``"so"`` along
      ``d = eps / ||eps||``), floored: ``s_j = 0 -> 1``, ``s_j < floor -> floor``;
      ``delta = magnitude * eps / s`` clipped to ``±clip``; returns ``w + delta``.
    * ``"r"`` (SM-R): ``d = eps``; returns ``w + x d`` with ``x`` from :func:`rescale_factor`
      so that the mean squared output divergence equals ``magnitude`` (``clip`` and ``floor``
      are not used).

    Args:
        key: a PRNG key.
        params: the parent's parameters (any pytree of floats).
        apply_fn: ``apply_fn(params, x) -> y`` for one example (see :func:`sensitivity`).
        inputs: ``K`` experiences of the parent, with a leading axis.
        magnitude: ``m`` >= 0, the mutation magnitude (the target divergence for ``"r"``); the
            paper's default is 0.01. May be traced.
        kind: ``"sum"``, ``"abs"``, ``"so"`` or ``"r"`` (static).
        clip: bound on ``|delta_j|`` (0.2 in the paper's maze tasks); ``None``: no clipping. May be
            traced.
        floor: the smallest sensitivity used (0.01: at most 100x amplification). May be traced.
        chunk_size: see :func:`sensitivity`.

    Returns:
        The mutated parameters, a pytree like ``params``.

    Raises:
        ValueError: unknown ``kind``, or a negative (concrete) ``magnitude``, ``clip`` or
            ``floor``.
    """
    _check_kind(kind, MUTATION_KINDS)
    check_nonnegative("magnitude", magnitude)
    check_nonnegative("clip", clip)
    check_nonnegative("floor", floor)
    flat, unravel = ravel(params)
    eps = jax.random.normal(key, flat.shape, flat.dtype)

    if kind == "r":
        _, _, _, batched, _, _ = _setup(apply_fn, params, inputs)
        x, _ = _rescale_flat(batched, flat, eps, magnitude, 40, 30, 1e-4)
        return unravel(flat + x * eps)

    direction = None
    if kind == "so":
        direction = unravel(eps / jnp.linalg.norm(eps))
    s, _ = _sensitivity_flat(apply_fn, params, inputs, kind, direction, chunk_size)
    s = jnp.where(s == 0, jnp.ones_like(s), jnp.maximum(s, jnp.asarray(floor, s.dtype)))
    delta = jnp.asarray(magnitude, flat.dtype) * eps / s
    if clip is not None:
        delta = jnp.clip(delta, -clip, clip)
    return unravel(flat + delta)


def _safe_apply(apply_fn, kind, inputs, clip, floor, chunk_size):
    def apply(key, params, magnitude, experiences):
        batch = inputs if experiences is None else experiences
        if batch is None:
            raise ValueError(
                "this safe mutation has no fixed inputs: call it with the parent's experiences "
                "(the Deep GA and GA-NS record them with a rollout of each parent)"
            )
        return safe_mutate(key, params, apply_fn, batch, magnitude, kind, clip=clip,
                           floor=floor, chunk_size=chunk_size)

    return apply


def safe_mutation(
    policy,
    kind: str = "sum",
    *,
    experiences: int = 100,
    observation_shape=None,
    inputs=None,
    clip=0.2,
    floor=0.01,
    chunk_size: int | None = None,
) -> Mutation:
    """A safe mutation operator for the Deep GA and GA-NS (REFERENCE §3), as a
    :class:`~evojax_lab.mutations.Mutation` (called ``op(key, params, magnitude, experiences)``).

    The sensitivities are measured on either the parent's own experiences (``experiences = K``
    observations sampled from a rollout of the parent: the GA runs one per new parent through
    the ``evaluate`` it is given and keeps them with the parents, so give
    ``observation_shape``), or fixed ``inputs`` (a recurrent net on a fixed set of sequences,
    such as 4-bit parity; then ``experiences`` is ignored). The GA's ``sigma`` is the mutation
    magnitude ``m`` (the paper's default 0.01; for ``"r"`` the target divergence).

    Args:
        policy: the network: a flax module (or its bound ``apply``), measured through
            :func:`evojax_lab.policies.output_fn` (a discrete, argmax policy through its logits:
            the paper perturbs the network's outputs, and an argmax has no gradient), or a
            function ``f(params, x) -> outputs`` for one example.
        kind: ``"sum"``, ``"abs"``, ``"so"`` or ``"r"``.
        experiences, observation_shape, inputs: where the experiences come from (above).
        clip, floor, chunk_size: as in :func:`safe_mutate`.

    Example::

        op = el.mutations.safe_mutation(policy, "abs", experiences=100,
                                        observation_shape=task.observation_shape)
        strategy = el.strategies.deep_ga(250, 0.01, 20, mutation=op)

    A safe mutation is not decodable (each result depends on the parent's experiences, and its
    float rounding on XLA's fusion): a GA using it keeps genomes as a lineage record only.

    Raises:
        ValueError: unknown ``kind``; neither ``inputs`` nor ``experiences >= 1`` with an
            ``observation_shape``.
    """
    _check_kind(kind, MUTATION_KINDS)
    check_nonnegative("clip", clip)
    check_nonnegative("floor", floor)
    if inputs is None:
        if int(experiences) < 1:
            raise ValueError(
                f"experiences must be >= 1 when no fixed inputs are given, got {experiences}"
            )
        if observation_shape is None:
            raise ValueError(
                "observation_shape is needed to keep the parents' experiences in the GA state "
                "(pass task.observation_shape)"
            )
        num, shape = int(experiences), tuple(int(d) for d in observation_shape)
    else:
        num, shape = 0, None
    name = "SM-R" if kind == "r" else f"SM-G-{kind.upper()}"
    return Mutation(
        apply=_safe_apply(output_fn(policy), kind, inputs, clip, floor, chunk_size),
        experiences=num, observation_shape=shape, decodable=False, name=name,
    )


__all__ = [
    "safe_mutation",
    "CHUNK_ELEMENTS",
    "MUTATION_KINDS",
    "SENSITIVITY_KINDS",
    "output_divergence",
    "rescale_factor",
    "safe_mutate",
    "sensitivity",
]
