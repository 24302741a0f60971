"""The Hard Maze tasks (``hard_maze``, ``image_hard_maze``).

Expected values are worked out by hand (in the comments) or by a NumPy re-derivation written
here from the task's specification (walls retyped, rays intersected with ``np.linalg.solve``,
distances by projection), never by calling the code under test.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.policies.mlp import init_params
from evojax_lab.tasks.hard_maze import (
    HARD_MAZE_GOAL,
    HARD_MAZE_START,
    HARD_MAZE_WALLS,
    HardMazeState,
    ImageHardMazeState,
    collides,
    draw_maze,
    make_state,
    radar,
    rangefinders,
)

# ---------------------------------------------------------------------------------------------
# Independent NumPy reference (from the specification)
# ---------------------------------------------------------------------------------------------

SPEC_WALLS = np.array(
    [
        (41, 5, 3, 8), (3, 8, 4, 49), (4, 49, 57, 53), (4, 49, 7, 202), (7, 202, 195, 198),
        (195, 198, 186, 8), (186, 8, 39, 5), (56, 54, 56, 157), (57, 106, 158, 162),
        (77, 201, 108, 164), (6, 80, 33, 121), (192, 146, 87, 91), (56, 55, 133, 30),
    ],
    dtype=np.float64,
)
START = (36.0, 184.0)
GOAL = (31.0, 20.0)
SENSOR_ANGLES = (-90.0, -45.0, 0.0, 45.0, 90.0, -180.0)


def np_wall_distance(x, y):
    """Distance from (x, y) to every wall: project onto each segment, clamp to its ends."""
    out = []
    for x1, y1, x2, y2 in SPEC_WALLS:
        a, b, p = np.array([x1, y1]), np.array([x2, y2]), np.array([x, y], np.float64)
        u = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        out.append(np.linalg.norm(a + u * (b - a) - p))
    return np.array(out)


def np_rangefinders(x, y, heading):
    """Each ray (x, y) -> (x, y) + 100 (cos, sin)(heading + angle) against each wall, solving
    ``A + r (B - A) = C + s (D - C)`` for (r, s); a hit needs 0 < r, s < 1."""
    out = []
    for angle in SENSOR_ANGLES:
        th = math.radians(heading + angle)
        d = 100.0 * np.array([math.cos(th), math.sin(th)])
        best = 100.0
        for x1, y1, x2, y2 in SPEC_WALLS:
            w = np.array([x2 - x1, y2 - y1])
            m = np.array([[d[0], -w[0]], [d[1], -w[1]]])
            if abs(np.linalg.det(m)) < 1e-12:
                continue
            r, s = np.linalg.solve(m, np.array([x1 - x, y1 - y]))
            if 0 < r < 1 and 0 < s < 1:
                best = min(best, r * 100.0)
        out.append(best / 100.0)
    return np.array(out)


def np_radar_slice(x, y, heading):
    """Index of the radar slice holding the goal's bearing relative to the heading."""
    bearing = (math.degrees(math.atan2(GOAL[1] - y, GOAL[0] - x)) - heading) % 360.0
    if bearing >= 315.0 or bearing < 45.0:
        return 0
    return 1 + int((bearing - 45.0) // 90.0)


def np_goal_distance(x, y):
    return math.hypot(x - GOAL[0], y - GOAL[1])


def np_trajectory(actions, x=START[0], y=START[1], heading=0.0, ang_vel=0.0, speed=0.0):
    """The dynamics of the specification in float64: positions ``[T, 2]`` after each step."""
    out = []
    for a in np.asarray(actions, np.float64):
        o = np.clip(a + 0.5, 0.0, 1.0)
        ang_vel = float(np.clip(ang_vel + np.clip((o[0] - 0.5) * 6 - ang_vel, -0.2, 0.2), -3, 3))
        speed = float(np.clip(speed + np.clip((o[1] - 0.5) * 6 - speed, -0.2, 0.2), -3, 3))
        vx = math.cos(math.radians(heading)) * speed
        vy = math.sin(math.radians(heading)) * speed
        heading += ang_vel
        heading = heading - 360 if heading > 360 else heading + 360 if heading < 0 else heading
        if np_wall_distance(x + vx, y + vy).min() >= 8.0:
            x, y = x + vx, y + vy
        out.append((x, y))
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# Shared compiled functions
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    return el.tasks.make("hard_maze")


@pytest.fixture(scope="module")
def step(task):
    return jax.jit(task.step)


@pytest.fixture(scope="module")
def run_steps(task):
    """``run_steps(state, actions[T, 2]) -> (obs[T], states[T], rewards[T], dones[T])``."""

    @jax.jit
    def run(state, actions):
        def body(state, action):
            obs, state, reward, done = task.step(jax.random.key(0), state, action)
            return state, (obs, state, reward, done)

        _, out = jax.lax.scan(body, state, actions)
        return out

    return run


def _at(tree, i):
    return jax.tree.map(lambda v: np.asarray(v)[i], tree)


# ---------------------------------------------------------------------------------------------
# Constants, start state
# ---------------------------------------------------------------------------------------------


def test_constants_match_spec():
    np.testing.assert_array_equal(HARD_MAZE_WALLS, SPEC_WALLS.astype(np.float32))
    np.testing.assert_array_equal(HARD_MAZE_START, START)
    np.testing.assert_array_equal(HARD_MAZE_GOAL, GOAL)


def test_start_is_collision_free(task):
    # Nearest wall to (36, 184) is the bottom wall (7,202)-(195,198): it passes x = 36 at
    # y = 202 - 4 * 29 / 188 = 201.383, about 17.38 away, well over the robot radius 8.
    dist = np_wall_distance(*START)
    assert dist.min() == pytest.approx(17.379, abs=1e-3)
    assert int(dist.argmin()) == 4
    obs, state = task.reset(jax.random.key(0))
    assert isinstance(state, HardMazeState)
    assert not bool(collides(*START))
    assert (float(state.x), float(state.y), float(state.heading)) == (36.0, 184.0, 0.0)
    assert float(state.speed) == 0.0 and float(state.ang_vel) == 0.0 and int(state.t) == 0
    assert not bool(state.success)
    assert float(state.goal_distance) == pytest.approx(np_goal_distance(*START), rel=1e-6)
    assert obs.shape == (11,) and obs.dtype == jnp.float32 and float(obs[0]) == 1.0


# ---------------------------------------------------------------------------------------------
# (1) Driving straight from the start
# ---------------------------------------------------------------------------------------------


def test_drive_straight_from_start(task, run_steps):
    # a = (0, 0.5): o = (0.5, 1), so w* = 0 and v* = 3. Speed ramps 0.2, 0.4, ..., 3.0 (15
    # steps) and stays; heading 0 means +x and vy = sin(0) v = 0 exactly. After k <= 15 steps
    # x = 36 + 0.2 k (k + 1) / 2 (60 at k = 15), then +3 a step: 63, ..., 78 at k = 21.
    # The move to 81 is rejected: the wall (77,201)-(108,164) has direction (31, -37),
    # |d| = sqrt(2330) = 48.27, and (x, 184) lies |527 - 37 (x - 77)| / 48.27 from its line
    # (foot of the perpendicular inside the segment): 10.15 at x = 78, 7.85 < 8 at x = 81.
    # (Contact at x = 80.81.) So from step 22 on the robot stays at (78, 184).
    steps = 30
    _, state = task.reset(jax.random.key(0))
    actions = jnp.tile(jnp.array([0.0, 0.5], jnp.float32), (steps, 1))
    _, states, _, _ = run_steps(state, actions)
    k = np.arange(1, steps + 1)
    hand_speed = np.minimum(0.2 * k, 3.0)
    hand_x = 36.0 + np.cumsum(hand_speed)
    hand_x[21:] = 78.0  # blocked from step 22
    np.testing.assert_allclose(np.asarray(states.speed), hand_speed, atol=1e-5)
    np.testing.assert_allclose(np.asarray(states.x), hand_x, atol=1e-4)
    assert hand_x[14] == pytest.approx(60.0) and hand_x[20] == pytest.approx(78.0)
    np.testing.assert_array_equal(np.asarray(states.y), np.full(steps, 184.0, np.float32))
    np.testing.assert_array_equal(np.asarray(states.heading), np.zeros(steps, np.float32))
    np.testing.assert_array_equal(np.asarray(states.ang_vel), np.zeros(steps, np.float32))
    np.testing.assert_array_equal(np.asarray(states.collided), k >= 22)

    # The same with a float32 NumPy re-derivation of the dynamics and the collision check.
    x, v = np.float32(36.0), np.float32(0.0)
    for i in range(steps):
        v = np.float32(np.clip(v + np.clip(np.float32(3.0) - v, -0.2, 0.2), -3, 3))
        nx = np.float32(x + v)
        if np_wall_distance(float(nx), 184.0).min() >= 8.0:
            x = nx
        assert float(states.x[i]) == pytest.approx(float(x), abs=1e-5)
    # The wall distances themselves: 10.15 at x = 78, 7.85 at x = 81.
    assert np_wall_distance(78.0, 184.0)[9] == pytest.approx(490 / math.sqrt(2330), abs=1e-9)
    assert np_wall_distance(81.0, 184.0)[9] == pytest.approx(379 / math.sqrt(2330), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# (2) Rangefinders
# ---------------------------------------------------------------------------------------------


def test_rangefinders_at_start(task):
    # By hand, from (36, 184), heading 0 (rays at -90, -45, 0, 45, 90, -180 degrees):
    # * -90 points to -y, from y = 184 to y = 84 along x = 36: no wall crosses x = 36 there
    #   (the nearest, (6,80)-(33,121), ends at x = 33; (4,49)-(57,53) is at y ~ 51) -> 1.
    # * 0 points to +x along y = 184 and meets (77,201)-(108,164) at
    #   x = 77 + 31 * 17 / 37 = 91.243 -> 55.243 / 100.
    # * 90 points to +y and meets the bottom wall at y = 201.383 -> 0.17383.
    # * -180 points to -x and meets (4,49)-(7,202) at x = 4 + 3 * 135 / 153 = 6.647
    #   -> 29.353 / 100.
    # * -45 meets (57,106)-(158,162) at x = 93.67 (distance 57.67 sqrt 2 = 81.56);
    #   45 meets the bottom wall at x = 53.02 (distance 17.02 sqrt 2 = 24.07).
    hand = [1.0, 0.8156, 0.55243, 0.2407, 0.17383, 0.29353]
    obs, _ = task.reset(jax.random.key(0))
    expected = np_rangefinders(*START, 0.0)
    np.testing.assert_allclose(expected, hand, atol=2e-4)
    np.testing.assert_allclose(np.asarray(obs[1:7]), expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(rangefinders(*START, 0.0)), expected, atol=2e-5)


def test_rangefinders_random_poses():
    rng = np.random.default_rng(0)
    fn = jax.jit(jax.vmap(rangefinders))
    poses = []
    while len(poses) < 40:
        x, y = rng.uniform(10, 190), rng.uniform(10, 200)
        if np_wall_distance(x, y).min() > 8.5:
            poses.append((x, y, rng.uniform(0, 360)))
    poses = np.array(poses, np.float32)
    got = np.asarray(fn(poses[:, 0], poses[:, 1], poses[:, 2]))
    expected = np.stack([np_rangefinders(*map(float, p)) for p in poses])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got < 1).any() and (got == 1).any()


# ---------------------------------------------------------------------------------------------
# (3) Collisions
# ---------------------------------------------------------------------------------------------


def test_collision_leaves_robot_in_place(step):
    # (36, 192) is 9.38 from the bottom wall (it passes x = 36 at y = 201.383; the wall's slope
    # 4/188 scales the gap by cos = 0.99977). Heading 90 points to +y. With speed 2 and
    # a = (0.5, 0.5) (o = (1, 1), w* = v* = 3): w = 0.2, v = 2.2, the move to y = 194.2 would
    # leave 7.18 < 8 -> rejected; speed, angular velocity and heading still update.
    assert np_wall_distance(36.0, 192.0).min() == pytest.approx(9.381, abs=1e-3)
    assert np_wall_distance(36.0, 194.2).min() == pytest.approx(7.182, abs=1e-3)
    state = make_state(36.0, 192.0, heading=90.0, speed=2.0)
    key = jax.random.key(0)
    _, s1, reward, done = step(key, state, jnp.array([0.5, 0.5]))
    assert (float(s1.x), float(s1.y)) == (36.0, 192.0)
    assert bool(s1.collided)
    assert float(s1.speed) == pytest.approx(2.2, abs=1e-6)
    assert float(s1.ang_vel) == pytest.approx(0.2, abs=1e-6)
    assert float(s1.heading) == pytest.approx(90.2, abs=1e-5)
    assert int(s1.t) == 1 and float(reward) == 0.0 and not bool(done)
    # Pushing on keeps it there (v = 2.4, w = 0.4, heading 90.6).
    _, s2, _, _ = step(key, s1, jnp.array([0.5, 0.5]))
    assert (float(s2.x), float(s2.y)) == (36.0, 192.0)
    assert float(s2.speed) == pytest.approx(2.4, abs=1e-6)
    assert float(s2.heading) == pytest.approx(90.6, abs=1e-5)
    # Facing away (heading 270, -y) the same move is free: y = 192 - 2.2.
    _, s3, _, _ = step(key, make_state(36.0, 192.0, heading=270.0, speed=2.0),
                       jnp.array([0.0, 0.5]))
    assert not bool(s3.collided)
    assert float(s3.y) == pytest.approx(189.8, abs=1e-5)
    assert float(s3.x) == pytest.approx(36.0, abs=1e-5)


def test_collides_matches_numpy():
    rng = np.random.default_rng(1)
    pts = rng.uniform([0, 0], [200, 210], size=(400, 2)).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(collides))(pts[:, 0], pts[:, 1]))
    dist = np.stack([np_wall_distance(float(x), float(y)).min() for x, y in pts])
    clear = np.abs(dist - 8.0) > 1e-3
    np.testing.assert_array_equal(got[clear], (dist < 8.0)[clear])
    assert got.any() and not got.all()


