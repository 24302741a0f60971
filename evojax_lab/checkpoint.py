"""The checkpoint file format: one pytree of arrays in one verified file.

**The file format** (no pickle: nothing in a checkpoint is ever executed)::

    magic    16 bytes  b"EVOJAX-LAB-CKPT\\n"
    version   4 bytes  uint32, little-endian (FORMAT_VERSION)
    length    8 bytes  uint64, little-endian: size of the JSON header
    digest   32 bytes  sha256 of the JSON header
    header   JSON      tree structure (``str(treedef)``), every leaf's path, shape, dtype and
                       byte range, PRNG key implementation of typed-key leaves, payload size and
                       sha256, user metadata
    payload            the leaves' raw bytes (C order, little-endian), one after another

:func:`save` writes a pytree of arrays (any pytree: a :class:`~evojax_lab.train.TrainCarry` with
its strategy state, novelty archive, optimizer state, observation statistics and key) to a
temporary file in the same folder, ``fsync``\\ s it and renames it over the target
(``os.replace``), so a crash while writing leaves the previous checkpoint intact. :func:`restore`
checks the magic, version, digests, sizes and the tree structure against a template (``like``)
and raises :class:`CheckpointError` naming the problem (truncated file, foreign file,
corruption, a checkpoint of another strategy or size); dtypes are exact, typed PRNG keys
(``jax.random.key``) round-trip, and each restored leaf gets the sharding of the template's leaf,
so a resumed sharded run is the uninterrupted run bit for bit.

**Run checkpoints** (a run folder's steps, saved and resumed by
:func:`~evojax_lab.storage.run_with_checkpoints`) live in :mod:`evojax_lab.storage`, on
orbax-checkpoint; this format stores their metrics segments. ``run_with_checkpoints``,
``run_with_progress`` and ``Checkpointing`` are also importable from here, and
:func:`resume_point` reads the single-file run checkpoint (``checkpoint.ckpt``) of
evojax_lab 0.1. The loggers live in :mod:`evojax_lab.loggers` (their names are also importable
from here).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evojax_lab.core import files
from evojax_lab.loggers import CsvLogger, JsonlLogger, TensorBoardLogger

MAGIC = b"EVOJAX-LAB-CKPT\n"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.ckpt"
RUN_KIND = "evojax_lab.run"
_PREFIX = struct.Struct("<16sIQ32s")  # magic, version, header length, header sha256


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: truncated, foreign, corrupted or of another run."""


# -- the file format ---------------------------------------------------------------------------
def _is_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _leaf_paths(tree) -> tuple[list[str], list[Any], Any]:
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return ([jax.tree_util.keystr(p) for p, _ in path_leaves], [x for _, x in path_leaves],
            treedef)


def _to_numpy(leaves: list) -> tuple[list[np.ndarray], list[str | None]]:
    """Host copies of the leaves; typed PRNG keys become their raw ``uint32`` data."""
    from evojax_lab.parallel import to_host

    impls = [str(jax.random.key_impl(x)) if _is_key(x) else None for x in leaves]
    raw = [jax.random.key_data(x) if impl else x for x, impl in zip(leaves, impls, strict=True)]
    host = to_host(raw)
    # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
    return [np.require(np.asarray(x), requirements="C") for x in host], impls


def save(path, tree, *, metadata: dict | None = None) -> Path:
    """Write ``tree`` (a pytree of arrays) to ``path`` atomically.

    Args:
        path: the checkpoint file; its folder is created if needed. An existing file is
            replaced only once the new one is completely written and synced.
        tree: any pytree of arrays (jax, NumPy, typed PRNG keys); sharded or multi-process
            arrays are gathered to the host first (every process must call ``save``; only
            process 0 writes).
        metadata: JSON-serializable dict stored in the header (see :func:`info`).

    Returns:
        The path written.
    """
    path = Path(path)
    paths, leaves, treedef = _leaf_paths(tree)
    arrays, impls = _to_numpy(leaves)
    if jax.process_index() != 0:
        return path
    records, offset = [], 0
    for p, a, impl in zip(paths, arrays, impls, strict=True):
        if a.dtype.hasobject:
            raise ValueError(f"checkpoint leaf {p} has dtype object; only numeric arrays can be "
                             "saved")
        records.append({"path": p, "shape": list(a.shape), "dtype": str(a.dtype),
                        "key_impl": impl, "offset": offset, "nbytes": a.nbytes})
        offset += a.nbytes
    raw = [a.reshape(-1).view(np.uint8) for a in arrays]  # bytes (also bfloat16 & co.)
    digest = hashlib.sha256()
    for b in raw:
        digest.update(b)
    header = {
        "treedef": str(treedef),
        "leaves": records,
        "byteorder": sys.byteorder,
        "payload_size": offset,
        "payload_sha256": digest.hexdigest(),
        "metadata": metadata or {},
    }
    try:
        header_bytes = json.dumps(header, allow_nan=False).encode()
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint metadata must be JSON-serializable: {err}") from None
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes),
                          hashlib.sha256(header_bytes).digest())
    chunks = [prefix, header_bytes, *raw]
    files.atomic_write(path, chunks)
    return path


