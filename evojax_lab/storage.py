"""Run checkpoints on orbax-checkpoint: a folder of steps, each committed by our manifest.

A run folder's checkpoints (``<run>/checkpoints``)::

    checkpoints/
      00000050/                the carry after generation 50
        state/                 orbax-checkpoint: every process writes the shards it holds
        manifest.json          ours, written last: the step exists once this file does
      00000100/
      metrics/
        00000000-00000050.ckpt the metrics of generations [0, 50) (checkpoint.save format)
        00000050-00000100.ckpt appended by the step at 100; a segment is never rewritten

**Saving a step** (:func:`save_step`; every process calls it with the same arguments):

1. process 0 writes the metrics rows since the previous step as a new segment;
2. orbax writes ``state/`` (into a temporary folder renamed when complete): each leaf sharded
   over devices as one array, each process writing the shards it holds; the replicated, single-
   device and host leaves packed as raw bytes into one array (orbax's cost grows with the number
   of arrays); typed PRNG keys are stored as their key data;
3. each process hashes (sha256) the shards it wrote (replica 0 of its addressable shards) and
   the files orbax wrote for it (``state/ocdbt.process_<i>``; process 0 also the rest);
4. process 0 writes ``manifest.json`` (temporary file, then rename): format and version, the
   run's key fingerprint, the generation, the tree structure, every leaf's path, shape, dtype
   and key implementation, the file and shard digests of all processes, the metrics segments
   and the caller's metadata. Until this file exists the step does not count: a save killed at any
   point leaves the previous step as the latest; :func:`prune` removes the remains.

**Restoring** (:func:`restore`) reads the newest committed step and checks, before any array is
read, that the manifest belongs to this run (kind, key, generation within the trainer's) and
to this trainer (tree structure, shapes, dtypes, key implementations); every file of
``state/`` is checked against its digest (so a damaged file is named before orbax decodes
it); orbax reads every leaf into the sharding of the template's leaf; each process checks the
digests of the shards it now holds (in a multi-process run the verdicts are gathered, so every
process raises the same error); the metrics segments must cover generations
``[0, generation)`` and pass their own checksums. Every problem is a
:class:`~evojax_lab.checkpoint.CheckpointError` naming the file. Nothing on disk is modified by
a restore.

A fresh run into a folder that holds steps (``resume=False``) first moves ``checkpoints/``
aside to ``checkpoints.replaced-<n>`` (never deletes it). Runs checkpointed by evojax_lab 0.1
(one ``checkpoint.ckpt`` file) still resume: :func:`restore` reads that file when the folder
has no step, and later steps are written in this layout beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np

from evojax_lab import checkpoint as ckpt
from evojax_lab.checkpoint import CheckpointError
from evojax_lab.core import files

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "evojax_lab.run-checkpoint"
MANIFEST_VERSION = 1
LEGACY_NAME = ckpt.CHECKPOINT_NAME
_STEP = re.compile(r"\d{8}")
_SEGMENT = re.compile(r"(\d{8})-(\d{8})\.ckpt")


# -- the folder ---------------------------------------------------------------------------------
def root(folder) -> Path:
    """The checkpoints folder of a run folder (absolute: orbax refuses relative paths)."""
    return Path(folder).absolute() / CHECKPOINTS


def step_dir(folder, generation: int) -> Path:
    return root(folder) / f"{int(generation):08d}"


def steps(folder) -> list[int]:
    """The generations of the committed steps of a run folder (oldest first)."""
    base = root(folder)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if _STEP.fullmatch(p.name) and (p / MANIFEST).is_file())


def has_checkpoint(folder) -> bool:
    """Whether the run folder holds something to resume (a step, or a 0.1 checkpoint file)."""
    return bool(steps(folder)) or (Path(folder) / LEGACY_NAME).is_file()


def manifest(folder, generation: int | None = None) -> dict:
    """The manifest of a step (default: the newest), checked to be ours; JSON only, reads no
    array. Raises :class:`CheckpointError`."""
    if generation is None:
        done = steps(folder)
        if not done:
            raise CheckpointError(f"{root(folder)}: no checkpoint (no committed step)")
        generation = done[-1]
    path = step_dir(folder, generation) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint step") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not an evojax_lab manifest (not text)") from None
    if not text.strip():
        raise CheckpointError(f"{path} is empty (truncated)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupted or truncated (not JSON: {err})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"{path} is not an evojax_lab run checkpoint manifest (foreign "
                              "file)")
    if data.get("version") != MANIFEST_VERSION:
        raise CheckpointError(f"{path} has manifest version {data.get('version')}; this "
                              f"evojax_lab reads version {MANIFEST_VERSION}")
    if data.get("generation") != int(generation):
        raise CheckpointError(f"{path} says generation {data.get('generation')} in the folder "
                              f"of step {int(generation)} (moved or foreign)")
    return data


def check_writable(folder) -> None:
    """Raise ``PermissionError`` (one line, naming the folder) unless files can be created in
    ``folder`` (or, if it does not exist yet, in its nearest existing parent)."""
    import tempfile

    where = Path(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as err:
        raise PermissionError(f"{where} is not writable ({err.strerror or err}): the run's "
                              "checkpoints and files cannot be saved there") from None


def set_aside(folder) -> Path | None:
    """Move a run folder's ``checkpoints/`` to ``checkpoints.replaced-<n>`` (the first free
    ``n``) if it holds anything; returns the new name (``None``: nothing to move)."""
    base = root(folder)
    if jax.process_index() != 0 or not base.is_dir() or not any(base.iterdir()):
        return None
    n = 1
    while (target := base.with_name(f"{CHECKPOINTS}.replaced-{n}")).exists():
        n += 1
    base.rename(target)
    warnings.warn(f"{base} held the checkpoints of an earlier run; moved to {target.name}",
                  stacklevel=3)
    return target


def prune(folder, keep: int) -> None:
    """Keep the newest ``keep`` committed steps; remove older steps, interrupted saves (step
    folders without a manifest) and metrics segments no kept step lists (process 0 only)."""
    base = root(folder)
    if jax.process_index() != 0 or not base.is_dir():
        return
    done = steps(folder)
    kept = set(done[-int(keep):])
    for p in base.iterdir():
        if _STEP.fullmatch(p.name) and int(p.name) not in kept:
            shutil.rmtree(p, ignore_errors=True)
    used = set()
    for g in kept:
        try:
            used.update(s["file"] for s in manifest(folder, g)["metrics"])
        except CheckpointError:
            return  # a kept step we cannot read: remove no segment it might need
    for p in (base / "metrics").glob("*"):
        if f"metrics/{p.name}" not in used and (_SEGMENT.fullmatch(p.name)
                                                or p.name.endswith(".tmp")):
            with contextlib.suppress(OSError):
                p.unlink()


# -- leaves, shards and digests -----------------------------------------------------------------
def _bounds(index, shape) -> list[list[int]]:
    return [[0 if s.start is None else int(s.start), d if s.stop is None else int(s.stop)]
            for s, d in zip(index, shape, strict=True)]


def _slices(bounds) -> tuple:
    return tuple(slice(a, b) for a, b in bounds)


def _sha(x) -> str:
    return hashlib.sha256(np.asarray(x).tobytes()).hexdigest()


def _describe(x) -> dict:
    """A leaf as the manifest records it: shape, dtype, key implementation (typed keys)."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    impl = str(jax.random.key_impl(x)) if ckpt._is_key(x) else None
    dtype = str(x.dtype) if impl else str(np.dtype(x.dtype))
    return {"shape": [int(d) for d in x.shape], "dtype": dtype, "key_impl": impl}