def test_heading_wraps(step):
    key = jax.random.key(0)
    # 359.9 + 0.2 = 360.1 -> 0.1; 0.1 - 0.2 = -0.1 -> 359.9 (from the start, no move).
    _, s, _, _ = step(key, make_state(heading=359.9), jnp.array([0.5, 0.0]))
    assert float(s.heading) == pytest.approx(0.1, abs=1e-4)
    _, s, _, _ = step(key, make_state(heading=0.1), jnp.array([-0.5, 0.0]))
    assert float(s.heading) == pytest.approx(359.9, abs=1e-4)


def test_actions_are_clipped(step):
    key = jax.random.key(0)
    a = step(key, make_state(), jnp.array([0.5, 0.5]))
    b = step(key, make_state(), jnp.array([7.0, 100.0]))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    _, s, _, _ = step(key, make_state(speed=-2.9, ang_vel=2.9), jnp.array([-3.0, -3.0]))
    # targets w* = v* = -3: speed -2.9 -> -3.0 (moves by 0.1 only), ang_vel 2.9 -> 2.7.
    assert float(s.speed) == pytest.approx(-3.0, abs=1e-6)
    assert float(s.ang_vel) == pytest.approx(2.7, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# (4) Radar
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        # Robot at (31, 120), straight "below" the goal: bearing atan2(-100, 0) = -90 = 270.
        (0.0, 3),  # 270 - 0 = 270 in [225, 315)
        (90.0, 2),  # 180 in [135, 225)
        (200.0, 1),  # 70 in [45, 135)
        (280.0, 0),  # -10 -> 350 in [315, 360)
        (240.0, 0),  # 30 in [0, 45): the wrapped part of [315, 405)
        (330.0, 3),  # -60 -> 300 in [225, 315)
    ],
)
def test_radar_slice(heading, expected):
    assert np_radar_slice(31.0, 120.0, heading) == expected
    got = np.asarray(radar(31.0, 120.0, heading))
    np.testing.assert_array_equal(got, np.eye(4, dtype=np.float32)[expected])


