"""Argument checks shared by strategies and operators (concrete values only: a traced value
cannot be inspected at trace time and passes through, so a traced hyperparameter override of
``inf`` or NaN is the caller's to avoid). Numbers must be finite: ``inf`` is refused like a
negative value (it would turn the state into inf/NaN a generation later)."""

from __future__ import annotations

import math

import jax


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(name: str, value) -> None:
    """Raise if a concrete ``value`` is not finite and > 0 (traced values cannot be checked
    here)."""
    try:
        v = float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0, got {v}")


def check_nonnegative(name: str, value) -> None:
    """Raise if a concrete ``value`` is negative, infinite or NaN (``None`` passes)."""
    if value is None:
        return
    try:
        v = float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and >= 0, got {v}")
