"""Checkpoints: interrupt-and-resume equals the uninterrupted run bit for bit (OpenAI-ES, Deep
GA, NSRA-ES); truncated, foreign, corrupted and mismatched files raise CheckpointError and never
damage the previous checkpoint; typed keys and dtypes round-trip; loggers."""

import csv
import inspect
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab import checkpoint as ckpt
from evojax_lab import storage
from evojax_lab.core import files
from evojax_lab.core.compiles import count_compilations

GENS = 4
POP = 8
HIDDEN = (4,)
# The ES run also carries observation statistics (normalized observations) where make_train
# offers them, so the checkpoint must restore them too (they change every evaluation).
OBS_NORM = "obs_norm" in inspect.signature(el.make_train).parameters


def make_trainer(name):
    task = el.tasks.make("CartPole-v1", max_steps=20)
    policy = el.policies.for_task(task, hidden=HIDDEN)
    if name == "openai_es":
        strategy = el.strategies.openai_es(POP, 0.1, learning_rate=0.05)
    elif name == "deep_ga":
        strategy = el.strategies.deep_ga(POP, 0.1, 2, validation_episodes=1,
                                         validation_candidates=2, genome_capacity=GENS + 1)
    else:  # NSRA-ES on CartPole's observation behavior (B = 4), patience 1 so w moves
        strategy = el.strategies.nsra_es(POP, 0.1, behavior_size=4, num_agents=2, k=2,
                                         archive_capacity=GENS + 2, validation_episodes=1,
                                         patience=1)
    # (Solution scoring only for the ES: every extra rollout adds compile time.)
    extra = {"obs_norm": True} if OBS_NORM and name == "openai_es" else {}
    return el.make_train(task, policy, strategy, generations=GENS,
                         eval_episodes=1 if name == "openai_es" else 0, **extra)


# A raw uint32 key for two strategies and a typed key (jax.random.key) for NSRA-ES.
KEYS = {"openai_es": lambda: jax.random.PRNGKey(3), "deep_ga": lambda: jax.random.PRNGKey(5),
        "nsra_es": lambda: jax.random.key(7)}
STRATEGIES = list(KEYS)


@pytest.fixture(scope="module")
def runs():
    """Per strategy: its trainer and the uninterrupted result: for the ES the one-call
    ``trainer(key)``; for the others (to save compile time) the same driver as the resumed run,
    uninterrupted (blocks equal one call: tests/test_train.py)."""
    out = {}
    for name in STRATEGIES:
        trainer = make_trainer(name)
        if name == "openai_es":
            reference = trainer(KEYS[name]())
        else:
            reference = ckpt.run_with_checkpoints(trainer, KEYS[name](), None, every=2, block=1)
        out[name] = (trainer, jax.block_until_ready(reference))
    return out


def leaves_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


class Killed(Exception):
    pass


def killer(at):
    def logger(generation, metrics):
        if generation == at:
            raise Killed(f"killed at generation {generation}")

    return logger


@pytest.mark.parametrize("name", STRATEGIES)
def test_interrupt_and_resume_equals_the_uninterrupted_run(runs, name, tmp_path):
    trainer, reference = runs[name]
    key = KEYS[name]()
    log = tmp_path / "metrics.jsonl"
    # Checkpoints every 2 generations; the run dies while logging generation 3, after the
    # generation-2 checkpoint and with generation 3's row already written.
    with pytest.raises(Killed):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1,
                                  loggers=[ckpt.JsonlLogger(log), killer(3)])
    record = storage.manifest(tmp_path)
    assert record["generation"] == 2 and storage.steps(tmp_path) == [2]
    if OBS_NORM and name == "openai_es":
        assert any(".obs_stats" in leaf["path"] for leaf in record["leaves"])
    with count_compilations() as seen:
        result = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1,
                                           loggers=[ckpt.JsonlLogger(log)])
        jax.block_until_ready(result)
    assert seen.traced("run_generations") == 0  # the restored carry reuses the compiled block
    # All strategy-state leaves (ES mean + Adam, GA parents/elites/genomes, NSRA agents,
    # archive, weight), the metrics of all 4 generations and the solution: bit for bit.
    leaves_equal(result.state, reference.state)
    leaves_equal(result.metrics, reference.metrics)
    leaves_equal(result.solution, reference.solution)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4]  # generation 3 not duplicated
    for i, row in enumerate(rows):
        for k in ("best_fitness", "mean_fitness", "steps"):
            assert row[k] == float(np.asarray(reference.metrics[k])[i])
    # The final checkpoint holds generation 4; resuming it again runs nothing new.
    again = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1)
    leaves_equal(again.state, reference.state)
    leaves_equal(again.metrics, reference.metrics)


