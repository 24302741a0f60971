"""The Hard Maze of Lehman & Stanley's novelty search (a deceptive 2-D navigation task).

A round robot (radius :data:`ROBOT_RADIUS` = 8) starts at :data:`HARD_MAZE_START` = (36, 184)
with heading 0 degrees and must reach :data:`HARD_MAZE_GOAL` = (31, 20) within 400 steps. The
maze is the 13 wall segments :data:`HARD_MAZE_WALLS` (``[13, 4]`` rows ``x1 y1 x2 y2``). Heading
is in degrees, ``(vx, vy) = (cos h, sin h) * speed``; whether y grows up or down only matters
for plotting (:func:`draw_maze` puts the goal at the top, y growing downward).

Two tasks share the dynamics:

* :func:`hard_maze` (``el.tasks.make("hard_maze")``): an 11-float observation
  ``[bias 1, 6 rangefinders, 4 goal-radar slices]``.
* :func:`image_hard_maze` (``"image_hard_maze"``): an ``[84, 84, 4]`` float32 stack of overhead
  grayscale renderings (see :func:`render`).

Dynamics of one step (:func:`maze_step`), for an action ``a`` of shape ``(2,)``:

1. ``o = clip(a + 0.5, 0, 1)`` (so the nominal range is ``[-0.5, 0.5]``; anything outside is
   clipped); targets ``w* = (o[0] - 0.5) * 6`` (angular velocity, degrees per step) and
   ``v* = (o[1] - 0.5) * 6`` (speed).
2. Angular velocity and speed each move toward their target by at most
   :data:`MAX_ACCELERATION` = 0.2, then are clipped to ``[-3, 3]``.
3. ``vx = cos(h) * v``, ``vy = sin(h) * v`` with the heading ``h`` *before* this step's turn;
   then ``h += w``, wrapped into ``[0, 360]`` (one +-360 correction).
4. The move ``(x + vx, y + vy)`` is rejected as a whole (the robot stays put, speed and heading
   keep their new values) if the new position is closer than ``ROBOT_RADIUS`` to any wall
   (point-to-segment distance, :func:`collides`). Collisions never end the episode.
5. ``t += 1``; ``done = t >= max_steps``; the reward is 0 on every step but the last, and
   ``-(distance to the goal)`` at ``t == max_steps`` (so an episode's return is ``-final
   distance``). ``success`` turns (and stays) True once the robot is within
   :data:`SUCCESS_RADIUS` = 10 of the goal (distance ``<= 10``) at any step.

The sensors are computed from the new state (:func:`observation`): rangefinders at
``-90, -45, 0, 45, 90, -180`` degrees relative to the heading, each the distance to the nearest
wall crossing of a ray of length 100, divided by 100 (1 when the ray hits nothing); four radar
slices, 1 when the goal's bearing relative to the heading, ``atan2(gy - y, gx - x)`` in degrees
minus the heading, wrapped into ``[0, 360)``, lies in ``[315, 405)`` (i.e. ``[315, 360)`` or
``[0, 45)``), ``[45, 135)``, ``[135, 225)``, ``[225, 315)`` respectively. Angles are converted
with the reference's ``pi = 3.1415926``; everything is float32, jittable and vmappable. The keys
passed to ``reset`` / ``step`` are ignored (the task is deterministic).

The behavior descriptor of both tasks is the final position ``(x, y)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.tasks.base import ActionSpace, Task

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

#: The 13 wall segments, ``[13, 4]`` float32 rows ``(x1, y1, x2, y2)``.
HARD_MAZE_WALLS = np.array(
    [
        [41, 5, 3, 8],
        [3, 8, 4, 49],
        [4, 49, 57, 53],
        [4, 49, 7, 202],
        [7, 202, 195, 198],
        [195, 198, 186, 8],
        [186, 8, 39, 5],
        [56, 54, 56, 157],
        [57, 106, 158, 162],
        [77, 201, 108, 164],
        [6, 80, 33, 121],
        [192, 146, 87, 91],
        [56, 55, 133, 30],
    ],
    dtype=np.float32,
)
HARD_MAZE_WALLS.setflags(write=False)
#: Start position ``(x, y)``; the start heading is :data:`HARD_MAZE_START_HEADING`.
HARD_MAZE_START = np.array([36.0, 184.0], dtype=np.float32)
HARD_MAZE_START.setflags(write=False)
HARD_MAZE_START_HEADING = 0.0
#: Goal position ``(x, y)``.
HARD_MAZE_GOAL = np.array([31.0, 20.0], dtype=np.float32)
HARD_MAZE_GOAL.setflags(write=False)

#: The reference implementation's pi.
PI = 3.1415926
ROBOT_RADIUS = 8.0
SUCCESS_RADIUS = 10.0
MAX_SPEED = 3.0
MAX_ANGULAR_VELOCITY = 3.0
#: Largest change of speed / angular velocity in one step.
MAX_ACCELERATION = 0.2
RANGEFINDER_RANGE = 100.0
#: Rangefinder directions relative to the heading, in degrees (observation order).
RANGEFINDER_ANGLES = np.array([-90.0, -45.0, 0.0, 45.0, 90.0, -180.0], dtype=np.float32)
RANGEFINDER_ANGLES.setflags(write=False)
#: Radar slices ``[lo, hi)`` in degrees of the goal's bearing relative to the heading.
RADAR_SLICES = np.array([[315.0, 405.0], [45.0, 135.0], [135.0, 225.0], [225.0, 315.0]],
                        dtype=np.float32)
RADAR_SLICES.setflags(write=False)
DEFAULT_MAX_STEPS = 400
#: Size of the flat observation: bias, 6 rangefinders, 4 radar slices.
OBSERVATION_SIZE = 11


def _deg2rad(degrees):
    return degrees / 180.0 * PI


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


class HardMazeState(NamedTuple):
    """State of one robot (all scalars).

    Attributes:
        x, y: position (float32).
        heading: degrees in ``[0, 360]`` (float32).
        ang_vel: angular velocity, degrees per step, in ``[-3, 3]`` (float32).
        speed: units per step, in ``[-3, 3]`` (float32).
        t: steps taken (int32); the episode is done at ``t == max_steps``.
        success: True once the robot has been within ``SUCCESS_RADIUS`` of the goal (sticky).
        goal_distance: distance from ``(x, y)`` to the goal (float32); after the last step it is
            ``-return``.
        collided: True if the last step's move was rejected by a wall.
    """

    x: jax.Array
    y: jax.Array
    heading: jax.Array
    ang_vel: jax.Array
    speed: jax.Array
    t: jax.Array
    success: jax.Array
    goal_distance: jax.Array
    collided: jax.Array


def goal_distance(x, y) -> jax.Array:
    """Euclidean distance from ``(x, y)`` to :data:`HARD_MAZE_GOAL`."""
    dx = jnp.asarray(x, jnp.float32) - HARD_MAZE_GOAL[0]
    dy = jnp.asarray(y, jnp.float32) - HARD_MAZE_GOAL[1]
    return jnp.sqrt(dx * dx + dy * dy)


def make_state(x=HARD_MAZE_START[0], y=HARD_MAZE_START[1], heading=HARD_MAZE_START_HEADING,
               ang_vel=0.0, speed=0.0, t=0, success=None) -> HardMazeState:
    """A :class:`HardMazeState` at ``(x, y)`` (defaults: the start state).

    ``goal_distance`` is computed; ``success`` defaults to ``goal_distance <= SUCCESS_RADIUS``.
    Useful to place the robot anywhere (tests, visualisation); the position is not checked
    against the walls.
    """
    f = lambda v: jnp.asarray(v, jnp.float32)
    dist = goal_distance(x, y)
    success = dist <= SUCCESS_RADIUS if success is None else jnp.asarray(success, bool)
    return HardMazeState(
        x=f(x), y=f(y), heading=f(heading), ang_vel=f(ang_vel), speed=f(speed),
        t=jnp.asarray(t, jnp.int32), success=success, goal_distance=dist,
        collided=jnp.zeros((), bool),
    )


# ---------------------------------------------------------------------------------------------
# Geometry and sensors
# ---------------------------------------------------------------------------------------------


def wall_distances(x, y) -> jax.Array:
    """``[13]`` distances from the point ``(x, y)`` to each wall segment."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    ax, ay, bx, by = (jnp.asarray(HARD_MAZE_WALLS[:, i]) for i in range(4))
    dx, dy = bx - ax, by - ay
    u = ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)
    u = jnp.clip(u, 0.0, 1.0)
    px, py = ax + u * dx - x, ay + u * dy - y
    return jnp.sqrt(px * px + py * py)


