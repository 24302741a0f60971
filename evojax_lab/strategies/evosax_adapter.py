"""evosax algorithms as evojax_lab strategies: :func:`from_evosax`.

evosax (Lange, 2022, "evosax: JAX-based Evolution Strategies", arXiv:2212.04180; version
0.3.x, ``pip install 'evojax_lab[evosax]'``) implements some thirty black-box optimizers
(CMA-ES, SNES, xNES, PGPE, OpenAI-ES, GAs, DE, PSO, ...) as objects with ``init``, ``ask``
and ``tell`` over explicit states. :func:`from_evosax` wraps one as a
:class:`~evojax_lab.Strategy`, so it runs in :func:`~evojax_lab.make_train` like a built-in
strategy: sharded evaluation, sweeps, progress, checkpoints and resume::

    import evosax.algorithms as ea
    template = policy.init(key, obs)
    strategy = el.strategies.from_evosax(ea.CMA_ES(population_size=16, solution=template))
    # or, built when init sees the parameters (what the registry and the CLI use):
    strategy = el.strategies.from_evosax("CMA_ES", 16, sigma=0.1)
    result = el.make_train(task, policy, strategy, generations=100)(key)

**Sign.** evosax minimizes; evojax_lab maximizes. ``tell`` hands evosax ``-fitness``; the
metrics (``best_fitness``, ``mean_fitness``, ``num_nan``) are of our (maximized) fitness.

**NaN.** Our strategies rank a NaN fitness worst. evosax gets ``+inf`` for it (after the
negation: the worst value when minimizing), so its rank-based shapings (centered ranks, the
CMA/NES weights) rank it last and its comparisons (GAs, DE, PSO, hill climbing) never prefer
it. Algorithms that do arithmetic on raw fitness values (evosax's identity shaping: ARS, ESMC,
ASEBO, GuidedES, PersistentES, NoiseReuseES, ...) then get an ``inf`` in their update, as they
would from the NaN itself: give them a rank shaping (``fitness_shaping_fn=``) if NaNs may
occur. A generation whose every fitness is NaN carries no information: evosax's state is left
as it was (only its generation counter advances), like the zero step of our ES.

**Keys.** The keys are handed over unchanged: ``init``'s key to evosax's ``init``, ``ask``'s to
its ``ask``, ``tell``'s to its ``tell`` (a population-based algorithm's ``init`` key is split
first, see below). In :func:`~evojax_lab.make_train` these are the strategy key of
``split(key, 3)`` and each generation's ask and tell keys (``evojax_lab.train``), so evosax's
own loop with the same keys gives the same run.

**State.** :class:`EvosaxState` holds evosax's state, evosax's params (the algorithm's
``default_params`` with the ``init`` overrides, so a sweep can trace them) and the layout of
the parameters (zero-size arrays: no data). evosax's ``ask`` and ``tell`` run replicated on
every device (the population is gathered for ``tell``); only the evaluation is sharded. A run
on N devices performs the same evosax arithmetic as on one, up to float32 rounding: XLA
compiles the sharded program differently (CMA-ES: ~1e-5 after 3 generations, see
tests/test_evosax.py). Every device holds the whole ``P x N`` population in ``ask`` and
``tell``: fine for the problem sizes evosax's algorithms are made for (our ``openai_es``
shards its noise instead).

**Solution.** ``solution(state)`` is the mean of the search distribution (evosax's
``get_mean``) for a distribution-based algorithm; for a population-based one (no mean) it is
the best member of the population evosax keeps (its ``get_best_solution``).

**Population-based algorithms** (SimpleGA, DE, PSO, ...) start, in evosax, from an evaluated
population, which ``init`` cannot evaluate: their initial population is ``params`` (member 0)
and ``params + init_std * N(0, I)`` (the others, drawn from the second half of
``split(key)``), all with fitness unknown (``+inf`` to evosax, worse than any evaluated
member), so the first generation replaces them.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.core.extras import require
from evojax_lab.core.sharding import constrain_replicated
from evojax_lab.core.tree import ravel
from evojax_lab.core.types import Strategy
from evojax_lab.strategies._common import (
    check_asked,
    check_positive,
    check_positive_int,
    fitness_metrics,
    fitness_of,
)

#: How to install the optional dependency.
#: A few algorithms named in error messages.
EXAMPLES = ("CMA_ES", "SNES", "xNES", "PGPE", "Open_ES", "Sep_CMA_ES", "SimpleGA", "PSO")
# Constructor arguments the adapter sets itself.
_OWN = ("self", "population_size", "solution")


class EvosaxState(NamedTuple):
    """State of an evosax algorithm wrapped by :func:`from_evosax`.

    Attributes:
        state: evosax's state (a flax dataclass; its ``mean`` is the flat mean).
        params: evosax's params (``algorithm.default_params`` with ``init``'s overrides).
        layout: a pytree like the parameters whose leaves are zero-size arrays
            ``[0, *shape]`` of the parameters' dtypes: their structure, no data.
        asked: whether this state came from ``ask`` (``tell`` refuses one that did not).
    """

    state: Any
    params: Any
    layout: Any
    asked: jax.Array


def _algorithms():
    """evosax's algorithms module, or a one-line MissingExtra (an ImportError) naming the
    extra."""
    return require("evosax.algorithms", "evosax", "evosax strategies")


def _base_classes():
    from evosax.algorithms.distribution_based.base import DistributionBasedAlgorithm
    from evosax.algorithms.population_based.base import PopulationBasedAlgorithm

    return DistributionBasedAlgorithm, PopulationBasedAlgorithm


def evosax_names() -> tuple[str, ...]:
    """The names of evosax's algorithms (``evosax.algorithms.algorithms``; needs evosax)."""
    return tuple(sorted(_algorithms().algorithms, key=str.lower))


