"""``make_train``: a strategy and an evaluation fused into one jit-compiled run.

Generation ``g`` uses the key ``fold_in(run_key, g)``, so a run split into blocks (for progress
bars or checkpoints) equals the same run in one call, and the same key gives the same run.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab.core.sharding import (
    constrain_population,
    constrain_replicated,
    population_axis_size,
)
from evojax_lab.core.tree import batch_size
from evojax_lab.core.types import Strategy, TrainResult
from evojax_lab.evaluate import evaluate, evaluate_members, rollout
from evojax_lab.parallel import make_mesh
from evojax_lab.policies.normalization import (
    obs_stats_init,
    obs_stats_mean_std,
    obs_stats_merge,
    obs_stats_reduce,
)
from evojax_lab.tasks.base import FunctionTask

# Per-member fields of each generation's Evaluation that ``make_train(record=...)`` can keep.
RECORDABLE = {
    "fitness": "population_fitness",
    "behavior": "population_behavior",
    "steps": "population_steps",
}


class TrainCarry(NamedTuple):
    """Everything a run carries between generations (what a checkpoint stores)."""

    state: Any
    key: jax.Array
    generation: jax.Array
    steps: jax.Array  # cumulative environment steps used for training (float32: no overflow)
    obs_stats: Any = None  # observation statistics (``make_train(obs_norm=True)``), else None


class Trainer:
    """The callable returned by :func:`make_train`.

    ``trainer(key, hparams=None) -> TrainResult`` runs all generations in one jit. For progress
    reporting and checkpoints the same run can be driven in blocks::

        carry = trainer.init(key, hparams)
        carry, metrics = trainer.run(carry, 10)   # 10 generations, jitted
        result = trainer.result(carry, [metrics, ...])

    ``num_traces`` counts how often the run was traced (a test of "no recompilation").
    """

    def __init__(self, task, policy, strategy: Strategy, *, generations: int, episodes: int,
                 eval_episodes: int, chunk_size: int | None, params: Any | None,
                 mesh: Any = "auto", record: tuple[str, ...] = (), obs_norm: bool = False,
                 action_noise: float = 0.0):
        if int(generations) < 1:
            raise ValueError(f"generations must be >= 1, got {generations}")
        if int(episodes) < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if int(eval_episodes) < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {eval_episodes}")
        self.task = task
        self.policy = policy
        self.strategy = strategy
        self.generations = int(generations)
        self.episodes = int(episodes)
        self.eval_episodes = int(eval_episodes)
        self.chunk_size = chunk_size
        self.params = params
        if isinstance(record, str):
            record = (record,)
        unknown = sorted(set(record) - set(RECORDABLE))
        if unknown:
            raise ValueError(
                f"record: unknown field(s) {unknown}; choose from {list(RECORDABLE)}"
            )
        self.record = tuple(record)
        self.obs_norm = bool(obs_norm)
        if self.obs_norm and (isinstance(task, FunctionTask)
                              or not hasattr(task, "observation_shape")):
            raise ValueError("obs_norm needs an environment task with observations")
        self.action_noise = float(action_noise)
        if not self.action_noise >= 0:
            raise ValueError(f"action_noise must be >= 0, got {action_noise}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if isinstance(mesh, str):
            if mesh != "auto":
                raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh, got {mesh!r}")
            mesh = make_mesh(pop_size=strategy.pop_size)
        self.mesh = mesh
        self.num_traces = 0
        self._train = jax.jit(self._train_impl)
        self._init = jax.jit(self._init_impl)
        self._run = jax.jit(self._run_impl, static_argnums=1)
        self._sweep = jax.jit(jax.vmap(self._train_impl, in_axes=(None, 0)))

    # -- pieces -------------------------------------------------------------------------
    def _context(self):
        """The mesh in context while tracing: ``jax.set_mesh`` at top level; inside an outer
        transformation (``jax.vmap(train)`` for a sweep) only the abstract mesh can be set."""
        if self.mesh is None:
            return contextlib.nullcontext()
        try:
            return jax.set_mesh(self.mesh)
        except ValueError:
            # Called inside someone else's jit/vmap: no concrete mesh can be set here, so the
            # run is traced unsharded (same numbers) unless the caller set a mesh around it.
            # ``sweep`` is the sharded way to vmap over hyperparameters.
            return contextlib.nullcontext()

    def initial_params(self, key):
        if callable(self.params):
            return self.params(key)
        if self.params is not None:
            return self.params
        if self.policy is None:
            raise ValueError("make_train needs params= when there is no policy to initialize")
        return self.policy.init(key, jnp.zeros(self.task.observation_shape, jnp.float32))

    def _init_impl(self, key, hparams):
        init_key, strategy_key, run_key = jax.random.split(key, 3)
        params = self.initial_params(init_key)
        state = constrain_replicated(self.strategy.init(strategy_key, params, **(hparams or {})))
        obs_stats = (
            constrain_replicated(obs_stats_init(self.task.observation_shape))
            if self.obs_norm else None
        )
        return TrainCarry(state, run_key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32),
                          obs_stats)

    def _generation(self, carry: TrainCarry, _=None):
        gen_key = jax.random.fold_in(carry.key, carry.generation)
        ask_key, eval_key, solution_key = jax.random.split(gen_key, 3)
        if self.chunk_size is not None and self.strategy.member is not None:
            # Bounded memory: members are rebuilt from (key, state, index) chunk by chunk, and
            # tell regenerates what it needs; no P x N array of parameters is ever built.
            population = None
            evaluation = evaluate_members(
                eval_key, self.task, self.policy,
                lambda ctx, i: self.strategy.member(ctx[0], ctx[1], i), (ask_key, carry.state),
                self.strategy.pop_size, episodes=self.episodes, chunk_size=self.chunk_size,
                experiences=self.strategy.experiences, obs_norm=carry.obs_stats,
                action_noise=self.action_noise,
            )
        else:
            population = constrain_population(self.strategy.ask(ask_key, carry.state))
            evaluation = evaluate(
                eval_key, self.task, self.policy, population,
                episodes=self.episodes, chunk_size=self.chunk_size,
                experiences=self.strategy.experiences, obs_norm=carry.obs_stats,
                action_noise=self.action_noise,
            )
        steps = carry.steps + jnp.sum(evaluation.steps).astype(jnp.float32)
        request = self.strategy.validation
        if request is None:
            state, metrics = self.strategy.tell(ask_key, population, evaluation, carry.state)
            metrics = dict(metrics)
        else:
            # The strategy asks for a few candidates to be re-evaluated on extra episodes (the
            # Deep GA's elite selection); their steps count in the budget.
            validation = self._validate(
                jax.random.fold_in(eval_key, 1),
                request.candidates(ask_key, population, evaluation, carry.state),
                request.episodes, obs_norm=carry.obs_stats,
            )
            state, metrics = self.strategy.tell(
                ask_key, population, evaluation, carry.state, validation=validation
            )
            metrics = dict(metrics)
            metrics["validation_steps"] = jnp.sum(validation.steps).astype(jnp.float32)
            steps = steps + metrics["validation_steps"]
        state = constrain_replicated(state)
        obs_stats = carry.obs_stats
        if obs_stats is not None:
            # The generation's observations join the statistics the next generation uses.
            obs_stats = constrain_replicated(
                obs_stats_merge(obs_stats, obs_stats_reduce(evaluation.obs_stats))
            )
            metrics["obs_mean"], metrics["obs_std"] = obs_stats_mean_std(obs_stats)
            metrics["obs_count"] = obs_stats.count
        if self.eval_episodes:
            # A single member: not sharded (every device scores it; it is cheap).
            solution = self.strategy.solution(state)
            returns = jax.vmap(
                lambda k: rollout(k, self.task, self.policy, solution, obs_norm=obs_stats)[0]
            )(jax.random.split(solution_key, self.eval_episodes))
            metrics["solution_fitness"] = returns.mean()
        for name in self.record:
            metrics[RECORDABLE[name]] = getattr(evaluation, name)
        metrics["steps"] = steps
        metrics["generation"] = carry.generation + 1
        return TrainCarry(state, carry.key, carry.generation + 1, steps, obs_stats), metrics

    def _validate(self, key, candidates, episodes, obs_norm=None):
        """Evaluate a strategy's validation candidates, padded to a multiple of the devices
        (the copies' results are dropped)."""
        n = batch_size(candidates)
        pad = -n % population_axis_size()
        if pad:
            candidates = jax.tree.map(
                lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), candidates
            )
        evaluation = evaluate(
            key, self.task, self.policy, constrain_population(candidates),
            episodes=episodes, chunk_size=self.chunk_size, obs_norm=obs_norm,
        )
        return jax.tree.map(lambda x: x[:n], evaluation)

    def _run_impl(self, carry, num_generations):
        self.num_traces += 1
        return jax.lax.scan(self._generation, carry, None, length=num_generations)

    def _train_impl(self, key, hparams):
        self.num_traces += 1
        carry = self._init_impl(key, hparams)
        # The barrier keeps XLA from specializing the first generations on the known initial
        # state (zero optimizer moments, ...), so one call equals the same run in blocks
        # (``init`` + ``run``) bit for bit.
        carry = jax.lax.optimization_barrier(carry)
        carry, metrics = jax.lax.scan(self._generation, carry, None, length=self.generations)
        return TrainResult(carry.state, metrics, self.strategy.solution(carry.state),
                           carry.obs_stats)

    # -- public -------------------------------------------------------------------------
    def __call__(self, key, hparams: dict | None = None) -> TrainResult:
        """Run every generation in one jit-compiled call."""
        with self._context():
            return self._train(key, hparams)

    def sweep(self, key, hparams: dict) -> TrainResult:
        """Runs for a batch of hyperparameter values in one program (vmapped, sharded).

        ``hparams`` maps names to arrays with a leading sweep axis, e.g.
        ``{"sigma": jnp.array([0.01, 0.02, 0.05])}``; results get the same leading axis. New
        values of the same shape reuse the compiled program.
        """
        with self._context():
            return self._sweep(key, hparams)

    def init(self, key, hparams: dict | None = None) -> TrainCarry:
        with self._context():
            return self._init(key, hparams)

    def run(self, carry: TrainCarry, num_generations: int):
        """Advance ``num_generations`` generations (jitted; compiled once per block length)."""
        with self._context():
            return self._run(carry, int(num_generations))

    def result(self, carry: TrainCarry, metrics_blocks: list[dict]) -> TrainResult:
        """The :class:`TrainResult` of a run driven in blocks (``carry`` after the last block,
        its ``obs_stats`` included)."""
        metrics = jax.tree.map(lambda *xs: jnp.concatenate(xs), *metrics_blocks)
        return TrainResult(carry.state, metrics, self.strategy.solution(carry.state),
                           carry.obs_stats)


