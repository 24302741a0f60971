"""Mutation operators, each a :class:`Mutation` value that declares what it needs: the plain
Gaussian mutation of the Deep GA and the safe mutations through output gradients of Lehman et
al. (2017), arXiv:1712.06563 (SM-G-SUM, SM-G-ABS, SM-G-SO, SM-R), plus the paper's two-weight toy
domains (:mod:`evojax_lab.mutations.toy`).
"""

from evojax_lab.mutations import toy
from evojax_lab.mutations.base import Mutation
from evojax_lab.mutations.gaussian import gaussian
from evojax_lab.mutations.safe import (
    CHUNK_ELEMENTS,
    MUTATION_KINDS,
    SENSITIVITY_KINDS,
    output_divergence,
    rescale_factor,
    safe_mutate,
    safe_mutation,
    sensitivity,
)

__all__ = [
    "CHUNK_ELEMENTS",
    "MUTATION_KINDS",
    "Mutation",
    "SENSITIVITY_KINDS",
    "gaussian",
    "output_divergence",
    "rescale_factor",
    "safe_mutate",
    "safe_mutation",
    "sensitivity",
    "toy",
]
