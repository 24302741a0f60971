"""Novelty: a fixed-capacity behavior archive and k-nearest-neighbour novelty, all pure.

Novelty of a behavior ``b`` (Lehman & Stanley; Conti et al. 2017, arXiv:1712.06560, REFERENCE
§6) is the mean Euclidean distance from ``b`` to its ``k`` nearest neighbours among a reference
set — the archive, optionally joined by the current population::

    archive = novelty.init(capacity=1000, behavior_size=2)
    archive = novelty.add(archive, behaviors)                       # [K, B] (or one [B])
    archive = novelty.add(archive, behaviors, key=key, probability=0.01)
    scores = novelty.knn(queries, archive, k=10)                    # [Q]

Policies, all documented here once:

* **Fewer than k references**: the mean runs over the references there are (``min(k, n)``).
  With no reference at all the novelty is 0.
* **A full archive** works as a ring buffer: a new entry overwrites the oldest one, so the
  archive keeps the ``capacity`` most recent insertions (``num_added`` counts every insertion
  ever made). Size it to the run (an ES run adds one behavior per generation) to keep all.
* **Insertion probability** ``p``: each offered behavior enters independently with probability
  ``p`` (the Deep GA's GA-NS uses 0.01); ``mask`` restricts what may enter.
* **Non-finite behaviors** (a NaN policy, a diverged simulation) never enter the archive, so one
  bad individual cannot poison every later distance; a non-finite query gets a NaN novelty,
  which :func:`~evojax_lab.core.shaping.centered_rank` ranks worst.
* **Self-exclusion**: ``knn(queries, archive, k, population=queries)`` also measures against the
  current population, leaving out each query's own row (its distance 0 to itself); other
  identical behaviors still count.

Behaviors have any fixed length ``B`` (variable-length sequences should be padded with their
last element before they get here, as the paper does). Everything jits and vmaps; sizes
(``capacity``, ``k``) are Python ints.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Archive(NamedTuple):
    """A fixed-capacity behavior archive (a pytree).

    Attributes:
        behaviors: ``[capacity, B]`` float32; rows ``>= size`` are unused (zeros).
        size: number of valid rows (``<= capacity``), int32.
        num_added: insertions ever made (the next row written is ``num_added % capacity``).
    """

    behaviors: jax.Array
    size: jax.Array
    num_added: jax.Array

    @property
    def capacity(self) -> int:
        return self.behaviors.shape[-2]


def init(capacity: int, behavior_size: int) -> Archive:
    """An empty archive of ``capacity`` behaviors of length ``behavior_size``."""
    capacity, behavior_size = int(capacity), int(behavior_size)
    if capacity < 1:
        raise ValueError(f"archive capacity must be >= 1, got {capacity}")
    if behavior_size < 1:
        raise ValueError(
            f"behavior_size must be >= 1 (novelty needs a behavior descriptor), got "
            f"{behavior_size}"
        )
    return Archive(
        behaviors=jnp.zeros((capacity, behavior_size), jnp.float32),
        size=jnp.zeros((), jnp.int32),
        num_added=jnp.zeros((), jnp.int32),
    )


def _as_batch(behaviors: jax.Array, behavior_size: int, what: str) -> jax.Array:
    behaviors = jnp.asarray(behaviors, jnp.float32)
    if behaviors.ndim == 1:
        behaviors = behaviors[None]
    if behaviors.ndim != 2 or behaviors.shape[1] != behavior_size:
        raise ValueError(
            f"{what} must have shape [K, {behavior_size}] (or [{behavior_size}]), got "
            f"{tuple(behaviors.shape)}"
        )
    return behaviors


def add(
    archive: Archive,
    behaviors: jax.Array,
    *,
    key: jax.Array | None = None,
    probability: float | jax.Array = 1.0,
    mask: jax.Array | None = None,
) -> Archive:
    """Insert behaviors (``[K, B]`` or one ``[B]``), in row order.

    Args:
        archive: the archive.
        behaviors: the offered behaviors.
        key: needed when ``probability`` is not the Python value 1.
        probability: each offered row enters with this probability (traceable).
        mask: optional ``[K]`` bool; rows with ``False`` never enter.

    Returns:
        The new archive. When more rows enter than fit, the last ``capacity`` of them are kept.
    """
    capacity = archive.capacity
    rows = _as_batch(behaviors, archive.behaviors.shape[1], "behaviors")
    num = rows.shape[0]
    accept = jnp.ones((num,), bool) if mask is None else jnp.asarray(mask, bool).reshape(num)
    accept = accept & jnp.all(jnp.isfinite(rows), axis=1)  # NaN / inf rows never enter
    if not (isinstance(probability, (int, float)) and probability >= 1):
        if key is None:
            raise ValueError("add with probability < 1 needs a key")
        accept = accept & (jax.random.uniform(key, (num,)) < probability)
    rank = jnp.cumsum(accept) - 1  # position among the accepted rows
    total = jnp.sum(accept)
    keep = accept & (rank >= total - capacity)  # only the last `capacity` accepted rows
    slot = (archive.num_added + rank) % capacity
    slot = jnp.where(keep, slot, capacity)  # out of range: dropped
    stored = archive.behaviors.at[slot].set(rows, mode="drop")
    num_added = archive.num_added + total.astype(jnp.int32)
    return Archive(
        behaviors=stored,
        size=jnp.minimum(num_added, capacity).astype(jnp.int32),
        num_added=num_added,
    )


def knn_distance(
    queries: jax.Array,
    references: jax.Array,
    k: int,
    *,
    valid: jax.Array | None = None,
    exclude: jax.Array | None = None,
) -> jax.Array:
    """Mean Euclidean distance from each query to its ``k`` nearest valid references.

    Args:
        queries: ``[Q, B]``.
        references: ``[R, B]``.
        k: neighbours (a Python int >= 1).
        valid: optional ``[R]`` bool, the references that count.
        exclude: optional ``[Q]`` int, a reference index each query leaves out (-1: none).

    Returns:
        ``[Q]`` float32; the mean runs over ``min(k, number of valid references)`` and is 0 when
        there is none; NaN for a query that is not finite.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = jnp.asarray(queries, jnp.float32)
    references = jnp.asarray(references, jnp.float32)
    num_refs = references.shape[0]
    valid = jnp.ones((num_refs,), bool) if valid is None else jnp.asarray(valid, bool)
    exclude = (
        jnp.full((queries.shape[0],), -1, jnp.int32) if exclude is None else jnp.asarray(exclude)
    )
    kk = min(k, num_refs)
    if kk == 0:
        return jnp.zeros((queries.shape[0],), jnp.float32)

    def one(query, skip):
        dist = jnp.sqrt(jnp.sum(jnp.square(references - query), axis=-1))
        ok = valid & (jnp.arange(num_refs) != skip)
        neg, _ = jax.lax.top_k(jnp.where(ok, -dist, -jnp.inf), kk)
        taken = jnp.isfinite(neg)
        count = jnp.sum(taken)
        total = jnp.sum(jnp.where(taken, -neg, 0.0))
        value = jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)
        return jnp.where(jnp.all(jnp.isfinite(query)), value, jnp.nan)

    return jax.vmap(one)(queries, exclude)


