"""NS-ES, NSR-ES and NSRA-ES: Conti, Madhavan, Petroski Such, Lehman, Stanley, Clune (2017),
"Improving Exploration in Evolution Strategies for Deep Reinforcement Learning via a Population
of Novelty-Seeking Agents", arXiv:1712.06560 (REFERENCE §6).

A meta-population of ``M`` agents lives in one state, each with its own parameters and optimizer
state. Every generation:

1. agent ``m`` (chosen at the end of the previous generation with probability
   ``N(theta_m, A) / sum_j N(theta_j, A)``) is perturbed: the population is ``pop_size``
   OpenAI-ES perturbations of ``theta_m`` (mirrored by default);
2. each perturbation gets a utility from the centered ranks of its fitness ``F`` and its novelty
   ``N`` (mean distance of its behavior to the ``k`` nearest archive members):
   NS-ES ``rank(N)``; NSR-ES ``(rank(F) + rank(N)) / 2``; NSRA-ES ``w rank(F) + (1 - w)
   rank(N)``;
3. agent ``m`` takes one OpenAI-ES step with those utilities (Adam, L2 as in
   :func:`~evojax_lab.strategies.openai_es`);
4. the updated agent is evaluated and its behavior enters the archive; NSRA-ES adapts ``w``:
   ``+delta`` when the best validated fitness improves, ``-delta`` after ``patience``
   generations without improvement (clipped to [0, 1]); the next agent is drawn.

Evaluating the agents: ``tell`` runs agent episodes through the ``evaluate`` it is given
(``make_train`` passes one; the steps are reported as ``extra_steps`` and count in the budget).
At generation 0 it first evaluates the initial agents and their behaviors seed the archive (the
paper's "all initial behaviors go into A") before any novelty is computed; the first agent is
drawn uniformly (nothing is known yet). Every generation it then takes the ES step once and
evaluates the updated agent (``validation_episodes`` episodes), whose behavior enters the archive
and whose fitness and behavior replace the agent's stored ones: after ``G`` generations the
archive holds ``M + G`` behaviors. The next agent is drawn from these up-to-date novelties, as in
the paper; ``solution(state)`` is the agent with the best stored fitness.

Defaults (the paper's): ``sigma = 0.02``, Adam lr 0.01, L2 0.005, ``k = 10``, mirrored sampling;
``num_agents = 5`` (humanoid; the paper used 3 for Atari); NSRA ``w = 1.0``, ``delta = 0.05``,
``patience = 50`` (the paper's ``t_w`` is unverified: all three are exposed and traceable).
Agents start from ``agent_init`` (by default the reference initialization of
:func:`evojax_lab.policies.reference_init`, one fresh draw per agent: the ``params`` given to
``init`` are a template; pass ``agent_init=lambda key, params: params`` to start every agent
from them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from evojax_lab import novelty as novelty_lib
from evojax_lab.core import noise as noise_lib
from evojax_lab.core import shaping
from evojax_lab.core.tree import take
from evojax_lab.core.types import Strategy
from evojax_lab.policies.init import reference_init
from evojax_lab.strategies._common import (
    check_asked,
    check_nonnegative,
    check_positive_int,
    fitness_metrics,
    fitness_of,
    require_evaluate,
    total_steps,
)
from evojax_lab.strategies.openai_es import openai_es

VARIANTS = ("ns", "nsr", "nsra")


class NoveltyESState(NamedTuple):
    """State of NS-ES / NSR-ES / NSRA-ES.

    Attributes:
        means: the agents' parameters, leading axis ``M``.
        opt_states: their optimizer states, leading axis ``M``.
        es: the shared OpenAI-ES state fields (sigma, weight decay, noise, and the last ask's
            ``noise_key`` and ``asked`` flag; its ``mean`` and ``opt_state`` are placeholders —
            the agents' own live in ``means``/``opt_states``).
        behaviors: ``[M, B]`` the agents' last evaluated behaviors.
        fitness: ``[M]`` the agents' last evaluated fitness (``-inf`` before the first).
        archive: the :class:`~evojax_lab.novelty.Archive`.
        agent: the agent perturbed in the next generation.
        weight: NSRA-ES's fitness weight ``w`` (NS-ES and NSR-ES keep it but do not use it:
            NSR-ES's weight is a fixed 0.5).
        delta: NSRA's step of ``w``.
        patience: NSRA's ``t_w``.
        best_fitness: best validated agent fitness so far.
        stagnation: generations since ``best_fitness`` last improved.
        generation: generations told so far.
    """

    means: Any
    opt_states: Any
    es: Any
    behaviors: jax.Array
    fitness: jax.Array
    archive: novelty_lib.Archive
    agent: jax.Array
    weight: jax.Array
    delta: jax.Array
    patience: jax.Array
    best_fitness: jax.Array
    stagnation: jax.Array
    generation: jax.Array

    @property
    def asked(self) -> jax.Array:
        """Whether this state came from ``ask``."""
        return self.es.asked


def _novelty_es(
    variant: str,
    pop_size: int,
    sigma: float,
    optimizer: optax.GradientTransformation | None,
    *,
    behavior_size: int,
    num_agents: int,
    k: int,
    archive_capacity: int,
    learning_rate: float,
    mirrored: bool,
    weight_decay: float,
    noise: noise_lib.NoiseSource | None,
    chunk_size: int | None,
    validation_episodes: int,
    weight: float,
    delta: float,
    patience: int,
    agent_init: Callable[[jax.Array, Any], Any] | None,
) -> Strategy:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    behavior_size = check_positive_int("behavior_size", behavior_size)
    num_agents = check_positive_int("num_agents", num_agents)
    k = check_positive_int("k", k)
    archive_capacity = check_positive_int("archive_capacity", archive_capacity, num_agents)
    validation_episodes = check_positive_int("validation_episodes", validation_episodes)
    _check_weight(weight)
    check_nonnegative("delta", delta)
    check_positive_int("patience", patience)
    # Utilities are computed here; the inner OpenAI-ES uses them as given.
    inner = openai_es(
        pop_size, sigma, optimizer, learning_rate=learning_rate, mirrored=mirrored,
        weight_decay=weight_decay, noise=noise, chunk_size=chunk_size,
        fitness_shaping=lambda u: u,
    )
    start = reference_init if agent_init is None else agent_init
    if not callable(start):
        raise TypeError(f"agent_init must be callable, got {type(start).__name__}")

    def init(key, params, *, sigma=sigma, learning_rate=None, weight_decay=weight_decay,
             weight=weight, delta=delta, patience=patience):
        _check_weight(weight)
        check_nonnegative("delta", delta)
        agents = [start(jax.random.fold_in(key, j), params) for j in range(num_agents)]
        inits = [
            inner.init(key, p, sigma=sigma, learning_rate=learning_rate,
                       weight_decay=weight_decay)
            for p in agents
        ]
        means = jax.tree.map(lambda *x: jnp.stack(x), *[s.mean for s in inits])
        opt_states = jax.tree.map(lambda *x: jnp.stack(x), *[s.opt_state for s in inits])
        return NoveltyESState(
            means=means,
            opt_states=opt_states,
            es=inits[0],
            behaviors=jnp.zeros((num_agents, behavior_size), jnp.float32),
            fitness=jnp.full((num_agents,), -jnp.inf, jnp.float32),
            archive=novelty_lib.init(archive_capacity, behavior_size),
            agent=jax.random.randint(jax.random.fold_in(key, num_agents), (), 0, num_agents),
            weight=jnp.asarray(weight, jnp.float32),
            delta=jnp.asarray(delta, jnp.float32),
            patience=jnp.asarray(patience, jnp.int32),
            best_fitness=jnp.asarray(-jnp.inf, jnp.float32),
            stagnation=jnp.zeros((), jnp.int32),
            generation=jnp.zeros((), jnp.int32),
        )

    def agent_state(state, m):
        return state.es._replace(mean=_row(state.means, m, num_agents),
                                 opt_state=_row(state.opt_states, m, num_agents))

    def ask(key, state):
        state = state._replace(es=state.es._replace(noise_key=key, asked=jnp.ones((), bool)))
        population, _ = inner.ask(key, agent_state(state, state.agent))
        return population, state

    def member(state, index):
        return inner.member(agent_state(state, state.agent), index)

    def pair(state, index):
        return inner.pair(agent_state(state, state.agent), index)

    def behaviors_of(evaluation, n):
        behavior = jnp.asarray(evaluation.behavior, jnp.float32)
        if behavior.shape != (n, behavior_size):
            raise ValueError(
                f"novelty needs behaviors of shape ({n}, {behavior_size}) (the strategy's "
                f"behavior_size), got {tuple(behavior.shape)}; the task's behavior_size is "
                "what to pass"
            )
        return behavior

    def utilities(evaluation, state):
        """Per-perturbation utilities and the perturbations' novelty."""
        fitness = fitness_of(evaluation, pop_size)
        nov = novelty_lib.knn(behaviors_of(evaluation, pop_size), state.archive, k)
        rank_n = shaping.centered_rank(nov)
        if variant == "ns":
            u = rank_n
        else:
            rank_f = shaping.centered_rank(fitness)
            w = 0.5 if variant == "nsr" else state.weight
            u = w * rank_f + (1.0 - w) * rank_n
        return u, nov, fitness

    def seed_archive(key, state, evaluate):
        """Generation 0: the initial agents are evaluated and their behaviors enter the
        archive before any novelty is computed. Returns the state and the steps spent."""

        def evaluated(state):
            initial = evaluate(key, state.means, episodes=validation_episodes)
            behavior = behaviors_of(initial, num_agents)
            state = state._replace(
                archive=novelty_lib.add(state.archive, behavior), behaviors=behavior,
                fitness=fitness_of(initial, num_agents),
            )
            return state, total_steps(initial)

        def unchanged(state):
            return state, jnp.zeros((), jnp.float32)

        return jax.lax.cond(state.generation == 0, evaluated, unchanged, state)

    def tell(key, population, evaluation, state, evaluate=None):
        check_asked(state)
        evaluate = require_evaluate(
            evaluate, f"{variant.upper()}-ES", "evaluates its agents (the initial ones at "
            "generation 0, then the updated one every generation)",
        )
        first = state.generation == 0
        state, seed_steps = seed_archive(jax.random.fold_in(key, 0x5EED), state, evaluate)
        u, nov, fitness = utilities(evaluation, state)
        m = state.agent
        # One ES step of the current agent with the novelty (and fitness) utilities.
        new_inner, inner_metrics = inner.tell(key, population, u, agent_state(state, m))
        means = jax.tree.map(lambda a, x: a.at[m].set(x), state.means, new_inner.mean)
        opts = jax.tree.map(lambda a, x: a.at[m].set(x), state.opt_states, new_inner.opt_state)
        # The updated agent is evaluated; its behavior enters the archive.
        updated = evaluate(jax.random.fold_in(key, 0xA6E7), _batch_of_one(new_inner.mean),
                           episodes=validation_episodes)
        agent_behavior = behaviors_of(updated, 1)[0]
        agent_fitness = fitness_of(updated, 1)[0]
        archive = novelty_lib.add(state.archive, agent_behavior[None])
        behaviors = state.behaviors.at[m].set(agent_behavior)
        agent_fit = state.fitness.at[m].set(agent_fitness)
        clean = jnp.where(jnp.isnan(agent_fitness), -jnp.inf, agent_fitness)
        # Generation 0: the best fitness so far includes the initial agents'.
        before = jnp.where(first, jnp.max(jnp.where(jnp.isnan(state.fitness), -jnp.inf,
                                                    state.fitness)), state.best_fitness)
        improved = clean > before
        best = jnp.maximum(before, clean)
        # NSRA-ES: w up on improvement, down after `patience` generations without one (not at
        # generation 0, where nothing came before).
        later = ~first
        stagnation = jnp.where(improved, 0, state.stagnation + 1)
        w = state.weight
        if variant == "nsra":
            stuck = stagnation >= state.patience
            w = jnp.where(improved & later, w + state.delta, w)
            w = jnp.where(stuck & later, w - state.delta, w)
            w = jnp.clip(w, 0.0, 1.0)
            stagnation = jnp.where(stuck, 0, stagnation)
        stagnation = jnp.where(later, stagnation, 0)
        # Next agent: probability proportional to its novelty against the archive.
        agent_novelty = novelty_lib.knn(behaviors, archive, k)
        total = jnp.sum(agent_novelty)
        logits = jnp.where(
            total > 0, jnp.log(jnp.maximum(agent_novelty, 0.0)), jnp.zeros_like(agent_novelty)
        )
        choice_key = jax.random.fold_in(key, 0x5E1EC7)
        next_agent = jax.random.categorical(choice_key, logits).astype(jnp.int32)

        metrics = fitness_metrics(fitness)
        metrics["mean_novelty"] = jnp.mean(nov)
        metrics["max_novelty"] = jnp.max(nov)
        metrics["agent"] = m.astype(jnp.int32)
        metrics["agent_fitness"] = agent_fitness
        metrics["agent_behavior"] = agent_behavior  # e.g. to draw each agent's path
        metrics["best_agent_fitness"] = jnp.max(jnp.where(jnp.isnan(agent_fit), -jnp.inf,
                                                          agent_fit))
        metrics["archive_size"] = archive.size
        metrics["grad_norm"] = inner_metrics["grad_norm"]
        metrics["extra_steps"] = seed_steps + total_steps(updated)
        if variant == "nsra":
            metrics["weight"] = w
        new_state = state._replace(
            means=means,
            opt_states=opts,
            es=state.es._replace(asked=jnp.zeros((), bool)),
            behaviors=behaviors,
            fitness=agent_fit,
            archive=archive,
            agent=next_agent,
            weight=jnp.asarray(w, jnp.float32),
            best_fitness=best,
            stagnation=stagnation.astype(jnp.int32),
            generation=state.generation + 1,
        )
        return new_state, metrics

    def solution(state):
        fitness = jnp.where(jnp.isnan(state.fitness), -jnp.inf, state.fitness)
        return take(state.means, jnp.argmax(fitness))

    return Strategy(
        init=init, ask=ask, tell=tell, solution=solution, pop_size=pop_size, member=member,
        pair=pair if inner.pair is not None else None,
    )


def _row(tree, index, count: int):
    """Row ``index`` of a pytree batched ``[count, ...]``, as a masked sum over the rows.

    Exact (every other row adds zeros; a NaN elsewhere is masked out, not multiplied). A plain
    ``tree[index]`` is a dynamic slice that XLA:CPU fuses into ``ask``'s ``P x N`` noise draw,
    which then ran 2.3x slower (``benchmarks/ns_es_overhead.py``).
    """
    mask = jnp.arange(count) == index

    def pick(x):
        keep = mask.reshape(count, *([1] * (x.ndim - 1)))
        return jnp.sum(jnp.where(keep, x, jnp.zeros_like(x)), axis=0)

    return jax.tree.map(pick, tree)


def _batch_of_one(params):
    """``params`` as a batch of one (a leading axis of size 1)."""
    return jax.tree.map(lambda x: x[None], params)


def _check_weight(weight) -> None:
    try:
        w = float(weight)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {w}")


def _factory(variant: str, doc: str):
    def build(
        pop_size: int,
        sigma: float = 0.02,
        optimizer: optax.GradientTransformation | None = None,
        *,
        behavior_size: int,
        num_agents: int = 5,
        k: int = 10,
        archive_capacity: int = 4096,
        learning_rate: float = 0.01,
        mirrored: bool = True,
        weight_decay: float = 0.005,
        noise: noise_lib.NoiseSource | None = None,
        chunk_size: int | None = None,
        validation_episodes: int = 1,
        weight: float = 1.0,
        delta: float = 0.05,
        patience: int = 50,
        agent_init: Callable[[jax.Array, Any], Any] | None = None,
    ) -> Strategy:
        return _novelty_es(
            variant, pop_size, sigma, optimizer, behavior_size=behavior_size,
            num_agents=num_agents, k=k, archive_capacity=archive_capacity,
            learning_rate=learning_rate, mirrored=mirrored, weight_decay=weight_decay,
            noise=noise, chunk_size=chunk_size, validation_episodes=validation_episodes,
            weight=weight, delta=delta, patience=patience, agent_init=agent_init,
        )

    build.__name__ = build.__qualname__ = f"{variant}_es"
    build.__doc__ = doc + _ARGS
    return build


_ARGS = """

    Args:
        pop_size: perturbations per generation (even when ``mirrored``).
        sigma: perturbation standard deviation (> 0; traceable through ``init``).
        optimizer: optax transformation for every agent (default: the paper's Adam).
        behavior_size: ``B``, the task's behavior length (``task.behavior_size``).
        num_agents: ``M`` (default 5).
        k: nearest neighbours of the novelty (default 10).
        archive_capacity: archive rows (``M`` at generation 0, then one per generation:
            ``M + G`` after ``G``; a full archive overwrites its oldest rows).
        learning_rate, mirrored, weight_decay, noise, chunk_size: as in
            :func:`~evojax_lab.strategies.openai_es`.
        validation_episodes: episodes per agent evaluation (default 1; raise it on stochastic
            tasks).
        weight, delta, patience: NSRA-ES's initial ``w``, its step and ``t_w`` (traceable
            through ``init``; only NSRA-ES uses them).
        agent_init: ``agent_init(key, params) -> params`` for each agent (default: the reference
            initialization, a fresh draw per agent).

    Returns:
        A :class:`~evojax_lab.Strategy` with ``member``; ``tell`` needs ``evaluate`` (the agent
        evaluations). ``tell`` metrics: ``best_fitness``, ``mean_fitness``, ``num_nan`` (of the
        perturbations), ``mean_novelty``, ``max_novelty``, ``agent``, ``agent_fitness`` and
        ``agent_behavior`` (the updated agent's evaluation), ``best_agent_fitness``,
        ``archive_size``, ``grad_norm``, ``extra_steps`` and, for NSRA-ES, ``weight``.
    """

ns_es = _factory("ns", "NS-ES: each agent follows the novelty gradient alone (rank(N)).")
nsr_es = _factory(
    "nsr", "NSR-ES: the utility is the average of the centered ranks of fitness and novelty."
)
nsra_es = _factory(
    "nsra",
    "NSRA-ES: utility ``w rank(F) + (1 - w) rank(N)`` with ``w`` adapted during the run "
    "(``+delta`` on improvement of the best agent fitness, ``-delta`` after ``patience`` "
    "generations without).",
)

__all__ = ["NoveltyESState", "ns_es", "nsr_es", "nsra_es"]
