"""Fault injection: a checkpointed ``evojax-lab train`` run killed with SIGKILL at three random
moments, and resumed with ``--resume`` after each kill, ends byte-identical to the
uninterrupted run.

A checkpoint is committed after every generation (``--log-every 1 --checkpoint-every 1``), so a
kill lands in any phase of a generation: the jitted block, the metrics rows, the metrics segment,
orbax writing ``state/``, the manifest, pruning. The kill moments come from a
``random.Random(seed)``; the seed is fresh on every run (set ``EVOJAX_LAB_FAULT_SEED`` to repeat
one) and every assertion message names it. Timing still varies from run to run, so a seed
reproduces the kill targets and delays, not the exact byte a kill interrupted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab import storage

GENERATIONS = 60
KILLS = 3
TRAIN = ["train", "--task", "CartPole-v1", "--generations", str(GENERATIONS), "--pop-size", "16",
         "--hidden", "8", "--eval-episodes", "2", "--final-episodes", "10", "--log-every", "1",
         "--checkpoint-every", "1", "--keep", "3", "--no-progress"]
TIMEOUT = 600  # seconds: any one process, or any wait on one
# summary.json fields that are not results: the wall clock, the folder, whether it was resumed
NOT_RESULTS = ("train_seconds", "run_dir", "resumed")


def _env() -> dict:
    """The subprocesses' environment: two CPU host devices (as tests/conftest.py), the
    evojax_lab this test imports (not whichever is installed), the persistent compilation
    cache when one is configured (JAX reads JAX_COMPILATION_CACHE_DIR itself)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "xla_force_host_platform_device_count" not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                            + " --xla_force_host_platform_device_count=2").strip()
    source = str(Path(el.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    if env.get("JAX_COMPILATION_CACHE_DIR"):
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    return env


class _Processes:
    """The CLI processes of the test, each with its output in a log file; ``close`` kills any
    still running."""

    def __init__(self, folder: Path):
        self.folder, self.live, self.count = folder, [], 0

    def start(self, *args) -> tuple[subprocess.Popen, Path]:
        self.count += 1
        log = self.folder / f"process-{self.count}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "evojax_lab.cli", *args], stdout=out,
                                    stderr=subprocess.STDOUT, env=_env(), cwd=self.folder)
        self.live.append(proc)
        return proc, log

    def close(self) -> None:
        for proc in self.live:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)


def _tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _newest(run_dir: Path) -> int:
    done = storage.steps(run_dir)
    return done[-1] if done else 0


def _wait_for_step(proc, log, run_dir: Path, generation: int, why: str) -> float:
    """Poll until the run folder holds a committed step >= ``generation``; its time."""
    deadline = time.monotonic() + TIMEOUT
    while _newest(run_dir) < generation:
        assert proc.poll() is None, (f"{why}: the process ended (exit {proc.returncode}) before "
                                     f"checkpoint {generation}:\n{_tail(log)}")
        assert time.monotonic() < deadline, f"{why}: no checkpoint {generation} in {TIMEOUT} s"
        time.sleep(0.005)
    return time.monotonic()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _folder_state(run_dir: Path) -> str:
    """What a kill left: the newest committed step, the step folders without a manifest (a save
    the kill interrupted, or an old step whose removal by prune it interrupted), the last
    metrics row."""
    base = storage.root(run_dir)
    names = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    committed = storage.steps(run_dir)
    partial = [n for n in names if n.isdigit() and int(n) not in committed]
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    try:
        last = json.loads(rows[-1])["generation"] if rows else None
    except (ValueError, KeyError):
        last = f"(torn line {rows[-1]!r})"
    return (f"newest step {committed[-1] if committed else None}, uncommitted step folders "
            f"{partial}, last metrics.jsonl row: generation {last} of {len(rows)} lines")


