"""One process of the 2-process checkpoint test (tests/test_parallel.py); not collected.

Saves a 2-generation run with checkpoints to DIR, resumes it from DIR to 4 generations, and runs
the same 4 generations in one call; process 0 writes both final solutions to OUT.npz.

usage: python multihost_checkpoint_worker.py COORDINATOR PROCESS_ID DIR OUT.npz
"""

import sys

from evojax_lab import parallel

coordinator, process_id, folder, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
parallel.initialize(coordinator, num_processes=2, process_id=process_id, local_device_count=1)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

import evojax_lab as el  # noqa: E402


def trainer(generations):
    task = el.tasks.make("CartPole-v1", max_steps=40)
    policy = el.policies.for_task(task, hidden=(8,))
    strategy = el.strategies.openai_es(8, sigma=0.1, learning_rate=0.05)
    return el.make_train(task, policy, strategy, generations=generations, eval_episodes=2)


key = jax.random.PRNGKey(5)
el.checkpoint.run_with_checkpoints(trainer(2), key, folder, every=1, block=1)
# A resume is a new invocation; here both processes wait until process 0 has written.
multihost_utils.sync_global_devices("checkpoint written")
resumed = el.checkpoint.run_with_checkpoints(trainer(4), key, folder, every=2, block=1)
straight = trainer(4)(key)
# to_host gathers what spans the processes and copies what is already local (the resumed
# run's metrics history is assembled on the host of each process)
gathered = [el.parallel.to_host(r.solution) for r in (resumed, straight)]
means = [el.parallel.to_host(r.metrics["mean_fitness"]) for r in (resumed, straight)]

# A tree sharded over the two processes' devices, saved and restored directly: each process
# writes (and checks) the shard it holds.
mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("pop",))
values = np.arange(12, dtype=np.float32).reshape(4, 3)
tree = {"x": jax.make_array_from_callback(
            values.shape, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pop")),
            lambda index: values[index]),
        "y": jax.make_array_from_callback(
            (2,), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
            lambda index: np.array([7, 8], np.int32)[index])}
el.storage.save_step(folder + "-sharded", 1, tree, key=key, total=1, first=0,
                     metrics={"m": np.zeros(1)})
back, _, _ = el.storage.restore(folder + "-sharded", tree, key, 1)
same = all(np.array_equal(a, b) for a, b in
           zip(el.parallel.to_host(jax.tree.leaves(back)),
               el.parallel.to_host(jax.tree.leaves(tree)), strict=True))
writers = [s["process"] for s in el.storage.manifest(folder + "-sharded")["shards"]
           if s["leaf"] == 0]
if process_id == 0:
    flat = [np.asarray(jax.flatten_util.ravel_pytree(g)[0]) for g in gathered]
    np.savez(out, resumed=flat[0], straight=flat[1], resumed_mean=np.asarray(means[0]),
             straight_mean=np.asarray(means[1]), sharded_equal=same,
             sharded_writers=np.asarray(writers))
jax.distributed.shutdown()
