"""Noise sources: a perturbation is an index, never a stored array of floats.

Two interchangeable sources sit behind the same two functions:

* :func:`fold_in`: ``eps_i = normal(fold_in(key, i), [N])``. No memory at all.
* :func:`table`: the shared noise table of Salimans et al. (2017): one float32 vector built
  once on the device from a fixed seed (123 by default); member ``i`` reads
  ``table[o_i : o_i + N]`` at an offset ``o_i`` drawn from ``fold_in(key, i)``.

A strategy given no source picks one from the problem size with :func:`choose` (the table for
large problems, fold-in keys for small ones).

A source has ``init() -> noise_state`` (``None`` for fold-in, the table array otherwise), which a
strategy keeps in its state so the table is built inside the jitted run and passed around as an
array (never captured as a compile-time constant), and :func:`sample` /
:func:`sample_flat` return ``eps`` for ``(key, index)`` and a parameter shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab.core.tree import ravel


class NoiseSource(NamedTuple):
    """Description of a noise source (static Python values only).

    Attributes:
        kind: ``"fold_in"`` or ``"table"``.
        size: table entries (float32).
        seed: the table's seed.
        tile: a table's weighted sums (:func:`weighted_sums`) run tile by tile over the
            parameters, this many at a time, reading each window once (``0``: one
            ``[B] @ [B, N]`` product per block of rows, the rounding of earlier versions).
        block: the table is built this many entries at a time (:func:`build_table`), so
            building it needs the table plus one block (``0``: one ``normal(key, [size])``
            draw, the table of earlier versions, which XLA builds with 3 table-sized temporaries).
    """

    kind: str  # "fold_in" or "table"
    size: int = 0
    seed: int = 123
    tile: int = 0
    block: int = 0

    def init(self) -> Any:
        """The source's device state: ``None`` for fold-in, the float32 table otherwise."""
        if self.kind == "fold_in":
            return None
        return build_table(self.size, self.seed, self.block)