def test_restored_carry_keeps_dtypes_and_shardings(runs, tmp_path):
    trainer, _ = runs["nsra_es"]
    carry = trainer.init(KEYS["nsra_es"]())
    path = ckpt.save(tmp_path / "c.ckpt", carry, metadata={"note": "x"})
    restored = ckpt.restore(path, like=carry)
    leaves_equal(restored, carry)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(carry), strict=True):
        assert a.dtype == b.dtype and a.sharding == b.sharding
    assert ckpt.info(path)["metadata"] == {"note": "x"}


def test_typed_keys_and_exotic_dtypes_round_trip(tmp_path):
    tree = {
        "key": jax.random.key(3),
        "keys": jax.random.split(jax.random.key(4), 3),
        "raw": jax.random.PRNGKey(5),
        "bf16": jnp.arange(5, dtype=jnp.bfloat16) / 3,
        "i8": np.array([-128, 0, 127], np.int8),
        "u64": np.array([2**63 + 1], np.uint64),
        "flag": np.array([True, False]),
        "nan": np.array([np.nan, -np.inf, -0.0], np.float32),
        "empty": np.zeros((0, 3), np.float32),
    }
    path = ckpt.save(tmp_path / "t.ckpt", tree)
    out = ckpt.restore(path, like=tree)
    for k in tree:
        a, b = out[k], tree[k]
        assert a.dtype == b.dtype, k
        if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), k  # -0.0, NaN bits
    assert isinstance(out["i8"], np.ndarray)  # NumPy template leaves stay NumPy
    # The bytes on disk are the raw little-endian leaves, after the header.
    data = path.read_bytes()
    assert data.startswith(ckpt.MAGIC)
    assert np.array([-128, 0, 127], np.int8).tobytes() in data
    # A typed key where the file has raw data (and vice versa) is refused.
    swapped = dict(tree, raw=jax.random.key(5))
    with pytest.raises(ckpt.CheckpointError, match="raw data in the file"):
        ckpt.restore(path, like=swapped)


@pytest.fixture()
def good(runs, tmp_path):
    """A good checkpoint of the OpenAI-ES carry after 1 generation, and its carry."""
    trainer, _ = runs["openai_es"]
    carry, _ = trainer.run(trainer.init(KEYS["openai_es"]()), 1)
    path = ckpt.save(tmp_path / "run.ckpt", carry)
    return path, carry


@pytest.mark.parametrize("cut", ["prefix", "header", "payload", "last_byte"])
def test_truncated_file_is_a_clear_error(good, cut):
    path, carry = good
    data = path.read_bytes()
    header_end = data.index(b"}", 70)  # inside the JSON header
    keep = {"prefix": 20, "header": header_end - 5, "payload": len(data) - 40,
            "last_byte": len(data) - 1}[cut]
    bad = path.with_name("truncated.ckpt")
    bad.write_bytes(data[:keep])
    with pytest.raises(ckpt.CheckpointError, match="truncated") as err:
        ckpt.restore(bad, like=carry)
    assert "truncated.ckpt" in str(err.value)
    leaves_equal(ckpt.restore(path, like=carry), carry)  # the good one is untouched


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
         "not an evojax_lab checkpoint"),
        (b'{"params": [1, 2, 3]}', "not an evojax_lab checkpoint"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an evojax_lab checkpoint"),
    ],
)
def test_foreign_file_is_a_clear_error(good, content, match):
    path, carry = good
    bad = path.with_name("foreign.bin")
    bad.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match=match):
        ckpt.restore(bad, like=carry)


def test_corrupted_byte_and_future_version_are_clear_errors(good):
    path, carry = good
    data = bytearray(path.read_bytes())
    payload = bytearray(data)
    payload[-3] ^= 0x01  # one bit of the last leaf
    bad = path.with_name("flipped.ckpt")
    bad.write_bytes(bytes(payload))
    with pytest.raises(ckpt.CheckpointError, match="payload checksum"):
        ckpt.restore(bad, like=carry)
    header = bytearray(data)
    header[80] ^= 0x20  # a character of the JSON header
    bad.write_bytes(bytes(header))
    with pytest.raises(ckpt.CheckpointError, match="header checksum"):
        ckpt.restore(bad, like=carry)
    future = bytearray(data)
    future[16:20] = (99).to_bytes(4, "little")
    bad.write_bytes(bytes(future))
    with pytest.raises(ckpt.CheckpointError, match="format version 99"):
        ckpt.restore(bad, like=carry)
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.restore(path.with_name("missing.ckpt"), like=carry)