def _stored(leaf):
    """What orbax stores for a leaf: typed PRNG keys as their key data."""
    return jax.random.key_data(leaf) if ckpt._is_key(leaf) else leaf


def _shard_digests(leaves) -> list[dict]:
    """sha256 of each shard this process writes (replica 0 of its addressable shards; a host
    leaf is written by process 0), with the writing process."""
    out, process = [], jax.process_index()
    for i, x in enumerate(leaves):
        if np.prod(np.shape(x)) == 0:
            continue  # no data (not given to orbax either)
        if isinstance(x, jax.Array):
            for shard in x.addressable_shards:
                if shard.replica_id == 0:
                    out.append({"leaf": i, "index": _bounds(shard.index, x.shape),
                                "sha256": _sha(shard.data), "process": process})
        elif process == 0:
            x = np.asarray(x)
            out.append({"leaf": i, "index": [[0, d] for d in x.shape], "sha256": _sha(x),
                        "process": process})
    return out


def _file_digests(state: Path) -> list[dict]:
    """sha256 and size of the files of ``state`` this process hashes: those in its own
    ``ocdbt.process_<i>`` folder, and process 0 also every file outside such folders."""
    process, out = jax.process_index(), []
    for p in sorted(q for q in state.rglob("*") if q.is_file()):
        rel = p.relative_to(state)
        owner = re.fullmatch(r"ocdbt\.process_(\d+)", rel.parts[0]) if len(rel.parts) > 1 \
            else None
        if (int(owner.group(1)) if owner else 0) == process:
            out.append({"file": rel.as_posix(), "bytes": p.stat().st_size, "sha256":
                        hashlib.sha256(p.read_bytes()).hexdigest()})
    return out


