"""One process of the 2-process test (tests/test_parallel.py); not collected by pytest.

usage: python multihost_worker.py COORDINATOR PROCESS_ID OUT.npz
"""

import sys

from evojax_lab import parallel

coordinator, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
parallel.initialize(coordinator, num_processes=2, process_id=process_id, local_device_count=1)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from tests_shared import small_run  # noqa: E402

import evojax_lab as el  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 2, (jax.process_count(), jax.devices())
result, evaluation = small_run(el, mesh="auto")
fitness = multihost_utils.process_allgather(evaluation.fitness, tiled=True)
solution = multihost_utils.process_allgather(result.solution, tiled=True)
mean_fitness = multihost_utils.process_allgather(result.metrics["mean_fitness"], tiled=True)
if process_id == 0:
    flat, _ = jax.flatten_util.ravel_pytree(solution)
    np.savez(out, solution=np.asarray(flat), mean_fitness=np.asarray(mean_fitness),
             fitness=np.asarray(fitness))
jax.distributed.shutdown()
