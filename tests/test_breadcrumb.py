"""The Breadcrumb Hard Maze (``breadcrumb_hard_maze``, safe-mutations paper).

Expected values: an independent breadth-first search written here (from the walls retyped from
the specification), distances worked out by hand in the comments, and the plain Hard Maze's own
dynamics for the action-repeat equivalence.
"""

from __future__ import annotations

import math
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.tasks.breadcrumb import BreadcrumbState, breadcrumb_distance, breadcrumb_grid
from evojax_lab.tasks.hard_maze import make_state, maze_step

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


def euclid(p, q=GOAL):
    return math.hypot(p[0] - q[0], p[1] - q[1])


@pytest.fixture(scope="module")
def grid():
    return breadcrumb_grid()


@pytest.fixture(scope="module")
def task():
    return el.tasks.make("breadcrumb_hard_maze")


@pytest.fixture(scope="module")
def step(task):
    return jax.jit(task.step)


# ---------------------------------------------------------------------------------------------
# The distance grid
# ---------------------------------------------------------------------------------------------


def test_grid_geometry(grid):
    # Walls span x 3..195, y 5..202: 197 units over 400 cells, h = 0.4925; the x range (192)
    # centred: x0 = 99 - 200 h = 0.5; y0 = 103.5 - 200 h = 5.
    assert grid.distances.shape == (400, 400) and grid.distances.dtype == np.float32
    assert grid.cell_size == pytest.approx(0.4925)
    assert grid.origin == pytest.approx((0.5, 5.0))
    assert np.isfinite(grid.distances).all()
    # The goal (31, 20) lies in cell (floor(30.5 / h), floor(15 / h)) = (61, 30).
    assert tuple(int(i) for i in grid.cell(*GOAL)) == (61, 30)
    assert grid.distances[61, 30] == 0.0 and float(grid.lookup(*GOAL)) == 0.0
    # A blocked cell on the wall x = 56 takes its nearest reached neighbour's value plus the
    # distance to it (under 1.5 units): here the trap side's, (54.5, 100).
    blocked = grid.cell(56.0, 100.0)
    assert not grid.reachable[blocked] and grid.reachable[grid.cell(54.5, 100.0)]
    assert 0 < grid.distances[blocked] - float(grid.lookup(54.5, 100.0)) < 1.5