def _agree(status: np.ndarray) -> np.ndarray:
    """The worst verdict per entry over all processes (0 unchecked < 1 good < 2 bad ...)."""
    if jax.process_count() == 1:
        return status
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(status)).max(axis=0)


def _verify_files(state: Path, entries: list[dict]) -> None:
    """Check the files orbax wrote against the manifest before orbax reads them (each process
    a share of them; verdicts gathered): a damaged file is named, not decoded."""
    status = np.ones(len(entries), np.int8)
    for j in range(jax.process_index(), len(entries), jax.process_count()):
        path = state / entries[j]["file"]
        if not path.is_file():
            status[j] = 3
        elif (path.stat().st_size != entries[j]["bytes"]
              or hashlib.sha256(path.read_bytes()).hexdigest() != entries[j]["sha256"]):
            status[j] = 2
    status = _agree(status)
    for j in np.flatnonzero(status > 1)[:1]:
        problem = "is missing" if status[j] == 3 else "is corrupted: its sha256 does not match"
        raise CheckpointError(f"{state / entries[int(j)]['file']} {problem}")


def _verify(path: Path, leaves, names: list[str], entries: list[dict]) -> None:
    """Check the restored ``leaves`` against the manifest's shard digests. Each process checks
    the shards it holds; in a multi-process run the verdicts are gathered, so all raise."""
    status = np.zeros(len(entries), np.int8)  # 0 not checked here, 1 good, 2 bad
    local = {}
    for i, x in enumerate(leaves):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            local[i] = {str(_bounds(s.index, x.shape)): s.data for s in x.addressable_shards}
    for j, e in enumerate(entries):
        x = leaves[e["leaf"]]
        if e["leaf"] in local:
            data = local[e["leaf"]].get(str(e["index"]))
            if data is None:
                continue
        else:
            data = np.asarray(x)[_slices(e["index"])]
        status[j] = 1 if _sha(data) == e["sha256"] else 2
    status = _agree(status)
    bad = np.flatnonzero(status == 2)
    if bad.size:
        e = entries[int(bad[0])]
        raise CheckpointError(f"{path} is corrupted: leaf {names[e['leaf']]} (shard "
                              f"{e['index']}) does not match its sha256")
    if not status.all():
        e = entries[int(np.flatnonzero(status == 0)[0])]
        raise CheckpointError(f"{path}: shard {e['index']} of leaf {names[e['leaf']]} is not "
                              "held by any process with this device layout; resume on the "
                              "devices the run was saved from")


