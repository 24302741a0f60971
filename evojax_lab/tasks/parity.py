"""Recurrent 4-bit parity, the safe-mutations paper's recurrent task (Lehman et al. 2017,
arXiv:1712.06563).

The data set is all 16 four-bit sequences, fed one bit per step: sequence ``i`` is the binary
expansion of ``i``, most significant bit first, each bit a float ``0.0`` / ``1.0`` of an input
of size 1, so :data:`PARITY_SEQUENCES` is ``[16, 4, 1]`` (``1011`` is sequence 11). The target is
the parity of the whole sequence (1 when it holds an odd number of ones), scored at the final
step only, as in the paper's code (its loss is the NLL of the output after the last bit):
:data:`PARITY_TARGETS` ``[16]``.

:func:`parity` wraps a sequence model ``apply_fn(params, seq[4, 1]) -> logits[4, 2]`` (the
per-step outputs of, e.g., :class:`evojax_lab.policies.Recurrent`; a model that returns only the
final ``[2]`` works too) as a function task: fitness is minus the mean negative log-likelihood of
the 16 final-step targets under ``softmax(logits[-1])`` (maximized; 0 is perfect, a 50/50 guess
scores ``-ln 2``); the behavior is the 16 final-step probabilities of class 1. A network whose
NLL is NaN gets fitness ``-1e8`` (and behavior 0.5 wherever a probability is NaN, so a novelty
archive stays finite). The paper calls the task solved at 100% accuracy
(:func:`parity_accuracy`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.tasks.base import FunctionTask, function

#: Bits per sequence.
PARITY_BITS = 4
#: Fitness of a network whose NLL is NaN.
NAN_FITNESS = -1e8


def parity_data(num_bits: int = PARITY_BITS) -> tuple[np.ndarray, np.ndarray]:
    """``(sequences [2^n, n, 1] float32, targets [2^n] int32)``: sequence ``i`` is ``i`` in
    binary, most significant bit first; its target is the parity of its bits."""
    n = int(num_bits)
    if n < 1:
        raise ValueError(f"num_bits must be >= 1, got {num_bits}")
    codes = np.arange(2**n)
    bits = (codes[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1
    return bits[:, :, None].astype(np.float32), (bits.sum(1) % 2).astype(np.int32)


PARITY_SEQUENCES, PARITY_TARGETS = parity_data()
PARITY_SEQUENCES.setflags(write=False)
PARITY_TARGETS.setflags(write=False)


def _final_log_probs(apply_fn, params) -> jax.Array:
    """``[16, 2]`` log-softmax of each sequence's final-step outputs."""
    out = jax.vmap(lambda s: apply_fn(params, s))(jnp.asarray(PARITY_SEQUENCES))
    final = jnp.reshape(jnp.asarray(out, jnp.float32), (out.shape[0], -1, 2))[:, -1, :]
    return jax.nn.log_softmax(final, axis=-1)


def parity(apply_fn: Callable[[Any, jax.Array], jax.Array], *, name: str = "parity"
           ) -> FunctionTask:
    """4-bit recurrent parity as a function task (module docstring).

    Args:
        apply_fn: ``apply_fn(params, seq[4, 1]) -> logits[4, 2]`` (or ``[2]``); logits or
            log-probabilities (``log_softmax`` is applied to the final step).
        name: the task's name.

    Returns:
        ``el.tasks.function`` task: ``fn(key, params) -> (fitness, behavior[16])`` with fitness
        ``-mean NLL`` of the final-step targets (``-1e8`` if NaN) and behavior the final-step
        probabilities of class 1. The key is unused (the task is deterministic).
    """
    targets = jnp.asarray(PARITY_TARGETS)

    def fn(key, params):
        del key
        logp = _final_log_probs(apply_fn, params)
        nll = -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=1))
        fitness = jnp.where(jnp.isnan(nll), NAN_FITNESS, -nll)
        p1 = jnp.exp(logp[:, 1])
        return fitness, jnp.where(jnp.isnan(p1), 0.5, p1)

    return function(fn, name=name, behavior_size=len(PARITY_TARGETS))


def parity_accuracy(apply_fn: Callable[[Any, jax.Array], jax.Array], params) -> jax.Array:
    """Fraction of the 16 sequences whose final-step argmax is the parity (jittable; ties go to
    class 0)."""
    logp = _final_log_probs(apply_fn, params)
    return jnp.mean(jnp.argmax(logp, axis=-1) == jnp.asarray(PARITY_TARGETS))
