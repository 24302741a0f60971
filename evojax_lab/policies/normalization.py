"""Observation normalization (OpenAI-ES, REFERENCE §1) and virtual batch norm (VBN).

Observation normalization
-------------------------
The ES paper normalizes MuJoCo observations with running statistics of every observation seen in
rollouts: ``(obs - mean) / std``, ``std`` floored (variance floor ``1e-2``), the result clipped
to ``+-5``. The statistics are shared by the whole population within a generation and updated
between generations.

Here the statistics are an :class:`ObsStats` — a count, a mean and ``m2`` (the sum of squared
deviations from the mean), per observation element — so they can be merged exactly in any order
(Welford's update for one observation, the pairwise merge of Chan, Golub & LeVeque for two
sets; :func:`obs_stats_update`, :func:`obs_stats_merge`). A rollout folds each observation its
policy acts on into its own statistics with Welford's update (numerically stable in float32,
unlike sums of squares); a generation's rollouts are merged (:func:`obs_stats_reduce`) and the
result is merged into the run's statistics after the generation. With ``count == 0`` (the first
generation) :func:`normalize_obs` uses mean 0 and variance 1 (only the clip applies), as the
paper's ``RunningStat`` does with its tiny initial count. Use it with
``make_train(..., obs_norm=True)``: the statistics live in the train carry (``carry.obs_stats``,
checkpointed and replicated like the strategy state) and each generation's are reported in the
metrics as ``obs_mean`` / ``obs_std`` (the last row is what to deploy the solution with:
``policy.apply(params, normalize_obs(stats, obs))``).

Differences from the paper: every observation of every training rollout is counted (the paper
records those of a random 1% of rollouts); NS-ES's agents share one set of statistics instead of
one each; observations of the solution's scoring and of validation episodes are not counted.

Virtual batch norm
------------------
VBN (Salimans et al. 2016, used by the ES paper's Atari policy) normalizes a layer's
pre-activations with the mean and variance they have on a fixed *reference batch* of
observations (collected once with random actions: :func:`reference_batch`), pushed through the
same network; the statistics therefore depend on the parameters (every ES perturbation or GA
mutant gets its own) but never on the batch being evaluated, so a policy stays deterministic and
a single observation can be evaluated. :class:`VirtualBatchNorm` is the layer and
:class:`VBNMLP` an MLP with VBN before each hidden activation. The reference batch is a
:class:`ReferenceBatch` (a hashable NumPy holder), a static part of the module, not a
parameter: ES and GA never perturb it. The reference pass does not depend on the observation,
so inside a rollout's loop XLA hoists it out (checked in the compiled HLO of a CartPole rollout
with ``R = 128``: the loop body carries only the per-layer statistics): an episode costs one
reference pass, not one per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.policies.cnn import _head

#: The ES paper's variance floor and clip of normalized observations (REFERENCE §1).
VAR_FLOOR = 1e-2
CLIP = 5.0


class ObsStats(NamedTuple):
    """Running observation statistics (any leading batch axes allowed on all three fields).

    Attributes:
        count: number of observations (float32).
        mean: their element-wise mean, shape ``observation_shape``.
        m2: element-wise sum of squared deviations from ``mean`` (variance = ``m2 / count``).
    """

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def obs_stats_init(observation_shape: Sequence[int]) -> ObsStats:
    """Empty statistics (count 0) for observations of ``observation_shape``."""
    shape = tuple(int(s) for s in observation_shape)
    return ObsStats(
        jnp.zeros((), jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)
    )


def obs_stats_update(stats: ObsStats, obs) -> ObsStats:
    """Welford's update with one observation."""
    x = jnp.asarray(obs, jnp.float32).reshape(stats.mean.shape)
    count = stats.count + 1.0
    delta = x - stats.mean
    mean = stats.mean + delta / count
    return ObsStats(count, mean, stats.m2 + delta * (x - mean))


def obs_stats_merge(a: ObsStats, b: ObsStats) -> ObsStats:
    """Statistics of the union of two sets (Chan et al.'s pairwise merge); empty sets are
    neutral."""
    count = a.count + b.count
    safe = jnp.maximum(count, 1.0)
    delta = b.mean - a.mean
    wb = jnp.where(count > 0, b.count / safe, 0.0)
    mean = a.mean + delta * _expand(wb, delta)
    m2 = a.m2 + b.m2 + delta**2 * _expand(a.count * wb, delta)
    return ObsStats(count, mean, m2)