def _abstract(leaf):
    """The orbax restore target of a template leaf (its stored form, with its sharding)."""
    x = _stored(leaf) if isinstance(leaf, jax.Array) else leaf
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, jax.ShapeDtypeStruct) and ckpt._is_key(x):
        x = jax.eval_shape(jax.random.key_data, x)
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype, sharding=sharding)


def _placed(array, like):
    """A restored (stored-form) leaf as the template leaf has it (an uncommitted template leaf
    gives an uncommitted array: a committed one would compile the run's blocks again)."""
    if isinstance(like, jax.Array) and not like.committed:
        array = jax.device_put(np.asarray(array))
    if ckpt._is_key(like):
        return jax.random.wrap_key_data(array, impl=str(jax.random.key_impl(like)))
    if isinstance(like, np.ndarray) or not hasattr(like, "dtype"):
        return np.asarray(array)
    if isinstance(like, jax.ShapeDtypeStruct) and getattr(like, "sharding", None) is None:
        return np.asarray(array)
    return array


def _split(stored) -> tuple[dict, list[dict]]:
    """The tree orbax stores and each leaf's place in it: a leaf sharded over devices (not
    fully replicated) is its own array ``leaf<i>``, written shard by shard by the processes
    holding them; every other leaf (replicated, on one device, or on the host) is packed as
    raw bytes into one ``uint8`` array ``packed`` (orbax's cost grows by ~2 ms per array;
    orbax refuses zero-size arrays, which pack to nothing)."""
    tree, layout, chunks, offset = {}, [], [], 0
    for i, x in enumerate(stored):
        if isinstance(x, jax.Array) and not x.is_fully_replicated and x.size:
            tree[f"leaf{i:05d}"] = x
            layout.append({"array": f"leaf{i:05d}"})
            continue
        host = np.asarray(x.addressable_shards[0].data if isinstance(x, jax.Array) else x)
        raw = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        chunks.append(raw)
        layout.append({"packed": [offset, int(raw.size)]})
        offset += int(raw.size)
    if offset:
        tree["packed"] = np.concatenate(chunks)
    return tree, layout


def _unpack(path: Path, packed, span, like):
    """A packed leaf's bytes as the (stored-form) template leaf ``like``, on its devices."""
    offset, size = span
    dtype, shape = np.dtype(like.dtype), tuple(like.shape)
    if size != dtype.itemsize * int(np.prod(shape)) or offset + size > packed.size:
        raise CheckpointError(f"{path}: a packed leaf of {size} bytes at {offset} does not fit "
                              f"{dtype}{list(shape)} (corrupted manifest)")
    host = packed[offset: offset + size].view(dtype).reshape(shape)
    if not isinstance(like, jax.Array):
        return host
    if like.is_fully_addressable:
        return jax.device_put(host, like.sharding)
    return jax.make_array_from_callback(shape, like.sharding, lambda index: host[index])


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# -- what a checkpoint belongs to --------------------------------------------------------------
def identity(trainer, extra: dict | None = None) -> dict:
    """What a run's checkpoints belong to besides its key: the task's name, the strategy's kind
    (the module and function of its ``tell``) and population size, the policy's parameter tree
    (paths, dtypes, shapes), and ``extra`` (JSON fields, e.g. the CLI's run settings). Stored
    in every manifest; a resume whose identity differs is refused, naming the difference."""
    params = jax.eval_shape(trainer.initial_params, jax.random.PRNGKey(0))
    tell = trainer.strategy.tell
    kind = f"{getattr(tell, '__module__', '?')}.{getattr(tell, '__qualname__', type(tell))}"
    out = {
        "task": getattr(trainer.task, "name", type(trainer.task).__name__),
        "strategy": kind.removesuffix(".<locals>.tell"),
        "pop_size": int(trainer.strategy.pop_size),
        "params": [f"{jax.tree_util.keystr(p)}: {np.dtype(x.dtype)}{list(x.shape)}"
                   for p, x in jax.tree_util.tree_flatten_with_path(params)[0]],
        **(extra or {}),
    }
    return json.loads(json.dumps(out))  # as a manifest holds it (lists, not tuples)


