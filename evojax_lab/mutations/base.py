"""The interface every mutation operator declares (:class:`Mutation`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Mutation(NamedTuple):
    """A mutation operator for one member, with what it needs declared.

    Called as ``mutation(key, params, magnitude, experiences=None) -> params``.

    Attributes:
        apply: ``apply(key, params, magnitude, experiences) -> params`` for one member;
            ``experiences`` is ``None`` unless the operator asks for them.
        experiences: ``K``, the number of the parent's own observations (sampled from a rollout
            of the parent) ``apply`` needs; 0: none.
        observation_shape: the shape of one observation when ``experiences > 0`` (a strategy
            sizes its state with it), else ``None``.
        decodable: ``True`` when the result depends on ``(key, params, magnitude)`` only and is
            bit-exact however XLA fuses it, so seed-chain genomes (:mod:`evojax_lab.genome`)
            rebuild it; ``False`` for operators that read data or round differently under
            fusion (the safe mutations).
        name: a short name for reports.
    """

    apply: Callable[[Any, Any, Any, Any], Any]
    experiences: int = 0
    observation_shape: tuple | None = None
    decodable: bool = False
    name: str = "mutation"

    def __call__(self, key, params, magnitude, experiences=None):
        return self.apply(key, params, magnitude, experiences)


def as_mutation(mutation) -> Mutation:
    """``mutation`` checked to be a :class:`Mutation` (raises a clear TypeError otherwise)."""
    if not isinstance(mutation, Mutation):
        raise TypeError(
            f"mutation must be an el.mutations.Mutation (el.mutations.gaussian, "
            f"el.mutations.safe_mutation(...)), got {type(mutation).__name__}; wrap a function "
            "f(key, params, sigma) as el.mutations.Mutation(lambda k, p, s, _: f(k, p, s), "
            "decodable=...)"
        )
    return mutation
