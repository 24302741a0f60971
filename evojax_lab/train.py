"""``make_train``: a strategy and an evaluation fused into one jit-compiled run.

Every generation does the same thing, whatever the strategy (``docs/design.md``)::

    population, state = strategy.ask(ask_key, state)
    evaluation = evaluate(eval_key, population)           # or member by member (chunk_size)
    state, metrics = strategy.tell(tell_key, population, evaluation, state, evaluate=bound)
    steps += sum(evaluation.steps) + metrics.get("extra_steps", 0)

Generation ``g`` uses the keys of ``gen_key = fold_in(run_key, g)``, so a run split into blocks
(for progress bars or checkpoints) equals the same run in one call, and the same key gives the
same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
#: ``tell_key = fold_in(gen_key, TELL_KEY)``: a key derived apart from ``split(gen_key, 3)``.
TELL_KEY = 0x7E11
#: With ``chunk_size=None`` a strategy with ``member`` is evaluated member by member (bounded
#: memory) once its population would hold more than this many bytes of float32 parameters ...
AUTO_BOUNDED_BYTES = 1 << 28
#: ... this many bytes of members per device at a time (a power of two of members).
AUTO_BOUNDED_CHUNK_BYTES = 1 << 22


class TrainCarry(NamedTuple):
    """Everything a run carries between generations (what a checkpoint stores)."""

    state: Any
    key: jax.Array
    generation: jax.Array
    steps: jax.Array  # cumulative environment steps used for training (float32: no overflow)
    obs_stats: Any = None  # observation statistics (``make_train(obs_norm=True)``), else None


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What :func:`make_train` returns: pure functions over a :class:`TrainCarry`, no counters.

    ``trainer(key, hparams=None) -> TrainResult`` runs every generation in one jit. The same run
    driven in blocks (progress bars, checkpoints)::

        carry = trainer.init(key, hparams)
        carry, metrics = trainer.run(carry, 10)   # 10 generations, jitted
        result = trainer.result(carry, [metrics, ...])

    Attributes:
        task, policy, strategy, generations, mesh: the run's settings.
        init: ``init(key, hparams=None) -> TrainCarry`` (jitted).
        step: ``step(carry) -> (carry, metrics)``: one generation, pure and not jitted (compose
            it into your own loop, or run it eagerly to debug).
        run: ``run(carry, num_generations) -> (carry, metrics)`` (jitted; compiled once per
            block length).
        train: ``train(key, hparams=None) -> TrainResult``: the whole run (jitted); also
            ``trainer(key, hparams)``.
        sweep: ``sweep(key, hparams) -> TrainResult`` with ``hparams`` arrays of a leading
            sweep axis: the runs vmapped in one program (sharded), compiled once per shape.
        result: ``result(carry, metrics_blocks) -> TrainResult`` of a run driven in blocks.
        initial_params: ``initial_params(init_key) -> params``, the run's starting parameters.
    """

    task: Any
    policy: Any
    strategy: Strategy
    generations: int
    mesh: Any
    init: Callable
    step: Callable
    run: Callable
    train: Callable
    sweep: Callable
    result: Callable
    initial_params: Callable

    def __call__(self, key, hparams: dict | None = None) -> TrainResult:
        """Run every generation in one jit-compiled call."""
        return self.train(key, hparams)


def mesh_context(mesh):
    """The context that puts ``mesh`` in scope while a trainer's functions are traced.

    Outside any transformation this is ``jax.set_mesh(mesh)``. Inside someone else's ``jit`` or
    ``vmap`` no concrete mesh can be set: the run is traced sharded if the caller already set
    the same mesh around the transformation, and otherwise this raises (it never quietly runs
    unsharded).
    """
    if mesh is None:
        return contextlib.nullcontext()
    try:
        return jax.set_mesh(mesh)
    except ValueError:
        current = jax.sharding.get_abstract_mesh()
        if not current.empty and current == mesh.abstract_mesh:
            return contextlib.nullcontext()
        raise ValueError(
            f"this trainer shards the population over a {mesh.size}-device mesh, which cannot "
            "be set inside jax.jit/jax.vmap: wrap your transformation in `with "
            "jax.set_mesh(trainer.mesh):`, use trainer.sweep(...) for hyperparameters, or build "
            "the trainer with make_train(..., mesh=None) to run unsharded"
        ) from None


