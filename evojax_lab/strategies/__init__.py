"""Strategies: one module per algorithm, each a factory returning a :class:`Strategy`; by name
with :func:`make` (defaults and per-task presets in :mod:`~evojax_lab.strategies.registry`)."""

from evojax_lab.strategies.deep_ga import (
    DeepGAState,
    deep_ga,
    elite_genome,
    member_genome,
    random_search,
)
from evojax_lab.strategies.ga_ns import GANSState, ga_ns
from evojax_lab.strategies.novelty_es import NoveltyESState, ns_es, nsr_es, nsra_es
from evojax_lab.strategies.openai_es import OpenAIESState, openai_es
from evojax_lab.strategies.registry import make, names, presets, settings

__all__ = [
    "DeepGAState",
    "GANSState",
    "NoveltyESState",
    "OpenAIESState",
    "deep_ga",
    "elite_genome",
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
