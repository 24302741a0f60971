"""The network outputs a policy's action comes from (what safe mutations measure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn


def output_fn(policy) -> Callable[[Any, Any], Any]:
    """``f(params, obs) -> outputs``: the network's outputs for one observation.

    A flax module (or its bound ``apply``) with a discrete head acts by the argmax of its logits,
    which has no gradient; its outputs are the logits (the same module with ``head="linear"``).
    Any other module's outputs are its actions (``module.apply``); a plain callable is returned
    as is.
    """
    module = policy
    owner = getattr(policy, "__self__", None)
    if isinstance(owner, nn.Module) and getattr(policy, "__name__", "") == "apply":
        module = owner
    if isinstance(module, nn.Module):
        if getattr(module, "head", None) == "discrete":
            module = module.clone(head="linear")
        return module.apply
    if not callable(policy):
        raise TypeError(f"policy must be a flax module or a callable, got {type(policy).__name__}")
    return policy


__all__ = ["output_fn"]