def test_radar_in_observation(task, step):
    # From the start the goal is at atan2(-164, -5) = -91.7 -> 268.3: slice 3.
    obs, _ = task.reset(jax.random.key(0))
    assert np_radar_slice(*START, 0.0) == 3
    np.testing.assert_array_equal(np.asarray(obs[7:]), [0, 0, 0, 1])
    # Observation after a step reflects the new heading: at (100, 20) facing 180 (towards -x)
    # the goal is straight ahead: bearing 180 - 180 = 0 -> slice 0. The robot spins in place
    # by w = 0.2 (speed 0): heading 180.2, bearing 359.8 -> slice 0 still.
    obs, s, _, _ = step(jax.random.key(0), make_state(100.0, 20.0, heading=180.0),
                        jnp.array([0.5, 0.0]))
    assert np_wall_distance(100.0, 20.0).min() > 8
    assert float(s.x) == 100.0 and float(s.y) == 20.0
    np.testing.assert_array_equal(np.asarray(obs[7:]), [1, 0, 0, 0])
    np.testing.assert_allclose(np.asarray(obs[1:7]), np_rangefinders(100.0, 20.0, 180.2),
                               atol=2e-5)


# ---------------------------------------------------------------------------------------------
# (5) Reward, done, success, behavior
# ---------------------------------------------------------------------------------------------


