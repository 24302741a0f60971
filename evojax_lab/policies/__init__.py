"""Policies: flax modules whose ``apply(params, obs) -> action``, and initializers."""

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
    "MLP",
    "MinAtarCNN",
    "NatureCNN",
    "ObsStats",
    "Recurrent",
    "ReferenceBatch",
    "VBNMLP",
    "VirtualBatchNorm",
    "deep_mlp",
    "for_task",
    "normalize_obs",
    "obs_stats_init",
    "obs_stats_mean_std",
    "obs_stats_merge",
    "obs_stats_reduce",
    "obs_stats_update",
    "output_fn",
    "output_kernel",
    "reference_batch",
    "reference_init",
    "vbn_for_task",
]