def knn(
    queries: jax.Array,
    archive: Archive,
    k: int = 10,
    *,
    population: jax.Array | None = None,
) -> jax.Array:
    """k-NN novelty of ``queries`` (``[Q, B]`` or one ``[B]``) against the archive.

    With ``population`` (``[Q, B]``, normally the queries themselves: the current generation's
    behaviors) the reference set is the archive joined by the population, and query ``i``
    leaves out population row ``i`` (itself).

    Returns:
        ``[Q]`` novelty (a scalar for a single ``[B]`` query).
    """
    single = jnp.ndim(queries) == 1
    size = archive.behaviors.shape[1]
    q = _as_batch(queries, size, "queries")
    refs, valid = archive.behaviors, jnp.arange(archive.capacity) < archive.size
    exclude = None
    if population is not None:
        pop = _as_batch(population, size, "population")
        if pop.shape[0] != q.shape[0]:
            raise ValueError(
                f"population must have one row per query ({q.shape[0]}), got {pop.shape[0]}"
            )
        refs = jnp.concatenate([refs, pop])
        valid = jnp.concatenate([valid, jnp.ones((pop.shape[0],), bool)])
        exclude = archive.capacity + jnp.arange(q.shape[0])
    out = knn_distance(q, refs, k, valid=valid, exclude=exclude)
    return out[0] if single else out


__all__ = ["Archive", "add", "init", "knn", "knn_distance"]