def test_reward_and_done_over_an_episode(task, run_steps):
    _, state = task.reset(jax.random.key(0))
    rng = np.random.default_rng(2)
    actions = jnp.asarray(rng.uniform(-0.6, 0.6, size=(400, 2)), jnp.float32)
    obs, states, rewards, dones = run_steps(state, actions)
    rewards, dones = np.asarray(rewards), np.asarray(dones)
    final = _at(states, -1)
    assert int(final.t) == 400
    np.testing.assert_array_equal(rewards[:399], 0.0)
    assert rewards[399] == pytest.approx(-np_goal_distance(float(final.x), float(final.y)),
                                         rel=1e-6)
    assert float(final.goal_distance) == pytest.approx(-rewards[399], rel=1e-6)
    np.testing.assert_array_equal(dones, np.arange(1, 401) == 400)
    np.testing.assert_array_equal(np.asarray(states.t), np.arange(1, 401))
    behavior = task.behavior(obs[-1], final)
    np.testing.assert_array_equal(np.asarray(behavior), [final.x, final.y])
    assert behavior.dtype == jnp.float32
    # The path itself against the float64 re-derivation (it bumps into walls on the way).
    expected = np_trajectory(np.asarray(actions))
    np.testing.assert_allclose(np.stack([states.x, states.y], -1), expected, atol=1e-2)
    assert np.asarray(states.collided).any()
    # Every visited position is collision-free.
    xs, ys = np.asarray(states.x), np.asarray(states.y)
    clearance = [np_wall_distance(float(x), float(y)).min() for x, y in zip(xs, ys, strict=True)]
    assert min(clearance) >= 8.0


