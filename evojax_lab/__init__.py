"""evojax_lab: JAX-accelerated, vectorized neuroevolution."""

import evojax_lab.analysis as analysis
from evojax_lab import (
    checkpoint,
    driver,
    genome,
    loggers,
    mutations,
    novelty,
    parallel,
    policies,
    runs,
    storage,
    strategies,
    tasks,
)
from evojax_lab.core import noise, shaping, tree
from evojax_lab.core.types import Evaluate, Evaluation, Strategy, TrainResult
from evojax_lab.evaluate import evaluate, evaluate_members, rollout
from evojax_lab.runs import load_run
from evojax_lab.train import TrainCarry, Trainer, make_train

__version__ = "0.2.0"

__all__ = [
    "Evaluate",
    "Evaluation",
    "Strategy",
    "TrainCarry",
    "TrainResult",
    "Trainer",
    "analysis",
    "checkpoint",
    "driver",
    "evaluate",
    "evaluate_members",
    "genome",
    "load_run",
    "loggers",
    "make_train",
    "mutations",
    "noise",
    "novelty",
    "parallel",
    "policies",
    "rollout",
    "runs",
    "shaping",
    "storage",
    "strategies",
    "tasks",
    "tree",
]