def _independent_bfs(n, clearance=1.0):
    """BFS (4 neighbours) from the goal's cell on an n x n grid over the walls' bounding box."""
    h = 197.0 / n
    x0, y0 = 99.0 - n * h / 2, 103.5 - n * h / 2
    c = (np.arange(n) + 0.5) * h
    px, py = np.meshgrid(x0 + c, y0 + c, indexing="ij")
    clear = np.full((n, n), np.inf)
    for x1, y1, x2, y2 in SPEC_WALLS:
        a, d = np.array([x1, y1]), np.array([x2 - x1, y2 - y1])
        u = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / d.dot(d), 0, 1)
        clear = np.minimum(clear, np.hypot(a[0] + u * d[0] - px, a[1] + u * d[1] - py))
    free = clear >= clearance
    steps = np.full((n, n), -1)
    g = (int((GOAL[0] - x0) // h), int((GOAL[1] - y0) // h))
    steps[g] = 0
    queue = deque([g])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < n and 0 <= b < n and free[a, b] and steps[a, b] < 0:
                steps[a, b] = steps[i, j] + 1
                queue.append((a, b))
    return steps, h


def test_grid_matches_independent_bfs():
    n = 160
    steps, h = _independent_bfs(n)
    coarse = breadcrumb_grid(n)
    reached = steps >= 0
    np.testing.assert_array_equal(coarse.reachable, reached)
    np.testing.assert_allclose(coarse.distances[reached], steps[reached] * h, rtol=1e-6)



def test_known_distances(grid):
    # Straight, free corridors to the goal: along the top corridor (y = 20) the distance is
    # |dx| (up to half a cell at each end); in the goal's room a staircase path is |dx| + |dy|.
    assert float(grid.lookup(100.0, 20.0)) == pytest.approx(69.0, abs=1.0)
    assert float(grid.lookup(60.0, 20.0)) == pytest.approx(29.0, abs=1.0)
    assert float(grid.lookup(45.0, 35.0)) == pytest.approx(14.0 + 15.0, abs=1.0)
    # Around the tip (133, 30) of the diagonal wall: (140, 30) -> up to the corridor and left,
    # |140 - 31| + |30 - 20| = 119.
    assert float(grid.lookup(140.0, 30.0)) == pytest.approx(119.0, abs=1.5)
    # The paper's maximum is ~634: the far corner of the dead-end pocket under the goal.
    top = grid.distances[grid.reachable].max()
    assert 625.0 < top < 645.0
    ix, iy = np.unravel_index(np.argmax(np.where(grid.reachable, grid.distances, -1)),
                              grid.distances.shape)
    x, y = grid.centre(ix, iy)
    assert x < 56 and 49 < y < 80  # in the pocket left of x = 56, between y 49 and 80


# Points along the maze's only route from the start to the goal, in order: right along the
# bottom and over the tip (108, 164), to the lower right, up-left through the channel between
# the walls (57,106)-(158,162) and (192,146)-(87,91), round the tip (87, 91), right past the
# tip (133, 30) and left along the top corridor.
ROUTE = [START, (60, 175), (100, 150), (130, 175), (170, 180), (175, 160), (150, 140),
         (130, 130), (100, 110), (75, 100), (70, 80), (90, 75), (120, 60), (140, 30),
         (100, 20), (60, 20), GOAL]
TRAP = (30.0, 65.0)  # the dead end under the goal where plain distance fitness gets stuck


def test_breadcrumb_decreases_along_the_route(grid):
    values = [float(grid.lookup(*p)) for p in ROUTE]
    assert all(np.diff(values) < 0), values
    assert all(grid.reachable[grid.cell(*p)] for p in ROUTE)
    # The path is long where the straight line is short: the deception of the Hard Maze.
    assert values[0] > 3 * euclid(START)  # 513 vs 164
    trap = float(grid.lookup(*TRAP))
    assert euclid(TRAP) < 50 < euclid(START)
    assert trap > values[0]  # farther than the start along the maze (596 vs 513)
    for p in [(100, 150), (150, 140), (90, 75), (120, 60)]:
        assert trap > float(grid.lookup(*p)) + 150


def test_configuration_space_variant():
    # Cells closer than the robot radius 8 to a wall blocked, 8-neighbour moves (Dijkstra).
    cspace = breadcrumb_grid(160, clearance=8.0, diagonal=True)
    # (45, 35) sees the goal along a free straight line, dx = 14, dy = 15: the shortest
    # 8-neighbour path is max(14, 15) + (sqrt 2 - 1) * min(14, 15) = 20.80 (Euclidean 20.52).
    assert float(cspace.lookup(45.0, 35.0)) == pytest.approx(15 + (math.sqrt(2) - 1) * 14,
                                                             abs=2.0)
    assert not cspace.reachable[cspace.cell(56.0 + 7.0, 100.0)]  # 7 from the wall x = 56
    assert float(cspace.lookup(*TRAP)) > float(cspace.lookup(*START)) > 2.5 * euclid(START)


def test_jax_lookup_matches_numpy(grid):
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-5, 205, 50), rng.uniform(0, 210, 50)
    got = jax.jit(breadcrumb_distance)(jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32))
    np.testing.assert_array_equal(np.asarray(got), grid.lookup(xs, ys))


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------


def test_registered_task(task):
    assert "breadcrumb_hard_maze" in el.tasks.names()
    assert task.name == "breadcrumb_hard_maze"
    assert task.max_steps == 134  # ceil(400 / 3) policy steps
    assert task.observation_shape == (11,) and task.behavior_size == 2
    assert tuple(task.action_space.shape) == (2,)
    assert el.tasks.breadcrumb_hard_maze(action_repeat=1).max_steps == 400
    with pytest.raises(ValueError, match="action_repeat"):
        el.tasks.breadcrumb_hard_maze(action_repeat=0)


@pytest.fixture(scope="module")
def plain_run():
    """The plain Hard Maze dynamics over a list of actions: positions after every step."""

    @jax.jit
    def run(actions):
        def body(state, a):
            state, _, _ = maze_step(state, a, 400)
            return state, jnp.stack([state.x, state.y])

        return jax.lax.scan(body, make_state(), actions)[1]

    return run


