"""Strategies: one module per algorithm, each a factory returning a :class:`Strategy`; by name
with :func:`make` (defaults and per-task presets in :mod:`~evojax_lab.strategies.registry`);
evosax's algorithms through :func:`from_evosax` (``make("evosax:CMA_ES")``)."""

from evojax_lab.strategies.deep_ga import (
    DeepGAState,
    deep_ga,
    elite_genome,
    member_genome,
    random_search,
)
from evojax_lab.strategies.evosax_adapter import EvosaxState, evosax_names, from_evosax
from evojax_lab.strategies.ga_ns import GANSState, ga_ns
from evojax_lab.strategies.novelty_es import NoveltyESState, ns_es, nsr_es, nsra_es
from evojax_lab.strategies.openai_es import OpenAIESState, openai_es
from evojax_lab.strategies.registry import make, names, presets, settings

__all__ = [
    "DeepGAState",
    "EvosaxState",
    "GANSState",
    "NoveltyESState",
    "OpenAIESState",
    "deep_ga",
    "elite_genome",
    "evosax_names",
    "from_evosax",
    "ga_ns",
    "make",
    "member_genome",
    "names",
    "ns_es",
    "nsr_es",
    "nsra_es",
    "openai_es",
    "presets",
    "random_search",
    "settings",
]
