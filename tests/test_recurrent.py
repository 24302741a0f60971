"""Recurrent policies, the deep MLP helper and the 4-bit parity task (safe-mutations paper).

Expected values are computed by hand (in the comments) or by plain Python / NumPy written here,
never by the code under test.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.tasks.parity import PARITY_SEQUENCES, PARITY_TARGETS

# ---------------------------------------------------------------------------------------------
# Recurrent
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rnn():
    """The paper's parity network (2 x 15 tanh RNN -> 2), its params and a jitted apply."""
    module = el.policies.Recurrent(cell="rnn", hidden=15, layers=2, outputs=2)
    params = module.init(jax.random.key(0), jnp.zeros((4, 1)))
    return module, params, jax.jit(module.apply)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_output_shapes(cell):
    module = el.policies.Recurrent(cell=cell, hidden=3, layers=2, outputs=2)
    params = module.init(jax.random.key(1), jnp.zeros((4, 1)))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 4, 1)), jnp.float32)
    y = module.apply(params, x[0])
    assert y.shape == (4, 2) and y.dtype == jnp.float32
    batched = module.apply(params, x)  # [B, T, I] -> [B, T, O]
    assert batched.shape == (5, 4, 2)
    np.testing.assert_allclose(batched[0], y, atol=1e-6)
    assert set(params["params"]) == {"layer_0", "layer_1", "output"}
    with pytest.raises(ValueError, match="inputs"):
        module.apply(params, jnp.zeros((4,)))


def test_parameter_count_and_names(rnn):
    _, params, _ = rnn
    # layer 0: input kernel 1x15 + bias 15 + recurrent 15x15 = 255; layer 1: 15x15 + 15 + 15x15
    # = 465; output 15x2 + 2 = 32.
    assert sum(x.size for x in jax.tree.leaves(params)) == 255 + 465 + 32
    assert el.genome.output_kernel(params) == ("params", "output", "kernel")
    init = el.genome.reference_init(jax.random.key(2), params)
    # reference_init: output kernel N(0,1) * 0.1 / sqrt(15), the others N(0,1) / sqrt(fan_in).
    out = np.asarray(init["params"]["output"]["kernel"])
    rec = np.asarray(init["params"]["layer_1"]["h"]["kernel"])
    assert 0 < np.abs(out).max() < 5 * 0.1 / math.sqrt(15)
    assert np.abs(rec).max() > 0.1 / math.sqrt(15) * 5  # 225 draws of scale 1/sqrt(15)
    np.testing.assert_array_equal(init["params"]["layer_0"]["i"]["bias"], 0.0)


def _one_unit_params(w, b, u, v, c, layers=1):
    layer = lambda k: {"i": {"kernel": jnp.array([[w[k]]]), "bias": jnp.array([b[k]])},
                       "h": {"kernel": jnp.array([[u[k]]])}}
    p = {f"layer_{k}": layer(k) for k in range(layers)}
    p["output"] = {"kernel": jnp.array([[v]]), "bias": jnp.array([c])}
    return {"params": p}


def test_hand_computed_simple_cell():
    # One unit a layer: h_t = tanh(w x_t + b + u h_{t-1}), h_0 = 0; y_t = v h_t + c.
    module = el.policies.Recurrent(cell="rnn", hidden=1, layers=2, outputs=1)
    w, b, u, v, c = (0.7, -1.3), (0.1, 0.2), (0.5, -0.9), 2.0, -0.25
    params = _one_unit_params(w, b, u, v, c, layers=2)
    template = module.init(jax.random.key(0), jnp.zeros((4, 1)))
    assert jax.tree.structure(template) == jax.tree.structure(params)
    xs = [1.0, 0.0, 1.0, 1.0]
    h0 = h1 = 0.0
    expected = []
    for x in xs:
        h0 = math.tanh(w[0] * x + b[0] + u[0] * h0)
        h1 = math.tanh(w[1] * h0 + b[1] + u[1] * h1)
        expected.append(v * h1 + c)
    y = module.apply(params, jnp.asarray(xs)[:, None])
    np.testing.assert_allclose(np.asarray(y)[:, 0], expected, rtol=1e-5, atol=1e-6)
    # Heads apply to the output layer's values.
    soft = el.policies.Recurrent(cell="rnn", hidden=1, layers=2, outputs=1, head="tanh")
    np.testing.assert_allclose(np.asarray(soft.apply(params, jnp.asarray(xs)[:, None]))[:, 0],
                               np.tanh(expected), rtol=1e-5, atol=1e-6)