def obs_stats_reduce(stats: ObsStats) -> ObsStats:
    """Merge statistics stacked along a leading axis of every field (e.g. one per member).

    Exact multi-set merge: ``n = sum(n_i)``, ``mean = sum(n_i mean_i) / n``,
    ``m2 = sum(m2_i) + sum(n_i (mean_i - mean)^2)``.
    """
    count = jnp.sum(stats.count, axis=0)
    n = _expand(stats.count, stats.mean)
    mean = jnp.sum(n * stats.mean, axis=0) / _expand(jnp.maximum(count, 1.0), stats.mean[0])
    m2 = jnp.sum(stats.m2, axis=0) + jnp.sum(n * (stats.mean - mean[None]) ** 2, axis=0)
    return ObsStats(count, mean, m2)


def _expand(scalar, like):
    """Broadcast a per-set quantity (``[...]``) against per-element ones (``[..., *obs]``)."""
    scalar = jnp.asarray(scalar)
    return scalar.reshape(scalar.shape + (1,) * (jnp.ndim(like) - scalar.ndim))


def obs_stats_mean_std(stats: ObsStats, *, var_floor: float = VAR_FLOOR):
    """``(mean, std)`` used to normalize: population variance ``m2 / count`` floored at
    ``var_floor``; with no observations yet, mean 0 and std 1."""
    empty = stats.count <= 0
    var = stats.m2 / jnp.maximum(stats.count, 1.0)
    var = jnp.where(_expand(empty, var), 1.0, jnp.maximum(var, var_floor))
    mean = jnp.where(_expand(empty, stats.mean), 0.0, stats.mean)
    return mean, jnp.sqrt(var)


def normalize_obs(stats: ObsStats, obs, *, clip: float = CLIP,
                  var_floor: float = VAR_FLOOR) -> jax.Array:
    """``clip((obs - mean) / std, -clip, clip)`` with :func:`obs_stats_mean_std`."""
    mean, std = obs_stats_mean_std(stats, var_floor=var_floor)
    x = jnp.asarray(obs, jnp.float32).reshape(mean.shape)
    return jnp.clip((x - mean) / std, -clip, clip)


# -- virtual batch norm ----------------------------------------------------------------------


