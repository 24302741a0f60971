"""Plots drawn from metrics and from saved run folders (matplotlib, imported lazily: importing
this module imports neither matplotlib nor JAX).

Every plot function returns its :class:`matplotlib.figure.Figure` (a notebook shows it, a script
adjusts or saves it) and, given a ``path``, also saves it there. Figures are built with
matplotlib's object API, not ``pyplot``: a plot never changes the active backend (an inline
notebook backend stays inline) and never registers a figure with ``pyplot``, so nothing is left
open however many are drawn.

A **run folder** (written by ``evojax-lab train``, or by hand) may hold these files; each one
present gives one picture (:func:`plot_run`, ``evojax-lab plot RUN``):

============================  =================================================================
``metrics.jsonl``             one JSON object per generation (``generation``, ``steps``,
                              ``best_fitness``, ``mean_fitness``, ``solution_fitness``, ...):
                              the learning curve against generations and environment steps
                              (``curve.png``).
``config.json``               the run's settings; ``task`` and ``strategy`` title the pictures.
``population_behavior.npy``   ``[G, P, 2]`` float: every evaluated individual's behavior
                              (``train --record behavior``). On a Hard Maze task (``hard_maze``,
                              ``image_hard_maze``, ``breadcrumb_hard_maze``): the final
                              positions on the maze walls, coloured by generation
                              (``maze.png``).
``sensitivity.npz``           NumPy ``.npz`` of raw per-weight safe-mutation sensitivities, one
                              array per kind (e.g. ``np.savez(path, sum=s_sum, abs=s_abs)`` with
                              the flattened output of ``el.mutations.sensitivity``): histograms
                              of ``log10 s`` (``sensitivity.png``).
``es_vs_sgd.jsonl``           one JSON object per point: ``method`` (e.g. ``"es"``, ``"sgd"``),
                              ``x`` (e.g. training steps), ``y`` (the score), optional
                              ``metric`` (one panel per metric; default ``"score"``) and
                              ``x_label``: one curve per method (``es_vs_sgd.png``).
============================  =================================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

MAZE_TASKS = ("hard_maze", "image_hard_maze", "breadcrumb_hard_maze")


def _figure(figsize, **subplots):
    """A new ``(Figure, axes)`` with a constrained layout, outside ``pyplot``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(**subplots)


def _finish(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = {}
    for k in keys:
        values = [r.get(k, math.nan) for r in rows]
        try:
            out[k] = np.asarray([math.nan if v is None else v for v in values], dtype=float)
        except (TypeError, ValueError):
            continue  # not numeric
    return out


def learning_curve(rows: Sequence[dict], path=None, title: str = ""):
    """Best / mean fitness and the solution's score against generations and env steps.

    Returns the Figure (saved to ``path`` when given)."""
    cols = _columns(rows)
    gens = cols.get("generation", np.arange(1, len(rows) + 1))
    fig, axes = _figure((11, 4), nrows=1, ncols=2)
    for ax, x, xlabel in (
        (axes[0], gens, "generation"),
        (axes[1], cols.get("steps", gens), "environment steps"),
    ):
        for key, label, style in (
            ("best_fitness", "best of population", "-"),
            ("mean_fitness", "population mean", "--"),
            ("solution_fitness", "solution (mean over eval episodes)", "-"),
        ):
            if key in cols and np.isfinite(cols[key]).any():
                width = 1.6 if key == "solution_fitness" else 1.0
                ax.plot(x, cols[key], style, label=label, lw=width)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def maze_positions(behavior, path=None, title: str = ""):
    """Final positions ``behavior[..., :2]`` (``[G, P, 2]`` or ``[N, 2]``) of every evaluated
    individual on the Hard Maze walls, coloured by generation. Returns the Figure (saved to
    ``path`` when given)."""
    from evojax_lab.tasks.hard_maze import draw_maze

    b = np.asarray(behavior, dtype=float)
    if b.ndim == 2:
        b = b[None]
    if b.ndim != 3 or b.shape[-1] != 2:
        raise ValueError(f"maze positions must be [G, P, 2] or [N, 2], got shape {b.shape}")
    gens = np.broadcast_to(np.arange(1, b.shape[0] + 1)[:, None], b.shape[:2]).ravel()
    xy = b.reshape(-1, 2)
    ok = np.isfinite(xy).all(axis=1)
    fig, ax = _figure((5, 5.4))
    points = ax.scatter(xy[ok, 0], xy[ok, 1], c=gens[ok], s=2, alpha=0.35, cmap="viridis",
                        rasterized=True)
    draw_maze(ax)
    fig.colorbar(points, ax=ax, shrink=0.7, label="generation")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"final positions of {int(ok.sum()):,} evaluated individuals",
                 fontsize=9)
    return _finish(fig, path)


