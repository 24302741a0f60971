"""Strategies by name: the one place for their default settings and per-task presets.

``make(name, task=..., **config)`` builds a strategy from its settings, resolved in this order
(later wins)::

    DEFAULTS[name]  <  PRESETS[(task name, name)]  <  config

The settings hold the strategy's own knobs (``pop_size``, ``sigma``, ...) and the run settings
a strategy is usually tried with (``generations``, ``episodes``, ``hidden``: the CLI's
defaults; :func:`settings` returns them all). A strategy whose state is sized by the run's
length takes its capacity from ``generations`` (the Deep GA and GA-NS genomes hold
``generations + 1`` seeds, the NS-ES archive ``generations + agents`` behaviors) unless the
capacity is given. Any other keyword of the factory (``noise=``, ``chunk_size=``,
``mutation=``, ...) passes through ``config``. The CLI, the benchmarks and the notebooks build
their strategies here.

Besides the registered names, ``"evosax:<Algorithm>"`` names any evosax algorithm
(``"evosax:CMA_ES"``; :func:`~evojax_lab.strategies.from_evosax`, needs
``pip install 'evojax_lab[evosax]'``): its settings are :data:`EVOSAX_DEFAULTS` (``sigma``
only where the algorithm has an initial std to set, ``None``: evosax's default), and any other
keyword goes to the evosax constructor. :func:`defaults` gives the defaults of either kind.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from evojax_lab.core.types import Strategy
from evojax_lab.strategies import evosax_adapter
from evojax_lab.strategies.deep_ga import deep_ga, random_search
from evojax_lab.strategies.ga_ns import ga_ns
from evojax_lab.strategies.novelty_es import ns_es, nsr_es, nsra_es
from evojax_lab.strategies.openai_es import openai_es

#: Settings a run uses besides the strategy's own (a strategy ignores them, except
#: ``generations`` for the capacities it sizes).
RUN_SETTINGS = ("generations", "episodes", "hidden")

_NOVELTY = dict(pop_size=50, sigma=0.2, learning_rate=0.05, agents=8, k=10,
                validation_episodes=1, generations=1000, episodes=1, hidden=(16, 16))
#: Default settings of every registered strategy.
DEFAULTS: dict[str, dict[str, Any]] = {
    "openai_es": dict(pop_size=256, sigma=0.02, learning_rate=0.01, generations=100, episodes=1,
                      hidden=(32, 32)),
    "deep_ga": dict(pop_size=256, sigma=0.02, truncation=20, elites=1, validation_episodes=10,
                    generations=100, episodes=1, hidden=(32, 32)),
    "random_search": dict(pop_size=256, elites=1, validation_episodes=10, generations=100,
                          episodes=1, hidden=(32, 32)),
    # Novelty search: sigma 0.2 did best on the Hard Maze (benchmarks/hard_maze.py, RESULTS.md).
    "ns_es": dict(_NOVELTY),
    "nsr_es": dict(_NOVELTY),
    "nsra_es": dict(_NOVELTY),
    "ga_ns": dict(pop_size=200, sigma=0.1, truncation=20, elites=1, k=10,
                  archive_probability=0.05, generations=300, episodes=1, hidden=(16, 16)),
}
#: Settings tuned for one task, on top of the strategy's defaults.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("CartPole-v1", "openai_es"): dict(pop_size=256, sigma=0.05, learning_rate=0.03,
                                       generations=50),
    ("Pendulum-v1", "openai_es"): dict(pop_size=256, sigma=0.1, learning_rate=0.03,
                                       generations=200, episodes=4, hidden=(64, 64)),
    ("CartPole-v1", "deep_ga"): dict(pop_size=256, sigma=0.05, truncation=20, generations=20),
    ("CartPole-v1", "random_search"): dict(pop_size=256, generations=20),
}


def _openai_es(s, extra):
    return openai_es(s["pop_size"], s["sigma"], learning_rate=s["learning_rate"], **extra)


def _novelty(factory):
    def build(s, extra):
        extra = {"archive_capacity": s["generations"] + s["agents"], **extra}
        return factory(s["pop_size"], s["sigma"], learning_rate=s["learning_rate"],
                       behavior_size=s["behavior_size"], num_agents=s["agents"], k=s["k"],
                       validation_episodes=s["validation_episodes"], **extra)

    return build


def _deep_ga(s, extra):
    extra = {"genome_capacity": s["generations"] + 1, **extra}
    return deep_ga(s["pop_size"], s["sigma"], s["truncation"], elites=s["elites"],
                   validation_episodes=s["validation_episodes"], **extra)


def _random_search(s, extra):
    return random_search(s["pop_size"], elites=s["elites"],
                         validation_episodes=s["validation_episodes"], **extra)


def _ga_ns(s, extra):
    extra = {"genome_capacity": s["generations"] + 1, **extra}
    return ga_ns(s["pop_size"], s["sigma"], s["truncation"], behavior_size=s["behavior_size"],
                 elites=s["elites"], k=s["k"], archive_probability=s["archive_probability"],
                 **extra)


_BUILDERS: dict[str, tuple[Callable, Callable]] = {
    "openai_es": (_openai_es, openai_es),
    "deep_ga": (_deep_ga, deep_ga),
    "random_search": (_random_search, random_search),
    "ns_es": (_novelty(ns_es), ns_es),
    "nsr_es": (_novelty(nsr_es), nsr_es),
    "nsra_es": (_novelty(nsra_es), nsra_es),
    "ga_ns": (_ga_ns, ga_ns),
}
# Settings the builders set from other names (``agents`` -> ``num_agents``).
_RENAMED = {"num_agents": "agents"}
#: The prefix of a strategy name that wraps an evosax algorithm: ``"evosax:CMA_ES"``.
EVOSAX_PREFIX = "evosax:"
#: Default settings of an ``evosax:<Algorithm>`` strategy (``sigma`` only where it applies).
EVOSAX_DEFAULTS: dict[str, Any] = dict(pop_size=64, sigma=None, generations=100, episodes=1,
                                       hidden=(32, 32))


def names() -> tuple[str, ...]:
    """The registered strategy names (``evosax:<Algorithm>`` names are not listed)."""
    return tuple(DEFAULTS)


def is_evosax(name) -> bool:
    """Whether ``name`` has the form ``evosax:<Algorithm>``."""
    return isinstance(name, str) and name.startswith(EVOSAX_PREFIX)


def _task_name(task) -> str | None:
    return task if task is None or isinstance(task, str) else getattr(task, "name", None)


def check_name(name: str) -> None:
    """Raise unless ``name`` is a registered strategy or ``evosax:<Algorithm>`` of an evosax
    algorithm (``ValueError``; ``MissingExtra`` naming the extra when evosax is missing)."""
    if is_evosax(name):
        evosax_adapter.algorithm_class(name[len(EVOSAX_PREFIX):])  # raises, naming a few
        return
    if name not in DEFAULTS:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(names())}, or "
                         f"{EVOSAX_PREFIX}<Algorithm> (an evosax algorithm, e.g. "
                         f"{EVOSAX_PREFIX}CMA_ES)")


def defaults(name: str) -> dict[str, Any]:
    """The default settings of strategy ``name``: ``DEFAULTS[name]`` for a registered one; for
    ``evosax:<Algorithm>`` :data:`EVOSAX_DEFAULTS`, without ``sigma`` when the algorithm has
    no initial std (no ``std_init`` parameter, no ``std_schedule``) and is not
    population-based."""
    check_name(name)
    if not is_evosax(name):
        return dict(DEFAULTS[name])
    cls = evosax_adapter.algorithm_class(name[len(EVOSAX_PREFIX):])
    out = dict(EVOSAX_DEFAULTS)
    if not evosax_adapter.takes_sigma(cls):
        del out["sigma"]
    return out


def settings(name: str, task=None, **overrides) -> dict[str, Any]:
    """The settings :func:`make` uses: ``DEFAULTS[name]``, the task's preset, ``overrides``.

    Args:
        name: a registered strategy (:func:`names`).
        task: a task name or a task (its ``name`` selects the preset); ``None``: no preset.
        overrides: settings that replace the resolved ones; each must be one of the strategy's
            settings (an unknown one raises).
    """
    out = defaults(name)
    out.update(PRESETS.get((_task_name(task), name), {}))
    unknown = sorted(set(overrides) - set(out))
    if unknown:
        raise ValueError(f"{name} has no setting {', '.join(unknown)}; its settings are "
                         f"{', '.join(out)}")
    out.update(overrides)
    return out


def presets() -> dict[str, dict[str, Any]]:
    """Every preset as ``{"<task> <strategy>": settings}``."""
    return {f"{task} {name}": dict(v) for (task, name), v in PRESETS.items()}


def make(name: str, task=None, **config) -> Strategy:
    """Build the registered strategy ``name`` from its settings (see the module docstring).

    Args:
        name: a registered strategy (:func:`names`).
        task: a task or a task name: selects the preset, and gives the novelty strategies
            their ``behavior_size`` (a task object's ``behavior_size``; with a name, pass
            ``behavior_size``).
        config: settings (:func:`settings`) and any other keyword of the strategy's factory.

    Returns:
        The :class:`~evojax_lab.Strategy`.

    Raises:
        ValueError: an unknown name, setting or factory keyword, or a novelty strategy without
            a behavior size.
    """
    check_name(name)
    if is_evosax(name):
        return _make_evosax(name, task, config)
    build, factory = _BUILDERS[name]
    defaults = settings(name, task)
    extra = {k: v for k, v in config.items() if k not in defaults}
    chosen = settings(name, task, **{k: v for k, v in config.items() if k in defaults})
    accepted = set(inspect.signature(factory).parameters)
    for alias, setting in _RENAMED.items():
        if alias in extra and setting in chosen:
            raise ValueError(f"{name}: give {setting!r}, not {alias!r}")
    unknown = sorted(k for k in extra if k not in accepted and k != "behavior_size")
    if unknown:
        raise ValueError(f"{name} has no setting or keyword {', '.join(unknown)}; settings: "
                         f"{', '.join(defaults)}; keywords: {', '.join(sorted(accepted))}")
    if "behavior_size" in accepted:
        size = extra.pop("behavior_size", getattr(task, "behavior_size", None))
        if size is None or int(size) < 1:
            what = "none" if size is None else f"behavior_size {size}"
            raise ValueError(f"{name} needs a behavior descriptor (pass an environment task "
                             f"with one, or behavior_size=); got {what}")
        chosen["behavior_size"] = int(size)
    elif "behavior_size" in extra:
        raise ValueError(f"{name} takes no behavior_size")
    try:
        return build(chosen, extra)
    except ValueError as err:
        raise ValueError(explain(str(err), name, task, given=set(config))) from None


def _make_evosax(name: str, task, config: dict) -> Strategy:
    """``make`` for ``evosax:<Algorithm>``: its settings, then the evosax constructor's
    keywords (and ``init_std``) from ``config``."""
    cls = evosax_adapter.algorithm_class(name[len(EVOSAX_PREFIX):])
    known = settings(name, task)
    chosen = settings(name, task, **{k: v for k, v in config.items() if k in known})
    extra = {k: v for k, v in config.items() if k not in known}
    accepted = {*evosax_adapter.constructor_keywords(cls), "init_std"}
    unknown = sorted(k for k in extra if k not in accepted)
    if unknown:
        raise ValueError(f"{name} has no setting or keyword {', '.join(unknown)}; settings: "
                         f"{', '.join(known)}; keywords: {', '.join(sorted(accepted))}")
    try:
        return evosax_adapter.from_evosax(cls, chosen["pop_size"], sigma=chosen.get("sigma"),
                                          **extra)
    except ValueError as err:
        raise ValueError(explain(str(err), name, task, given=set(config))) from None


def explain(message: str, name: str, task, given) -> str:
    """``message`` (an error about ``name``'s settings) with the origin of each setting it names
    that is not in ``given``: a user who never typed ``truncation`` learns that the preset set
    it."""
    resolved, preset = settings(name, task), PRESETS.get((_task_name(task), name), {})
    notes = [f"{s}={resolved[s]!r} comes from the {name} "
             f"{f'preset for {_task_name(task)}' if s in preset else 'defaults'}"
             for s in resolved if s not in given and re.search(rf"\b{s}\b", message)]
    return f"{message} ({'; '.join(notes)}; not given)" if notes else message


__all__ = ["DEFAULTS", "EVOSAX_DEFAULTS", "EVOSAX_PREFIX", "PRESETS", "RUN_SETTINGS",
           "check_name", "defaults", "explain", "is_evosax", "make", "names", "presets",
           "settings"]
