"""Compact seed-chain genomes (Such et al. 2017, "Deep Neuroevolution: Genetic Algorithms Are a
Competitive Alternative for Training Deep Neural Networks for Reinforcement Learning",
arXiv:1712.06567, section 3).

A Deep GA individual is never stored as its weights but as the chain of random seeds that built
it::

    genome = [s0, (s1, sigma1), ..., (sg, sigmag)]
    theta  = init(s0);  theta <- theta + sigma_j * noise(s_j)   for j = 1 .. g, in order

Here a :class:`Genome` is a pure, jittable pytree of fixed capacity ``L`` (so genomes can live in
a strategy state inside ``lax.scan``): the initial seed, ``L`` slots of ``(seed, sigma)`` and the
number of mutations ``length``. A seed is a ``uint32``; its PRNG key is
``jax.random.key(seed, impl="threefry2x32")`` (:func:`seed_key`) whatever JAX's default PRNG is.

**Bit-exact decoding.** :func:`decode` rebuilds the parameters the GA evaluated *bit for bit*.
XLA contracts a multiply feeding an add into one fused multiply-add (FMA) whenever they land in
the same kernel (on CPU and GPU), and whether they do depends on the surrounding program, so
``theta + sigma * eps`` can round differently inside a training run and inside ``decode``
(``lax.optimization_barrier`` does not prevent it). The operators here are therefore built so
that no rounding depends on contraction: ``eps`` and ``sigma`` are both rounded to
:data:`SIGNIFICANT_BITS` = 12 significant bits (:func:`round_significand`), so their product has
at most 24 significant bits and is *exact* in float32, and ``theta + sigma * eps`` is then one
correctly rounded addition with or without an FMA. The reference initialization does the same
(``N(0, 1)`` samples and the per-layer scale both rounded to 12 bits). The rounding changes a
noise value by less than 2^-12 relative (sigma likewise) — statistically irrelevant for the GA —
and is our choice, not the paper's. A custom ``mutation`` or ``init`` plugged into the GA must
keep this property (deterministic in ``(key, params, sigma)``, with no rounding that depends on
fusion) for its genomes to decode exactly.

**Bytes.** :func:`to_bytes` / :func:`from_bytes` serialize one genome without pickle: a 32-byte
little-endian header (magic ``b"EJGN"``, format version, number of mutations, initial seed,
metadata length, parameter count, CRC-32 of everything else) followed by the seeds
(``<u4``), the sigmas (``<f4``) and optional UTF-8 JSON metadata. Only the ``length`` used
mutations are written: 8 bytes per generation, so a 1,000-generation genome of the 4,052,658-
parameter Nature-DQN network takes 8,032 bytes instead of 16.2 MB of float32 weights.
Truncated, corrupted or foreign byte strings raise :class:`ValueError` naming the problem.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.core.exact import (  # noqa: F401  (re-exported: genome.round_significand, ...)
    SIGNIFICANT_BITS,
    round_significand,
    seed_key,
)
from evojax_lab.core.exact import to_key as _to_key
from evojax_lab.mutations.gaussian import gaussian
from evojax_lab.policies.init import output_kernel, reference_init  # noqa: F401  (re-exported)

#: The serialized format.
MAGIC = b"EJGN"
VERSION = 1
_HEADER = struct.Struct("<4sHHIIIQI")  # magic, version, flags, n, s0, meta_len, num_params, crc
HEADER_SIZE = _HEADER.size  # 32 bytes

Init = Callable[[jax.Array, Any], Any]


class Genome(NamedTuple):
    """A seed-chain genome of fixed capacity ``L`` (a pytree; batch it with a leading axis).

    Attributes:
        init_seed: ``uint32`` seed of the initial parameters ``init(seed_key(init_seed))``.
        seeds: ``uint32 [L]`` mutation seeds; only the first ``length`` are used.
        sigmas: ``float32 [L]`` mutation strengths (stored already rounded to 12 bits).
        length: ``int32`` number of mutations. It keeps counting past ``L`` (the genome has then
            *overflowed*: the parameters it describes can no longer be rebuilt from it).
    """

    init_seed: jax.Array
    seeds: jax.Array
    sigmas: jax.Array
    length: jax.Array


def noise(seed, dim: int) -> jax.Array:
    """The mutation noise of ``seed``: ``N(0, 1)`` float32 ``[dim]`` rounded to 12 bits."""
    return round_significand(jax.random.normal(_to_key(seed), (int(dim),), jnp.float32))


# -- genome pytrees ----------------------------------------------------------------------------


def new(init_seed, capacity: int) -> Genome:
    """A genome with no mutations yet: ``init(seed_key(init_seed))``; room for ``capacity``."""
    capacity = int(capacity)
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    return Genome(
        init_seed=jnp.asarray(init_seed, jnp.uint32),
        seeds=jnp.zeros((capacity,), jnp.uint32),
        sigmas=jnp.zeros((capacity,), jnp.float32),
        length=jnp.zeros((), jnp.int32),
    )


def append(genome: Genome, seed, sigma) -> Genome:
    """``genome`` plus one mutation ``(seed, sigma)`` (jittable; ``sigma`` stored rounded).

    Past the capacity the mutation is not stored but ``length`` still grows (overflow).
    """
    capacity = genome.seeds.shape[-1]
    if capacity == 0:
        return genome._replace(length=genome.length + 1)
    pos = jnp.minimum(genome.length, capacity - 1)
    fits = genome.length < capacity
    seeds = genome.seeds.at[pos].set(
        jnp.where(fits, jnp.asarray(seed, jnp.uint32), genome.seeds[pos])
    )
    sigmas = genome.sigmas.at[pos].set(
        jnp.where(fits, round_significand(sigma), genome.sigmas[pos])
    )
    return Genome(genome.init_seed, seeds, sigmas, genome.length + 1)


def capacity(genome: Genome) -> int:
    """The number of mutation slots ``L``."""
    return int(genome.seeds.shape[-1])


def overflowed(genome: Genome) -> jax.Array:
    """Whether the genome has more mutations than slots (it can no longer be decoded)."""
    return genome.length > genome.seeds.shape[-1]


# -- decoding --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _init_impl(init, init_seed, template):
    return init(seed_key(init_seed), template)


@functools.partial(jax.jit, static_argnums=0)
def _chain_impl(mutation, params, seeds, sigmas, length):
    if seeds.shape[0] == 0:
        return params
    n = jnp.minimum(length, seeds.shape[0])
    return jax.lax.fori_loop(
        0, n, lambda j, p: mutation(seed_key(seeds[j]), p, sigmas[j]), params
    )


def _template_arrays(template):
    return jax.tree.map(lambda x: jnp.zeros(np.shape(x), getattr(x, "dtype", jnp.float32)),
                        template)


def decode(
    genome: Genome | bytes,
    template,
    *,
    init: Init = reference_init,
    mutation: Callable = gaussian,
):
    """The parameters a genome describes: ``init(s0)``, then each mutation in order.

    Bit-exact with the parameters the Deep GA evaluated, provided ``init`` and ``mutation`` are
    the ones the run used (the defaults are the GA's defaults).

    Args:
        genome: a :class:`Genome` (or a batch of them with a leading axis: decoded with vmap),
            or bytes from :func:`to_bytes`.
        template: a parameter pytree (or ``jax.ShapeDtypeStruct`` pytree) of the network; only
            its structure, shapes and dtypes are used.
        init: ``init(key, template) -> params`` (default :func:`reference_init`).
        mutation: ``mutation(key, params, sigma) -> params``, a decodable
            :class:`~evojax_lab.mutations.Mutation` (default
            :data:`~evojax_lab.mutations.gaussian`).

    Raises:
        ValueError: the genome overflowed its capacity, or (bytes) was written for a network
            with another number of parameters, or the bytes are not a valid genome.
    """
    template = _template_arrays(template)
    if isinstance(genome, (bytes, bytearray, memoryview)):
        n_params = _parse(bytes(genome))["num_params"]
        have = int(sum(np.size(x) for x in jax.tree.leaves(template)))
        if n_params and n_params != have:
            raise ValueError(
                f"genome was written for a network with {n_params:,} parameters but the "
                f"template has {have:,}: wrong policy or observation shape"
            )
        genome = from_bytes(genome)
    if not isinstance(genome, Genome):
        raise TypeError(f"decode takes a Genome or bytes, got {type(genome).__name__}")
    try:
        over = np.asarray(overflowed(genome))
    except jax.errors.ConcretizationTypeError:
        over = None
    if over is not None and over.any():
        raise ValueError(
            f"genome overflowed its capacity of {capacity(genome)} mutations (length "
            f"{np.max(np.asarray(genome.length))}); build the strategy with a larger "
            "genome_capacity to keep every individual decodable"
        )
    if genome.seeds.ndim == 1:
        params = _init_impl(init, genome.init_seed, template)
        return _chain_impl(mutation, params, genome.seeds, genome.sigmas, genome.length)
    if genome.seeds.ndim == 2:
        params = jax.vmap(lambda s: _init_impl(init, s, template))(genome.init_seed)
        return jax.vmap(lambda p, a, b, n: _chain_impl(mutation, p, a, b, n))(
            params, genome.seeds, genome.sigmas, genome.length
        )
    raise ValueError(f"genome seeds must be [L] or [batch, L], got shape {genome.seeds.shape}")


# -- bytes -----------------------------------------------------------------------------------


def to_bytes(genome: Genome, *, num_params: int = 0, metadata: dict | None = None) -> bytes:
    """Serialize one genome (no pickle): header + ``length`` seeds and sigmas + metadata.

    Args:
        genome: one :class:`Genome` (no batch axis).
        num_params: the network's parameter count, checked by :func:`decode` (0: unknown).
        metadata: optional JSON-serializable dict (e.g. task and policy names) stored with it.
    """
    seeds = np.asarray(jax.device_get(genome.seeds))
    if seeds.ndim != 1:
        raise ValueError(f"to_bytes takes one genome, got a batch (seeds shape {seeds.shape})")
    length = int(np.asarray(genome.length))
    if length < 0:
        raise ValueError(f"genome length must be >= 0, got {length}")
    if length > seeds.shape[0]:
        raise ValueError(
            f"genome overflowed its capacity of {seeds.shape[0]} mutations (length {length}); "
            "it cannot be serialized"
        )
    if int(num_params) < 0:
        raise ValueError(f"num_params must be >= 0, got {num_params}")
    meta = b""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        meta = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode("utf-8")
    payload = (
        seeds[:length].astype("<u4").tobytes()
        + np.asarray(jax.device_get(genome.sigmas))[:length].astype("<f4").tobytes()
        + meta
    )
    init_seed = int(np.asarray(genome.init_seed, np.uint32))
    fields = (MAGIC, VERSION, 0, length, init_seed, len(meta), int(num_params))
    crc = zlib.crc32(_HEADER.pack(*fields, 0)[:-4] + payload)
    return _HEADER.pack(*fields, crc) + payload


def _parse(data: bytes) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"genome bytes must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        if not MAGIC.startswith(data[:4]):
            raise ValueError(
                f"not an evojax_lab genome: starts with {data[:4]!r}, expected magic {MAGIC!r}"
            )
        raise ValueError(
            f"genome bytes truncated: got {len(data)} bytes, the header alone needs {HEADER_SIZE}"
        )
    magic, version, flags, n, init_seed, meta_len, num_params, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not an evojax_lab genome: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ValueError(
            f"unsupported genome format version {version} (this evojax_lab reads {VERSION})"
        )
    if flags != 0:
        raise ValueError(f"genome header has unknown flags {flags:#06x}: corrupted or newer")
    expected = HEADER_SIZE + 8 * n + meta_len
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"genome bytes {what}: the header announces {n} mutations and {meta_len} bytes of "
            f"metadata ({expected} bytes in all), got {len(data)} bytes (or the header is "
            "corrupted)"
        )
    computed = zlib.crc32(data[: HEADER_SIZE - 4] + data[HEADER_SIZE:])
    if computed != crc:
        raise ValueError(
            f"genome bytes corrupted: CRC-32 checksum mismatch (stored {crc:#010x}, computed "
            f"{computed:#010x})"
        )
    body = data[HEADER_SIZE:]
    seeds = np.frombuffer(body[: 4 * n], "<u4").astype(np.uint32)
    sigmas = np.frombuffer(body[4 * n: 8 * n], "<f4").astype(np.float32)
    if not np.all(np.isfinite(sigmas)):
        raise ValueError("genome bytes corrupted: a sigma is not finite")
    meta = {}
    if meta_len:
        try:
            meta = json.loads(body[8 * n:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"genome metadata is not valid UTF-8 JSON: {err}") from None
    return {"init_seed": init_seed, "seeds": seeds, "sigmas": sigmas, "metadata": meta,
            "num_params": num_params}


def from_bytes(data: bytes, *, capacity: int | None = None) -> Genome:
    """Read a genome written by :func:`to_bytes`.

    Args:
        data: the bytes.
        capacity: slots of the returned genome (default: exactly its number of mutations);
            a fixed capacity lets genomes of different lengths share one compiled ``decode``.

    Raises:
        ValueError: truncated, corrupted (checksum) or foreign bytes, with the reason.
    """
    parsed = _parse(data)
    n = parsed["seeds"].shape[0]
    cap = n if capacity is None else int(capacity)
    if cap < n:
        raise ValueError(f"capacity {cap} is smaller than the genome's {n} mutations")
    seeds = np.zeros(cap, np.uint32)
    sigmas = np.zeros(cap, np.float32)
    seeds[:n], sigmas[:n] = parsed["seeds"], parsed["sigmas"]
    return Genome(
        init_seed=jnp.asarray(parsed["init_seed"], jnp.uint32),
        seeds=jnp.asarray(seeds),
        sigmas=jnp.asarray(sigmas),
        length=jnp.asarray(n, jnp.int32),
    )


def info(data: bytes) -> dict:
    """The header of genome bytes (validated first): ``num_mutations``, ``init_seed``,
    ``num_params`` (0 if unknown), ``version`` and the ``metadata`` dict."""
    parsed = _parse(data)
    return {"version": VERSION, "num_mutations": int(parsed["seeds"].shape[0]),
            "init_seed": int(parsed["init_seed"]), "num_params": int(parsed["num_params"]),
            "metadata": parsed["metadata"]}


def num_bytes(genome: Genome) -> int:
    """Size of :func:`to_bytes` of ``genome`` without metadata: ``32 + 8 * length``."""
    return HEADER_SIZE + 8 * int(np.asarray(genome.length))


def compression_ratio(genome: Genome, params_or_num_params) -> float:
    """float32 size of the network's weights divided by the genome's serialized size."""
    if isinstance(params_or_num_params, (int, np.integer)):
        n = int(params_or_num_params)
    else:
        n = int(sum(np.size(x) for x in jax.tree.leaves(params_or_num_params)))
    return 4.0 * n / num_bytes(genome)
