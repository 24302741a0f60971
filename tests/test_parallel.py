"""Sharding over devices and processes: results equal a single device / single process."""

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from tests_shared import small_run

import evojax_lab as el

HERE = Path(__file__).parent


def _flat(tree):
    return np.asarray(ravel_pytree(jax.device_get(tree))[0])


@pytest.fixture(scope="module")
def one_device():
    return small_run(el, mesh=None)


@pytest.fixture(scope="module")
def two_devices():
    assert jax.device_count() >= 2, "conftest exposes 2 host devices"
    return small_run(el, mesh=el.parallel.make_mesh(jax.devices()[:2]))


def test_two_devices_equal_one(one_device, two_devices):
    """Bit for bit: the same key gives the same run on 1 and 2 devices."""
    (r1, e1), (r2, e2) = one_device, two_devices
    np.testing.assert_array_equal(_flat(r2.solution), _flat(r1.solution))
    np.testing.assert_array_equal(np.asarray(e2.fitness), np.asarray(e1.fitness))
    for key in ("mean_fitness", "best_fitness", "steps", "solution_fitness"):
        np.testing.assert_array_equal(np.asarray(r2.metrics[key]), np.asarray(r1.metrics[key]))


def test_population_is_sharded_on_two_devices(two_devices):
    _, evaluation = two_devices
    assert len(evaluation.fitness.sharding.device_set) == 2


def test_bounded_memory_run_equal_on_one_and_two_devices():
    """chunk_size: members built from indices; same result on 1 and 2 devices."""
    task = el.tasks.make("CartPole-v1", max_steps=30)
    policy = el.policies.for_task(task, hidden=(8,))
    out = []
    for mesh in (None, el.parallel.make_mesh(jax.devices()[:2])):
        strategy = el.strategies.openai_es(12, sigma=0.1, chunk_size=2)
        trainer = el.make_train(task, policy, strategy, generations=2, eval_episodes=0,
                                chunk_size=2, mesh=mesh)
        out.append(trainer(jax.random.PRNGKey(3)))
    np.testing.assert_array_equal(_flat(out[1].solution), _flat(out[0].solution))
    np.testing.assert_array_equal(np.asarray(out[1].metrics["mean_fitness"]),
                                  np.asarray(out[0].metrics["mean_fitness"]))


def test_bounded_memory_equals_materialized_population():
    """Evaluating members built one by one from their indices equals evaluating ask()."""
    task = el.tasks.make("CartPole-v1", max_steps=30)
    policy = el.policies.for_task(task, hidden=(8,))
    strategy = el.strategies.openai_es(6, sigma=0.1)
    params = policy.init(jax.random.PRNGKey(0), np.zeros(4, np.float32))
    state = strategy.init(jax.random.PRNGKey(1), params)
    key = jax.random.PRNGKey(2)
    population, asked = strategy.ask(key, state)
    full = el.evaluate(key, task, policy, population)
    lazy = el.evaluate_members(key, task, policy, strategy.member, asked, 6, chunk_size=4)
    np.testing.assert_array_equal(np.asarray(lazy.fitness), np.asarray(full.fitness))
    np.testing.assert_array_equal(np.asarray(lazy.steps), np.asarray(full.steps))


def test_population_not_divisible_by_devices_is_a_clear_error():
    task = el.tasks.make("CartPole-v1", max_steps=5)
    policy = el.policies.for_task(task, hidden=(4,))
    population = jax.vmap(lambda k: policy.init(k, np.zeros(4, np.float32)))(
        jax.random.split(jax.random.PRNGKey(0), 3))
    with jax.set_mesh(el.parallel.make_mesh(jax.devices()[:2])):
        with pytest.raises(ValueError, match="population size 3 is not divisible by the 2"):
            jax.jit(lambda k, p: el.evaluate(k, task, policy, p))(jax.random.PRNGKey(0),
                                                                  population)


def test_make_mesh_falls_back_to_a_divisor():
    with pytest.warns(UserWarning, match="not divisible"):
        assert el.parallel.make_mesh(jax.devices()[:2], pop_size=3) is None
    assert el.parallel.make_mesh(jax.devices()[:2], pop_size=4).size == 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(worker: str, *args: str) -> None:
    """``worker COORDINATOR PROCESS_ID *args`` in 2 processes of 1 CPU device each (gloo
    collectives on 127.0.0.1); fails the test with their output if either fails."""
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ)
    env["XLA_FLAGS"] = ""  # the worker asks for 1 local device itself
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen([sys.executable, str(HERE / worker), coordinator, str(i), *args],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=420)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multi-process run timed out")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-4000:]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_two_devices(two_devices, tmp_path):
    """2 processes x 1 CPU device (gloo collectives on 127.0.0.1) = 1 process x 2 devices."""
    out = tmp_path / "result.npz"
    run_two_processes("multihost_worker.py", str(out))
    got = np.load(out)
    result, evaluation = two_devices
    np.testing.assert_array_equal(got["solution"], _flat(result.solution))
    np.testing.assert_array_equal(got["fitness"], np.asarray(evaluation.fitness))
    np.testing.assert_array_equal(got["mean_fitness"], np.asarray(result.metrics["mean_fitness"]))