def test_short_episode_cutoff():
    task = el.tasks.make("hard_maze", max_steps=3)
    assert task.max_steps == 3
    obs, state = task.reset(jax.random.key(0))
    for t in range(1, 4):
        obs, state, reward, done = task.step(jax.random.key(0), state, jnp.array([0.0, 0.5]))
        assert bool(done) == (t == 3)
        # x after 3 steps: 36 + 0.2 + 0.4 + 0.6 = 37.2; distance to (31, 20): hypot(6.2, 164).
        expected = -math.hypot(37.2 - 31.0, 164.0) if t == 3 else 0.0
        assert float(reward) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="max_steps"):
        el.tasks.make("hard_maze", max_steps=0)


def test_rollout_return_is_minus_final_distance(task):
    policy = lambda params, obs: params  # a constant action
    ret, length, behavior = jax.jit(lambda p: el.rollout(jax.random.key(0), task, policy, p))(
        jnp.array([0.0, 0.5])
    )
    # The straight drive of test_drive_straight_from_start ends at (78, 184).
    np.testing.assert_allclose(np.asarray(behavior), [78.0, 184.0], atol=1e-4)
    assert int(length) == 400
    assert float(ret) == pytest.approx(-math.hypot(78.0 - 31.0, 164.0), rel=1e-5)


