"""Tasks: one small protocol (:class:`Task`) and a registry behind :func:`make`.

Bring your own environment: :func:`from_gymnax` (a gymnax instance and its parameters, the
parameters as data), :func:`from_brax` (a brax instance), or a :class:`Task` written by hand
(``docs/tasks.md``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable

from evojax_lab.tasks.base import (
    ActionSpace,
    FunctionTask,
    Task,
    flat_observation_behavior,
    function,
)
from evojax_lab.tasks.brax_tasks import (
    BRAX_ENVS,
    ant_trap,
    from_brax,
    humanoid_trap,
    make_brax,
)
from evojax_lab.tasks.breadcrumb import breadcrumb_hard_maze
from evojax_lab.tasks.gymnax_tasks import from_gymnax, gymnax_names, make_gymnax
from evojax_lab.tasks.hard_maze import hard_maze, image_hard_maze
from evojax_lab.tasks.landscapes import (
    Landscape,
    gap_landscape,
    landscape_task,
    narrowing_landscape,
)
from evojax_lab.tasks.parity import parity, parity_accuracy
from evojax_lab.tasks.supervised import (
    Dataset,
    digits,
    load_digits,
    load_mnist,
    read_idx,
    supervised,
)
from evojax_lab.tasks.supervised import accuracy as supervised_accuracy

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
        try:  # a missing or unknown argument is the caller's, named as such
            inspect.signature(_REGISTRY[name]).bind(**kw)
        except TypeError as err:
            raise ValueError(f"task {name!r}: {err} (el.tasks.make({name!r}, ...))") from None
        return _REGISTRY[name](**kw)
    if name in gymnax_names():
        return make_gymnax(name, **kw)
    if name.startswith("brax/"):  # any other brax environment (make_brax checks the name)
        return make_brax(name[len("brax/"):], **kw)
    known = names()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered and lowered[name.lower()] not in close:
        close.insert(0, lowered[name.lower()])
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(known)}")


register("hard_maze", hard_maze)
for _name in BRAX_ENVS:  # "brax/<env>": make_brax(env, backend=..., max_steps=..., ...)
    register(f"brax/{_name}", functools.partial(make_brax, _name))
register("brax/ant_trap", ant_trap)
register("brax/humanoid_trap", humanoid_trap)
register("image_hard_maze", image_hard_maze)
register("breadcrumb_hard_maze", breadcrumb_hard_maze)
register("digits", digits)
register("landscape/gap", lambda **kw: landscape_task(gap_landscape(**kw)))
register("landscape/narrowing", lambda **kw: landscape_task(narrowing_landscape(**kw)))


__all__ = [
    "Dataset",
    "Landscape",
    "digits",
    "gap_landscape",
    "landscape_task",
    "load_digits",
    "load_mnist",
    "narrowing_landscape",
    "read_idx",
    "supervised",
    "supervised_accuracy",
    "ActionSpace",
    "FunctionTask",
    "Task",
    "ant_trap",
    "breadcrumb_hard_maze",
    "flat_observation_behavior",
    "from_brax",
    "from_gymnax",
    "function",
    "hard_maze",
    "humanoid_trap",
    "image_hard_maze",
    "make",
    "make_brax",
    "make_gymnax",
    "names",
    "parity",
    "parity_accuracy",
    "register",
]
