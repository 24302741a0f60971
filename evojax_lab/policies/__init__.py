"""Policies: flax modules whose ``apply(params, obs) -> action``."""

from evojax_lab.policies.cnn import MinAtarCNN, NatureCNN
from evojax_lab.policies.mlp import MLP, for_task

__all__ = ["MLP", "MinAtarCNN", "NatureCNN", "for_task"]
