"""GA-NS: the Deep GA selecting by novelty (Such et al. 2017, arXiv:1712.06567, §"Image Hard
Maze"; novelty search after Lehman & Stanley 2011).

The loop is :func:`~evojax_lab.strategies.deep_ga` with the fitness replaced, for selection, by
each individual's novelty: the mean Euclidean distance of its behavior to its ``k`` nearest
neighbours among the archive and the rest of the current generation (Lehman & Stanley's
reference set). After selection every evaluated individual enters the archive with probability
``archive_probability`` (the paper: 0.01). The truncation parents and the elites are the most
novel individuals; elites are copied unmodified as in the GA.

Novelty ignores reward, so the strategy also keeps the individual with the best fitness ever
evaluated (its parameters and its compact genome): ``solution(state)`` returns it and
:func:`~evojax_lab.strategies.elite_genome` gives its genome. Selection needs no re-evaluation,
so there is no validation step; on a stochastic task the best-ever individual is judged on its
single evaluation (the reported ``best_ever_fitness`` is optimistic there).

Defaults: ``sigma = 0.005`` and ``archive_probability = 0.01`` (the paper's Image Hard Maze
settings, with ``P = 20,000 + 1`` and ``T = 61``), ``truncation = 20``, ``k = 10``, one elite.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab import genome as genome_lib
from evojax_lab import novelty as novelty_lib
from evojax_lab.core.tree import take
from evojax_lab.core.types import Strategy
from evojax_lab.genome import Genome
from evojax_lab.mutations import Mutation
from evojax_lab.strategies._common import (
    check_asked,
    check_positive_int,
    fitness_metrics,
    fitness_of,
)
from evojax_lab.strategies.deep_ga import DeepGAState, deep_ga, member_genome


class GANSState(NamedTuple):
    """State of GA-NS.

    Attributes:
        ga: the inner :class:`~evojax_lab.strategies.DeepGAState` (its fitness fields hold
            novelty).
        archive: the :class:`~evojax_lab.novelty.Archive`.
        best: parameters of the best-fitness individual evaluated so far.
        best_genome: its genome.
        best_fitness: its fitness (``-inf`` before the first ``tell``).
        archive_probability: insertion probability (traceable).
    """

    ga: DeepGAState
    archive: novelty_lib.Archive
    best: Any
    best_genome: Genome
    best_fitness: jax.Array
    archive_probability: jax.Array

    @property
    def asked(self) -> jax.Array:
        """Whether this state came from ``ask`` (the inner GA state's flag)."""
        return self.ga.asked

    @property
    def solution_genome(self) -> Genome:
        """The genome of the solution (the best-fitness individual so far)."""
        return self.best_genome


def ga_ns(
    pop_size: int,
    sigma: float = 0.005,
    truncation: int = 20,
    *,
    behavior_size: int,
    elites: int = 1,
    k: int = 10,
    archive_probability: float = 0.01,
    archive_capacity: int = 10_000,
    mutation: Mutation | None = None,
    init: genome_lib.Init | None = None,
    genome_capacity: int = 1000,
) -> Strategy:
    """Build GA-NS (the Deep GA with novelty selection).

    Args:
        pop_size, sigma, truncation, elites, mutation, init, genome_capacity: as in
            :func:`~evojax_lab.strategies.deep_ga` (``truncation >= 1``).
        behavior_size: ``B``, the task's behavior length (``task.behavior_size``).
        k: nearest neighbours of the novelty (default 10).
        archive_probability: each evaluated individual enters the archive with this
            probability (default 0.01; traceable through ``init``).
        archive_capacity: archive rows; a full archive overwrites its oldest rows.

    Returns:
        A :class:`~evojax_lab.Strategy` with ``member`` (genomes: ``member_genome(state.ga,
        i)``). ``tell`` passes ``evaluate`` to the inner GA (a mutation that needs experiences
        records them through it). ``tell`` metrics:
        ``best_fitness``, ``mean_fitness``, ``num_nan`` (of this generation's fitness),
        ``best_ever_fitness``, ``mean_novelty``, ``max_novelty``, ``archive_size``,
        ``elite_novelty``, ``genome_overflow``.
    """
    behavior_size = check_positive_int("behavior_size", behavior_size)
    k = check_positive_int("k", k)
    archive_capacity = check_positive_int("archive_capacity", archive_capacity)
    check_positive_int("truncation", truncation, 1)
    _check_probability(archive_probability)
    inner = deep_ga(
        pop_size, sigma, truncation, elites=elites, validation_episodes=0, mutation=mutation,
        init=init, genome_capacity=genome_capacity,
    )

    def init_state(key, params, *, sigma=sigma, archive_probability=archive_probability):
        _check_probability(archive_probability)
        ga = inner.init(key, params, sigma=sigma)
        return GANSState(
            ga=ga,
            archive=novelty_lib.init(archive_capacity, behavior_size),
            best=take(ga.elites, 0),
            best_genome=take(ga.elite_genomes, 0),
            best_fitness=jnp.asarray(-jnp.inf, jnp.float32),
            archive_probability=jnp.asarray(archive_probability, jnp.float32),
        )

    def ask(key, state):
        population, ga = inner.ask(key, state.ga)
        return population, state._replace(ga=ga)

    def member(state, index):
        return inner.member(state.ga, index)

    def tell(key, population, evaluation, state, evaluate=None):
        check_asked(state)
        fitness = fitness_of(evaluation, pop_size)
        behavior = jnp.asarray(evaluation.behavior, jnp.float32)
        if behavior.shape != (pop_size, behavior_size):
            raise ValueError(
                f"novelty needs behaviors of shape ({pop_size}, {behavior_size}) (the "
                f"strategy's behavior_size), got {tuple(behavior.shape)}"
            )
        nov = novelty_lib.knn(behavior, state.archive, k, population=behavior)
        ga, inner_metrics = inner.tell(key, population, nov, state.ga, evaluate)
        archive = novelty_lib.add(
            state.archive, behavior, key=jax.random.fold_in(key, 0xA4C1),
            probability=state.archive_probability,
        )
        clean = jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)
        best_idx = jnp.argmax(clean)
        improved = clean[best_idx] > state.best_fitness
        if population is not None:
            candidate = take(population, best_idx)
        else:
            candidate = inner.member(state.ga, best_idx)
        candidate_genome = member_genome(state.ga, best_idx)

        def pick(new, old):
            return jax.tree.map(lambda a, b: jnp.where(improved, a, b), new, old)

        metrics = fitness_metrics(fitness)
        best_fitness = jnp.maximum(state.best_fitness, clean[best_idx])
        metrics["best_ever_fitness"] = best_fitness
        metrics["mean_novelty"] = jnp.mean(nov)
        metrics["max_novelty"] = jnp.max(nov)
        metrics["elite_novelty"] = inner_metrics["elite_fitness"]
        metrics["archive_size"] = archive.size
        metrics["genome_overflow"] = inner_metrics["genome_overflow"]
        if "extra_steps" in inner_metrics:
            metrics["extra_steps"] = inner_metrics["extra_steps"]
        new_state = state._replace(
            ga=ga,
            archive=archive,
            best=pick(candidate, state.best),
            best_genome=pick(candidate_genome, state.best_genome),
            best_fitness=best_fitness,
        )
        return new_state, metrics

    def solution(state):
        return state.best

    return Strategy(
        init=init_state, ask=ask, tell=tell, solution=solution, pop_size=pop_size, member=member
    )


def _check_probability(p) -> None:
    try:
        v = float(p)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"archive_probability must be in [0, 1], got {v}")


__all__ = ["GANSState", "ga_ns"]
