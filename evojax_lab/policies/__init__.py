"""Policies: flax modules whose ``apply(params, obs)`` returns an action."""

from evojax_lab.policies.mlp import MLP, for_task

__all__ = ["MLP", "for_task"]
