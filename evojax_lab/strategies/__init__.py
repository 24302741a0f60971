"""Strategies: one module per algorithm, each a factory returning a :class:`Strategy`."""

from evojax_lab.strategies.deep_ga import DeepGAState, deep_ga, elite_genome, random_search
from evojax_lab.strategies.openai_es import OpenAIESState, openai_es

__all__ = [
    "DeepGAState",
    "OpenAIESState",
    "deep_ga",
    "elite_genome",
    "openai_es",
    "random_search",
]