def algorithm_class(name: str) -> type:
    """The evosax algorithm class called ``name``: a key of ``evosax.algorithms.algorithms``
    (``"CMA_ES"``, ``"DES"``) or a class name (``"DiscoveredES"``).

    Raises:
        ImportError: evosax is not installed (one line naming the extra).
        ValueError: no such algorithm (one line with close matches and a few valid names).
    """
    table = _algorithms().algorithms
    by_name = {**{cls.__name__: cls for cls in table.values()}, **table}
    if isinstance(name, str) and name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(str(name), list(by_name), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown evosax algorithm {name!r}; {hint}e.g. {', '.join(EXAMPLES)} "
                     f"({len(table)} in all: el.strategies.evosax_names())")


def _layout(params):
    return jax.tree.map(lambda x: jnp.zeros((0, *jnp.shape(x)), jnp.result_type(x)), params)


def _signature(layout) -> tuple:
    leaves, treedef = jax.tree.flatten(layout)
    return treedef, tuple((tuple(x.shape[1:]), np.dtype(x.dtype).name) for x in leaves)


def _describe(signature) -> str:
    treedef, leaves = signature
    return f"{treedef.num_leaves} leaves {[f'{d}{list(s)}' for s, d in leaves]}"


def _template(layout):
    """Concrete zero parameters of a layout (NumPy: safe to build inside a trace)."""
    return jax.tree.map(lambda x: np.zeros(x.shape[1:], x.dtype), layout)


