"""Core types and helpers; imports nothing else from evojax_lab."""

from evojax_lab.core import compiles, exact, noise, shaping, tree
from evojax_lab.core.types import Evaluate, Evaluation, Strategy, TrainResult

__all__ = ["Evaluate", "Evaluation", "Strategy", "TrainResult", "compiles", "exact", "noise",
           "shaping", "tree"]
