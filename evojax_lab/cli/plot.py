"""``evojax-lab plot``: draw the pictures of a run folder."""

from __future__ import annotations

from evojax_lab.cli._common import (
    CLIError,
)


def add_parser(sub) -> None:
    pl = sub.add_parser(
        "plot",
        help="draw the pictures of a run folder",
        description="Draw every picture a run folder allows: the learning curve from "
        "metrics.jsonl (curve.png); with population_behavior.npy of a Hard Maze run "
        "(train --record behavior) the final positions on the maze walls (maze.png); with "
        "sensitivity.npz (one array of raw per-weight safe-mutation sensitivities per kind, "
        "e.g. np.savez(path, sum=s)) log-sensitivity histograms (sensitivity.png); with "
        "es_vs_sgd.jsonl (one JSON object per point: method, x, y, optional metric and "
        "x_label) ES-vs-SGD curves (es_vs_sgd.png). Needs no JAX device.",
    )
    pl.add_argument("run", help="run folder (written by `evojax-lab train`, or holding the "
                    "files above)")
    pl.add_argument("--out", metavar="FILE",
                    help="file for the learning curve (suffix picks the format: .png, .pdf, "
                    ".svg); the other pictures go next to it as <stem>_maze<suffix>, "
                    "<stem>_sensitivity<suffix>, <stem>_es_vs_sgd<suffix> (default: in the "
                    "run folder)")


def cmd_plot(args) -> int:
    from evojax_lab.plots import plot_run

    try:
        written = plot_run(args.run, args.out)
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    for path in written:
        print(path)
    return 0