def make_train(
    task,
    policy,
    strategy: Strategy,
    *,
    generations: int,
    episodes: int = 1,
    eval_episodes: int = 10,
    chunk_size: int | None = None,
    params: Any | None = None,
    mesh: Any = "auto",
    record: tuple[str, ...] = (),
    obs_norm: bool = False,
    action_noise: float = 0.0,
) -> Trainer:
    """Fuse ``strategy`` and the evaluation of ``policy`` on ``task`` into one jitted run.

    Args:
        task: a :class:`~evojax_lab.tasks.Task`.
        policy: a flax module, ``apply(params, obs) -> action``.
        strategy: a :class:`~evojax_lab.Strategy`. If it has a ``validation`` request (the
            Deep GA's elite re-evaluation), its candidates are evaluated on the requested extra
            episodes every generation (key ``fold_in(eval_key, 1)``, padded to a multiple of the
            devices), passed to ``tell(..., validation=...)``, and their environment steps are
            added to ``steps`` (and reported as ``validation_steps``).
        generations: number of generations (one ``lax.scan``).
        episodes: episodes per member per generation.
        eval_episodes: episodes on which the solution is scored after every generation
            (metric ``solution_fitness``; 0 turns it off).
        chunk_size: evaluate the population this many members at a time (per device). With a
            strategy that has ``member`` (OpenAI-ES), members are then built chunk by chunk from
            their noise indices and no ``P x N`` parameter array exists (bounded memory); pass
            the same ``chunk_size`` to the strategy so ``tell`` is bounded too. ``None``: the
            population is materialized by ``ask`` and ``evaluate`` picks cache-sized chunks on
            CPU (``evaluate.auto_chunk_size``; same results as one batch).
        params: initial parameters, or a function ``params(key) -> params`` called with the
            run's init key (so ``jax.vmap(trainer)`` over seeds starts every seed from its own
            draw, e.g. ``lambda k: el.genome.reference_init(k, template)``); by default
            ``policy.init`` on a zero observation.
        mesh: ``"auto"`` (all devices, population axis sharded, state replicated), ``None``
            (no sharding), or a ``jax.sharding.Mesh`` with a ``"pop"`` axis.
        record: per-member results to keep for every generation, any of ``"fitness"``,
            ``"behavior"``, ``"steps"``: they appear in the metrics as ``population_fitness``
            ``[G, P]``, ``population_behavior`` ``[G, P, B]``, ``population_steps`` ``[G, P]``
            (e.g. to draw where every evaluated individual of a maze run ended). Off by
            default: it costs ``G x P x B`` floats.
        obs_norm: normalize observations as the ES paper does for MuJoCo
            (:mod:`evojax_lab.policies.normalization`): running statistics of every observation
            the population acts on, kept in the carry (``TrainCarry.obs_stats``: checkpointed,
            replicated), shared by the whole population within a generation (and by its
            validation and solution rollouts), merged after it. The first generation sees raw
            observations (clipped to +-5). Metrics ``obs_mean`` / ``obs_std`` ``[G, *obs]`` and
            ``obs_count`` give the statistics after each generation; deploy the solution with
            the last ones: ``policy.apply(params, (obs - mean) / std)`` clipped to +-5.
        action_noise: std of Gaussian noise added to every action of the population's
            training rollouts (the ES paper uses 0.01 on MuJoCo); the solution is scored without
            it. 0 (default) turns it off.

    Returns:
        A :class:`Trainer`: ``train(key, hparams=None) -> TrainResult``. ``hparams`` is a dict
        of numeric overrides for ``strategy.init`` (e.g. ``{"sigma": 0.05}``); changing their
        values does not recompile, so ``jax.vmap`` over them runs a sweep in one program.
    """
    return Trainer(task, policy, strategy, generations=generations, episodes=episodes,
                   eval_episodes=eval_episodes, chunk_size=chunk_size, params=params, mesh=mesh,
                   record=record, obs_norm=obs_norm, action_noise=action_noise)