def collides(x, y) -> jax.Array:
    """True if a robot at ``(x, y)`` is closer than ``ROBOT_RADIUS`` to a wall."""
    return jnp.any(wall_distances(x, y) < ROBOT_RADIUS)


def rangefinders(x, y, heading) -> jax.Array:
    """``[6]`` rangefinder readings (in the order of :data:`RANGEFINDER_ANGLES`), each the
    distance to the nearest wall crossing along a ray of length 100, divided by 100; 1 if the
    ray crosses no wall. Crossings count strictly inside both segments (the reference's test)."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    heading = jnp.asarray(heading, jnp.float32)
    rad = _deg2rad(jnp.asarray(RANGEFINDER_ANGLES)) + _deg2rad(heading)  # [6]
    rx = (jnp.cos(rad) * RANGEFINDER_RANGE)[:, None]  # B - A, [6, 1]
    ry = (jnp.sin(rad) * RANGEFINDER_RANGE)[:, None]
    cx, cy, ex, ey = (jnp.asarray(HARD_MAZE_WALLS[:, i])[None, :] for i in range(4))  # [1, 13]
    wx, wy = ex - cx, ey - cy  # D - C
    acx, acy = x - cx, y - cy  # A - C
    r_top = acy * wx - acx * wy
    s_top = acy * rx - acx * ry
    bot = rx * wy - ry * wx  # [6, 13]
    nonzero = bot != 0.0
    safe = jnp.where(nonzero, bot, 1.0)
    r = r_top / safe
    s = s_top / safe
    hit = nonzero & (r > 0.0) & (r < 1.0) & (s > 0.0) & (s < 1.0)
    dist = jnp.where(hit, r * RANGEFINDER_RANGE, RANGEFINDER_RANGE)
    return jnp.min(dist, axis=1) / RANGEFINDER_RANGE


def goal_bearing(x, y, heading) -> jax.Array:
    """The goal's bearing relative to the heading, degrees in ``[0, 360)``."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    angle = jnp.arctan2(HARD_MAZE_GOAL[1] - y, HARD_MAZE_GOAL[0] - x) / PI * 180.0
    angle = jnp.mod(angle - jnp.asarray(heading, jnp.float32), 360.0)
    # mod of a tiny negative number rounds to 360.0 in float32.
    return jnp.where(angle >= 360.0, angle - 360.0, angle)


