"""Strategies: one module per algorithm, each a factory returning a :class:`Strategy`."""

from evojax_lab.strategies.openai_es import OpenAIESState, openai_es

__all__ = ["OpenAIESState", "openai_es"]
