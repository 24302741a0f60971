"""Convolutional policies for image observations: the Nature-DQN network and a small MinAtar CNN.

* :class:`NatureCNN` — Mnih et al. (2015), "Human-level control through deep reinforcement
  learning", Nature 518; the network the Deep GA evolves on Atari (Such et al. 2017,
  arXiv:1712.06567): conv 32 8x8 stride 4, conv 64 4x4 stride 2, conv 64 3x3 stride 1, FC 512,
  ReLU, SAME padding (as in the Deep GA's code). For 84x84x4 frames and 18 actions it has
  **4,052,658** parameters (1,693,362 with ``padding="VALID"``).
* :class:`MinAtarCNN` — the network of the MinAtar baselines (Young & Tian 2019,
  arXiv:1903.03176): conv 16 3x3 stride 1 (VALID), FC 128, ReLU. For Breakout's 10x10x4 frames
  and 3 actions it has 132,179 parameters.

Both take one observation ``[H, W, C]`` (or a batch ``[..., H, W, C]``), cast it to float32 and
multiply it by ``obs_scale`` (1 by default: MinAtar frames are already 0/1; use 1/255 for raw
Atari pixels). The output layer is the Dense module named ``"output"``, which
:func:`evojax_lab.policies.reference_init` recognises as the layer initialised with std 0.1.
Heads: ``"discrete"`` (argmax over the logits, an int32 action, like
:class:`~evojax_lab.policies.MLP`), ``"continuous"`` (tanh squashed into ``[low, high]``, for
tasks such as the Image Hard Maze) or ``"linear"`` (the raw outputs).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def _head(logits, head: str, low=-1.0, high=1.0):
    if head == "discrete":
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if head == "continuous":
        low = jnp.asarray(low, jnp.float32)
        high = jnp.asarray(high, jnp.float32)
        return low + (jnp.tanh(logits) + 1.0) * 0.5 * (high - low)
    if head == "linear":
        return logits
    raise ValueError(f"unknown head {head!r}; use 'discrete', 'continuous' or 'linear'")


def _prepare(obs, obs_scale: float):
    x = jnp.asarray(obs, jnp.float32)
    if x.ndim < 3:
        raise ValueError(f"a CNN policy needs [H, W, C] observations, got shape {x.shape}")
    return x * obs_scale if obs_scale != 1.0 else x


def _flatten(x):
    return x.reshape(x.shape[:-3] + (-1,))


class NatureCNN(nn.Module):
    """The Nature-DQN network (Mnih et al. 2015) as used by the Deep GA (Such et al. 2017).

    Attributes:
        action_dim: number of discrete actions (18 for the full Atari action set).
        padding: ``"SAME"`` (default, 4,052,658 parameters for 84x84x4 and 18 actions) or
            ``"VALID"`` (1,693,362).
        head: ``"discrete"`` (argmax), ``"continuous"`` (``action_dim`` outputs in
            ``[low, high]``) or ``"linear"`` (logits).
        obs_scale: observations are multiplied by this (use ``1/255`` for uint8 pixels).
        low, high: bounds of the continuous head (scalars or tuples).
    """

    action_dim: int
    padding: str = "SAME"
    head: str = "discrete"
    obs_scale: float = 1.0
    low: Any = -1.0
    high: Any = 1.0

    @nn.compact
    def __call__(self, obs):
        x = _prepare(obs, self.obs_scale)
        x = nn.relu(nn.Conv(32, (8, 8), strides=(4, 4), padding=self.padding, name="conv_0")(x))
        x = nn.relu(nn.Conv(64, (4, 4), strides=(2, 2), padding=self.padding, name="conv_1")(x))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(1, 1), padding=self.padding, name="conv_2")(x))
        x = nn.relu(nn.Dense(512, name="dense_0")(_flatten(x)))
        return _head(nn.Dense(self.action_dim, name="output")(x), self.head, self.low, self.high)


class MinAtarCNN(nn.Module):
    """The small CNN of the MinAtar baselines (Young & Tian 2019): conv -> FC -> actions.

    Attributes:
        action_dim: number of discrete actions.
        features: convolution channels (16).
        kernel: convolution kernel size (3, stride 1).
        hidden: width of the fully connected layer (128).
        padding: ``"VALID"`` (default, as in MinAtar) or ``"SAME"``.
        head: ``"discrete"`` (argmax), ``"continuous"`` (``action_dim`` outputs in
            ``[low, high]``) or ``"linear"`` (logits).
        obs_scale: observations are multiplied by this.
        low, high: bounds of the continuous head (scalars or tuples).
    """

    action_dim: int
    features: int = 16
    kernel: int = 3
    hidden: int = 128
    padding: str = "VALID"
    head: str = "discrete"
    obs_scale: float = 1.0
    low: Any = -1.0
    high: Any = 1.0

    @nn.compact
    def __call__(self, obs):
        x = _prepare(obs, self.obs_scale)
        k = (self.kernel, self.kernel)
        x = nn.relu(nn.Conv(self.features, k, padding=self.padding, name="conv_0")(x))
        x = nn.relu(nn.Dense(self.hidden, name="dense_0")(_flatten(x)))
        return _head(nn.Dense(self.action_dim, name="output")(x), self.head, self.low, self.high)
