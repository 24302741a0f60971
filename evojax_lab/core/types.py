"""The types every part of evojax_lab speaks: Strategy, Evaluation, TrainResult (and the
optional Validation request of a Strategy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

PyTree = Any


class Validation(NamedTuple):
    """An extra evaluation of a few candidates between ``evaluate`` and ``tell``.

    A strategy cannot run rollouts (it never imports a task), so one that re-evaluates
    candidates on extra episodes (the Deep GA's elite selection) describes the request and the
    trainer runs it::

        candidates = validation.candidates(key, population, evaluation, state)  # [C, ...]
        extra = evaluate(other_key, task, policy, candidates, episodes=validation.episodes)
        state, metrics = strategy.tell(key, population, evaluation, state, validation=extra)

    ``key`` is the generation's ask key and ``population`` may be ``None`` (bounded-memory
    evaluation: the strategy regenerates the candidates). The environment steps of ``extra``
    count in the run's budget.

    Attributes:
        candidates: ``candidates(key, population, evaluation, state) -> params`` with a leading
            axis of ``num_candidates``.
        num_candidates: ``C`` (a Python int).
        episodes: episodes per candidate (a Python int, >= 1).
    """

    candidates: Callable[[jax.Array, PyTree, Any, Any], PyTree]
    num_candidates: int
    episodes: int


class Strategy(NamedTuple):
    """A black-box optimizer as four pure functions (like ``optax.GradientTransformation``).

    Attributes:
        init: ``init(key, params, **hyperparams) -> state``. ``params`` is one parameter pytree
            (a template for the population). Numeric hyperparameters given here override the
            factory's defaults and may be traced (a sweep vmaps over them without recompiling).
        ask: ``ask(key, state) -> population``, a pytree like ``params`` with a leading
            population axis. The population is a deterministic function of ``(key, state)``.
        tell: ``tell(key, population, evaluation, state) -> (state, metrics)``. ``key`` must be
            the key given to ``ask`` for this population: strategies that never store
            perturbations (ES noise, GA seeds) regenerate them from it. ``metrics`` is a dict of
            scalars.
        solution: ``solution(state) -> params``, the parameters the strategy would deploy now.
        pop_size: the population size (a Python int).
        member: optional ``member(key, state, index) -> params``: member ``index`` of
            ``ask(key, state)`` built alone (O(N)), so an evaluator can materialize the
            population chunk by chunk instead of all at once.
        validation: optional :class:`Validation`. When set, ``tell`` takes a keyword
            ``validation=`` (the :class:`Evaluation` of the candidates) and the trainer must
            provide it.
        member_genome: optional ``member_genome(key, state, index) -> genome``: the compact
            genome (:class:`evojax_lab.genome.Genome`) of member ``index`` of ``ask(key, state)``,
            for strategies whose individuals are seed chains (the Deep GA).
        experiences: ``K > 0`` asks the evaluator for ``K`` observations per member
            (:attr:`Evaluation.experiences`), which ``tell`` keeps for the next ``ask`` (the
            Deep GA with a safe mutation). Default 0.
    """

    init: Callable[..., Any]
    ask: Callable[[jax.Array, Any], PyTree]
    tell: Callable[[jax.Array, PyTree, Evaluation, Any], tuple[Any, dict]]
    solution: Callable[[Any], PyTree]
    pop_size: int
    member: Callable[[jax.Array, Any, Any], PyTree] | None = None
    validation: Validation | None = None
    member_genome: Callable[[jax.Array, Any, Any], Any] | None = None
    experiences: int = 0


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