def radar(x, y, heading) -> jax.Array:
    """``[4]`` goal-radar slices (float32 0/1, exactly one is 1), see :data:`RADAR_SLICES`."""
    angle = goal_bearing(x, y, heading)
    lo = jnp.asarray(RADAR_SLICES[:, 0])
    hi = jnp.asarray(RADAR_SLICES[:, 1])
    inside = ((angle >= lo) & (angle < hi)) | ((angle + 360.0 >= lo) & (angle + 360.0 < hi))
    return inside.astype(jnp.float32)


def observation(state: HardMazeState) -> jax.Array:
    """``[11]`` float32: ``[1, 6 rangefinders, 4 radar slices]``."""
    return jnp.concatenate(
        [
            jnp.ones((1,), jnp.float32),
            rangefinders(state.x, state.y, state.heading),
            radar(state.x, state.y, state.heading),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Dynamics
# ---------------------------------------------------------------------------------------------


def _approach(value, target):
    value = value + jnp.clip(target - value, -MAX_ACCELERATION, MAX_ACCELERATION)
    return jnp.clip(value, -MAX_SPEED, MAX_SPEED)


def maze_step(state: HardMazeState, action, max_steps: int = DEFAULT_MAX_STEPS):
    """One step of the dynamics (module docstring). Returns ``(state, reward, done)``."""
    a = jnp.reshape(jnp.asarray(action, jnp.float32), (2,))
    o = jnp.clip(a + 0.5, 0.0, 1.0)
    ang_vel = _approach(state.ang_vel, (o[0] - 0.5) * 6.0)
    speed = _approach(state.speed, (o[1] - 0.5) * 6.0)
    rad = _deg2rad(state.heading)
    vx = jnp.cos(rad) * speed
    vy = jnp.sin(rad) * speed
    heading = state.heading + ang_vel
    heading = jnp.where(heading > 360.0, heading - 360.0, heading)
    heading = jnp.where(heading < 0.0, heading + 360.0, heading)
    nx, ny = state.x + vx, state.y + vy
    collided = collides(nx, ny)
    x = jnp.where(collided, state.x, nx)
    y = jnp.where(collided, state.y, ny)
    t = state.t + 1
    dist = goal_distance(x, y)
    new = HardMazeState(
        x=x, y=y, heading=heading, ang_vel=ang_vel, speed=speed, t=t,
        success=state.success | (dist <= SUCCESS_RADIUS), goal_distance=dist, collided=collided,
    )
    reward = jnp.where(t == max_steps, -dist, 0.0).astype(jnp.float32)
    done = t >= max_steps
    return new, reward, done


def position_behavior(obs, state) -> jax.Array:
    """Behavior descriptor: the final position ``[x, y]`` (float32)."""
    del obs
    maze = state.maze if isinstance(state, ImageHardMazeState) else state
    return jnp.stack([maze.x, maze.y]).astype(jnp.float32)


#: Nominal action bounds; values outside are clipped by the dynamics (``clip(a + 0.5, 0, 1)``).
ACTION_SPACE = ActionSpace(
    "continuous",
    shape=(2,),
    low=np.full((2,), -0.5, np.float32),
    high=np.full((2,), 0.5, np.float32),
)


def _check_max_steps(max_steps) -> int:
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    return int(max_steps)


def hard_maze(max_steps: int = DEFAULT_MAX_STEPS) -> Task:
    """The Hard Maze with the 11-float sensor observation (module docstring).

    ``state`` is a :class:`HardMazeState` (``state.success``, ``state.goal_distance``); the
    return of an episode is ``-state.goal_distance`` of its final state; behavior ``[x, y]``.
    """
    max_steps = _check_max_steps(max_steps)

    def reset(key):
        del key
        state = make_state()
        return observation(state), state

    def step(key, state, action):
        del key
        state, reward, done = maze_step(state, action, max_steps)
        return observation(state), state, reward, done

    return Task(
        name="hard_maze",
        reset=reset,
        step=step,
        behavior=position_behavior,
        observation_shape=(OBSERVATION_SIZE,),
        action_space=ACTION_SPACE,
        max_steps=max_steps,
        behavior_size=2,
    )


# ---------------------------------------------------------------------------------------------
# Image observations
# ---------------------------------------------------------------------------------------------

#: Side of a rendered frame in pixels.
IMAGE_SIZE = 84
#: Frames in the observation stack.
FRAME_STACK = 4
#: World units of blank border around the walls' bounding box.
IMAGE_MARGIN = 2.0
_BBOX_LO = np.minimum(HARD_MAZE_WALLS[:, :2], HARD_MAZE_WALLS[:, 2:]).min(axis=0)  # (3, 5)
_BBOX_HI = np.maximum(HARD_MAZE_WALLS[:, :2], HARD_MAZE_WALLS[:, 2:]).max(axis=0)  # (195, 202)
#: World units per pixel: the longer side of the bounding box plus margins over 84 pixels
#: (``(197 + 4) / 84``), the same along x and y (aspect ratio kept).
IMAGE_UNITS_PER_PIXEL = float((_BBOX_HI - _BBOX_LO).max() + 2 * IMAGE_MARGIN) / IMAGE_SIZE
#: World ``(x, y)`` of the image's corner (top-left of pixel ``[0, 0]``): the bounding box is
#: centred, ``(-1.5, 3.0)``.
IMAGE_ORIGIN = tuple(
    float((lo + hi) / 2 - IMAGE_SIZE * IMAGE_UNITS_PER_PIXEL / 2)
    for lo, hi in zip(_BBOX_LO, _BBOX_HI, strict=True)
)
#: Gray levels: walls, goal disc (radius ``SUCCESS_RADIUS``) and robot disc (``ROBOT_RADIUS``).
WALL_VALUE, GOAL_VALUE, ROBOT_VALUE = 1.0, 0.5, 0.75


def world_to_pixel(x, y):
    """Continuous ``(row, col)`` image coordinates of world ``(x, y)``.

    Pixel ``[i, j]`` covers rows ``[i, i + 1)`` and columns ``[j, j + 1)``, i.e. its centre is
    world ``(IMAGE_ORIGIN[0] + (j + 0.5) * u, IMAGE_ORIGIN[1] + (i + 0.5) * u)`` with
    ``u = IMAGE_UNITS_PER_PIXEL``: columns follow x, rows follow y (row 0 is the smallest y, the
    goal's side, so an image shows the maze as :func:`draw_maze` does).
    """
    u = IMAGE_UNITS_PER_PIXEL
    return (y - IMAGE_ORIGIN[1]) / u, (x - IMAGE_ORIGIN[0]) / u


def _pixel_centres() -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    u = IMAGE_UNITS_PER_PIXEL
    px = IMAGE_ORIGIN[0] + idx[None, :] * u + np.zeros((IMAGE_SIZE, 1))
    py = IMAGE_ORIGIN[1] + idx[:, None] * u + np.zeros((1, IMAGE_SIZE))
    return px, py


def _disc_coverage(dist, radius):
    """Approximate pixel coverage of a disc: 1 inside, 0 outside, linear over one pixel."""
    return np.clip((radius - dist) / IMAGE_UNITS_PER_PIXEL + 0.5, 0.0, 1.0)


def _static_image(show_goal: bool) -> np.ndarray:
    px, py = _pixel_centres()
    a = HARD_MAZE_WALLS[:, :2].astype(np.float64)
    b = HARD_MAZE_WALLS[:, 2:].astype(np.float64)
    d = b - a
    p = np.stack([px, py], -1)[:, :, None, :]  # [H, W, 1, 2]
    u = np.clip(((p - a) * d).sum(-1) / (d * d).sum(-1), 0.0, 1.0)  # [H, W, 13]
    dist = np.linalg.norm(a + u[..., None] * d - p, axis=-1).min(-1)
    # Lines about two pixels wide, soft-edged.
    image = WALL_VALUE * np.clip(1.5 - dist / IMAGE_UNITS_PER_PIXEL, 0.0, 1.0)
    if show_goal:
        goal = np.hypot(px - HARD_MAZE_GOAL[0], py - HARD_MAZE_GOAL[1])
        image = np.maximum(image, GOAL_VALUE * _disc_coverage(goal, SUCCESS_RADIUS))
    return image.astype(np.float32)


#: Static background frames ``[84, 84]`` (walls only / walls and goal), built once at import.
MAZE_IMAGE = _static_image(show_goal=False)
MAZE_IMAGE_WITH_GOAL = _static_image(show_goal=True)
MAZE_IMAGE.setflags(write=False)
MAZE_IMAGE_WITH_GOAL.setflags(write=False)
_PIXEL_X, _PIXEL_Y = (c.astype(np.float32) for c in _pixel_centres())


def render(x, y, show_goal: bool = True) -> jax.Array:
    """One ``[84, 84]`` float32 frame in ``[0, 1]``: the static walls (and goal disc) with the
    robot drawn on top as a filled disc of radius ``ROBOT_RADIUS`` (soft one-pixel edge)."""
    background = jnp.asarray(MAZE_IMAGE_WITH_GOAL if show_goal else MAZE_IMAGE)
    dist = jnp.hypot(jnp.asarray(_PIXEL_X) - x, jnp.asarray(_PIXEL_Y) - y)
    cover = jnp.clip((ROBOT_RADIUS - dist) / IMAGE_UNITS_PER_PIXEL + 0.5, 0.0, 1.0)
    return background * (1.0 - cover) + ROBOT_VALUE * cover


class ImageHardMazeState(NamedTuple):
    """State of :func:`image_hard_maze`: the robot and its frame stack.

    Attributes:
        maze: the :class:`HardMazeState`.
        frames: ``[84, 84, 4]`` float32, oldest frame first, current frame last (this is also
            the observation).
    """

    maze: HardMazeState
    frames: jax.Array

    @property
    def success(self) -> jax.Array:
        return self.maze.success

    @property
    def goal_distance(self) -> jax.Array:
        return self.maze.goal_distance


def image_hard_maze(max_steps: int = DEFAULT_MAX_STEPS, show_goal: bool = True) -> Task:
    """The Hard Maze seen from above: observation ``[84, 84, 4]`` float32 in ``[0, 1]``, the
    current frame (:func:`render`) and the previous three, oldest first (channel 3 is the
    current frame). ``reset`` fills all four channels with the first frame. Image mapping: see
    :func:`world_to_pixel`. Dynamics, reward, success and behavior as :func:`hard_maze`;
    ``show_goal`` draws the goal (a disc of radius ``SUCCESS_RADIUS``) into every frame.
    """
    max_steps = _check_max_steps(max_steps)
    show_goal = bool(show_goal)

    def reset(key):
        del key
        maze = make_state()
        frame = render(maze.x, maze.y, show_goal)
        frames = jnp.repeat(frame[:, :, None], FRAME_STACK, axis=2)
        return frames, ImageHardMazeState(maze=maze, frames=frames)

    def step(key, state, action):
        del key
        maze, reward, done = maze_step(state.maze, action, max_steps)
        frame = render(maze.x, maze.y, show_goal)
        frames = jnp.concatenate([state.frames[:, :, 1:], frame[:, :, None]], axis=2)
        return frames, ImageHardMazeState(maze=maze, frames=frames), reward, done

    return Task(
        name="image_hard_maze",
        reset=reset,
        step=step,
        behavior=position_behavior,
        observation_shape=(IMAGE_SIZE, IMAGE_SIZE, FRAME_STACK),
        action_space=ACTION_SPACE,
        max_steps=max_steps,
        behavior_size=2,
    )


# ---------------------------------------------------------------------------------------------
# Plotting
# ---------------------------------------------------------------------------------------------


def draw_maze(ax, *, wall_color="k", show_success_radius: bool = True):
    """Draw the walls, the start (green) and the goal (red star) on a matplotlib ``Axes``.

    Sets equal aspect and inverts the y axis (goal at the top, as the maze is usually shown,
    matching :func:`render`). Returns ``ax``.
    """
    import matplotlib.patches as mpatches
    from matplotlib.collections import LineCollection

    segments = HARD_MAZE_WALLS.reshape(-1, 2, 2)
    ax.add_collection(LineCollection(segments, colors=wall_color, linewidths=2))
    ax.plot(*HARD_MAZE_START, "o", color="tab:green", markersize=8, label="start")
    ax.plot(*HARD_MAZE_GOAL, "*", color="tab:red", markersize=12, label="goal")
    if show_success_radius:
        ax.add_patch(mpatches.Circle(tuple(HARD_MAZE_GOAL), SUCCESS_RADIUS, fill=False,
                                     color="tab:red", linestyle="--", linewidth=1))
    lo, hi = _BBOX_LO - 5.0, _BBOX_HI + 5.0
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])
    ax.set_aspect("equal")
    return ax


__all__ = [
    "ACTION_SPACE",
    "HARD_MAZE_GOAL",
    "HARD_MAZE_START",
    "HARD_MAZE_START_HEADING",
    "HARD_MAZE_WALLS",
    "HardMazeState",
    "ImageHardMazeState",
    "collides",
    "draw_maze",
    "goal_bearing",
    "goal_distance",
    "hard_maze",
    "image_hard_maze",
    "make_state",
    "maze_step",
    "observation",
    "radar",
    "rangefinders",
    "render",
    "wall_distances",
    "world_to_pixel",
]
