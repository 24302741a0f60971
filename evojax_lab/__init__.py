"""evojax_lab: JAX-accelerated, vectorized neuroevolution."""

from evojax_lab import policies, strategies, tasks
from evojax_lab.core import noise, shaping, tree
from evojax_lab.core.types import Evaluation, Strategy, TrainResult
from evojax_lab.evaluate import evaluate, rollout
from evojax_lab.train import TrainCarry, Trainer, make_train

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "Strategy",
    "TrainCarry",
    "TrainResult",
    "Trainer",
    "evaluate",
    "make_train",
    "noise",
    "policies",
    "rollout",
    "shaping",
    "strategies",
    "tasks",
    "tree",
]