def test_success_is_sticky(run_steps):
    # From (31, 35) facing 270 (-y) at speed 3 towards the goal (31, 20): y = 32 (distance 12),
    # 29 (9 <= 10: success), ..., 14 (the top wall (41,5)-(3,8) passes x = 31 at y = 5.79,
    # 8.19 away; y = 11 would be 5.2 away, rejected). Then full reverse: the speed runs down
    # to -3 and the robot leaves; success stays True.
    actions = jnp.asarray([[0.0, 0.5]] * 8 + [[0.0, -0.5]] * 40, jnp.float32)
    state = make_state(31.0, 35.0, heading=270.0, speed=3.0)
    assert not bool(state.success)
    _, states, _, _ = run_steps(state, actions)
    ys = np.asarray(states.y)
    np.testing.assert_allclose(ys[:7], [32, 29, 26, 23, 20, 17, 14], atol=1e-4)
    assert ys[7] == pytest.approx(14.0, abs=1e-4)
    dist = np.array([np_goal_distance(float(x), float(y))
                     for x, y in zip(np.asarray(states.x), ys, strict=True)])
    success = np.asarray(states.success)
    assert not success[0] and success[1:].all()
    assert dist[-1] > 10.0 and dist[1] <= 10.0
    np.testing.assert_allclose(np.asarray(states.goal_distance), dist, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# (6) jit vs eager, vmap
# ---------------------------------------------------------------------------------------------


def test_jit_matches_eager(task, step):
    rng = np.random.default_rng(3)
    actions = rng.uniform(-0.7, 0.7, size=(6, 2)).astype(np.float32)
    obs_e, s_e = task.reset(jax.random.key(0))
    obs_j, s_j = jax.jit(task.reset)(jax.random.key(0))
    np.testing.assert_allclose(obs_e, obs_j, atol=1e-6)
    for a in actions:
        obs_e, s_e, r_e, d_e = task.step(jax.random.key(1), s_e, jnp.asarray(a))
        obs_j, s_j, r_j, d_j = step(jax.random.key(1), s_j, jnp.asarray(a))
        np.testing.assert_allclose(obs_e, obs_j, atol=1e-5)
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-5), s_e, s_j)
        assert float(r_e) == float(r_j) and bool(d_e) == bool(d_j)
    assert float(s_e.x) != 36.0 or float(s_e.y) != 184.0  # it did move


