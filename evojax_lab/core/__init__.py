"""Core types and helpers; imports nothing else from evojax_lab."""

from evojax_lab.core import noise, shaping, tree
from evojax_lab.core.types import Evaluation, Strategy, TrainResult

__all__ = ["Evaluation", "Strategy", "TrainResult", "noise", "shaping", "tree"]
