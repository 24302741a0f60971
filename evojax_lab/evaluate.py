"""Rollouts over a population: vmap over members and episodes, a done-masked loop over steps.

Episodes never auto-reset: a member's loop stops counting at ``done``, and its behavior
descriptor is the one of its state at ``done`` (or at the cutoff). Nothing per step is stored; a
rollout returns its return, its length and the behavior.

What a member does at each step is an :class:`~evojax_lab.policies.Actor`: its policy, wrapped
only in what the evaluation asks for (observation normalization, action noise, recording
experiences; :mod:`evojax_lab.policies.actors`). The loop carries the actor's own carry and
nothing else, and the actor's per-episode outputs become ``Evaluation.obs_stats`` and
``Evaluation.experiences``.

Devices: when a mesh with a ``"pop"`` axis is in context (``jax.set_mesh``; the trainer does
this), members are split over its devices with ``jax.shard_map``: each device runs the rollouts of
its own members (and its own done-masked loop), and the results come back sharded along the
population axis. ``chunk_size`` then bounds the members evaluated at once on each device.

Chunks on CPU: a vmapped rollout re-reads every member's parameters at every step, so on a CPU
the whole population's parameters (``P x N`` floats) stream from memory once per step unless
the members of one batch fit in cache. With ``chunk_size=None`` an environment task is therefore
evaluated :func:`auto_chunk_size` members per device at a time on CPU backends (about 1 MiB of
parameters per chunk, at least four members; about 1.6x the throughput of one batch on CartPole
with a 4-32-32-2 MLP and P = 2,048, see ``benchmarks/scaling.py``). A chunk's loop stops as soon
as its own members are done, so small chunks also waste fewer masked steps on members that
finished before the chunk's longest episode: this is what large networks gain most from (see
:func:`auto_chunk_size`, ``benchmarks/rollout_ceiling.py``). Results are identical to the
unchunked evaluation; on GPU/TPU the whole population runs at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from evojax_lab.core.sharding import POP_AXIS, population_axis_size
from evojax_lab.core.tree import batch_size
from evojax_lab.core.types import Evaluation
from evojax_lab.policies.actors import Actor, actor_for
from evojax_lab.policies.normalization import obs_stats_reduce
from evojax_lab.tasks.base import FunctionTask


def rollout(key: jax.Array, task, policy, params, *, max_steps: int | None = None,
            obs_norm=None, action_noise: float = 0.0):
    """One episode of ``policy`` with ``params`` on ``task``.

    Args:
        policy: a flax module, an ``apply(params, obs)`` callable, or an
            :class:`~evojax_lab.policies.Actor` (a policy with wrappers).
        obs_norm: optional :class:`~evojax_lab.policies.ObsStats`: the policy then acts on
            ``normalize_obs(obs_norm, obs)`` (see :mod:`evojax_lab.policies.normalization`).
        action_noise: standard deviation of Gaussian noise added to every (continuous) action
            (the ES paper's 0.01 for MuJoCo training rollouts); 0 turns it off.

    Returns:
        ``(episode_return, length, behavior)``. The loop runs until ``done`` or the cutoff
        (``max_steps``, default ``task.max_steps``); under vmap it runs until every member is
        done, finished members frozen by the loop's own mask.
    """
    actor = _actor(task, policy, obs_norm=obs_norm, action_noise=action_noise)
    ret, t, behavior, _ = _episode(key, task, actor, params, max_steps)
    return ret, t, behavior


def _actor(task, policy, *, obs_norm=None, experiences: int = 0, action_noise: float = 0.0):
    """The :class:`~evojax_lab.policies.Actor` of an evaluation's options (a function task has
    no observations: only the defaults apply)."""
    if isinstance(task, FunctionTask):
        if experiences:
            raise ValueError(
                "experiences: a function task has no observations to record; give the safe "
                "mutation fixed inputs instead"
            )
        if obs_norm is not None:
            raise ValueError("obs_norm: a function task has no observations to normalize")
        return None
    continuous = task.action_space.kind == "continuous"
    return actor_for(policy, obs_norm=obs_norm, experiences=int(experiences or 0),
                     action_noise=action_noise, continuous=continuous)


def _episode(key, task, actor: Actor | None, params, max_steps=None):
    """One episode: ``(return, length, behavior, outputs)`` with ``outputs`` the actor's
    per-episode dict (``{}`` for a plain policy or a function task)."""
    if actor is None:  # a function task: one evaluation of fn, "one step"
        return _function_value(key, task, params)
    max_steps = task.max_steps if max_steps is None else int(max_steps)
    carry = jax.lax.while_loop(
        lambda c: _running(c, max_steps), lambda c: _step(task, actor, params, c),
        _start(key, task, actor),
    )
    return _end(task, actor, carry)


def _function_value(key, task, params):
    out = task.fn(key, params)
    fitness, behavior = out if isinstance(out, tuple) else (out, jnp.zeros((0,)))
    return jnp.asarray(fitness, jnp.float32).reshape(()), jnp.ones((), jnp.int32), behavior, {}


# An episode's loop carry: (t, obs, env_state, done, return, key, actor carry).
def _start(key, task, actor: Actor):
    key, reset_key = jax.random.split(key)
    obs, state = task.reset(reset_key)
    return (jnp.zeros((), jnp.int32), obs, state, jnp.zeros((), bool), jnp.zeros(()), key,
            actor.start(obs, reset_key))


def _running(carry, max_steps: int):
    """Whether the episode(s) of ``carry`` take another step (elementwise when batched)."""
    t, done = carry[0], carry[3]
    return jnp.logical_and(t < max_steps, jnp.logical_not(done))


def _step(task, actor: Actor, params, carry):
    t, obs, state, _, ret, key, acting = carry
    key, step_key = jax.random.split(key)
    action, acting, key = actor.act(params, obs, acting, t, key)
    obs, state, reward, done = task.step(step_key, state, action)
    return t + 1, obs, state, done, ret + reward, key, acting


def _end(task, actor: Actor, carry):
    t, obs, state, _, ret, _, acting = carry
    return ret, t, task.behavior(obs, state), actor.finish(acting, t)


def _episodes(keys, task, actor: Actor | None, params, max_steps=None):
    """Episodes of a batch of members: ``keys [M, E]``, ``params`` with a leading axis ``M``;
    returns :func:`_episode`'s results with leading axes ``[M, E]``.

    The loop is batched by hand: one ``while_loop`` whose body is the single-member step
    vmapped over members and episodes (tracing the body once, not once per batching pass:
    tracing a CartPole train ~0.43 s before, ~0.33 s after, ``benchmarks/RESULTS.md``), run
    until no episode is running. An episode that is no longer running keeps its return,
    length, done flag and actor carry (each frozen by ``where``), and its behavior is the one
    of its last running step (carried alongside, also by ``where``); its environment is still
    stepped with the batch, and what that computes is never read. So the results equal
    :func:`_episode`'s for each member bit for bit, and the environment's state is not copied
    and selected at every step (Breakout-MinAtar's CNN in chunks of 4 and CartPole-v1: ~2%
    faster, measured while writing this). When nothing reads the behavior, XLA drops its
    carry.
    """
    both = lambda f: jax.vmap(jax.vmap(f))  # noqa: E731
    if actor is None:
        return jax.vmap(lambda p, ks: jax.vmap(lambda k: _function_value(k, task, p))(ks))(
            params, keys)
    max_steps = task.max_steps if max_steps is None else int(max_steps)

    def body(carry_behavior):
        carry, behavior = carry_behavior
        running = _running(carry, max_steps)

        def keep(new, old):  # the new value where the episode was running
            return jnp.where(running.reshape(running.shape + (1,) * (new.ndim - 2)), new, old)

        t, obs, state, done, ret, key, acting = jax.vmap(
            lambda p, c: jax.vmap(lambda e: _step(task, actor, p, e))(c))(params, carry)
        carry = (keep(t, carry[0]), obs, state, keep(done, carry[3]), keep(ret, carry[4]), key,
                 jax.tree.map(keep, acting, carry[6]))
        return carry, keep(both(task.behavior)(obs, state), behavior)

    carry = both(lambda k: _start(k, task, actor))(keys)
    carry, behavior = jax.lax.while_loop(
        lambda c: jnp.any(_running(c[0], max_steps)), body,
        (carry, both(task.behavior)(carry[1], carry[2])),
    )
    t, _, _, _, ret, _, acting = carry
    return ret, t, behavior, both(actor.finish)(acting, t)


def _map_chunks(fn, xs, chunk: int):
    """``fn`` over ``xs`` (leading axis ``n``) ``chunk`` members at a time, in order: a
    ``lax.map`` over ``n // chunk`` chunks, then the remaining members in one call (what
    ``lax.map(..., batch_size=chunk)`` does for a function of one member)."""
    n = batch_size(xs)
    count, full = n // chunk, n // chunk * chunk
    head = jax.tree.map(lambda x: x[:full].reshape(count, chunk, *x.shape[1:]), xs)
    ys = jax.tree.map(lambda y: y.reshape(full, *y.shape[2:]), jax.lax.map(fn, head))
    if full == n:
        return ys
    tail = fn(jax.tree.map(lambda x: x[full:], xs))
    return jax.tree.map(lambda y, z: jnp.concatenate([y, z]), ys, tail)


def _episode_keys(key, pop_size, episodes, common_random_numbers):
    if common_random_numbers:
        return jnp.broadcast_to(
            jax.random.split(key, episodes)[None], (pop_size, episodes, *key.shape)
        )
    return jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i), episodes))(
        jnp.arange(pop_size)
    )


#: Parameter bytes per chunk that :func:`auto_chunk_size` aims at (about an L2 cache).
AUTO_CHUNK_BYTES = 1 << 20
#: Bounds of :func:`auto_chunk_size` (members per device).
AUTO_CHUNK_MIN, AUTO_CHUNK_MAX = 4, 256


def auto_chunk_size(num_params: int, backend: str | None = None) -> int | None:
    """Members per device evaluated at once when ``chunk_size=None``.

    On CPU: the largest power of two whose members' float32 parameters fit in
    :data:`AUTO_CHUNK_BYTES`, clamped to [:data:`AUTO_CHUNK_MIN`, :data:`AUTO_CHUNK_MAX`]
    (128 for the 1,282 parameters of a 4-32-32-2 MLP, 4 for the 132,179 of the MinAtar CNN on
    Breakout). ``None`` (everything at once) on other backends.

    Large networks get small chunks: the loop of a chunk runs until its longest episode ends,
    stepping (and masking) the members already done, and next to a large network's compute the
    per-step overhead that bigger chunks spread is small. On Breakout-MinAtar with the MinAtar
    CNN (P = 2,048, episodes of 6 to 16 steps) a chunk of 8 executes 1.42 steps per step
    taken, a chunk of 4 1.20, a chunk of 2 1.07 (``benchmarks/RESULTS.md``, rollout ceiling),
    yet 4 is the fastest chunk of at least 2 on both machines measured: the hand-written
    ceiling 3% above 2 on a 2-core Intel Xeon, 0.5-10% above it in two runs on a 2-core AMD EPYC,
    and ``el.evaluate`` itself 1.01-1.11x faster at 4 than at 2 there (six interleaved calls).
    The lower bound is not 1: XLA compiles a batch of one
    member differently, and its floats can differ from one batch's in the last bit, while
    larger chunks keep one batch's numbers (``tests/test_evaluate.py``). Chunks of one are
    faster still on the MinAtar CNN on some CPUs (``benchmarks/rollout_ceiling.py``, Intel
    Xeon): pass ``chunk_size=1``.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return None
    fit = max(1, AUTO_CHUNK_BYTES // (4 * max(int(num_params), 1)))
    return int(min(AUTO_CHUNK_MAX, max(AUTO_CHUNK_MIN, 2 ** int(math.log2(fit)))))


def _evaluate(key, task, policy, members, get_params, context, pop_size, *, episodes,
              chunk_size, common_random_numbers, max_steps, experiences=0, obs_norm=None,
              action_noise=0.0, group=1) -> Evaluation:
    """Every evaluation. ``get_params(context, m)`` gives the parameters of ``members[m]``'s
    member, or with ``group = G > 1`` of the ``G`` members ``m + g P/G`` (a leading axis ``G``):
    the work then runs over the ``P/G`` groups, chunks and shards hold whole groups (padded
    with copies of the last to a multiple of the devices), and the results are put back in
    population order."""
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if chunk_size is None and not isinstance(task, FunctionTask):
        # An environment loop re-reads the parameters every step: keep a chunk's in cache.
        one = jax.eval_shape(get_params, context, jax.tree.map(lambda x: x[0], members))
        chunk_size = auto_chunk_size(sum(x.size for x in jax.tree.leaves(one)) // group)
    experiences = int(experiences or 0)
    if experiences < 0:
        raise ValueError(f"experiences must be >= 0, got {experiences}")
    _actor(task, policy, obs_norm=obs_norm, experiences=experiences,
           action_noise=action_noise)  # bad options raise here, before any tracing
    keys = _episode_keys(key, pop_size, int(episodes), common_random_numbers)
    if group > 1:  # member m + g P/G of group m keeps its own keys: [P/G, G, episodes, ...]
        keys = jnp.moveaxis(keys.reshape(group, pop_size // group, *keys.shape[1:]), 0, 1)
        chunk_size = None if chunk_size is None else max(1, int(chunk_size) // group)

    def members_batch(context, members, keys):
        context, norm = context  # the normalization statistics travel replicated with it
        params = jax.vmap(lambda m: get_params(context, m))(members)
        if group > 1:  # [c] groups -> [c x G] members (the results go back to [c, G, ...])
            params, keys = jax.tree.map(  # explicit sizes: a leaf may have a zero axis
                lambda x: x.reshape(x.shape[0] * group, *x.shape[2:]), (params, keys))
        actor = _actor(task, policy, obs_norm=norm, experiences=experiences,
                       action_noise=action_noise)
        ret, length, behavior, outputs = _episodes(keys, task, actor, params, max_steps)
        per_member = {}  # the last episode's experiences; statistics over all episodes
        if "experiences" in outputs:
            per_member["experiences"] = outputs["experiences"][:, -1]
        if "obs_stats" in outputs:
            per_member["obs_stats"] = jax.vmap(obs_stats_reduce)(outputs["obs_stats"])
        results = ret.mean(axis=1), length.sum(axis=1), behavior[:, -1], per_member
        if group > 1:
            results = jax.tree.map(
                lambda y: y.reshape(y.shape[0] // group, group, *y.shape[1:]), results)
        return results

    def run(context, members, keys):
        local = keys.shape[0]
        batch = lambda a: members_batch(context, *a)  # noqa: E731
        if chunk_size is None or int(chunk_size) >= local:
            return batch((members, keys))
        if int(chunk_size) == 1:
            # A batch of one made inside the loop: chunks of one from a [P, 1, ...] reshape
            # would make XLA:CPU lay the whole population out anew by copying it (half the
            # throughput of chunks of 2 on Breakout-MinAtar's CNN, measured while writing
            # this).
            def single(a):
                return jax.tree.map(lambda y: y[0], batch(jax.tree.map(lambda x: x[None], a)))

            return jax.lax.map(single, (members, keys))
        return _map_chunks(batch, (members, keys), int(chunk_size))

    devices = population_axis_size()
    groups = pop_size // group
    pad = -groups % devices if group > 1 else 0  # groups padded with copies, their results dropped
    if devices > 1:
        if group == 1 and pop_size % devices:
            raise ValueError(
                f"population size {pop_size} is not divisible by the {devices} devices of the "
                "mesh's 'pop' axis; choose a multiple or a smaller mesh"
            )
        if pad:
            members, keys = jax.tree.map(
                lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), (members, keys))
        pop = PartitionSpec(POP_AXIS)
        run = jax.shard_map(
            run, in_specs=(PartitionSpec(), pop, pop), out_specs=pop, check_vma=False
        )
    results = run((context, obs_norm), members, keys)
    if group > 1:  # [P/G (+ pad), G, ...] -> population order [P, ...]
        results = jax.tree.map(
            lambda y: jnp.moveaxis(y[:groups], 1, 0).reshape(pop_size, *y.shape[2:]), results)
    fitness, steps, behavior, outputs = results
    return Evaluation(fitness=fitness, behavior=behavior, steps=steps,
                      experiences=outputs.get("experiences"), obs_stats=outputs.get("obs_stats"))


def evaluate(
    key: jax.Array,
    task,
    policy,
    population,
    *,
    episodes: int = 1,
    chunk_size: int | None = None,
    common_random_numbers: bool = True,
    max_steps: int | None = None,
    experiences: int = 0,
    obs_norm=None,
    action_noise: float = 0.0,
) -> Evaluation:
    """Evaluate every member of ``population`` (a params pytree with a leading axis).

    Args:
        key: PRNG key.
        task: a :class:`~evojax_lab.tasks.Task` (or a function task, ``el.tasks.function``).
        policy: a flax module whose ``apply(params, obs)`` returns an action (``None`` for a
            function task).
        population: parameter pytree with leading population axis ``P``.
        episodes: episodes per member; fitness is their mean return.
        chunk_size: if set, members are evaluated ``chunk_size`` at a time per device
            (``lax.map``), so rollout memory is bounded by the chunk, not by ``P``. Results equal
            the unchunked ones (with ``chunk_size=1`` up to the last bit of floats: XLA compiles
            a batch of one member differently). ``None``: :func:`auto_chunk_size` on CPU for
            environment tasks (cache-sized chunks, see the module docstring), everything at once
            otherwise; pass ``chunk_size=P`` to force a single batch.
        common_random_numbers: all members see the same episode keys (same starting states),
            which lowers the variance of comparisons between members. If False each member gets
            its own keys ``fold_in(key, member)``.
        max_steps: episode cutoff (default ``task.max_steps``).
        experiences: if ``K > 0``, each member also returns ``K`` of the observations its
            policy saw in its last episode, a uniform sample without replacement (reservoir
            sampling, its own key: fitness is unchanged); an episode shorter than ``K`` repeats
            its observations cyclically. The safe mutations of the Deep GA use them as the
            parent's experiences. Memory ``P x K x observation size``.
        obs_norm: optional :class:`~evojax_lab.policies.ObsStats` shared by every member:
            policies act on ``normalize_obs(obs_norm, obs)`` and each member also returns the
            statistics of the raw observations it acted on (``Evaluation.obs_stats``).
        action_noise: std of Gaussian noise added to continuous actions (0: off).

    Returns:
        :class:`~evojax_lab.Evaluation` with ``fitness [P]``, ``behavior [P, B]`` (last
        episode), ``steps [P]`` (environment steps actually taken), with ``experiences=K``,
        ``experiences [P, K, *observation_shape]`` and, with ``obs_norm``, ``obs_stats``
        (count ``[P]``, mean and m2 ``[P, *observation_shape]``).
    """
    return _evaluate(
        key, task, policy, population, lambda _, params: params, None, batch_size(population),
        episodes=episodes, chunk_size=chunk_size,
        common_random_numbers=common_random_numbers, max_steps=max_steps,
        experiences=experiences, obs_norm=obs_norm, action_noise=action_noise,
    )


def evaluate_members(
    key: jax.Array,
    task,
    policy,
    member_fn: Callable[[Any, jax.Array], Any],
    context: Any,
    pop_size: int,
    *,
    episodes: int = 1,
    chunk_size: int | None = None,
    common_random_numbers: bool = True,
    max_steps: int | None = None,
    experiences: int = 0,
    obs_norm=None,
    action_noise: float = 0.0,
    group: int = 1,
) -> Evaluation:
    """Like :func:`evaluate`, but member ``i``'s parameters are built on the fly as
    ``member_fn(context, i)`` — with ``chunk_size`` no ``P x N`` array of parameters ever exists.

    ``context`` is a pytree (e.g. the strategy state and the ask key) replicated to every device.
    ``group = G > 1``: ``member_fn(context, j)`` builds ``G`` members at once (a leading axis
    ``G``), members ``j, j + P/G, ..., j + (G-1) P/G`` for ``j < P/G`` (a strategy's ``pair``:
    a mirrored pair from one read of its noise). ``chunk_size`` still counts members (rounded
    down to whole groups, at least one); each member keeps its own episode keys and the results
    are in population order, as member by member. Over several devices the groups are padded
    with copies of the last group to a multiple of the devices (their results are dropped), so
    any ``P/G`` gives the same numbers on 1 and N devices.
    """
    group = int(group)
    if group < 1 or int(pop_size) % group:
        raise ValueError(f"group must be a positive divisor of pop_size {pop_size}, got {group}")
    return _evaluate(
        key, task, policy, jnp.arange(int(pop_size) // group), member_fn, context,
        int(pop_size), episodes=episodes, chunk_size=chunk_size,
        common_random_numbers=common_random_numbers, max_steps=max_steps,
        experiences=experiences, obs_norm=obs_norm, action_noise=action_noise, group=group,
    )