@pytest.mark.slow
def test_two_processes_save_and_resume_bit_for_bit(tmp_path):
    """2 processes x 1 CPU device: a run saved at generation 2 and resumed to 4 (both processes
    restoring the file process 0 wrote) equals the 4 generations in one call."""
    out = tmp_path / "result.npz"
    run_two_processes("multihost_checkpoint_worker.py", str(tmp_path / "run"), str(out))
    got = np.load(out)
    np.testing.assert_array_equal(got["resumed"], got["straight"])
    np.testing.assert_array_equal(got["resumed_mean"], got["straight_mean"])
    assert got["resumed_mean"].shape == (4,)
    record = el.storage.manifest(tmp_path / "run")
    assert record["generation"] == 4 and el.storage.steps(tmp_path / "run") == [4]
    # the sharded tree saved and restored directly: each process wrote the shard it holds
    assert got["sharded_equal"] and sorted(got["sharded_writers"]) == [0, 1]


def test_importing_the_library_does_not_start_jax():
    """A jax array built at import time starts the XLA backend, after which
    jax.distributed.initialize (multi-host) and host-device flags no longer work."""
    code = ("import jax._src.xla_bridge as xb\nimport evojax_lab  # noqa: F401\n"
            "assert not xb._backends, 'importing evojax_lab started the XLA backend'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- mirrored pairs: each perturbation read once for both of its members ----------------------
def _pair_setup(pop_size=8):
    """A table noise source: pair's members equal member's bit for bit (see Strategy.pair)."""
    task = el.tasks.make("CartPole-v1", max_steps=20)
    policy = el.policies.for_task(task, hidden=(4,))
    strategy = el.strategies.openai_es(pop_size, sigma=0.1, noise=el.noise.table(size=1000))
    params = policy.init(jax.random.PRNGKey(0), np.zeros(4, np.float32))
    _, asked = strategy.ask(jax.random.PRNGKey(2), strategy.init(jax.random.PRNGKey(1), params))
    return task, policy, strategy, asked


@pytest.mark.parametrize("chunk_size,crn,devices", [
    (1, True, 1), (3, True, 1), (None, True, 1), (1, False, 1), (None, False, 1),
    (2, False, 2), (None, True, 2),
])
def test_pairs_evaluate_exactly_like_members(chunk_size, crn, devices):
    """group=2 with strategy.pair: every field of every member equal, in population order,
    to member-by-member evaluation (own episode keys per member without common random
    numbers; a chunk of 3 members holds one pair)."""
    task, policy, strategy, asked = _pair_setup()
    options = dict(chunk_size=chunk_size, common_random_numbers=crn, experiences=3,
                   episodes=2)

    def both(key, asked, stats):
        members = el.evaluate_members(key, task, policy, strategy.member, asked, 8,
                                      obs_norm=stats, **options)
        pairs = el.evaluate_members(key, task, policy, strategy.pair, asked, 8, group=2,
                                    obs_norm=stats, **options)
        return members, pairs

    mesh = el.parallel.make_mesh(jax.devices()[:2]) if devices == 2 else None
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        members, pairs = jax.jit(both)(jax.random.PRNGKey(5), asked,
                                       el.policies.obs_stats_init(task.observation_shape))
    assert len(set(np.asarray(members.fitness).tolist())) > 1  # the members differ
    for a, b in zip(jax.tree.leaves(members), jax.tree.leaves(pairs), strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


def test_odd_number_of_pairs_is_the_same_on_one_and_two_devices():
    """P = 6: 3 pairs over 2 devices are padded with a copy of the last pair (dropped), so the
    bounded layout, which always evaluates pair by pair, gives one device's numbers."""
    task, policy, strategy, asked = _pair_setup(pop_size=6)
    assert el.train.bounded_members(strategy) == (strategy.pair, 2)
    run = jax.jit(lambda k, s: el.evaluate_members(k, task, policy, strategy.pair, s, 6,
                                                   group=2, common_random_numbers=False))
    one = run(jax.random.PRNGKey(0), asked)
    with jax.set_mesh(el.parallel.make_mesh(jax.devices()[:2])):
        two = run(jax.random.PRNGKey(0), asked)
    assert np.asarray(two.fitness).shape == (6,)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    plain = el.strategies.openai_es(7, sigma=0.1, mirrored=False)
    assert plain.pair is None and el.train.bounded_members(plain) == (plain.member, 1)


def test_group_must_divide_the_population():
    task, policy, strategy, asked = _pair_setup(pop_size=6)
    with pytest.raises(ValueError, match="group must be a positive divisor of pop_size 6"):
        el.evaluate_members(jax.random.PRNGKey(0), task, policy, strategy.pair, asked, 6,
                            group=4)