def _read(path) -> tuple[dict, memoryview]:
    """The verified header and payload of a checkpoint file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file") from None
    if not data:
        raise CheckpointError(f"{path} is empty (truncated: nothing was written)")
    if not data.startswith(MAGIC[: len(data)]):
        raise CheckpointError(
            f"{path} is not an evojax_lab checkpoint (foreign file: it starts with "
            f"{data[:16]!r}, expected {MAGIC!r})"
        )
    if len(data) < _PREFIX.size:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes, not even a header)")
    _, version, header_size, header_digest = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this evojax_lab "
                              f"reads version {FORMAT_VERSION}")
    end = _PREFIX.size + header_size
    if len(data) < end:
        raise CheckpointError(f"{path} is truncated: the header needs {header_size} bytes, "
                              f"{len(data) - _PREFIX.size} present")
    header_bytes = data[_PREFIX.size:end]
    if hashlib.sha256(header_bytes).digest() != header_digest:
        raise CheckpointError(f"{path} is corrupted: the header checksum does not match")
    header = json.loads(header_bytes)
    payload = memoryview(data)[end:]
    if len(payload) < header["payload_size"]:
        raise CheckpointError(f"{path} is truncated: {len(payload)} of "
                              f"{header['payload_size']} payload bytes present")
    if len(payload) > header["payload_size"]:
        raise CheckpointError(f"{path} is corrupted: {len(payload) - header['payload_size']} "
                              "bytes after the payload")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CheckpointError(f"{path} is corrupted: the payload checksum (sha256) does not "
                              "match")
    if header.get("byteorder", sys.byteorder) != sys.byteorder:
        raise CheckpointError(f"{path} was written on a {header['byteorder']}-endian machine")
    return header, payload


def info(path) -> dict:
    """The verified header of a checkpoint: ``metadata``, ``treedef``, ``leaves`` (path, shape,
    dtype per leaf), ``payload_size``. Raises :class:`CheckpointError` like :func:`restore`."""
    header, _ = _read(path)
    return header


def check_tree(path, stored_treedef: str, records: list[dict], paths: list[str],
               treedef) -> None:
    """Raise :class:`CheckpointError` naming the first difference when the stored tree
    (``stored_treedef``, leaf ``records`` with their ``path``) is not the template's."""
    if str(treedef) == stored_treedef and len(records) == len(paths):
        return
    stored = [r["path"] for r in records]
    first = next((f"{a!r} in the file vs {b!r} expected" for a, b
                  in zip(stored, paths, strict=False) if a != b),
                 f"{len(records)} leaves in the file vs {len(paths)} expected")
    raise CheckpointError(
        f"{path} holds a different tree: types {_types(stored_treedef)} in the file, "
        f"{_types(str(treedef))} expected (another strategy or settings?); first "
        f"difference: {first}")


def _types(treedef: str) -> str:
    names = list(dict.fromkeys(re.findall(r"namedtuple\[(\w+)\]", treedef)))
    return "/".join(names) if names else "plain containers"


def _expected(x) -> tuple[tuple, str, str | None]:
    """(shape, dtype, key impl) a template leaf asks for, as stored in a file."""
    if _is_key(x):
        data = jax.eval_shape(jax.random.key_data, x)
        try:
            impl = str(jax.random.key_impl(x))
        except (TypeError, ValueError, AttributeError):
            impl = None
        return tuple(data.shape), str(np.dtype(data.dtype)), impl
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(x.shape), str(np.dtype(x.dtype)), None
    a = np.asarray(x)
    return a.shape, str(a.dtype), None


def _place(array: np.ndarray, like):
    """``array`` as the template leaf ``like`` has it: NumPy, or a jax array with its sharding."""
    if isinstance(like, np.ndarray) or not hasattr(like, "dtype"):
        return array
    if _is_key(like):
        sharding = getattr(like, "sharding", None)
        if isinstance(like, jax.Array):
            sharding = jax.random.key_data(like).sharding
        data = _device_put(array, sharding)
        return jax.random.wrap_key_data(data, impl=str(jax.random.key_impl(like)))
    sharding = getattr(like, "sharding", None)
    if sharding is None and not isinstance(like, jax.Array):
        return array  # a ShapeDtypeStruct without sharding: host array
    return _device_put(array, sharding)