@pytest.fixture(scope="module")
def task_run(task):
    @jax.jit
    def run(actions):
        def body(state, a):
            obs, state, reward, done = task.step(jax.random.key(0), state, a)
            return state, (jnp.stack([state.maze.x, state.maze.y]), state.maze.t, reward, done)

        return jax.lax.scan(body, task.reset(jax.random.key(0))[1], actions)[1]

    return run


def test_action_repeat_matches_plain_maze(plain_run, task_run, grid):
    rng = np.random.default_rng(1)
    actions = rng.uniform(-0.6, 0.6, size=(134, 2)).astype(np.float32)
    pos, t, rewards, dones = (np.asarray(v) for v in task_run(actions))
    # The same actions, each held for 3 maze steps, 400 maze steps in all.
    plain = np.asarray(plain_run(np.repeat(actions, 3, axis=0)[:400]))
    np.testing.assert_array_equal(t, [min(3 * (k + 1), 400) for k in range(134)])
    np.testing.assert_allclose(pos, plain[np.minimum(3 * np.arange(1, 135), 400) - 1], atol=1e-4)
    np.testing.assert_array_equal(dones, np.arange(1, 135) == 134)
    np.testing.assert_array_equal(rewards[:-1], 0.0)
    assert rewards[-1] == pytest.approx(-float(grid.lookup(*pos[-1])))
    # A constant action: ends where the plain maze ends after 400 steps.
    const = np.tile(np.array([[0.1, 0.5]], np.float32), (134, 1))
    pos, _, rewards, _ = (np.asarray(v) for v in task_run(const))
    end = np.asarray(plain_run(np.tile(const[:1], (400, 1))))[-1]
    np.testing.assert_allclose(pos[-1], end, atol=1e-4)


def test_rollout_return_and_behavior(task, grid):
    policy = lambda params, obs: params  # a constant action
    ret, length, behavior = jax.jit(lambda p: el.rollout(jax.random.key(0), task, policy, p))(
        jnp.array([0.0, 0.5])
    )
    # Straight ahead from (36, 184): the robot stops against the wall (77,201)-(108,164) at
    # (78, 184), as in test_hard_maze's straight drive; the return is minus the breadcrumb
    # distance of that point.
    assert int(length) == 134
    x, y = np.asarray(behavior)
    assert (x, y) == pytest.approx((78.0, 184.0), abs=1e-4)
    assert float(ret) == pytest.approx(-float(grid.lookup(x, y)))
    assert float(ret) < -euclid((x, y)) * 2


def test_nan_action(task, step):
    obs, state = task.reset(jax.random.key(0))
    for _ in range(5):
        obs, state, reward, done = step(jax.random.key(0), state, jnp.array([0.2, 0.5]))
        assert float(reward) == 0.0 and not bool(done)
    before = (float(state.maze.x), float(state.maze.y), int(state.maze.t))
    obs, state, reward, done = step(jax.random.key(0), state, jnp.array([jnp.nan, 0.5]))
    assert isinstance(state, BreadcrumbState) and bool(state.broken)
    assert float(reward) == -1e8 and bool(done)
    assert (float(state.maze.x), float(state.maze.y), int(state.maze.t)) == before
    assert np.isfinite(np.asarray(obs)).all()
    np.testing.assert_array_equal(task.behavior(obs, state), before[:2])
    # Through a rollout: a NaN policy's return is -1e8 after one step.
    ret, length, _ = el.rollout(jax.random.key(0), task, lambda p, o: p * o[:2],
                                jnp.array([jnp.nan, 1.0]))
    assert float(ret) == -1e8 and int(length) == 1


def test_short_episode():
    # 10 maze steps with action repeat 3: 4 policy steps (3 + 3 + 3 + 1 maze steps).
    task = el.tasks.breadcrumb_hard_maze(max_steps=10, action_repeat=3)
    assert task.max_steps == 4
    _, state = task.reset(jax.random.key(0))
    for k in range(4):
        _, state, reward, done = task.step(jax.random.key(0), state, jnp.array([0.0, 0.5]))
        assert int(state.maze.t) == min(3 * (k + 1), 10)
        assert bool(done) == (k == 3)
    # Speed 0.2, 0.4, ..., 2.0 along +x: x = 36 + 0.2 * (1 + ... + 10) = 47.
    assert float(state.maze.x) == pytest.approx(47.0, abs=1e-4)
    assert float(reward) == pytest.approx(-float(breadcrumb_grid().lookup(47.0, 184.0)))
