"""A flax MLP policy with a discrete (argmax) or continuous (tanh, rescaled) head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.policies.cnn import MinAtarCNN, NatureCNN, _head

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu}


class MLP(nn.Module):
    """Multi-layer perceptron policy.

    Attributes:
        action_dim: number of discrete actions, or size of a continuous action.
        hidden: hidden layer widths.
        activation: "tanh", "relu", "gelu" or "elu".
        head: "discrete" (argmax over ``action_dim`` logits), "continuous" (tanh squashed into
            ``[low, high]``) or "linear" (raw outputs).
        low, high: continuous action bounds (scalars or tuples), used by the continuous head.
        action_shape: shape of a continuous action (defaults to ``(action_dim,)``).
    """

    action_dim: int
    hidden: Sequence[int] = (32, 32)
    activation: str = "tanh"
    head: str = "discrete"
    low: Any = -1.0
    high: Any = 1.0
    action_shape: tuple | None = None

    @nn.compact
    def __call__(self, obs):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose from {sorted(_ACTIVATIONS)}"
            )
        act = _ACTIVATIONS[self.activation]
        x = jnp.ravel(jnp.asarray(obs, jnp.float32))
        for width in self.hidden:
            x = act(nn.Dense(width)(x))
        x = nn.Dense(self.action_dim)(x)
        y = _head(x, self.head, self.low, self.high)
        if self.head == "continuous" and self.action_shape is not None:
            return y.reshape(tuple(self.action_shape))
        return y


def for_task(task, hidden: Sequence[int] = (32, 32), activation: str = "tanh") -> nn.Module:
    """A policy whose head matches ``task.action_space``.

    Image observations (``[H, W, C]``) get a CNN (``hidden`` and ``activation`` do not apply
    to it): small frames (MinAtar's ``[10, 10, C]``, below 36 pixels a side) a
    :class:`~evojax_lab.policies.MinAtarCNN`, larger ones (the Image Hard Maze's ``[84, 84, 4]``)
    the :class:`~evojax_lab.policies.NatureCNN` the Deep GA uses; with a discrete or a
    continuous head to match the actions. Every other task gets an :class:`MLP` with ``hidden``
    layers.
    """
    hidden = tuple(hidden)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1
               for w in hidden):
        raise ValueError(f"hidden must be layer widths >= 1, got {hidden}")
    space = task.action_space
    obs_shape = tuple(getattr(task, "observation_shape", ()))
    if len(obs_shape) == 3 and space.kind in ("discrete", "continuous"):
        cnn = MinAtarCNN if min(obs_shape[:2]) < 36 else NatureCNN
        if space.kind == "discrete":
            return cnn(action_dim=space.n)
        if tuple(space.shape) not in ((), (int(np.prod(space.shape)),)):
            raise ValueError(f"a CNN policy needs a flat action shape, got {space.shape}")
        return cnn(action_dim=max(int(np.prod(space.shape)), 1), head="continuous",
                   low=tuple(np.ravel(space.low).tolist()),
                   high=tuple(np.ravel(space.high).tolist()))
    if space.kind == "discrete":
        return MLP(action_dim=space.n, hidden=tuple(hidden), activation=activation)
    if space.kind == "continuous":
        shape = tuple(space.shape)
        return MLP(
            action_dim=int(np.prod(shape)) if shape else 1,
            hidden=tuple(hidden),
            activation=activation,
            head="continuous",
            low=tuple(np.ravel(space.low).tolist()),
            high=tuple(np.ravel(space.high).tolist()),
            action_shape=shape,
        )
    raise ValueError(f"unsupported action space kind {space.kind!r}")


def init_params(policy, key: jax.Array, observation_shape: tuple):
    """``policy.init`` on a zero observation."""
    return policy.init(key, jnp.zeros(observation_shape, jnp.float32))


def deep_mlp(depth: int, width: int = 15, *, action_dim: int, activation: str = "relu",
             head: str = "continuous", low: Any = -0.5, high: Any = 0.5) -> MLP:
    """A deep, narrow :class:`MLP`: ``depth`` hidden layers of ``width`` units,
    ``MLP(action_dim, hidden=(width,) * depth, activation, head, low, high)``.

    The safe-mutations paper (Lehman et al. 2017, arXiv:1712.06563) evolves such networks on the
    Breadcrumb Hard Maze: 11 inputs -> 6 hidden layers of 15 ReLU units -> 2 sigmoid outputs
    (``deep_mlp(6, action_dim=2)``, 1,412 parameters), and deeper ones (100+ layers). Its sigmoid
    outputs in ``[0, 1]`` are the robot's commands; the default head here, ``"continuous"`` on
    ``[-0.5, 0.5]``, is ``sigmoid(2 x) - 0.5``, which the Hard Maze maps back (``a + 0.5``) to
    the same commands ``sigmoid(2 x)`` of the output layer's pre-activation ``x``. The output
    layer is the last ``Dense_<depth>`` (found by :func:`evojax_lab.policies.reference_init`).
    Every layer is unrolled: at ``depth = 100`` (23,972 parameters) a jitted ``apply`` compiled in
    about 7 s on a busy 2-core CPU, a jitted ``init`` in about 20 s; ``jax.eval_shape(init)``
    and :func:`evojax_lab.policies.reference_init` build parameters in about 2 s.
    """
    depth, width = int(depth), int(width)
    if depth < 0 or width < 1:
        raise ValueError(f"need depth >= 0 and width >= 1, got depth={depth}, width={width}")
    return MLP(action_dim=int(action_dim), hidden=(width,) * depth, activation=activation,
               head=head, low=low, high=high)