def _device_put(array: np.ndarray, sharding):
    if sharding is None:
        return jax.device_put(array)
    if sharding.is_fully_addressable:
        return jax.device_put(array, sharding)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def restore(path, like):
    """Read a checkpoint written by :func:`save` into the structure of ``like``.

    Args:
        path: the checkpoint file.
        like: a template pytree of the same structure (e.g. a fresh ``trainer.init(key)``
            carry); leaves may be arrays or ``jax.ShapeDtypeStruct``. Each restored leaf takes
            the template leaf's kind and placement: NumPy stays NumPy, a jax array (or a
            ``ShapeDtypeStruct`` with a sharding) gets the same sharding, a typed PRNG key is a
            typed key of the same implementation.

    Returns:
        The restored pytree.

    Raises:
        CheckpointError: missing, truncated, foreign or corrupted file, or a tree that differs
            from ``like`` (another strategy, population size, network, archive capacity, ...).
            Nothing is modified on disk.
    """
    header, payload = _read(path)
    paths, leaves, treedef = _leaf_paths(like)
    records = header["leaves"]
    check_tree(path, header["treedef"], records, paths, treedef)
    out = []
    for p, x, r in zip(paths, leaves, records, strict=True):
        shape, dtype, impl = _expected(x)
        if tuple(r["shape"]) != shape or r["dtype"] != dtype:
            raise CheckpointError(
                f"{path}: leaf {p} is {r['dtype']}{list(r['shape'])} in the file but "
                f"{dtype}{list(shape)} is expected (another population size, network or "
                "capacity?)"
            )
        if impl is not None and r["key_impl"] not in (None, impl):
            raise CheckpointError(f"{path}: leaf {p} is a {r['key_impl']} key in the file, "
                                  f"{impl} expected")
        if _is_key(x) and r["key_impl"] is None:
            raise CheckpointError(f"{path}: leaf {p} is raw data in the file, a typed PRNG key "
                                  "is expected")
        if r["key_impl"] is not None and not _is_key(x):
            raise CheckpointError(f"{path}: leaf {p} is a typed {r['key_impl']} key in the "
                                  "file, a plain array is expected")
        chunk = payload[r["offset"]: r["offset"] + r["nbytes"]]
        array = np.frombuffer(chunk, dtype=_dtype(r["dtype"])).reshape(shape).copy()
        out.append(_place(array, x))
    return jax.tree.unflatten(treedef, out)


def _dtype(name: str) -> np.dtype:
    import jax.numpy as jnp  # knows bfloat16, float8 and friends

    return np.dtype(jnp.dtype(name))


# -- resumable runs ----------------------------------------------------------------------------
def _key_fingerprint(key) -> str:
    data = jax.random.key_data(key) if _is_key(key) else key
    return hashlib.sha256(np.ascontiguousarray(np.asarray(data)).tobytes()).hexdigest()[:16]


def _history_template(header: dict) -> dict:
    """ShapeDtypeStructs of the metrics history stored under ``['metrics']``."""
    out = {}
    for r in header["leaves"]:
        match = re.fullmatch(r"\['metrics'\]\['([^']+)'\]", r["path"])
        if match:
            out[match.group(1)] = jax.ShapeDtypeStruct(tuple(r["shape"]), _dtype(r["dtype"]))
    return out


def resume_point(path, carry, key, total: int):
    """``(carry, past_metrics_blocks, generation)`` restored from the run checkpoint ``path``
    of a run with ``key``; ``carry`` is the template (``trainer.init(key)``), ``total`` the
    trainer's generations. Raises :class:`CheckpointError` for a checkpoint of another kind,
    key or structure, or one beyond ``total``."""
    path, fingerprint = Path(path), _key_fingerprint(key)
    header = info(path)
    meta = header.get("metadata", {})
    if meta.get("kind") != RUN_KIND:
        raise CheckpointError(f"{path} is not a run checkpoint (written by checkpoint.save, "
                              "not run_with_checkpoints)")
    if meta.get("key") != fingerprint:
        raise CheckpointError(f"{path} was written by a run with another key (seed); pass "
                              "resume=False to start afresh")
    restored = restore(path, {"carry": carry, "metrics": _history_template(header)})
    start = int(meta["generation"])
    if start > total:
        raise CheckpointError(f"{path} is at generation {start}, beyond this trainer's {total} "
                              "generations")
    return restored["carry"], ([restored["metrics"]] if start else []), start


#: Names that moved to :mod:`evojax_lab.storage` (run checkpoints on orbax-checkpoint), still
#: importable from here.
_MOVED = ("Checkpointing", "run_with_checkpoints", "run_with_progress")


def __getattr__(name):
    if name in _MOVED:
        from evojax_lab import storage

        return getattr(storage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "CsvLogger",
    "FORMAT_VERSION",
    "JsonlLogger",
    "MAGIC",
    "TensorBoardLogger",
    "info",
    "restore",
    "resume_point",
    "save",
]