def _check_identity(path: Path, stored: dict | None, current: dict | None) -> None:
    if stored is None or current is None:
        return  # a checkpoint of 0.1 or a caller that does not say
    first = ("task", "strategy", "pop_size")  # the most telling difference is named
    names = sorted(set(stored) | set(current), key=lambda n: (n not in first, first.index(n)
                                                                if n in first else 0, n))
    for name in names:
        old, new = stored.get(name), current.get(name)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            pairs = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
            old, new = pairs[0] if pairs else (f"{len(old)} entries", f"{len(new)} entries")
        raise CheckpointError(f"{path} belongs to a run with {name} {old!r}, this run has "
                              f"{new!r}: resume with the run's own settings, or start afresh")


# -- save and restore ---------------------------------------------------------------------------
def save_step(folder, generation: int, carry, *, key, total: int, metrics: dict | None,
              first: int, metadata: dict | None = None, keep: int = 1,
              run: dict | None = None) -> Path:
    """Commit the step ``generation`` of the run in ``folder`` (module docstring).

    Args:
        folder: the run folder (the steps go to ``folder/checkpoints``).
        generation: the generation ``carry`` is at.
        carry: the pytree to store (sharded or multi-process arrays: each process writes its
            own shards).
        key: the run's key (its fingerprint is checked on restore).
        total: the run's generations (stored for ``info``).
        metrics: host metrics of generations ``[first, generation)`` (arrays with a leading
            generation axis), or ``None`` when ``first == generation``.
        first: the generation the previous step is at (0 for the first step).
        metadata: JSON-serializable fields stored in the manifest.
        keep: steps kept after this one is committed (:func:`prune`).
        run: the run's :func:`identity` (checked on restore), or ``None``.

    Returns:
        The step's folder.
    """
    generation, first = int(generation), int(first)
    try:
        json.dumps(metadata or {}, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint metadata must be JSON-serializable: {err}") from None
    rows = {len(v) for v in (metrics or {}).values()}
    if not 0 <= first <= generation or rows != ({generation - first} if generation > first
                                                 else set()):
        raise ValueError(f"save_step at generation {generation} after {first} needs the metrics "
                         f"of those {generation - first} generations; got {sorted(rows)} rows")
    if first and first not in steps(folder):
        raise ValueError(f"save_step after generation {first}: {root(folder)} has no step there "
                         "(its metrics segments would leave a gap)")
    base, step = root(folder), step_dir(folder, generation)
    paths, leaves, treedef = ckpt._leaf_paths(carry)
    stored = [_stored(x) for x in leaves]
    segments = list(manifest(folder, first)["metrics"]) if first else []
    if generation > first:
        name = f"metrics/{first:08d}-{generation:08d}.ckpt"
        ckpt.save(base / name, metrics, metadata={"first": first, "end": generation})
        segments.append({"file": name, "first": first, "end": generation})
    if jax.process_index() == 0 and step.exists():
        shutil.rmtree(step)  # an interrupted save of this generation
    _barrier(f"evojax_lab.save.{generation}.clean")
    tree, layout = _split(stored)
    _checkpointer().save(step / "state", tree)
    part = step / f"shards.{jax.process_index()}.json"
    files.atomic_write(part, [json.dumps({"shards": _shard_digests(stored),
                                          "files": _file_digests(step / "state")}).encode()])
    _barrier(f"evojax_lab.save.{generation}.shards")
    if jax.process_index() == 0:
        parts = [json.loads((step / f"shards.{p}.json").read_text())
                 for p in range(jax.process_count())]
        record = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
            "generation": generation, "generations": int(total),
            "key": ckpt._key_fingerprint(key), "treedef": str(treedef),
            "leaves": [{"path": p, **_describe(x), **place} for p, x, place
                       in zip(paths, leaves, layout, strict=True)],
            "files": [f for part in parts for f in part["files"]],
            "shards": [e for part in parts for e in part["shards"]],
            "metrics": segments, "metadata": metadata or {}, "run": run,
        }
        text = json.dumps(record, allow_nan=False, separators=(",", ":"))
        files.atomic_write(step / MANIFEST, [text.encode()])
        for p in range(jax.process_count()):
            with contextlib.suppress(OSError):
                (step / f"shards.{p}.json").unlink()
    _barrier(f"evojax_lab.save.{generation}.commit")
    prune(folder, keep)
    return step


