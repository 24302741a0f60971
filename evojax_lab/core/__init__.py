"""Core types and helpers; imports nothing else from evojax_lab."""

from evojax_lab.core import noise, shaping, tree
from evojax_lab.core.types import Evaluation, Strategy, TrainResult, Validation

__all__ = ["Evaluation", "Strategy", "TrainResult", "Validation", "noise", "shaping", "tree"]
