"""Checkpoints of whole runs and resumable runs (driven by :mod:`evojax_lab.driver`).

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

**Resumable runs**: :func:`run_with_checkpoints` drives a :class:`~evojax_lab.Trainer` in jitted
blocks, saving ``{"carry", "metrics"}`` (the carry and the metrics history so far) to
``<directory>/checkpoint.ckpt`` every ``every`` generations and at the end; called again with
the same trainer and key it resumes from the checkpoint. Because generation ``g`` uses
``fold_in(run_key, g)``, the resumed run equals the uninterrupted one bit for bit::

    trainer = el.make_train(task, policy, strategy, generations=1000)
    result = el.checkpoint.run_with_checkpoints(
        trainer, key, "runs/my_run", every=50,
        loggers=[el.checkpoint.JsonlLogger("runs/my_run/metrics.jsonl")], progress=True)

:func:`run_with_progress` is the same driver without checkpoints (a tqdm progress bar that works
in terminals and notebooks, and loggers).

**Logger hook**: a logger is any callable ``logger(generation, metrics)``, called on the host
once per finished generation (``generation`` counts from 1; ``metrics`` maps names to Python
floats/ints, or NumPy arrays for per-member records such as ``population_behavior``). It may
also have ``start(generation)`` (called once before the first row with the generation the run
starts from: 0, or the checkpoint's generation on resume, so file loggers can drop rows written
after the last checkpoint) and ``close()``. The loggers provided live in
:mod:`evojax_lab.loggers` (JSON lines, CSV, TensorBoard, Weights & Biases); their names are also
importable from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

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


def _write_all(f, chunks: Iterable[bytes]) -> None:
    """Write the chunks to ``f`` (a seam for tests that simulate a crash mid-write)."""
    for chunk in chunks:
        f.write(chunk)


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
    _atomic_write(path, chunks)
    return path


def _atomic_write(path: Path, chunks: Sequence) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, chunks)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
    if str(treedef) != header["treedef"] or len(records) != len(leaves):
        stored = [r["path"] for r in records]
        first = next((f"{a!r} in the file vs {b!r} expected" for a, b
                      in zip(stored, paths, strict=False) if a != b),
                     f"{len(records)} leaves in the file vs {len(leaves)} expected")
        raise CheckpointError(
            f"{path} holds a different tree: types {_types(header['treedef'])} in the file, "
            f"{_types(str(treedef))} expected (another strategy or settings?); first "
            f"difference: {first}"
        )
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


def kept_name(path: Path, generation: int) -> Path:
    """The name an earlier checkpoint of ``path`` is kept under: ``checkpoint.<generation>.ckpt``
    (zero-padded, so they sort by generation)."""
    return path.with_name(f"{path.stem}.{int(generation):08d}{path.suffix}")


def kept_checkpoints(path) -> list[Path]:
    """The earlier checkpoints kept beside ``path`` (oldest first)."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(path.stem)}\.(\d{{8}}){re.escape(path.suffix)}")
    return sorted(p for p in path.parent.glob(f"{path.stem}.*{path.suffix}")
                  if pattern.fullmatch(p.name))