def _check_tree(path: Path, record: dict, paths, leaves, treedef) -> None:
    stored = record["leaves"]
    ckpt.check_tree(path, record["treedef"], stored, paths, treedef)
    for p, x, r in zip(paths, leaves, stored, strict=True):
        want = _describe(x)
        if (r["shape"], r["dtype"]) != (want["shape"], want["dtype"]):
            raise CheckpointError(
                f"{path}: leaf {p} is {r['dtype']}{r['shape']} in the file but "
                f"{want['dtype']}{want['shape']} is expected (another population size, network "
                "or capacity?)")
        if r["key_impl"] != want["key_impl"]:
            def kind(impl):
                return f"a typed {impl} key" if impl else "a plain array"

            raise CheckpointError(f"{path}: leaf {p} is {kind(r['key_impl'])} in the file, "
                                  f"{kind(want['key_impl'])} expected")


def _read_metrics(folder, path: Path, record: dict) -> list[dict]:
    blocks, end = [], 0
    for s in record["metrics"]:
        if s["first"] != end:
            raise CheckpointError(f"{path}: its metrics segments leave a gap at generation "
                                  f"{end}")
        file = root(folder) / s["file"]
        header = ckpt.info(file)
        meta = header.get("metadata", {})
        if (meta.get("first"), meta.get("end")) != (s["first"], s["end"]):
            raise CheckpointError(f"{file} holds generations [{meta.get('first')}, "
                                  f"{meta.get('end')}), [{s['first']}, {s['end']}) expected")
        template = {}
        for r in header["leaves"]:
            name = re.fullmatch(r"\['([^']+)'\]", r["path"])
            if name is None:
                raise CheckpointError(f"{file} is not a metrics segment")
            template[name.group(1)] = np.zeros(r["shape"], ckpt._dtype(r["dtype"]))
        blocks.append(ckpt.restore(file, template))
        end = s["end"]
    if end != record["generation"]:
        raise CheckpointError(f"{path}: its metrics segments end at generation {end}, the step "
                              f"is at {record['generation']}")
    return blocks


def restore(folder, like, key, total: int, run: dict | None = None):
    """``(carry, metrics_blocks, generation)`` from the newest step of the run folder, or
    ``None`` when it holds no checkpoint. ``like`` is the template carry (``trainer.init(key)``:
    each restored leaf takes its sharding), ``key`` the run's key, ``total`` the trainer's
    generations, ``run`` the run's :func:`identity` (``None``: not checked). Raises
    :class:`CheckpointError` (module docstring)."""
    folder = Path(folder)
    if not steps(folder):
        legacy = folder / LEGACY_NAME
        if legacy.is_file():
            return ckpt.resume_point(legacy, like, key, total)
        return None
    record = manifest(folder)
    generation = record["generation"]
    step = step_dir(folder, generation)
    path = step / MANIFEST
    if record.get("key") != ckpt._key_fingerprint(key):
        raise CheckpointError(f"{path} was written by a run with another key (seed); pass "
                              "resume=False to start afresh")
    _check_identity(path, record.get("run"), run)
    if generation > total:
        raise CheckpointError(f"{path} is at generation {generation}, beyond this trainer's "
                              f"{total} generations")
    paths, leaves, treedef = ckpt._leaf_paths(like)
    _check_tree(path, record, paths, leaves, treedef)
    _verify_files(step / "state", record["files"])
    stored = [_stored(x) if isinstance(x, jax.Array) else x for x in leaves]
    places = record["leaves"]
    target = {r["array"]: _abstract(x) for r, x in zip(places, leaves, strict=True)
              if "array" in r}
    size = sum(r["packed"][1] for r in places if "packed" in r)
    if size:
        target["packed"] = np.zeros(size, np.uint8)
    try:
        restored = _checkpointer().restore(step / "state", target)
    except Exception as err:  # noqa: BLE001 (orbax/tensorstore raise many kinds)
        message = str(err).strip().splitlines()
        raise CheckpointError(f"{step / 'state'} cannot be read: {type(err).__name__}: "
                              f"{message[0] if message else ''}") from None
    arrays = [restored[r["array"]] if "array" in r else
              _unpack(path, restored.get("packed", np.zeros(0, np.uint8)), r["packed"], x)
              for r, x in zip(places, stored, strict=True)]
    _verify(step / "state", arrays, paths, record["shards"])
    carry = jax.tree.unflatten(treedef, [_placed(a, x) for a, x in
                                         zip(arrays, leaves, strict=True)])
    return carry, _read_metrics(folder, path, record), generation