class ReferenceBatch:
    """A fixed reference batch ``[R, *observation_shape]`` (float32 NumPy), hashable by content
    so a module holding it stays a valid static value."""

    def __init__(self, array):
        self.array = np.ascontiguousarray(np.asarray(array, np.float32))
        if self.array.ndim < 1 or self.array.shape[0] < 2:
            raise ValueError(
                f"a reference batch needs at least 2 observations, got shape {self.array.shape}"
            )
        if not np.all(np.isfinite(self.array)):
            raise ValueError("the reference batch has non-finite observations")
        self._hash = hash((self.array.shape, self.array.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (isinstance(other, ReferenceBatch) and self.array.shape == other.array.shape
                and bool(np.array_equal(self.array, other.array)))

    def __len__(self):
        return int(self.array.shape[0])

    def __repr__(self):
        return f"ReferenceBatch(shape={self.array.shape})"


def reference_batch(key: jax.Array, task, size: int = 128, *, stride: int = 10) -> ReferenceBatch:
    """Observations from episodes of uniformly random actions: every ``stride``-th of
    ``size * stride`` steps (a new episode starts whenever one ends), the ES paper's fixed VBN
    reference batch (``size = 128``).

    Args:
        key: PRNG key.
        task: a :class:`~evojax_lab.tasks.Task` (discrete or continuous actions).
        size: ``R``, observations in the batch (>= 2).
        stride: steps between two kept observations (>= 1).
    """
    size, stride = int(size), int(stride)
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    space = task.action_space

    def random_action(key):
        if space.kind == "discrete":
            return jax.random.randint(key, (), 0, int(space.n))
        if space.kind == "continuous":
            low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
            high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
            return jax.random.uniform(key, tuple(space.shape), jnp.float32, low, high)
        raise ValueError(f"unsupported action space kind {space.kind!r}")

    def collect(key):
        key, reset_key = jax.random.split(key)
        obs, state = task.reset(reset_key)

        def body(carry, step_key):
            obs, state = carry
            act_key, env_key, reset_key = jax.random.split(step_key, 3)
            seen = obs
            next_obs, next_state, _, done = task.step(env_key, state, random_action(act_key))
            fresh_obs, fresh_state = task.reset(reset_key)
            obs, state = jax.tree.map(
                lambda a, b: jnp.where(done, a, b), (fresh_obs, fresh_state),
                (next_obs, next_state),
            )
            return (obs, state), jnp.asarray(seen, jnp.float32)

        _, seen = jax.lax.scan(body, (obs, state), jax.random.split(key, size * stride))
        return seen[::stride]

    return ReferenceBatch(jax.jit(collect)(key))


class VirtualBatchNorm(nn.Module):
    """Normalize features with the statistics of the reference batch's features.

    ``__call__(x, reference) -> (x_hat, reference_hat)``: ``x [..., F]`` and ``reference
    [R, F]`` are normalized with the mean and variance of ``reference`` over its ``R`` rows, then
    scaled and shifted by the learned ``scale`` (init 1) and ``bias`` (init 0). The normalized
    reference is returned so the next layer can compute its own statistics.
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, reference):
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        mean = jnp.mean(reference, axis=0)
        var = jnp.var(reference, axis=0)
        inv = jax.lax.rsqrt(var + self.epsilon) * scale

        def norm(z):
            return (z - mean) * inv + bias

        return norm(x), norm(reference)


_ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu}


class VBNMLP(nn.Module):
    """An MLP policy with virtual batch norm before every hidden activation.

    Each hidden layer is ``act(VBN(Dense(x)))`` where the VBN statistics come from the
    reference batch pushed through the same layers. The output layer (named ``"output"``) has
    no VBN; heads as :class:`~evojax_lab.policies.MLP` (``"discrete"``: argmax,
    ``"continuous"``: tanh rescaled to ``[low, high]``, ``"linear"``).

    Attributes:
        action_dim: discrete actions, or size of a continuous action.
        reference: the :class:`ReferenceBatch` (see :func:`reference_batch`).
        hidden, activation, head, low, high, action_shape: as for ``MLP``.
    """

    action_dim: int
    reference: ReferenceBatch
    hidden: Sequence[int] = (32, 32)
    activation: str = "tanh"
    head: str = "discrete"
    low: Any = -1.0
    high: Any = 1.0
    action_shape: tuple | None = None

    @nn.compact
    def __call__(self, obs):
        if not isinstance(self.reference, ReferenceBatch):
            raise TypeError("reference must be a ReferenceBatch (see reference_batch)")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose from {sorted(_ACTIVATIONS)}"
            )
        act = _ACTIVATIONS[self.activation]
        ref = jnp.asarray(self.reference.array)
        ref = ref.reshape(ref.shape[0], -1)
        x = jnp.ravel(jnp.asarray(obs, jnp.float32))
        if x.shape[0] != ref.shape[1]:
            raise ValueError(
                f"observation size {x.shape[0]} does not match the reference batch's "
                f"{ref.shape[1]}"
            )
        for width in self.hidden:
            dense = nn.Dense(width)
            x, ref = VirtualBatchNorm()(dense(x), dense(ref))
            x, ref = act(x), act(ref)
        x = nn.Dense(self.action_dim, name="output")(x)
        y = _head(x, self.head, self.low, self.high)
        if self.head == "continuous" and self.action_shape is not None:
            return y.reshape(tuple(self.action_shape))
        return y


def vbn_for_task(task, reference: ReferenceBatch, hidden: Sequence[int] = (32, 32),
                 activation: str = "tanh") -> VBNMLP:
    """A :class:`VBNMLP` whose head matches ``task.action_space`` (like ``for_task``)."""
    space = task.action_space
    if space.kind == "discrete":
        return VBNMLP(action_dim=int(space.n), reference=reference, hidden=tuple(hidden),
                      activation=activation)
    if space.kind == "continuous":
        shape = tuple(space.shape)
        return VBNMLP(
            action_dim=int(np.prod(shape)) if shape else 1,
            reference=reference,
            hidden=tuple(hidden),
            activation=activation,
            head="continuous",
            low=tuple(np.ravel(space.low).tolist()),
            high=tuple(np.ravel(space.high).tolist()),
            action_shape=shape,
        )
    raise ValueError(f"unsupported action space kind {space.kind!r}")
