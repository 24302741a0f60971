"""Policies: flax modules whose ``apply(params, obs) -> action``, initializers, and the actors a
rollout wraps a policy in (observation normalization, action noise, recording experiences)."""

from evojax_lab.policies.actors import (
    Actor,
    acting,
    actor_for,
    noisy,
    normalizing,
    recording,
)
from evojax_lab.policies.cnn import MinAtarCNN, NatureCNN
from evojax_lab.policies.init import output_kernel, reference_init
from evojax_lab.policies.mlp import MLP, deep_mlp, for_task
from evojax_lab.policies.normalization import (
    VBNMLP,
    ObsStats,
    ReferenceBatch,
    VirtualBatchNorm,
    normalize_obs,
    obs_stats_init,
    obs_stats_mean_std,
    obs_stats_merge,
    obs_stats_reduce,
    obs_stats_update,
    reference_batch,
    vbn_for_task,
)
from evojax_lab.policies.outputs import output_fn
from evojax_lab.policies.recurrent import Recurrent

__all__ = [
    "Actor",
    "MLP",
    "MinAtarCNN",
    "NatureCNN",
    "ObsStats",
    "Recurrent",
    "ReferenceBatch",
    "VBNMLP",
    "VirtualBatchNorm",
    "acting",
    "actor_for",
    "deep_mlp",
    "for_task",
    "noisy",
    "normalizing",
    "normalize_obs",
    "obs_stats_init",
    "obs_stats_mean_std",
    "obs_stats_merge",
    "obs_stats_reduce",
    "obs_stats_update",
    "output_fn",
    "output_kernel",
    "recording",
    "reference_batch",
    "reference_init",
    "vbn_for_task",
]
