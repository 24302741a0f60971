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
if process_id == 0:
    flat = [np.asarray(jax.flatten_util.ravel_pytree(g)[0]) for g in gathered]
    np.savez(out, resumed=flat[0], straight=flat[1], resumed_mean=np.asarray(means[0]),
             straight_mean=np.asarray(means[1]))
jax.distributed.shutdown()
