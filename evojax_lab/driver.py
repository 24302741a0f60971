"""Drive a trainer in jitted blocks of generations, with callbacks between blocks.

Generation ``g`` of a run uses ``fold_in(run_key, g)``, so a run cut into blocks is the run in
one call, bit for bit; between two blocks the host is free to show progress, log and save.
:func:`run_in_blocks` does only the cutting; each of those jobs is one callback::

    callback.start(generation)   # once, with the generation the run starts from
    callback.block(block)        # after every block: a Block (carry, metrics, rows, end, total)
    callback.close()             # once, also after an error

(each method optional). The next block is dispatched before the callbacks see the previous
one, so host work overlaps device work. Callbacks run in the order given: put loggers before a
checkpoint, so that after a crash the logs never miss a generation the checkpoint holds.

Provided here: :func:`logging` (a logger of :mod:`evojax_lab.loggers`, or any
``logger(generation, metrics)``), :class:`ProgressBar` (tqdm, a widget in notebooks) and
:class:`on_start` (run a function once the run starts);
:class:`evojax_lab.checkpoint.Checkpointing` saves checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np


class Block(NamedTuple):
    """What a callback sees after a block.

    Attributes:
        carry: the :class:`~evojax_lab.train.TrainCarry` after the block (on the devices).
        metrics: the block's metrics on the host (NumPy arrays with a leading ``[n]`` axis).
        rows: the same as one dict per generation: Python scalars (non-finite values as
            ``None``) or NumPy arrays for per-member records.
        end: the generation reached.
        total: the run's last generation (``trainer.generations``).
    """

    carry: Any
    metrics: dict
    rows: list[dict]
    end: int
    total: int


def host_rows(metrics: dict) -> list[dict]:
    """Per-generation rows of a block of host metrics (see :attr:`Block.rows`)."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    rows = []
    for i in range(n):
        row = {}
        for k, v in metrics.items():
            x = v[i]
            if np.ndim(x) == 0:
                x = x.item()
                if isinstance(x, float) and not math.isfinite(x):
                    x = None
            row[k] = x
        rows.append(row)
    return rows


def _call(callbacks: Sequence, method: str, *args) -> None:
    for callback in callbacks:
        fn = getattr(callback, method, None)
        if fn is not None:
            fn(*args)


def run_in_blocks(trainer, carry, *, start: int = 0, block: int = 10, align: int | None = None,
                  callbacks: Sequence = ()) -> tuple[Any, list[dict]]:
    """Run ``trainer`` from ``carry`` (at generation ``start``) to ``trainer.generations``.

    Args:
        trainer: a :class:`~evojax_lab.Trainer`.
        carry: the carry to start from (``trainer.init(key)``, or a restored one).
        start: the generation ``carry`` is at.
        block: generations per jitted call (each distinct block length compiles once).
        align: block boundaries also fall on multiples of ``align`` (e.g. the checkpoint
            interval); ``None``: no constraint.
        callbacks: objects with any of ``start``, ``block``, ``close`` (module docstring).

    Returns:
        ``(carry, metrics_blocks)``: the final carry and the host metrics of every block run
        (``trainer.result(carry, blocks)`` makes the :class:`~evojax_lab.TrainResult`).
    """
    from evojax_lab.parallel import to_host

    block = int(block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if align is not None and int(align) < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    total, gen, blocks, pending = trainer.generations, int(start), [], None

    def finish(done_carry, metrics, end):
        metrics = to_host(metrics)
        blocks.append(metrics)
        _call(callbacks, "block", Block(done_carry, metrics, host_rows(metrics), end, total))

    _call(callbacks, "start", gen)
    try:
        while gen < total:
            n = min(block, total - gen)
            if align is not None:
                n = min(n, int(align) - gen % int(align))
            carry, metrics = trainer.run(carry, n)
            gen += n
            if pending is not None:
                finish(*pending)
            pending = (carry, metrics, gen)
        if pending is not None:
            finish(*pending)
    finally:
        _call(callbacks, "close")
    return carry, blocks


class logging:  # noqa: N801 (reads as a verb where callbacks are listed)
    """A callback that hands every generation's row to ``logger(generation, row)`` (and
    forwards ``start`` / ``close`` when the logger has them)."""

    def __init__(self, logger: Callable):
        self.logger = logger

    def start(self, generation: int) -> None:
        if hasattr(self.logger, "start"):
            self.logger.start(generation)

    def block(self, block: Block) -> None:
        for row in block.rows:
            self.logger(row.get("generation"), row)

    def close(self) -> None:
        if hasattr(self.logger, "close"):
            self.logger.close()


class on_start:  # noqa: N801 (reads as an event where callbacks are listed)
    """A callback that calls ``fn(generation)`` once, when the run starts: after a resume has
    restored its checkpoint, so a file written by ``fn`` stays untouched if the resume fails."""

    def __init__(self, fn: Callable[[int], Any]):
        self.fn = fn

    def start(self, generation: int) -> None:
        self.fn(generation)


def score_postfix(row: dict) -> dict:
    """The progress bar's fields for a row: the solution's score (else the best fitness),
    the best fitness and the environment steps so far."""
    def fmt(x):
        return "nan" if x is None else f"{x:.4g}"

    out = {}
    if "solution_fitness" in row or "best_fitness" in row:
        out["score"] = fmt(row.get("solution_fitness", row.get("best_fitness")))
    if "best_fitness" in row:
        out["best"] = fmt(row["best_fitness"])
    if "steps" in row:
        out["steps"] = fmt(row["steps"])
    return out


class ProgressBar:
    """A tqdm progress bar (``tqdm.auto``: a widget in notebooks) over the run's generations,
    showing :func:`score_postfix` of the last generation; ``description`` labels it."""

    def __init__(self, total: int, description: str | None = None):
        self.total, self.description, self.bar = int(total), description, None

    def start(self, generation: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=generation, desc=self.description,
                        unit="gen", dynamic_ncols=True)

    def block(self, block: Block) -> None:
        if self.bar is not None and block.rows:
            self.bar.set_postfix(score_postfix(block.rows[-1]), refresh=False)
            self.bar.update(len(block.rows))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["Block", "ProgressBar", "host_rows", "logging", "on_start", "run_in_blocks",
           "score_postfix"]