def test_jit_matches_eager(rnn):
    module, params, apply = rnn
    x = jnp.asarray([[1.0], [0.0], [1.0], [1.0]])
    np.testing.assert_allclose(apply(params, x), module.apply(params, x), rtol=1e-5, atol=1e-6)


def test_vmap_over_population_matches_loop(rnn):
    module, params, apply = rnn
    keys = jax.random.split(jax.random.key(3), 3)
    population = jax.vmap(lambda k: el.genome.reference_init(k, params))(keys)
    x = jnp.asarray(PARITY_SEQUENCES[11])
    batched = jax.jit(jax.vmap(module.apply, in_axes=(0, None)))(population, x)
    assert batched.shape == (3, 4, 2)
    for i in range(3):
        member = jax.tree.map(lambda leaf, i=i: leaf[i], population)
        np.testing.assert_allclose(batched[i], apply(member, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell"):
        el.policies.Recurrent(cell="transformer").init(jax.random.key(0), jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match="head"):
        el.policies.Recurrent(head="argmax").init(jax.random.key(0), jnp.zeros((4, 1)))


# ---------------------------------------------------------------------------------------------
# deep_mlp
# ---------------------------------------------------------------------------------------------


def test_deep_mlp_paper_network():
    policy = el.policies.deep_mlp(6, action_dim=2)
    assert isinstance(policy, el.policies.MLP)
    assert policy.hidden == (15,) * 6 and policy.activation == "relu"
    params = policy.init(jax.random.key(0), jnp.zeros(11))
    # 11*15+15 = 180; 5 * (15*15+15) = 1,200; 15*2+2 = 32: 1,412.
    assert sum(x.size for x in jax.tree.leaves(params)) == 180 + 1200 + 32 == 1412
    assert el.genome.output_kernel(params) == ("params", "Dense_6", "kernel")
    # The continuous head on [-0.5, 0.5] is sigmoid(2 x) - 0.5 of the output layer's x.
    obs = jnp.asarray(np.random.default_rng(1).uniform(size=11), jnp.float32)
    linear = el.policies.deep_mlp(6, action_dim=2, head="linear").apply(params, obs)
    action = policy.apply(params, obs)
    np.testing.assert_allclose(action, 1 / (1 + np.exp(-2 * np.asarray(linear))) - 0.5,
                               atol=1e-6)


def test_deep_mlp_depth_100():
    policy = el.policies.deep_mlp(100, action_dim=2)
    shapes = jax.eval_shape(policy.init, jax.random.key(0), jnp.zeros(11))
    params = el.genome.reference_init(jax.random.key(1), shapes)
    # 180 + 99 * 240 + 32 = 23,972.
    assert sum(x.size for x in jax.tree.leaves(params)) == 23972
    assert el.genome.output_kernel(params) == ("params", "Dense_100", "kernel")
    action = policy.apply(params, jnp.ones(11))  # eager: no 101-layer compile here
    assert action.shape == (2,) and np.isfinite(np.asarray(action)).all()
    assert (np.abs(np.asarray(action)) <= 0.5).all()
    with pytest.raises(ValueError, match="depth"):
        el.policies.deep_mlp(-1, action_dim=2)


# ---------------------------------------------------------------------------------------------
# parity
# ---------------------------------------------------------------------------------------------

# Parity of 0..15 (number of ones mod 2), by hand: 0000 0, 0001 1, 0010 1, 0011 0, 0100 1,
# 0101 0, 0110 0, 0111 1, 1000 1, 1001 0, 1010 0, 1011 1, 1100 0, 1101 1, 1110 1, 1111 0.
HAND_TARGETS = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0]


def test_parity_data():
    assert PARITY_SEQUENCES.shape == (16, 4, 1) and PARITY_SEQUENCES.dtype == np.float32
    np.testing.assert_array_equal(PARITY_SEQUENCES[11, :, 0], [1, 0, 1, 1])  # 1011 -> 1
    np.testing.assert_array_equal(PARITY_SEQUENCES[6, :, 0], [0, 1, 1, 0])
    np.testing.assert_array_equal(PARITY_SEQUENCES[0, :, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(PARITY_SEQUENCES[15, :, 0], [1, 1, 1, 1])
    np.testing.assert_array_equal(PARITY_TARGETS, HAND_TARGETS)
    assert len({tuple(s.ravel()) for s in PARITY_SEQUENCES}) == 16  # all 16 sequences


def _running_parity_logits(scale, seq):
    """A hand-written "network": logits (-s, s) * scale, s = +1 if the bits so far are odd."""
    odd = jnp.mod(jnp.cumsum(seq[:, 0]), 2.0)
    s = 2.0 * odd - 1.0
    return scale * jnp.stack([-s, s], axis=-1)  # [T, 2]


@pytest.fixture(scope="module")
def lookup_task():
    task = el.tasks.parity(_running_parity_logits)
    return task, jax.jit(task.fn)


def test_parity_perfect_lookup(lookup_task):
    task, fn = lookup_task
    assert isinstance(task, el.tasks.FunctionTask) and task.behavior_size == 16
    fitness, behavior = fn(jax.random.key(0), jnp.float32(20.0))
    # NLL of each example: log(1 + exp(-40)) ~ 4e-18.
    assert float(fitness) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(behavior, HAND_TARGETS, atol=1e-6)
    assert float(el.tasks.parity_accuracy(_running_parity_logits, jnp.float32(20.0))) == 1.0
    # The opposite network is always wrong.
    assert float(el.tasks.parity_accuracy(_running_parity_logits, jnp.float32(-1.0))) == 0.0


def test_parity_constant_predictors(lookup_task):
    _, fn = lookup_task
    fitness, behavior = fn(jax.random.key(0), jnp.float32(0.0))  # logits (0, 0): 50/50
    assert float(fitness) == pytest.approx(-math.log(2.0), rel=1e-6)
    np.testing.assert_allclose(behavior, 0.5)
    # Logits (0, a) for every sequence: p1 = 1 / (1 + e^-a); 8 targets are 1, 8 are 0, so
    # fitness = -(log(1 + e^-a) + log(1 + e^a)) / 2.
    a = 1.0
    task = el.tasks.parity(lambda p, seq: jnp.broadcast_to(jnp.stack([0.0, p]), (4, 2)))
    fitness, behavior = task.fn(jax.random.key(0), jnp.float32(a))
    assert float(fitness) == pytest.approx(-(math.log1p(math.exp(-a))
                                             + math.log1p(math.exp(a))) / 2, rel=1e-6)
    np.testing.assert_allclose(behavior, 1 / (1 + math.exp(-a)), rtol=1e-6)
    # A network that returns only the final [2] works too; a NaN network gets -1e8.
    final_only = el.tasks.parity(lambda p, seq: _running_parity_logits(p, seq)[-1])
    assert float(final_only.fn(jax.random.key(0), jnp.float32(20.0))[0]) == pytest.approx(
        0.0, abs=1e-6)
    fitness, behavior = fn(jax.random.key(0), jnp.float32(jnp.nan))
    assert float(fitness) == -1e8
    np.testing.assert_array_equal(behavior, 0.5)


def test_parity_with_recurrent_network(rnn):
    module, params, apply = rnn
    task = el.tasks.parity(module.apply)
    fitness, behavior = jax.jit(task.fn)(jax.random.key(0), params)
    # NumPy: final-step logits of each sequence, log-softmax, NLL of the targets.
    logits = np.stack([np.asarray(apply(params, jnp.asarray(s)))[-1] for s in PARITY_SEQUENCES])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    nll = -np.mean(logp[np.arange(16), HAND_TARGETS])
    assert float(fitness) == pytest.approx(-nll, rel=1e-5)
    np.testing.assert_allclose(behavior, np.exp(logp[:, 1]), rtol=1e-5)
    accuracy = float(el.tasks.parity_accuracy(module.apply, params))
    assert accuracy == pytest.approx(np.mean(logits.argmax(1) == HAND_TARGETS))
    # A population through el.evaluate (a function task needs no policy).
    population = jax.vmap(lambda k: el.genome.reference_init(k, params))(
        jax.random.split(jax.random.key(4), 2))
    ev = jax.jit(lambda k, pop: el.evaluate(k, task, None, pop))(jax.random.key(5), population)
    assert ev.fitness.shape == (2,) and ev.behavior.shape == (2, 16)
    assert np.isfinite(np.asarray(ev.fitness)).all() and (np.asarray(ev.fitness) < 0).all()
