"""brax adapter, the U-traps and the humanoid policy size (issue 8).

brax compiles slowly on a CPU (about a minute per program here), so the file compiles two
programs: a pushed ant against the trap's wall (physics only) and one jitted function that runs
both an un-stopped ``lax.scan`` of ``task.step`` (the reference record) and the library's
done-masked ``rollout`` on the same keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax")

import evojax_lab as el  # noqa: E402
from evojax_lab.evaluate import rollout  # noqa: E402
from evojax_lab.tasks import brax_tasks  # noqa: E402

T = 40


def _param_count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def test_registry_has_every_brax_env_and_the_traps():
    names = el.tasks.names()
    for env in ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
                "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "swimmer",
                "walker2d", "ant_trap", "humanoid_trap"):
        assert f"brax/{env}" in names
    with pytest.raises(ValueError, match="unknown brax environment"):
        el.tasks.make("brax/no_such_env")
    with pytest.raises(ValueError, match="backend"):
        el.tasks.make("brax/hopper", backend="bullet")
    with pytest.raises(ValueError, match="max_steps"):
        el.tasks.make("brax/hopper", max_steps=0)


def test_humanoid_mlp_parameter_counts():
    # The paper's humanoid: 376 observations -> 256 -> 256 -> 17 actions: 166,673 parameters.
    policy = el.policies.MLP(17, hidden=(256, 256), head="continuous")
    shapes = jax.eval_shape(policy.init, jax.random.PRNGKey(0), jnp.zeros(376))
    assert _param_count(shapes) == 166_673
    # brax's humanoid observes 244 numbers (no contact forces): 244*256+256 + 256*256+256 +
    # 256*17+17 = 132,881 parameters for the same network.
    task = el.tasks.make("brax/humanoid_trap")
    assert task.observation_shape == (244,)
    assert task.action_space.shape == (17,)
    policy = el.policies.for_task(task, hidden=(256, 256))
    shapes = jax.eval_shape(policy.init, jax.random.PRNGKey(0), jnp.zeros(244))
    assert _param_count(shapes) == 132_881
    assert task.behavior_size == 2


def _geoms(env):
    import mujoco

    m = env.sys.mj_model
    out = {}
    for i in range(m.ngeom):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i)
        out[name] = dict(type=int(m.geom_type[i]), pos=np.array(m.geom_pos[i]),
                         size=np.array(m.geom_size[i]), contype=int(m.geom_contype[i]),
                         conaffinity=int(m.geom_conaffinity[i]), body=int(m.geom_bodyid[i]))
    return out


@pytest.fixture(scope="module")
def ant_trap_env():
    return brax_tasks.make_brax_env("ant_trap")


def test_trap_walls_present():
    import mujoco

    box = int(mujoco.mjtGeom.mjGEOM_BOX)
    humanoid = _geoms(brax_tasks.make_brax_env("humanoid_trap"))
    # REFERENCE §6 (centre x, y; half sizes), standing on the floor (centre z = half height)
    want = [((5.5, 0.0, 2.0), (0.1, 1.5, 2.0)), ((4.0, 1.5, 2.0), (1.5, 0.1, 2.0)),
            ((4.0, -1.5, 2.0), (1.5, 0.1, 2.0))]
    for i, (pos, size) in enumerate(want):
        g = humanoid[f"trap_wall_{i}"]
        assert g["type"] == box and g["body"] == 0  # a fixed world geom
        np.testing.assert_allclose(g["pos"], pos)
        np.testing.assert_allclose(g["size"], size)
        # the feet (contype 1) collide with it
        assert g["contype"] == 0 and g["conaffinity"] == 1
    assert humanoid["left_foot"]["contype"] & humanoid["trap_wall_0"]["conaffinity"]
    plain = _geoms(brax_tasks.make_brax_env("humanoid"))
    assert not any(n.startswith("trap_wall") for n in plain)
    assert len(humanoid) == len(plain) + 3


def test_trap_walls_block_the_ant(ant_trap_env):
    env = ant_trap_env
    ant = _geoms(env)
    front = ant["trap_wall_0"]
    face = front["pos"][0] - front["size"][0]
    np.testing.assert_allclose(front["pos"][:2], (5.0, 0.0))

    def pushed(y):
        # start 1.6 m before the wall face line, thrown forward at 8 m/s, no action
        q = env.sys.init_q.at[0].set(face - 1.5).at[1].set(y)
        qd = jnp.zeros(env.sys.qd_size()).at[0].set(8.0)
        state = env.pipeline_init(q, qd)

        def body(s, _):
            s = env.pipeline_step(s, jnp.zeros(env.action_size))
            return s, s.x.pos[0]

        return jax.lax.scan(body, state, None, length=T)[1]

    # inside the U (y = 0) and far outside it (y = 10): same push
    xs = np.asarray(jax.jit(jax.vmap(pushed))(jnp.array([0.0, 10.0])))
    inside, outside = xs[0], xs[1]
    assert outside[-1, 0] > face + 1.0  # without a wall the push carries it past the line
    # the torso (0.25 m sphere) may lean over its feet, but stays behind the wall
    assert inside[:, 0].max() < face + 0.3
    assert np.all(np.isfinite(xs))


@pytest.fixture(scope="module")
def ant_record():
    """A plain ant that terminates when its torso leaves z in (0.2, 0.62): an un-stopped
    record of ``task.step`` and the library's rollout on the same keys."""
    task = el.tasks.make("brax/ant", healthy_z_range=(0.2, 0.62), max_steps=T)
    policy = el.policies.for_task(task, hidden=(8,))
    params = policy.init(jax.random.PRNGKey(7), jnp.zeros(task.observation_shape))

    def record(key):
        key_run, reset_key = jax.random.split(key)
        obs, state = task.reset(reset_key)

        def body(carry, _):
            k, obs, state = carry
            k, step_key = jax.random.split(k)
            obs, state, reward, done = task.step(step_key, state, policy.apply(params, obs))
            return (k, obs, state), (reward, done, task.behavior(obs, state))

        _, rec = jax.lax.scan(body, (key_run, obs, state), None, length=T)
        return rec, rollout(key, task, policy, params)

    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    rec, out = jax.jit(jax.vmap(record))(keys)
    return task, jax.tree.map(np.asarray, rec), jax.tree.map(np.asarray, out)


def test_no_reward_after_termination_and_final_state_kept(ant_record):
    task, (rewards, dones, xy), (ret, length, behavior) = ant_record
    terminated = 0
    for i in range(len(ret)):
        first = int(np.argmax(dones[i])) if dones[i].any() else T - 1
        assert dones[i].any()  # termination or the cutoff at T
        assert int(length[i]) == first + 1
        np.testing.assert_allclose(ret[i], rewards[i, : first + 1].sum(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(behavior[i], xy[i, first], rtol=0, atol=1e-5)
        if first < T - 1:
            terminated += 1
            # the record goes on after termination (brax would keep paying the alive bonus)
            assert np.abs(rewards[i, first + 1:]).sum() > 0
            assert np.abs(xy[i, -1] - xy[i, first]).max() > 1e-3  # and the ant moved on
    assert terminated >= 1  # the done mask was exercised
    assert np.all(dones[:, -1])  # the cutoff: done at max_steps