def _check_settings(task, generations, episodes, eval_episodes, chunk_size, record, obs_norm,
                    action_noise) -> tuple[str, ...]:
    if int(generations) < 1:
        raise ValueError(f"generations must be >= 1, got {generations}")
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if int(eval_episodes) < 0:
        raise ValueError(f"eval_episodes must be >= 0, got {eval_episodes}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    record = (record,) if isinstance(record, str) else tuple(record)
    unknown = sorted(set(record) - set(RECORDABLE))
    if unknown:
        raise ValueError(f"record: unknown field(s) {unknown}; choose from {list(RECORDABLE)}")
    if obs_norm and (isinstance(task, FunctionTask) or not hasattr(task, "observation_shape")):
        raise ValueError("obs_norm needs an environment task with observations")
    if not (float(action_noise) >= 0 and math.isfinite(float(action_noise))):
        raise ValueError(f"action_noise must be finite and >= 0, got {action_noise}")
    kind = getattr(getattr(task, "action_space", None), "kind", None)
    if action_noise and kind != "continuous":
        raise ValueError(f"action_noise needs a continuous action space; "
                         f"{getattr(task, 'name', 'this task')}'s is {kind or 'none'}")
    return record


def _initial_params_fn(task, policy, params):
    def initial_params(key):
        if callable(params):
            return params(key)
        if params is not None:
            return params
        if policy is None:
            raise ValueError("make_train needs params= when there is no policy to initialize")
        return policy.init(key, jnp.zeros(task.observation_shape, jnp.float32))

    return initial_params


def _extra_evaluate(task, policy, chunk_size, obs_stats, calls: list):
    """The ``evaluate`` passed to ``tell``: extra episodes on the run's task. The batch is padded
    with copies of its last member (their results are dropped) to a multiple of the devices with
    at least two members per device: XLA compiles a batch of one differently (other fused
    multiply-adds), which changed the last bit of CartPole's physics between a run on 1 device
    and on 2. Each call is noted in ``calls`` (a Python list, at trace time) so the trainer can
    insist on ``extra_steps``."""

    def evaluate_fn(key, population, *, episodes: int = 1, experiences: int = 0):
        calls.append(1)
        n = batch_size(population)
        devices = population_axis_size()
        pad = max(2, -(-n // devices)) * devices - n
        if pad:
            population = jax.tree.map(
                lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), population
            )
        result = evaluate(key, task, policy, constrain_population(population),
                          episodes=episodes, chunk_size=chunk_size, experiences=experiences,
                          obs_norm=obs_stats)
        return jax.tree.map(lambda x: x[:n], result)

    return evaluate_fn


def evaluation_layout(strategy: Strategy, state, chunk_size: int | None):
    """``(bounded, chunk)``: whether ``make_train`` builds the population member by member
    from ``strategy.member`` (bounded memory: no ``P x N`` array), and the members evaluated at
    once per device.

    An explicit ``chunk_size`` is kept (bounded when the strategy has ``member``). With ``None``
    a population of more than :data:`AUTO_BOUNDED_BYTES` (256 MiB) of float32 parameters is
    evaluated member by member, :data:`AUTO_BOUNDED_CHUNK_BYTES` (4 MiB) of members at a time
    (1 member at ``N = 1M``, 4 at ``N = 250k``: on a CPU each member then streams its noise and
    the mean once, 0.48 s for 1,024 members of 1M against 1.5 s at 64 members a chunk); a
    smaller one is built by ``ask`` at once and ``evaluate``
    picks its chunks (``evaluate.auto_chunk_size``). Decided from the shapes, at trace time.
    A mirrored strategy (one with ``pair``) is then built pair by pair, see
    :func:`bounded_members`.
    """
    if strategy.member is None:
        return False, chunk_size
    if chunk_size is not None:
        return True, chunk_size
    one = jax.eval_shape(strategy.member, state, 0)
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(one))
    if strategy.pop_size * num_params * 4 <= AUTO_BOUNDED_BYTES:
        return False, None
    fit = max(1, AUTO_BOUNDED_CHUNK_BYTES // (4 * num_params))
    return True, min(strategy.pop_size, 1 << (fit.bit_length() - 1))


def bounded_members(strategy: Strategy) -> tuple[Callable, int]:
    """``(member_fn, group)`` for :func:`~evojax_lab.evaluate.evaluate_members` in the bounded
    layout: ``strategy.pair`` with groups of 2 when the strategy has one (mirrored sampling), so
    each perturbation is drawn or read once for both of its members (half the noise of member
    by member); ``strategy.member`` one by one otherwise. The choice does not depend on the
    devices, so the run is the same on 1 and N of them.
    """
    if strategy.pair is not None:
        return strategy.pair, 2
    return strategy.member, 1


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
        strategy: a :class:`~evojax_lab.Strategy`. Its ``tell`` gets an ``evaluate`` for the
            extra evaluations it needs (the Deep GA's elite candidates, the NS-ES agents, the
            parents' experiences of a safe-mutation GA): episodes on this task with this
            policy and the current observation statistics, without action noise, padded to a
            multiple of the devices; their steps (``metrics["extra_steps"]``) are added to
            ``steps``.
        generations: number of generations (one ``lax.scan``).
        episodes: episodes per member per generation.
        eval_episodes: episodes on which the solution is scored after every generation
            (metric ``solution_fitness``; 0 turns it off).
        chunk_size: evaluate the population this many members at a time (per device). With a
            strategy that has ``member`` (every built-in one), members are then built chunk by
            chunk from the state ``ask`` returned and no ``P x N`` parameter array exists
            (bounded memory; ``tell`` gets ``population=None``). ``None`` (default): chosen
            from the problem size by :func:`evaluation_layout`: bounded, 4 MiB of members at a
            time, once the population would exceed 256 MiB of parameters; otherwise the
            population is built by ``ask`` and ``evaluate`` picks cache-sized chunks on CPU
            (``evaluate.auto_chunk_size``; same results as one batch).
        params: initial parameters, or a function ``params(key) -> params`` called with the
            run's init key (so ``jax.vmap(trainer)`` over seeds starts every seed from its own
            draw, e.g. ``lambda k: el.policies.reference_init(k, template)``); by default
            ``policy.init`` on a zero observation.
        mesh: ``"auto"`` (all devices, population axis sharded, state replicated), ``None``
            (no sharding), or a ``jax.sharding.Mesh`` with a ``"pop"`` axis. Inside your own
            ``jit``/``vmap`` set the same mesh around it (``with jax.set_mesh(trainer.mesh)``)
            or build with ``mesh=None``; otherwise the trainer raises.
        record: per-member results to keep for every generation, any of ``"fitness"``,
            ``"behavior"``, ``"steps"``: they appear in the metrics as ``population_fitness``
            ``[G, P]``, ``population_behavior`` ``[G, P, B]``, ``population_steps`` ``[G, P]``
            (e.g. to draw where every evaluated individual of a maze run ended). Off by
            default: it costs ``G x P x B`` floats.
        obs_norm: normalize observations as the ES paper does for MuJoCo
            (:mod:`evojax_lab.policies.normalization`): running statistics of every observation
            the population acts on, kept in the carry (``TrainCarry.obs_stats``: checkpointed,
            replicated), shared by the whole population within a generation (and by its
            extra evaluations and solution rollouts), merged after it. The first generation
            sees raw observations (clipped to +-5). Metrics ``obs_mean`` / ``obs_std``
            ``[G, *obs]`` and ``obs_count`` give the statistics after each generation; deploy the
            solution with ``TrainResult.obs_stats``.
        action_noise: std of Gaussian noise added to every action of the population's
            training rollouts (the ES paper uses 0.01 on MuJoCo); the solution is scored without
            it. 0 (default) turns it off.

    Returns:
        A :class:`Trainer`: ``train(key, hparams=None) -> TrainResult``. ``hparams`` is a dict
        of numeric overrides for ``strategy.init`` (e.g. ``{"sigma": 0.05}``); changing their
        values does not recompile, so ``trainer.sweep`` runs a sweep in one program.
    """
    record = _check_settings(task, generations, episodes, eval_episodes, chunk_size, record,
                             obs_norm, action_noise)
    generations, episodes, eval_episodes = int(generations), int(episodes), int(eval_episodes)
    chunk_size = None if chunk_size is None else int(chunk_size)
    obs_norm, action_noise = bool(obs_norm), float(action_noise)
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh, got {mesh!r}")
        mesh = make_mesh(pop_size=strategy.pop_size)
    initial_params = _initial_params_fn(task, policy, params)

    def init_carry(key, hparams):
        init_key, strategy_key, run_key = jax.random.split(key, 3)
        state = strategy.init(strategy_key, initial_params(init_key), **(hparams or {}))
        obs_stats = obs_stats_init(task.observation_shape) if obs_norm else None
        return TrainCarry(constrain_replicated(state), run_key, jnp.zeros((), jnp.int32),
                          jnp.zeros((), jnp.float32), constrain_replicated(obs_stats))

    def evaluate_population(key, population, state, obs_stats, bounded, chunk):
        options = dict(episodes=episodes, chunk_size=chunk, obs_norm=obs_stats,
                       action_noise=action_noise)
        if bounded:
            # Members rebuilt from the state chunk by chunk: no P x N array of parameters (the
            # population ask returned is unused and compiled away).
            member_fn, group = bounded_members(strategy)
            return evaluate_members(key, task, policy, member_fn, state, strategy.pop_size,
                                    group=group, **options)
        return evaluate(key, task, policy, population, **options)

    def score_solution(key, state, obs_stats):
        # A single member: not sharded (every device scores it; it is cheap).
        solution = strategy.solution(state)
        returns = jax.vmap(
            lambda k: rollout(k, task, policy, solution, obs_norm=obs_stats)[0]
        )(jax.random.split(key, eval_episodes))
        return returns.mean()

    def step(carry: TrainCarry):
        gen_key = jax.random.fold_in(carry.key, carry.generation)
        ask_key, eval_key, solution_key = jax.random.split(gen_key, 3)
        tell_key = jax.random.fold_in(gen_key, TELL_KEY)
        population, state = strategy.ask(ask_key, carry.state)
        population = constrain_population(population)
        bounded, chunk = evaluation_layout(strategy, state, chunk_size)
        evaluation = evaluate_population(eval_key, population, state, carry.obs_stats, bounded,
                                         chunk)
        calls = []
        extra = _extra_evaluate(task, policy, chunk_size, carry.obs_stats, calls)
        state, metrics = strategy.tell(tell_key, None if bounded else population, evaluation,
                                       state, evaluate=extra)
        metrics = dict(metrics)
        if calls and "extra_steps" not in metrics:
            raise ValueError(
                "strategy.tell called evaluate but reported no metrics['extra_steps'] (the "
                "environment steps of its extra evaluations, counted in the run's budget)"
            )
        state = constrain_replicated(state)
        steps = (carry.steps + jnp.sum(evaluation.steps).astype(jnp.float32)
                 + metrics.get("extra_steps", 0.0))
        obs_stats = carry.obs_stats
        if obs_norm:
            # The generation's observations join the statistics the next generation uses.
            obs_stats = constrain_replicated(
                obs_stats_merge(obs_stats, obs_stats_reduce(evaluation.obs_stats))
            )
            metrics["obs_mean"], metrics["obs_std"] = obs_stats_mean_std(obs_stats)
            metrics["obs_count"] = obs_stats.count
        if eval_episodes:
            metrics["solution_fitness"] = score_solution(solution_key, state, obs_stats)
        for name in record:
            metrics[RECORDABLE[name]] = getattr(evaluation, name)
        metrics["steps"] = steps
        metrics["generation"] = carry.generation + 1
        return TrainCarry(state, carry.key, carry.generation + 1, steps, obs_stats), metrics

    def run_generations(carry, num_generations):
        return jax.lax.scan(lambda c, _: step(c), carry, None, length=num_generations)

    def result(carry: TrainCarry, metrics_blocks: list[dict]) -> TrainResult:
        metrics = jax.tree.map(lambda *xs: jnp.concatenate(xs), *metrics_blocks)
        return TrainResult(carry.state, metrics, strategy.solution(carry.state),
                           carry.obs_stats)

    def train_run(key, hparams):
        carry = init_carry(key, hparams)
        # The barrier keeps XLA from specializing the first generations on the known initial
        # state (zero optimizer moments, ...), so one call equals the same run in blocks
        # (``init`` + ``run``) bit for bit.
        carry = jax.lax.optimization_barrier(carry)
        carry, metrics = run_generations(carry, generations)
        return TrainResult(carry.state, metrics, strategy.solution(carry.state),
                           carry.obs_stats)

    jit_init = jax.jit(init_carry)
    jit_run = jax.jit(run_generations, static_argnums=1)
    jit_train = jax.jit(train_run)
    jit_sweep = jax.jit(jax.vmap(train_run, in_axes=(None, 0)))

    def in_mesh(fn):
        def call(*args):
            with mesh_context(mesh):
                return fn(*args)

        return call

    def run(carry, num_generations):
        with mesh_context(mesh):
            return jit_run(carry, int(num_generations))

    return Trainer(
        task=task, policy=policy, strategy=strategy, generations=generations, mesh=mesh,
        init=lambda key, hparams=None: in_mesh(jit_init)(key, hparams),
        step=step,
        run=run,
        train=lambda key, hparams=None: in_mesh(jit_train)(key, hparams),
        sweep=in_mesh(jit_sweep),
        result=result,
        initial_params=initial_params,
    )