def test_checkpoint_of_another_strategy_or_size_is_refused(runs, good):
    path, carry = good
    ga_trainer, _ = runs["deep_ga"]
    ga_carry = ga_trainer.init(KEYS["deep_ga"]())
    with pytest.raises(ckpt.CheckpointError, match="DeepGAState") as err:
        ckpt.restore(path, like=ga_carry)  # an ES checkpoint read as a GA run
    assert "OpenAIESState" in str(err.value)
    # Same strategy, wider network: the mean's shapes differ.
    task = el.tasks.make("CartPole-v1", max_steps=20)
    wide = el.policies.for_task(task, hidden=(6,)).init(jax.random.PRNGKey(0),
                                                        jnp.zeros((4,)))
    state = el.strategies.openai_es(POP, 0.1, learning_rate=0.05).init(jax.random.PRNGKey(0),
                                                                      wide)
    like = carry._replace(state=state)
    with pytest.raises(ckpt.CheckpointError, match=r"Dense_0'\]\['bias'\] is float32\[4\] in "
                                                   r"the file but float32\[6\]"):
        ckpt.restore(path, like=like)
    # Another dtype (float32 where int32 was stored): refused, not reinterpreted.
    like = carry._replace(generation=carry.generation.astype(jnp.float32))
    with pytest.raises(ckpt.CheckpointError, match="int32"):
        ckpt.restore(path, like=like)
    leaves_equal(ckpt.restore(path, like=carry), carry)


def test_crash_during_write_keeps_the_previous_checkpoint(good, monkeypatch):
    path, carry = good
    before = path.read_bytes()

    def half_then_crash(f, chunks):
        chunks = list(chunks)
        for chunk in chunks[: len(chunks) // 2]:
            f.write(chunk)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(files, "write_chunks", half_then_crash)
    newer = carry._replace(steps=carry.steps + 1)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save(path, newer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.ckpt"]  # no temp file left
    leaves_equal(ckpt.restore(path, like=carry), carry)
    # A crash after writing but before the rename (fsync fails) changes nothing either.
    monkeypatch.undo()

    def no_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        ckpt.save(path, newer)
    monkeypatch.undo()
    assert path.read_bytes() == before
    # A write that completes replaces it.
    ckpt.save(path, newer)
    leaves_equal(ckpt.restore(path, like=carry), newer)


def test_resume_with_another_key_or_a_plain_checkpoint_is_refused(runs, tmp_path):
    trainer, _ = runs["openai_es"]
    key = KEYS["openai_es"]()
    stale = storage.step_dir(tmp_path, 7) / "state"  # left by a save killed before its manifest
    stale.mkdir(parents=True)
    with pytest.raises(Killed):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=1, block=1,
                                  loggers=[killer(2)])
    assert not stale.parent.exists() and storage.steps(tmp_path) == [1]
    with pytest.raises(ckpt.CheckpointError, match="another key"):
        ckpt.run_with_checkpoints(trainer, jax.random.PRNGKey(99), tmp_path, every=1, block=1)
    plain = tmp_path / "plain"
    ckpt.save(plain / ckpt.CHECKPOINT_NAME, trainer.init(key))
    with pytest.raises(ckpt.CheckpointError, match="not a run checkpoint"):
        ckpt.run_with_checkpoints(trainer, key, plain, every=1, block=1)
    with pytest.raises(ValueError, match="every must be >= 1"):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=0)


def test_csv_logger_and_progress_without_checkpoints(runs, tmp_path, capsys):
    trainer, reference = runs["openai_es"]
    seen = []
    path = tmp_path / "m.csv"
    result = ckpt.run_with_progress(trainer, KEYS["openai_es"](), block=1,
                                    loggers=[ckpt.CsvLogger(path),
                                             lambda g, m: seen.append((g, m))],
                                    progress="test run")
    leaves_equal(result.metrics, reference.metrics)
    assert [g for g, _ in seen] == [1, 2, 3, 4]
    assert isinstance(seen[0][1]["best_fitness"], float)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["generation"]) for r in rows] == [1, 2, 3, 4]
    np.testing.assert_array_equal([float(r["mean_fitness"]) for r in rows],
                                  np.asarray(reference.metrics["mean_fitness"]))
    err = capsys.readouterr().err
    assert "test run" in err and "score=" in err and "4/4" in err
    assert not list(tmp_path.glob("*.ckpt")) and not storage.root(tmp_path).exists()


def test_csv_logger_drops_rows_after_the_checkpoint_on_resume(tmp_path):
    path = tmp_path / "m.csv"
    log = ckpt.CsvLogger(path)
    log.start(0)
    for g in (1, 2, 3):
        log(g, {"generation": g, "best_fitness": g * 1.5, "x": float("nan")})
    log.close()
    log = ckpt.CsvLogger(path)
    log.start(2)
    log(3, {"generation": 3, "best_fitness": 9.0, "x": None})
    log.close()
    assert path.read_text().splitlines() == ["generation,best_fitness,x", "1,1.5,", "2,3.0,",
                                            "3,9.0,"]


