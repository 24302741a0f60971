"""Tasks: one small protocol (:class:`Task`) and a registry behind :func:`make`."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from evojax_lab.tasks.base import (
    ActionSpace,
    FunctionTask,
    Task,
    flat_observation_behavior,
    function,
)
from evojax_lab.tasks.breadcrumb import breadcrumb_hard_maze
from evojax_lab.tasks.gymnax_tasks import gymnax_names, make_gymnax
from evojax_lab.tasks.hard_maze import hard_maze, image_hard_maze
from evojax_lab.tasks.parity import parity, parity_accuracy

_REGISTRY: dict[str, Callable[..., Task]] = {}


def register(name: str, factory: Callable[..., Task]) -> None:
    """Register ``factory(**kw) -> Task`` under ``name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """All registered task names."""
    return sorted(set(_REGISTRY) | set(gymnax_names()))


def make(name: str, **kw) -> Task:
    """Build a task by name: any gymnax id (``"CartPole-v1"``, ``"Breakout-MinAtar"``, ...) or a
    registered evojax_lab task.

    Raises:
        ValueError: for an unknown name, suggesting close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name](**kw)
    if name in gymnax_names():
        return make_gymnax(name, **kw)
    known = names()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered and lowered[name.lower()] not in close:
        close.insert(0, lowered[name.lower()])
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(known)}")


register("hard_maze", hard_maze)
register("image_hard_maze", image_hard_maze)
register("breadcrumb_hard_maze", breadcrumb_hard_maze)


__all__ = [
    "ActionSpace",
    "FunctionTask",
    "Task",
    "breadcrumb_hard_maze",
    "flat_observation_behavior",
    "function",
    "hard_maze",
    "image_hard_maze",
    "make",
    "make_gymnax",
    "names",
    "parity",
    "parity_accuracy",
    "register",
]
