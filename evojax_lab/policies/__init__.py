"""Policies: flax modules whose ``apply(params, obs) -> action``."""

from evojax_lab.policies.cnn import MinAtarCNN, NatureCNN
from evojax_lab.policies.mlp import MLP, deep_mlp, for_task
from evojax_lab.policies.recurrent import Recurrent

__all__ = ["MLP", "MinAtarCNN", "NatureCNN", "Recurrent", "deep_mlp", "for_task"]