# -- resumable runs -----------------------------------------------------------------------------
class Checkpointing:
    """A :func:`~evojax_lab.driver.run_in_blocks` callback that commits a step of the run in
    ``folder`` (:func:`save_step`) after every block that ends on a multiple of ``every`` and
    after the last generation.

    Args:
        folder: the run folder (steps in ``folder/checkpoints``).
        every: the checkpoint interval in generations.
        key: the run's key.
        start: the generation the run starts from (that of the step it resumed, or 0).
        pending: host metrics blocks of generations before ``start`` not yet in a segment (a
            run resumed from a 0.1 checkpoint file), else empty.
        metadata: JSON-serializable fields stored in each manifest.
        keep: committed steps kept in all (the newest ``keep``).
        run: the run's :func:`identity`, stored in each manifest.
    """

    def __init__(self, folder, every: int, key, *, start: int = 0, pending=(),
                 metadata: dict | None = None, keep: int = 1, run: dict | None = None):
        self.folder, self.every, self.key, self.keep = Path(folder), int(every), key, int(keep)
        self.run = run
        if self.keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.pending, self.metadata = list(pending), dict(metadata or {})
        self.first = 0 if self.pending else int(start)  # generation of the last step written
        self.current = int(start) if int(start) in steps(self.folder) else None

    def save(self, carry, generation: int, total: int) -> None:
        metrics = _concat(self.pending) if self.pending else None
        save_step(self.folder, generation, carry, key=self.key, total=total, metrics=metrics,
                  first=self.first, metadata=self.metadata, keep=self.keep, run=self.run)
        self.pending, self.first, self.current = [], int(generation), int(generation)

    def block(self, block) -> None:
        self.pending.append(block.metrics)
        if block.end % self.every == 0 or block.end == block.total:
            self.save(block.carry, block.end, block.total)


def _concat(blocks: list[dict]) -> dict:
    return {k: np.concatenate([np.asarray(b[k]) for b in blocks]) for k in blocks[0]}


