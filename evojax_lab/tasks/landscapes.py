"""2-D fitness landscapes on which ES and finite differences part ways (Lehman, Chen, Clune &
Stanley 2017, "ES Is More Than Just a Traditional Finite-Difference Approximator",
arXiv:1712.06568). The paper gives no formulas; these are our own designs.

A point is ``p = (x, y)``; fitness is maximized and rises with ``x``. Success means reaching
``x >= goal_x``.

**Gap** (:func:`gap_fitness`): a slope with a narrow Gaussian trench across it::

    F(x, y) = x - c y^2 - A exp(-x^2 / (2 w^2)),      A = 2, w = 0.05, c = 0.5

Finite differences (``sigma -> 0``) climb to the trench's near rim, a local maximum at
``x ~= -0.15`` (where ``A |x| / w^2 exp(-x^2 / 2w^2) = 1``), and stay. The Gaussian-smoothed
``E F(p + sigma eps)`` replaces the trench by one of depth ``A w / s`` and width
``s = sqrt(w^2 + sigma^2)``; its steepest slope is ``0.61 A w / s^2``, below the slope 1 for
``sigma >= 0.25`` (0.66 at ``sigma = 0.3``), so the smoothed function rises monotonically in
``x`` and large-sigma ES walks across. Start ``(-1, 0)``, goal ``x >= 0.5``.

**Narrowing path** (:func:`narrowing_fitness`): a flat-topped ridge along ``y = 0`` whose
half-width shrinks from ``w_max`` to ``w_min`` around ``x = x_c``::

    F(x, y) = x - B (1 - exp(-(y / w(x))^4)),
    w(x) = w_min + (w_max - w_min) (1 - tanh((x - x_c) / s)) / 2,
    B = 4, w_max = 1, w_min = 0.15, x_c = 0.75, s = 0.3

On the ridge (``|y| << w``) the gradient is ``~(1, 0)``: finite differences walk straight
through. Smoothed with ``sigma = 0.5``, the fraction of perturbations that stay on the ridge
falls with ``w(x)``, so ``E F`` has a local maximum before the narrow part and large-sigma ES
hesitates there. Start ``(-1, 0)``, goal ``x >= 2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from evojax_lab.core.checks import check_positive
from evojax_lab.tasks.base import FunctionTask, function


class Landscape(NamedTuple):
    """A 2-D fitness function with a start, a goal and a drawing window.

    Attributes:
        name: the landscape's name.
        fn: ``fn(p [2]) -> scalar`` fitness (maximized).
        start: the default start ``(x, y)``.
        goal_x: success is reaching ``x >= goal_x``.
        extent: ``(x_min, x_max, y_min, y_max)`` for plots.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    start: tuple[float, float]
    goal_x: float
    extent: tuple[float, float, float, float]


def _xy(p):
    p = jnp.asarray(p, jnp.float32)
    if p.shape[-1:] != (2,):
        raise ValueError(f"a landscape point must have shape [..., 2], got {p.shape}")
    return p[..., 0], p[..., 1]


def gap_fitness(p, *, depth: float = 2.0, width: float = 0.05, curvature: float = 0.5
                ) -> jax.Array:
    """``x - curvature y^2 - depth exp(-x^2 / (2 width^2))`` (module docstring)."""
    x, y = _xy(p)
    return x - curvature * y**2 - depth * jnp.exp(-(x**2) / (2.0 * width**2))


def path_width(x, *, w_max: float = 1.0, w_min: float = 0.15, center: float = 0.75,
               scale: float = 0.3) -> jax.Array:
    """Half-width ``w(x)`` of the narrowing path."""
    return w_min + (w_max - w_min) * 0.5 * (1.0 - jnp.tanh((x - center) / scale))


def narrowing_fitness(p, *, penalty: float = 4.0, w_max: float = 1.0, w_min: float = 0.15,
                      center: float = 0.75, scale: float = 0.3) -> jax.Array:
    """``x - penalty (1 - exp(-(y / w(x))^4))`` (module docstring)."""
    x, y = _xy(p)
    w = path_width(x, w_max=w_max, w_min=w_min, center=center, scale=scale)
    return x - penalty * (1.0 - jnp.exp(-((y / w) ** 4)))


def _check_positive(**kw):
    for name, v in kw.items():
        check_positive(name, v)


def gap_landscape(*, depth: float = 2.0, width: float = 0.05, curvature: float = 0.5
                  ) -> Landscape:
    """The gap landscape (module docstring)."""
    _check_positive(depth=depth, width=width, curvature=curvature)
    return Landscape(
        "gap",
        lambda p: gap_fitness(p, depth=depth, width=width, curvature=curvature),
        (-1.0, 0.0), 0.5, (-1.5, 1.5, -1.0, 1.0),
    )


def narrowing_landscape(*, penalty: float = 4.0, w_max: float = 1.0, w_min: float = 0.15,
                        center: float = 0.75, scale: float = 0.3) -> Landscape:
    """The narrowing-path landscape (module docstring)."""
    _check_positive(penalty=penalty, w_max=w_max, w_min=w_min, scale=scale)
    if w_min > w_max:
        raise ValueError(f"w_min ({w_min}) must be <= w_max ({w_max})")
    return Landscape(
        "narrowing",
        lambda p: narrowing_fitness(p, penalty=penalty, w_max=w_max, w_min=w_min,
                                    center=center, scale=scale),
        (-1.0, 0.0), 2.0, (-1.5, 2.5, -1.25, 1.25),
    )


def landscape_task(landscape: Landscape) -> FunctionTask:
    """A landscape as a function task: the parameters are the point ``[2]``; the behavior is
    the point itself (so novelty search can use it). The key is unused."""
    def fn(key, params):
        del key
        p = jnp.asarray(params, jnp.float32).reshape(2)
        return landscape.fn(p), p

    return function(fn, name=f"landscape/{landscape.name}", behavior_size=2)
