"""The types every part of evojax_lab speaks: Strategy, Evaluation, TrainResult.

The protocol and the reasons for its shape: ``docs/design.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

PyTree = Any


class Evaluation(NamedTuple):
    """What an evaluation of a population returns (never whole trajectories).

    Attributes:
        fitness: ``[P]`` mean return over episodes (always maximized).
        behavior: ``[P, B]`` behavior descriptor of the last episode (``B`` may be 0).
        steps: ``[P]`` environment steps actually taken (summed over episodes).
        experiences: ``[P, K, *observation_shape]`` observations sampled from each member's
            last episode when asked for (``evaluate(..., experiences=K)``), else ``None``.
        obs_stats: per-member observation statistics (count ``[P]``, mean and m2
            ``[P, *observation_shape]``, an ``evojax_lab.policies.ObsStats``) of every
            observation the member's policy acted on, over all its episodes, when the evaluation
            normalizes observations (``evaluate(..., obs_norm=stats)``), else ``None``.
    """

    fitness: jax.Array
    behavior: jax.Array
    steps: jax.Array
    experiences: jax.Array | None = None
    obs_stats: Any = None


class Evaluate(Protocol):
    """The evaluation a strategy's ``tell`` may call for extra episodes.

    ``evaluate(key, population, *, episodes=1, experiences=0) -> Evaluation`` evaluates a
    batch of parameters (leading axis ``C``) on the run's task: fitness is the mean return over
    ``episodes``; with ``experiences=K`` the evaluation also samples ``K`` observations of each
    member's last episode. ``make_train`` passes one bound to its task, policy, observation
    statistics and mesh.
    """

    def __call__(self, key: jax.Array, population: PyTree, *, episodes: int = 1,
                 experiences: int = 0) -> Evaluation: ...


class Strategy(NamedTuple):
    """A black-box optimizer as pure functions (like ``optax.GradientTransformation``).

    Attributes:
        init: ``init(key, params, **hyperparams) -> state``. ``params`` is one parameter pytree
            (the template of the population). Numeric hyperparameters given here override the
            factory's defaults and may be traced (a sweep vmaps over them without recompiling).
        ask: ``ask(key, state) -> (population, state)``: the population (a pytree like
            ``params`` with a leading axis ``P``) drawn from ``key``, and the state it was drawn
            from, which records ``key``: ``tell`` regenerates perturbations and seeds from the
            state, never from its own key.
        tell: ``tell(key, population, evaluation, state, evaluate=None) -> (state, metrics)``.
            ``population`` is what ``ask`` returned (or ``None`` when the members were built one
            by one with ``member``); ``evaluation`` its :class:`Evaluation` (or a ``[P]`` fitness
            vector); ``state`` the state ``ask`` returned; ``key`` is for ``tell``'s own
            randomness. ``evaluate`` (an :class:`Evaluate`) runs the extra evaluations a
            strategy needs (elite re-evaluation, novelty agents, parents' experiences); a
            ``tell`` that uses it reports the steps spent as ``metrics["extra_steps"]``.
            ``metrics`` is a dict of arrays.
        solution: ``solution(state) -> params``, the parameters the strategy would deploy now.
        pop_size: the population size ``P`` (a Python int).
        member: optional ``member(state, index) -> params``: member ``index`` of the population
            the last ``ask`` drew (``state`` is the one ``ask`` returned), built alone in O(N),
            so an evaluator can build the population chunk by chunk instead of all at once.
        pair: optional, for mirrored sampling: ``pair(state, j) -> params`` with a leading axis
            2, members ``j`` and ``j + P/2`` (``+eps_j`` and ``-eps_j``) from one draw of
            ``eps_j``: an evaluator that builds members one by one draws or reads each
            perturbation once instead of twice. The same members as ``member``'s (a table's
            windows bit for bit; a fold-in draw may round differently in the last bit, as XLA
            fuses the normal's arithmetic into a different program).
    """

    init: Callable[..., Any]
    ask: Callable[[jax.Array, Any], tuple[PyTree, Any]]
    tell: Callable[..., tuple[Any, dict]]
    solution: Callable[[Any], PyTree]
    pop_size: int
    member: Callable[[Any, Any], PyTree] | None = None
    pair: Callable[[Any, Any], PyTree] | None = None


class TrainResult(NamedTuple):
    """The result of a whole training run.

    Attributes:
        state: the final strategy state.
        metrics: dict of per-generation arrays with a leading ``[generations]`` axis.
        solution: the strategy's solution after the last generation.
        obs_stats: the final observation statistics (an ``evojax_lab.policies.ObsStats``, the
            carry's ``obs_stats`` after the last generation) when the run normalizes
            observations (``make_train(obs_norm=True)``), else ``None``. Deploy the solution
            with them: ``rollout(..., obs_norm=result.obs_stats)``.
    """

    state: Any
    metrics: dict
    solution: PyTree
    obs_stats: Any = None
