"""Stacked recurrent networks over one input sequence (the safe-mutations paper's parity nets).

Lehman et al. 2017 (arXiv:1712.06563) evolve recurrent networks for 4-bit parity: one input bit a
step, 2 stacked recurrent layers of 15 units (plain RNN, GRU or LSTM cells), a linear layer to 2
outputs after the last layer, softmax over them. :class:`Recurrent` is that network as a flax
module: ``apply(params, inputs[T, I]) -> outputs[T, O]``, the output layer's values at every step
(a task that only scores the final step takes ``outputs[-1]``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_CELLS = {"rnn": nn.SimpleCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
_HEADS = {
    "linear": lambda x: x,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


class Recurrent(nn.Module):
    """``layers`` stacked recurrent layers of ``hidden`` units, then a Dense output layer.

    Shapes: ``inputs`` is one sequence ``[T, I]`` (time first), or a batch of them
    ``[..., T, I]`` (leading batch axes); the result is ``[T, O]`` (``[..., T, O]``) with
    ``O = outputs``: at every step ``t`` the head applied to ``output(h_t)``, where ``h_t`` is
    the last recurrent layer's output after reading ``inputs[:t + 1]``. Every layer starts from a
    zero carry (zero hidden state, and zero cell state for an LSTM); layer ``k + 1`` reads layer
    ``k``'s outputs. For ``cell="rnn"`` one layer's step is
    ``h_t = activation(x_t W_i + b + h_{t-1} W_h)`` (flax's ``SimpleCell``: the input kernel
    ``i`` carries the bias, the recurrent kernel ``h`` has none); ``"gru"`` and ``"lstm"`` are
    flax's ``GRUCell`` and ``LSTMCell``.

    Parameters: ``layer_0 .. layer_{L-1}`` (the cells' parameters) and ``output`` (Dense
    ``[hidden, O]`` kernel and bias), so :func:`evojax_lab.policies.reference_init` finds the
    output layer by its name. With the defaults, 1 input and ``cell="rnn"``: layer 0 has
    ``1*15 + 15 + 15*15`` = 255 parameters, layer 1 ``15*15 + 15 + 15*15`` = 465, the output
    ``15*2 + 2`` = 32.

    Not a step-wise policy for :func:`evojax_lab.rollout` (which passes no recurrent state): it
    reads whole sequences, e.g. through :func:`evojax_lab.tasks.parity`.

    Attributes:
        cell: ``"rnn"`` (``SimpleCell``), ``"gru"`` or ``"lstm"``.
        hidden: units per recurrent layer.
        layers: number of stacked recurrent layers.
        outputs: size ``O`` of the output layer.
        head: ``"linear"`` (raw outputs, e.g. logits), ``"softmax"``, ``"log_softmax"``,
            ``"sigmoid"`` or ``"tanh"``, applied to the output layer's values (over the last axis
            for the softmaxes).
        activation: the ``"rnn"`` cell's activation, ``"tanh"`` or ``"relu"``.
    """

    cell: str = "rnn"
    hidden: int = 15
    layers: int = 2
    outputs: int = 2
    head: str = "linear"
    activation: str = "tanh"

    @nn.compact
    def __call__(self, inputs) -> jax.Array:
        if self.cell not in _CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose from {sorted(_CELLS)}")
        if self.head not in _HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {sorted(_HEADS)}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"unknown activation {self.activation!r}; use 'tanh' or 'relu'")
        if int(self.layers) < 1 or int(self.hidden) < 1:
            raise ValueError(f"need layers >= 1 and hidden >= 1, got {self.layers}, {self.hidden}")
        x = jnp.asarray(inputs, jnp.float32)
        if x.ndim < 2:
            raise ValueError(f"inputs must be [T, I] or [..., T, I], got shape {x.shape}")
        for k in range(int(self.layers)):
            if self.cell == "rnn":
                act = jnp.tanh if self.activation == "tanh" else nn.relu
                cell = nn.SimpleCell(int(self.hidden), activation_fn=act, name=f"layer_{k}")
            else:
                cell = _CELLS[self.cell](int(self.hidden), name=f"layer_{k}")
            x = nn.RNN(cell)(x)
        return _HEADS[self.head](nn.Dense(int(self.outputs), name="output")(x))