def sensitivity_histogram(sensitivities: Mapping[str, np.ndarray], path=None,
                          title: str = ""):
    """Histograms of ``log10 s`` of per-weight sensitivities, one per kind (``{"sum": s,
    ...}``; any shapes, flattened). Zeros cannot be shown on a log axis: the legend counts
    them. Returns the Figure (saved to ``path`` when given)."""
    if not sensitivities:
        raise ValueError("no sensitivities to plot")
    fig, ax = _figure((6.5, 4))
    values = {}
    for name, s in sensitivities.items():
        s = np.abs(np.asarray(s, dtype=float).ravel())
        values[name] = s[np.isfinite(s)]
    logs = [np.log10(s[s > 0]) for s in values.values() if (s > 0).any()]
    lo, hi = (min(x.min() for x in logs), max(x.max() for x in logs)) if logs else (0.0, 1.0)
    bins = np.linspace(lo, hi + 1e-9 + (hi == lo), 61)  # shared by every kind
    for name, s in values.items():
        positive = s[s > 0]
        label = f"{name} (N = {s.size:,}"
        label += f", {s.size - positive.size:,} zero)" if positive.size < s.size else ")"
        if positive.size:
            ax.hist(np.log10(positive), bins=bins, histtype="step", lw=1.4, label=label)
        else:
            ax.plot([], [], label=label)
    ax.set_xlabel("log10 sensitivity per weight")
    ax.set_ylabel("weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "safe-mutation sensitivities", fontsize=10)
    return _finish(fig, path)


def es_vs_sgd_curves(rows: Sequence[dict], path=None, title: str = ""):
    """Curves of ``y`` against ``x``, one per ``method``, one panel per ``metric`` (rows as in
    the ``es_vs_sgd.jsonl`` convention of this module). Returns the Figure (saved to ``path``
    when given)."""
    if not rows:
        raise ValueError("no ES-vs-SGD points to plot")
    for i, r in enumerate(rows):
        missing = [k for k in ("method", "x", "y") if k not in r]
        if missing:
            raise ValueError(f"ES-vs-SGD point {i} lacks {', '.join(missing)}: {r}")
    metrics = list(dict.fromkeys(r.get("metric", "score") for r in rows))
    fig, axes = _figure((5.5 * len(metrics), 4), nrows=1, ncols=len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = [r for r in rows if r.get("metric", "score") == metric]
        for method in dict.fromkeys(r["method"] for r in part):
            pts = sorted((float(r["x"]), math.nan if r["y"] is None else float(r["y"]))
                         for r in part if r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=str(method), lw=1.4)
        ax.set_xlabel(next((r["x_label"] for r in part if "x_label" in r), "x"))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "ES vs SGD")
    return _finish(fig, path)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {n} is not JSON: {err}") from None
    return rows


def plot_run(run, out=None) -> list[Path]:
    """Draw every picture a run folder's files allow (see the module docstring).

    Args:
        run: the run folder.
        out: where the learning curve goes (default ``RUN/curve.png``); the other pictures go
            next to it as ``<stem>_maze<suffix>``, ``<stem>_sensitivity<suffix>``,
            ``<stem>_es_vs_sgd<suffix>`` (default ``RUN/maze.png`` etc.). The suffix picks the
            format (``.png``, ``.pdf``, ``.svg``).

    Returns:
        The paths written.

    Raises:
        ValueError: the folder does not exist or holds none of the files.
    """
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"{run} is not a run folder")
    config = {}
    if (run / "config.json").is_file():
        try:
            config = json.loads((run / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{run / 'config.json'} is not valid JSON: {err}") from None
    name = " — ".join(str(config[k]) for k in ("task", "strategy") if k in config)

    def target(kind: str) -> Path:
        if out is None:
            return run / f"{kind}.png"
        out_path = Path(out)
        if kind == "curve":
            return out_path
        return out_path.with_name(f"{out_path.stem}_{kind}{out_path.suffix or '.png'}")

    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    written = []
    if (run / "metrics.jsonl").is_file():
        rows = _read_jsonl(run / "metrics.jsonl")
        if rows:
            title = name
            if "pop_size" in config:
                title += f" (P={config['pop_size']}, seed {config.get('seed', '?')})"
            learning_curve(rows, target("curve"), title=title)
            written.append(target("curve"))
    behavior_file = run / "population_behavior.npy"
    task = str(config.get("task", ""))
    if behavior_file.is_file() and task in MAZE_TASKS:
        behavior = np.load(behavior_file, allow_pickle=False)
        if behavior.ndim == 3 and behavior.shape[-1] == 2:
            g, p = behavior.shape[:2]
            maze_positions(behavior, target("maze"),
                           title=f"{name}: final positions ({g} generations x {p})")
            written.append(target("maze"))
    if (run / "sensitivity.npz").is_file():
        with np.load(run / "sensitivity.npz", allow_pickle=False) as data:
            sens = {k: data[k] for k in data.files}
        sensitivity_histogram(sens, target("sensitivity"), title=name)
        written.append(target("sensitivity"))
    if (run / "es_vs_sgd.jsonl").is_file():
        es_vs_sgd_curves(_read_jsonl(run / "es_vs_sgd.jsonl"), target("es_vs_sgd"), title=name)
        written.append(target("es_vs_sgd"))
    if not written:
        raise ValueError(
            f"{run} holds nothing to plot (expected metrics.jsonl, population_behavior.npy of "
            "a maze run, sensitivity.npz or es_vs_sgd.jsonl)"
        )
    return written
