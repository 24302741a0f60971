"""CNN policies: the Nature-DQN parameter count, the MinAtar CNN, and for_task on image tasks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el


def _count(module, shape):
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(shape, jnp.float32))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)), shapes


def test_nature_cnn_parameter_counts():
    # REFERENCE §2: 4,052,658 with SAME padding (the Deep GA's), 1,693,362 with VALID.
    n_same, shapes = _count(el.policies.NatureCNN(18), (84, 84, 4))
    assert n_same == 4_052_658
    assert _count(el.policies.NatureCNN(18, padding="VALID"), (84, 84, 4))[0] == 1_693_362
    p = shapes["params"]
    assert p["conv_0"]["kernel"].shape == (8, 8, 4, 32)
    assert p["conv_1"]["kernel"].shape == (4, 4, 32, 64)
    assert p["conv_2"]["kernel"].shape == (3, 3, 64, 64)
    assert p["dense_0"]["kernel"].shape == (11 * 11 * 64, 512)  # 84 -> 21 -> 11 -> 11 (SAME)
    assert p["output"]["kernel"].shape == (512, 18)
    # the reference init finds the output layer by its name
    assert el.genome.output_kernel(shapes) == ("params", "output", "kernel")


def test_minatar_cnn_shapes_and_heads():
    n, _ = _count(el.policies.MinAtarCNN(3), (10, 10, 4))
    # conv 3*3*4*16+16, FC (8*8*16)*128+128, out 128*3+3
    assert n == 592 + 131_200 + 387 == 132_179
    policy = el.policies.MinAtarCNN(3, features=4, hidden=8)  # small: cheap to compile
    params = policy.init(jax.random.key(1), jnp.zeros((10, 10, 4)))
    obs = jnp.asarray(np.random.default_rng(2).random((5, 10, 10, 4)) < 0.3)
    apply = jax.jit(policy.apply)
    one, batch = apply(params, obs[0]), apply(params, obs)
    assert one.shape == () and one.dtype == jnp.int32 and 0 <= int(one) < 3
    assert batch.shape == (5,)
    assert int(batch[0]) == int(one)
    linear = el.policies.MinAtarCNN(3, features=4, hidden=8, head="linear")
    logits = jax.jit(linear.apply)(params, obs[0])
    assert logits.shape == (3,) and int(jnp.argmax(logits)) == int(one)
    with pytest.raises(ValueError, match="H, W, C"):
        jax.eval_shape(policy.apply, params, jnp.zeros((10, 10)))


def test_for_task_picks_the_cnn_for_image_observations():
    breakout = el.tasks.make("Breakout-MinAtar", max_steps=5)
    policy = el.policies.for_task(breakout)
    assert isinstance(policy, el.policies.MinAtarCNN) and policy.action_dim == 3
    cartpole = el.tasks.make("CartPole-v1")
    assert isinstance(el.policies.for_task(cartpole), el.policies.MLP)


def test_continuous_cnn_head_for_the_image_hard_maze():
    task = el.tasks.make("image_hard_maze", max_steps=3)
    policy = el.policies.for_task(task)
    assert isinstance(policy, el.policies.NatureCNN) and policy.head == "continuous"
    # The Deep GA network with 2 outputs: 4,052,658 - 16 * (512 + 1) for 18 -> 2 actions.
    assert _count(policy, (84, 84, 4))[0] == 4_052_658 - 16 * 513
    small = el.policies.MinAtarCNN(2, features=2, hidden=4, head="continuous",
                                   low=(-0.5, -0.5), high=(0.5, 0.5))
    params = small.init(jax.random.key(0), jnp.zeros((10, 10, 1)))
    linear = el.policies.MinAtarCNN(2, features=2, hidden=4, head="linear")
    obs = jnp.asarray(np.random.default_rng(0).random((10, 10, 1)), jnp.float32)
    action, logits = small.apply(params, obs), linear.apply(params, obs)
    assert action.shape == (2,)
    # tanh squashing into [-0.5, 0.5], by hand from the raw outputs
    np.testing.assert_allclose(np.asarray(action), 0.5 * np.tanh(np.asarray(logits)), atol=1e-6)