def test_vmap_over_keys_states_actions(task, step):
    n = 3
    keys = jax.random.split(jax.random.key(4), n)
    states = jax.tree.map(
        lambda *v: jnp.stack(v),
        make_state(), make_state(36.0, 192.0, heading=90.0, speed=2.0),
        make_state(100.0, 20.0, heading=180.0, speed=1.0),
    )
    actions = jnp.array([[0.0, 0.5], [0.5, 0.5], [-0.3, 0.2]], jnp.float32)
    batched = jax.jit(jax.vmap(task.step))(keys, states, actions)
    for i in range(n):
        single = step(keys[i], _at(states, i), actions[i])
        jax.tree.map(lambda b, s, i=i: np.testing.assert_allclose(np.asarray(b)[i], s,
                                                                  atol=1e-5), batched, single)
    obs, _ = jax.jit(jax.vmap(task.reset))(keys)
    assert obs.shape == (n, 11)


# ---------------------------------------------------------------------------------------------
# (7) image_hard_maze
# ---------------------------------------------------------------------------------------------

# The image mapping, by hand: the walls span x in [3, 195], y in [5, 202]; with a margin of 2
# the square side is 197 + 4 = 201 units over 84 pixels (u = 201 / 84 = 2.3929 units a pixel),
# centred: x0 = 99 - 100.5 = -1.5, y0 = 103.5 - 100.5 = 3. Pixel [i, j] has centre
# (x0 + (j + .5) u, y0 + (i + .5) u).
U = 201 / 84
X0, Y0 = -1.5, 3.0