def test_a_run_checkpointed_by_evojax_lab_0_1_resumes(runs, tmp_path):
    """The single-file run checkpoint of 0.1 (checkpoint.ckpt: the carry and the metrics so far,
    kind/key/generation in the header) resumes to the uninterrupted run; the steps written after
    it hold the whole metrics history; the old file is left as it was."""
    trainer, reference = runs["openai_es"]
    key = KEYS["openai_es"]()
    carry2, history = trainer.run(trainer.init(key), 2)  # the carry after generation 2
    history = jax.device_get(history)
    legacy = ckpt.save(tmp_path / "checkpoint.ckpt", {"carry": carry2, "metrics": history},
                       metadata={"kind": ckpt.RUN_KIND, "key": ckpt._key_fingerprint(key),
                                 "generation": 2, "generations": GENS})
    before = legacy.read_bytes()
    result = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1)
    leaves_equal(result.state, reference.state)
    leaves_equal(result.metrics, reference.metrics)
    assert storage.steps(tmp_path) == [4] and legacy.read_bytes() == before
    assert [(s["first"], s["end"]) for s in storage.manifest(tmp_path)["metrics"]] == [(0, 4)]
    again = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1)
    leaves_equal(again.metrics, reference.metrics)


def test_a_save_killed_before_its_manifest_leaves_the_previous_step(runs, tmp_path,
                                                                     monkeypatch):
    """The manifest commits a step: a save that dies after orbax wrote the arrays (here while
    hashing them) leaves the previous step the newest; the resumed run ends as the
    uninterrupted one and removes the remains. Metrics segments are appended, never
    rewritten."""
    trainer, reference = runs["openai_es"]
    key = KEYS["openai_es"]()
    real = storage._shard_digests
    calls = []

    def dies_at_the_third(leaves):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("killed (simulated)")
        return real(leaves)

    monkeypatch.setattr(storage, "_shard_digests", dies_at_the_third)
    with pytest.raises(OSError, match="simulated"):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=1, block=1, keep=4)
    monkeypatch.undo()
    assert storage.steps(tmp_path) == [1, 2]
    assert (storage.step_dir(tmp_path, 3) / "state").is_dir()  # written, not committed
    segments = storage.root(tmp_path) / "metrics"
    first = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
             for p in segments.iterdir()}
    assert sorted(first) == ["00000000-00000001.ckpt", "00000001-00000002.ckpt",
                             "00000002-00000003.ckpt"]
    result = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=1, block=1, keep=4)
    leaves_equal(result.state, reference.state)
    leaves_equal(result.metrics, reference.metrics)
    assert storage.steps(tmp_path) == [1, 2, 3, 4]
    for name in ("00000000-00000001.ckpt", "00000001-00000002.ckpt"):  # untouched
        p = segments / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) == first[name]
    assert not list(storage.step_dir(tmp_path, 3).glob("shards.*"))


def test_a_resume_by_another_run_is_refused_naming_the_difference(runs, tmp_path):
    """The manifest records what the run is (task, strategy kind, population size, parameter
    tree, and the caller's settings): another population size with the same state tree (the
    ES state does not depend on it), another task or other settings are refused in one line."""
    trainer, _ = runs["openai_es"]
    key = KEYS["openai_es"]()
    with pytest.raises(Killed):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1,
                                  settings={"sigma": 0.1}, loggers=[killer(3)])
    record = storage.manifest(tmp_path)["run"]
    assert record["task"] == "CartPole-v1" and record["pop_size"] == POP
    assert record["strategy"] == "evojax_lab.strategies.openai_es.openai_es"
    assert record["sigma"] == 0.1 and len(record["params"]) == 4  # 2 Dense: kernel and bias
    bigger = el.make_train(trainer.task, trainer.policy,
                           el.strategies.openai_es(2 * POP, 0.1, learning_rate=0.05),
                           generations=GENS, eval_episodes=1,
                           **({"obs_norm": True} if OBS_NORM else {}))
    assert jax.tree.structure(bigger.init(key)) == jax.tree.structure(trainer.init(key))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ckpt.CheckpointError, match=f"pop_size {POP}, this run has {2 * POP}"):
        ckpt.run_with_checkpoints(bigger, key, tmp_path, every=2, block=1,
                                  settings={"sigma": 0.1})
    with pytest.raises(ckpt.CheckpointError, match="sigma 0.1, this run has 0.2"):
        ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1,
                                  settings={"sigma": 0.2})
    other = {**storage.identity(trainer, {"sigma": 0.1}), "task": "MNISTBandit-bsuite"}
    with pytest.raises(ckpt.CheckpointError, match="task 'CartPole-v1', this run has 'MNIST"):
        storage.restore(tmp_path, trainer.init(key), key, GENS, other)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    result = ckpt.run_with_checkpoints(trainer, key, tmp_path, every=2, block=1,
                                       settings={"sigma": 0.1})
    leaves_equal(result.state, runs["openai_es"][1].state)