def run_with_checkpoints(trainer, key, directory, *, every: int = 50, block: int | None = None,
                         resume: bool = True, hparams: dict | None = None,
                         loggers=(), progress: bool | str = False,
                         metadata: dict | None = None, keep: int = 1, callbacks=(),
                         settings: dict | None = None):
    """Run ``trainer`` to its ``generations`` in jitted blocks, checkpointing and logging.

    Args:
        trainer: a :class:`~evojax_lab.Trainer` (from :func:`~evojax_lab.make_train`).
        key: the run's key (as for ``trainer(key)``).
        directory: the run folder; its checkpoints go to ``directory/checkpoints`` (module
            docstring). ``None``: no checkpoints.
        every: commit a step every ``every`` generations (block boundaries are aligned to
            multiples of it) and after the last generation.
        block: generations per jitted call between host updates (progress, loggers); default
            ``min(every, 10)``. Each distinct block length compiles once.
        resume: continue from the folder's newest step if there is one (it must come from the
            same key and a trainer with the same state structure, else
            :class:`~evojax_lab.checkpoint.CheckpointError`); ``False`` starts afresh, moving
            the folder's ``checkpoints/`` aside first (:func:`set_aside`).
        hparams: numeric overrides for ``strategy.init`` (as for ``trainer(key, hparams)``).
        loggers: callables ``logger(generation, metrics)`` (see :mod:`evojax_lab.loggers`).
        progress: show a tqdm progress bar (``tqdm.auto``: a widget in notebooks) with the
            current score; a string is used as its description.
        metadata: extra JSON-serializable fields stored in each manifest.
        keep: committed steps kept in all (the newest ``keep``).
        callbacks: more :func:`~evojax_lab.driver.run_in_blocks` callbacks, run before the
            others (e.g. :class:`~evojax_lab.driver.on_start`: files written only once a
            resume has succeeded).
        settings: JSON fields that also identify the run (e.g. the CLI's run settings): with
            the task, strategy kind, population size and parameter tree (:func:`identity`)
            they are stored in each manifest, and a resume that differs in any is refused.

    Returns:
        The :class:`~evojax_lab.TrainResult` of the whole run (metrics of all generations,
        including those before a resume); bit for bit what ``trainer(key, hparams)`` returns.

    This is :func:`~evojax_lab.driver.run_in_blocks` with these callbacks, in this order:
    ``callbacks``, the loggers, :class:`Checkpointing`, the progress bar. Loggers run before
    the step of the same block is committed, so after a crash the files never miss a
    generation the checkpoint holds (rows beyond it are dropped on resume). Multi-process runs:
    every process calls this with the same arguments (the folder on a file system all of them
    see); each writes the shards of the arrays it holds; process 0 writes the manifest and the
    metrics segments (give loggers to process 0 only).
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
    if directory is not None and jax.process_index() == 0:
        check_writable(directory)
    carry = trainer.init(key, hparams)
    past, start, run = [], 0, None
    if directory is not None:
        run = identity(trainer, settings)
        found = restore(directory, carry, key, total, run) if resume else None
        if found is not None:
            carry, past, start = found
        elif not resume:
            set_aside(directory)
    callbacks = [*callbacks, *(logging(logger) for logger in loggers)]
    saver = None
    if directory is not None:
        legacy = bool(past) and not steps(directory)
        saver = Checkpointing(directory, every, key, start=start,
                              pending=past if legacy else (), metadata=metadata, keep=keep,
                              run=run)
        callbacks.append(saver)
    if progress:
        callbacks.append(ProgressBar(total, progress if isinstance(progress, str) else None))
    carry, blocks = run_in_blocks(trainer, carry, start=start, block=block, align=every,
                                  callbacks=callbacks)
    if saver is not None and saver.current != total:
        saver.save(carry, start, total)  # nothing ran: a finished run (or a 0.1 file) resumed
    history = past + blocks
    if not history:
        raise ValueError("the run has no generations")
    return trainer.result(carry, history)


def run_with_progress(trainer, key, *, block: int = 10, hparams: dict | None = None,
                      loggers=(), progress: bool | str = True):
    """Run ``trainer`` in jitted blocks of ``block`` generations with a progress bar showing
    the current score (``tqdm.auto``: also in notebooks) and ``loggers`` called per
    generation; no checkpoints. Returns the same :class:`~evojax_lab.TrainResult` as
    ``trainer(key, hparams)``."""
    return run_with_checkpoints(trainer, key, None, every=max(int(block), 1), block=block,
                                hparams=hparams, loggers=loggers, progress=progress)


__all__ = ["CHECKPOINTS", "Checkpointing", "LEGACY_NAME", "MANIFEST", "MANIFEST_VERSION",
           "check_writable", "has_checkpoint", "identity", "manifest", "prune", "restore", "root",
           "run_with_checkpoints", "run_with_progress", "save_step", "set_aside", "step_dir",
           "steps"]