class Checkpointing:
    """A :func:`~evojax_lab.driver.run_in_blocks` callback that saves ``{"carry", "metrics"}``
    (the carry and the metrics history so far) to ``path`` after every block that ends on a
    multiple of ``every`` and after the last generation.

    Args:
        path: the checkpoint file (always the latest checkpoint: what a resume reads).
        every: the checkpoint interval in generations.
        history: the host metrics of the generations before the run's start (a resume).
        metadata: fields stored in the header (with ``generation`` and ``generations``).
        keep: checkpoints kept in all: before ``path`` is replaced, the checkpoint it holds is
            kept as ``checkpoint.<generation>.ckpt`` (a second name of the same file: no copy),
            and the oldest kept ones beyond ``keep - 1`` are removed. 1 keeps only ``path``.
    """

    def __init__(self, path, every: int, history: Sequence[dict] = (),
                 metadata: dict | None = None, keep: int = 1, current: int | None = None):
        self.path, self.every, self.keep = Path(path), int(every), int(keep)
        if self.keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.history, self.metadata = list(history), dict(metadata or {})
        self.current = current  # the generation of this run that `path` holds (None: none)

    def _keep_current(self) -> None:
        """Give the checkpoint ``path`` holds its kept name (before it is replaced); a file of
        another run (``current`` is None) is replaced, not kept."""
        if self.keep < 2 or self.current is None or jax.process_index() != 0:
            return
        target = kept_name(self.path, self.current)
        tmp = target.with_name(f".{target.name}.link.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(self.path, tmp)
        except OSError:  # a file system without hard links: copy
            _atomic_write(target, [self.path.read_bytes()])
        else:
            os.replace(tmp, target)  # over a stale file of that name, never beside it

    def _prune(self) -> None:
        if jax.process_index() != 0:
            return
        kept = kept_checkpoints(self.path)
        for old in kept[: max(0, len(kept) - (self.keep - 1))]:
            with contextlib.suppress(OSError):
                old.unlink()

    def save(self, carry, generation: int, total: int) -> None:
        self._keep_current()
        save(self.path, {"carry": carry, "metrics": _concat(self.history)},
             metadata={**self.metadata, "generation": generation, "generations": total})
        self.current = generation
        self._prune()

    def block(self, block) -> None:
        self.history.append(block.metrics)
        if block.end % self.every == 0 or block.end == block.total:
            self.save(block.carry, block.end, block.total)


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


def run_with_checkpoints(trainer, key, directory, *, every: int = 50, block: int | None = None,
                         resume: bool = True, hparams: dict | None = None,
                         loggers: Sequence[Callable] = (), progress: bool | str = False,
                         metadata: dict | None = None, keep: int = 1):
    """Run ``trainer`` to its ``generations`` in jitted blocks, checkpointing and logging.

    Args:
        trainer: a :class:`~evojax_lab.Trainer` (from :func:`~evojax_lab.make_train`).
        key: the run's key (as for ``trainer(key)``).
        directory: folder of the checkpoint ``checkpoint.ckpt`` (``None``: no checkpoints).
        every: save a checkpoint every ``every`` generations (block boundaries are aligned to
            multiples of it) and after the last generation.
        block: generations per jitted call between host updates (progress, loggers); default
            ``min(every, 10)``. Each distinct block length compiles once.
        resume: continue from ``directory``'s checkpoint if there is one (it must come from the
            same key and a trainer with the same state structure, else
            :class:`CheckpointError`); ``False`` starts afresh and overwrites it.
        hparams: numeric overrides for ``strategy.init`` (as for ``trainer(key, hparams)``).
        loggers: callables ``logger(generation, metrics)`` (see :mod:`evojax_lab.loggers`).
        progress: show a tqdm progress bar (``tqdm.auto``: a widget in notebooks) with the
            current score; a string is used as its description.
        metadata: extra JSON-serializable fields stored in the checkpoint header.
        keep: checkpoints kept in all (:class:`Checkpointing`): the latest in
            ``checkpoint.ckpt``, earlier ones as ``checkpoint.<generation>.ckpt``.

    Returns:
        The :class:`~evojax_lab.TrainResult` of the whole run (metrics of all generations,
        including those before a resume); bit for bit what ``trainer(key, hparams)`` returns.

    This is :func:`~evojax_lab.driver.run_in_blocks` with three kinds of callback, in this
    order: the loggers, :class:`Checkpointing`, the progress bar. Loggers run before the
    checkpoint of the same block is written, so after a crash the files never miss a generation
    the checkpoint holds (rows beyond it are dropped on resume). Multi-process runs: every
    process calls this with the same arguments and must be able to read ``directory`` to
    resume; only process 0 writes the checkpoint (give loggers to process 0 only).
    """
    from evojax_lab.driver import ProgressBar, logging, run_in_blocks

    every = int(every)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if int(keep) < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    block = min(every, 10) if block is None else int(block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    total = trainer.generations
    carry = trainer.init(key, hparams)
    path = None if directory is None else Path(directory) / CHECKPOINT_NAME
    fingerprint = _key_fingerprint(key)
    if path is not None and jax.process_index() == 0:
        # Temporary files of a writer killed mid-save (SIGKILL, power loss) are never used.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
    past, start, resumed = [], 0, False
    if path is not None and resume and path.exists():
        carry, past, start = resume_point(path, carry, key, total)
        resumed = True
    callbacks = [logging(logger) for logger in loggers]
    saver = None
    if path is not None:
        saver = Checkpointing(path, every, past,
                              {**(metadata or {}), "kind": RUN_KIND, "key": fingerprint}, keep,
                              current=start if resumed else None)
        callbacks.append(saver)
    if progress:
        callbacks.append(ProgressBar(total, progress if isinstance(progress, str) else None))
    carry, blocks = run_in_blocks(trainer, carry, start=start, block=block, align=every,
                                  callbacks=callbacks)
    if saver is not None and not blocks and not path.exists():
        saver.save(carry, start, total)  # nothing to run (a finished run resumed)
    history = past + blocks
    if not history:
        raise ValueError("the run has no generations")
    return trainer.result(carry, history)


def run_with_progress(trainer, key, *, block: int = 10, hparams: dict | None = None,
                      loggers: Sequence[Callable] = (), progress: bool | str = True):
    """Run ``trainer`` in jitted blocks of ``block`` generations with a progress bar showing
    the current score (``tqdm.auto``: also in notebooks) and ``loggers`` called per
    generation; no checkpoints. Returns the same :class:`~evojax_lab.TrainResult` as
    ``trainer(key, hparams)``."""
    return run_with_checkpoints(trainer, key, None, every=max(int(block), 1), block=block,
                                hparams=hparams, loggers=loggers, progress=progress)


def _concat(blocks: list[dict]) -> dict:
    return {k: np.concatenate([np.asarray(b[k]) for b in blocks]) for k in blocks[0]}


__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "Checkpointing",
    "CsvLogger",
    "FORMAT_VERSION",
    "JsonlLogger",
    "MAGIC",
    "TensorBoardLogger",
    "info",
    "kept_checkpoints",
    "kept_name",
    "restore",
    "resume_point",
    "run_with_checkpoints",
    "run_with_progress",
    "save",
]