def _stored(x) -> np.ndarray:
    """A carry leaf as bits (typed PRNG keys as their key data)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _files(run_dir: Path) -> dict:
    """The run folder's files by relative path, except orbax's ``state/`` folders (their file
    names and metadata differ from save to save: their arrays are compared restored)."""
    return {p.relative_to(run_dir).as_posix(): p for p in sorted(run_dir.rglob("*"))
            if p.is_file() and "state" not in p.relative_to(run_dir).parts}


@pytest.mark.slow
def test_sigkilled_and_resumed_cli_run_ends_identical_to_the_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("EVOJAX_LAB_FAULT_SEED", random.SystemRandom().randrange(2**32)))
    rng = random.Random(seed)
    tag = f"[seed {seed}; repeat with EVOJAX_LAB_FAULT_SEED={seed}]"
    straight, faulted = tmp_path / "straight", tmp_path / "faulted"
    procs = _Processes(tmp_path)
    kills = []
    try:
        # the uninterrupted run; also measures the time per generation (checkpoint included)
        proc, log = procs.start(*TRAIN, "--run-dir", str(straight))
        first = _wait_for_step(proc, log, straight, 1, f"uninterrupted run {tag}")
        last = _wait_for_step(proc, log, straight, GENERATIONS, f"uninterrupted run {tag}")
        assert proc.wait(timeout=TIMEOUT) == 0, f"uninterrupted run {tag}:\n{_tail(log)}"
        pace = max((last - first) / (GENERATIONS - 1), 0.005)
        print(f"{tag} uninterrupted run: {pace * 1e3:.0f} ms per generation")

        # kill i: once the newest committed step reaches target i (at least one beyond the step
        # the process resumed from: the process is training), after a random delay of up to two
        # generations; targets stay 8 generations short of the end, so the process is running
        targets = sorted(rng.sample(range(1, GENERATIONS - 8), KILLS))
        delays = [rng.uniform(0.0, 2 * pace) for _ in range(KILLS)]
        proc, log = procs.start(*TRAIN, "--run-dir", str(faulted))
        for i, (target, delay) in enumerate(zip(targets, delays, strict=True)):
            what = f"kill {i + 1} {tag}"
            target = max(target, _newest(faulted) + 1)
            _wait_for_step(proc, log, faulted, target, what)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=TIMEOUT)
            assert code == -signal.SIGKILL, (f"{what}: the process was not killed while running "
                                             f"(exit {code}):\n{_tail(log)}")
            kills.append(f"kill {i + 1}: step >= {target} + {delay * 1e3:.0f} ms -> "
                         f"{_folder_state(faulted)}")
            print(kills[-1])
            assert storage.has_checkpoint(faulted), f"{what}: no checkpoint left to resume"
            proc, log = procs.start("train", "--resume", str(faulted), "--no-progress")
        code = proc.wait(timeout=TIMEOUT)
        history = "\n".join(kills)
        assert code == 0, f"final resume {tag}:\n{history}\n{_tail(log)}"
        assert "(resumed)" in log.read_text()
    finally:
        procs.close()
    where = f"{tag}\n{history}"

    # every generation's metrics row once (the rows have no wall-clock fields: compared whole),
    # the same solution and final score
    rows = _rows(faulted / "metrics.jsonl")
    assert [r["generation"] for r in rows] == list(range(1, GENERATIONS + 1)), where
    assert rows == _rows(straight / "metrics.jsonl"), where
    params = (faulted / "params.msgpack").read_bytes()
    assert params == (straight / "params.msgpack").read_bytes(), where
    summary = json.loads((faulted / "summary.json").read_text())
    expected = json.loads((straight / "summary.json").read_text())
    assert summary["final_mean_return"] == expected["final_mean_return"], where
    assert summary["resumed"] and not expected["resumed"], where
    for name in NOT_RESULTS:
        del summary[name], expected[name]
    assert summary == expected, where

    # every other file byte for byte (metrics.csv, curve.png, config.json, the checkpoints'
    # metrics segments), and no file more or less (no remains of an interrupted save)
    mine, theirs = _files(faulted), _files(straight)
    assert sorted(mine) == sorted(theirs), where
    for name, path in theirs.items():
        if name == "summary.json" or name.endswith("/manifest.json"):
            continue
        assert mine[name].read_bytes() == path.read_bytes(), f"{name} differs {where}"

    # the kept checkpoints: the same steps, manifests equal but for orbax's file digests (the
    # shard digests of the arrays are equal); the final state restored, leaf for leaf
    kept = list(range(GENERATIONS - 2, GENERATIONS + 1))  # --keep 3
    assert storage.steps(faulted) == storage.steps(straight) == kept, where
    for g in storage.steps(straight):
        got, want = storage.manifest(faulted, g), storage.manifest(straight, g)
        del got["files"], want["files"]
        assert got == want, f"manifest of step {g} differs {where}"
    run, ref = el.load_run(faulted), el.load_run(straight)
    assert run.generation == ref.generation == GENERATIONS, where
    got, want = jax.tree.flatten(run.carry), jax.tree.flatten(ref.carry)
    assert got[1] == want[1], where
    for a, b in zip(got[0], want[0], strict=True):
        a, b = _stored(a), _stored(b)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    assert sorted(run.metrics) == sorted(ref.metrics), where
    for name in ref.metrics:
        a, b = np.asarray(run.metrics[name]), np.asarray(ref.metrics[name])
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"metric {name} {where}"
