"""Plots drawn from metrics (lists of per-generation dicts or dicts of arrays)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    keys = rows[0].keys() if rows else []
    return {k: np.asarray([r.get(k, math.nan) for r in rows], dtype=float) for k in keys}


def learning_curve(rows: Sequence[dict], path, title: str = "") -> None:
    """Best / mean fitness and the solution's score against generations and env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = _columns(rows)
    gens = cols.get("generation", np.arange(1, len(rows) + 1))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