def pixel_of(x, y):
    return int((y - Y0) // U), int((x - X0) // U)


@pytest.fixture(scope="module")
def image_task():
    return el.tasks.make("image_hard_maze")


def test_image_mapping_constants():
    from evojax_lab.tasks.hard_maze import IMAGE_ORIGIN, IMAGE_UNITS_PER_PIXEL, world_to_pixel

    assert IMAGE_UNITS_PER_PIXEL == pytest.approx(U)
    assert IMAGE_ORIGIN == pytest.approx((X0, Y0))
    row, col = world_to_pixel(36.0, 184.0)
    assert (int(row), int(col)) == pixel_of(36.0, 184.0) == (75, 15)


def test_image_hard_maze(image_task, run_steps):
    assert image_task.observation_shape == (84, 84, 4)
    obs0, state = image_task.reset(jax.random.key(0))
    assert isinstance(state, ImageHardMazeState)
    assert obs0.shape == (84, 84, 4) and obs0.dtype == jnp.float32
    assert float(obs0.min()) >= 0.0 and float(obs0.max()) <= 1.0
    for c in range(1, 4):  # reset fills the stack with the first frame
        np.testing.assert_array_equal(obs0[..., c], obs0[..., 0])
    frame = np.asarray(obs0[..., -1])
    # Robot at (36, 184) -> pixel [75, 15], centre (35.59, 183.66), 0.54 from the robot: fully
    # inside the disc of radius 8 -> the robot's gray 0.75.
    assert frame[75, 15] == pytest.approx(0.75)
    # Wall x = 56 (y 54..157): column (56 + 1.5) / u = 24.03 -> 24, centre x 57.12, 0.47 px off
    # the wall -> full wall intensity 1. Row 40 is y = 100.
    assert frame[40, 24] == 1.0
    # Goal (31, 20): pixel [7, 13], centre (30.80, 20.95) -> the goal disc's gray 0.5.
    assert pixel_of(31.0, 20.0) == (7, 13) and frame[7, 13] == pytest.approx(0.5)
    # Empty floor: (120, 190)... pixel [78, 50] is far from walls and robot.
    assert pixel_of(120.0, 190.0) == (78, 50) and frame[78, 50] == 0.0

    step = jax.jit(image_task.step)
    obs, s = obs0, state
    prev = []
    for _ in range(21):  # the straight drive: x = 78 after 21 steps
        prev.append(obs)
        obs, s, reward, done = step(jax.random.key(0), s, jnp.array([0.0, 0.5]))
        np.testing.assert_array_equal(obs[..., :3], prev[-1][..., 1:])  # the stack shifts
        np.testing.assert_array_equal(obs, s.frames)
    assert float(s.maze.x) == pytest.approx(78.0, abs=1e-4)
    assert float(obs.min()) >= 0.0 and float(obs.max()) <= 1.0
    frame = np.asarray(obs[..., -1])
    assert pixel_of(78.0, 184.0) == (75, 33)
    assert frame[75, 33] == pytest.approx(0.75)  # the disc moved along +x (columns)
    assert frame[75, 15] == 0.0  # and left its old place (floor there)
    # Channels hold the frames of steps 18, 19, 20, 21 (oldest first).
    for c in range(3):
        np.testing.assert_array_equal(obs[..., c], prev[18 + c][..., -1])
    # Dynamics identical to hard_maze.
    _, states, _, _ = run_steps(make_state(), jnp.tile(jnp.array([0.0, 0.5]), (21, 1)))
    assert float(s.maze.x) == float(states.x[-1])
    np.testing.assert_array_equal(image_task.behavior(obs, s), [s.maze.x, s.maze.y])
    assert bool(s.success) == bool(s.maze.success)


def test_image_without_goal():
    task = el.tasks.make("image_hard_maze", show_goal=False)
    obs, _ = task.reset(jax.random.key(0))
    assert float(obs[7, 13, 0]) == 0.0


# ---------------------------------------------------------------------------------------------
# (8) Registry and evaluate
# ---------------------------------------------------------------------------------------------


def test_registered():
    assert {"hard_maze", "image_hard_maze"} <= set(el.tasks.names())
    task = el.tasks.make("hard_maze")
    assert task.name == "hard_maze" and task.observation_shape == (11,)
    assert task.max_steps == 400 and task.behavior_size == 2
    space = task.action_space
    assert space.kind == "continuous" and tuple(space.shape) == (2,)
    np.testing.assert_array_equal(space.low, [-0.5, -0.5])
    np.testing.assert_array_equal(space.high, [0.5, 0.5])


def test_evaluate_mlp_population(task):
    policy = el.policies.for_task(task, hidden=(8,))
    pop = 4

    @jax.jit
    def run(key):
        init_key, eval_key = jax.random.split(key)
        population = jax.vmap(lambda k: init_params(policy, k, task.observation_shape))(
            jax.random.split(init_key, pop)
        )
        return el.evaluate(eval_key, task, policy, population)

    ev = run(jax.random.key(5))
    fitness, behavior = np.asarray(ev.fitness), np.asarray(ev.behavior)
    assert fitness.shape == (pop,) and behavior.shape == (pop, 2)
    assert np.isfinite(fitness).all() and (fitness <= 0).all()
    np.testing.assert_array_equal(np.asarray(ev.steps), 400)
    # The return is minus the final distance to the goal.
    np.testing.assert_allclose(fitness, -np.hypot(behavior[:, 0] - 31, behavior[:, 1] - 20),
                               rtol=1e-5)


def test_evaluate_image_task_short():
    task = el.tasks.make("image_hard_maze", max_steps=3)
    policy = el.policies.for_task(task, hidden=(2,))

    @jax.jit
    def run(key):
        init_key, eval_key = jax.random.split(key)
        population = jax.vmap(lambda k: init_params(policy, k, task.observation_shape))(
            jax.random.split(init_key, 2)
        )
        return el.evaluate(eval_key, task, policy, population)

    ev = run(jax.random.key(6))
    assert ev.behavior.shape == (2, 2)
    assert (np.asarray(ev.fitness) <= 0).all()
    np.testing.assert_array_equal(np.asarray(ev.steps), 3)


def test_draw_maze():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        assert draw_maze(ax) is ax
        assert len(ax.collections[0].get_segments()) == 13
        assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y inverted: the goal at the top
    finally:
        plt.close(fig)
