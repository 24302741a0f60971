"""The Breadcrumb Hard Maze of the safe-mutations paper (Lehman et al. 2017, arXiv:1712.06563).

The Hard Maze (:mod:`evojax_lab.tasks.hard_maze`, same walls, robot, sensors and dynamics, reused
from there) with a non-deceptive fitness: ``-B(x_final, y_final)``, where ``B`` is the length of
the shortest path from a position to the goal that avoids the walls (the "breadcrumb" trail), so
fitness rewards progress along the maze's corridors instead of straight-line closeness.

The distance grid ``B`` (:func:`breadcrumb_grid`) is computed once, in NumPy / SciPy, the first
time it is needed (then cached for the process):

* Grid: ``400 x 400`` square cells spanning the walls' bounding box (x in ``[3, 195]``, y in
  ``[5, 202]``): cell side ``h = 197 / 400 = 0.4925`` world units, the box centred (so x has a
  margin of 2.5 units each side). ``B[ix, iy]`` (x index first, as the paper's code indexes it)
  is the value of the cell covering world ``[x0 + ix h, x0 + (ix + 1) h) x [y0 + iy h,
  y0 + (iy + 1) h)``; a position is looked up in the cell containing it (the cell whose centre
  is nearest), clipped to the grid. (The paper's code indexes a 400 x 400 array of 1-unit
  cells with ``int(x), int(y)``; the difference is below one world unit.)
* Blocked cells: a cell is blocked when its centre lies within ``clearance = 1`` world unit
  (about two cells) of a wall segment: the walls are thin lines, as drawn. Wall ends that stop
  short of another wall leave gaps of at most 1.4 units in this maze, which this clearance
  closes (a clearance of 0.5 would let ``B`` leak through them); the robot (radius 8) can pass
  none of them either.
* Distances: breadth-first search from the goal's cell over free cells with 4-neighbour moves
  of length ``h``, i.e. the length of the shortest axis-aligned staircase path, in world units.
  This is the metric whose largest value matches the paper's: the largest ``B`` of a reachable
  cell is 635.3 (paper: "max ~ 634"), in the far corner ``(5, 51)`` of the dead-end pocket
  under the goal. The start, 164.1 from the goal in a straight line, is ``B = 513.2`` away; the
  trap pocket where plain distance fitness gets stuck (``(30, 65)``, 45 from the goal) is
  ``B = 596.4``. A staircase overestimates a diagonal straight line by up to ``sqrt 2``.
  ``breadcrumb_grid(clearance=ROBOT_RADIUS, diagonal=True)`` gives the configuration-space
  variant instead (cells closer than 8 to a wall blocked, 8-neighbour moves of ``h`` and
  ``h sqrt 2``): max 581.2, start 481.6, trap 567.1.
* Cells not reached (the walls, the outside of the maze) get the value of the nearest reached
  cell plus the Euclidean distance to it, so ``B`` is finite everywhere.

Episode and action repeat (the paper's code): an episode has ``max_steps = 400`` *maze* steps,
and the network is queried every ``action_repeat = 3`` maze steps, its action held in between.
One :func:`breadcrumb_hard_maze` step applies one policy action for ``action_repeat`` maze steps
(fewer at the end of the episode), so the task's ``max_steps`` (policy steps, what a rollout
counts) is ``ceil(400 / 3) = 134`` and the observation a policy sees is the one after the last of
its maze steps. ``reward`` is 0 on every step but the last, and ``-B(x, y)`` of the final
position at the last one, so an episode's return is ``-B(x_final, y_final)``.

Broken networks: if an action holds a NaN, the episode ends at that step with reward ``-1e8``
(``NAN_FITNESS``); the robot stays where it was (the paper's code stops the rollout there) and
its behavior is that last valid position (the paper's code reports ``(0, 0)``).

The behavior descriptor is the final position ``(x, y)``; ``state.success`` (within 10 of the goal
at any maze step) and ``state.goal_distance`` are the Hard Maze's.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.tasks.base import Task
from evojax_lab.tasks.hard_maze import (
    ACTION_SPACE,
    DEFAULT_MAX_STEPS,
    HARD_MAZE_GOAL,
    HARD_MAZE_WALLS,
    OBSERVATION_SIZE,
    HardMazeState,
    make_state,
    maze_step,
    observation,
)

#: Cells per side of the distance grid.
BREADCRUMB_RESOLUTION = 400
#: Cells whose centre is closer than this (world units) to a wall are blocked (thin walls).
BREADCRUMB_CLEARANCE = 1.0
#: Action repeat of the paper's maze experiments (maze steps per policy action).
DEFAULT_ACTION_REPEAT = 3
#: Return of an episode whose policy produced a NaN action.
NAN_FITNESS = -1e8


class BreadcrumbGrid(NamedTuple):
    """The breadcrumb distance grid (:func:`breadcrumb_grid`).

    Attributes:
        distances: ``[N, N]`` float32, ``distances[ix, iy]`` the shortest-path distance (world
            units) from the centre of cell ``(ix, iy)`` to the goal; read-only.
        origin: world ``(x0, y0)`` of the corner of cell ``(0, 0)``.
        cell_size: side of a (square) cell in world units.
        reachable: ``[N, N]`` bool, the free cells connected to the goal's cell.
    """

    distances: np.ndarray
    origin: tuple[float, float]
    cell_size: float
    reachable: np.ndarray

    def cell(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """NumPy ``(ix, iy)`` of the cell containing ``(x, y)``, clipped to the grid."""
        n = self.distances.shape[0]
        ix = np.clip(np.floor((np.asarray(x, np.float64) - self.origin[0]) / self.cell_size),
                     0, n - 1).astype(np.int64)
        iy = np.clip(np.floor((np.asarray(y, np.float64) - self.origin[1]) / self.cell_size),
                     0, n - 1).astype(np.int64)
        return ix, iy

    def lookup(self, x, y) -> np.ndarray:
        """NumPy ``B(x, y)`` (the value of the cell containing the point)."""
        return self.distances[self.cell(x, y)]

    def centre(self, ix, iy) -> tuple[np.ndarray, np.ndarray]:
        """World ``(x, y)`` of the centre of cell ``(ix, iy)``."""
        return (self.origin[0] + (np.asarray(ix) + 0.5) * self.cell_size,
                self.origin[1] + (np.asarray(iy) + 0.5) * self.cell_size)


def _wall_clearance(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest wall segment (float64, shape of ``px``)."""
    best = np.full(px.shape, np.inf)
    for x1, y1, x2, y2 in HARD_MAZE_WALLS.astype(np.float64):
        dx, dy = x2 - x1, y2 - y1
        u = np.clip(((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x1 + u * dx - px, y1 + u * dy - py))
    return best


@functools.lru_cache(maxsize=4)
def breadcrumb_grid(resolution: int = BREADCRUMB_RESOLUTION,
                    clearance: float = BREADCRUMB_CLEARANCE,
                    diagonal: bool = False) -> BreadcrumbGrid:
    """The breadcrumb distance grid (module docstring), computed once per set of arguments.

    Args:
        resolution: cells per side (400 in the paper).
        clearance: a cell is blocked when its centre is closer than this (world units) to a
            wall: 1 (thin walls, the default) or ``ROBOT_RADIUS`` (the robot's free space).
        diagonal: False: 4-neighbour moves (BFS, the default, whose max matches the paper's);
            True: 8-neighbour moves of length ``h`` and ``h sqrt 2`` (Dijkstra).
    """
    from scipy import ndimage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n = int(resolution)
    if n < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    lo = np.minimum(HARD_MAZE_WALLS[:, :2], HARD_MAZE_WALLS[:, 2:]).min(0).astype(np.float64)
    hi = np.maximum(HARD_MAZE_WALLS[:, :2], HARD_MAZE_WALLS[:, 2:]).max(0).astype(np.float64)
    h = float((hi - lo).max()) / n
    origin = tuple(float(c) for c in (lo + hi) / 2 - n * h / 2)
    centres = np.asarray(origin)[:, None] + (np.arange(n) + 0.5)[None, :] * h  # [2, n]
    px, py = np.meshgrid(centres[0], centres[1], indexing="ij")  # [n, n], [ix, iy]
    free = _wall_clearance(px, py) >= float(clearance)

    # Edges between free neighbours (the graph is undirected: half the directions suffice).
    index = np.arange(n * n).reshape(n, n)

    def shifted(d):  # slices of the "from" and "to" cells of a move by d along one axis
        return {0: (slice(0, n), slice(0, n)), 1: (slice(0, n - 1), slice(1, n)),
                -1: (slice(1, n), slice(0, n - 1))}[d]

    rows, cols, weights = [], [], []
    moves = ((1, 0), (0, 1), (1, 1), (1, -1)) if diagonal else ((1, 0), (0, 1))
    for dx, dy in moves:
        (ax, bx), (ay, by) = shifted(dx), shifted(dy)
        both = free[ax, ay] & free[bx, by]
        rows.append(index[ax, ay][both])
        cols.append(index[bx, by][both])
        weights.append(np.full(int(both.sum()), h * math.hypot(dx, dy)))
    rows, cols, weights = (np.concatenate(v) for v in (rows, cols, weights))
    graph = coo_matrix((weights, (rows, cols)), shape=(n * n, n * n)).tocsr()

    gx = int(np.floor((HARD_MAZE_GOAL[0] - origin[0]) / h))
    gy = int(np.floor((HARD_MAZE_GOAL[1] - origin[1]) / h))
    if not free[gx, gy]:
        raise ValueError(f"the goal's cell is blocked with clearance {clearance}")
    dist = dijkstra(graph, directed=False, indices=int(index[gx, gy])).reshape(n, n)
    reachable = np.isfinite(dist)
    # Unreached cells: nearest reached cell's value plus the distance to it.
    gap, (jx, jy) = ndimage.distance_transform_edt(~reachable, sampling=h, return_indices=True)
    dist = np.where(reachable, dist, dist[jx, jy] + gap).astype(np.float32)
    dist.setflags(write=False)
    reachable.setflags(write=False)
    return BreadcrumbGrid(distances=dist, origin=origin, cell_size=h, reachable=reachable)


def breadcrumb_distance(x, y, grid: BreadcrumbGrid | None = None) -> jax.Array:
    """``B(x, y)`` in JAX (jittable, vmappable): the grid value of the cell containing the point
    (clipped to the grid). ``grid`` defaults to :func:`breadcrumb_grid` ``()``."""
    grid = breadcrumb_grid() if grid is None else grid
    n = grid.distances.shape[0]
    fx = (jnp.asarray(x, jnp.float32) - grid.origin[0]) / grid.cell_size
    fy = (jnp.asarray(y, jnp.float32) - grid.origin[1]) / grid.cell_size
    ix = jnp.clip(jnp.floor(fx), 0, n - 1).astype(jnp.int32)
    iy = jnp.clip(jnp.floor(fy), 0, n - 1).astype(jnp.int32)
    return jnp.asarray(grid.distances)[ix, iy]


class BreadcrumbState(NamedTuple):
    """State of :func:`breadcrumb_hard_maze`.

    Attributes:
        maze: the :class:`~evojax_lab.tasks.hard_maze.HardMazeState` (``maze.t`` counts maze
            steps).
        broken: True once an action held a NaN (the episode ended there).
    """

    maze: HardMazeState
    broken: jax.Array

    @property
    def success(self) -> jax.Array:
        return self.maze.success

    @property
    def goal_distance(self) -> jax.Array:
        return self.maze.goal_distance


def _behavior(obs, state: BreadcrumbState) -> jax.Array:
    del obs
    return jnp.stack([state.maze.x, state.maze.y]).astype(jnp.float32)


def breadcrumb_hard_maze(max_steps: int = DEFAULT_MAX_STEPS,
                         action_repeat: int = DEFAULT_ACTION_REPEAT) -> Task:
    """The Breadcrumb Hard Maze (module docstring).

    Args:
        max_steps: maze steps per episode (400).
        action_repeat: maze steps per policy action (3); the task's ``max_steps`` is
            ``ceil(max_steps / action_repeat)`` policy steps.

    Returns:
        A :class:`~evojax_lab.tasks.Task` with the Hard Maze's 11-float observation and action
        space, return ``-B(x_final, y_final)`` (``-1e8`` for a NaN action) and behavior
        ``[x, y]``.
    """
    max_steps, action_repeat = int(max_steps), int(action_repeat)
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if action_repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
    grid = breadcrumb_grid()

    def reset(key):
        del key
        maze = make_state()
        return observation(maze), BreadcrumbState(maze=maze, broken=jnp.zeros((), bool))

    def step(key, state, action):
        del key
        a = jnp.reshape(jnp.asarray(action, jnp.float32), (2,))
        nan = jnp.any(jnp.isnan(a))
        was_done = state.broken | (state.maze.t >= max_steps)
        maze = state.maze
        for _ in range(action_repeat):
            new, _, _ = maze_step(maze, a, max_steps)
            active = maze.t < max_steps
            maze = jax.tree.map(lambda n, o, active=active: jnp.where(active, n, o), new, maze)
        # A NaN action: the robot stays where it was and the episode ends.
        maze = jax.tree.map(lambda n, o: jnp.where(nan, o, n), maze, state.maze)
        broken = state.broken | nan
        done = broken | (maze.t >= max_steps)
        final = jnp.where(broken, NAN_FITNESS, -breadcrumb_distance(maze.x, maze.y, grid))
        reward = jnp.where(done & ~was_done, final, 0.0).astype(jnp.float32)
        return observation(maze), BreadcrumbState(maze=maze, broken=broken), reward, done

    return Task(
        name="breadcrumb_hard_maze",
        reset=reset,
        step=step,
        behavior=_behavior,
        observation_shape=(OBSERVATION_SIZE,),
        action_space=ACTION_SPACE,
        max_steps=-(-max_steps // action_repeat),
        behavior_size=2,
    )
