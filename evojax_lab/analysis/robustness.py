"""Returns of a solution under Gaussian parameter noise (Lehman, Chen, Clune & Stanley 2017,
"ES Is More Than Just a Traditional Finite-Difference Approximator", arXiv:1712.06568).

ES follows the gradient of the Gaussian-smoothed objective ``E F(theta + sigma eps)``, so it
tends to settle where perturbations of the parameters cost little; a gradient method follows
``grad F`` and may end on a narrow peak. :func:`robustness` measures this: the distribution of
returns of ``theta + sigma eps``, ``eps ~ N(0, I)``.
"""

from __future__ import annotations

import jax

from evojax_lab.core.checks import check_nonnegative, check_positive_int
from evojax_lab.core.tree import ravel
from evojax_lab.evaluate import evaluate


def robustness(
    key: jax.Array,
    task,
    policy,
    params,
    sigma: float,
    num_samples: int = 100,
    *,
    episodes: int = 1,
    chunk_size: int | None = None,
    common_random_numbers: bool = True,
) -> jax.Array:
    """Returns of ``num_samples`` perturbed copies ``params + sigma * eps_i`` of a solution.

    Args:
        key: PRNG key (split into the perturbation key and the evaluation key).
        task: any task ``el.evaluate`` accepts (environment or function task).
        policy: the policy module (``None`` for a function task).
        params: the solution's parameters (a pytree).
        sigma: perturbation scale (``>= 0``; 0 re-evaluates the solution itself).
        num_samples: number of perturbed copies.
        episodes: episodes per copy (its return is their mean).
        chunk_size: passed to ``el.evaluate``.
        common_random_numbers: all copies see the same episode starts (default), so the spread
            comes from the parameters, not from the starting states.

    Returns:
        ``[num_samples]`` float32 returns, one per perturbed copy.
    """
    check_nonnegative("sigma", sigma)
    num_samples = check_positive_int("num_samples", num_samples)
    perturb_key, eval_key = jax.random.split(key)
    flat, unravel = ravel(params)
    eps = jax.random.normal(perturb_key, (num_samples, flat.shape[0]), flat.dtype)
    population = jax.vmap(unravel)(flat + sigma * eps)
    evaluation = evaluate(eval_key, task, policy, population, episodes=episodes,
                          chunk_size=chunk_size, common_random_numbers=common_random_numbers)
    return evaluation.fitness
