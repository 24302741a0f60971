"""Counting JAX's own trace and compile events (for "this call did not recompile" checks).

JAX reports every trace of a jitted function and every backend compilation to
``jax.monitoring`` listeners; :func:`count_compilations` counts them over a block::

    with count_compilations() as seen:
        train(key)
    seen.traces, seen.compiles     # 0 and 0 when the program was reused
    seen.traced("run_generations")  # traces of the functions of that name only

A trace is counted even when the persistent compilation cache then supplies the executable, so
``traces`` is the measure of "recompiled" that does not depend on the cache. Eager array
operations are small traced programs too (the first time each shape is seen): count by name to
ignore them.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_totals = {TRACE_EVENT: 0, COMPILE_EVENT: 0}
_trace_names: list[str] = []
_registered = []


def _listener(event: str, duration: float, **kwargs) -> None:
    del duration
    if event in _totals:
        _totals[event] += 1
    if event == TRACE_EVENT:
        _trace_names.append(str(kwargs.get("fun_name", "")))


@dataclasses.dataclass
class Compilations:
    """Events seen so far inside a :func:`count_compilations` block (live counts)."""

    _start: dict
    _names_start: int

    @property
    def traces(self) -> int:
        return _totals[TRACE_EVENT] - self._start[TRACE_EVENT]

    @property
    def compiles(self) -> int:
        return _totals[COMPILE_EVENT] - self._start[COMPILE_EVENT]

    def traced(self, name: str) -> int:
        """Traces of functions named ``name`` (the Python function given to ``jax.jit``)."""
        return _trace_names[self._names_start:].count(name)


@contextlib.contextmanager
def count_compilations():
    """Count the jit traces and backend compilations that happen inside the block."""
    if not _registered:
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _registered.append(True)
    yield Compilations(dict(_totals), len(_trace_names))
