"""Metric loggers for runs driven in blocks (:func:`evojax_lab.checkpoint.run_with_checkpoints`,
the CLI).

A logger is any callable ``logger(generation, metrics)``, called on the host once per finished
generation (``generation`` counts from 1; ``metrics`` maps names to Python floats/ints, or NumPy
arrays for per-member records such as ``population_behavior``). It may also have
``start(generation)``, called once before the first row with the generation the run starts
from (0, or the checkpoint's generation on a resume: file loggers then drop the rows written
after the last checkpoint, so no generation appears twice), and ``close()``.

=====================  ==========================================================================
:class:`JsonlLogger`   one JSON object per generation (scalar metrics; NaN/inf as ``null``)
:class:`CsvLogger`     a CSV table of the scalar metrics (empty cells for NaN/inf)
:class:`TensorBoardLogger`  TensorBoard scalars, one step per generation (``tensorboardX``:
                       ``pip install 'evojax_lab[tensorboard]'``)
:class:`WandbLogger`   a Weights & Biases run, one step per generation (``wandb``:
                       ``pip install 'evojax_lab[wandb]'``; ``mode="offline"`` needs no network)
=====================  ==========================================================================

Only scalar metrics are logged; per-member arrays are left to the run's own files.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evojax_lab.core import files


def scalars(metrics: dict) -> dict:
    """The scalar metrics as Python numbers; NaN/inf become ``None``; arrays are left out."""
    out = {}
    for k, v in metrics.items():
        if np.ndim(v) != 0:
            continue
        v = v.item() if hasattr(v, "item") else v
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out


def _keep_rows(lines: list[str], generation: int, read: Callable[[str], Any]) -> list[str]:
    kept = []
    for line in lines:
        try:
            g = read(line)
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a crash
        if g is not None and g <= generation:
            kept.append(line)
    return kept


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace ``path``'s text with ``lines`` in one rename."""
    files.atomic_write(path, ["".join(line + "\n" for line in lines).encode()], sync=False)


class JsonlLogger:
    """Writes one JSON object per generation (scalar metrics only; NaN/inf as ``null``) to
    ``path``. On a fresh run the file is emptied; on resume, rows after the checkpoint's
    generation are dropped, so no generation appears twice."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = None

    def start(self, generation: int) -> None:
        lines = []
        if generation and self.path.exists():
            lines = _keep_rows(self.path.read_text().splitlines(), generation,
                               lambda s: json.loads(s)["generation"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _rewrite(self.path, lines)
        self._file = open(self.path, "a")  # noqa: SIM115 (closed in close())

    def __call__(self, generation, metrics: dict) -> None:
        if self._file is None:
            self.start(0)
        self._file.write(json.dumps(scalars(metrics)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvLogger:
    """Writes scalar metrics as CSV (header row from the first generation's names; empty cells
    for NaN/inf). Resume behaves as :class:`JsonlLogger`."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = None
        self._writer = None
        self._fields = None

    def start(self, generation: int) -> None:
        lines = []
        if generation and self.path.exists():
            lines = self.path.read_text().splitlines()
            if lines:
                self._fields = next(csv.reader([lines[0]]))
                where = self._fields.index("generation") if "generation" in self._fields else 0
                lines = [lines[0]] + _keep_rows(
                    lines[1:], generation, lambda s: int(next(csv.reader([s]))[where]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _rewrite(self.path, lines)
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (closed in close())

    def __call__(self, generation, metrics: dict) -> None:
        if self._file is None:
            self.start(0)
        row = scalars(metrics)
        if self._fields is None:
            self._fields = list(row)
            csv.writer(self._file, lineterminator="\n").writerow(self._fields)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore",
                                          lineterminator="\n")
        self._writer.writerow({k: "" if row.get(k) is None else row[k] for k in self._fields})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class TensorBoardLogger:
    """Scalar metrics as TensorBoard summaries (``tensorboardX``) in ``logdir``, one step per
    generation; on resume, events after the checkpoint's generation are purged."""

    def __init__(self, logdir):
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ImportError("TensorBoard logging needs tensorboardX: pip install "
                              "'evojax_lab[tensorboard]'") from None
        self.logdir = str(logdir)
        self._writer = None

    def start(self, generation: int) -> None:
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(self.logdir,
                                     purge_step=generation + 1 if generation else None)

    def __call__(self, generation, metrics: dict) -> None:
        if self._writer is None:
            self.start(0)
        for name, value in scalars(metrics).items():
            if name != "generation" and value is not None:
                self._writer.add_scalar(name, value, global_step=generation)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WandbLogger:
    """Scalar metrics as a Weights & Biases run, one step per generation.

    Args:
        project: the W&B project (``None``: W&B's default).
        directory: where W&B keeps its local files (``None``: W&B's default, ``./wandb``).
        mode: ``"online"``, ``"offline"`` (local files only, no network; ``wandb sync``
            uploads them later) or ``"disabled"``; ``None``: W&B's own setting
            (``WANDB_MODE``).
        config: the run's settings, shown with the run (e.g. the CLI's ``config.json``).
        init_kwargs: any other keyword of ``wandb.init`` (``name``, ``id`` and ``resume`` to
            continue a W&B run across a resume, ``tags``, ...).

    The run starts at :meth:`start` (or at the first row) and ends at :meth:`close`.
    Non-finite values are left out of a step rather than logged as NaN.
    """

    def __init__(self, project: str | None = None, *, directory=None, mode: str | None = None,
                 config: dict | None = None, **init_kwargs):
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ImportError("Weights & Biases logging needs wandb: pip install "
                              "'evojax_lab[wandb]'") from None
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"mode must be 'online', 'offline', 'disabled' or None, got {mode!r}")
        self._init = dict(project=project, mode=mode, config=config, **init_kwargs)
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self._init["dir"] = str(directory)
        self.run = None

    def start(self, generation: int) -> None:
        import wandb

        self.run = wandb.init(**{k: v for k, v in self._init.items() if v is not None})

    def __call__(self, generation, metrics: dict) -> None:
        if self.run is None:
            self.start(0)
        values = {k: v for k, v in scalars(metrics).items()
                  if k != "generation" and v is not None}
        self.run.log(values, step=int(generation))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


__all__ = ["CsvLogger", "JsonlLogger", "TensorBoardLogger", "WandbLogger", "scalars"]