def _strong(tree):
    """Every leaf as an array of its own dtype, not weakly typed: the state keeps one type
    from generation to generation (evosax stores Python numbers in some states)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), tree)


def _construct(cls, pop_size: int, solution, kwargs: dict):
    """``cls(population_size, solution, **kwargs)`` evaluated eagerly (evosax computes arrays
    in its constructor; inside a trace they would be tracers kept on a cached object)."""
    try:
        with jax.ensure_compile_time_eval():
            return cls(population_size=pop_size, solution=solution, **kwargs)
    except AssertionError as err:  # evosax checks its arguments with assert
        raise ValueError(f"evosax {cls.__name__}: {err or 'invalid arguments'}") from None
    except TypeError as err:
        raise ValueError(f"evosax {cls.__name__}: {err}") from None


def _replicated(fn, *args):
    """``fn(*args)`` with its inputs and outputs replicated over the mesh in context: evosax
    ranks, sorts and sums over the whole population on every device, as on one device."""
    return constrain_replicated(fn(*constrain_replicated(args)))


def constructor_keywords(cls) -> tuple[str, ...]:
    """The keywords of an evosax class's constructor besides ``population_size`` and
    ``solution`` (what :func:`from_evosax` passes through)."""
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p not in _OWN)


def _std_source(cls, params) -> str | None:
    """Where an algorithm's initial std comes from: ``"std_schedule"`` (a constructor
    argument: what it uses even where its params also have a ``std_init``, as ARS), the
    ``"std_init"`` field of its params, or nowhere (``None``)."""
    if "std_schedule" in constructor_keywords(cls):
        return "std_schedule"
    if "std_init" in {f.name for f in dataclasses.fields(params)}:
        return "std_init"
    return None


def takes_sigma(cls) -> bool:
    """Whether :func:`from_evosax` can set the initial std of evosax class ``cls`` from
    ``sigma``: a population-based algorithm (its initial spread, at least), a ``std_schedule``
    constructor argument, or a ``std_init`` field of its params. ``False`` also when ``cls``
    cannot be built without more constructor arguments (``from_evosax`` then says which)."""
    _, population_cls = _base_classes()
    if issubclass(cls, population_cls) or "std_schedule" in constructor_keywords(cls):
        return True
    try:
        probe = _construct(cls, 16, np.zeros(2, np.float32), {})
    except ValueError:
        return False
    return _std_source(cls, probe.default_params) is not None


def from_evosax(
    algorithm,
    pop_size: int | None = None,
    *,
    sigma: float | None = None,
    init_std: float | None = None,
    **algorithm_kwargs,
) -> Strategy:
    """Wrap an evosax 0.3 algorithm as a :class:`~evojax_lab.Strategy` (module docstring).

    Args:
        algorithm: an evosax algorithm instance (built with ``solution=`` a parameter pytree
            like the ones ``init`` will get), or an evosax algorithm class or name
            (``"CMA_ES"``: :func:`evosax_names`), built with ``pop_size``, the parameters
            ``init`` sees as its ``solution`` template, and ``algorithm_kwargs``.
        pop_size: the population size (required with a class or name; with an instance it
            must be ``None`` or the instance's).
        sigma: the algorithm's initial std: the ``std_init`` field of its params (a default
            of ``init``, traceable there as ``sigma=`` or ``std_init=``), or, for an algorithm
            whose std comes from a ``std_schedule`` constructor argument (OpenAI-ES, ARS,
            SimpleGA, ...), ``optax.constant_schedule(sigma)`` given to the constructor (a
            class or name; an instance's schedule is fixed: ``sigma`` raises, except for a
            population-based one). For a population-based algorithm it also sets
            ``init_std`` unless that is given. ``None``: evosax's default. An algorithm with
            no initial std raises.
        init_std: population-based algorithms only: the std of the initial population around
            ``params`` (default: ``sigma``, else the params' ``std_init``, else 1.0).
        algorithm_kwargs: keywords of the evosax constructor (``optimizer=``,
            ``fitness_shaping_fn=``, ...), with a class or name only.

    Returns:
        A :class:`~evojax_lab.Strategy` (no ``member``: evosax draws the population at once).
        ``init(key, params, **hyperparams)``: ``params`` is the initial mean (a
        population-based algorithm: the centre of its initial population); each hyperparameter
        is a field of evosax's params dataclass (``algorithm.default_params``, e.g.
        ``std_init``), ``sigma`` (an alias of ``std_init``; for a population-based algorithm
        also the initial spread) or ``init_std`` (population-based), numeric and traceable;
        an unknown name raises ``ValueError`` naming it. ``tell``'s metrics:
        ``best_fitness``, ``mean_fitness``, ``num_nan`` (our maximized fitness) and, when
        evosax's state has a ``std``, ``sigma`` (its mean over dimensions).
        ``solution(state)`` is the distribution mean as a parameter pytree, or, for a
        population-based algorithm, the best member of evosax's population.

    Raises:
        ImportError: evosax is not installed (a class or name; one line naming the extra).
        ValueError: an unknown algorithm, a bad size, a ``sigma`` the algorithm has no place
            for, or a constructor evosax refuses.
    """
    if isinstance(algorithm, (str, type)):
        cls = algorithm_class(algorithm) if isinstance(algorithm, str) else algorithm
        distribution_cls, population_cls = _base_classes()
        if not issubclass(cls, (distribution_cls, population_cls)):
            raise ValueError(f"{cls.__name__} is not an evosax algorithm class")
        if pop_size is None:
            raise ValueError(f"from_evosax({cls.__name__!r}) needs pop_size")
        pop_size = check_positive_int("pop_size", pop_size)
        kwargs = dict(algorithm_kwargs)
        unknown = sorted(set(kwargs) - set(constructor_keywords(cls)))
        if unknown:
            raise ValueError(f"evosax {cls.__name__} takes no keyword {', '.join(unknown)}; its "
                             f"keywords: {', '.join(constructor_keywords(cls))}")
        probe = _construct(cls, pop_size, np.zeros(2, np.float32), kwargs)
        instance = None
    else:
        cls = type(algorithm)
        distribution_cls, population_cls = _base_classes()
        if not isinstance(algorithm, (distribution_cls, population_cls)):
            raise TypeError(f"from_evosax needs an evosax algorithm (an instance, class or "
                            f"name), got {cls.__name__}")
        if algorithm_kwargs:
            raise ValueError(f"constructor keywords ({', '.join(sorted(algorithm_kwargs))}) need "
                             "an evosax class or name, not an instance")
        if pop_size is not None and int(pop_size) != algorithm.population_size:
            raise ValueError(f"pop_size {pop_size} differs from the instance's population size "
                             f"{algorithm.population_size}")
        pop_size = int(algorithm.population_size)
        probe = instance = algorithm
        kwargs = {}
    name = cls.__name__
    if hasattr(probe, "num_populations"):
        raise ValueError(f"evosax {name} runs several populations at once (Stein variational "
                         "ES); from_evosax wraps single-population algorithms")
    population_based = isinstance(probe, population_cls)
    std_source = _std_source(cls, probe.default_params)
    if sigma is not None:
        check_positive("sigma", sigma)
        if std_source == "std_schedule" and instance is None and "std_schedule" not in kwargs:
            import optax

            kwargs["std_schedule"] = optax.constant_schedule(float(sigma))
        elif std_source == "std_schedule" and not population_based:
            raise ValueError(f"evosax {name}'s std comes from its std_schedule constructor "
                             "argument: build it with std_schedule=optax.constant_schedule(...) "
                             "instead of passing sigma")
        elif std_source is None and not population_based:
            raise ValueError(f"evosax {name} has no initial std (no std_init parameter, no "
                             "std_schedule): sigma does not apply")
        if population_based and init_std is None:
            init_std = sigma
    if init_std is not None:
        if not population_based:
            raise ValueError(f"init_std applies to population-based algorithms; evosax {name} "
                             "starts from the mean init gets")
        check_positive("init_std", init_std)
    default_std = sigma if std_source == "std_init" else None
    built: dict = {}

    def algorithm_for(layout):
        """The evosax object for parameters of this layout (one per layout, built once)."""
        signature = _signature(layout)
        if instance is not None:
            expected = _signature(_layout(instance.solution))
            if signature != expected:
                raise ValueError(f"the parameters ({_describe(signature)}) do not match the "
                                 f"evosax {name} solution template ({_describe(expected)})")
            return instance
        if signature not in built:
            built[signature] = _construct(cls, pop_size, _template(layout), kwargs)
        return built[signature]

    def evosax_params(alg, hyperparams):
        """evosax's params with the overrides of ``init`` (and our own spread)."""
        params = alg.default_params
        fields = [f.name for f in dataclasses.fields(params)]
        overrides = dict(hyperparams)
        spread = overrides.pop("init_std", None)
        alias = overrides.pop("sigma", None)
        accepted = [*fields, "sigma", *(["init_std"] if population_based else [])]
        unknown = sorted(k for k in overrides if k not in fields)
        if unknown or (spread is not None and not population_based):
            bad = unknown or ["init_std"]
            raise ValueError(f"evosax {name} has no hyperparameter {', '.join(bad)}; init "
                             f"takes {', '.join(accepted)}")
        if alias is not None:
            check_positive("sigma", alias)
            if std_source == "std_init":
                if "std_init" in overrides:
                    raise ValueError("give sigma or std_init, not both (sigma is std_init)")
                overrides["std_init"] = alias
            elif not population_based:
                where = ("its std_schedule constructor argument" if std_source else
                         "nothing: it has no initial std")
                raise ValueError(f"evosax {name}'s initial std is set by {where}; sigma cannot "
                                 "be given to init")
            spread = alias if spread is None else spread
        elif default_std is not None and "std_init" not in overrides:
            overrides["std_init"] = default_std
        for key, value in overrides.items():
            default = getattr(params, key)
            if jnp.shape(value) != jnp.shape(default):
                raise ValueError(f"evosax {name}'s {key} has shape {jnp.shape(default)}, got "
                                 f"{jnp.shape(value)}")
            if key == "std_init":
                check_positive("std_init", value)
        params = params.replace(**overrides)
        if spread is None:
            spread = init_std if init_std is not None else getattr(params, "std_init", 1.0)
        check_positive("init_std", spread)
        return params, spread

    def init(key, params, **hyperparams):
        layout = _layout(params)
        alg = algorithm_for(layout)
        ev_params, spread = evosax_params(alg, hyperparams)
        if population_based:
            init_key, population_key = jax.random.split(key)
            flat, unravel = ravel(params)
            noise = jax.random.normal(population_key, (pop_size, flat.shape[0]), flat.dtype)
            noise = noise.at[0].set(0.0)  # member 0 is params itself
            population = jax.vmap(unravel)(flat + jnp.asarray(spread, flat.dtype) * noise)
            fitness = jnp.full((pop_size,), jnp.inf, jnp.float32)  # not evaluated: worst
            ev_state = alg.init(init_key, population, fitness, ev_params)
        else:
            ev_state = alg.init(key, params, ev_params)
        return EvosaxState(state=_strong(ev_state), params=_strong(ev_params), layout=layout,
                           asked=jnp.zeros((), bool))

    def ask(key, state):
        alg = algorithm_for(state.layout)
        # Every device draws the whole population as one device would (the trainer then
        # shards it for the evaluation).
        population, ev_state = _replicated(alg.ask, key, state.state, state.params)
        return population, state._replace(state=_strong(ev_state), asked=jnp.ones((), bool))

    def tell(key, population, evaluation, state, evaluate=None):
        del evaluate  # evosax asks for no extra evaluation
        check_asked(state)
        if population is None:
            raise ValueError(f"evosax {name}'s tell needs the population ask returned (it has no "
                             "member-by-member evaluation)")
        alg = algorithm_for(state.layout)
        fitness = fitness_of(evaluation, pop_size)
        minimized = jnp.where(jnp.isnan(fitness), jnp.inf, -fitness)  # NaN: worst for evosax
        # The update runs replicated (the population gathered), as on one device.
        new, _ = _replicated(alg.tell, key, population, minimized, state.state, state.params)
        new = _strong(new)
        # Every fitness NaN: no information, no update (the generation still counts).
        skipped = state.state.replace(generation_counter=new.generation_counter)
        failed = jnp.all(jnp.isnan(fitness))
        new = jax.tree.map(lambda old, x: jnp.where(failed, old, x), skipped, new)
        metrics = fitness_metrics(fitness)
        if hasattr(new, "std"):
            metrics["sigma"] = jnp.mean(new.std).astype(jnp.float32)
        return state._replace(state=new, asked=jnp.zeros((), bool)), metrics

    def solution(state):
        alg = algorithm_for(state.layout)
        if population_based:
            return alg.get_best_solution(state.state)
        return alg.get_mean(state.state)

    # What storage.identity records as the strategy's kind: the evosax class by name, so a
    # checkpoint of one algorithm is not resumed by another ("...from_evosax[evosax.CMA_ES]";
    # not evosax's module path, which may move between releases; a class of another package
    # keeps its module).
    where = "evosax" if cls.__module__.split(".")[0] == "evosax" else cls.__module__
    tell.__qualname__ = f"from_evosax[{where}.{cls.__qualname__}].<locals>.tell"
    return Strategy(init=init, ask=ask, tell=tell, solution=solution, pop_size=pop_size)


__all__ = ["EXAMPLES", "EvosaxState", "algorithm_class", "constructor_keywords",
           "evosax_names", "from_evosax", "takes_sigma"]