def build_table(size: int, seed: int, block: int = 0) -> jax.Array:
    """The float32 table of ``size`` standard normals from ``seed``.

    ``block = 0``: ``normal(PRNGKey(seed), [size])``. ``block > 0``: block ``b`` is
    ``normal(fold_in(PRNGKey(seed), b), [block])`` written at ``min(b * block, size - block)``,
    blocks in order (the last one may overlap the one before it and overwrites the overlap), so
    the build holds the table and one block instead of several table-sized temporaries.
    """
    key = jax.random.PRNGKey(seed)
    if not block:
        return jax.random.normal(key, (size,), jnp.float32)
    block = min(int(block), int(size))
    count = -(-size // block)

    def write(b, out):
        values = jax.random.normal(jax.random.fold_in(key, b), (block,), jnp.float32)
        return jax.lax.dynamic_update_slice(out, values, (jnp.minimum(b * block, size - block),))

    return jax.lax.fori_loop(0, count, write, jnp.zeros((size,), jnp.float32))


def fold_in() -> NoiseSource:
    """Noise generated from ``fold_in(key, index)``: no table, no memory."""
    return NoiseSource("fold_in")


def table(size: int = 25_000_000, seed: int = 123, *, tile: int = 0,
          block: int = 0) -> NoiseSource:
    """A shared float32 noise table of ``size`` entries built from ``seed``.

    The ES paper used 250M entries (1 GB); the default here is 25M (100 MB). The table must be
    larger than the number of parameters. ``tile > 0`` sums weighted windows tile by tile
    (:func:`weighted_sums`); ``block > 0`` builds the table block by block (:func:`build_table`:
    other entries, a fraction of the build memory). :func:`choose` sets both
    (:data:`AUTO_TILE`, :data:`AUTO_BLOCK`); the defaults here give the table of earlier versions.
    """
    if int(size) <= 0:
        raise ValueError(f"noise table size must be positive, got {size}")
    if int(tile) < 0:
        raise ValueError(f"tile must be >= 0, got {tile}")
    if int(block) < 0:
        raise ValueError(f"block must be >= 0, got {block}")
    return NoiseSource("table", int(size), int(seed), int(tile), int(block))


#: ``choose`` picks the shared table once a generation draws at least this many normals
#: (``2^22``: ~0.1 s of threefry on one CPU core, drawn twice per generation, by ask and tell).
AUTO_TABLE_MIN_DRAWS = 1 << 22
#: Smallest automatic table (the :func:`table` default) and the most floats it may hold (1 GiB).
AUTO_TABLE_SIZE = 25_000_000
AUTO_TABLE_MAX = 1 << 28
#: An automatic table holds at least this many parameter vectors, so windows seldom overlap.
AUTO_TABLE_WINDOWS = 16
#: Parameters per tile of an automatic table's weighted sums (4M: every parameter vector up to 4M
#: floats in one tile). A block's rows are then added into one full-width accumulator, an
#: elementwise update that XLA:CPU splits over the cores; a cache-sized tile (16K) is too small
#: to split and runs on one core: 512 windows of 1M floats, 8 blocks, 2 cores: 80-90 ms
#: against 100-150 ms (same sums bit for bit, the rows of a block in the same order).
AUTO_TILE = 1 << 22
#: Entries per block when an automatic table is built (4 MiB): building 25M floats then needs
#: ~25 MB of scratch besides the table, not ~300 MB (``normal(key, [size])`` in one draw).
AUTO_BLOCK = 1 << 20


def choose(num_params: int, num_draws: int) -> NoiseSource:
    """The noise source a strategy uses when none is given (``noise=None``).

    The ES paper's shared table when one generation draws many normals, ``num_draws x
    num_params >= AUTO_TABLE_MIN_DRAWS``, and a table of ``max(AUTO_TABLE_SIZE, 16 x
    num_params)`` floats fits in ``AUTO_TABLE_MAX`` (1 GiB); fold-in keys otherwise.

    Why: fold-in noise is compute-bound (a threefry hash per normal: ~45 M/s per CPU core), a
    table read is bandwidth-bound (a contiguous window per member), so at ``P = 1,024`` and
    ``N = 1M`` the table is ~14x faster per generation on a CPU
    (``benchmarks/es_quadratic.py``). On an accelerator the same holds in kind (the table's
    reads are coalesced; threefry is arithmetic), not yet measured here. The choice depends only
    on the sizes, so the same arguments give the same noise on every backend and device count.
    Small problems keep fold-in keys: no table to build (~0.5 s for 25M floats on a CPU) or to
    keep in the state and in checkpoints.
    """
    num_params, num_draws = int(num_params), int(num_draws)
    size = max(AUTO_TABLE_SIZE, AUTO_TABLE_WINDOWS * num_params)
    if num_draws * num_params >= AUTO_TABLE_MIN_DRAWS and size <= AUTO_TABLE_MAX:
        return table(size, tile=AUTO_TILE, block=AUTO_BLOCK)
    return fold_in()


def offset(source: NoiseSource, key: jax.Array, index, dim: int) -> jax.Array:
    """The table offset of perturbation ``index`` (table sources only)."""
    if source.size < dim:
        raise ValueError(
            f"noise table has {source.size} entries but the parameters need {dim}; "
            "use a larger table (noise.table(size=...))"
        )
    return jax.random.randint(jax.random.fold_in(key, index), (), 0, source.size - dim + 1)


def sample_flat(source: NoiseSource, noise_state, key: jax.Array, index, dim: int) -> jax.Array:
    """``eps`` of perturbation ``index`` as a flat float32 vector of length ``dim``."""
    if source.kind == "fold_in":
        return jax.random.normal(jax.random.fold_in(key, index), (dim,), jnp.float32)
    if source.kind == "table":
        if noise_state is None:
            raise ValueError("a table noise source needs its table: pass source.init()")
        return jax.lax.dynamic_slice(noise_state, (offset(source, key, index, dim),), (dim,))
    raise ValueError(f"unknown noise source kind {source.kind!r}; use 'fold_in' or 'table'")


def sample(source: NoiseSource, noise_state, key: jax.Array, index, params):
    """``eps`` of perturbation ``index`` as a pytree shaped like ``params``."""
    flat, unravel = ravel(params)
    return unravel(sample_flat(source, noise_state, key, index, flat.shape[0]))


def sample_batch(source: NoiseSource, noise_state, key, indices: jax.Array, dim: int):
    """``[len(indices), dim]`` noise rows (vmapped :func:`sample_flat`)."""
    return jax.vmap(lambda i: sample_flat(source, noise_state, key, i, dim))(indices)


def weighted_sums(source: NoiseSource, noise_state, key, weights: jax.Array,
                  indices: jax.Array, dim: int) -> jax.Array:
    """Blocks of weighted noise sums: ``out[k] = sum_j weights[k, j] eps_{indices[k, j]}``, a
    ``[K, dim]`` array for ``[K, B]`` weights and indices, without keeping ``[B, dim]`` rows.

    Fold-in noise and tables with ``tile = 0``: one ``weights[k] @ sample_batch(...)`` product
    per block, a block at a time. A table with ``tile > 0``: block by block, then tile by tile
    over the parameters, the block's windows are added one row after another into the tile's
    accumulator (``acc += weights[k, j] * table[o_kj + t : o_kj + t + tile]``, rows in order),
    so each window is read once and ``out[k, t]`` is the same sum at any tile size; the last
    tile overlaps the one before it so no read leaves a window.
    """
    if source.kind != "table" or not source.tile:
        return jax.lax.map(
            lambda b: b[0] @ sample_batch(source, noise_state, key, b[1], dim), (weights, indices)
        )
    if noise_state is None:
        raise ValueError("a table noise source needs its table: pass source.init()")
    tile = min(int(source.tile), dim)
    starts = list(range(0, dim - tile, tile)) + [dim - tile]
    offsets = jax.vmap(jax.vmap(lambda i: offset(source, key, i, dim)))(indices)

    def one_block(block):
        block_weights, block_offsets = block

        def one_tile(start):
            def add_row(j, acc):
                window = jax.lax.dynamic_slice(noise_state, (block_offsets[j] + start,), (tile,))
                return acc + block_weights[j] * window

            return jax.lax.fori_loop(0, weights.shape[1], add_row,
                                     jnp.zeros(tile, jnp.float32))

        return jax.lax.map(one_tile, jnp.asarray(starts, jnp.int32))  # [T, tile]

    tiles = jax.lax.map(one_block, (weights, offsets))  # [K, T, tile]
    head = tiles[:, :-1].reshape(weights.shape[0], -1)
    return jnp.concatenate([head, tiles[:, -1, tile - (dim - head.shape[1]):]], axis=1)
